//! Many nodes, one room (`--redis`): three real servers sharing one real
//! `redis-server`, started by the test on a free port (never the machine's 6379).
//! The behaviours that must hold over a Redis Cluster too (total order, resume
//! on another node, node loss, a stalled shard, the limits and the listing
//! that span rooms) run a second time over a real cluster of three primaries
//! and three replicas (`--redis-cluster`, `common::redis_cluster`): one body,
//! two setups.
//!
//! Each test gets its own Redis process (or cluster), so tests never see each
//! other's rooms; the bodies that only ever see their own room share one
//! cluster, one after the other.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::redis_cluster::Shared;
use common::*;
use futures_util::future::join_all;
use serde_json::{json, Value};
use tokio::time::Instant;

/// Three in-process nodes on one Redis.
async fn cluster(redis: &Redis, extra: &[&str]) -> Vec<TestApp> {
    let url = redis.url();
    let mut nodes = Vec::new();
    for _ in 0..3 {
        let mut args = vec!["--redis", url.as_str()];
        args.extend_from_slice(extra);
        let node = spawn_app(&args).await;
        wait_healthy(&node).await;
        nodes.push(node);
    }
    nodes
}

/// Three in-process nodes sharing rooms through `shared`.
async fn nodes_on(shared: &Shared, extra: &[&str]) -> Vec<TestApp> {
    let target = shared.args();
    let mut nodes = Vec::new();
    for _ in 0..3 {
        let mut args: Vec<&str> = target.iter().map(String::as_str).collect();
        args.extend_from_slice(extra);
        let node = spawn_app(&args).await;
        wait_healthy(&node).await;
        nodes.push(node);
    }
    nodes
}

