//! Many hands in one room: who may do what (`permissions`), and co-hosts.
//! Each test body runs on one node, and on three nodes sharing one real
//! `redis-server` started on a free port, every request going to the next
//! node in turn.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tokio::time::Instant;

const VIDEO: &str = "dQw4w9WgXcQ";
const OTHER: &str = "9bZkp7q19f0";

/// The tables create a room per case, from one address.
const MANY_ROOMS: &[&str] = &[
    "--rooms-burst",
    "100",
    "--max-rooms-per-client",
    "100",
    "--chat-burst",
    "100",
];

async fn one_node() -> Vec<TestApp> {
    vec![spawn_app(MANY_ROOMS).await]
}

async fn three_nodes(redis: &Redis) -> Vec<TestApp> {
    let url = redis.url();
    let mut nodes = Vec::new();
    for _ in 0..3 {
        let mut args = vec!["--redis", url.as_str()];
        args.extend_from_slice(MANY_ROOMS);
        let node = spawn_app(&args).await;
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(response) = node.client.get(node.url("/readyz")).send().await {
                if response.status() == 200 {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "node never became ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        nodes.push(node);
    }
    nodes
}

/// The nodes, taken in turn.
struct Nodes {
    nodes: Vec<TestApp>,
    turn: std::cell::Cell<usize>,
}

impl Nodes {
    fn new(nodes: Vec<TestApp>) -> Self {
        Self {
            nodes,
            turn: std::cell::Cell::new(0),
        }
    }

    fn next(&self) -> &TestApp {
        let turn = self.turn.get();
        self.turn.set(turn + 1);
        &self.nodes[turn % self.nodes.len()]
    }

    async fn add_cohost(&self, room: &str, host: &str, name: &str) -> Value {
        let node = self.next();
        let response = node
            .client
            .post(node.url(&format!("/api/rooms/{room}/cohosts")))
            .bearer_auth(host)
            .json(&json!({ "name": name }))
            .send()
            .await
            .expect("POST cohosts");
        assert_eq!(response.status(), 201, "add co-host");
        response.json().await.expect("co-host JSON")
    }

    async fn cohosts(&self, room: &str, token: Option<&str>) -> reqwest::Response {
        let node = self.next();
        let mut request = node
            .client
            .get(node.url(&format!("/api/rooms/{room}/cohosts")));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("GET cohosts")
    }

    async fn revoke(&self, room: &str, token: &str, cohost_id: &str) -> reqwest::Response {
        let node = self.next();
        node.client
            .delete(node.url(&format!("/api/rooms/{room}/cohosts/{cohost_id}")))
            .bearer_auth(token)
            .send()
            .await
            .expect("DELETE cohost")
    }

    /// A group's action: a command, or a chat message for `chat`.
    async fn act(&self, room: &str, group: &str, token: Option<&str>) -> reqwest::Response {
        let node = self.next();
        let command = match group {
            "playback" => json!({"type": "seek", "position": 1}),
            "queue_add" => json!({"type": "queue_add", "video_id": OTHER}),
            "queue_edit" => json!({"type": "queue_move", "item_id": "q1", "index": 0}),
            "skip" => json!({"type": "next"}),
            // A stream nobody has: allowed, it changes nothing.
            "moderate" => json!({"type": "kick", "stream": "0123456789abcdef0123456789abcdef"}),
            "chat" => {
                let mut request = node
                    .client
                    .post(node.url(&format!("/api/rooms/{room}/chat")))
                    .json(&json!({"name": "Ann", "text": "hi"}));
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                return request.send().await.expect("POST chat");
            }
            other => panic!("no action for {other}"),
        };
        node.command(room, token, command).await
    }
}

/// A host room with a video and one queued item (`q1`), and a co-host.
async fn room_with_cohost(nodes: &Nodes) -> (String, String, String, String) {
    let (room, host, _) = nodes.next().create_room(json!({ "video_id": VIDEO })).await;
    nodes
        .next()
        .command_ok(
            &room,
            Some(&host),
            json!({"type": "queue_add", "video_id": OTHER}),
        )
        .await;
    let cohost = nodes.add_cohost(&room, &host, "Bo").await;
    let id = cohost["cohost_id"].as_str().expect("cohost_id").to_owned();
    let token = cohost["cohost_token"]
        .as_str()
        .expect("cohost_token")
        .to_owned();
    (room, host, id, token)
}

async fn expect_status(response: reqwest::Response, status: u16, what: &str) -> Value {
    let got = response.status().as_u16();
    let text = response.text().await.expect("body");
    assert_eq!(got, status, "{what}: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// The 401 message of an action of `group` given to `who`, sent without a token.
fn token_needed(group: &str, who: &str) -> String {
    match who {
        "host" => format!("{group} is for the host: send `Authorization: Bearer <host_token>`"),
        _ => format!("{group} is for the host and co-hosts: send `Authorization: Bearer <token>`"),
    }
}

async fn permission_table(nodes: Nodes) {
    let groups = [
        "playback",
        "queue_add",
        "queue_edit",
        "skip",
        "moderate",
        "chat",
    ];
    for group in groups {
        for who in ["host", "cohost", "anyone"] {
            if (group, who) == ("moderate", "anyone") {
                // Refused as a value: see the settings test.
                continue;
            }
            let (room, host, _, cohost) = room_with_cohost(&nodes).await;
            let answer = nodes
                .next()
                .command_ok(
                    &room,
                    Some(&host),
                    json!({"type": "permissions", "permissions": { group: who }}),
                )
                .await;
            assert_eq!(answer["room"]["permissions"][group], who);
            let what = format!("{group} for {who}");
            // Without a token: 401 unless anyone may.
            let none = nodes.act(&room, group, None).await;
            if who == "anyone" {
                expect_status(none, 200, &what).await;
            } else {
                let body = expect_status(none, 401, &what).await;
                assert_error_shape(&body, "unauthorized");
                assert_eq!(body["error"]["message"], token_needed(group, who), "{what}");
            }
            // A co-host: 403 naming the group and who may, unless co-hosts may.
            let by_cohost = nodes.act(&room, group, Some(&cohost)).await;
            if who == "host" {
                let body = expect_status(by_cohost, 403, &what).await;
                assert_error_shape(&body, "forbidden");
                assert_eq!(
                    body["error"]["message"],
                    format!("{group} is for the host"),
                    "{what}"
                );
            } else {
                expect_status(by_cohost, 200, &what).await;
            }
            // A wrong token is refused wherever a token is needed.
            if who != "anyone" {
                let wrong = nodes.act(&room, group, Some("not-a-token")).await;
                assert_error(wrong, 403, "forbidden").await;
            }
            expect_status(nodes.act(&room, group, Some(&host)).await, 200, &what).await;
        }
    }
}

async fn control_is_derived_and_settings_stay_the_hosts(nodes: Nodes) {
    let (room, host, _, cohost) = room_with_cohost(&nodes).await;
    let snapshot = nodes.next().get_room(&room).await;
    assert_eq!(snapshot["control"], "host");
    assert_eq!(
        snapshot["permissions"],
        json!({"playback": "host", "queue_add": "host", "queue_edit": "host",
               "skip": "host", "moderate": "host", "chat": "anyone"})
    );
    let custom = json!({"type": "permissions", "permissions": {"queue_add": "anyone"}});
    let answer = nodes.next().command_ok(&room, Some(&host), custom).await;
    assert_eq!(answer["room"]["control"], "custom");
    let open = json!({"type": "control", "control": "open"});
    let answer = nodes.next().command_ok(&room, Some(&host), open).await;
    assert_eq!(answer["room"]["control"], "open");
    assert_eq!(answer["room"]["permissions"]["moderate"], "host");
    // Host only, always: even a co-host is refused, naming the command.
    for command in [
        json!({"type": "control", "control": "host"}),
        json!({"type": "permissions", "permissions": {"chat": "host"}}),
        json!({"type": "visibility", "visibility": "public"}),
        json!({"type": "chat_enabled", "chat_enabled": false}),
        json!({"type": "clear_chat"}),
        json!({"type": "ready_gate", "quorum": 50, "deadline_ms": 1000}),
        json!({"type": "persistent", "persistent": true}),
        json!({"type": "vote_skip", "ratio": 0.5, "min_votes": 1}),
    ] {
        let name = command["type"].as_str().unwrap_or_default().to_owned();
        let by_cohost = nodes
            .next()
            .command(&room, Some(&cohost), command.clone())
            .await;
        let body = expect_status(by_cohost, 403, &name).await;
        assert_eq!(body["error"]["message"], format!("{name} is for the host"));
        let anonymous = nodes.next().command(&room, None, command).await;
        let body = expect_status(anonymous, 401, &name).await;
        assert_eq!(body["error"]["message"], token_needed(&name, "host"));
    }
    for bad in [
        json!({"moderate": "anyone"}),
        json!({"dance": "host"}),
        json!({"chat": "everyone"}),
    ] {
        let command = json!({"type": "permissions", "permissions": bad});
        let refused = nodes.next().command(&room, Some(&host), command).await;
        assert_error(refused, 400, "invalid_value").await;
    }
}

async fn a_cohost_token_works_until_it_is_revoked(nodes: Nodes) {
    let (room, host, id, cohost) = room_with_cohost(&nodes).await;
    let give = json!({"type": "permissions", "permissions": {"playback": "cohost"}});
    nodes.next().command_ok(&room, Some(&host), give).await;
    let mut events = nodes.next().events(&room).await;
    events.expect_snapshot().await;
    let pause = json!({"type": "pause", "position": 2});
    nodes.next().command_ok(&room, Some(&cohost), pause).await;
    // The list shows ids and names, never tokens; only to the host.
    let listed = expect_status(nodes.cohosts(&room, Some(&host)).await, 200, "list").await;
    assert_eq!(
        listed,
        json!({"cohosts": [{"cohost_id": id, "name": "Bo"}]})
    );
    assert_error(nodes.cohosts(&room, None).await, 401, "unauthorized").await;
    assert_error(nodes.cohosts(&room, Some(&cohost)).await, 403, "forbidden").await;
    // A host token reset leaves co-hosts alone.
    let node = nodes.next();
    let reset = node
        .client
        .post(node.url(&format!("/api/rooms/{room}/host-token")))
        .bearer_auth(&host)
        .send()
        .await
        .expect("reset");
    let reset = expect_status(reset, 200, "reset").await;
    let host = reset["host_token"].as_str().expect("host_token").to_owned();
    let seek = json!({"type": "seek", "position": 3});
    nodes
        .next()
        .command_ok(&room, Some(&cohost), seek.clone())
        .await;
    expect_status(nodes.revoke(&room, &host, &id).await, 204, "revoke").await;
    let refused = nodes.next().command(&room, Some(&cohost), seek).await;
    let body = expect_status(refused, 403, "revoked").await;
    assert_error_shape(&body, "forbidden");
    assert_eq!(
        body["error"]["message"],
        "this token is neither the room's host token nor a live co-host's"
    );
    assert_error(nodes.revoke(&room, &host, &id).await, 404, "not_found").await;
    // Each add and revoke was one `cohosts` event (after the commands' states).
    let mut cohost_events = Vec::new();
    let deadline = Instant::now() + WAIT;
    while cohost_events.is_empty() {
        assert!(Instant::now() < deadline, "no cohosts event");
        let event = events.expect_versioned().await;
        if event.event == "cohosts" {
            cohost_events.push(event.json());
        }
    }
    assert_eq!(cohost_events[0]["cohosts"], json!([]));
    let snapshot = nodes.next().get_room(&room).await;
    assert_eq!(snapshot["cohosts"], json!([]));
}

/// `--max-cohosts` bounds a room's co-hosts; a revoked one frees its place.
#[tokio::test]
async fn a_room_holds_at_most_max_cohosts_cohosts() {
    let node = spawn_app(&["--max-cohosts", "2"]).await;
    let nodes = Nodes::new(vec![node]);
    let (room, host, _) = nodes.next().create_room(json!({})).await;
    nodes.add_cohost(&room, &host, "Ann").await;
    let bo = nodes.add_cohost(&room, &host, "Bo").await;
    let node = nodes.next();
    let add = |name: &str| {
        node.client
            .post(node.url(&format!("/api/rooms/{room}/cohosts")))
            .bearer_auth(&host)
            .json(&json!({ "name": name }))
            .send()
    };
    let full = add("Cy").await.expect("POST cohosts");
    let body = expect_status(full, 400, "a third").await;
    assert_error_shape(&body, "invalid_value");
    assert_eq!(
        body["error"]["message"],
        "this room has 2 co-hosts, the most it may have"
    );
    let bo_id = bo["cohost_id"].as_str().expect("cohost_id");
    expect_status(nodes.revoke(&room, &host, bo_id).await, 204, "revoke").await;
    let again = add("Cy").await.expect("POST cohosts");
    expect_status(again, 201, "a place freed").await;
}

#[tokio::test]
async fn the_permission_table_on_one_node() {
    permission_table(Nodes::new(one_node().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_permission_table_on_three_nodes() {
    let redis = Redis::start().await;
    permission_table(Nodes::new(three_nodes(&redis).await)).await;
}

#[tokio::test]
async fn control_is_derived_and_settings_stay_the_hosts_on_one_node() {
    control_is_derived_and_settings_stay_the_hosts(Nodes::new(one_node().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_is_derived_and_settings_stay_the_hosts_on_three_nodes() {
    let redis = Redis::start().await;
    control_is_derived_and_settings_stay_the_hosts(Nodes::new(three_nodes(&redis).await)).await;
}

#[tokio::test]
async fn a_cohost_token_works_until_it_is_revoked_on_one_node() {
    a_cohost_token_works_until_it_is_revoked(Nodes::new(one_node().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cohost_token_works_until_it_is_revoked_on_three_nodes() {
    let redis = Redis::start().await;
    a_cohost_token_works_until_it_is_revoked(Nodes::new(three_nodes(&redis).await)).await;
}

async fn a_deleted_chat_message_is_gone_from_the_next_snapshot(nodes: Nodes) {
    let (room, host, _, cohost) = room_with_cohost(&nodes).await;
    let mut sent = Vec::new();
    for text in ["one", "two", "three"] {
        let response = nodes.act(&room, "chat", None).await;
        let answer = expect_status(response, 200, text).await;
        sent.push(answer["version"].as_u64().expect("chat version"));
    }
    let delete = json!({"type": "delete_chat", "chat_version": sent[1]});
    // `moderate` is the host's in a new room: a co-host may not, anyone needs a token.
    let by_cohost = nodes
        .next()
        .command(&room, Some(&cohost), delete.clone())
        .await;
    let body = expect_status(by_cohost, 403, "cohost delete").await;
    assert_eq!(body["error"]["message"], "moderate is for the host");
    assert_error(
        nodes.next().command(&room, None, delete.clone()).await,
        401,
        "unauthorized",
    )
    .await;
    let mut events = nodes.next().events(&room).await;
    events.expect_snapshot().await;
    let answer = nodes
        .next()
        .command_ok(&room, Some(&host), delete.clone())
        .await;
    let event = events.expect_versioned().await;
    assert_eq!(event.event, "chat_deleted");
    let event = event.json();
    assert_eq!(event["chat_version"], sent[1]);
    assert_eq!(event["version"], answer["version"]);
    for _ in 0..nodes.nodes.len() {
        let snapshot = nodes.next().get_room(&room).await;
        let kept: Vec<u64> = snapshot["chat"]
            .as_array()
            .expect("chat")
            .iter()
            .filter_map(|m| m["version"].as_u64())
            .collect();
        assert_eq!(kept, [sent[0], sent[2]], "{snapshot}");
    }
    let again = nodes.next().command(&room, Some(&host), delete).await;
    assert_error(again, 404, "not_found").await;
}

#[tokio::test]
async fn a_deleted_chat_message_is_gone_on_one_node() {
    a_deleted_chat_message_is_gone_from_the_next_snapshot(Nodes::new(one_node().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_chat_message_is_gone_on_three_nodes() {
    let redis = Redis::start().await;
    a_deleted_chat_message_is_gone_from_the_next_snapshot(Nodes::new(three_nodes(&redis).await))
        .await;
}

/// `POST /api/rooms/{room}/vote` to skip, on the next node.
async fn vote(nodes: &Nodes, room: &str, stream_token: &str) -> reqwest::Response {
    let node = nodes.next();
    node.client
        .post(node.url(&format!("/api/rooms/{room}/vote")))
        .json(&json!({"stream_token": stream_token, "vote": "skip"}))
        .send()
        .await
        .expect("POST vote")
}

/// A vote that must be answered `200`: its answer.
async fn vote_ok(nodes: &Nodes, room: &str, stream_token: &str) -> Value {
    expect_status(vote(nodes, room, stream_token).await, 200, "vote").await
}

/// `n` listening streams, spread over the nodes (past their `hello` and
/// snapshot), with their stream tokens; every node then counts them all.
async fn listeners(nodes: &Nodes, room: &str, n: u64) -> Vec<(SseStream, String)> {
    let mut streams = Vec::new();
    for _ in 0..n {
        let mut stream = nodes.next().events(room).await;
        let hello = stream.expect_hello().await;
        stream.expect_snapshot().await;
        let token = hello["stream_token"].as_str().expect("token").to_owned();
        streams.push((stream, token));
    }
    for node in &nodes.nodes {
        node.wait_listeners(room, n).await;
    }
    streams
}

/// The next `state` event, past any other (`votes`, `presence`, the
/// `vote_skip` setting…).
async fn next_state(stream: &mut SseStream) -> Value {
    loop {
        let event = stream.expect_event().await;
        if event.event == "state" {
            return event.json();
        }
    }
}

/// A room playing a video (loaded after the room was made, so that votes are
/// counted for an item of its own) with `OTHER` queued (`q1`), vote skip at `ratio`.
async fn voting_room(nodes: &Nodes, ratio: f64) -> (String, String) {
    let (room, host, created) = nodes.next().create_room(json!({})).await;
    assert_eq!(
        created["room"]["vote_skip"],
        json!({"ratio": 0.0, "min_votes": 1})
    );
    let load = json!({"type": "load", "video_id": VIDEO});
    nodes.next().command_ok(&room, Some(&host), load).await;
    nodes
        .next()
        .command_ok(
            &room,
            Some(&host),
            json!({"type": "queue_add", "video_id": OTHER}),
        )
        .await;
    let setting = json!({"type": "vote_skip", "ratio": ratio, "min_votes": 1});
    let answer = nodes.next().command_ok(&room, Some(&host), setting).await;
    assert_eq!(
        answer["room"]["vote_skip"],
        json!({"ratio": ratio, "min_votes": 1})
    );
    (room, host)
}

async fn three_listeners_of_five_skip_at_half(nodes: Nodes) {
    let (room, _) = voting_room(&nodes, 0.5).await;
    let mut streams = listeners(&nodes, &room, 5).await;
    let first = vote_ok(&nodes, &room, &streams[0].1).await;
    assert_eq!(
        first,
        json!({"skip": 1, "needed": 3, "listeners": 5, "counted": true})
    );
    // Once per stream and item, whichever node it is sent to.
    let again = vote_ok(&nodes, &room, &streams[0].1).await;
    assert_eq!(again["skip"], 1);
    assert_eq!(again["counted"], false);
    // Everyone hears how the votes stand (id-less, coalesced), on every node.
    for (stream, _) in &mut streams {
        let heard = loop {
            let event = stream.expect_event().await;
            if event.event == "votes" {
                break event.json();
            }
        };
        assert_eq!(heard["skip"], 1, "{heard}");
        assert_eq!(heard["needed"], 3, "{heard}");
        assert_eq!(heard["listeners"], 5, "{heard}");
        assert!(heard["server_time"].is_i64());
    }
    let second = vote_ok(&nodes, &room, &streams[1].1).await;
    assert_eq!(second["skip"], 2);
    let state_before = nodes.next().get_room(&room).await["state"].clone();
    assert_eq!(state_before["item_id"], Value::Null, "not skipped at two");
    let third = vote_ok(&nodes, &room, &streams[2].1).await;
    assert_eq!(third["skip"], 3);
    assert_eq!(third["needed"], 3);
    for (stream, _) in streams.iter_mut().skip(3) {
        let state = next_state(stream).await;
        assert_eq!(state["cause"], "vote_skip", "{state}");
        assert_eq!(state["state"]["item_id"], "q1", "{state}");
    }
    // The new item starts with no votes.
    let fourth = vote_ok(&nodes, &room, &streams[3].1).await;
    assert_eq!(fourth["skip"], 1, "{fourth}");
    assert_eq!(fourth["counted"], true);
}

#[tokio::test]
async fn three_listeners_of_five_skip_at_half_on_one_node() {
    three_listeners_of_five_skip_at_half(Nodes::new(one_node().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_listeners_of_five_skip_at_half_on_three_nodes() {
    let redis = Redis::start().await;
    three_listeners_of_five_skip_at_half(Nodes::new(three_nodes(&redis).await)).await;
}

async fn a_stream_that_ends_takes_its_vote_away(nodes: Nodes) {
    // Everyone must vote: two votes of three are not enough.
    let (room, _) = voting_room(&nodes, 1.0).await;
    let mut streams = listeners(&nodes, &room, 3).await;
    assert_eq!(vote_ok(&nodes, &room, &streams[0].1).await["skip"], 1);
    assert_eq!(vote_ok(&nodes, &room, &streams[1].1).await["skip"], 2);
    // The first voter leaves: one vote of two stays, which is not enough.
    let (gone_stream, gone_token) = streams.remove(0);
    drop(gone_stream);
    for node in &nodes.nodes {
        node.wait_listeners(&room, 2).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let room_now = nodes.next().get_room(&room).await;
    assert_eq!(room_now["state"]["item_id"], Value::Null, "{room_now}");
    // Its token is still valid, but a stream that ended adds no vote, on any node.
    for _ in &nodes.nodes {
        let again = vote_ok(&nodes, &room, &gone_token).await;
        assert_eq!(again["counted"], false, "{again}");
        assert_eq!(again["skip"], 1, "{again}");
    }
    let last = vote_ok(&nodes, &room, &streams[1].1).await;
    assert_eq!(
        last,
        json!({"skip": 2, "needed": 2, "listeners": 2, "counted": true})
    );
    let state = next_state(&mut streams[0].0).await;
    assert_eq!(state["cause"], "vote_skip", "{state}");
    // A token of a stream that is gone is refused like any foreign token.
    let foreign = vote(&nodes, "elsewhere", &streams[0].1).await;
    assert_eq!(foreign.status(), 404);
}

#[tokio::test]
async fn a_stream_that_ends_takes_its_vote_away_on_one_node() {
    a_stream_that_ends_takes_its_vote_away(Nodes::new(one_node().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_ends_takes_its_vote_away_on_three_nodes() {
    let redis = Redis::start().await;
    a_stream_that_ends_takes_its_vote_away(Nodes::new(three_nodes(&redis).await)).await;
}

async fn votes_are_refused_while_vote_skip_is_off(nodes: Nodes) {
    let (room, host, _) = nodes.next().create_room(json!({ "video_id": VIDEO })).await;
    // The stream stays open to the end: a stream that has ended casts no vote.
    let streams = listeners(&nodes, &room, 1).await;
    let token = streams[0].1.clone();
    let body = assert_error(vote(&nodes, &room, &token).await, 400, "invalid_command").await;
    drop(body);
    let off = vote(&nodes, &room, &token).await;
    let text = off.text().await.expect("body");
    assert!(text.contains("vote skip is off in this room"), "{text}");
    // vote_skip is the host's alone.
    let setting = json!({"type": "vote_skip", "ratio": 0.5, "min_votes": 1});
    assert_error(
        nodes.next().command(&room, None, setting.clone()).await,
        401,
        "unauthorized",
    )
    .await;
    let answer = nodes.next().command_ok(&room, Some(&host), setting).await;
    assert_eq!(answer["room"]["vote_skip"]["ratio"], 0.5);
    // The usual refusals of a body or a token.
    let node = nodes.next();
    let url = node.url(&format!("/api/rooms/{room}/vote"));
    let cases = [
        (
            json!({"stream_token": token, "vote": "stay"}),
            400,
            "invalid_value",
        ),
        (
            json!({"stream_token": token, "vote": 1}),
            400,
            "invalid_json",
        ),
        (json!({"stream_token": token}), 400, "invalid_command"),
        (
            json!({"stream_token": "forged", "vote": "skip"}),
            403,
            "forbidden",
        ),
    ];
    for (body, status, code) in cases {
        let response = node
            .client
            .post(&url)
            .json(&body)
            .send()
            .await
            .expect("POST vote");
        assert_error(response, status, code).await;
    }
    let other_room = nodes.next().create_room(json!({})).await.0;
    assert_error(vote(&nodes, &other_room, &token).await, 403, "forbidden").await;
    assert_eq!(vote_ok(&nodes, &room, &token).await["counted"], true);
    drop(streams);
}

#[tokio::test]
async fn votes_are_refused_while_vote_skip_is_off_on_one_node() {
    votes_are_refused_while_vote_skip_is_off(Nodes::new(one_node().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn votes_are_refused_while_vote_skip_is_off_on_three_nodes() {
    let redis = Redis::start().await;
    votes_are_refused_while_vote_skip_is_off(Nodes::new(three_nodes(&redis).await)).await;
}

async fn a_lower_bar_is_met_by_the_votes_that_stand(nodes: Nodes) {
    let (room, host) = voting_room(&nodes, 1.0).await;
    let mut streams = listeners(&nodes, &room, 2).await;
    let first = vote_ok(&nodes, &room, &streams[0].1).await;
    assert_eq!(first["needed"], 2);
    let half = json!({"type": "vote_skip", "ratio": 0.5, "min_votes": 1});
    nodes.next().command_ok(&room, Some(&host), half).await;
    for (stream, _) in &mut streams {
        let state = next_state(stream).await;
        assert_eq!(state["cause"], "vote_skip", "{state}");
        assert_eq!(state["state"]["item_id"], "q1", "{state}");
    }
}

#[tokio::test]
async fn a_lower_bar_is_met_by_the_votes_that_stand_on_one_node() {
    a_lower_bar_is_met_by_the_votes_that_stand(Nodes::new(one_node().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lower_bar_is_met_by_the_votes_that_stand_on_three_nodes() {
    let redis = Redis::start().await;
    a_lower_bar_is_met_by_the_votes_that_stand(Nodes::new(three_nodes(&redis).await)).await;
}

/// `POST /api/rooms/{room}/sync` with a plain report from `stream_token`.
async fn sync_report(node: &TestApp, room: &str, stream_token: &str) -> reqwest::Response {
    node.client
        .post(node.url(&format!("/api/rooms/{room}/sync")))
        .json(&json!({"stream_token": stream_token, "drift_p50_ms": 10, "drift_p95_ms": 20, "player": "media"}))
        .send()
        .await
        .expect("POST sync")
}

/// Opens a stream of `room` on `node` (its path and query after the room's
/// events route), past its `hello` and snapshot: the stream and its hello.
async fn listen(node: &TestApp, room: &str, query: &str) -> (SseStream, Value) {
    let mut stream = node
        .events_at(&format!("/api/rooms/{room}/events{query}"), &[])
        .await;
    let hello = stream.expect_hello().await;
    stream.expect_snapshot().await;
    (stream, hello)
}

async fn a_kicked_stream_ends_and_its_token_is_refused(nodes: Nodes) {
    let (room, host, _, cohost) = room_with_cohost(&nodes).await;
    let (mut kicked, hello) = listen(nodes.next(), &room, "").await;
    let (mut other, _) = listen(nodes.next(), &room, "").await;
    let stream = hello["stream"].as_str().expect("stream id").to_owned();
    let token = hello["stream_token"].as_str().expect("token").to_owned();
    expect_status(nodes.next().ready(&room, &token, 1).await, 200, "before").await;
    let kick = json!({"type": "kick", "stream": stream});
    let by_cohost = nodes
        .next()
        .command(&room, Some(&cohost), kick.clone())
        .await;
    expect_status(by_cohost, 403, "cohost kick").await;
    assert_error(
        nodes.next().command(&room, None, kick.clone()).await,
        401,
        "unauthorized",
    )
    .await;
    let before = nodes.next().get_room(&room).await["version"].clone();
    let answer = nodes.next().command_ok(&room, Some(&host), kick).await;
    assert_eq!(answer["version"], before, "a kick is no change of the room");
    let event = kicked.expect_versioned().await;
    assert_eq!(event.event, "kicked");
    assert!(event.id.is_none(), "kicked carries no id");
    assert!(event.json()["server_time"].is_i64(), "{:?}", event);
    kicked.expect_end().await;
    // Refused on every node, for reports, readiness and votes.
    for _ in 0..nodes.nodes.len() {
        let node = nodes.next();
        let refused = expect_status(sync_report(node, &room, &token).await, 403, "sync").await;
        assert_error_shape(&refused, "forbidden");
        assert_eq!(refused["error"]["message"], "this stream was kicked");
        let refused = expect_status(node.ready(&room, &token, 1).await, 403, "ready").await;
        assert_eq!(refused["error"]["message"], "this stream was kicked");
    }
    for _ in 0..nodes.nodes.len() {
        let refused = expect_status(vote(&nodes, &room, &token).await, 403, "vote").await;
        assert_eq!(refused["error"]["message"], "this stream was kicked");
    }
    // Nobody else heard of it; an unknown stream is no error.
    other.expect_quiet(Duration::from_millis(300)).await;
    let unknown = json!({"type": "kick", "stream": "0123456789abcdef0123456789abcdef"});
    let answer = nodes.next().command_ok(&room, Some(&host), unknown).await;
    assert_eq!(answer["version"], before);
    other.expect_quiet(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_kicked_stream_ends_on_one_node() {
    a_kicked_stream_ends_and_its_token_is_refused(Nodes::new(one_node().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kicked_stream_ends_on_three_nodes() {
    let redis = Redis::start().await;
    a_kicked_stream_ends_and_its_token_is_refused(Nodes::new(three_nodes(&redis).await)).await;
}

/// The next `members` event of `stream` (others skipped).
async fn next_members(stream: &mut SseStream) -> Value {
    loop {
        let event = stream.expect_event().await;
        if event.event == "members" {
            assert!(event.id.is_none(), "members carries no id");
            return event.json();
        }
    }
}

/// Applies `members` events to `list` (stream id -> name) until it names
/// `wanted`; gives the last event.
async fn follow_members(
    stream: &mut SseStream,
    list: &mut std::collections::BTreeMap<String, String>,
    wanted: &[&str],
) -> Value {
    loop {
        let change = next_members(stream).await;
        for left in change["left"].as_array().expect("left") {
            list.remove(left.as_str().expect("stream id"));
        }
        for joined in change["joined"].as_array().expect("joined") {
            let stream = joined["stream"].as_str().expect("stream").to_owned();
            list.insert(stream, joined["name"].as_str().expect("name").to_owned());
        }
        let mut names: Vec<&str> = list.values().map(String::as_str).collect();
        names.sort_unstable();
        assert!(change["unnamed"].is_u64(), "{change}");
        if names == wanted {
            return change;
        }
    }
}

async fn who_is_here(nodes: Nodes) {
    let (room, _, _, _) = room_with_cohost(&nodes).await;
    for bad in ["%20%20", "%07bell", &"n".repeat(65)] {
        let path = format!("/api/rooms/{room}/events?name={bad}");
        assert_error(
            nodes.next().open_events(&path, &[]).await,
            400,
            "invalid_value",
        )
        .await;
    }
    let (mut watcher, _) = listen(nodes.next(), &room, "").await;
    let (ann, ann_hello) = listen(nodes.next(), &room, "?name=%20Ann%20").await;
    let (_bo, bo_hello) = listen(nodes.next(), &room, "?name=Bo").await;
    let (_quiet, _) = listen(nodes.next(), &room, "").await;
    let mut list = std::collections::BTreeMap::new();
    follow_members(&mut watcher, &mut list, &["Ann", "Bo"]).await;
    let ann_stream = ann_hello["stream"].as_str().expect("stream").to_owned();
    assert_eq!(list[&ann_stream], "Ann", "trimmed");
    assert_eq!(list[bo_hello["stream"].as_str().expect("stream")], "Bo");
    // Every node's snapshot shows the same, and counts the watcher and the
    // quiet one as unnamed.
    for _ in 0..nodes.nodes.len() {
        let node = nodes.next();
        let deadline = Instant::now() + WAIT;
        loop {
            let room = node.get_room(&room).await;
            let shown: std::collections::BTreeMap<String, String> = room["members"]
                .as_array()
                .expect("members")
                .iter()
                .map(|m| {
                    (
                        m["stream"].as_str().unwrap().to_owned(),
                        m["name"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            if shown == list && room["unnamed"] == 2 {
                break;
            }
            assert!(Instant::now() < deadline, "members never showed: {room}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Ann leaves: one event says so, never the whole list.
    drop(ann);
    let change = follow_members(&mut watcher, &mut list, &["Bo"]).await;
    assert_eq!(change["left"], json!([ann_stream]), "{change}");
    assert_eq!(change["joined"], json!([]), "{change}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_is_here_on_one_node() {
    who_is_here(Nodes::new(one_node().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_is_here_on_three_nodes() {
    let redis = Redis::start().await;
    who_is_here(Nodes::new(three_nodes(&redis).await)).await;
}
