//! Request bodies are read strictly: a misspelled field is refused,
//! not dropped; every decoding error names the field and the JSON type it takes
//! in plain words; refused commands are counted under their type; `play` needs
//! something loaded. Each rule is a table of cases against a real server.

mod common;

use common::{assert_error_shape, fingerprint, spawn_app, TestApp};
use serde_json::{json, Value};

/// Where a body is sent.
#[derive(Clone, Copy, Debug)]
enum Route {
    Command,
    Create,
    Chat,
}

/// Sends `body` to `route` of `room` (as its host), asserts the answer is
/// `status` with `code` and that the room did not change; gives the message.
async fn refused(
    app: &TestApp,
    (room, token): (&str, &str),
    route: Route,
    body: Value,
    status: u16,
    code: &str,
) -> String {
    let before = app.get_room(room).await;
    let response = match route {
        Route::Command => app.command(room, Some(token), body.clone()).await,
        Route::Chat => app.chat(room, body.clone()).await,
        Route::Create => app
            .client
            .post(app.url("/api/rooms"))
            .json(&body)
            .send()
            .await
            .expect("create request"),
    };
    assert_eq!(response.status().as_u16(), status, "{route:?} {body}");
    let answer: Value = response.json().await.expect("JSON error body");
    assert_error_shape(&answer, code);
    assert_eq!(
        fingerprint(&app.get_room(room).await),
        fingerprint(&before),
        "{route:?} {body} changed the room"
    );
    answer["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_are_400_invalid_command_naming_the_field() {
    let app = spawn_app(&[]).await;
    let (room, token) = app.video_room().await;
    let cases = [
        (
            Route::Command,
            json!({"type": "play", "positon": 30}),
            "positon",
        ),
        (Route::Command, json!({"type": "next", "now": true}), "now"),
        (
            Route::Command,
            json!({"type": "load", "video_id": "dQw4w9WgXcQ", "durration": 3}),
            "durration",
        ),
        (
            Route::Command,
            json!({"type": "seek", "position": 1, "expected_verison": 1}),
            "expected_verison",
        ),
        (Route::Create, json!({"nmae": "Friday"}), "nmae"),
        (
            Route::Create,
            json!({"room_id": "strict-1", "contrl": "open"}),
            "contrl",
        ),
        (
            Route::Chat,
            json!({"name": "Ann", "text": "hi", "colour": "red"}),
            "colour",
        ),
    ];
    for (route, body, field) in cases {
        let message = refused(
            &app,
            (&room, &token),
            route,
            body.clone(),
            400,
            "invalid_command",
        )
        .await;
        assert!(message.contains(&format!("`{field}`")), "{body}: {message}");
    }
    // The refused creation made no room.
    assert_eq!(app.get("/api/rooms/strict-1").await.status().as_u16(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decoding_errors_name_the_field_and_the_json_type_in_plain_words() {
    let app = spawn_app(&[]).await;
    let (room, token) = app.video_room().await;
    let cases = [
        (
            Route::Command,
            json!({"type": "seek", "position": "3"}),
            "invalid_json",
            r#"position: expected a number, got the string "3""#,
        ),
        (
            Route::Command,
            json!({"type": "seek", "position": null}),
            "invalid_json",
            "position: expected a number, got null",
        ),
        (
            Route::Command,
            json!({"type": "load", "video_id": 5}),
            "invalid_json",
            "video_id: expected a string, got the number 5",
        ),
        (
            Route::Command,
            json!({"type": "load", "video_id": "dQw4w9WgXcQ", "paused": "yes"}),
            "invalid_json",
            r#"paused: expected true or false, got the string "yes""#,
        ),
        (
            Route::Command,
            json!({"type": "queue_move", "item_id": "a", "index": -1}),
            "invalid_json",
            "index: expected a non-negative integer, got the number -1",
        ),
        (
            Route::Command,
            json!({"type": "play", "expected_version": [1]}),
            "invalid_json",
            "expected_version: expected a non-negative integer, got an array",
        ),
        (
            Route::Command,
            json!({"type": "control", "control": "everyone"}),
            "invalid_value",
            r#"control: expected "host" or "open", got the string "everyone""#,
        ),
        (
            Route::Create,
            json!({"name": {"first": "Fri"}}),
            "invalid_json",
            "name: expected a string, got an object",
        ),
        (
            Route::Create,
            json!({"control": "all"}),
            "invalid_value",
            r#"control: expected "host" or "open", got the string "all""#,
        ),
        (
            Route::Chat,
            json!({"name": "Ann", "text": true}),
            "invalid_json",
            "text: expected a string, got a boolean",
        ),
    ];
    for (route, body, code, expected) in cases {
        let message = refused(&app, (&room, &token), route, body.clone(), 400, code).await;
        assert_eq!(message, expected, "{route:?} {body}");
    }
}

/// The value of the `syncroom_commands_total` sample with these labels, if any.
async fn commands_total(app: &TestApp, r#type: &str, outcome: &str) -> Option<f64> {
    let text = app.get("/metrics").await.text().await.expect("metrics");
    text.lines().find_map(|line| {
        let rest = line.strip_prefix("syncroom_commands_total{")?;
        let (labels, value) = rest.split_once("} ")?;
        let wanted = labels.contains(&format!("type=\"{type}\""))
            && labels.contains(&format!("outcome=\"{outcome}\""));
        wanted.then(|| value.trim().parse().ok()).flatten()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_commands_are_counted_under_their_type_when_it_is_readable() {
    let app = spawn_app(&[]).await;
    let (room, token) = app.video_room().await;
    let cases = [
        (
            json!({"type": "seek", "position": -1}),
            "seek",
            "invalid_value",
        ),
        (json!({"type": "rate", "rate": 9}), "rate", "invalid_value"),
        (
            json!({"type": "load", "video_id": "short"}),
            "load",
            "invalid_value",
        ),
        (json!({"type": "seek"}), "seek", "invalid_command"),
        (
            json!({"type": "rate", "rate": "fast"}),
            "rate",
            "invalid_json",
        ),
        (json!({"type": "explode"}), "unknown", "invalid_command"),
        (json!({"type": 7}), "unknown", "invalid_command"),
    ];
    for (body, r#type, outcome) in cases {
        let before = commands_total(&app, r#type, outcome).await.unwrap_or(0.0);
        let status = app
            .command(&room, Some(&token), body.clone())
            .await
            .status();
        assert_eq!(status.as_u16(), 400, "{body}");
        let after = commands_total(&app, r#type, outcome).await;
        assert_eq!(
            after,
            Some(before + 1.0),
            "{body} counted as {type}/{outcome}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn play_with_nothing_loaded_is_400_invalid_command_and_changes_nothing() {
    let app = spawn_app(&[]).await;
    let (room, token, _) = app.create_room(json!({})).await;
    for body in [
        json!({"type": "play"}),
        json!({"type": "play", "position": 10}),
    ] {
        let message = refused(
            &app,
            (&room, &token),
            Route::Command,
            body,
            400,
            "invalid_command",
        )
        .await;
        assert_eq!(message, "nothing is loaded");
    }
    let view = app.get_room(&room).await;
    assert_eq!(view["state"]["paused"], json!(true));
    assert_eq!(view["state"]["video_id"], Value::Null);
    // Once a video is loaded, play is accepted.
    app.command_ok(
        &room,
        Some(&token),
        json!({"type": "load", "video_id": "dQw4w9WgXcQ", "paused": true}),
    )
    .await;
    app.command_ok(&room, Some(&token), json!({"type": "play"}))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integers_may_carry_a_zero_fraction_up_to_2_pow_53_minus_1() {
    // JSON Schema counts `6461.0` an integer, and so must the server.
    let app = spawn_app(&[]).await;
    let (room, token) = app.video_room().await;
    let host = Some(token.as_str());
    for video_id in ["aaaaaaaaaaa", "bbbbbbbbbbb"] {
        app.command_ok(
            &room,
            host,
            json!({"type": "queue_add", "video_id": video_id}),
        )
        .await;
    }
    let before = app.get_room(&room).await;
    let last = before["queue"][1]["item_id"]
        .as_str()
        .expect("item id")
        .to_owned();
    let version = before["version"].as_u64().expect("version") as f64;
    let moved = app
        .command_ok(
            &room,
            host,
            json!({"type": "queue_move", "item_id": last, "index": 0.0, "expected_version": version}),
        )
        .await;
    assert_eq!(
        moved["room"]["queue"][0]["item_id"],
        last.as_str(),
        "{moved}"
    );
    let gate = app
        .command_ok(
            &room,
            host,
            json!({"type": "ready_gate", "quorum": 50.0, "deadline_ms": 1000.0}),
        )
        .await;
    assert!(
        gate["version"].as_u64() > moved["version"].as_u64(),
        "{gate}"
    );

    let cases = [
        (
            json!({"type": "queue_move", "item_id": last, "index": 6461.5}),
            "invalid_json",
            "index: expected a non-negative integer, got the number 6461.5",
        ),
        (
            json!({"type": "play", "expected_version": 9_007_199_254_740_992_u64}),
            "invalid_value",
            "`expected_version` must be an integer from 0 to 9007199254740991",
        ),
        (
            json!({"type": "ready_gate", "quorum": 1e300, "deadline_ms": 0}),
            "invalid_value",
            "`quorum` must be an integer from 0 to 9007199254740991",
        ),
    ];
    for (body, code, expected) in cases {
        let message = refused(
            &app,
            (&room, &token),
            Route::Command,
            body.clone(),
            400,
            code,
        )
        .await;
        assert_eq!(message, expected, "{body}");
    }
}
