//! The rules the Redis backplane runs in Lua, tested on a real `redis-server`
//! against the same cases as the Rust that runs them in one process:
//!
//! - the sync summary (`src/backplane/lua/sync.lua`) computes exactly what
//!   `room::sync::summarize` does, case for case of `tests/cases/sync_summary.json`
//!   (whose Rust side is a unit test of `src/room/sync.rs`);
//! - the feed messages the scripts write with cjson read back as the nodes read
//!   them, numbers exact.

mod common;

use std::time::Duration;

use common::Redis;
use futures_util::StreamExt;
use serde_json::Value;
use syncroom::room::sync::{SyncSummary, BEHIND_LISTED, IN_SYNC_MS};

const CASES: &str = include_str!("cases/sync_summary.json");
const SYNC: &str = include_str!("../src/backplane/lua/sync.lua");
const PRESENCE: &str = include_str!("../src/backplane/lua/presence.lua");
const READY: &str = include_str!("../src/backplane/lua/ready.lua");

/// Long enough that nothing expires while a case runs.
const LIFETIME_MS: u64 = 600_000;

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    reports: Vec<CaseReport>,
    summary: SyncSummary,
}

#[derive(serde::Deserialize)]
struct CaseReport {
    stream: String,
    p95_ms: f64,
    #[serde(default)]
    buffering: bool,
    #[serde(default)]
    name: Option<String>,
}

async fn connect(redis: &Redis) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url())
        .expect("a redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to the test's redis-server")
}

/// Runs sync.lua as the backplane does: KEYS room, reports, summary, durations, then the
/// arguments in its order, `tail` last.
async fn sync_script(
    conn: &mut redis::aio::MultiplexedConnection,
    room: &str,
    mode: &str,
    tail: &[String],
) -> (i64, String, i64) {
    let script = redis::Script::new(SYNC);
    let mut invocation = script.prepare_invoke();
    invocation
        .key(format!("{room}:room"))
        .key(format!("{room}:sync"))
        .key(format!("{room}:sync-summary"))
        .key(format!("{room}:sync-durations"))
        .arg(mode)
        .arg(LIFETIME_MS)
        .arg(1)
        .arg(1_000)
        .arg(IN_SYNC_MS)
        .arg(LIFETIME_MS)
        .arg(format!("{room}:feed"))
        .arg(BEHIND_LISTED)
        .arg("PUBLISH")
        .arg(tail);
    let (status, summary, retry_ms, _durations): (i64, String, i64, Vec<String>) = invocation
        .invoke_async(conn)
        .await
        .expect("sync.lua runs (EVALSHA)");
    (status, summary, retry_ms)
}

/// The summary sync.lua answers after each of `reports` was reported, in order.
async fn lua_summary(
    conn: &mut redis::aio::MultiplexedConnection,
    room: &str,
    reports: &[&CaseReport],
) -> SyncSummary {
    let () = redis::cmd("SET")
        .arg(format!("{room}:room"))
        .arg("1")
        .query_async(conn)
        .await
        .expect("SET the room");
    let mut reply = sync_script(conn, room, "sweep", &[]).await;
    for report in reports {
        let tail = [
            report.stream.clone(),
            // As the backplane passes it: Rust's shortest exact form, no exponent.
            report.p95_ms.to_string(),
            u8::from(report.buffering).to_string(),
            report.name.clone().unwrap_or_default(),
        ];
        reply = sync_script(conn, room, "report", &tail).await;
    }
    let (status, summary, _) = reply;
    assert_eq!(status, 1, "{room}: {summary}");
    serde_json::from_str(&summary).unwrap_or_else(|e| panic!("{room}: {e}: {summary}"))
}

#[tokio::test]
async fn the_lua_sync_summary_agrees_with_every_case_of_the_shared_table() {
    let redis = Redis::start().await;
    let mut conn = connect(&redis).await;
    let cases: Vec<Case> = serde_json::from_str(CASES).expect("the table of cases parses");
    assert!(cases.len() >= 10, "the table holds its cases");
    for (i, case) in cases.iter().enumerate() {
        // Both orders: Redis hands the reports back in its own hash order anyway,
        // and the summary may not depend on the order they came in.
        let forward: Vec<&CaseReport> = case.reports.iter().collect();
        let backward: Vec<&CaseReport> = case.reports.iter().rev().collect();
        for (order, reports) in [("forward", forward), ("backward", backward)] {
            let room = format!("case{i}-{order}");
            let summary = lua_summary(&mut conn, &room, &reports).await;
            assert_eq!(summary, case.summary, "case {:?} ({order})", case.name);
        }
    }
}

