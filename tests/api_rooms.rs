//! Rooms (create, get, list, delete), the error rows that are about requests
//! rather than commands (routes, methods, sizes, content types), and the small
//! service routes: `/api/time`, `/healthz`, `/readyz`, `/metrics`, the pages.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

const VIDEO: &str = "dQw4w9WgXcQ";

fn is_url_safe(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

// ---------------------------------------------------------------- create

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_room_answers_201_with_location_host_token_and_room() {
    let app = spawn_app(&[]).await;
    let before = unix_ms();
    let response = app
        .client
        .post(app.url("/api/rooms"))
        .json(&json!({"room_id": "friday", "name": "Friday mix", "control": "host"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        response.headers()["location"].to_str().unwrap(),
        "/api/rooms/friday"
    );
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["room_id"], "friday");
    assert!(body["host_token"].is_string());
    let room = &body["room"];
    assert_eq!(room["room_id"], "friday");
    assert_eq!(room["name"], "Friday mix");
    assert_eq!(room["control"], "host");
    assert_eq!(room["visibility"], "unlisted", "unlisted by default");
    assert_eq!(room["chat_enabled"], true);
    assert_eq!(room["version"], 1, "version starts at 1");
    assert_eq!(room["queue"], json!([]));
    assert_eq!(room["listeners"], 0);
    let server_time = room["server_time"]
        .as_i64()
        .expect("integer ms server_time");
    assert!(
        (server_time - before).abs() < 60_000,
        "server_time {server_time} is Unix ms"
    );
    let state = &room["state"];
    assert_eq!(state["video_id"], Value::Null, "no video before any load");
    for field in ["position", "paused", "rate", "duration", "updated_at"] {
        assert!(state.get(field).is_some(), "state has `{field}`: {state}");
    }
    assert_eq!(state["rate"].as_f64(), Some(1.0));
    assert!(state["updated_at"].is_i64(), "updated_at is integer ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_room_accepts_an_empty_body() {
    let app = spawn_app(&[]).await;
    // No body and no content type at all.
    let bare = app.client.post(app.url("/api/rooms")).send().await.unwrap();
    assert_eq!(bare.status(), StatusCode::CREATED);
    // The JSON content type with an empty body.
    let typed = app
        .client
        .post(app.url("/api/rooms"))
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(typed.status(), StatusCode::CREATED);
    // JSON's own whitespace counts as empty; other bytes (a form feed) are no JSON.
    for (body, status) in [
        (" \t\r\n", StatusCode::CREATED),
        ("\x0c", StatusCode::BAD_REQUEST),
    ] {
        let answer = app
            .client
            .post(app.url("/api/rooms"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), status, "{body:?}");
    }
    // An empty object.
    let (room, _, _) = app.create_room(json!({})).await;
    assert_eq!(
        app.get_room(&room).await["control"],
        "host",
        "host is the default"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_created_without_id_gets_a_fresh_unguessable_one() {
    let app = spawn_app(&[]).await;
    let (a, _, body) = app.create_room(json!({})).await;
    let (b, _, _) = app.create_room(json!({})).await;
    assert_ne!(a, b);
    for id in [&a, &b] {
        assert!(
            is_url_safe(id) && id.len() <= 64,
            "room id {id:?} matches the pattern"
        );
        assert!(
            id.len() >= 11,
            "room id {id:?} is long enough to be unguessable"
        );
    }
    assert_eq!(body["room"]["room_id"], json!(a));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_token_is_url_safe_unique_and_at_least_128_bits() {
    let app = spawn_app(&[]).await;
    let mut tokens = std::collections::HashSet::new();
    for _ in 0..5 {
        let (_, token, _) = app.create_room(json!({})).await;
        assert!(is_url_safe(&token), "token {token:?} is URL-safe");
        // 128 bits: at least 22 base64url characters (or 32 hex ones).
        assert!(
            token.len() >= 22,
            "token {token:?} is too short for 128 bits"
        );
        tokens.insert(token);
    }
    assert_eq!(tokens.len(), 5, "every room has its own token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_created_with_a_video_starts_paused_at_zero() {
    let app = spawn_app(&[]).await;
    let (_, _, body) = app.create_room(json!({"video_id": VIDEO})).await;
    let state = &body["room"]["state"];
    assert_eq!(state["video_id"], VIDEO);
    assert_eq!(state["paused"], true);
    assert_eq!(state["position"].as_f64(), Some(0.0));
    assert_eq!(state["duration"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_open_room() {
    let app = spawn_app(&[]).await;
    let (_, _, body) = app.create_room(json!({"control": "open"})).await;
    assert_eq!(body["room"]["control"], "open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_room_with_a_taken_id_is_409_room_exists_and_keeps_the_first() {
    let app = spawn_app(&[]).await;
    let (room, token, _) = app
        .create_room(json!({"room_id": "taken", "name": "first"}))
        .await;
    let before = app.get_room(&room).await;
    let response = app
        .client
        .post(app.url("/api/rooms"))
        .json(&json!({"room_id": "taken", "name": "second", "control": "open"}))
        .send()
        .await
        .unwrap();
    assert_error(response, 409, "room_exists").await;
    let after = app.get_room(&room).await;
    assert_eq!(fingerprint(&after), fingerprint(&before));
    assert_eq!(after["name"], "first");
    // The first host still holds the room (`control` needs the host token).
    app.command_ok(
        &room,
        Some(&token),
        json!({"type": "control", "control": "open"}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_room_with_an_invalid_room_id_is_400_invalid_value() {
    let app = spawn_app(&many_rooms(&[])).await;
    let too_long = "a".repeat(65);
    for bad in [
        "",
        "has space",
        "slash/es",
        "dot.s",
        "ünïcode",
        too_long.as_str(),
    ] {
        let response = app
            .client
            .post(app.url("/api/rooms"))
            .json(&json!({"room_id": bad}))
            .send()
            .await
            .unwrap();
        assert_error(response, 400, "invalid_value").await;
    }
    assert!(app.list_rooms().await.is_empty(), "no room was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_ids_of_the_whole_pattern_are_accepted() {
    let app = spawn_app(&[]).await;
    let longest = "Z".repeat(64);
    for good in ["a", "A-z_0-9", longest.as_str()] {
        let (room, _, _) = app.create_room(json!({"room_id": good})).await;
        assert_eq!(room, good);
        assert_eq!(app.get_room(good).await["room_id"], good);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_room_with_an_invalid_video_id_is_400_invalid_value() {
    let app = spawn_app(&[]).await;
    for bad in ["short", "twelve_chars", "has space!!", ""] {
        let response = app
            .client
            .post(app.url("/api/rooms"))
            .json(&json!({"video_id": bad}))
            .send()
            .await
            .unwrap();
        assert_error(response, 400, "invalid_value").await;
    }
    assert!(app.list_rooms().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_room_with_an_unknown_control_mode_is_a_400() {
    let app = spawn_app(&[]).await;
    let response = app
        .client
        .post(app.url("/api/rooms"))
        .json(&json!({"control": "everyone"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    let code = body["error"]["code"].as_str().unwrap_or_default();
    assert!(
        code == "invalid_value" || code == "invalid_json",
        "an unknown control mode is a bad value: {body}"
    );
    assert!(app.list_rooms().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_room_with_a_body_that_is_not_json_is_400_invalid_json() {
    let app = spawn_app(&[]).await;
    let response = app
        .client
        .post(app.url("/api/rooms"))
        .header("content-type", "application/json")
        .body("{\"room_id\": ")
        .send()
        .await
        .unwrap();
    assert_error(response, 400, "invalid_json").await;
    let wrong_type = app
        .client
        .post(app.url("/api/rooms"))
        .json(&json!({"name": 5}))
        .send()
        .await
        .unwrap();
    assert_error(wrong_type, 400, "invalid_json").await;
    assert!(app.list_rooms().await.is_empty());
}

// ---------------------------------------------------------------- get

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_room_gives_its_snapshot() {
    let app = spawn_app(&[]).await;
    let (room, _, created) = app
        .create_room(json!({"name": "Snap", "video_id": VIDEO}))
        .await;
    let response = app.get(&format!("/api/rooms/{room}")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let snapshot: Value = response.json().await.unwrap();
    assert_eq!(fingerprint(&snapshot), fingerprint(&created["room"]));
    assert!(snapshot["server_time"].is_i64());
    assert!(
        snapshot.get("host_token").is_none(),
        "the token is shown once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_missing_room_is_404_room_not_found() {
    let app = spawn_app(&[]).await;
    assert_error(
        app.get("/api/rooms/nobody-here").await,
        404,
        "room_not_found",
    )
    .await;
    // An id that could never exist is still simply not found.
    assert_error(app.get("/api/rooms/bad%20id!").await, 404, "room_not_found").await;
    let long = "x".repeat(65);
    assert_error(
        app.get(&format!("/api/rooms/{long}")).await,
        404,
        "room_not_found",
    )
    .await;
}

// ---------------------------------------------------------------- list

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_rooms_gives_every_public_room_busiest_first() {
    let app = spawn_app(&[]).await;
    let (quiet, _, _) = app
        .create_room(json!({"room_id": "quiet", "name": "Quiet", "visibility": "public"}))
        .await;
    let (busy, _, _) = app
        .create_room(
            json!({"room_id": "busy", "name": "Busy", "video_id": VIDEO, "visibility": "public"}),
        )
        .await;
    let (middle, _, _) = app
        .create_room(json!({"room_id": "middle", "visibility": "public"}))
        .await;
    // Unlisted (the default), however busy: never listed.
    let (secret, _, _) = app.create_room(json!({"room_id": "secret"})).await;
    let _secret_listeners = [app.events(&secret).await, app.events(&secret).await];
    let _busy_listeners = [
        app.events(&busy).await,
        app.events(&busy).await,
        app.events(&busy).await,
    ];
    let _middle_listener = app.events(&middle).await;
    app.wait_listeners(&busy, 3).await;
    app.wait_listeners(&middle, 1).await;

    let rooms = app.list_rooms().await;
    let ids: Vec<&str> = rooms
        .iter()
        .map(|r| r["room_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["busy", "middle", "quiet"], "busiest first: {rooms:?}");
    let busy_entry = &rooms[0];
    assert_eq!(busy_entry["name"], "Busy");
    assert_eq!(busy_entry["listeners"], 3);
    assert_eq!(busy_entry["video_id"], VIDEO);
    assert_eq!(rooms[2]["video_id"], Value::Null);
    assert_eq!(rooms[2]["listeners"], 0);
    assert_eq!(rooms[2]["room_id"], json!(quiet));
    for entry in &rooms {
        for field in ["room_id", "name", "listeners", "video_id"] {
            assert!(entry.get(field).is_some(), "`{field}` in {entry}");
        }
        assert!(entry.get("host_token").is_none(), "no token in a listing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_rooms_is_bounded_to_the_first_100() {
    let app = spawn_app(&many_rooms(&[])).await;
    for i in 0..105 {
        app.create_room(json!({"room_id": format!("room-{i}"), "visibility": "public"}))
            .await;
    }
    let rooms = app.list_rooms().await;
    assert_eq!(rooms.len(), 100, "the listing is bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_rooms_is_empty_on_a_fresh_server() {
    let app = spawn_app(&[]).await;
    let response = app.get("/api/rooms").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"rooms": []}));
}

// ---------------------------------------------------------------- delete

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_room_with_the_host_token_is_204_and_the_room_is_gone() {
    let app = spawn_app(&[]).await;
    let (room, token, _) = app.create_room(json!({})).await;
    let response = app.delete_room(&room, Some(&token)).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(
        response.bytes().await.unwrap().is_empty(),
        "204 has no body"
    );

    assert_error(
        app.get(&format!("/api/rooms/{room}")).await,
        404,
        "room_not_found",
    )
    .await;
    assert_error(
        app.command(&room, Some(&token), json!({"type": "play"}))
            .await,
        404,
        "room_not_found",
    )
    .await;
    assert_error(
        app.open_events(&format!("/api/rooms/{room}/events"), &[])
            .await,
        404,
        "room_not_found",
    )
    .await;
    assert_error(
        app.delete_room(&room, Some(&token)).await,
        404,
        "room_not_found",
    )
    .await;
    assert!(app.list_rooms().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_room_frees_its_id() {
    let app = spawn_app(&[]).await;
    let (room, token, _) = app.create_room(json!({"room_id": "again"})).await;
    assert_eq!(
        app.delete_room(&room, Some(&token)).await.status(),
        StatusCode::NO_CONTENT
    );
    let (_, new_token, created) = app.create_room(json!({"room_id": "again"})).await;
    assert_ne!(new_token, token);
    assert_eq!(created["room"]["version"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_room_without_a_token_is_401_and_the_room_stays() {
    let app = spawn_app(&[]).await;
    for control in ["host", "open"] {
        let (room, _, _) = app.create_room(json!({"control": control})).await;
        let before = app.get_room(&room).await;
        assert_error(app.delete_room(&room, None).await, 401, "unauthorized").await;
        assert_eq!(
            fingerprint(&app.get_room(&room).await),
            fingerprint(&before)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_room_with_a_wrong_token_is_403_and_the_room_stays() {
    let app = spawn_app(&[]).await;
    let (room, _, _) = app.create_room(json!({"control": "open"})).await;
    let (_, other_token, _) = app.create_room(json!({})).await;
    let before = app.get_room(&room).await;
    assert_error(
        app.delete_room(&room, Some("not-the-token")).await,
        403,
        "forbidden",
    )
    .await;
    assert_error(
        app.delete_room(&room, Some(&other_token)).await,
        403,
        "forbidden",
    )
    .await;
    assert_eq!(
        fingerprint(&app.get_room(&room).await),
        fingerprint(&before)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_missing_room_is_404_room_not_found() {
    let app = spawn_app(&[]).await;
    assert_error(
        app.delete_room("ghost", Some("some-token")).await,
        404,
        "room_not_found",
    )
    .await;
}

// ---------------------------------------------------------------- routes, sizes, types

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_route_is_404_not_found() {
    let app = spawn_app(&[]).await;
    for path in ["/api/nothing", "/api/rooms/x/y/z", "/nope"] {
        assert_error(app.get(path).await, 404, "not_found").await;
    }
    let post = app
        .client
        .post(app.url("/api/nothing"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_error(post, 404, "not_found").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_method_is_405_method_not_allowed() {
    let app = spawn_app(&[]).await;
    let (room, token, _) = app.create_room(json!({})).await;
    let put = app
        .client
        .put(app.url(&format!("/api/rooms/{room}")))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_error(put, 405, "method_not_allowed").await;
    let delete_list = app
        .client
        .delete(app.url("/api/rooms"))
        .send()
        .await
        .unwrap();
    assert_error(delete_list, 405, "method_not_allowed").await;
    let get_commands = app.get(&format!("/api/rooms/{room}/commands")).await;
    assert_error(get_commands, 405, "method_not_allowed").await;
    assert_eq!(app.get_room(&room).await["version"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_its_limit_is_413_payload_too_large_and_changes_nothing() {
    let app = spawn_app(&[]).await;
    let (room, token) = app.video_room().await;
    let before = app.get_room(&room).await;
    let padding = "x".repeat(17 * 1024);

    // A command may be 64 KiB; other bodies 16 KiB.
    let command = app
        .command(
            &room,
            Some(&token),
            json!({"type": "seek", "position": 30.0, "padding": "x".repeat(65 * 1024)}),
        )
        .await;
    assert_error(command, 413, "payload_too_large").await;

    let create = app
        .client
        .post(app.url("/api/rooms"))
        .json(&json!({"room_id": "big", "name": padding}))
        .send()
        .await
        .unwrap();
    assert_error(create, 413, "payload_too_large").await;

    let chat = app
        .chat(&room, json!({"name": "Ann", "text": padding}))
        .await;
    assert_error(chat, 413, "payload_too_large").await;

    assert_eq!(
        fingerprint(&app.get_room(&room).await),
        fingerprint(&before)
    );
    assert_error(app.get("/api/rooms/big").await, 404, "room_not_found").await;
}

/// A command body of exactly `len` bytes.
fn body_of_len(len: usize) -> String {
    let head = r#"{"type": "seek", "position": 30.0, "padding": ""#;
    let tail = r#""}"#;
    format!("{head}{}{tail}", "x".repeat(len - head.len() - tail.len()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_body_limit_is_exactly_64_kib() {
    let app = spawn_app(&[]).await;
    let (room, token) = app.video_room().await;
    let send = |body: String| {
        app.client
            .post(app.url(&format!("/api/rooms/{room}/commands")))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let at_limit = send(body_of_len(64 * 1024)).await.unwrap();
    assert_ne!(
        at_limit.status(),
        StatusCode::PAYLOAD_TOO_LARGE,
        "64 KiB is allowed"
    );
    let over = send(body_of_len(64 * 1024 + 1)).await.unwrap();
    assert_error(over, 413, "payload_too_large").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_without_json_content_type_is_415_and_changes_nothing() {
    let app = spawn_app(&[]).await;
    let (room, token) = app.video_room().await;
    let before = app.get_room(&room).await;
    let body = r#"{"type": "play"}"#;

    let untyped = app
        .client
        .post(app.url(&format!("/api/rooms/{room}/commands")))
        .bearer_auth(&token)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_error(untyped, 415, "unsupported_media_type").await;

    let text_plain = app
        .client
        .post(app.url(&format!("/api/rooms/{room}/commands")))
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_error(text_plain, 415, "unsupported_media_type").await;

    let chat = app
        .client
        .post(app.url(&format!("/api/rooms/{room}/chat")))
        .body(r#"{"name": "Ann", "text": "hi"}"#)
        .send()
        .await
        .unwrap();
    assert_error(chat, 415, "unsupported_media_type").await;

    let create = app
        .client
        .post(app.url("/api/rooms"))
        .body(r#"{"room_id": "untyped"}"#)
        .send()
        .await
        .unwrap();
    assert_error(create, 415, "unsupported_media_type").await;

    assert_eq!(
        fingerprint(&app.get_room(&room).await),
        fingerprint(&before)
    );
    assert_error(app.get("/api/rooms/untyped").await, 404, "room_not_found").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_content_type_with_a_charset_is_accepted() {
    let app = spawn_app(&[]).await;
    let (room, token) = app.video_room().await;
    let response = app
        .client
        .post(app.url(&format!("/api/rooms/{room}/commands")))
        .bearer_auth(&token)
        .header("content-type", "application/json; charset=utf-8")
        .body(r#"{"type": "play"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

// ---------------------------------------------------------------- service routes

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_time_gives_server_unix_time_in_ms() {
    let app = spawn_app(&[]).await;
    let before = unix_ms();
    let response = app.get("/api/time").await;
    let after = unix_ms();
    assert_eq!(response.status(), StatusCode::OK);
    // A cached clock would make every browser's offset wrong.
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    let server_time = body["server_time"].as_i64().expect("integer server_time");
    // Same machine, same clock: the answer lies within the request's span.
    assert!(
        server_time >= before - 5 && server_time <= after + 5,
        "{before} <= {server_time} <= {after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_and_readyz_answer_200() {
    let app = spawn_app(&[]).await;
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
}

async fn metrics_text(app: &TestApp) -> String {
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain")
            || content_type.starts_with("application/openmetrics-text"),
        "Prometheus content type, got {content_type:?}"
    );
    response.text().await.unwrap()
}

/// The sum of the samples of `name` (with or without labels).
fn sample(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let rest = match line.strip_prefix(name) {
            Some(rest) if rest.starts_with(' ') || rest.starts_with('{') => rest,
            _ => continue,
        };
        let value = rest
            .rsplit_once('}')
            .map_or(rest, |(_, v)| v)
            .split_whitespace()
            .next()?
            .parse::<f64>()
            .ok()?;
        *found.get_or_insert(0.0) += value;
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_expose_the_documented_names() {
    let app = spawn_app(&[]).await;
    let (room, token) = app.video_room().await;
    let mut listener = app.events(&room).await;
    listener.expect_snapshot().await;
    app.command_ok(&room, Some(&token), json!({"type": "play"}))
        .await;
    assert_eq!(listener.expect_versioned().await.event, "state");
    assert_error(
        app.command(&room, None, json!({"type": "pause"})).await,
        401,
        "unauthorized",
    )
    .await;

    let text = metrics_text(&app).await;
    assert_eq!(sample(&text, "syncroom_connections"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "syncroom_rooms"), Some(1.0), "{text}");
    let events = sample(&text, "syncroom_events_total").expect("syncroom_events_total");
    assert!(events >= 1.0, "{text}");
    let commands: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("syncroom_commands_total{"))
        .collect();
    assert!(
        commands
            .iter()
            .any(|l| l.contains("type=\"play\"") && l.contains("outcome=")),
        "syncroom_commands_total{{type,outcome}}: {text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("syncroom_") && l.contains("_bucket{") && l.contains("le=")),
        "a latency histogram: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_open_event_streams() {
    let app = spawn_app(&[]).await;
    let (room, _) = app.video_room().await;
    let first = app.events(&room).await;
    let second = app.events(&room).await;
    app.wait_listeners(&room, 2).await;
    assert_eq!(
        sample(&metrics_text(&app).await, "syncroom_connections"),
        Some(2.0)
    );
    drop(first);
    drop(second);
    app.wait_listeners(&room, 0).await;
    assert_eq!(
        sample(&metrics_text(&app).await, "syncroom_connections"),
        Some(0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_page_is_served_at_root_and_at_a_room_path() {
    let app = spawn_app(&[]).await;
    let (room, _, _) = app.create_room(json!({"room_id": "page-room"})).await;
    for path in ["/".to_owned(), format!("/r/{room}")] {
        let response = app.get(&path).await;
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            content_type.starts_with("text/html"),
            "{path}: {content_type}"
        );
        let body = response.text().await.unwrap().to_ascii_lowercase();
        assert!(
            body.contains("<html") || body.contains("<!doctype html"),
            "{path} is a page"
        );
    }
}
