//! Chat history: a room keeps its last `--chat-history`
//! chat messages and sends them with the snapshot, so a late joiner does not see
//! an empty chat. Against a real server on 127.0.0.1:0.

mod common;

use common::*;
use serde_json::{json, Value};

/// A server whose chat limit never gets in the way of these tests.
async fn app_keeping(history: &str) -> TestApp {
    spawn_app(&[
        "--chat-history",
        history,
        "--chat-burst",
        "1000",
        "--chat-per-minute",
        "60000",
    ])
    .await
}

async fn say(app: &TestApp, room: &str, n: usize) -> Vec<Value> {
    let mut events = Vec::new();
    let mut listener = app.events(room).await;
    listener.expect_snapshot().await;
    for i in 1..=n {
        let response = app
            .chat(room, json!({"name": "Ann", "text": format!("message {i}")}))
            .await;
        assert_eq!(response.status(), 200);
        loop {
            let event = listener.expect_versioned().await;
            if event.event == "chat" {
                events.push(event.json());
                break;
            }
        }
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiners_snapshot_carries_the_last_chat_messages_oldest_first() {
    let app = app_keeping("5").await;
    let (room, _, _) = app.create_room(json!({})).await;
    let sent = say(&app, &room, 3).await;
    let mut late = app.events(&room).await;
    let snapshot = late.expect_snapshot().await;
    // The same objects as the `chat` events, oldest first.
    assert_eq!(snapshot["chat"], Value::Array(sent.clone()));
    assert_eq!(app.get_room(&room).await["chat"], Value::Array(sent));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_history_keeps_at_most_n_messages() {
    let app = app_keeping("3").await;
    let (room, _, _) = app.create_room(json!({})).await;
    let sent = say(&app, &room, 7).await;
    let mut late = app.events(&room).await;
    let snapshot = late.expect_snapshot().await;
    assert_eq!(snapshot["chat"], Value::Array(sent[4..].to_vec()));
    let texts: Vec<&str> = snapshot["chat"]
        .as_array()
        .expect("chat array")
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(texts, ["message 5", "message 6", "message 7"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_history_zero_keeps_none() {
    let app = app_keeping("0").await;
    let (room, _, _) = app.create_room(json!({})).await;
    say(&app, &room, 2).await;
    let mut late = app.events(&room).await;
    assert_eq!(late.expect_snapshot().await["chat"], json!([]));
    assert_eq!(app.get_room(&room).await["chat"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_keeps_fifty_and_a_new_room_has_none() {
    let app = spawn_app(&[
        "--chat-burst",
        "1000",
        "--chat-per-minute",
        "60000",
        "--room-chat-burst",
        "1000",
        "--room-chat-per-minute",
        "60000",
    ])
    .await;
    let (room, _, created) = app.create_room(json!({})).await;
    assert_eq!(created["room"]["chat"], json!([]));
    let sent = say(&app, &room, 52).await;
    let kept = app.get_room(&room).await["chat"].clone();
    assert_eq!(kept, Value::Array(sent[2..].to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_stream_replays_chat_events_and_gets_no_snapshot() {
    let app = app_keeping("5").await;
    let (room, _, _) = app.create_room(json!({})).await;
    say(&app, &room, 2).await; // versions 2 and 3
    let mut resumed = app
        .events_at(
            &format!("/api/rooms/{room}/events"),
            &[("Last-Event-ID", "2")],
        )
        .await;
    let event = resumed.expect_versioned().await;
    assert_eq!((event.event.as_str(), event.id_num()), ("chat", 3));
}

#[test]
fn a_chat_history_past_its_bound_is_refused() {
    use clap::Parser;
    let parse = |n: &str| syncroom::Config::try_parse_from(["syncroom", "--chat-history", n]);
    assert_eq!(parse("1000").map(|c| c.chat_history).ok(), Some(1000));
    assert!(parse("1001").is_err());
    assert!(parse("-1").is_err());
}
