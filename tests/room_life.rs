//! Room life: the queue, `duration` and auto-advance, presence, chat
//! and the control hand-off.

mod common;

use std::time::Duration;

use common::*;
use futures_util::{stream, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::time::Instant;

const VIDEO: &str = "dQw4w9WgXcQ";
const A: &str = "AAAAAAAAAAA";
const B: &str = "BBBBBBBBBBB";
const C: &str = "CCCCCCCCCCC";

async fn listening_room(app: &TestApp) -> (String, String, SseStream) {
    let (room, token) = app.video_room().await;
    let mut listener = app.events(&room).await;
    listener.expect_snapshot().await;
    (room, token, listener)
}

fn queue_videos(queue: &Value) -> Vec<String> {
    queue
        .as_array()
        .expect("queue array")
        .iter()
        .map(|item| item["video_id"].as_str().unwrap().to_owned())
        .collect()
}

fn item_id(queue: &Value, video: &str) -> String {
    queue
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["video_id"] == video)
        .unwrap_or_else(|| panic!("{video} in {queue}"))["item_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Adds `videos` to the queue as the host; gives the queue after the last add.
async fn enqueue(app: &TestApp, room: &str, token: &str, videos: &[&str]) -> Value {
    let mut queue = Value::Null;
    for video in videos {
        let answer = app
            .command_ok(
                room,
                Some(token),
                json!({"type": "queue_add", "video_id": video}),
            )
            .await;
        queue = answer["room"]["queue"].clone();
    }
    queue
}

async fn assert_refused(
    app: &TestApp,
    room: &str,
    token: Option<&str>,
    body: Value,
    status: u16,
    code: &str,
) {
    let before = app.get_room(room).await;
    let response = app.command(room, token, body.clone()).await;
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

// ---------------------------------------------------------------- queue

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_add_appends_and_emits_a_queue_event() {
    let app = spawn_app(&[]).await;
    let (room, token, mut listener) = listening_room(&app).await;
    let first = app
        .command_ok(
            &room,
            Some(&token),
            json!({"type": "queue_add", "video_id": A, "title": "First song"}),
        )
        .await;
    let second = app
        .command_ok(
            &room,
            Some(&token),
            json!({"type": "queue_add", "video_id": B}),
        )
        .await;
    assert_eq!(first["version"], 2);
    assert_eq!(second["version"], 3);

    let event = listener.expect_versioned().await;
    assert_eq!(event.event, "queue");
    assert_eq!(event.id_num(), 2);
    let data = event.json();
    assert_eq!(data["version"], 2);
    assert!(data["server_time"].is_i64());
    assert_eq!(data["op"], "add", "{data}");
    assert_eq!(queue_videos(&data["items"]), [A]);
    assert_eq!(data["items"][0]["title"], "First song");

    let event = listener.expect_versioned().await;
    assert_eq!(event.event, "queue");
    assert_eq!(event.id_num(), 3);
    assert_eq!(
        queue_videos(&event.json()["items"]),
        [B],
        "only what was added"
    );
    let room_now = app.get_room(&room).await;
    let queue = &room_now["queue"];
    assert_eq!(queue_videos(queue), [A, B], "appended in play order");
    assert_eq!(queue[1]["title"], Value::Null, "no title is null");
    let ids: Vec<&str> = queue
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["item_id"].as_str().unwrap())
        .collect();
    assert!(
        !ids[0].is_empty() && ids[0] != ids[1],
        "item ids are unique: {ids:?}"
    );
    assert_eq!(queue[1]["added_by"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_video_queued_twice_gets_two_item_ids() {
    let app = spawn_app(&[]).await;
    let (room, token) = app.video_room().await;
    let queue = enqueue(&app, &room, &token, &[A, A]).await;
    assert_ne!(queue[0]["item_id"], queue[1]["item_id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_move_reorders_and_item_ids_stay_stable() {
    let app = spawn_app(&[]).await;
    let (room, token, mut listener) = listening_room(&app).await;
    let queue = enqueue(&app, &room, &token, &[A, B, C]).await;
    let (a, b, c) = (item_id(&queue, A), item_id(&queue, B), item_id(&queue, C));
    for _ in 0..3 {
        listener.expect_versioned().await;
    }

    let answer = app
        .command_ok(
            &room,
            Some(&token),
            json!({"type": "queue_move", "item_id": c, "index": 0}),
        )
        .await;
    assert_eq!(queue_videos(&answer["room"]["queue"]), [C, A, B]);
    let event = listener.expect_versioned().await;
    assert_eq!(event.event, "queue");
    assert_eq!(event.json()["op"], "move", "only the move: {}", event.data);
    assert_eq!(event.json()["item_id"], c);
    assert_eq!(event.json()["index"], 0);

    let answer = app
        .command_ok(
            &room,
            Some(&token),
            json!({"type": "queue_move", "item_id": a, "index": 2}),
        )
        .await;
    let queue = &answer["room"]["queue"];
    assert_eq!(queue_videos(queue), [C, B, A]);
    assert_eq!(item_id(queue, A), a);
    assert_eq!(item_id(queue, B), b);
    assert_eq!(item_id(queue, C), c);

    let answer = app
        .command_ok(
            &room,
            Some(&token),
            json!({"type": "queue_move", "item_id": b, "index": 0}),
        )
        .await;
    assert_eq!(queue_videos(&answer["room"]["queue"]), [B, C, A]);
    assert_eq!(queue_videos(&app.get_room(&room).await["queue"]), [B, C, A]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_remove_drops_one_item() {
    let app = spawn_app(&[]).await;
    let (room, token, mut listener) = listening_room(&app).await;
    let queue = enqueue(&app, &room, &token, &[A, B, C]).await;
    for _ in 0..3 {
        listener.expect_versioned().await;
    }
    let answer = app
        .command_ok(
            &room,
            Some(&token),
            json!({"type": "queue_remove", "item_id": item_id(&queue, B)}),
        )
        .await;
    assert_eq!(queue_videos(&answer["room"]["queue"]), [A, C]);
    let event = listener.expect_versioned().await;
    assert_eq!(event.event, "queue");
    assert_eq!(event.id_num(), 5);
    assert_eq!(event.json()["op"], "remove");
    assert_eq!(event.json()["item_ids"].as_array().map(Vec::len), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_remove_or_move_of_an_unknown_item_is_400_and_changes_nothing() {
    let app = spawn_app(&[]).await;
    let (room, token) = app.video_room().await;
    let queue = enqueue(&app, &room, &token, &[A]).await;
    assert_refused(
        &app,
        &room,
        Some(&token),
        json!({"type": "queue_remove", "item_id": "nope"}),
        400,
        "invalid_value",
    )
    .await;
    assert_refused(
        &app,
        &room,
        Some(&token),
        json!({"type": "queue_move", "item_id": "nope", "index": 0}),
        400,
        "invalid_value",
    )
    .await;
    // A removed item is unknown from then on.
    let id = item_id(&queue, A);
    app.command_ok(
        &room,
        Some(&token),
        json!({"type": "queue_remove", "item_id": id}),
    )
    .await;
    assert_refused(
        &app,
        &room,
        Some(&token),
        json!({"type": "queue_remove", "item_id": id}),
        400,
        "invalid_value",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_add_validates_video_id_and_title_length() {
    let app = spawn_app(&[]).await;
    let (room, token) = app.video_room().await;
    assert_refused(
        &app,
        &room,
        Some(&token),
        json!({"type": "queue_add", "video_id": "short"}),
        400,
        "invalid_value",
    )
    .await;
    assert_refused(
        &app,
        &room,
        Some(&token),
        json!({"type": "queue_add", "video_id": A, "title": "t".repeat(201)}),
        400,
        "invalid_value",
    )
    .await;
    assert_refused(
        &app,
        &room,
        Some(&token),
        json!({"type": "queue_add"}),
        400,
        "invalid_value",
    )
    .await;
    assert_refused(
        &app,
        &room,
        Some(&token),
        json!({"type": "queue_remove"}),
        400,
        "invalid_command",
    )
    .await;
    assert_refused(
        &app,
        &room,
        Some(&token),
        json!({"type": "queue_move", "index": 0}),
        400,
        "invalid_command",
    )
    .await;
    let answer = app
        .command_ok(
            &room,
            Some(&token),
            json!({"type": "queue_add", "video_id": A, "title": "é".repeat(200)}),
        )
        .await;
    assert_eq!(answer["room"]["queue"][0]["title"], json!("é".repeat(200)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_past_max_queue_is_400_invalid_value() {
    let app = spawn_app(&["--max-queue", "3"]).await;
    let (room, token) = app.video_room().await;
    enqueue(&app, &room, &token, &[A, B, C]).await;
    assert_refused(
        &app,
        &room,
        Some(&token),
        json!({"type": "queue_add", "video_id": VIDEO}),
        400,
        "invalid_value",
    )
    .await;
    assert_eq!(
        app.get_room(&room).await["queue"].as_array().unwrap().len(),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_commands_need_the_host_token_in_a_host_room() {
    let app = spawn_app(&[]).await;
    let (room, _) = app.video_room().await;
    assert_refused(
        &app,
        &room,
        None,
        json!({"type": "queue_add", "video_id": A}),
        401,
        "unauthorized",
    )
    .await;
    assert_refused(
        &app,
        &room,
        None,
        json!({"type": "next"}),
        401,
        "unauthorized",
    )
    .await;
}

// ---------------------------------------------------------------- next

/// Reads the two events of an advance (a `state` with `cause` and a `queue`),
/// in whichever order they come; checks their ids are consecutive after `after`.
async fn expect_advance(listener: &mut SseStream, after: u64, cause: &str) -> (Value, Value) {
    let first = listener.expect_versioned().await;
    let second = listener.expect_versioned().await;
    assert_eq!(first.id_num(), after + 1, "{first:?}");
    assert_eq!(second.id_num(), after + 2, "{second:?}");
    let (state, queue) = match (first.event.as_str(), second.event.as_str()) {
        ("state", "queue") => (first.json(), second.json()),
        ("queue", "state") => (second.json(), first.json()),
        _ => panic!("expected a state and a queue event, got {first:?} and {second:?}"),
    };
    assert_eq!(state["cause"], cause, "{state}");
    (state, queue)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_loads_the_first_queued_item_and_removes_it() {
    let app = spawn_app(&[]).await;
    let (room, token, mut listener) = listening_room(&app).await;
    enqueue(&app, &room, &token, &[A, B]).await;
    listener.expect_versioned().await;
    listener.expect_versioned().await;
    let answer = app
        .command_ok(&room, Some(&token), json!({"type": "next"}))
        .await;
    assert_eq!(answer["version"], 5, "two events: state and queue");
    let (state, queue) = expect_advance(&mut listener, 3, "next").await;
    assert_eq!(state["state"]["video_id"], A);
    assert_eq!(state["state"]["position"].as_f64(), Some(0.0));
    assert_eq!(state["state"]["duration"], Value::Null);
    assert_eq!(queue["op"], "remove", "{queue}");
    let snapshot = app.get_room(&room).await;
    assert_eq!(snapshot["state"]["video_id"], A);
    assert_eq!(queue_videos(&snapshot["queue"]), [B]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_on_an_empty_queue_changes_nothing() {
    let app = spawn_app(&[]).await;
    let (room, token, mut listener) = listening_room(&app).await;
    let answer = app
        .command_ok(&room, Some(&token), json!({"type": "next"}))
        .await;
    assert_eq!(answer["version"], 1);
    assert_eq!(answer["room"]["state"]["video_id"], VIDEO);
    listener.expect_quiet(QUIET).await;
}

// ---------------------------------------------------------------- duration and auto-advance

/// Sets the duration and plays from 0 at `rate`; gives the version and the
/// server time the play was stamped with.
async fn play_to_the_end(
    app: &TestApp,
    room: &str,
    token: &str,
    duration: f64,
    rate: f64,
) -> (u64, i64) {
    app.command_ok(
        room,
        Some(token),
        json!({"type": "duration", "duration": duration}),
    )
    .await;
    if rate != 1.0 {
        app.command_ok(room, Some(token), json!({"type": "rate", "rate": rate}))
            .await;
    }
    let answer = app
        .command_ok(room, Some(token), json!({"type": "play", "position": 0.0}))
        .await;
    let started = answer["room"]["state"]["updated_at"].as_i64().unwrap();
    (answer["version"].as_u64().unwrap(), started)
}

async fn skip_to(listener: &mut SseStream, version: u64) {
    while listener.expect_versioned().await.id_num() < version {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playing_video_at_its_end_loads_the_next_queued_item() {
    let app = spawn_app(&[]).await;
    let (room, token, mut listener) = listening_room(&app).await;
    enqueue(&app, &room, &token, &[A, B]).await;
    let (version, started) = play_to_the_end(&app, &room, &token, 1.0, 1.0).await;
    skip_to(&mut listener, version).await;

    let (state, queue) = expect_advance(&mut listener, version, "next").await;
    let loaded = &state["state"];
    assert_eq!(loaded["video_id"], A);
    assert_eq!(loaded["position"].as_f64(), Some(0.0));
    assert_eq!(loaded["paused"], false, "the room keeps playing");
    assert_eq!(queue["op"], "remove", "{queue}");
    let ended_after = state["server_time"].as_i64().unwrap() - started;
    assert!(
        ended_after >= 950,
        "advanced {ended_after} ms after a 1 s video started"
    );
    // The new video's length is unknown, so nothing more happens by itself.
    listener.expect_quiet(Duration::from_millis(1500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_advance_follows_the_playback_rate() {
    let app = spawn_app(&[]).await;
    let (room, token, mut listener) = listening_room(&app).await;
    enqueue(&app, &room, &token, &[A]).await;
    // 4 s of video at rate 2 ends after 2 s of wall time (not 4).
    let (version, started) = play_to_the_end(&app, &room, &token, 4.0, 2.0).await;
    skip_to(&mut listener, version).await;
    let (state, _) = expect_advance(&mut listener, version, "next").await;
    assert_eq!(state["state"]["video_id"], A);
    let ended_after = state["server_time"].as_i64().unwrap() - started;
    assert!(
        ended_after >= 1900,
        "advanced after {ended_after} ms: too early for 4 s at rate 2"
    );
    assert!(
        ended_after < 3800,
        "advanced after {ended_after} ms: the timer ignored rate 2 (4 s at rate 1 would be 4000 ms)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playing_video_at_its_end_with_an_empty_queue_pauses_at_the_end() {
    let app = spawn_app(&[]).await;
    let (room, token, mut listener) = listening_room(&app).await;
    let (version, started) = play_to_the_end(&app, &room, &token, 1.0, 1.0).await;
    skip_to(&mut listener, version).await;
    let event = listener.expect_versioned().await;
    assert_eq!(event.event, "state");
    assert_eq!(event.id_num(), version + 1);
    let data = event.json();
    assert_eq!(data["cause"], "ended");
    assert_eq!(data["state"]["paused"], true);
    assert_eq!(
        data["state"]["position"].as_f64(),
        Some(1.0),
        "paused at position == duration"
    );
    assert_eq!(data["state"]["video_id"], VIDEO);
    assert!(data["server_time"].as_i64().unwrap() - started >= 950);
    listener.expect_quiet(QUIET).await;
    assert_eq!(app.get_room(&room).await["version"], json!(version + 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_advance_at_rate_two_ends_at_the_duration() {
    let app = spawn_app(&[]).await;
    let (room, token, mut listener) = listening_room(&app).await;
    let (version, _) = play_to_the_end(&app, &room, &token, 1.0, 2.0).await;
    skip_to(&mut listener, version).await;
    let data = listener.expect_versioned().await.json();
    assert_eq!(data["cause"], "ended");
    assert_eq!(data["state"]["position"].as_f64(), Some(1.0));
    assert_eq!(data["state"]["rate"].as_f64(), Some(2.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_cancels_the_auto_advance() {
    let app = spawn_app(&[]).await;
    let (room, token, mut listener) = listening_room(&app).await;
    enqueue(&app, &room, &token, &[A]).await;
    play_to_the_end(&app, &room, &token, 3.0, 1.0).await;
    let paused = app
        .command_ok(&room, Some(&token), json!({"type": "pause"}))
        .await;
    let version = paused["version"].as_u64().unwrap();
    skip_to(&mut listener, version).await;
    // Well past the 3 s the video had left: nothing happens by itself.
    listener.expect_quiet(Duration::from_millis(4500)).await;
    let snapshot = app.get_room(&room).await;
    assert_eq!(snapshot["version"], json!(version));
    assert_eq!(snapshot["state"]["video_id"], VIDEO);
    assert_eq!(queue_videos(&snapshot["queue"]), [A]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seek_rearms_the_auto_advance() {
    let app = spawn_app(&[]).await;
    let (room, token, mut listener) = listening_room(&app).await;
    play_to_the_end(&app, &room, &token, 600.0, 1.0).await;
    let seek = app
        .command_ok(
            &room,
            Some(&token),
            json!({"type": "seek", "position": 599.5}),
        )
        .await;
    let version = seek["version"].as_u64().unwrap();
    let sought_at = seek["room"]["state"]["updated_at"].as_i64().unwrap();
    skip_to(&mut listener, version).await;
    let data = listener.expect_versioned().await.json();
    assert_eq!(data["cause"], "ended");
    assert_eq!(data["state"]["position"].as_f64(), Some(600.0));
    assert!(data["server_time"].as_i64().unwrap() - sought_at >= 450);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playing_without_a_known_duration_never_ends_by_itself() {
    let app = spawn_app(&[]).await;
    let (room, token, mut listener) = listening_room(&app).await;
    enqueue(&app, &room, &token, &[A]).await;
    let answer = app
        .command_ok(&room, Some(&token), json!({"type": "play"}))
        .await;
    skip_to(&mut listener, answer["version"].as_u64().unwrap()).await;
    listener.expect_quiet(Duration::from_millis(2000)).await;
}

// ---------------------------------------------------------------- presence

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_reports_the_listener_count_without_an_id() {
    let app = spawn_app(&[]).await;
    let (room, _, mut observer) = listening_room(&app).await;
    let mut joiner = app.events(&room).await;
    joiner.expect_snapshot().await;
    let presence = wait_presence(&mut observer, 2).await;
    assert!(
        presence.id.is_none(),
        "presence carries no id: {presence:?}"
    );
    let data = presence.json();
    assert!(data["server_time"].is_i64());
    drop(joiner);
    wait_presence(&mut observer, 1).await;
    assert_eq!(app.get_room(&room).await["listeners"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_events_are_never_replayed() {
    let app = spawn_app(&[]).await;
    let (room, _, mut observer) = listening_room(&app).await;
    let mut joiner = app.events(&room).await;
    joiner.expect_snapshot().await;
    wait_presence(&mut observer, 2).await;
    drop(joiner);
    wait_presence(&mut observer, 1).await;
    let response = app
        .chat(&room, json!({"name": "Ann", "text": "after"}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    // Resuming from before the presence events replays only the chat.
    let mut resumed = app
        .events_at(
            &format!("/api/rooms/{room}/events"),
            &[("last-event-id", "1")],
        )
        .await;
    let first = resumed.expect_event().await;
    assert_eq!(
        first.event, "chat",
        "replay holds only id-carrying events: {first:?}"
    );
    assert_eq!(first.id_num(), 2);
}

/// Reads events until a `presence` with `listeners == n` (other presence counts
/// on the way are fine: they are coalesced snapshots of a moving count).
async fn wait_presence(listener: &mut SseStream, n: u64) -> SseEvent {
    loop {
        let event = listener.expect_event().await;
        if event.event == "presence" && event.json()["listeners"] == json!(n) {
            return event;
        }
        assert_eq!(event.event, "presence", "unexpected {event:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_coalesced_under_500_simultaneous_joins() {
    let app = spawn_app(&[
        "--max-connections",
        "5000",
        "--max-streams-per-client",
        "5000",
    ])
    .await;
    let (room, _, mut observer) = listening_room(&app).await;
    let started = Instant::now();
    let joined: Vec<SseStream> = stream::iter(0..500)
        .map(|_| app.events(&room))
        .buffer_unordered(500)
        .collect()
        .await;
    assert_eq!(joined.len(), 500);

    let mut presences = Vec::new();
    loop {
        let event = observer.expect_event().await;
        assert_eq!(
            event.event, "presence",
            "only presence is expected: {event:?}"
        );
        let data = event.json();
        presences.push(data.clone());
        if data["listeners"] == 501 {
            break;
        }
    }
    // Only on change: once the count has settled nothing more is said.
    observer.expect_quiet(Duration::from_millis(2500)).await;
    let elapsed = started.elapsed().as_secs_f64();

    let count = presences.len();
    eprintln!("{count} presence events in {elapsed:.1} s: {presences:?}");
    assert!(
        (count as f64) <= elapsed.ceil() + 2.0,
        "{count} presence events in {elapsed:.1} s: at most one per second"
    );
    let times: Vec<i64> = presences
        .iter()
        .map(|p| p["server_time"].as_i64().unwrap())
        .collect();
    for pair in times.windows(2) {
        assert!(
            pair[1] - pair[0] >= 900,
            "presence events {} ms apart: {times:?}",
            pair[1] - pair[0]
        );
    }
    drop(joined);
    wait_presence(&mut observer, 1).await;
}

// ---------------------------------------------------------------- chat

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_reaches_every_listener_as_a_chat_event_with_trimmed_fields() {
    let app = spawn_app(&[]).await;
    let (room, _, mut one) = listening_room(&app).await;
    let mut two = app.events(&room).await;
    two.expect_snapshot().await;
    // No token needed, even in a host-controlled room.
    let response = app
        .chat(&room, json!({"name": "  Ann ", "text": " this drop! "}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["version"], 2);
    for listener in [&mut one, &mut two] {
        let event = listener.expect_versioned().await;
        assert_eq!(event.event, "chat");
        assert_eq!(event.id_num(), 2);
        let data = event.json();
        assert_eq!(data["version"], 2);
        assert_eq!(data["name"], "Ann");
        assert_eq!(data["text"], "this drop!");
        assert!(data["server_time"].is_i64());
    }
    assert_eq!(
        app.get_room(&room).await["version"],
        2,
        "chat counts as one version"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_length_limits_count_characters_not_bytes() {
    let app = spawn_app(&[]).await;
    let (room, _) = app.video_room().await;
    let response = app
        .chat(
            &room,
            json!({"name": "é".repeat(64), "text": "ü".repeat(500)}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_with_bad_name_or_text_is_400_invalid_value_and_changes_nothing() {
    let app = spawn_app(&["--chat-burst", "1000", "--chat-per-minute", "60000"]).await;
    let (room, _) = app.video_room().await;
    let cases = [
        json!({"name": "", "text": "hi"}),
        json!({"name": "   ", "text": "hi"}),
        json!({"name": "n".repeat(65), "text": "hi"}),
        json!({"name": "An\u{7}n", "text": "hi"}),
        json!({"name": "Ann", "text": ""}),
        json!({"name": "Ann", "text": " \t "}),
        json!({"name": "Ann", "text": "t".repeat(501)}),
        json!({"name": "Ann", "text": "two\nlines"}),
        json!({"name": "Ann", "text": "bell\u{7}"}),
        json!({"name": "Ann", "text": "nul\u{0}"}),
    ];
    for body in cases {
        let response = app.chat(&room, body.clone()).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        assert_error(response, 400, "invalid_value").await;
    }
    let missing = app.chat(&room, json!({"name": "Ann"})).await;
    assert_error(missing, 400, "invalid_command").await;
    let wrong_type = app.chat(&room, json!({"name": "Ann", "text": 5})).await;
    assert_error(wrong_type, 400, "invalid_json").await;
    assert_eq!(app.get_room(&room).await["version"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_to_a_missing_room_is_404_room_not_found() {
    let app = spawn_app(&[]).await;
    assert_error(
        app.chat("ghost", json!({"name": "Ann", "text": "hi"}))
            .await,
        404,
        "room_not_found",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_is_rate_limited_per_client_address_with_retry_after() {
    let app = spawn_app(&["--chat-burst", "3", "--chat-per-minute", "1"]).await;
    let (room, _) = app.video_room().await;
    let (other_room, _) = app.video_room().await;
    for i in 0..3 {
        let response = app
            .chat(&room, json!({"name": "Ann", "text": format!("msg {i}")}))
            .await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "message {i} is within the burst"
        );
    }
    let before = app.get_room(&room).await;
    let headers = assert_error(
        app.chat(&room, json!({"name": "Ann", "text": "one more"}))
            .await,
        429,
        "rate_limited",
    )
    .await;
    let wait = retry_after_secs(&headers);
    assert!(
        (1..=60).contains(&wait),
        "Retry-After {wait} s at one message per minute"
    );
    assert_eq!(
        fingerprint(&app.get_room(&room).await),
        fingerprint(&before)
    );
    // The limit is the address's, not the room's.
    assert_error(
        app.chat(&other_room, json!({"name": "Ann", "text": "elsewhere"}))
            .await,
        429,
        "rate_limited",
    )
    .await;
    assert_eq!(app.get_room(&other_room).await["version"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_has_a_default_rate_limit() {
    let app = spawn_app(&[]).await;
    let (room, _) = app.video_room().await;
    let mut limited = false;
    for i in 0..12 {
        let response = app
            .chat(&room, json!({"name": "Ann", "text": format!("spam {i}")}))
            .await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = true;
            break;
        }
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert!(
        limited,
        "12 quick messages at 20/min with a burst of 5 must be limited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_queue_and_control_events_are_replayed_on_resume() {
    let app = spawn_app(&[]).await;
    let (room, token) = app.video_room().await;
    app.chat(&room, json!({"name": "Ann", "text": "hello"}))
        .await;
    app.command_ok(
        &room,
        Some(&token),
        json!({"type": "queue_add", "video_id": A}),
    )
    .await;
    app.command_ok(
        &room,
        Some(&token),
        json!({"type": "control", "control": "open"}),
    )
    .await;
    let mut listener = app
        .events_at(
            &format!("/api/rooms/{room}/events"),
            &[("last-event-id", "1")],
        )
        .await;
    let kinds = [
        listener.expect_versioned().await,
        listener.expect_versioned().await,
        listener.expect_versioned().await,
    ];
    let seen: Vec<(&str, u64)> = kinds
        .iter()
        .map(|e| (e.event.as_str(), e.id_num()))
        .collect();
    assert_eq!(seen, [("chat", 2), ("queue", 3), ("control", 4)]);
    assert_eq!(kinds[0].json()["text"], "hello");
}

// ---------------------------------------------------------------- control hand-off

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_hand_off_lets_a_token_less_client_command_and_back() {
    let app = spawn_app(&[]).await;
    let (room, token, mut listener) = listening_room(&app).await;
    assert_refused(
        &app,
        &room,
        None,
        json!({"type": "play"}),
        401,
        "unauthorized",
    )
    .await;

    let answer = app
        .command_ok(
            &room,
            Some(&token),
            json!({"type": "control", "control": "open"}),
        )
        .await;
    assert_eq!(answer["room"]["control"], "open");
    let event = listener.expect_versioned().await;
    assert_eq!(event.event, "control");
    assert_eq!(event.id_num(), 2);
    let data = event.json();
    assert_eq!(data["version"], 2);
    assert_eq!(data["control"], "open");
    assert!(data["server_time"].is_i64());

    let answer = app.command_ok(&room, None, json!({"type": "play"})).await;
    assert_eq!(answer["version"], 3);
    app.command_ok(&room, None, json!({"type": "queue_add", "video_id": A}))
        .await;

    app.command_ok(
        &room,
        Some(&token),
        json!({"type": "control", "control": "host"}),
    )
    .await;
    assert_refused(
        &app,
        &room,
        None,
        json!({"type": "pause"}),
        401,
        "unauthorized",
    )
    .await;
    assert_eq!(app.get_room(&room).await["control"], "host");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_with_an_unknown_mode_is_refused() {
    let app = spawn_app(&[]).await;
    let (room, token) = app.video_room().await;
    let response = app
        .command(
            &room,
            Some(&token),
            json!({"type": "control", "control": "everyone"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    let code = body["error"]["code"].as_str().unwrap_or_default();
    assert!(code == "invalid_value" || code == "invalid_json", "{body}");
    assert_eq!(app.get_room(&room).await["control"], "host");
}
