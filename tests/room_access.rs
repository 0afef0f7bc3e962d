//! Who finds a room and who may use it up (docs/API.md: create, list, the host
//! commands `visibility`, `chat_enabled`, `clear_chat`, the host token reset, and
//! the creation and chat budgets of "Limits"). One node here; tests/cluster.rs
//! checks the same rules across nodes sharing Redis.
//!
//! Different client addresses are played with `--trust-proxy` and
//! `X-Forwarded-For`, as a proxy in front of the server would set it.

mod common;

use common::*;
use serde_json::{json, Value};

const VIDEO: &str = "dQw4w9WgXcQ";

/// `POST /api/rooms` as the client at `address` (needs `--trust-proxy`).
async fn create_from(app: &TestApp, address: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url("/api/rooms"))
        .header("x-forwarded-for", address)
        .json(&body)
        .send()
        .await
        .expect("POST /api/rooms")
}

/// `POST /api/rooms/{room}/chat` as the client at `address` (needs `--trust-proxy`).
async fn chat_from(app: &TestApp, room: &str, address: &str) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/api/rooms/{room}/chat")))
        .header("x-forwarded-for", address)
        .json(&json!({"name": "Ann", "text": "hello"}))
        .send()
        .await
        .expect("POST chat")
}

/// `POST /api/rooms/{room}/host-token` with `token` as the bearer, if any.
async fn reset_token(app: &TestApp, room: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url(&format!("/api/rooms/{room}/host-token")));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("POST host-token")
}

/// The next event with an id (presence skipped), which must be `name`.
async fn expect_versioned_event(stream: &mut SseStream, name: &str) -> SseEvent {
    let event = stream.expect_versioned().await;
    assert_eq!(event.event, name, "{event:?}");
    event
}

