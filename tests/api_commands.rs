//! `POST /api/rooms/{room_id}/commands`: each playback command, its validation,
//! `expected_version`, no-op commands, and who may send commands.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const VIDEO: &str = "dQw4w9WgXcQ";
const OTHER: &str = "9bZkp7q19f0";

fn position(state: &Value) -> f64 {
    state["position"].as_f64().expect("numeric position")
}

/// The client-side formula of API.md.
fn current_position(room: &Value) -> f64 {
    let state = &room["state"];
    let pos = position(state);
    if state["paused"] == true {
        return pos;
    }
    let elapsed_ms = room["server_time"].as_i64().unwrap() - state["updated_at"].as_i64().unwrap();
    let mut now = pos + elapsed_ms as f64 / 1000.0 * state["rate"].as_f64().unwrap();
    if let Some(duration) = state["duration"].as_f64() {
        now = now.clamp(0.0, duration);
    }
    now
}

/// Sends `body` as the host, asserts the listener sees one `state` event with
/// `cause` at the answer's version, and returns (answer, event data).
async fn command_with_event(
    app: &TestApp,
    listener: &mut SseStream,
    room: &str,
    token: &str,
    body: Value,
    cause: &str,
) -> (Value, Value) {
    let answer = app.command_ok(room, Some(token), body).await;
    let event = listener.expect_versioned().await;
    assert_eq!(event.event, "state", "{event:?}");
    assert_eq!(
        json!(event.id_num()),
        answer["version"],
        "event id is the new version"
    );
    let data = event.json();
    assert_eq!(data["version"], answer["version"]);
    assert_eq!(data["cause"], cause);
    assert!(data["server_time"].is_i64(), "server_time in {data}");
    assert_eq!(
        data["state"], answer["room"]["state"],
        "event and answer agree"
    );
    (answer, data)
}

async fn listening_room(app: &TestApp) -> (String, String, SseStream) {
    let (room, token) = app.video_room().await;
    let mut listener = app.events(&room).await;
    listener.expect_snapshot().await;
    (room, token, listener)
}

// ---------------------------------------------------------------- each command's state event

/// Asserts each field of `expected` in `state`; numbers compare as numbers.
fn assert_state(rule: &str, state: &Value, expected: &Value) {
    for (field, want) in expected.as_object().expect("expected fields") {
        let got = &state[field];
        match (got.as_f64(), want.as_f64()) {
            (Some(got), Some(want)) => assert_eq!(got, want, "{rule}: {field} in {state}"),
            _ => assert_eq!(got, want, "{rule}: {field} in {state}"),
        }
    }
}