async fn wait_healthy(node: &TestApp) {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(response) = node.client.get(node.url("/readyz")).send().await {
            if response.status() == 200 {
                return;
            }
        }
        assert!(Instant::now() < deadline, "node never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The versioned events of a stream until `until` (inclusive), presence skipped.
async fn versions_until(stream: &mut SseStream, until: u64) -> Vec<SseEvent> {
    let mut seen = Vec::new();
    loop {
        let event = stream.expect_versioned().await;
        let id = event.id_num();
        seen.push(event);
        if id >= until {
            return seen;
        }
    }
}

fn assert_gapless(events: &[SseEvent], from: u64) {
    let ids: Vec<u64> = events.iter().map(SseEvent::id_num).collect();
    let expected: Vec<u64> = (from..from + ids.len() as u64).collect();
    assert_eq!(ids, expected, "ids must be consecutive, each once");
}

/// Each named test body runs twice: over one Redis and over a Redis Cluster
/// (`<body>::over_one_redis`, `<body>::over_a_redis_cluster`).
macro_rules! over_one_redis_and_a_cluster {
    ($($body:ident),* $(,)?) => {$(
        mod $body {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn over_one_redis() {
                super::$body(&super::Shared::one().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn over_a_redis_cluster() {
                super::$body(&super::Shared::cluster().await).await;
            }
        }
    )*};
}

over_one_redis_and_a_cluster!(
    a_room_created_on_one_node_is_served_by_every_node,
    listener_counts_are_summed_over_nodes,
    delete_reaches_listeners_on_every_node,
    visibility_set_on_one_node_is_what_every_node_lists,
    rooms_per_client_are_counted_over_the_whole_cluster,
);

/// Bodies that see only the room they create (a random id, no listing, no
/// count over rooms, nothing in Redis stopped or killed) run over one Redis
/// each (`<body>::over_one_redis`) and all over one Redis Cluster, one after
/// the other (`rooms_of_their_own_over_one_redis_cluster`): a cluster takes
/// seconds to join and settle, and sharing one proves the same of each.
macro_rules! over_one_redis_each_and_one_cluster_for_all {
    ($($body:ident),* $(,)?) => {
        $(mod $body {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn over_one_redis() {
                super::$body(&super::Shared::one().await).await;
            }
        })*

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn rooms_of_their_own_over_one_redis_cluster() {
            let cluster = Shared::cluster().await;
            $(
                // Captured, and printed if this body fails.
                eprintln!("over the shared Redis Cluster: {}", stringify!($body));
                $body(&cluster).await;
            )*
        }
    };
}

over_one_redis_each_and_one_cluster_for_all!(
    listeners_on_every_node_get_each_event_once_in_order,
    thirty_concurrent_commands_over_three_nodes_give_one_gapless_order,
    a_listener_resumes_on_another_node_with_exactly_what_it_missed,
    killing_a_node_loses_no_room,
);

/// A stall of what holds the room: the Redis, or the primary of the room's
/// shard (in a cluster slow to fail over, so that the stall stays a stall).
mod a_stalled_redis_gives_fast_503s_then_recovery_without_a_gap {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn over_one_redis() {
        super::a_stalled_redis_gives_fast_503s_then_recovery_without_a_gap(
            &super::Shared::one().await,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn over_a_redis_cluster() {
        super::a_stalled_redis_gives_fast_503s_then_recovery_without_a_gap(
            &super::Shared::cluster_for_stalls().await,
        )
        .await;
    }
}

async fn a_room_created_on_one_node_is_served_by_every_node(shared: &Shared) {
    let nodes = nodes_on(shared, &[]).await;
    let (room, _token, created) = nodes[0]
        .create_room(json!({"room_id": "shared", "name": "Shared", "video_id": "dQw4w9WgXcQ", "visibility": "public"}))
        .await;
    for node in &nodes {
        let seen = node.get_room(&room).await;
        assert_eq!(fingerprint(&seen), fingerprint(&created["room"]));
        let listed = node.list_rooms().await;
        assert!(
            listed
                .iter()
                .any(|r| r["room_id"] == "shared" && r["name"] == "Shared"),
            "{listed:?}"
        );
    }
    // The id is taken cluster-wide.
    let again = nodes[2]
        .client
        .post(nodes[2].url("/api/rooms"))
        .json(&json!({"room_id": "shared"}))
        .send()
        .await
        .expect("POST");
    assert_error(again, 409, "room_exists").await;
    assert_error(nodes[1].get("/api/rooms/nope").await, 404, "room_not_found").await;
}

async fn listeners_on_every_node_get_each_event_once_in_order(shared: &Shared) {
    let nodes = nodes_on(shared, &[]).await;
    let (room, token) = nodes[0].video_room().await;
    let mut streams = Vec::new();
    for node in &nodes {
        let mut stream = node.events(&room).await;
        assert_eq!(stream.expect_snapshot().await["version"], 1);
        streams.push(stream);
    }
    // Commands through every node in turn.
    let commands = [
        json!({"type": "play"}),
        json!({"type": "seek", "position": 42.5}),
        json!({"type": "rate", "rate": 1.5}),
        json!({"type": "pause"}),
        json!({"type": "queue_add", "video_id": "9bZkp7q19f0"}),
    ];
    for (i, command) in commands.iter().enumerate() {
        nodes[i % 3]
            .command_ok(&room, Some(&token), command.clone())
            .await;
    }
    let mut sequences = Vec::new();
    for stream in &mut streams {
        let events = versions_until(stream, 6).await;
        assert_gapless(&events, 2);
        sequences.push(events.iter().map(|e| e.data.clone()).collect::<Vec<_>>());
    }
    // Nothing more on any of them: the three quiet windows at once.
    join_all(streams.iter_mut().map(|stream| stream.expect_quiet(QUIET))).await;
    assert!(
        sequences.windows(2).all(|w| w[0] == w[1]),
        "same bytes everywhere"
    );
}

async fn thirty_concurrent_commands_over_three_nodes_give_one_gapless_order(shared: &Shared) {
    let nodes = nodes_on(shared, &[]).await;
    let (room, token) = nodes[0].video_room().await;
    let mut streams = Vec::new();
    for node in &nodes {
        let mut stream = node.events(&room).await;
        stream.expect_snapshot().await;
        streams.push(stream);
    }
    let answers = join_all((0..30).map(|i| {
        let node = &nodes[i % 3];
        let (room, token) = (room.clone(), token.clone());
        async move {
            node.command_ok(
                &room,
                Some(&token),
                json!({"type": "seek", "position": i + 1}),
            )
            .await
        }
    }))
    .await;
    let mut versions: Vec<u64> = answers
        .iter()
        .map(|a| a["version"].as_u64().expect("version"))
        .collect();
    versions.sort_unstable();
    assert_eq!(
        versions,
        (2..=31).collect::<Vec<_>>(),
        "each command its own version"
    );
    let mut orders = Vec::new();
    for stream in &mut streams {
        let events = versions_until(stream, 31).await;
        assert_gapless(&events, 2);
        orders.push(
            events
                .iter()
                .map(|e| e.json()["state"]["position"].as_f64().expect("position"))
                .collect::<Vec<_>>(),
        );
    }
    assert!(
        orders.windows(2).all(|w| w[0] == w[1]),
        "one total order: {orders:?}"
    );
    for node in &nodes {
        assert_eq!(node.get_room(&room).await["version"], 31);
    }
}

async fn a_listener_resumes_on_another_node_with_exactly_what_it_missed(shared: &Shared) {
    let nodes = nodes_on(shared, &[]).await;
    let (room, token) = nodes[0].video_room().await;
    let mut first = nodes[0].events(&room).await;
    first.expect_snapshot().await;
    nodes[0]
        .command_ok(&room, Some(&token), json!({"type": "play"}))
        .await;
    let seen = first.expect_versioned().await;
    assert_eq!(seen.id_num(), 2);
    drop(first);
    // Missed while away, committed through two different nodes.
    nodes[1]
        .command_ok(&room, Some(&token), json!({"type": "seek", "position": 10}))
        .await;
    nodes[0]
        .command_ok(&room, Some(&token), json!({"type": "pause"}))
        .await;
    // Node 2 has never served this room: its replay comes from Redis.
    let mut resumed = nodes[2]
        .events_at(
            &format!("/api/rooms/{room}/events"),
            &[("last-event-id", "2")],
        )
        .await;
    let replay = versions_until(&mut resumed, 4).await;
    assert_gapless(&replay, 3);
    assert_eq!(replay[0].event, "state");
    assert_eq!(replay[1].json()["cause"], "pause");
    // And by query on node 1.
    let mut by_query = nodes[1]
        .events_at(&format!("/api/rooms/{room}/events?last_event_id=3"), &[])
        .await;
    assert_eq!(by_query.expect_versioned().await.id_num(), 4);
}

async fn listener_counts_are_summed_over_nodes(shared: &Shared) {
    let nodes = nodes_on(shared, &[]).await;
    let (room, _token, _) = nodes[0]
        .create_room(json!({"video_id": "dQw4w9WgXcQ", "visibility": "public"}))
        .await;
    let mut streams = Vec::new();
    for (node, count) in nodes.iter().zip([2, 1, 0]) {
        for _ in 0..count {
            streams.push(node.events(&room).await);
        }
    }
    for node in &nodes {
        node.wait_listeners(&room, 3).await;
    }
    let listed = nodes[2].list_rooms().await;
    assert_eq!(listed[0]["room_id"], json!(room));
    assert_eq!(listed[0]["listeners"], 3);
    // A presence event with the total reaches a listener on another node.
    let mut watcher = nodes[2].events(&room).await;
    watcher.expect_snapshot().await;
    let deadline = Instant::now() + WAIT;
    loop {
        let event = watcher.expect_event().await;
        if event.event == "presence" && event.json()["listeners"] == 4 {
            break;
        }
        assert!(Instant::now() < deadline, "no presence with the total");
    }
    streams.truncate(1);
    for node in &nodes {
        node.wait_listeners(&room, 2).await;
    }
}

async fn delete_reaches_listeners_on_every_node(shared: &Shared) {
    let nodes = nodes_on(shared, &[]).await;
    let (room, token) = nodes[0].video_room().await;
    let mut streams = Vec::new();
    for node in &nodes {
        let mut stream = node.events(&room).await;
        stream.expect_snapshot().await;
        streams.push(stream);
    }
    let denied = nodes[1].delete_room(&room, None).await;
    assert_error(denied, 401, "unauthorized").await;
    let deleted = nodes[1].delete_room(&room, Some(&token)).await;
    assert_eq!(deleted.status(), 204);
    for stream in &mut streams {
        let closed = stream.expect_versioned().await;
        assert_eq!(closed.event, "closed");
        assert_eq!(closed.id_num(), 2);
        assert_eq!(closed.json()["reason"], "deleted");
        stream.expect_end().await;
    }
    for node in &nodes {
        assert_error(
            node.get(&format!("/api/rooms/{room}")).await,
            404,
            "room_not_found",
        )
        .await;
        assert!(node.list_rooms().await.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_end_of_a_video_advances_the_queue_exactly_once_across_nodes() {
    let redis = Redis::start().await;
    let nodes = cluster(&redis, &[]).await;
    let (room, token) = nodes[0].video_room().await;
    let mut streams = Vec::new();
    for node in &nodes {
        let mut stream = node.events(&room).await;
        stream.expect_snapshot().await;
        streams.push(stream);
    }
    nodes[0]
        .command_ok(
            &room,
            Some(&token),
            json!({"type": "queue_add", "video_id": "9bZkp7q19f0"}),
        )
        .await;
    nodes[1]
        .command_ok(
            &room,
            Some(&token),
            json!({"type": "load", "video_id": "dQw4w9WgXcQ", "duration": 1.0, "paused": false}),
        )
        .await;
    // v2 queue, v3 load, then the room's own timer: v4 state (next), v5 queue.
    for stream in &mut streams {
        let events = versions_until(stream, 5).await;
        assert_gapless(&events, 2);
        assert_eq!(events[2].json()["cause"], "next");
        assert_eq!(events[3].event, "queue");
        // Nobody else advanced it again.
        stream.expect_quiet(QUIET).await;
    }
    let now = nodes[2].get_room(&room).await;
    assert_eq!(now["version"], 5);
    assert_eq!(now["state"]["video_id"], "9bZkp7q19f0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_media_url_loaded_on_one_node_reaches_a_listener_on_another() {
    let redis = Redis::start().await;
    let nodes = cluster(&redis, &[]).await;
    let (room, token, _) = nodes[0]
        .create_room(json!({"video_id": "dQw4w9WgXcQ", "visibility": "public"}))
        .await;
    let mut listener = nodes[1].events(&room).await;
    listener.expect_snapshot().await;
    nodes[0]
        .command_ok(
            &room,
            Some(&token),
            json!({"type": "queue_add", "media_url": "https://cdn.example.com/b.ogg"}),
        )
        .await;
    nodes[0]
        .command_ok(
            &room,
            Some(&token),
            json!({"type": "load", "media_url": "/media/a.ogg", "duration": 60}),
        )
        .await;
    let events = versions_until(&mut listener, 3).await;
    assert_gapless(&events, 2);
    let queued = &events[0].json()["items"][0];
    assert_eq!(queued["media_url"], "https://cdn.example.com/b.ogg");
    assert_eq!(queued["video_id"], Value::Null);
    let loaded = &events[1].json()["state"];
    assert_eq!(loaded["media_url"], "/media/a.ogg");
    assert_eq!(loaded["video_id"], Value::Null);
    // What node B serves and lists (read back from Redis) carries it too.
    for node in &nodes[1..] {
        let seen = node.get_room(&room).await;
        assert_eq!(seen["state"]["media_url"], "/media/a.ogg");
        assert_eq!(
            seen["queue"][0]["media_url"],
            "https://cdn.example.com/b.ogg"
        );
        let listed = node.list_rooms().await;
        let summary = listed
            .iter()
            .find(|r| r["room_id"] == room.as_str())
            .expect("listed");
        assert_eq!(summary["media_url"], "/media/a.ogg");
        assert_eq!(summary["video_id"], Value::Null);
    }
    let mut late = nodes[2].events(&room).await;
    assert_eq!(
        late.expect_snapshot().await["state"]["media_url"],
        "/media/a.ogg"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_history_written_on_one_node_is_in_a_snapshot_on_another() {
    let redis = Redis::start().await;
    let nodes = cluster(
        &redis,
        &[
            "--chat-history",
            "2",
            "--chat-burst",
            "100",
            "--chat-per-minute",
            "6000",
        ],
    )
    .await;
    let (room, _) = nodes[0].video_room().await;
    for text in ["one", "two", "three"] {
        let response = nodes[0]
            .chat(&room, json!({"name": "Ann", "text": text}))
            .await;
        assert_eq!(response.status(), 200);
    }
    // Nodes 1 and 2 have never served the room: their first snapshot reads the list.
    let mut streams = Vec::new();
    for node in &nodes[1..] {
        let mut late = node.events(&room).await;
        let chat = late.expect_snapshot().await["chat"].clone();
        let texts: Vec<&str> = chat
            .as_array()
            .expect("chat array")
            .iter()
            .filter_map(|m| m["text"].as_str())
            .collect();
        assert_eq!(texts, ["two", "three"], "{chat}");
        assert_eq!(chat[0]["version"], 3);
        assert_eq!(chat[1]["name"], "Ann");
        streams.push(late);
    }
    // A message sent through node 1, now following the room, reaches node 2's history.
    let response = nodes[1]
        .chat(&room, json!({"name": "Bo", "text": "four"}))
        .await;
    assert_eq!(response.status(), 200);
    let heard = versions_until(&mut streams[1], 5).await;
    assert_eq!(heard.last().map(|e| e.event.as_str()), Some("chat"));
    let mut later = nodes[2].events(&room).await;
    let snapshot = later.expect_snapshot().await;
    let texts: Vec<&str> = snapshot["chat"]
        .as_array()
        .expect("chat array")
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(texts, ["three", "four"]);
}

async fn a_stalled_redis_gives_fast_503s_then_recovery_without_a_gap(shared: &Shared) {
    let nodes = nodes_on(shared, &["--redis-timeout", "1", "--keepalive", "0.5"]).await;
    let (room, token) = nodes[0].video_room().await;
    let mut listener = nodes[1].events(&room).await;
    listener.expect_snapshot().await;
    nodes[0]
        .command_ok(&room, Some(&token), json!({"type": "play"}))
        .await;
    assert_eq!(listener.expect_versioned().await.id_num(), 2);

    shared.signal_room(&room, "STOP").await;
    let started = std::time::Instant::now();
    let refused = nodes[2]
        .command(&room, Some(&token), json!({"type": "seek", "position": 5}))
        .await;
    let waited = started.elapsed();
    let headers = assert_error(refused, 503, "unavailable").await;
    assert!(headers.contains_key("retry-after"));
    // Bounded by the timeout, not by Redis: generous for a loaded machine.
    assert!(waited < Duration::from_secs(8), "503 after {waited:?}");
    assert_eq!(nodes[0].get("/readyz").await.status(), 503);
    // The stream stays open on keepalives meanwhile.
    listener.expect_quiet(Duration::from_millis(1500)).await;

    shared.signal_room(&room, "CONT").await;
    wait_healthy(&nodes[0]).await;
    // The refused command changed nothing; what follows is gapless everywhere.
    nodes[2]
        .command_ok(&room, Some(&token), json!({"type": "pause"}))
        .await;
    let next = listener.expect_versioned().await;
    assert_eq!(
        next.id_num(),
        3,
        "no version was spent by the refused command"
    );
    assert_eq!(next.json()["cause"], "pause");
    assert_eq!(
        nodes[1].get_room(&room).await["state"]["position"]
            .as_f64()
            .map(|p| p < 5.0),
        Some(true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_redis_connection_is_caught_up_with_no_silent_gap() {
    let redis = Redis::start().await;
    let nodes = cluster(&redis, &["--keepalive", "0.5"]).await;
    let (room, token) = nodes[0].video_room().await;
    let mut listener = nodes[1].events(&room).await;
    listener.expect_snapshot().await;
    // Drop every client connection of Redis (node 1's subscription included);
    // commit through node 0 at once, while node 1 may not be resubscribed yet.
    let mut admin = tokio::net::TcpStream::connect(("127.0.0.1", redis.port))
        .await
        .expect("connect redis");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    admin
        .write_all(b"CLIENT KILL TYPE pubsub\r\n")
        .await
        .expect("write");
    let mut reply = [0u8; 64];
    let _ = admin.read(&mut reply).await;
    for position in 1..=3 {
        nodes[0]
            .command_ok(
                &room,
                Some(&token),
                json!({"type": "seek", "position": position}),
            )
            .await;
    }
    let events = versions_until(&mut listener, 4).await;
    assert_gapless(&events, 2);
}

/// A node as its own process, so it can be killed outright.
struct NodeProcess {
    child: Child,
    app: TestApp,
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn node_process(shared: &Shared) -> NodeProcess {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_syncroom"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(shared.args())
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn syncroom");
    let addr = format!("127.0.0.1:{port}").parse().expect("addr");
    let app = TestApp {
        addr,
        base: format!("http://{addr}"),
        client: http_client(),
        shutdown: tokio_util::sync::CancellationToken::new(),
        server: None,
    };
    wait_healthy(&app).await;
    NodeProcess { child, app }
}

async fn killing_a_node_loses_no_room(shared: &Shared) {
    let mut doomed = node_process(shared).await;
    let target = shared.args();
    let survivor = spawn_app(&[target[0].as_str(), target[1].as_str()]).await;
    wait_healthy(&survivor).await;
    let (room, token) = doomed.app.video_room().await;
    doomed
        .app
        .command_ok(
            &room,
            Some(&token),
            json!({"type": "queue_add", "video_id": "9bZkp7q19f0"}),
        )
        .await;
    let mut stream = doomed.app.events(&room).await;
    stream.expect_snapshot().await;
    let before = doomed.app.get_room(&room).await;
    // The doomed node's listener is counted before it dies: otherwise the
    // count below could be right at once, having proved nothing.
    survivor.wait_listeners(&room, 1).await;

    doomed.child.kill().expect("SIGKILL the node");
    let _ = doomed.child.wait();

    let after = survivor.get_room(&room).await;
    assert_eq!(fingerprint(&after), fingerprint(&before));
    let answer = survivor
        .command_ok(&room, Some(&token), json!({"type": "play"}))
        .await;
    assert_eq!(answer["version"], 3);
    // The dead node's listener falls out of the count (its report expires).
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let mut watcher = survivor.events(&room).await;
        let snapshot: Value = watcher.expect_snapshot().await;
        if snapshot["listeners"] == 1 {
            break;
        }
        drop(watcher);
        assert!(
            Instant::now() < deadline,
            "dead node still counted: {snapshot}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_reports_taken_by_different_nodes_are_counted_together() {
    let redis = Redis::start().await;
    let nodes = cluster(&redis, &[]).await;
    let (room, _token) = nodes[0].video_room().await;
    // Six listeners, two streams on each node; each reports to the next node.
    let mut streams = Vec::new();
    let mut tied = Vec::new();
    for i in 0..6usize {
        let mut stream = nodes[i % 3].events(&room).await;
        let token = loop {
            match stream.next_item(WAIT).await {
                Some(SseItem::Hello(hello)) => {
                    break hello["stream_token"].as_str().expect("token").to_owned()
                }
                Some(_) => continue,
                None => panic!("the stream ended before its hello"),
            }
        };
        let reporter = &nodes[(i + 1) % 3];
        // 3 and 4 drift alike: listed by stream id, as one node lists them. The
        // drift is rounded to 0.1 ms when taken, the same in Lua as in Rust.
        let p95 = match i {
            0 => 200.0,
            3 | 4 => 90.04,
            _ => 10.0 + i as f64,
        };
        let mut body = json!({"stream_token": token, "drift_p50_ms": 1.0, "drift_p95_ms": p95, "player": "sim"});
        // Who is behind, by name: one drifting (a name that JSON and the Lua
        // store must both keep whole), one stalled.
        if i == 0 {
            body["name"] = json!("Zoë \"DJ\": 1/2");
        }
        if i == 1 {
            body["buffering"] = json!(true);
        }
        if i == 3 || i == 4 {
            body["name"] = json!(format!("Tie {i}"));
            // A stream token starts with its stream's id.
            let stream_id = token.split('.').next().expect("stream id").to_owned();
            tied.push((stream_id, format!("Tie {i}")));
        }
        let response = reporter
            .client
            .post(reporter.url(&format!("/api/rooms/{room}/sync")))
            .json(&body)
            .send()
            .await
            .expect("report");
        assert_eq!(response.status(), 200);
        streams.push(stream);
    }
    tied.sort();
    // The buffering one is left out of the drift p95: 5 playing reporters, the largest.
    let wanted = json!({"reporting": 6, "in_sync": 2, "drift_p95_ms": 200.0, "behind": [
        {"name": null, "drift_p95_ms": 11.0, "buffering": true},
        {"name": "Zoë \"DJ\": 1/2", "drift_p95_ms": 200.0, "buffering": false},
        {"name": tied[0].1, "drift_p95_ms": 90.0, "buffering": false},
        {"name": tied[1].1, "drift_p95_ms": 90.0, "buffering": false},
    ]});
    wait_sync_everywhere(&nodes, &room, &wanted).await;
    // A listener on any node hears the cluster-wide summary as a `sync` event.
    let sync = loop {
        let event = streams[5].expect_event().await;
        if event.event == "sync" && event.json() == wanted {
            break event;
        }
    };
    assert_eq!(sync.id, None);
    // The stream reported with p95 = 200 closes on node 0: every node stops counting it.
    drop(streams.remove(0));
    let wanted = json!({"reporting": 5, "in_sync": 2, "drift_p95_ms": 90.0, "behind": [
        {"name": null, "drift_p95_ms": 11.0, "buffering": true},
        {"name": tied[0].1, "drift_p95_ms": 90.0, "buffering": false},
        {"name": tied[1].1, "drift_p95_ms": 90.0, "buffering": false},
    ]});
    wait_sync_everywhere(&nodes, &room, &wanted).await;
}

/// Polls every node's `GET /api/rooms/{room}` until its `sync` is `wanted`.
async fn wait_sync_everywhere(nodes: &[TestApp], room: &str, wanted: &Value) {
    for node in nodes {
        let deadline = Instant::now() + WAIT;
        loop {
            let sync = node.get_room(room).await["sync"].clone();
            if &sync == wanted {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{sync} on a node, wanted {wanted}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Stream tokens must verify on any node: every node that joins the cluster,
/// even several at once, signs with the one key it found (or set) in Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_signs_stream_tokens_with_the_clusters_one_key() {
    use std::sync::Arc;
    use syncroom::actor::port::SharedRooms;
    use syncroom::backplane::redis::RedisSettings;
    use syncroom::backplane::RedisBackplane;
    use syncroom::http::stream_token::StreamTokens;

    let redis = Redis::start().await;
    let connect = || async {
        let settings = RedisSettings {
            url: redis.url(),
            timeout: Duration::from_secs(2),
            history: 16,
            history_bytes: 1 << 20,
            ttl: Duration::from_secs(60),
            max_queue: 10,
            chat_history: 0,
            sync: syncroom::Config::defaults().sync_rules(),
            max_persistent_rooms: 100,
        };
        RedisBackplane::connect(settings, Arc::new(syncroom::room::SystemClock))
            .await
            .expect("connect to the test redis")
    };
    let nodes = join_all((0..3).map(|_| connect())).await;
    let keys: Vec<[u8; 32]> = nodes.iter().map(|node| node.stream_key()).collect();
    assert!(
        keys.iter().all(|key| *key == keys[0]),
        "three nodes starting together agree on one key"
    );
    let age = Duration::from_secs(60);
    let issued = StreamTokens::new(keys[0], age).issue("party", unix_ms());
    let later = connect().await;
    assert_eq!(
        StreamTokens::new(later.stream_key(), age).verify("party", &issued.stream_token, unix_ms()),
        Ok(issued.stream),
        "a node that joins later checks a token an earlier node issued"
    );
}

// ---------------------------------------------------------------- who finds a room, who holds it

/// Runs `redis-cli` against the test's Redis; gives its output, trimmed.
fn redis_cli(redis: &Redis, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-p", &redis.port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli (installed with redis-server)");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn ids(rooms: &[Value]) -> Vec<&str> {
    rooms.iter().filter_map(|r| r["room_id"].as_str()).collect()
}

async fn visibility_set_on_one_node_is_what_every_node_lists(shared: &Shared) {
    let nodes = nodes_on(shared, &[]).await;
    let (room, token, _) = nodes[0].create_room(json!({"room_id": "party"})).await;
    let (public, _, _) = nodes[0]
        .create_room(json!({"room_id": "open-house", "visibility": "public"}))
        .await;
    for node in &nodes {
        assert_eq!(ids(&node.list_rooms().await), [public.as_str()]);
        assert_eq!(node.get_room(&room).await["visibility"], "unlisted");
    }
    let mut stream = nodes[2].events(&room).await;
    assert_eq!(stream.expect_snapshot().await["visibility"], "unlisted");

    nodes[1]
        .command_ok(
            &room,
            Some(&token),
            json!({"type": "visibility", "visibility": "public"}),
        )
        .await;
    let event = stream.expect_versioned().await;
    assert_eq!((event.event.as_str(), event.id_num()), ("visibility", 2));
    for node in &nodes {
        let listed = node.list_rooms().await;
        let mut listed = ids(&listed);
        listed.sort_unstable();
        assert_eq!(listed, [public.as_str(), room.as_str()]);
        assert_eq!(node.get_room(&room).await["visibility"], "public");
    }
    nodes[2]
        .command_ok(
            &room,
            Some(&token),
            json!({"type": "visibility", "visibility": "unlisted"}),
        )
        .await;
    for node in &nodes {
        assert_eq!(ids(&node.list_rooms().await), [public.as_str()]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_token_reset_on_one_node_stops_the_old_token_on_every_node() {
    let redis = Redis::start().await;
    let nodes = cluster(&redis, &[]).await;
    let (room, old) = nodes[0].video_room().await;
    // Every node serves the room (each has its mirror) before the reset.
    for node in &nodes {
        node.command_ok(&room, Some(&old), json!({"type": "seek", "position": 1}))
            .await;
    }
    let mut stream = nodes[0].events(&room).await;
    stream.expect_snapshot().await;
    let reset = nodes[1]
        .client
        .post(nodes[1].url(&format!("/api/rooms/{room}/host-token")))
        .bearer_auth(&old)
        .send()
        .await
        .expect("POST host-token");
    assert_eq!(reset.status(), 200);
    let answer: Value = reset.json().await.unwrap();
    let new = answer["host_token"].as_str().unwrap().to_owned();
    assert_eq!(stream.expect_versioned().await.event, "host_token");
    // At once, with no waiting: every node checks tokens against Redis.
    for node in &nodes {
        let refused = node
            .command(&room, Some(&old), json!({"type": "play"}))
            .await;
        assert_error(refused, 403, "forbidden").await;
        assert_error(node.delete_room(&room, Some(&old)).await, 403, "forbidden").await;
    }
    nodes[2]
        .command_ok(&room, Some(&new), json!({"type": "play"}))
        .await;
    // A reset without the token changes nothing, on any node.
    let anonymous = nodes[0]
        .client
        .post(nodes[0].url(&format!("/api/rooms/{room}/host-token")))
        .send()
        .await
        .unwrap();
    assert_error(anonymous, 401, "unauthorized").await;
    nodes[0]
        .command_ok(&room, Some(&new), json!({"type": "pause"}))
        .await;
}

async fn rooms_per_client_are_counted_over_the_whole_cluster(shared: &Shared) {
    let nodes = nodes_on(shared, &["--max-rooms-per-client", "2"]).await;
    let (first, token, _) = nodes[0].create_room(json!({"room_id": "first"})).await;
    nodes[1].create_room(json!({"room_id": "second"})).await;
    let refused = nodes[2]
        .client
        .post(nodes[2].url("/api/rooms"))
        .json(&json!({"room_id": "third"}))
        .send()
        .await
        .unwrap();
    let headers = assert_error(refused, 429, "rate_limited").await;
    assert_eq!(retry_after_secs(&headers), 60);
    assert_error(
        nodes[0].get("/api/rooms/third").await,
        404,
        "room_not_found",
    )
    .await;
    // Deleting one on any node frees its place on every node.
    assert_eq!(
        nodes[2].delete_room(&first, Some(&token)).await.status(),
        204
    );
    nodes[0].create_room(json!({"room_id": "third"})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_room_that_expires_stops_counting_for_its_creator() {
    let redis = Redis::start().await;
    // Nobody decrements anything when a room expires in Redis: the count is the
    // creator's rooms that still exist, so an expired one cannot leak.
    let nodes = cluster(
        &redis,
        &["--max-rooms-per-client", "1", "--room-ttl", "0.5"],
    )
    .await;
    nodes[0].create_room(json!({"room_id": "brief"})).await;
    let deadline = Instant::now() + WAIT;
    loop {
        let response = nodes[1]
            .client
            .post(nodes[1].url("/api/rooms"))
            .json(&json!({"room_id": "next"}))
            .send()
            .await
            .unwrap();
        if response.status() == 201 {
            break;
        }
        assert_error(response, 429, "rate_limited").await;
        assert!(Instant::now() < deadline, "the expired room still counts");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_error(
        nodes[2].get("/api/rooms/brief").await,
        404,
        "room_not_found",
    )
    .await;
    // The creator's set outlives its rooms, and holds no more than they are.
    let ttl: i64 = redis_cli(&redis, &["PTTL", "syncroom:creator:127.0.0.1"])
        .parse()
        .unwrap();
    assert!(ttl > 0, "the set of a creator expires: {ttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_cleared_on_one_node_is_gone_for_late_joiners_on_every_node() {
    let redis = Redis::start().await;
    let nodes = cluster(&redis, &[]).await;
    let (room, token, _) = nodes[0].create_room(json!({})).await;
    for text in ["one", "two"] {
        let said = nodes[0]
            .chat(&room, json!({"name": "Ann", "text": text}))
            .await;
        assert_eq!(said.status(), 200);
    }
    let list = format!("syncroom:{{{room}}}:chat");
    assert_eq!(redis_cli(&redis, &["LLEN", &list]), "2");
    let mut stream = nodes[2].events(&room).await;
    assert_eq!(
        stream.expect_snapshot().await["chat"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    nodes[1]
        .command_ok(&room, Some(&token), json!({"type": "clear_chat"}))
        .await;
    assert_eq!(stream.expect_versioned().await.event, "chat_cleared");
    assert_eq!(redis_cli(&redis, &["LLEN", &list]), "0");
    for node in &nodes {
        let mut late = node.events(&room).await;
        assert_eq!(late.expect_snapshot().await["chat"], json!([]));
    }
    // Chat turned off on one node is off on every node.
    nodes[2]
        .command_ok(
            &room,
            Some(&token),
            json!({"type": "chat_enabled", "chat_enabled": false}),
        )
        .await;
    for node in &nodes {
        let refused = node
            .chat(&room, json!({"name": "Ann", "text": "three"}))
            .await;
        assert_error(refused, 400, "invalid_command").await;
    }
}

/// The next `state` event's data, skipping presence and gate progress.
async fn next_state(stream: &mut SseStream) -> SseEvent {
    loop {
        let event = stream.expect_event().await;
        match event.event.as_str() {
            "presence" | "gate" => continue,
            "state" => return event,
            other => panic!("expected a state event, got {other}: {event:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ready_gate_counts_pages_on_every_node_and_one_start_is_committed() {
    let redis = Redis::start().await;
    let nodes = cluster(&redis, STRICT_GATE).await;
    let (room, token) = nodes[0].video_room().await;
    // Pages taking part on nodes 0 and 1; a plain listener on node 2.
    let mut streams = Vec::new();
    let mut tokens = Vec::new();
    for node in &nodes[..2] {
        let (stream, stream_token) = node.gate_listener(&room).await;
        tokens.push(stream_token);
        streams.push(stream);
    }
    let mut plain = nodes[2].events(&room).await;
    plain.expect_snapshot().await;
    streams.push(plain);
    for node in &nodes {
        node.wait_listeners(&room, 3).await;
    }
    nodes[2]
        .command_ok(
            &room,
            Some(&token),
            json!({"type": "load", "video_id": "9bZkp7q19f0"}),
        )
        .await;
    let loaded = next_state(&mut streams[0]).await;
    let gate = loaded.json()["state"]["ready_gate"]
        .as_u64()
        .expect("the load opened a gate");
    // Each page reports through another node than the one holding its stream.
    let first: Value = nodes[2]
        .ready(&room, &tokens[0], gate)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (first["ready"].clone(), first["listeners"].clone()),
        (json!(1), json!(2))
    );
    let second: Value = nodes[0]
        .ready(&room, &tokens[1], gate)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["ready"], 2);
    // A late report through the third node finds the gate gone and commits nothing.
    nodes[1].ready(&room, &tokens[0], gate).await;

    let ready = next_state(&mut streams[0]).await;
    assert_eq!(ready.json()["cause"], "ready");
    let started = next_state(&mut streams[0]).await;
    assert_eq!(started.json()["cause"], "start");
    assert_eq!(started.id_num(), ready.id_num() + 1);
    for stream in &mut streams[1..] {
        let events = versions_until(stream, started.id_num()).await;
        let tail: Vec<&str> = events[events.len() - 3..]
            .iter()
            .map(|e| e.data.as_str())
            .collect();
        assert_eq!(
            tail,
            [
                loaded.data.as_str(),
                ready.data.as_str(),
                started.data.as_str()
            ]
        );
    }
    for stream in &mut streams {
        stream.expect_quiet(QUIET).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_leaving_an_open_gate_lets_the_ready_ones_start_on_every_node() {
    let redis = Redis::start().await;
    let nodes = cluster(&redis, STRICT_GATE).await;
    let (room, token) = nodes[0].video_room().await;
    let (mut ready_page, ready_token) = nodes[0].gate_listener(&room).await;
    let (stuck_page, _) = nodes[1].gate_listener(&room).await;
    let mut watcher = nodes[2].events(&room).await;
    watcher.expect_snapshot().await;
    for node in &nodes {
        node.wait_listeners(&room, 3).await;
    }
    nodes[2]
        .command_ok(
            &room,
            Some(&token),
            json!({"type": "load", "video_id": "9bZkp7q19f0"}),
        )
        .await;
    let loaded = next_state(&mut watcher).await;
    let gate = loaded.json()["state"]["ready_gate"]
        .as_u64()
        .expect("the load opened a gate");
    let progress: Value = nodes[2]
        .ready(&room, &ready_token, gate)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (progress["ready"].clone(), progress["listeners"].clone()),
        (json!(1), json!(2))
    );
    // The page that never reports goes away on another node than the ready one:
    // the one left is the whole quorum, long before the 30 s deadline.
    drop(stuck_page);
    let ready = next_state(&mut watcher).await;
    assert_eq!(ready.json()["cause"], "ready");
    assert_eq!(ready.json()["state"]["ready_gate"], Value::Null);
    let started = next_state(&mut watcher).await;
    assert_eq!(started.json()["cause"], "start");
    assert_eq!(started.id_num(), ready.id_num() + 1);
    let events = versions_until(&mut ready_page, started.id_num()).await;
    assert_eq!(events[events.len() - 2].data, ready.data);
    watcher.expect_quiet(QUIET).await;
}

/// Opens an event stream, retrying while the node answers `503` (a node whose
/// shard just failed over may not have caught up yet: it says so rather than
/// serve what it last knew).
async fn open_when_answered(node: &TestApp, path: &str) -> SseStream {
    let started = Instant::now();
    loop {
        let response = node.get(path).await;
        if response.status() == 200 {
            return SseStream::from_response(response);
        }
        assert_eq!(response.status(), 503, "{path}");
        assert!(started.elapsed() < WAIT, "{path} still 503 after {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How a command sent during a failover was answered.
#[derive(Debug)]
enum Answer {
    Applied(u64),
    Unavailable,
}

/// Sends seeks (position `i`, each its own) through the nodes in turn until
/// `stop`, and gives back each one's answer: applied, or `503` (anything else
/// fails the test).
async fn seek_until(
    nodes: std::sync::Arc<Vec<TestApp>>,
    room: String,
    token: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<(u64, Answer)> {
    let mut answers = Vec::new();
    let mut position = 1;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let node = &nodes[position as usize % nodes.len()];
        let response = node
            .command(
                &room,
                Some(&token),
                json!({"type": "seek", "position": position}),
            )
            .await;
        let answer = match response.status().as_u16() {
            200 => {
                let body: Value = response.json().await.expect("JSON answer");
                Answer::Applied(body["version"].as_u64().expect("version"))
            }
            503 => Answer::Unavailable,
            other => panic!("a command during a failover answered {other}"),
        };
        answers.push((position, answer));
        position += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    answers
}

/// What a listener saw from `version` until `last`: every event is the next
/// version, or a fresh snapshot; never a gap or a version twice.
async fn assert_gapless_or_resynced(stream: &mut SseStream, from: u64, last: u64) -> Vec<f64> {
    let mut version = from;
    let mut positions = Vec::new();
    while version < last {
        let event = stream.expect_versioned().await;
        if event.event == "snapshot" {
            version = event.json()["version"].as_u64().expect("version");
            continue;
        }
        assert_eq!(
            event.id_num(),
            version + 1,
            "a gap or a duplicate: {event:?}"
        );
        version += 1;
        if let Some(position) = event.json()["state"]["position"].as_f64() {
            positions.push(position);
        }
    }
    assert_eq!(version, last, "the listener ends on the final version");
    positions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_failover_loses_no_listener_and_a_refused_command_changes_nothing() {
    let mut shared = Shared::cluster().await;
    let nodes = nodes_on(&shared, &["--redis-timeout", "1", "--history", "1000"]).await;
    let (room, token) = nodes[0].video_room().await;
    let mut streams = Vec::new();
    for node in &nodes {
        let mut stream = node.events(&room).await;
        stream.expect_snapshot().await;
        streams.push(stream);
    }
    let nodes = std::sync::Arc::new(nodes);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let commands = tokio::spawn(seek_until(
        nodes.clone(),
        room.clone(),
        token.clone(),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let key = format!("syncroom:{{{room}}}:room");
    shared.as_cluster().kill_primary_of(&key).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let answers = commands.await.expect("the commands ran");
    // The shard answers again: a last command goes through.
    let deadline = Instant::now() + WAIT;
    let last = loop {
        let response = nodes[0]
            .command(&room, Some(&token), json!({"type": "pause"}))
            .await;
        if response.status() == 200 {
            let body: Value = response.json().await.expect("JSON answer");
            break body["version"].as_u64().expect("version");
        }
        assert!(Instant::now() < deadline, "the room never answered again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for stream in &mut streams {
        assert_gapless_or_resynced(stream, 1, last).await;
    }
    // The history every node replays from: gapless, and without a refused command.
    let mut replay = open_when_answered(
        &nodes[2],
        &format!("/api/rooms/{room}/events?last_event_id=1"),
    )
    .await;
    let kept = versions_until(&mut replay, last).await;
    assert_gapless(&kept, 2);
    let refused: Vec<f64> = answers
        .iter()
        .filter(|(_, answer)| matches!(answer, Answer::Unavailable))
        .map(|(position, _)| *position as f64)
        .collect();
    for event in &kept {
        let position = event.json()["state"]["position"].as_f64();
        assert!(
            position.is_none_or(|p| !refused.contains(&p)),
            "a command answered 503 was applied: {event:?}"
        );
    }
    let applied: Vec<u64> = answers
        .iter()
        .filter_map(|(_, answer)| match answer {
            Answer::Applied(version) => Some(*version),
            Answer::Unavailable => None,
        })
        .collect();
    assert!(!applied.is_empty(), "{answers:?}");
    assert!(
        applied.iter().all(|v| *v <= last),
        "{applied:?} then {last}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_lost_in_a_failover_and_reused_gives_its_listeners_a_snapshot() {
    let mut shared = Shared::cluster().await;
    let nodes = nodes_on(&shared, &["--redis-timeout", "1"]).await;
    let (room, token) = nodes[0].video_room().await;
    let mut streams = Vec::new();
    for node in &nodes {
        let mut stream = node.events(&room).await;
        stream.expect_snapshot().await;
        streams.push(stream);
    }
    let key = format!("syncroom:{{{room}}}:room");
    shared.as_cluster().isolate_replicas_of(&key).await;
    // Acknowledged and published, but never replicated.
    let lost = nodes[1]
        .command_ok(
            &room,
            Some(&token),
            json!({"type": "seek", "position": 111}),
        )
        .await;
    assert_eq!(lost["version"], 2);
    for stream in &mut streams {
        let seen = stream.expect_versioned().await;
        assert_eq!(
            (seen.id_num(), seen.json()["state"]["position"].as_f64()),
            (2, Some(111.0))
        );
    }
    shared.as_cluster().kill_primary_of(&key).await;
    // The replica that took over never had version 2: the next command
    // commits another version 2.
    let deadline = Instant::now() + WAIT;
    loop {
        let response = nodes[2]
            .command(
                &room,
                Some(&token),
                json!({"type": "seek", "position": 222}),
            )
            .await;
        if response.status() == 200 {
            let body: Value = response.json().await.expect("JSON answer");
            assert_eq!(body["version"], 2, "the lost version is reused");
            break;
        }
        assert_eq!(response.status(), 503);
        assert!(Instant::now() < deadline, "the room never answered again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A node whose mirror still holds the lost version answers 503, having
    // changed nothing, until it has started over.
    let deadline = Instant::now() + WAIT;
    while nodes[0]
        .command(
            &room,
            Some(&token),
            json!({"type": "seek", "position": 333}),
        )
        .await
        .status()
        != 200
    {
        assert!(
            Instant::now() < deadline,
            "node 0 never took a command again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every listener that saw the lost version gets a snapshot before
    // anything else, never the other version 2 as if it followed.
    for (i, stream) in streams.iter_mut().enumerate() {
        let next = stream.expect_versioned().await;
        assert_eq!(next.event, "snapshot", "listener {i}: {next:?}");
        let from = next.json()["version"].as_u64().expect("version");
        assert_gapless_or_resynced(stream, from, 3).await;
    }
    // A client that got the lost version 2 resumes from it: on a node that
    // saw it, and on one that started after it was lost. Both replay 3 after
    // a version 2 that is not the one the client has: a snapshot instead.
    let target = shared.args();
    let mut args: Vec<&str> = target.iter().map(String::as_str).collect();
    args.extend(["--redis-timeout", "1"]);
    let late = spawn_app(&args).await;
    wait_healthy(&late).await;
    let resume_at_lost = format!("/api/rooms/{room}/events?last_event_id=2");
    for node in [&nodes[1], &late] {
        let mut resumed = open_when_answered(node, &resume_at_lost).await;
        let first = resumed.expect_versioned().await;
        assert_eq!(first.event, "snapshot", "{first:?}");
        assert_eq!(
            (first.id_num(), first.json()["state"]["position"].as_f64()),
            (3, Some(333.0))
        );
        streams.push(resumed);
    }
    // A resume from before the lost version is replayed exactly, as ever.
    let mut replayed =
        open_when_answered(&late, &format!("/api/rooms/{room}/events?last_event_id=1")).await;
    let kept = versions_until(&mut replayed, 3).await;
    let positions: Vec<_> = kept
        .iter()
        .map(|e| {
            (
                e.event.as_str(),
                e.id_num(),
                e.json()["state"]["position"].as_f64(),
            )
        })
        .collect();
    assert_eq!(
        positions,
        [("state", 2, Some(222.0)), ("state", 3, Some(333.0))]
    );
    streams.push(replayed);
    // And everyone goes on to the same final version.
    let last = late
        .command_ok(
            &room,
            Some(&token),
            json!({"type": "seek", "position": 444}),
        )
        .await;
    assert_eq!(last["version"], 4);
    for stream in &mut streams {
        assert_gapless_or_resynced(stream, 3, 4).await;
    }
    for node in nodes.iter().chain([&late]) {
        assert_eq!(node.get_room(&room).await["state"]["position"], 444.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_wait_replicas_an_answered_command_survives_its_primary_and_a_shortfall_still_succeeds(
) {
    let mut shared = Shared::cluster().await;
    let nodes = nodes_on(
        &shared,
        &["--redis-wait-replicas", "1", "--redis-timeout", "1"],
    )
    .await;
    let (room, token) = nodes[0].video_room().await;
    let answer = nodes[0]
        .command_ok(
            &room,
            Some(&token),
            json!({"type": "seek", "position": 111}),
        )
        .await;
    assert_eq!(answer["version"], 2);
    // The room's primary was asked to wait for the replica, once per commit.
    let key = format!("syncroom:{{{room}}}:room");
    let primary = shared.as_cluster().owner_of(&key).await.primary;
    let stats: String =
        common::redis_cluster::query(primary, ::redis::cmd("INFO").arg("commandstats"))
            .await
            .expect("INFO commandstats");
    assert!(stats.contains("cmdstat_wait:calls=1,"), "{stats}");
    // Killed the moment the answer came: its replica had the command already.
    shared.as_cluster().kill_primary_of(&key).await;
    let seen = room_when_answered(&nodes[1], &room).await;
    assert_eq!(seen["version"], 2);
    assert_eq!(seen["state"]["position"], 111.0);
    // The new primary has no replica left: the wait runs out, and the
    // command, committed, still succeeds.
    let deadline = Instant::now() + WAIT;
    loop {
        let response = nodes[2]
            .command(
                &room,
                Some(&token),
                json!({"type": "seek", "position": 222}),
            )
            .await;
        if response.status() == 200 {
            break;
        }
        assert_eq!(response.status(), 503);
        assert!(Instant::now() < deadline, "the room never took a command");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = room_when_answered(&nodes[0], &room).await;
    assert_eq!(seen["state"]["position"], 222.0);
}

/// The room as `node` serves it, retrying while it answers `503` (its shard
/// just failed over).
async fn room_when_answered(node: &TestApp, room: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let response = node.get(&format!("/api/rooms/{room}")).await;
        if response.status() == 200 {
            return response.json().await.expect("JSON room");
        }
        assert_eq!(response.status(), 503);
        assert!(Instant::now() < deadline, "the room never answered again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_and_the_metrics_name_a_cluster_shard_that_does_not_answer() {
    let mut shared = Shared::cluster().await;
    let nodes = nodes_on(&shared, &["--redis-timeout", "1"]).await;
    let metrics = nodes[0]
        .get("/metrics")
        .await
        .text()
        .await
        .expect("metrics");
    let up: Vec<&str> = metrics
        .lines()
        .filter(|line| line.starts_with("syncroom_redis_up{"))
        .collect();
    assert_eq!(up.len(), 3, "one gauge per shard:\n{metrics}");
    assert!(up.iter().all(|line| line.ends_with(" 1")), "{up:?}");
    let gone = shared
        .as_cluster()
        .kill_shard_of("syncroom:{any}:room")
        .await;
    let response = nodes[0].get("/readyz").await;
    let headers = assert_error(response, 503, "unavailable").await;
    assert!(headers.contains_key("retry-after"));
    let body: Value = nodes[0].get("/readyz").await.json().await.expect("JSON");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.contains(&format!("127.0.0.1:{gone} (slots ")),
        "{message}"
    );
    let metrics = nodes[0]
        .get("/metrics")
        .await
        .text()
        .await
        .expect("metrics");
    let down: Vec<&str> = metrics
        .lines()
        .filter(|line| line.starts_with("syncroom_redis_up{") && line.ends_with(" 0"))
        .collect();
    assert_eq!(down.len(), 1, "{metrics}");
    assert!(down[0].contains(&format!("127.0.0.1:{gone} ")), "{down:?}");
}
