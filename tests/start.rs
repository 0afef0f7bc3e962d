//! Scheduled starts and the ready gate (docs/API.md, "Starting together"): a
//! real server, real event streams, readiness reports bound by stream tokens.

mod common;

use common::*;
use serde_json::{json, Value};

const LEAD: i64 = 300;

/// The next `state` event's data, skipping presence and gate progress.
async fn next_state(stream: &mut SseStream) -> Value {
    loop {
        let event = stream.expect_event().await;
        match event.event.as_str() {
            "presence" | "gate" | "queue" => continue,
            "state" => return event.json(),
            other => panic!("expected a state event, got {other}: {event:?}"),
        }
    }
}

fn load_media() -> Value {
    json!({"type": "load", "media_url": "/media/tone.wav", "duration": 30.0})
}

#[tokio::test]
async fn a_play_is_a_pending_start_a_lead_ahead_then_the_start_itself() {
    let app = spawn_app(&["--start-lead-ms", "300"]).await;
    let (room, token) = app.video_room().await;
    let mut listener = app.events(&room).await;
    listener.expect_snapshot().await;
    app.command_ok(&room, Some(&token), json!({"type": "play"}))
        .await;
    let pending = next_state(&mut listener).await;
    assert_eq!(pending["cause"], "play");
    let state = &pending["state"];
    // Old clients see a paused room at the start position; updated_at is now.
    assert_eq!(state["paused"], true);
    assert_eq!(state["position"], 0.0);
    let updated_at = state["updated_at"].as_i64().unwrap();
    assert_eq!(state["starts_at"].as_i64(), Some(updated_at + LEAD));
    assert!(updated_at <= pending["server_time"].as_i64().unwrap());
    let started = next_state(&mut listener).await;
    assert_eq!(started["cause"], "start");
    assert_eq!(started["state"]["paused"], false);
    assert_eq!(started["state"]["starts_at"], Value::Null);
    assert_eq!(
        started["state"]["updated_at"].as_i64(),
        Some(updated_at + LEAD)
    );
    assert!(started["server_time"].as_i64().unwrap() >= updated_at + LEAD);
    // Playing already: play again changes nothing.
    let again = app
        .command_ok(&room, Some(&token), json!({"type": "play"}))
        .await;
    assert_eq!(again["version"], started["version"]);
}

#[tokio::test]
async fn starts_at_must_be_near_the_server_clock_and_mistakes_change_nothing() {
    let app = spawn_app(&[]).await;
    let (room, token) = app.video_room().await;
    let before = app.get_room(&room).await;
    let now = unix_ms();
    for (body, code) in [
        (
            json!({"type": "play", "starts_at": now - 60_000}),
            "invalid_value",
        ),
        (
            json!({"type": "play", "starts_at": now + 600_000}),
            "invalid_value",
        ),
        (json!({"type": "play", "starts_at": "soon"}), "invalid_json"),
        (json!({"type": "play", "starts_at": -5}), "invalid_json"),
        (
            json!({"type": "load", "video_id": "9bZkp7q19f0", "paused": true, "starts_at": now + 1000}),
            "invalid_value",
        ),
    ] {
        let response = app.command(&room, Some(&token), body.clone()).await;
        assert_error(response, 400, code).await;
    }
    assert_eq!(
        fingerprint(&app.get_room(&room).await),
        fingerprint(&before)
    );
    // A start a little way off is kept as given.
    let at = unix_ms() + 5_000;
    let answer = app
        .command_ok(
            &room,
            Some(&token),
            json!({"type": "play", "starts_at": at}),
        )
        .await;
    assert_eq!(answer["room"]["state"]["starts_at"].as_i64(), Some(at));
}

#[tokio::test]
async fn a_future_start_survives_a_reconnect_in_the_replay_and_the_snapshot() {
    let app = spawn_app(&[]).await;
    let (room, token) = app.video_room().await;
    let at = unix_ms() + 20_000;
    let answer = app
        .command_ok(
            &room,
            Some(&token),
            json!({"type": "play", "starts_at": at}),
        )
        .await;
    let version = answer["version"].as_u64().unwrap();
    let last_seen = (version - 1).to_string();
    let mut resumed = app
        .events_at(
            &format!("/api/rooms/{room}/events"),
            &[("last-event-id", &last_seen)],
        )
        .await;
    let replayed = next_state(&mut resumed).await;
    assert_eq!(replayed["state"]["starts_at"].as_i64(), Some(at));
    let mut fresh = app.events(&room).await;
    let snapshot = fresh.expect_snapshot().await;
    assert_eq!(snapshot["state"]["starts_at"].as_i64(), Some(at));
    assert_eq!(snapshot["state"]["paused"], true);
}