#[tokio::test]
async fn lua_publishes_the_summary_it_answers_only_when_it_changed() {
    let redis = Redis::start().await;
    let mut conn = connect(&redis).await;
    let mut feed = subscribe(&redis, "pub:feed").await;
    let ann = CaseReport {
        stream: "a".into(),
        p95_ms: 70.0,
        buffering: false,
        name: Some("Ann".into()),
    };
    let answered = lua_summary(&mut conn, "pub", &[&ann]).await;

    // The first sweep found the room without reports.
    let empty = next_message(&mut feed).await;
    assert_eq!(empty["sync"]["reporting"], 0, "{empty}");
    assert_eq!(empty["sync"]["drift_p95_ms"], Value::Null, "{empty}");
    // cjson cannot write an empty list as `[]`: the key is left out, and every
    // reader (this version's and older ones) takes it as empty.
    assert!(empty["sync"].get("behind").is_none(), "{empty}");

    let published = next_message(&mut feed).await;
    let summary: SyncSummary =
        serde_json::from_value(published["sync"].clone()).expect("a sync message");
    assert_eq!(summary, answered);
    assert_eq!(summary.behind.len(), 1, "{published}");

    // A sweep that changes nothing publishes nothing: the next message is the next change.
    let (status, unchanged, _) = sync_script(&mut conn, "pub", "sweep", &[]).await;
    assert_eq!(status, 1);
    assert_eq!(
        serde_json::from_str::<SyncSummary>(&unchanged).ok(),
        Some(answered)
    );
    let bo = [
        "b".to_owned(),
        "5".to_owned(),
        "0".to_owned(),
        String::new(),
    ];
    sync_script(&mut conn, "pub", "report", &bo).await;
    let next = next_message(&mut feed).await;
    assert_eq!(next["sync"]["reporting"], 2, "{next}");
}

#[tokio::test]
async fn presence_and_gate_messages_written_with_cjson_keep_their_integers_exact() {
    let redis = Redis::start().await;
    let mut conn = connect(&redis).await;
    let mut feed = subscribe(&redis, "p:feed").await;
    let () = redis::cmd("HSET")
        .arg("p:room")
        .arg("v")
        .arg("1")
        .query_async(&mut conn)
        .await
        .expect("HSET the room");
    let before_ms = redis_now_ms(&mut conn).await;
    let (total, ..): (i64, String, String, String) = redis::Script::new(PRESENCE)
        .key("p:room")
        .key("p:events")
        .key("p:listeners")
        .key("p:chat")
        .arg("node-1")
        .arg(12)
        .arg(10_000)
        .arg(60_000)
        .arg("p:feed")
        .arg(3)
        .arg("PUBLISH")
        .invoke_async(&mut conn)
        .await
        .expect("presence.lua runs");
    assert_eq!(total, 12);
    let after_ms = redis_now_ms(&mut conn).await;
    let presence = next_message(&mut feed).await;
    let presence = &presence["presence"];
    assert_eq!(presence["listeners"], 12, "{presence}");
    assert_eq!(presence["gate_listeners"], 3, "{presence}");
    // A 13-digit millisecond time, written as an integer and exactly.
    let server_time = presence["server_time"]
        .as_i64()
        .unwrap_or_else(|| panic!("server_time is an integer: {presence}"));
    assert!(
        (before_ms..=after_ms).contains(&server_time),
        "{before_ms} <= {server_time} <= {after_ms}"
    );

    assert_eq!(
        ready_lua(&mut conn, "report", &["stream-a"]).await,
        (1, 1, 3)
    );
    let gate = next_message(&mut feed).await;
    assert_eq!(
        gate,
        serde_json::json!({"gate": {"ready_gate": 41, "ready": 1, "listeners": 3}})
    );
    // A stream that ended takes its readiness along, and reports nothing more.
    assert_eq!(
        ready_lua(&mut conn, "forget", &["stream-a"]).await,
        (0, 0, 3)
    );
    let gate = next_message(&mut feed).await;
    assert_eq!(gate["gate"]["ready"], 0, "{gate}");
    assert_eq!(
        ready_lua(&mut conn, "report", &["stream-a"]).await,
        (0, 0, 3)
    );
}

/// Runs ready.lua on gate 41 of room `p`: KEYS ready set, listeners, gone set;
/// ARGV set ttl, gate, feed, publish command, `op`, the gone set's bound and
/// ttl, then `streams`. Answers (counted, ready, taking part).
async fn ready_lua(
    conn: &mut redis::aio::MultiplexedConnection,
    op: &str,
    streams: &[&str],
) -> (i64, i64, i64) {
    redis::Script::new(READY)
        .key("p:ready:41")
        .key("p:listeners")
        .key("p:gone")
        .arg(60_000)
        .arg(41)
        .arg("p:feed")
        .arg("PUBLISH")
        .arg(op)
        .arg(1024)
        .arg(86_400_000)
        .arg(streams)
        .invoke_async(conn)
        .await
        .expect("ready.lua runs")
}

async fn redis_now_ms(conn: &mut redis::aio::MultiplexedConnection) -> i64 {
    let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(conn).await.expect("TIME");
    secs * 1000 + micros / 1000
}

async fn subscribe(redis: &Redis, channel: &str) -> redis::aio::PubSub {
    let mut pubsub = redis::Client::open(redis.url())
        .expect("a redis url")
        .get_async_pubsub()
        .await
        .expect("a subscription connection");
    pubsub.subscribe(channel).await.expect("SUBSCRIBE");
    pubsub
}

async fn next_message(pubsub: &mut redis::aio::PubSub) -> Value {
    let message = tokio::time::timeout(Duration::from_secs(10), pubsub.on_message().next())
        .await
        .expect("a feed message within 10 s")
        .expect("the subscription stays open");
    let payload: String = message.get_payload().expect("a text payload");
    serde_json::from_str(&payload).unwrap_or_else(|e| panic!("{e}: {payload}"))
}
