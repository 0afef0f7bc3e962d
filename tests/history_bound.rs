//! One address that fills every room it may create with full queues of long
//! titles and many moves cannot make the server's kept history grow without
//! bound: `syncroom_history_bytes` stays within rooms × `--history-bytes`, and
//! goes back to nothing when the rooms are gone. With `--redis`, what Redis
//! keeps of each room's events is held to the same bound. A resume from
//! beyond what is kept gets a snapshot; one from within it, the missed events.

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

/// The flags of every node here: three rooms per address, a small history bound.
const FLAGS: [&str; 10] = [
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
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_grow_the_kept_history_without_bound() {
    let app = spawn_app(&FLAGS).await;
    let rooms = fill_every_room(&app).await;
    resumes_past_the_bound_get_a_snapshot(&app, &rooms[0].0).await;
    delete_all(&app, &rooms).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_redis_what_redis_keeps_of_a_room_is_bounded_in_bytes_too() {
    let redis = Redis::start().await;
    let url = redis.url();
    let mut flags = vec!["--redis", url.as_str()];
    flags.extend_from_slice(&FLAGS);
    let app = ready(spawn_app(&flags).await).await;
    let rooms = fill_every_room(&app).await;
    let client = ::redis::Client::open(url.as_str()).expect("a Redis URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect to the test's redis-server");
    for (room, _) in &rooms {
        let key = format!("syncroom:{{{room}}}:events");
        // Each entry: its id, then its fields and values in turn (one field, `e`).
        let entries: Vec<(String, Vec<String>)> = ::redis::cmd("XRANGE")
            .arg(&key)
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .expect("XRANGE");
        let bytes: usize = entries
            .iter()
            .flat_map(|(_, fields)| fields.iter().skip(1).step_by(2).map(String::len))
            .sum();
        assert!(
            bytes as f64 <= HISTORY_BYTES,
            "{room}: Redis keeps {bytes} bytes"
        );
        assert!(
            bytes as f64 >= HISTORY_BYTES / 2.0,
            "{room}: {bytes} bytes: the history was meant to be full"
        );
        // The room's count of those bytes is exact.
        let counted: Option<usize> = ::redis::cmd("HGET")
            .arg(format!("syncroom:{{{room}}}:room"))
            .arg("hb")
            .query_async(&mut conn)
            .await
            .expect("HGET");
        assert_eq!(counted, Some(bytes), "{room}");
    }
    // A node that opens the room afterwards replays from what Redis kept.
    let late = ready(spawn_app(&flags).await).await;
    resumes_past_the_bound_get_a_snapshot(&late, &rooms[0].0).await;
    delete_all(&app, &rooms).await;
}

/// The node, once it answers `/readyz` (it has reached its Redis).
async fn ready(node: TestApp) -> TestApp {
    let deadline = Instant::now() + WAIT;
    while node.get("/readyz").await.status() != 200 {
        assert!(Instant::now() < deadline, "the node never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    node
}

/// A resume from the room's first events (long gone from the bounded history)
/// is a snapshot; one from the event before the last replays that one event.
async fn resumes_past_the_bound_get_a_snapshot(app: &TestApp, room: &str) {
    let version = app.get_room(room).await["version"]
        .as_u64()
        .expect("a version");
    let path = format!("/api/rooms/{room}/events");
    let mut early = app.events_at(&path, &[("Last-Event-ID", "2")]).await;
    early.expect_snapshot().await;
    let before_last = (version - 1).to_string();
    let mut recent = app
        .events_at(&path, &[("Last-Event-ID", before_last.as_str())])
        .await;
    let replayed = recent.expect_versioned().await;
    assert_eq!(replayed.event, "queue", "{replayed:?}");
    assert_eq!(replayed.id_num(), version);
}

/// Creates every room the address may, fills each and moves its items about;
/// the node's kept history stays within the bound all along.
async fn fill_every_room(app: &TestApp) -> Vec<(String, String)> {
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
        let ids = fill(app, room, host).await;
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
        let kept = gauge(app, "syncroom_history_bytes").await;
        assert!(kept <= ROOMS as f64 * HISTORY_BYTES, "{kept} bytes kept");
    }
    let kept = gauge(app, "syncroom_history_bytes").await;
    assert!(
        kept <= ROOMS as f64 * HISTORY_BYTES,
        "{kept} bytes kept by {ROOMS} rooms"
    );
    // The moves alone fill each ring: the bound is what holds it, not a lack of events.
    assert!(
        kept >= ROOMS as f64 * HISTORY_BYTES / 2.0,
        "{kept} bytes kept: the rings were meant to be full"
    );
    rooms
}

/// Deletes the rooms: the node's kept history goes back to nothing.
async fn delete_all(app: &TestApp, rooms: &[(String, String)]) {
    for (room, host) in rooms {
        let response = app.delete_room(room, Some(host)).await;
        assert!(response.status().is_success(), "delete {room}");
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let kept = gauge(app, "syncroom_history_bytes").await;
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
