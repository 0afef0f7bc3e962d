//! Rooms that stay (`persistent`): exempt from `--room-ttl`, bounded by
//! `--max-persistent-rooms`, kept across restarts; on one node and over a real
//! `redis-server` of the test's own.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use tokio::time::Instant;

/// Long enough for a room with a `--room-ttl` of 0.5 s to be gone.
const PAST_TTL: Duration = Duration::from_millis(2_000);

async fn stop(mut app: TestApp) {
    app.shutdown.cancel();
    let server = app.server.take().expect("server task");
    tokio::time::timeout(WAIT, server)
        .await
        .expect("server stops")
        .expect("server task joins")
        .expect("server ends cleanly");
}

/// A node: alone, or sharing rooms through `redis`.
async fn node(redis: Option<&Redis>, extra: &[&str]) -> TestApp {
    let url = redis.map(Redis::url);
    let mut args: Vec<&str> = Vec::new();
    if let Some(url) = &url {
        args.extend_from_slice(&["--redis", url.as_str()]);
    }
    args.extend_from_slice(extra);
    let app = spawn_app(&args).await;
    let deadline = Instant::now() + WAIT;
    while app.get("/readyz").await.status() != 200 {
        assert!(Instant::now() < deadline, "node never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app
}

async fn status_of(app: &TestApp, room: &str) -> u16 {
    app.get(&format!("/api/rooms/{room}"))
        .await
        .status()
        .as_u16()
}

async fn outlives_the_ttl(redis: Option<&Redis>) {
    let app = node(redis, &["--room-ttl", "0.5"]).await;
    let (kept, _, created) = app
        .create_room(json!({"room_id": "kept", "persistent": true}))
        .await;
    assert_eq!(created["room"]["persistent"], true);
    let (plain, _, created) = app.create_room(json!({"room_id": "plain"})).await;
    assert_eq!(created["room"]["persistent"], false);
    tokio::time::sleep(PAST_TTL).await;
    assert_eq!(status_of(&app, &plain).await, 404, "the plain room expired");
    assert_eq!(
        status_of(&app, &kept).await,
        200,
        "the persistent room stays"
    );
    assert_eq!(app.get_room(&kept).await["persistent"], true);
}

#[tokio::test]
async fn a_persistent_room_outlives_the_room_ttl_and_a_plain_one_does_not() {
    outlives_the_ttl(None).await;
}

#[tokio::test]
async fn over_redis_a_persistent_room_outlives_the_room_ttl_and_a_plain_one_does_not() {
    let redis = Redis::start().await;
    outlives_the_ttl(Some(&redis)).await;
}

/// Turned off, a persistent room expires like any other.
async fn turned_off_it_expires(redis: Option<&Redis>) {
    let app = node(redis, &["--room-ttl", "0.5"]).await;
    let (room, token, _) = app.create_room(json!({"persistent": true})).await;
    tokio::time::sleep(PAST_TTL).await;
    app.command_ok(
        &room,
        Some(&token),
        json!({"type": "persistent", "persistent": false}),
    )
    .await;
    tokio::time::sleep(PAST_TTL).await;
    assert_eq!(status_of(&app, &room).await, 404);
}

#[tokio::test]
async fn a_room_made_not_persistent_expires() {
    turned_off_it_expires(None).await;
}

#[tokio::test]
async fn over_redis_a_room_made_not_persistent_expires() {
    let redis = Redis::start().await;
    turned_off_it_expires(Some(&redis)).await;
}

#[tokio::test]
async fn the_persistent_command_is_host_only_and_emits_one_event() {
    let app = node(None, &[]).await;
    let (room, token, created) = app.create_room(json!({})).await;
    assert_eq!(created["room"]["persistent"], false);
    let mut stream = app.events(&room).await;
    assert_eq!(stream.expect_snapshot().await["persistent"], false);

    let refused = app
        .command(
            &room,
            None,
            json!({"type": "persistent", "persistent": true}),
        )
        .await;
    assert_error(refused, 401, "unauthorized").await;
    let bad = app
        .command(
            &room,
            Some(&token),
            json!({"type": "persistent", "persistent": 1}),
        )
        .await;
    assert_error(bad, 400, "invalid_json").await;

    let answer = app
        .command_ok(
            &room,
            Some(&token),
            json!({"type": "persistent", "persistent": true}),
        )
        .await;
    assert_eq!(answer["version"], 2);
    let event = stream.expect_versioned().await;
    assert_eq!(event.event, "persistent");
    assert_eq!(event.id_num(), 2);
    let data = event.json();
    assert_eq!(data["version"], 2);
    assert_eq!(data["persistent"], true);
    assert!(data["server_time"].is_i64());
    assert_eq!(data.as_object().map(|o| o.len()), Some(3), "{data}");

    // The same again changes nothing and sends nothing.
    let again = app
        .command_ok(
            &room,
            Some(&token),
            json!({"type": "persistent", "persistent": true}),
        )
        .await;
    assert_eq!(again["version"], 2);
    // The next event on the stream is the next change's, version 3.
    app.command_ok(
        &room,
        Some(&token),
        json!({"type": "chat_enabled", "chat_enabled": false}),
    )
    .await;
    let next = stream.expect_versioned().await;
    assert_eq!((next.event.as_str(), next.id_num()), ("chat_enabled", 3));
    assert_eq!(app.get_room(&room).await["persistent"], true);
}

async fn the_bound_holds(redis: Option<&Redis>) {
    let app = node(redis, &["--max-persistent-rooms", "1"]).await;
    let (first, first_token, _) = app.create_room(json!({"persistent": true})).await;
    let refused = app
        .client
        .post(app.url("/api/rooms"))
        .json(&json!({"persistent": true}))
        .send()
        .await
        .expect("POST /api/rooms");
    assert_error(refused, 429, "rate_limited").await;
    let (second, second_token, _) = app.create_room(json!({})).await;
    let refused = app
        .command(
            &second,
            Some(&second_token),
            json!({"type": "persistent", "persistent": true}),
        )
        .await;
    assert_error(refused, 429, "rate_limited").await;
    assert_eq!(app.get_room(&second).await["persistent"], false);

    // The place frees when the first room lets it go, and again when it is deleted.
    app.command_ok(
        &first,
        Some(&first_token),
        json!({"type": "persistent", "persistent": false}),
    )
    .await;
    app.command_ok(
        &second,
        Some(&second_token),
        json!({"type": "persistent", "persistent": true}),
    )
    .await;
    let refused = app
        .command(
            &first,
            Some(&first_token),
            json!({"type": "persistent", "persistent": true}),
        )
        .await;
    assert_error(refused, 429, "rate_limited").await;
    assert_eq!(
        app.delete_room(&second, Some(&second_token)).await.status(),
        204
    );
    app.command_ok(
        &first,
        Some(&first_token),
        json!({"type": "persistent", "persistent": true}),
    )
    .await;
}

#[tokio::test]
async fn max_persistent_rooms_bounds_creation_and_the_command() {
    the_bound_holds(None).await;
}

#[tokio::test]
async fn over_redis_max_persistent_rooms_bounds_creation_and_the_command() {
    let redis = Redis::start().await;
    the_bound_holds(Some(&redis)).await;
}

#[tokio::test]
async fn over_redis_the_bound_is_the_clusters() {
    let redis = Redis::start().await;
    let one = node(Some(&redis), &["--max-persistent-rooms", "1"]).await;
    let two = node(Some(&redis), &["--max-persistent-rooms", "1"]).await;
    one.create_room(json!({"persistent": true})).await;
    let refused = two
        .client
        .post(two.url("/api/rooms"))
        .json(&json!({"persistent": true}))
        .send()
        .await
        .expect("POST /api/rooms");
    assert_error(refused, 429, "rate_limited").await;
}

#[tokio::test]
async fn a_persistent_room_counts_toward_its_creators_budget() {
    let app = node(None, &["--max-rooms-per-client", "1", "--room-ttl", "0.5"]).await;
    app.create_room(json!({"persistent": true})).await;
    tokio::time::sleep(PAST_TTL).await;
    let refused = app
        .client
        .post(app.url("/api/rooms"))
        .json(&json!({}))
        .send()
        .await
        .expect("POST /api/rooms");
    assert_error(refused, 429, "rate_limited").await;
}

#[tokio::test]
async fn a_persistent_room_survives_a_restart_with_data_dir() {
    let dir = std::env::temp_dir().join(format!("syncroom-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir(&dir).expect("create the data dir");
    let data_dir = dir.to_str().expect("utf-8 temp dir").to_owned();
    let args = ["--data-dir", data_dir.as_str(), "--room-ttl", "0.5"];
    let app = node(None, &args).await;
    let (room, token, _) = app.create_room(json!({"room_id": "stays"})).await;
    app.command_ok(
        &room,
        Some(&token),
        json!({"type": "persistent", "persistent": true}),
    )
    .await;
    stop(app).await;

    tokio::time::sleep(PAST_TTL).await;
    let app = node(None, &args).await;
    tokio::time::sleep(PAST_TTL).await;
    let view = app.get_room(&room).await;
    assert_eq!(view["persistent"], true);
    assert_eq!(view["version"], 2);
    app.command_ok(&room, Some(&token), json!({"type": "seek", "position": 3}))
        .await;
    stop(app).await;
    let _ = std::fs::remove_dir_all(&dir); // best effort: a temp dir
}

#[tokio::test]
async fn over_redis_a_persistent_room_survives_its_first_server() {
    let redis = Redis::start().await;
    let first = node(Some(&redis), &["--room-ttl", "0.5"]).await;
    let (room, token, _) = first
        .create_room(json!({"room_id": "stays", "persistent": true}))
        .await;
    stop(first).await;

    tokio::time::sleep(PAST_TTL).await;
    let second = node(Some(&redis), &["--room-ttl", "0.5"]).await;
    let view = second.get_room(&room).await;
    assert_eq!(view["persistent"], true);
    second
        .command_ok(&room, Some(&token), json!({"type": "seek", "position": 3}))
        .await;
}
