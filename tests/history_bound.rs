//! One address that fills every room it may create with full queues of long
//! titles and many moves cannot make the server's kept history grow without
//! bound: `syncroom_history_bytes` stays within rooms × `--history-bytes`, and
//! goes back to nothing when the rooms are gone.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tokio::time::Instant;

const ROOMS: usize = 3;
const HISTORY_BYTES: f64 = 16_384.0;
const MAX_QUEUE: usize = 500;
const MOVES: usize = 200;

/// The value of the unlabelled sample `name` in the metrics text.
async fn gauge(app: &TestApp, name: &str) -> f64 {
    let text = app.get("/metrics").await.text().await.expect("metrics");
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

/// A room's queue filled to `--max-queue` with 200-character titles, 100 at a time.
async fn fill(app: &TestApp, room: &str, host: &str) -> Vec<String> {
    for batch in 0..MAX_QUEUE / 100 {
        let items: Vec<Value> = (0..100)
            .map(|i| {
                let title = format!("{:0>200}", batch * 100 + i);
                json!({"video_id": "dQw4w9WgXcQ", "title": title, "duration": 200.0})
            })
            .collect();
        app.command_ok(
            room,
            Some(host),
            json!({"type": "queue_add", "items": items}),
        )
        .await;
    }
    let queue = app.get_room(room).await["queue"].clone();
    let ids: Vec<String> = queue
        .as_array()
        .expect("a queue")
        .iter()
        .map(|item| item["item_id"].as_str().expect("an item id").to_owned())
        .collect();
    assert_eq!(ids.len(), MAX_QUEUE, "the queue is full");
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_grow_the_kept_history_without_bound() {
    let app = spawn_app(&[
        "--max-rooms-per-client",
        "3",
        "--history-bytes",
        "16384",
        "--max-queue",
        "500",
        "--commands-per-minute",
        "1000000",
        "--commands-burst",
        "100000",
    ])
    .await;
    let mut rooms = Vec::new();
    for _ in 0..ROOMS {
        let (room, host, _) = app.create_room(json!({"video_id": "dQw4w9WgXcQ"})).await;
        rooms.push((room, host));
    }
    // Every room it may create is taken.
    let refused = app
        .client
        .post(app.url("/api/rooms"))
        .json(&json!({"video_id": "dQw4w9WgXcQ"}))
        .send()
        .await
        .expect("POST /api/rooms");
    assert_error(refused, 429, "rate_limited").await;

    for (room, host) in &rooms {
        let ids = fill(&app, room, host).await;
        for i in 0..MOVES {
            let item_id = &ids[(i * 7) % ids.len()];
            let index = (i * 13) % ids.len();
            app.command_ok(
                room,
                Some(host),
                json!({"type": "queue_move", "item_id": item_id, "index": index}),
            )
            .await;
        }
        let kept = gauge(&app, "syncroom_history_bytes").await;
        assert!(kept <= ROOMS as f64 * HISTORY_BYTES, "{kept} bytes kept");
    }
    let kept = gauge(&app, "syncroom_history_bytes").await;
    assert!(
        kept <= ROOMS as f64 * HISTORY_BYTES,
        "{kept} bytes kept by {ROOMS} rooms"
    );
    // The moves alone fill each ring: the bound is what holds it, not a lack of events.
    assert!(
        kept >= ROOMS as f64 * HISTORY_BYTES / 2.0,
        "{kept} bytes kept: the rings were meant to be full"
    );

    for (room, host) in &rooms {
        let response = app.delete_room(room, Some(host)).await;
        assert!(response.status().is_success(), "delete {room}");
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let kept = gauge(&app, "syncroom_history_bytes").await;
        if kept == 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{kept} bytes kept after the rooms went"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