#[tokio::test]
async fn the_gate_waits_for_its_quorum_of_taking_part_pages_and_reports_need_a_live_stream() {
    let app = spawn_app(STRICT_GATE).await;
    let (room, token) = app.video_room().await;
    let (other_room, _) = app.video_room().await;
    let (mut a, a_token) = app.gate_listener(&room).await;
    let (_b, b_token) = app.gate_listener(&room).await;
    let (_elsewhere, other_token) = app.gate_listener(&other_room).await;
    // A listener that does not take part (curl, a bot) is not waited for.
    let _plain = app.events(&room).await;
    app.wait_listeners(&room, 3).await;
    app.command_ok(&room, Some(&token), load_media()).await;
    let loaded = next_state(&mut a).await;
    let gate = loaded["state"]["ready_gate"].as_u64().expect("a gate");
    assert_eq!(gate, loaded["version"].as_u64().unwrap());
    let updated_at = loaded["state"]["updated_at"].as_i64().unwrap();
    assert_eq!(
        loaded["state"]["starts_at"].as_i64(),
        Some(updated_at + 30_000 + LEAD)
    );

    // Reports bound to no stream of this room change nothing.
    assert_error(app.ready(&room, "", gate).await, 401, "unauthorized").await;
    assert_error(app.ready(&room, "garbage", gate).await, 403, "forbidden").await;
    assert_error(app.ready(&room, &other_token, gate).await, 403, "forbidden").await;
    let stale = app.ready(&room, &a_token, gate - 1).await;
    assert_eq!(stale.status(), 200);
    assert_eq!(stale.json::<Value>().await.unwrap()["counted"], false);

    let first: Value = app.ready(&room, &a_token, gate).await.json().await.unwrap();
    assert_eq!(
        (
            first["counted"].clone(),
            first["ready"].clone(),
            first["listeners"].clone()
        ),
        (json!(true), json!(1), json!(2))
    );
    // The same stream twice is one page.
    let twice: Value = app.ready(&room, &a_token, gate).await.json().await.unwrap();
    assert_eq!(twice["ready"], 1);
    assert_eq!(app.get_room(&room).await["state"]["ready_gate"], gate);

    app.ready(&room, &b_token, gate).await;
    let ready = next_state(&mut a).await;
    assert_eq!(ready["cause"], "ready");
    assert_eq!(ready["state"]["ready_gate"], Value::Null);
    let starts_at = ready["state"]["starts_at"].as_i64().unwrap();
    assert_eq!(starts_at, ready["server_time"].as_i64().unwrap() + LEAD);
    let started = next_state(&mut a).await;
    assert_eq!(started["cause"], "start");
    assert_eq!(started["state"]["updated_at"].as_i64(), Some(starts_at));
}

#[tokio::test]
async fn a_page_that_never_reports_does_not_hold_the_room_past_the_deadline() {
    let app = spawn_app(&["--start-lead-ms", "300", "--gate-deadline-ms", "1000"]).await;
    let (room, token) = app.video_room().await;
    let (mut silent, _token) = app.gate_listener(&room).await;
    app.wait_listeners(&room, 1).await;
    app.command_ok(&room, Some(&token), load_media()).await;
    let loaded = next_state(&mut silent).await;
    let updated_at = loaded["state"]["updated_at"].as_i64().unwrap();
    assert!(loaded["state"]["ready_gate"].is_u64());
    let started = next_state(&mut silent).await;
    assert_eq!(started["cause"], "start");
    assert_eq!(
        started["state"]["updated_at"].as_i64(),
        Some(updated_at + 1_000 + LEAD)
    );
}

#[tokio::test]
async fn without_taking_part_pages_a_load_starts_a_lead_ahead_with_no_gate() {
    let app = spawn_app(&["--start-lead-ms", "300"]).await;
    let (room, token) = app.video_room().await;
    let mut plain = app.events(&room).await;
    plain.expect_snapshot().await;
    let answer = app.command_ok(&room, Some(&token), load_media()).await;
    let state = &answer["room"]["state"];
    assert_eq!(state["ready_gate"], Value::Null);
    assert_eq!(
        state["starts_at"].as_i64(),
        Some(state["updated_at"].as_i64().unwrap() + LEAD)
    );
}

#[tokio::test]
async fn the_host_sets_the_rooms_gate_and_nobody_else_may() {
    let app = spawn_app(&[]).await;
    let (room, token) = app.video_room().await;
    assert_eq!(
        app.get_room(&room).await["ready_gate"],
        json!({"quorum": 80, "deadline_ms": 3000})
    );
    let mut listener = app.events(&room).await;
    listener.expect_snapshot().await;
    let gate = json!({"type": "ready_gate", "quorum": 50, "deadline_ms": 1500});
    assert_error(
        app.command(&room, None, gate.clone()).await,
        401,
        "unauthorized",
    )
    .await;
    for (quorum, deadline_ms) in [(101, 1000), (50, 30_001)] {
        let bad = json!({"type": "ready_gate", "quorum": quorum, "deadline_ms": deadline_ms});
        assert_error(
            app.command(&room, Some(&token), bad).await,
            400,
            "invalid_value",
        )
        .await;
    }
    app.command_ok(&room, Some(&token), gate).await;
    let event = listener.expect_versioned().await;
    assert_eq!(event.event, "ready_gate");
    assert_eq!(
        event.json()["ready_gate"],
        json!({"quorum": 50, "deadline_ms": 1500})
    );
    assert_eq!(app.get_room(&room).await["ready_gate"]["deadline_ms"], 1500);
}
