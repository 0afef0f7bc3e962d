//! `GET /api/rooms/{room_id}/events`: every Server-Sent Events rule of API.md.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use futures_util::{stream, StreamExt};
use reqwest::StatusCode;
use serde_json::json;
use tokio::time::Instant;

fn events_path(room: &str) -> String {
    format!("/api/rooms/{room}/events")
}

/// Sends seeks to 1.0, 2.0, … `n` as the host; gives the last version.
async fn seeks(app: &TestApp, room: &str, token: &str, n: u32) -> u64 {
    let mut version = 0;
    for i in 1..=n {
        let answer = app
            .command_ok(
                room,
                Some(token),
                json!({"type": "seek", "position": f64::from(i)}),
            )
            .await;
        version = answer["version"].as_u64().unwrap();
    }
    version
}

/// Sends `n` chat messages of ~2 KB each (500 four-byte characters), four at
/// a time, each answered `200`; gives the versions they created.
async fn flood_chats(app: &TestApp, room: &str, n: usize) -> Vec<u64> {
    let text = "\u{1D11E}".repeat(500);
    stream::iter(0..n)
        .map(|i| {
            let text = &text;
            async move {
                let response = app
                    .chat(room, json!({"name": format!("n{i}"), "text": text}))
                    .await;
                assert_eq!(response.status(), StatusCode::OK, "chat {i}");
                let body: serde_json::Value = response.json().await.unwrap();
                body["version"].as_u64().unwrap()
            }
        })
        .buffer_unordered(4)
        .collect()
        .await
}