fn listed_ids(rooms: &[Value]) -> Vec<String> {
    rooms
        .iter()
        .map(|r| r["room_id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

// ---------------------------------------------------------------- visibility

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_is_unlisted_unless_created_public() {
    let app = spawn_app(&[]).await;
    let (unlisted, _, created) = app.create_room(json!({"room_id": "quiet"})).await;
    assert_eq!(created["room"]["visibility"], "unlisted");
    let (public, _, created) = app
        .create_room(json!({"room_id": "open-party", "visibility": "public"}))
        .await;
    assert_eq!(created["room"]["visibility"], "public");
    let (explicit, _, _) = app
        .create_room(json!({"room_id": "explicit", "visibility": "unlisted"}))
        .await;
    assert_eq!(listed_ids(&app.list_rooms().await), [public.as_str()]);
    // Unlisted is not hidden: the id opens it, its view and its stream say so.
    for room in [&unlisted, &explicit] {
        assert_eq!(app.get_room(room).await["visibility"], "unlisted");
        let mut stream = app.events(room).await;
        assert_eq!(stream.expect_snapshot().await["visibility"], "unlisted");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_lists_and_unlists_a_room_with_the_visibility_command() {
    let app = spawn_app(&[]).await;
    let (room, token, _) = app.create_room(json!({"video_id": VIDEO})).await;
    let mut stream = app.events(&room).await;
    stream.expect_snapshot().await;

    let answer = app
        .command_ok(
            &room,
            Some(&token),
            json!({"type": "visibility", "visibility": "public"}),
        )
        .await;
    assert_eq!(answer["room"]["visibility"], "public");
    let event = stream.expect_versioned().await;
    assert_eq!(event.event, "visibility");
    assert_eq!(event.json()["visibility"], "public");
    assert_eq!(event.json()["version"], 2);
    assert_eq!(listed_ids(&app.list_rooms().await), [room.as_str()]);

    // The visibility in force again: no event, same version.
    let same = app
        .command_ok(
            &room,
            Some(&token),
            json!({"type": "visibility", "visibility": "public"}),
        )
        .await;
    assert_eq!(same["version"], 2);

    app.command_ok(
        &room,
        Some(&token),
        json!({"type": "visibility", "visibility": "unlisted"}),
    )
    .await;
    assert_eq!(
        stream.expect_versioned().await.json()["visibility"],
        "unlisted"
    );
    assert!(app.list_rooms().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_visibility_input_is_refused_and_changes_nothing() {
    let app = spawn_app(&[]).await;
    // (body, status, code)
    let creations = [
        (json!({"visibility": "secret"}), 400, "invalid_value"),
        (json!({"visibility": "PUBLIC"}), 400, "invalid_value"),
        (json!({"visibility": true}), 400, "invalid_json"),
        (json!({"visibility": 1}), 400, "invalid_json"),
        (json!({"visibilty": "public"}), 400, "invalid_command"),
    ];
    for (body, status, code) in creations {
        let response = app
            .client
            .post(app.url("/api/rooms"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_error(response, status, code).await;
    }
    assert!(app.list_rooms().await.is_empty());

    let (room, token, _) = app.create_room(json!({"control": "open"})).await;
    let before = app.get_room(&room).await;
    // (token, body, status, code)
    let commands = [
        (
            Some(token.as_str()),
            json!({"type": "visibility", "visibility": "everyone"}),
            400,
            "invalid_value",
        ),
        (
            Some(token.as_str()),
            json!({"type": "visibility"}),
            400,
            "invalid_command",
        ),
        (
            Some(token.as_str()),
            json!({"type": "visibility", "visibility": null}),
            400,
            "invalid_json",
        ),
        // A host command even in an open room.
        (
            None,
            json!({"type": "visibility", "visibility": "public"}),
            401,
            "unauthorized",
        ),
        (
            Some("0000"),
            json!({"type": "visibility", "visibility": "public"}),
            403,
            "forbidden",
        ),
        (
            None,
            json!({"type": "chat_enabled", "chat_enabled": false}),
            401,
            "unauthorized",
        ),
        (
            Some(token.as_str()),
            json!({"type": "chat_enabled", "chat_enabled": "no"}),
            400,
            "invalid_json",
        ),
        (None, json!({"type": "clear_chat"}), 401, "unauthorized"),
        (
            Some("0000"),
            json!({"type": "clear_chat"}),
            403,
            "forbidden",
        ),
        (
            Some(token.as_str()),
            json!({"type": "clear_chat", "all": true}),
            400,
            "invalid_command",
        ),
    ];
    for (token, body, status, code) in commands {
        let response = app.command(&room, token, body.clone()).await;
        assert_eq!(response.status().as_u16(), status, "{body}");
        assert_error(response, status, code).await;
    }
    assert_eq!(
        fingerprint(&app.get_room(&room).await),
        fingerprint(&before)
    );
    assert!(app.list_rooms().await.is_empty());
}

// ---------------------------------------------------------------- creation budgets

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_creation_past_the_per_address_rate_is_429_and_apart_from_commands() {
    let app = spawn_app(&[
        "--trust-proxy",
        "--rooms-burst",
        "3",
        "--rooms-per-minute",
        "1",
    ])
    .await;
    let mut created = Vec::new();
    for _ in 0..3 {
        let response = create_from(&app, "10.0.0.1", json!({})).await;
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        created.push((
            body["room_id"].as_str().unwrap().to_owned(),
            body["host_token"].as_str().unwrap().to_owned(),
        ));
    }
    let refused = create_from(&app, "10.0.0.1", json!({"room_id": "fourth"})).await;
    let headers = assert_error(refused, 429, "rate_limited").await;
    assert!((1..=60).contains(&retry_after_secs(&headers)));
    assert_error(app.get("/api/rooms/fourth").await, 404, "room_not_found").await;
    // A bad body is refused before it is counted, and another address has its own budget.
    let typo = create_from(&app, "10.0.0.1", json!({"nmae": "x"})).await;
    assert_error(typo, 400, "invalid_command").await;
    assert_eq!(create_from(&app, "10.0.0.2", json!({})).await.status(), 201);
    // Commands from the refused address still go through: a separate budget.
    let (room, token) = &created[0];
    app.command_ok(
        room,
        Some(token),
        json!({"type": "load", "video_id": VIDEO}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_holds_at_most_max_rooms_per_client_until_one_closes() {
    let app = spawn_app(&["--trust-proxy", "--max-rooms-per-client", "2"]).await;
    let mut tokens = Vec::new();
    for id in ["one", "two"] {
        let response = create_from(&app, "10.0.0.1", json!({"room_id": id})).await;
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        tokens.push(body["host_token"].as_str().unwrap().to_owned());
    }
    let refused = create_from(&app, "10.0.0.1", json!({"room_id": "three"})).await;
    let headers = assert_error(refused, 429, "rate_limited").await;
    assert_eq!(retry_after_secs(&headers), 60);
    assert_error(app.get("/api/rooms/three").await, 404, "room_not_found").await;
    // Another address is not held back.
    assert_eq!(create_from(&app, "10.0.0.2", json!({})).await.status(), 201);
    // Closing one frees its place.
    let deleted = app.delete_room("one", Some(&tokens[0])).await;
    assert_eq!(deleted.status(), 204);
    let mut response = create_from(&app, "10.0.0.1", json!({"room_id": "three"})).await;
    // The actor drops the room just after answering the delete.
    let deadline = tokio::time::Instant::now() + WAIT;
    while response.status() == 429 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        response = create_from(&app, "10.0.0.1", json!({"room_id": "three"})).await;
    }
    assert_eq!(response.status(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_room_stops_counting_for_its_creator() {
    let app = spawn_app(&[
        "--trust-proxy",
        "--max-rooms-per-client",
        "1",
        "--room-ttl",
        "0.3",
    ])
    .await;
    let response = create_from(&app, "10.0.0.1", json!({"room_id": "brief"})).await;
    assert_eq!(response.status(), 201);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let response = create_from(&app, "10.0.0.1", json!({})).await;
        if response.status() == 201 {
            break;
        }
        assert_error(response, 429, "rate_limited").await;
        assert!(
            tokio::time::Instant::now() < deadline,
            "the count never fell"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_error(app.get("/api/rooms/brief").await, 404, "room_not_found").await;
}

// ---------------------------------------------------------------- chat

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_takes_at_most_its_own_chat_budget_from_all_addresses_together() {
    let app = spawn_app(&[
        "--trust-proxy",
        "--room-chat-burst",
        "3",
        "--room-chat-per-minute",
        "1",
    ])
    .await;
    let (room, _, _) = app.create_room(json!({})).await;
    let (other, _, _) = app.create_room(json!({})).await;
    for address in ["10.0.0.1", "10.0.0.2", "10.0.0.3"] {
        assert_eq!(chat_from(&app, &room, address).await.status(), 200);
    }
    let before = app.get_room(&room).await;
    // A fresh address, well within its own budget: the room's is spent.
    let refused = chat_from(&app, &room, "10.0.0.4").await;
    let headers = assert_error(refused, 429, "rate_limited").await;
    assert!((1..=60).contains(&retry_after_secs(&headers)));
    assert_eq!(
        fingerprint(&app.get_room(&room).await),
        fingerprint(&before)
    );
    // Another room has its own.
    assert_eq!(chat_from(&app, &other, "10.0.0.4").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_turns_chat_off_and_on_and_every_page_hears_it() {
    let app = spawn_app(&[]).await;
    let (room, token, created) = app.create_room(json!({})).await;
    assert_eq!(created["room"]["chat_enabled"], true);
    let mut stream = app.events(&room).await;
    stream.expect_snapshot().await;

    app.command_ok(
        &room,
        Some(&token),
        json!({"type": "chat_enabled", "chat_enabled": false}),
    )
    .await;
    let event = expect_versioned_event(&mut stream, "chat_enabled").await;
    assert_eq!(event.json()["chat_enabled"], false);
    let before = app.get_room(&room).await;
    assert_eq!(before["chat_enabled"], false);
    let refused = app
        .chat(&room, json!({"name": "Ann", "text": "anyone?"}))
        .await;
    assert_error(refused, 400, "invalid_command").await;
    assert_eq!(
        fingerprint(&app.get_room(&room).await),
        fingerprint(&before)
    );

    app.command_ok(
        &room,
        Some(&token),
        json!({"type": "chat_enabled", "chat_enabled": true}),
    )
    .await;
    assert_eq!(
        expect_versioned_event(&mut stream, "chat_enabled")
            .await
            .json()["chat_enabled"],
        true
    );
    let said = app
        .chat(&room, json!({"name": "Ann", "text": "back"}))
        .await;
    assert_eq!(said.status(), 200);
    assert_eq!(
        expect_versioned_event(&mut stream, "chat").await.json()["text"],
        "back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cleared_chat_is_gone_for_late_joiners_too() {
    let app = spawn_app(&[]).await;
    let (room, token, _) = app.create_room(json!({})).await;
    let mut stream = app.events(&room).await;
    stream.expect_snapshot().await;
    for text in ["one", "two"] {
        let said = app.chat(&room, json!({"name": "Ann", "text": text})).await;
        assert_eq!(said.status(), 200);
    }
    assert_eq!(
        app.get_room(&room).await["chat"].as_array().unwrap().len(),
        2
    );

    let answer = app
        .command_ok(&room, Some(&token), json!({"type": "clear_chat"}))
        .await;
    assert_eq!(answer["room"]["chat"], json!([]));
    let cleared = loop {
        let event = stream.expect_versioned().await;
        if event.event != "chat" {
            break event;
        }
    };
    assert_eq!(cleared.event, "chat_cleared");
    assert_eq!(cleared.json()["version"], answer["version"]);

    let mut late = app.events(&room).await;
    assert_eq!(late.expect_snapshot().await["chat"], json!([]));
    let said = app
        .chat(&room, json!({"name": "Bob", "text": "after"}))
        .await;
    assert_eq!(said.status(), 200);
    let kept = app.get_room(&room).await["chat"].clone();
    assert_eq!(kept.as_array().unwrap().len(), 1);
    assert_eq!(kept[0]["text"], "after");
}

// ---------------------------------------------------------------- host token

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_token_reset_gives_a_new_token_and_the_old_one_stops_at_once() {
    let app = spawn_app(&[]).await;
    let (room, old, _) = app.create_room(json!({"video_id": VIDEO})).await;
    let mut stream = app.events(&room).await;
    stream.expect_snapshot().await;

    let response = reset_token(&app, &room, Some(&old)).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    let new = answer["host_token"]
        .as_str()
        .expect("a new token")
        .to_owned();
    assert_eq!(new.len(), 64);
    assert!(new.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(new, old);
    assert_eq!(answer["version"], 2);
    // Listeners hear that it changed, never what it is.
    let event = expect_versioned_event(&mut stream, "host_token").await;
    assert_eq!(event.id_num(), 2);
    assert!(!event.data.contains(&new) && !event.data.contains(&old));

    let refused = app
        .command(&room, Some(&old), json!({"type": "play"}))
        .await;
    assert_error(refused, 403, "forbidden").await;
    assert_error(app.delete_room(&room, Some(&old)).await, 403, "forbidden").await;
    assert_error(reset_token(&app, &room, Some(&old)).await, 403, "forbidden").await;
    app.command_ok(&room, Some(&new), json!({"type": "play"}))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_token_reset_without_the_right_token_is_refused_and_changes_nothing() {
    let app = spawn_app(&[]).await;
    let (room, token, _) = app.create_room(json!({"control": "open"})).await;
    let before = app.get_room(&room).await;
    // (bearer, status, code); an open room does not open its token.
    let cases = [
        (None, 401, "unauthorized"),
        (Some("00ff"), 403, "forbidden"),
    ];
    for (bearer, status, code) in cases {
        assert_error(reset_token(&app, &room, bearer).await, status, code).await;
    }
    let basic = app
        .client
        .post(app.url(&format!("/api/rooms/{room}/host-token")))
        .header("authorization", format!("Basic {token}"))
        .send()
        .await
        .unwrap();
    assert_error(basic, 401, "unauthorized").await;
    assert_error(
        reset_token(&app, "no-such-room", Some(&token)).await,
        404,
        "room_not_found",
    )
    .await;
    assert_eq!(
        fingerprint(&app.get_room(&room).await),
        fingerprint(&before)
    );
    // The token still works.
    app.command_ok(
        &room,
        Some(&token),
        json!({"type": "control", "control": "host"}),
    )
    .await;
}
