//! A room that runs itself: a host room whose queued items have durations
//! plays all of them with no page at the controls, then pauses at the end,
//! on one node and on three nodes sharing a real `redis-server`.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tokio::time::Instant;

/// Three one-second items, added at once by "Ann".
fn three_items() -> Value {
    json!({"type": "queue_add", "name": "Ann", "items": [
        {"video_id": "aaaaaaaaaaa", "title": "One", "duration": 1},
        {"video_id": "bbbbbbbbbbb", "title": "Two", "duration": 1},
        {"media_url": "https://a.example/c.mp3", "title": "Three", "duration": 1},
    ]})
}

/// The host queues three items and presses `next` once (through the nodes in
/// turn); a plain listener on the last node, which never sends anything,
/// sees the room play them in order and pause at the end of the last.
async fn plays_through(nodes: &[TestApp]) {
    let (room, token, _) = nodes[0].create_room(json!({})).await;
    let last = &nodes[nodes.len() - 1];
    let mut stream = last.events(&room).await;
    stream.expect_snapshot().await;
    let added = nodes[1 % nodes.len()]
        .command_ok(&room, Some(&token), three_items())
        .await;
    assert_eq!(added["version"], 2, "one version for three items");
    let queue = stream.expect_versioned().await;
    assert_eq!(queue.event, "queue");
    let queue = queue.json();
    assert_eq!(queue["op"], "add");
    assert_eq!(queue["items"].as_array().map(Vec::len), Some(3));
    assert_eq!(queue["items"][1]["added_by"], "Ann");
    nodes[2 % nodes.len()]
        .command_ok(&room, Some(&token), json!({"type": "next"}))
        .await;
    let deadline = Instant::now() + WAIT;
    let mut played = Vec::new();
    loop {
        let event = stream.expect_versioned().await;
        let data = event.json();
        if event.event == "state" && data["cause"] == "next" {
            assert_eq!(data["state"]["duration"], 1.0, "{data}");
            played.push(data["state"]["title"].as_str().unwrap_or("?").to_owned());
        }
        if event.event == "state" && data["cause"] == "ended" {
            assert_eq!(data["state"]["paused"], true);
            assert_eq!(data["state"]["position"], 1.0);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the queue never played out: {played:?}"
        );
    }
    assert_eq!(played, ["One", "Two", "Three"]);
    stream.expect_quiet(QUIET).await;
    for node in nodes {
        let seen = node.get_room(&room).await;
        assert_eq!(seen["queue"], json!([]));
        assert_eq!(seen["state"]["title"], "Three");
        assert_eq!(seen["state"]["paused"], true);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_room_plays_its_queue_through_by_itself() {
    let app = spawn_app(&[]).await;
    plays_through(std::slice::from_ref(&app)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_room_plays_its_queue_through_by_itself_over_three_nodes() {
    let redis = Redis::start().await;
    let url = redis.url();
    let mut nodes = Vec::new();
    for _ in 0..3 {
        let node = spawn_app(&["--redis", url.as_str()]).await;
        let deadline = Instant::now() + WAIT;
        while node.get("/readyz").await.status() != 200 {
            assert!(Instant::now() < deadline, "node never became ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        nodes.push(node);
    }
    plays_through(&nodes).await;
}

/// What `queue_add` refuses over HTTP, and how it says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_add_refusals_over_http() {
    let app = spawn_app(&[]).await;
    let (room, token, _) = app.create_room(json!({})).await;
    let cases = [
        (
            json!({"type": "queue_add", "items": [{"video_id": "aaaaaaaaaaa"}, {"video_id": "nope"}]}),
            "invalid_value",
            "items[1]: ",
        ),
        (
            json!({"type": "queue_add", "playlist_id": "PLx"}),
            "invalid_command",
            "--youtube-api-key",
        ),
        (
            json!({"type": "queue_add", "items": [{"video_id": "aaaaaaaaaaa"}], "title": "x"}),
            "invalid_value",
            "cannot be combined",
        ),
        (
            json!({"type": "queue_mode", "queue_mode": "random"}),
            "invalid_value",
            "queue_mode",
        ),
    ];
    for (body, code, message) in cases {
        let answer = app.command(&room, Some(&token), body.clone()).await;
        let status = answer.status().as_u16();
        let error: Value = answer.json().await.expect("json");
        assert_eq!(status, 400, "{body}: {error}");
        assert_eq!(error["error"]["code"], code, "{body}: {error}");
        let text = error["error"]["message"].as_str().unwrap_or_default();
        assert!(text.contains(message), "{body}: {error}");
    }
    assert_eq!(app.get_room(&room).await["version"], 1, "nothing changed");
    let mode = app
        .command_ok(
            &room,
            Some(&token),
            json!({"type": "queue_mode", "queue_mode": "shuffle"}),
        )
        .await;
    assert_eq!(mode["room"]["queue_mode"], "shuffle");
}