/// One rule per row: in a fresh room with a video loaded and paused at 0, the
/// commands `before`, then `command`, which emits one `state` event with `cause`
/// whose state has the `expected` fields (and equals the answer's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_command_emits_one_state_event_with_its_cause_and_effect() {
    let rules = [
        (
            "play resumes",
            vec![],
            json!({"type": "play"}),
            "play",
            json!({"paused": false, "video_id": VIDEO, "position": 0.0}),
        ),
        (
            "play from a position starts there",
            vec![],
            json!({"type": "play", "position": 42.5}),
            "play",
            json!({"paused": false, "position": 42.5}),
        ),
        (
            "pause at a position stops there",
            vec![json!({"type": "play"})],
            json!({"type": "pause", "position": 12.25}),
            "pause",
            json!({"paused": true, "position": 12.25}),
        ),
        (
            "seek jumps and keeps a paused room paused",
            vec![],
            json!({"type": "seek", "position": 30.0}),
            "seek",
            json!({"paused": true, "position": 30.0}),
        ),
        (
            "seek jumps and keeps a playing room playing",
            vec![json!({"type": "play"})],
            json!({"type": "seek", "position": 100.0}),
            "seek",
            json!({"paused": false, "position": 100.0}),
        ),
        (
            "load switches video, playing from zero, length unknown",
            vec![json!({"type": "duration", "duration": 212.0})],
            json!({"type": "load", "video_id": OTHER}),
            "load",
            json!({"video_id": OTHER, "position": 0.0, "paused": false, "duration": null}),
        ),
        (
            "load takes position, paused and duration",
            vec![],
            json!({"type": "load", "video_id": OTHER, "position": 5.5, "paused": true, "duration": 300.0}),
            "load",
            json!({"video_id": OTHER, "position": 5.5, "paused": true, "duration": 300.0}),
        ),
        (
            "rate a quarter",
            vec![],
            json!({"type": "rate", "rate": 0.25}),
            "rate",
            json!({"rate": 0.25}),
        ),
        (
            "rate double",
            vec![],
            json!({"type": "rate", "rate": 2.0}),
            "rate",
            json!({"rate": 2.0}),
        ),
        (
            "rate between",
            vec![json!({"type": "rate", "rate": 2.0})],
            json!({"type": "rate", "rate": 1.5}),
            "rate",
            json!({"rate": 1.5}),
        ),
        (
            "duration reports the length of the loaded video",
            vec![],
            json!({"type": "duration", "duration": 212.0}),
            "duration",
            json!({"duration": 212.0}),
        ),
    ];
    let app = spawn_app(&many_rooms(&[])).await;
    for (rule, before, command, cause, expected) in rules {
        let (room, token, mut listener) = listening_room(&app).await;
        for step in before {
            let cause = step["type"].as_str().unwrap_or_default().to_owned();
            command_with_event(&app, &mut listener, &room, &token, step, &cause).await;
        }
        let (answer, data) =
            command_with_event(&app, &mut listener, &room, &token, command, cause).await;
        assert_state(rule, &data["state"], &expected);
        assert_eq!(answer["room"]["state"], data["state"], "{rule}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_without_a_position_stops_where_playback_had_got_to() {
    let app = spawn_app(&[]).await;
    let (room, token, mut listener) = listening_room(&app).await;
    let started = tokio::time::Instant::now();
    command_with_event(
        &app,
        &mut listener,
        &room,
        &token,
        json!({"type": "play", "position": 10.0}),
        "play",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (_, data) = command_with_event(
        &app,
        &mut listener,
        &room,
        &token,
        json!({"type": "pause"}),
        "pause",
    )
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    let at = position(&data["state"]);
    assert!(
        at >= 10.35,
        "paused at {at}: playback had run at least 0.4 s"
    );
    assert!(
        at <= 10.0 + elapsed + 0.05,
        "paused at {at}: more than {elapsed} s played"
    );
    assert_eq!(data["state"]["paused"], true);
}

// ---------------------------------------------------------------- extrapolation

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_position_extrapolates_with_the_server_clock_and_rate() {
    let app = spawn_app(&[]).await;
    let (room, token) = app.video_room().await;
    let started = tokio::time::Instant::now();
    app.command_ok(&room, Some(&token), json!({"type": "rate", "rate": 2.0}))
        .await;
    app.command_ok(
        &room,
        Some(&token),
        json!({"type": "play", "position": 10.0}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let snapshot = app.get_room(&room).await;
    let elapsed = started.elapsed().as_secs_f64();
    let now = current_position(&snapshot);
    assert!(
        now >= 10.0 + 0.5 * 2.0 - 0.02,
        "at {now}: 0.5 s at rate 2 has passed"
    );
    assert!(
        now <= 10.0 + elapsed * 2.0 + 0.05,
        "at {now}: only {elapsed} s passed"
    );
    // A paused room does not move.
    app.command_ok(
        &room,
        Some(&token),
        json!({"type": "pause", "position": 20.0}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(current_position(&app.get_room(&room).await), 20.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_position_is_where_playback_was_at_updated_at() {
    let app = spawn_app(&[]).await;
    let (room, token) = app.video_room().await;
    app.command_ok(
        &room,
        Some(&token),
        json!({"type": "play", "position": 50.0}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A rate change restamps the state; the stored position must already
    // include what was played before it.
    let answer = app
        .command_ok(&room, Some(&token), json!({"type": "rate", "rate": 0.5}))
        .await;
    let state = &answer["room"]["state"];
    assert!(
        position(state) >= 50.25,
        "{state}: the 0.3 s played before are kept"
    );
    assert_eq!(state["paused"], false);
    let a = current_position(&app.get_room(&room).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b = current_position(&app.get_room(&room).await);
    assert!(b > a, "playback moves on: {a} then {b}");
}

// ---------------------------------------------------------------- validation

async fn assert_refused(
    app: &TestApp,
    room: &str,
    token: &str,
    body: Value,
    status: u16,
    code: &str,
) {
    let before = app.get_room(room).await;
    let response = app.command(room, Some(token), body.clone()).await;
    let got = response.status().as_u16();
    if got != status {
        panic!(
            "{body}: expected {status} {code}, got {got}: {}",
            response.text().await.unwrap()
        );
    }
    assert_error(response, status, code).await;
    assert_eq!(
        fingerprint(&app.get_room(room).await),
        fingerprint(&before),
        "{body} changed the room"
    );
}

/// The refusal rules of the API reference that share one shape: the body, the
/// status and code it gets, and no change to the room. One row per case, grouped
/// by rule (the first column names it).
const REFUSALS: &[(&str, &str, u16, &str)] = &[
    (
        "negative position",
        r#"{"type": "play", "position": -1.0}"#,
        400,
        "invalid_value",
    ),
    (
        "negative position",
        r#"{"type": "pause", "position": -0.5}"#,
        400,
        "invalid_value",
    ),
    (
        "negative position",
        r#"{"type": "seek", "position": -3}"#,
        400,
        "invalid_value",
    ),
    (
        "negative position",
        r#"{"type": "load", "video_id": "9bZkp7q19f0", "position": -1.0}"#,
        400,
        "invalid_value",
    ),
    (
        "rate outside 0.25..=2",
        r#"{"type": "rate", "rate": 0.0}"#,
        400,
        "invalid_value",
    ),
    (
        "rate outside 0.25..=2",
        r#"{"type": "rate", "rate": 0.2}"#,
        400,
        "invalid_value",
    ),
    (
        "rate outside 0.25..=2",
        r#"{"type": "rate", "rate": 2.01}"#,
        400,
        "invalid_value",
    ),
    (
        "rate outside 0.25..=2",
        r#"{"type": "rate", "rate": 3.0}"#,
        400,
        "invalid_value",
    ),
    (
        "rate outside 0.25..=2",
        r#"{"type": "rate", "rate": -1.0}"#,
        400,
        "invalid_value",
    ),
    (
        "bad video id",
        r#"{"type": "load", "video_id": "short"}"#,
        400,
        "invalid_value",
    ),
    (
        "bad video id",
        r#"{"type": "load", "video_id": "dQw4w9WgXcQx"}"#,
        400,
        "invalid_value",
    ),
    (
        "bad video id",
        r#"{"type": "load", "video_id": "dQw4w9WgXc!"}"#,
        400,
        "invalid_value",
    ),
    (
        "bad video id",
        r#"{"type": "load", "video_id": ""}"#,
        400,
        "invalid_value",
    ),
    (
        "negative duration",
        r#"{"type": "duration", "duration": -5.0}"#,
        400,
        "invalid_value",
    ),
    (
        "negative duration",
        r#"{"type": "load", "video_id": "9bZkp7q19f0", "duration": -1.0}"#,
        400,
        "invalid_value",
    ),
    (
        "unknown command type",
        r#"{"type": "rewind"}"#,
        400,
        "invalid_command",
    ),
    (
        "unknown command type",
        r#"{"position": 3.0}"#,
        400,
        "invalid_command",
    ),
    (
        "missing field",
        r#"{"type": "seek"}"#,
        400,
        "invalid_command",
    ),
    (
        "neither video_id nor media_url",
        r#"{"type": "load"}"#,
        400,
        "invalid_value",
    ),
    (
        "missing field",
        r#"{"type": "rate"}"#,
        400,
        "invalid_command",
    ),
    (
        "missing field",
        r#"{"type": "duration"}"#,
        400,
        "invalid_command",
    ),
    (
        "missing field",
        r#"{"type": "control"}"#,
        400,
        "invalid_command",
    ),
    (
        "field of the wrong JSON type",
        r#"{"type": "seek", "position": "abc"}"#,
        400,
        "invalid_json",
    ),
    (
        "field of the wrong JSON type",
        r#"{"type": "play", "position": true}"#,
        400,
        "invalid_json",
    ),
    (
        "field of the wrong JSON type",
        r#"{"type": "load", "video_id": 42}"#,
        400,
        "invalid_json",
    ),
    (
        "field of the wrong JSON type",
        r#"{"type": "pause", "expected_version": "one"}"#,
        400,
        "invalid_json",
    ),
    ("body that is not an object", "[1, 2]", 400, "invalid_json"),
    (
        "body that is not an object",
        r#""play""#,
        400,
        "invalid_json",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_commands_answer_their_code_and_change_nothing() {
    let app = spawn_app(&[]).await;
    let (room, token) = app.video_room().await;
    for (rule, body, status, code) in REFUSALS {
        let body: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{rule}: {e}"));
        assert_refused(&app, &room, &token, body, *status, code).await;
    }
}

/// Bodies that are not (finite) JSON at all, sent as raw text: the rule, the body,
/// the code. JSON has no infinity; a number too large for a double is how one arrives.
const RAW_REFUSALS: &[(&str, &str, &str)] = &[
    (
        "non-finite position",
        r#"{"type": "seek", "position": 1e400}"#,
        "invalid_value",
    ),
    (
        "non-finite position",
        r#"{"type": "play", "position": -1e400}"#,
        "invalid_value",
    ),
    (
        "body that is not JSON",
        "{\"type\": \"play\"",
        "invalid_json",
    ),
    ("body that is not JSON", "play", "invalid_json"),
    ("body that is not JSON", "{type: play}", "invalid_json"),
    ("body that is not JSON", "", "invalid_json"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_that_are_not_finite_json_are_400_and_change_nothing() {
    let app = spawn_app(&[]).await;
    let (room, token) = app.video_room().await;
    let before = app.get_room(&room).await;
    for (rule, raw, code) in RAW_REFUSALS {
        let response = app
            .client
            .post(app.url(&format!("/api/rooms/{room}/commands")))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(*raw)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{rule}: {e}"));
        assert_error(response, 400, code).await;
    }
    assert_eq!(
        fingerprint(&app.get_room(&room).await),
        fingerprint(&before)
    );
}

// ---------------------------------------------------------------- expected_version

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_with_matching_expected_version_applies() {
    let app = spawn_app(&[]).await;
    let (room, token) = app.video_room().await;
    let answer = app
        .command_ok(
            &room,
            Some(&token),
            json!({"type": "play", "expected_version": 1}),
        )
        .await;
    assert_eq!(answer["version"], 2);
    assert_eq!(answer["room"]["state"]["paused"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_with_stale_expected_version_is_409_and_changes_nothing() {
    let app = spawn_app(&[]).await;
    let (room, token, mut listener) = listening_room(&app).await;
    app.command_ok(&room, Some(&token), json!({"type": "play"}))
        .await;
    listener.expect_versioned().await;
    for stale in [1, 3, 100] {
        assert_refused(
            &app,
            &room,
            &token,
            json!({"type": "seek", "position": 9.0, "expected_version": stale}),
            409,
            "version_conflict",
        )
        .await;
    }
    listener.expect_quiet(QUIET).await;
}

// ---------------------------------------------------------------- no-op commands

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_that_changes_nothing_emits_nothing_and_keeps_the_version() {
    let app = spawn_app(&[]).await;
    let (room, token, mut listener) = listening_room(&app).await;
    app.command_ok(
        &room,
        Some(&token),
        json!({"type": "pause", "position": 7.0}),
    )
    .await;
    assert_eq!(listener.expect_versioned().await.id_num(), 2);

    for no_op in [
        json!({"type": "pause", "position": 7.0}),
        json!({"type": "pause"}),
        json!({"type": "seek", "position": 7.0}),
        json!({"type": "rate", "rate": 1.0}),
        json!({"type": "control", "control": "host"}),
        json!({"type": "pause", "expected_version": 2}),
    ] {
        let answer = app.command_ok(&room, Some(&token), no_op.clone()).await;
        assert_eq!(answer["version"], 2, "{no_op} changed the version");
    }
    app.command_ok(&room, Some(&token), json!({"type": "play"}))
        .await;
    let answer = app
        .command_ok(&room, Some(&token), json!({"type": "play"}))
        .await;
    assert_eq!(
        answer["version"], 3,
        "playing a playing room changes nothing"
    );

    // The next event the listener sees is the play, right after version 2.
    let event = listener.expect_versioned().await;
    assert_eq!(event.id_num(), 3, "no event for the no-ops: {event:?}");
    assert_eq!(event.json()["cause"], "play");
    listener.expect_quiet(QUIET).await;
}

// ---------------------------------------------------------------- who may command

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_without_token_in_a_host_room_is_401_and_changes_nothing() {
    let app = spawn_app(&[]).await;
    let (room, _) = app.video_room().await;
    let before = app.get_room(&room).await;
    let response = app.command(&room, None, json!({"type": "play"})).await;
    assert_error(response, 401, "unauthorized").await;
    assert_eq!(
        fingerprint(&app.get_room(&room).await),
        fingerprint(&before)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_with_a_wrong_token_is_403_and_changes_nothing() {
    let app = spawn_app(&[]).await;
    let (room, token) = app.video_room().await;
    let (_, other_token) = app.video_room().await;
    let before = app.get_room(&room).await;
    let mangled = format!("{token}x");
    for wrong in ["wrong", other_token.as_str(), mangled.as_str()] {
        let response = app
            .command(&room, Some(wrong), json!({"type": "play"}))
            .await;
        assert_error(response, 403, "forbidden").await;
    }
    assert_eq!(
        fingerprint(&app.get_room(&room).await),
        fingerprint(&before)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_with_a_non_bearer_authorization_is_refused() {
    let app = spawn_app(&[]).await;
    let (room, token) = app.video_room().await;
    let response = app
        .client
        .post(app.url(&format!("/api/rooms/{room}/commands")))
        .header("authorization", format!("Basic {token}"))
        .json(&json!({"type": "play"}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    assert!(
        status == 401 || status == 403,
        "Basic auth is not the host token: {status}"
    );
    assert_eq!(app.get_room(&room).await["version"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_in_an_open_room_need_no_token() {
    let app = spawn_app(&[]).await;
    let (room, _, _) = app
        .create_room(json!({"control": "open", "video_id": VIDEO}))
        .await;
    let answer = app.command_ok(&room, None, json!({"type": "play"})).await;
    assert_eq!(answer["version"], 2);
    let answer = app
        .command_ok(&room, None, json!({"type": "seek", "position": 20.0}))
        .await;
    assert_eq!(answer["version"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_command_always_needs_the_host_token() {
    let app = spawn_app(&[]).await;
    let (room, token, _) = app.create_room(json!({"control": "open"})).await;
    let before = app.get_room(&room).await;
    assert_error(
        app.command(&room, None, json!({"type": "control", "control": "host"}))
            .await,
        401,
        "unauthorized",
    )
    .await;
    assert_error(
        app.command(
            &room,
            Some("guess"),
            json!({"type": "control", "control": "host"}),
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    assert_eq!(
        fingerprint(&app.get_room(&room).await),
        fingerprint(&before)
    );
    let answer = app
        .command_ok(
            &room,
            Some(&token),
            json!({"type": "control", "control": "host"}),
        )
        .await;
    assert_eq!(answer["room"]["control"], "host");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_to_a_missing_room_is_404_room_not_found() {
    let app = spawn_app(&[]).await;
    let response = app
        .command("ghost", Some("token"), json!({"type": "play"}))
        .await;
    assert_error(response, 404, "room_not_found").await;
    let response = app.command("bad%20id", None, json!({"type": "play"})).await;
    assert_error(response, 404, "room_not_found").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_answer_is_the_new_version_and_room() {
    let app = spawn_app(&[]).await;
    let (room, token) = app.video_room().await;
    let answer = app
        .command_ok(
            &room,
            Some(&token),
            json!({"type": "seek", "position": 3.0}),
        )
        .await;
    assert_eq!(answer["version"], 2);
    let snapshot = &answer["room"];
    assert_eq!(snapshot["room_id"], json!(room));
    assert_eq!(position(&snapshot["state"]), 3.0);
    assert!(snapshot.get("host_token").is_none());
    assert_eq!(
        fingerprint(snapshot),
        fingerprint(&app.get_room(&room).await)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_past_the_per_client_rate_are_429_with_retry_after_and_change_nothing() {
    let app = spawn_app(&["--commands-burst", "3", "--commands-per-minute", "1"]).await;
    // Creating the room is not a command (it has its own budget): three seeks are the burst.
    let (room, token) = app.video_room().await;
    for position in [1.0, 2.0, 3.0] {
        app.command_ok(
            &room,
            Some(&token),
            json!({"type": "seek", "position": position}),
        )
        .await;
    }
    let before = app.get_room(&room).await;
    let response = app
        .command(
            &room,
            Some(&token),
            json!({"type": "seek", "position": 4.0}),
        )
        .await;
    let headers = assert_error(response, 429, "rate_limited").await;
    assert!((1..=60).contains(&retry_after_secs(&headers)));
    assert_eq!(
        fingerprint(&app.get_room(&room).await),
        fingerprint(&before)
    );
}
