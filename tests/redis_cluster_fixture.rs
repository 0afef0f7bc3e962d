//! The Redis Cluster fixture (`tests/common/redis_cluster.rs`) behaves as the
//! cluster backplane will rely on: rooms with different hash tags spread over
//! the primaries, a room's keys and its sharded feed stay on its own shard, a
//! script may not reach another room's slot, and a killed primary's replica
//! takes over with what was written and `WAIT`ed for.
//!
//! Writes that a client would route go through `redis-cli -c` (which follows
//! `MOVED`); checks of where a key lives go straight to one node, where a key
//! of another slot answers `MOVED` instead of being found.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::redis_cluster::{node_url, query, RedisCluster};
use redis::Value;

/// Enough rooms that each of the three primaries' slot ranges gets some.
const ROOMS: usize = 12;
/// How long `WAIT` may wait for a replica's acknowledgement, in ms.
const WAIT_MS: u64 = 5_000;
/// How long the subscriber waits for a published message.
const MESSAGE_BOUND: Duration = Duration::from_secs(5);

/// Runs `redis-cli -c` against `port` (following redirections) and returns
/// its trimmed output.
async fn cli(port: u16, args: &[&str]) -> String {
    let output = tokio::process::Command::new("redis-cli")
        .args(["-c", "-p", &port.to_string()])
        .args(args)
        .output()
        .await
        .expect("redis-cli must be installed (scripts/test installs it)");
    assert!(output.status.success(), "redis-cli {args:?}");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn state_key(room: usize) -> String {
    format!("{{room-{room}}}:state")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_with_different_hash_tags_land_on_different_primaries() {
    let cluster = RedisCluster::start().await;
    let seed = cluster.live_ports().next().expect("a node");

    let mut primaries = BTreeSet::new();
    for room in 0..ROOMS {
        let key = state_key(room);
        assert_eq!(cli(seed, &["SET", &key, &format!("v{room}")]).await, "OK");
        let owner = cluster.owner_of(&key).await;
        let stored: String = query(owner.primary, redis::cmd("GET").arg(&key))
            .await
            .expect("the slot's primary has the key itself");
        assert_eq!(stored, format!("v{room}"));
        primaries.insert(owner.primary);
    }
    assert_eq!(primaries.len(), 3, "{ROOMS} rooms over 3 primaries");

    // A node that does not serve the slot redirects rather than answers.
    let key = state_key(0);
    let owner = cluster.owner_of(&key).await;
    let other = *primaries
        .iter()
        .find(|port| **port != owner.primary)
        .expect("another primary");
    let moved = query::<Value>(other, redis::cmd("GET").arg(&key)).await;
    assert_eq!(moved.expect_err("MOVED").code(), Some("MOVED"));

    // All of a room's keys share its slot, whatever follows the tag.
    for suffix in ["feed", "members", "history", "seq"] {
        let sibling = format!("{{room-0}}:{suffix}");
        assert_eq!(cluster.keyslot(&sibling).await, owner.slot, "{sibling}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_may_not_touch_two_rooms_slots() {
    let cluster = RedisCluster::start().await;
    let (mine, theirs) = two_rooms_on_different_primaries(&cluster).await;
    let owner = cluster.owner_of(&mine).await;

    // Declared keys of two slots: refused before the script runs.
    let mut declared = redis::cmd("EVAL");
    declared
        .arg("return redis.call('SET', KEYS[1], 1)")
        .arg(2)
        .arg(&mine)
        .arg(&theirs);
    let refused = query::<Value>(owner.primary, &declared).await;
    assert_eq!(refused.expect_err("CROSSSLOT").code(), Some("CROSSSLOT"));

    // A key name built from an argument (as a global list's name would be):
    // refused when the script reaches it, and nothing of it is written.
    let mut built = redis::cmd("EVAL");
    built
        .arg("return redis.call('SET', ARGV[1], 1)")
        .arg(1)
        .arg(&mine)
        .arg(&theirs);
    let refused = query::<Value>(owner.primary, &built).await;
    assert!(refused.is_err(), "a non-local key was written: {refused:?}");
    assert_eq!(cli(owner.primary, &["EXISTS", &theirs]).await, "0");

    // WAIT must follow a script on its connection: it may not run inside one.
    let mut waits = redis::cmd("EVAL");
    waits
        .arg("return redis.call('WAIT', 1, 100)")
        .arg(1)
        .arg(&mine);
    let refused = query::<Value>(owner.primary, &waits).await;
    assert!(refused.is_err(), "WAIT ran inside a script: {refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rooms_sharded_feed_is_delivered_by_its_own_shard_only() {
    let cluster = RedisCluster::start().await;
    let (mine, theirs) = two_rooms_on_different_primaries(&cluster).await;
    let channel = mine.replace(":state", ":feed");
    let owner = cluster.owner_of(&channel).await;
    let other = cluster.owner_of(&theirs).await.primary;

    // Subscribing on another shard's node is redirected to the owner.
    let mut wrong = subscriber(other);
    wrong
        .send_packed_command(&redis::cmd("SSUBSCRIBE").arg(&channel).get_packed_command())
        .expect("send SSUBSCRIBE");
    let moved = wrong
        .recv_response()
        .and_then(Value::extract_error)
        .expect_err("MOVED");
    assert_eq!(moved.code(), Some("MOVED"));

    let mut sub = subscriber(owner.primary);
    sub.send_packed_command(&redis::cmd("SSUBSCRIBE").arg(&channel).get_packed_command())
        .expect("send SSUBSCRIBE");
    let confirmed = sub.recv_response().expect("SSUBSCRIBE confirmed");
    assert_eq!(texts(&confirmed)[..2], ["ssubscribe", channel.as_str()]);

    let receivers: i64 = query(
        owner.primary,
        redis::cmd("SPUBLISH").arg(&channel).arg("v1"),
    )
    .await
    .expect("SPUBLISH on the owner");
    assert_eq!(receivers, 1);
    let message = sub.recv_response().expect("the published message");
    assert_eq!(texts(&message), ["smessage", channel.as_str(), "v1"]);

    // The room's own script may publish its feed (the commit's way), and no
    // other slot's script may.
    let mut own = redis::cmd("EVAL");
    own.arg("return redis.call('SPUBLISH', ARGV[1], ARGV[2])")
        .arg(1)
        .arg(&mine)
        .arg(&channel)
        .arg("v2");
    let receivers: i64 = query(owner.primary, &own)
        .await
        .expect("SPUBLISH in a script");
    assert_eq!(receivers, 1);
    let message = sub.recv_response().expect("the script's message");
    assert_eq!(texts(&message), ["smessage", channel.as_str(), "v2"]);
    let mut foreign = redis::cmd("EVAL");
    foreign
        .arg("return redis.call('SPUBLISH', ARGV[1], ARGV[2])")
        .arg(1)
        .arg(&theirs)
        .arg(&channel)
        .arg("v3");
    let refused = query::<i64>(other, &foreign).await;
    assert!(
        refused.is_err(),
        "another slot's script published: {refused:?}"
    );

    // Publishing the room's channel on another shard is refused, not broadcast.
    let elsewhere = query::<i64>(other, redis::cmd("SPUBLISH").arg(&channel).arg("v4")).await;
    assert_eq!(elsewhere.expect_err("MOVED").code(), Some("MOVED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_takes_over_a_killed_primary_with_what_was_waited_for() {
    let mut cluster = RedisCluster::start().await;
    let (mine, theirs) = two_rooms_on_different_primaries(&cluster).await;
    let owner = cluster.owner_of(&mine).await;
    let () = query(owner.primary, redis::cmd("SET").arg(&mine).arg("v1"))
        .await
        .expect("SET on the primary");
    let acked: i64 = query(owner.primary, redis::cmd("WAIT").arg(1).arg(WAIT_MS))
        .await
        .expect("WAIT");
    assert_eq!(acked, 1, "the replica acknowledged the write");
    let seed = cluster.owner_of(&theirs).await.primary;
    assert_eq!(cli(seed, &["SET", &theirs, "w1"]).await, "OK");

    let (before, after) = cluster.kill_primary_of(&mine).await;

    assert_ne!(after.primary, before.primary);
    assert!(before.replicas.contains(&after.primary), "{after:?}");
    let kept: String = query(after.primary, redis::cmd("GET").arg(&mine))
        .await
        .expect("GET on the promoted replica");
    assert_eq!(kept, "v1");
    let killed = query::<Value>(before.primary, &redis::cmd("PING")).await;
    assert!(killed.is_err(), "the old primary is gone");
    // A routing client finds the new primary, writes there, and the other
    // shard never noticed.
    assert_eq!(cli(seed, &["SET", &mine, "v2"]).await, "OK");
    assert_eq!(cli(seed, &["GET", &mine]).await, "v2");
    assert_eq!(cli(seed, &["GET", &theirs]).await, "w1");
    assert!(!cluster.urls().contains(&node_url(before.primary)));

    // The room's feed is served by the promoted replica.
    let channel = mine.replace(":state", ":feed");
    let mut sub = subscriber(after.primary);
    sub.send_packed_command(&redis::cmd("SSUBSCRIBE").arg(&channel).get_packed_command())
        .expect("send SSUBSCRIBE");
    let confirmed = sub.recv_response().expect("SSUBSCRIBE confirmed");
    assert_eq!(texts(&confirmed)[..2], ["ssubscribe", channel.as_str()]);
    let receivers: i64 = query(
        after.primary,
        redis::cmd("SPUBLISH").arg(&channel).arg("v3"),
    )
    .await
    .expect("SPUBLISH on the new primary");
    assert_eq!(receivers, 1);
    let message = sub.recv_response().expect("the published message");
    assert_eq!(texts(&message), ["smessage", channel.as_str(), "v3"]);
}

/// Two rooms' state keys whose slots have different primaries.
async fn two_rooms_on_different_primaries(cluster: &RedisCluster) -> (String, String) {
    let mine = state_key(0);
    let first = cluster.owner_of(&mine).await.primary;
    for room in 1..ROOMS {
        let theirs = state_key(room);
        if cluster.owner_of(&theirs).await.primary != first {
            return (mine, theirs);
        }
    }
    panic!("all {ROOMS} rooms on one primary");
}

/// A plain (not cluster-aware) connection to one node, reads bounded in time.
fn subscriber(port: u16) -> redis::Connection {
    let conn = redis::Client::open(node_url(port))
        .expect("a redis url")
        .get_connection_with_timeout(MESSAGE_BOUND)
        .expect("connect to the node");
    conn.set_read_timeout(Some(MESSAGE_BOUND))
        .expect("a read timeout");
    conn
}

/// The strings of a pub/sub reply (`[kind, channel, payload or count]`).
fn texts(reply: &Value) -> Vec<String> {
    let Value::Array(items) = reply else {
        panic!("not an array: {reply:?}");
    };
    items
        .iter()
        .filter_map(|item| match item {
            Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
            _ => None,
        })
        .collect()
}
