//! Listener-reported durations: a sync report's `duration` sets the room's
//! unknown duration once more than half of the reporting streams agree on it
//! (docs/API.md "Sync health"), with one `state` event, cause `duration`.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// Opens a stream of `room` on `app` and gives it with its token (from `hello`).
async fn listen(app: &TestApp, room: &str) -> (SseStream, String) {
    let mut stream = app.events(room).await;
    loop {
        match stream.next_item(WAIT).await {
            Some(SseItem::Hello(hello)) => {
                let token = hello["stream_token"].as_str().expect("a token").to_owned();
                stream.expect_snapshot().await;
                return (stream, token);
            }
            Some(_) => continue,
            None => panic!("the stream ended before its hello"),
        }
    }
}

async fn report_duration(app: &TestApp, room: &str, token: &str, duration: f64) {
    let body = json!({
        "stream_token": token, "drift_p50_ms": 1.0, "drift_p95_ms": 2.0,
        "player": "youtube", "duration": duration,
    });
    let response = app
        .client
        .post(app.url(&format!("/api/rooms/{room}/sync")))
        .json(&body)
        .send()
        .await
        .expect("sync request");
    assert_eq!(response.status(), 200, "report {body} refused");
}

/// The next `state` event of `stream`, skipping presence, gate and sync events.
async fn next_state(stream: &mut SseStream) -> Value {
    loop {
        let event = stream.expect_versioned().await;
        if event.event != "sync" {
            assert_eq!(event.event, "state", "{event:?}");
            return event.json();
        }
    }
}

/// Asserts no `state` event arrives on `stream` within `window`.
async fn no_state_within(stream: &mut SseStream, window: Duration) {
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(item) = stream.next_item_until(deadline).await {
        match item {
            Some(SseItem::Event(e)) => assert_ne!(e.event, "state", "unexpected {e:?}"),
            Some(_) => {}
            None => panic!("the stream ended while it should stay quiet"),
        }
    }
}

/// A room (on `apps[0]`) with a video loaded and no known duration.
async fn unknown_duration_room(app: &TestApp) -> String {
    let (room, _) = app.video_room().await;
    assert_eq!(app.get_room(&room).await["state"]["duration"], Value::Null);
    room
}

async fn one_stream_is_enough(apps: &[TestApp]) {
    let room = unknown_duration_room(&apps[0]).await;
    let app = &apps[apps.len() - 1];
    let (mut stream, token) = listen(app, &room).await;
    report_duration(app, &room, &token, 212.4).await;
    let state = next_state(&mut stream).await;
    assert_eq!(state["cause"], "duration", "{state}");
    assert_eq!(state["state"]["duration"], 212.4, "{state}");
    for app in apps {
        assert_eq!(app.get_room(&room).await["state"]["duration"], 212.4);
    }
    // Known now: a later report changes nothing.
    tokio::time::sleep(Duration::from_millis(2_600)).await;
    report_duration(app, &room, &token, 300.0).await;
    no_state_within(&mut stream, Duration::from_millis(700)).await;
    assert_eq!(app.get_room(&room).await["state"]["duration"], 212.4);
}

async fn a_majority_is_needed(apps: &[TestApp]) {
    let (room, host, _) = apps[0]
        .create_room(json!({"video_id": "dQw4w9WgXcQ"}))
        .await;
    let load =
        |duration: Value| json!({"type": "load", "video_id": "dQw4w9WgXcQ", "duration": duration});
    apps[0]
        .command_ok(&room, Some(&host), load(json!(50.0)))
        .await;
    let mut listeners = Vec::new();
    for i in 0..3 {
        let (stream, token) = listen(&apps[i % apps.len()], &room).await;
        listeners.push((&apps[i % apps.len()], stream, token));
    }
    // Reports of the loaded video while its duration is known: kept, not taken.
    report_duration(listeners[0].0, &room, &listeners[0].2, 100.0).await;
    report_duration(listeners[1].0, &room, &listeners[1].2, 200.0).await;
    // The same video again, its duration unknown: one of two agreeing is no majority.
    apps[0]
        .command_ok(&room, Some(&host), load(Value::Null))
        .await;
    let (app, stream, token) = &mut listeners[0];
    assert_eq!(next_state(stream).await["cause"], "load");
    tokio::time::sleep(Duration::from_millis(2_600)).await;
    report_duration(app, &room, token, 100.0).await;
    no_state_within(stream, Duration::from_millis(700)).await;
    assert_eq!(app.get_room(&room).await["state"]["duration"], Value::Null);
    // A third stream agrees with the second: two of three within 0.5 s.
    let (app, stream, token) = &mut listeners[2];
    assert_eq!(next_state(stream).await["cause"], "load");
    report_duration(app, &room, token, 200.3).await;
    let state = next_state(stream).await;
    assert_eq!(state["cause"], "duration", "{state}");
    let duration = state["state"]["duration"].as_f64().expect("a duration");
    assert!((200.0..=200.3).contains(&duration), "{state}");
}

async fn known_duration_is_never_overwritten(apps: &[TestApp]) {
    let (room, host, _) = apps[0]
        .create_room(json!({"video_id": "dQw4w9WgXcQ"}))
        .await;
    apps[0]
        .command_ok(
            &room,
            Some(&host),
            json!({"type": "duration", "duration": 50.0}),
        )
        .await;
    let app = &apps[apps.len() - 1];
    let (mut stream, token) = listen(app, &room).await;
    report_duration(app, &room, &token, 99.0).await;
    no_state_within(&mut stream, Duration::from_millis(700)).await;
    assert_eq!(app.get_room(&room).await["state"]["duration"], 50.0);
}

#[tokio::test]
async fn one_reporting_stream_sets_an_unknown_duration() {
    one_stream_is_enough(&[spawn_app(&[]).await]).await;
}

#[tokio::test]
async fn reports_that_disagree_wait_for_a_majority() {
    a_majority_is_needed(&[spawn_app(&[]).await]).await;
}

#[tokio::test]
async fn a_known_duration_is_never_overwritten_by_reports() {
    known_duration_is_never_overwritten(&[spawn_app(&[]).await]).await;
}

/// Three nodes sharing one `redis-server` started for the test.
async fn three_nodes(redis: &Redis) -> Vec<TestApp> {
    let url = redis.url();
    let mut nodes = Vec::new();
    for _ in 0..3 {
        let node = spawn_app(&["--redis", url.as_str()]).await;
        let deadline = tokio::time::Instant::now() + WAIT;
        while node.get("/readyz").await.status() != 200 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "node never became ready"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        nodes.push(node);
    }
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reported_durations_over_three_nodes() {
    let redis = Redis::start().await;
    let nodes = three_nodes(&redis).await;
    one_stream_is_enough(&nodes).await;
    a_majority_is_needed(&nodes).await;
    known_duration_is_never_overwritten(&nodes).await;
}
