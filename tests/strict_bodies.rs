//! Request bodies are read strictly (issue 17): a misspelled field is refused,
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