// ---------------------------------------------------------------- opening a stream

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_stream_has_the_sse_headers() {
    let app = spawn_app(&[]).await;
    let (room, _) = app.video_room().await;
    let response = app.open_events(&events_path(&room), &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    let content_type = headers["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    assert_eq!(headers["cache-control"].to_str().unwrap(), "no-cache");
    assert_eq!(headers["x-accel-buffering"].to_str().unwrap(), "no");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_opens_with_a_retry_line_then_a_snapshot_whose_id_is_the_version() {
    let app = spawn_app(&["--retry-ms", "1000"]).await;
    let (room, token) = app.video_room().await;
    app.command_ok(
        &room,
        Some(&token),
        json!({"type": "play", "position": 3.0}),
    )
    .await;
    let mut listener = app.events(&room).await;
    match listener.next_item(WAIT).await {
        Some(SseItem::Retry(ms)) => {
            assert!(
                (1000..=2000).contains(&ms),
                "retry {ms} is base + up to base"
            )
        }
        other => panic!("the stream must open with `retry:`, got {other:?}"),
    }
    assert_hello(listener.next_item(WAIT).await);
    let event = listener.expect_event().await;
    assert_eq!(event.event, "snapshot");
    assert_eq!(event.id.as_deref(), Some("2"), "id is the room's version");
    let room_obj = event.json();
    assert_eq!(room_obj["room_id"], json!(room));
    assert_eq!(room_obj["version"], 2);
    assert_eq!(room_obj["state"]["paused"], false);
    assert_eq!(room_obj["state"]["video_id"], "dQw4w9WgXcQ");
    for field in ["name", "control", "queue", "listeners", "server_time"] {
        assert!(room_obj.get(field).is_some(), "snapshot has `{field}`");
    }
    assert!(
        room_obj.get("host_token").is_none(),
        "the token is never streamed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_line_is_jittered_per_connection() {
    let app = spawn_app(&["--retry-ms", "1000"]).await;
    let (room, _) = app.video_room().await;
    let mut seen = HashSet::new();
    for _ in 0..20 {
        let mut listener = app.events(&room).await;
        match listener.next_item(WAIT).await {
            Some(SseItem::Retry(ms)) => {
                assert!((1000..=2000).contains(&ms), "retry {ms}");
                seen.insert(ms);
            }
            other => panic!("expected `retry:`, got {other:?}"),
        }
    }
    assert!(
        seen.len() > 1,
        "20 connections all got retry {seen:?}: no jitter"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_carry_consecutive_ids_equal_to_their_version() {
    let app = spawn_app(&[]).await;
    let (room, token) = app.video_room().await;
    let mut listener = app.events(&room).await;
    let snapshot = listener.expect_snapshot().await;
    let mut expected = snapshot["version"].as_u64().unwrap() + 1;
    let bodies = [
        json!({"type": "play"}),
        json!({"type": "seek", "position": 10.0}),
        json!({"type": "rate", "rate": 1.5}),
        json!({"type": "pause", "position": 11.0}),
        json!({"type": "load", "video_id": "9bZkp7q19f0"}),
    ];
    for body in &bodies {
        app.command_ok(&room, Some(&token), body.clone()).await;
    }
    for body in &bodies {
        let event = listener.expect_versioned().await;
        assert_eq!(event.id_num(), expected, "after {body}: {event:?}");
        assert_eq!(event.json()["version"], json!(expected));
        assert_eq!(event.json()["cause"], body["type"]);
        expected += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_a_missing_room_are_404_room_not_found() {
    let app = spawn_app(&[]).await;
    assert_error(
        app.open_events(&events_path("ghost"), &[]).await,
        404,
        "room_not_found",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn display_name_up_to_64_characters_is_accepted_and_longer_is_400() {
    let app = spawn_app(&[]).await;
    let (room, _) = app.video_room().await;
    let ok = format!("{}?name={}", events_path(&room), "é".repeat(64));
    let mut listener = app.events_at(&ok, &[]).await;
    listener.expect_snapshot().await;
    let long = format!("{}?name={}", events_path(&room), "n".repeat(65));
    assert_error(app.open_events(&long, &[]).await, 400, "invalid_value").await;
}

/// Checks that `item` is a `hello` naming its stream as API.md says (32 hex
/// digits; a token that starts with them; a future expiry); gives its data.
fn assert_hello(item: Option<SseItem>) -> serde_json::Value {
    let Some(SseItem::Hello(hello)) = item else {
        panic!("expected the id-less `hello` right after `retry:`, got {item:?}");
    };
    let stream = hello["stream"].as_str().expect("`stream` is a string");
    assert_eq!(stream.len(), 32, "{hello}");
    assert!(stream.bytes().all(|b| b.is_ascii_hexdigit()), "{hello}");
    let token = hello["stream_token"]
        .as_str()
        .expect("`stream_token` is a string");
    assert!(token.starts_with(stream) && token.len() <= 128, "{hello}");
    let expires_at = hello["expires_at"].as_i64().expect("`expires_at` is ms");
    assert!(expires_at > unix_ms(), "{hello}");
    hello
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_connection_gets_its_own_stream_id_and_token() {
    let app = spawn_app(&["--max-stream-age", "60"]).await;
    let (room, _) = app.video_room().await;
    let mut streams = HashSet::new();
    for _ in 0..5 {
        let mut listener = app.events(&room).await;
        listener.expect_snapshot().await;
        let hello = listener
            .hello
            .clone()
            .expect("a `hello` before the snapshot");
        let expires_in = hello["expires_at"].as_i64().unwrap() - unix_ms();
        assert!(
            (55_000..=121_000).contains(&expires_in),
            "a token counts for --max-stream-age plus a minute: {expires_in} ms"
        );
        streams.insert(hello["stream"].as_str().unwrap().to_owned());
    }
    assert_eq!(streams.len(), 5, "five connections, five stream ids");
}

// ---------------------------------------------------------------- resume

async fn resume_replays_missed_events(app: &TestApp, headers: &[(&str, &str)], query: &str) {
    let (room, token) = app.video_room().await;
    let mut first = app.events(&room).await;
    let snapshot = first.expect_snapshot().await;
    assert_eq!(snapshot["version"], 1);
    let first_hello = first
        .hello
        .take()
        .expect("the first connection had a `hello`");
    drop(first);

    let last = seeks(app, &room, &token, 3).await;
    assert_eq!(last, 4);
    let mut again = app
        .events_at(&format!("{}{query}", events_path(&room)), headers)
        .await;
    assert!(
        matches!(again.next_item(WAIT).await, Some(SseItem::Retry(_))),
        "a resumed stream opens with `retry:` too"
    );
    let hello = assert_hello(again.next_item(WAIT).await);
    assert_ne!(
        Some(&hello["stream"]),
        first_hello.get("stream"),
        "a reconnect is a new stream"
    );
    for (id, position) in [(2, 1.0), (3, 2.0), (4, 3.0)] {
        let event = again.expect_versioned().await;
        assert_eq!(event.event, "state", "replayed, not a snapshot: {event:?}");
        assert_eq!(event.id_num(), id);
        assert_eq!(event.json()["state"]["position"].as_f64(), Some(position));
    }
    app.command_ok(&room, Some(&token), json!({"type": "play"}))
        .await;
    let event = again.expect_versioned().await;
    assert_eq!(event.id_num(), 5, "no gap and no repeat after the replay");
    assert_eq!(event.json()["cause"], "play");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_with_last_event_id_header_replays_missed_events_without_snapshot() {
    let app = spawn_app(&[]).await;
    resume_replays_missed_events(&app, &[("last-event-id", "1")], "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_with_last_event_id_query_replays_missed_events_without_snapshot() {
    let app = spawn_app(&[]).await;
    resume_replays_missed_events(&app, &[], "?last_event_id=1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_at_the_current_version_sends_nothing_until_the_next_event() {
    let app = spawn_app(&[]).await;
    let (room, token) = app.video_room().await;
    let last = seeks(&app, &room, &token, 3).await;
    let mut listener = app
        .events_at(&events_path(&room), &[("last-event-id", &last.to_string())])
        .await;
    listener.expect_quiet(QUIET).await;
    app.command_ok(&room, Some(&token), json!({"type": "play"}))
        .await;
    let event = listener.expect_versioned().await;
    assert_eq!(event.event, "state");
    assert_eq!(event.id_num(), last + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_within_history_replays_and_older_ids_fall_back_to_a_snapshot() {
    let app = spawn_app(&["--history", "4"]).await;
    let (room, token) = app.video_room().await;
    let last = seeks(&app, &room, &token, 10).await;
    assert_eq!(last, 11);

    // Two events back is still held.
    let mut recent = app
        .events_at(&events_path(&room), &[("last-event-id", "9")])
        .await;
    assert_eq!(recent.expect_versioned().await.id_num(), 10);
    assert_eq!(recent.expect_versioned().await.id_num(), 11);

    // Far older than four events back is not: a snapshot of the present.
    for old in ["1", "0"] {
        let mut stale = app
            .events_at(&events_path(&room), &[("last-event-id", old)])
            .await;
        let snapshot = stale.expect_snapshot().await;
        assert_eq!(snapshot["version"], 11, "last id {old}");
        assert_eq!(snapshot["state"]["position"].as_f64(), Some(10.0));
    }
    let mut stale_query = app
        .events_at(&format!("{}?last_event_id=2", events_path(&room)), &[])
        .await;
    assert_eq!(stale_query.expect_snapshot().await["version"], 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_or_future_last_event_id_falls_back_to_a_snapshot() {
    let app = spawn_app(&[]).await;
    let (room, token) = app.video_room().await;
    let last = seeks(&app, &room, &token, 2).await;
    for bad in [
        "abc",
        "-1",
        "1.5",
        "2abc",
        "99999999999999999999999",
        "1000",
        "",
    ] {
        let mut header = app
            .events_at(&events_path(&room), &[("last-event-id", bad)])
            .await;
        let snapshot = header.expect_snapshot().await;
        assert_eq!(snapshot["version"], json!(last), "header {bad:?}");

        let query = format!("{}?last_event_id={}", events_path(&room), bad);
        let mut by_query = app.events_at(&query, &[]).await;
        let snapshot = by_query.expect_snapshot().await;
        assert_eq!(snapshot["version"], json!(last), "query {bad:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_continue_consecutively_after_a_fallback_snapshot() {
    let app = spawn_app(&["--history", "4"]).await;
    let (room, token) = app.video_room().await;
    let last = seeks(&app, &room, &token, 8).await;
    let mut listener = app
        .events_at(&events_path(&room), &[("last-event-id", "1")])
        .await;
    assert_eq!(listener.expect_snapshot().await["version"], json!(last));
    seeks(&app, &room, &token, 2).await;
    assert_eq!(listener.expect_versioned().await.id_num(), last + 1);
    assert_eq!(listener.expect_versioned().await.id_num(), last + 2);
}

// ---------------------------------------------------------------- keepalive, age

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_stream_gets_keepalive_comments() {
    let app = spawn_app(&["--keepalive", "0.3"]).await;
    let (room, _) = app.video_room().await;
    let mut listener = app.events(&room).await;
    listener.expect_snapshot().await;
    let mut keepalives = 0;
    while keepalives < 2 {
        match listener.next_item(WAIT).await {
            Some(SseItem::Comment(text)) => {
                assert_eq!(text.trim(), "keepalive");
                keepalives += 1;
            }
            Some(SseItem::Event(e)) if e.event == "presence" => {}
            other => panic!("expected a keepalive comment, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_ends_after_its_maximum_age_and_resuming_loses_nothing() {
    let app = spawn_app(&["--max-stream-age", "1"]).await;
    let (room, token) = app.video_room().await;
    let opened = Instant::now();
    let mut listener = app.events(&room).await;
    listener.expect_snapshot().await;
    listener.expect_end().await;
    let age = opened.elapsed();
    assert!(
        age >= Duration::from_millis(800),
        "ended after {age:?}: jitter only takes up to 15% off 1 s"
    );
    let last_id = listener.last_event_id.clone();
    assert_eq!(last_id, "1");

    // Meanwhile the room moves on; the reconnecting client misses nothing.
    seeks(&app, &room, &token, 2).await;
    let mut again = app
        .events_at(&events_path(&room), &[("last-event-id", &last_id)])
        .await;
    assert_eq!(again.expect_versioned().await.id_num(), 2);
    assert_eq!(again.expect_versioned().await.id_num(), 3);
}

// ---------------------------------------------------------------- closing

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_sends_closed_to_every_listener_then_ends_the_stream() {
    let app = spawn_app(&[]).await;
    let (room, token) = app.video_room().await;
    let mut listeners = vec![app.events(&room).await, app.events(&room).await];
    for listener in &mut listeners {
        listener.expect_snapshot().await;
    }
    app.command_ok(&room, Some(&token), json!({"type": "play"}))
        .await;
    for listener in &mut listeners {
        assert_eq!(listener.expect_versioned().await.id_num(), 2);
    }
    assert_eq!(
        app.delete_room(&room, Some(&token)).await.status(),
        StatusCode::NO_CONTENT
    );
    for listener in &mut listeners {
        let closed = listener.expect_versioned().await;
        assert_eq!(closed.event, "closed");
        assert_eq!(closed.id_num(), 3, "closed carries the next id");
        let data = closed.json();
        assert_eq!(data["version"], 3);
        assert_eq!(data["reason"], "deleted");
        listener.expect_end().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_room_expires_after_the_ttl_and_is_then_404() {
    let app = spawn_app(&["--room-ttl", "1"]).await;
    let (room, _) = app.video_room().await;
    let deadline = Instant::now() + WAIT;
    loop {
        let response = app.get(&format!("/api/rooms/{room}")).await;
        if response.status() == StatusCode::NOT_FOUND {
            assert_error(response, 404, "room_not_found").await;
            break;
        }
        assert!(Instant::now() < deadline, "room never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_error(
        app.open_events(&events_path(&room), &[]).await,
        404,
        "room_not_found",
    )
    .await;
    assert!(app.list_rooms().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_with_a_listener_does_not_expire_and_expires_after_it_leaves() {
    let app = spawn_app(&["--room-ttl", "1"]).await;
    let (room, _) = app.video_room().await;
    let mut listener = app.events(&room).await;
    listener.expect_snapshot().await;
    // Three TTLs with a listener: the room stays and nothing closes it.
    listener.expect_quiet(Duration::from_secs(3)).await;
    assert_eq!(app.get_room(&room).await["version"], 1);
    drop(listener);
    let deadline = Instant::now() + WAIT;
    while app.get(&format!("/api/rooms/{room}")).await.status() != StatusCode::NOT_FOUND {
        assert!(
            Instant::now() < deadline,
            "room never expired after its listener left"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_receiving_commands_does_not_expire() {
    let app = spawn_app(&["--room-ttl", "2"]).await;
    let (room, token) = app.video_room().await;
    let until = Instant::now() + Duration::from_secs(4);
    let mut position = 0.0;
    while Instant::now() < until {
        position += 1.0;
        app.command_ok(
            &room,
            Some(&token),
            json!({"type": "seek", "position": position}),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        app.get_room(&room).await["state"]["position"].as_f64(),
        Some(position)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_shutdown_ends_every_open_stream() {
    let mut app = spawn_app(&[]).await;
    let (room, _) = app.video_room().await;
    let mut listeners = Vec::new();
    for _ in 0..3 {
        let mut listener = app.events(&room).await;
        listener.expect_snapshot().await;
        listeners.push(listener);
    }
    app.shutdown.cancel();
    for listener in &mut listeners {
        listener.expect_end().await;
    }
    let server = app.server.take().unwrap();
    let result = tokio::time::timeout(WAIT, server)
        .await
        .expect("run() returns once its streams have ended")
        .expect("server task did not panic");
    assert!(result.is_ok(), "run() ends cleanly: {result:?}");
}

// ---------------------------------------------------------------- many and slow listeners

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_listeners_all_receive_one_event() {
    let app = spawn_app(&[
        "--max-connections",
        "1000",
        "--max-streams-per-client",
        "1000",
    ])
    .await;
    let (room, token) = app.video_room().await;
    let listeners: Vec<SseStream> = stream::iter(0..200)
        .map(|_| async {
            let mut listener = app.events(&room).await;
            listener.expect_snapshot().await;
            listener
        })
        .buffer_unordered(50)
        .collect()
        .await;
    app.wait_listeners(&room, 200).await;
    let answer = app
        .command_ok(&room, Some(&token), json!({"type": "play"}))
        .await;
    let version = answer["version"].as_u64().unwrap();
    let received: Vec<(u64, String)> = stream::iter(listeners)
        .map(|mut listener| async move {
            let event = listener.expect_versioned().await;
            (
                event.id_num(),
                event.json()["cause"].as_str().unwrap().to_owned(),
            )
        })
        .buffer_unordered(200)
        .collect()
        .await;
    assert_eq!(received.len(), 200);
    for (id, cause) in received {
        assert_eq!(id, version);
        assert_eq!(cause, "play");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_past_max_connections_are_503_with_retry_after() {
    let app = spawn_app(&["--max-connections", "2"]).await;
    let (room, _) = app.video_room().await;
    let first = app.events(&room).await;
    let _second = app.events(&room).await;
    app.wait_listeners(&room, 2).await;
    let before = app.get_room(&room).await;

    let headers = assert_error(
        app.open_events(&events_path(&room), &[]).await,
        503,
        "unavailable",
    )
    .await;
    assert!(
        retry_after_secs(&headers) >= 1,
        "Retry-After tells when to come back"
    );
    let after = app.wait_listeners(&room, 2).await;
    assert_eq!(fingerprint(&after), fingerprint(&before));

    // Plain requests are not event streams and still work.
    assert_eq!(app.get("/api/time").await.status(), StatusCode::OK);

    // A freed slot can be taken again.
    drop(first);
    app.wait_listeners(&room, 1).await;
    let deadline = Instant::now() + WAIT;
    loop {
        let response = app.open_events(&events_path(&room), &[]).await;
        if response.status() == StatusCode::OK {
            let mut listener = SseStream::from_response(response);
            listener.expect_snapshot().await;
            break;
        }
        assert!(Instant::now() < deadline, "the freed slot never came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_stream_lowers_the_listener_count() {
    let app = spawn_app(&[]).await;
    let (room, _) = app.video_room().await;
    let a = app.events(&room).await;
    let b = app.events(&room).await;
    app.wait_listeners(&room, 2).await;
    drop(a);
    app.wait_listeners(&room, 1).await;
    drop(b);
    app.wait_listeners(&room, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_listener_is_resynchronized_with_a_snapshot_and_never_slows_the_room() {
    const CHATS: usize = 3000;
    let app = spawn_app(&[
        // The listener reads nothing for as long as the chats take; a keepalive
        // interval that long would let the kernel give up on it (TCP_USER_TIMEOUT).
        "--keepalive",
        "120",
        "--listener-buffer",
        "4",
        "--chat-burst",
        "10000",
        "--chat-per-minute",
        "60000",
        "--room-chat-burst",
        "10000",
        "--room-chat-per-minute",
        "60000",
    ])
    .await;
    let (room, _, _) = app
        .create_room(json!({"control": "open", "video_id": "dQw4w9WgXcQ"}))
        .await;
    // A listener that sends its request and then does not read at all.
    let slow = app.raw_events(&events_path(&room)).await;
    app.wait_listeners(&room, 1).await;

    // The room keeps answering while that listener reads nothing: ~6 MB in
    // all, far more than the socket buffers and the HTTP stack can hold for one
    // listener.
    let versions = flood_chats(&app, &room, CHATS).await;
    let last = *versions.iter().max().unwrap();
    assert_eq!(last, 1 + CHATS as u64);

    // Now read: the initial snapshot, some events, then a resync snapshot and
    // consecutive ids from it, up to the last version.
    let (status, _, mut listener) = slow.into_sse().await;
    assert_eq!(status, 200);
    let first = listener.expect_snapshot().await;
    let mut previous = first["version"].as_u64().unwrap();
    let mut resyncs = 0;
    let mut read = 0;
    while previous < last {
        let event = listener.expect_versioned().await;
        let id = event.id_num();
        read += 1;
        if event.event == "snapshot" {
            assert!(
                id > previous,
                "a resync snapshot jumps ahead: {previous} -> {id}"
            );
            let room_obj = event.json();
            assert_eq!(room_obj["version"], json!(id));
            assert_eq!(room_obj["room_id"], json!(room));
            resyncs += 1;
        } else {
            assert_eq!(event.event, "chat");
            assert_eq!(id, previous + 1, "ids are consecutive between snapshots");
        }
        previous = id;
    }
    eprintln!("slow listener: {read} events read, {resyncs} resync snapshots, last {last}");
    assert_eq!(previous, last);
    assert!(
        resyncs >= 1,
        "the slow listener was never resynchronized ({read} events read)"
    );
    assert!(
        read < CHATS,
        "a resynchronized listener skips what it missed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_past_the_per_client_limit_are_429_with_retry_after() {
    let app = spawn_app(&["--max-streams-per-client", "2"]).await;
    let (room, _) = app.video_room().await;
    let first = app.events(&room).await;
    let _second = app.events(&room).await;
    app.wait_listeners(&room, 2).await;
    let headers = assert_error(
        app.open_events(&events_path(&room), &[]).await,
        429,
        "rate_limited",
    )
    .await;
    assert!(retry_after_secs(&headers) >= 1);
    assert_eq!(app.wait_listeners(&room, 2).await["version"], 1);
    drop(first);
    app.wait_listeners(&room, 1).await;
    app.events(&room).await.expect_snapshot().await;
}

// ---------------------------------------------------------------- the two ways a stream is written

/// A stream on a fresh connection is written straight to the socket and ends
/// with the connection; one asked for on a connection that served a request
/// before goes through hyper, chunked. Both carry the same events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_on_fresh_and_reused_connections_carry_the_same_events() {
    let app = spawn_app(&[]).await;
    let (room, token) = app.video_room().await;
    let path = events_path(&room);
    let (status, fresh_headers, mut fresh) = app.raw_events(&path).await.into_sse().await;
    assert_eq!(status, 200);
    let (status, reused_headers, mut reused) =
        app.raw_events_after_a_request(&path).await.into_sse().await;
    assert_eq!(status, 200);

    assert_eq!(fresh_headers["connection"], "close");
    assert!(fresh_headers.get("transfer-encoding").is_none());
    assert_eq!(reused_headers["transfer-encoding"], "chunked");
    for headers in [&fresh_headers, &reused_headers] {
        assert!(headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        assert_eq!(headers["cache-control"], "no-cache");
        assert_eq!(headers["x-accel-buffering"], "no");
        assert!(headers.get("x-request-id").is_some());
    }

    let first = fresh.expect_snapshot().await;
    assert_eq!(
        fingerprint(&reused.expect_snapshot().await),
        fingerprint(&first)
    );
    let version = seeks(&app, &room, &token, 1).await;
    for stream in [&mut fresh, &mut reused] {
        let event = stream.expect_versioned().await;
        assert_eq!(event.event, "state");
        assert_eq!(event.id_num(), version);
        assert_eq!(event.json()["state"]["position"], json!(1.0));
    }
    app.wait_listeners(&room, 2).await;
}

/// Errors on the direct path are the same JSON answers, and end the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_refused_on_a_fresh_connection_gets_the_json_error() {
    let app = spawn_app(&[]).await;
    let mut socket = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    socket
        .write_all(b"GET /api/rooms/nosuchroom/events HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, socket.read_to_end(&mut answer))
        .await
        .expect("the connection ends after the answer")
        .unwrap();
    let answer = String::from_utf8(answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 404 Not Found\r\n"), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(
        head.contains(&format!("content-length: {}", body.len())),
        "{head}"
    );
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_error_shape(&body, "room_not_found");
}

/// A listener that reads nothing while its socket is full is let go after two
/// keepalive intervals: it stops counting, and the room goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_whose_socket_takes_nothing_is_dropped() {
    let app = spawn_app(&[
        "--keepalive",
        "1",
        "--chat-burst",
        "10000",
        "--chat-per-minute",
        "60000",
        "--room-chat-burst",
        "10000",
        "--room-chat-per-minute",
        "60000",
    ])
    .await;
    let (room, _, _) = app
        .create_room(json!({"control": "open", "video_id": "dQw4w9WgXcQ"}))
        .await;
    let stalled = app.raw_events(&events_path(&room)).await;
    app.wait_listeners(&room, 1).await;
    // 6 MB in all: more than the socket buffers hold (the kernel lets a send
    // buffer grow to 4 MB) for a client that reads nothing.
    flood_chats(&app, &room, 3000).await;
    // Soon after its socket filled (the kernel gives up on unacknowledged data
    // after one keepalive interval, the stall cut-off after two), it is let go.
    app.wait_listeners(&room, 0).await;
    // The room still serves a newcomer at once.
    let mut newcomer = app.events(&room).await;
    newcomer.expect_snapshot().await;
    drop(stalled);
}
