//! A Redis Cluster of the test's own: six `redis-server --cluster-enabled yes`
//! (three primaries, each with one replica) on free ports, in a directory of
//! their own, all gone when dropped; never the machine's 6379.
//!
//! The cluster is joined by `redis-cli --cluster create`, the tool an operator
//! uses, rather than by hand-sent `CLUSTER MEET`/`ADDSLOTS`, so that the layout
//! is the one a real deployment starts from. The node timeout is short (1 s) so
//! that a failover happens within a test's patience, not the default 15 s.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use redis::Value;
use tokio::time::Instant;

use super::redis::{free_port, TempDir};

/// A liveness bound for six redis-servers to accept connections.
const START_BOUND: Duration = Duration::from_secs(15);
/// A liveness bound for the joined cluster to agree that every slot is served.
const JOIN_BOUND: Duration = Duration::from_secs(30);
/// A liveness bound for a replica to be promoted after its primary died: the
/// node timeout, the replica's election delay (0.5 to 1 s, more by rank), and
/// slack for two shared cores.
const FAILOVER_BOUND: Duration = Duration::from_secs(30);
/// How long a node may stay silent before the others call it failed.
const NODE_TIMEOUT_MS: &str = "1000";
/// The node timeout of a cluster whose nodes a test stalls without wanting a
/// failover: longer than any stall a test makes.
const SLOW_NODE_TIMEOUT_MS: &str = "15000";
/// How long one command to one node may take before the fixture calls it down.
const COMMAND_BOUND: Duration = Duration::from_secs(2);
/// Three primaries, each with one replica: the smallest cluster that survives
/// losing a primary.
const PRIMARIES: usize = 3;
const NODES: usize = PRIMARIES * 2;

/// One `redis-server` of the cluster; `None` once killed.
struct Node {
    child: Option<Child>,
    port: u16,
}

/// Who serves a hash slot now, as the cluster says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotOwner {
    pub slot: u16,
    pub primary: u16,
    pub replicas: Vec<u16>,
}

/// Six `redis-server`s joined as one cluster, gone when dropped.
pub struct RedisCluster {
    nodes: Vec<Node>,
    _dir: Arc<TempDir>,
}

impl RedisCluster {
    pub async fn start() -> Self {
        Self::start_with(NODE_TIMEOUT_MS).await
    }

    /// A cluster that does not fail a stalled primary over for 15 s, so that a
    /// test can stall a shard and wake it with its role unchanged. It is
    /// joined with the short node timeout and given the long one once settled:
    /// nodes gossip more often the shorter it is, and joined with the long one
    /// the cluster takes about 10 s to agree on its replicas instead of 3.
    pub async fn start_slow_to_fail_over() -> Self {
        let cluster = Self::start_with(NODE_TIMEOUT_MS).await;
        for port in cluster.live_ports() {
            let () = query(
                port,
                redis::cmd("CONFIG")
                    .arg("SET")
                    .arg("cluster-node-timeout")
                    .arg(SLOW_NODE_TIMEOUT_MS),
            )
            .await
            .expect("CONFIG SET cluster-node-timeout");
        }
        cluster
    }

    async fn start_with(node_timeout_ms: &str) -> Self {
        let dir = Arc::new(TempDir::new("redis-cluster"));
        let mut nodes = Vec::with_capacity(NODES);
        for _ in 0..NODES {
            nodes.push(start_node(&dir.0, node_timeout_ms).await);
        }
        let cluster = RedisCluster { nodes, _dir: dir };
        cluster.create().await;
        cluster.wait_settled(JOIN_BOUND).await;
        cluster
    }

    /// The seed URLs a client is given: every node, primaries and replicas.
    pub fn urls(&self) -> Vec<String> {
        self.live_ports().map(node_url).collect()
    }

    /// The ports of the nodes still running.
    pub fn live_ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.nodes
            .iter()
            .filter(|node| node.child.is_some())
            .map(|node| node.port)
    }

    /// The hash slot of `key`, as the cluster computes it (hash tags included).
    pub async fn keyslot(&self, key: &str) -> u16 {
        let port = self.live_ports().next().expect("a live node");
        let slot: i64 = query(port, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key))
            .await
            .expect("CLUSTER KEYSLOT");
        u16::try_from(slot).expect("a slot fits u16")
    }

    /// The primary and replicas serving `key`'s slot now, as a live node sees it.
    pub async fn owner_of(&self, key: &str) -> SlotOwner {
        let slot = self.keyslot(key).await;
        let port = self.live_ports().next().expect("a live node");
        let slots = cluster_slots(port).await.expect("CLUSTER SLOTS");
        owner_in(&slots, slot).unwrap_or_else(|| panic!("no node serves slot {slot}"))
    }

    /// Kills (SIGKILL, no goodbye) the primary serving `key`, then waits until
    /// one of its replicas serves the slot, every live node agrees, and the
    /// cluster is `ok` again. Returns the old and the new owner.
    pub async fn kill_primary_of(&mut self, key: &str) -> (SlotOwner, SlotOwner) {
        let before = self.owner_of(key).await;
        assert!(!before.replicas.is_empty(), "{before:?} has no replica");
        let node = self
            .nodes
            .iter_mut()
            .find(|node| node.port == before.primary)
            .expect("the primary is one of ours");
        let mut child = node.child.take().expect("the primary is running");
        let _ = child.kill(); // already dead is as good
        let _ = child.wait(); // reaped so that its port is free of it
        let deadline = Instant::now() + FAILOVER_BOUND;
        loop {
            let view = self.agreed_view().await;
            if let Some(after) = view.and_then(|view| owner_in(&view, before.slot)) {
                if before.replicas.contains(&after.primary) {
                    return (before, after);
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "no replica took over slot {} from {} within {FAILOVER_BOUND:?}:\n{}",
                    before.slot,
                    before.primary,
                    self.describe().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends signal `name` (`STOP`, `CONT`) to the primary serving `key`.
    pub async fn signal_primary_of(&self, key: &str, name: &str) {
        let primary = self.owner_of(key).await.primary;
        let node = self
            .nodes
            .iter()
            .find(|node| node.port == primary)
            .and_then(|node| node.child.as_ref())
            .expect("the primary is one of ours, running");
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(node.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} the primary of {key}");
    }

    /// Cuts the primary serving `key` off from its replicas, which cannot
    /// sync again (a wrong `masterauth`): what it writes from now on is on
    /// the primary only, as a write is in the moment before asynchronous
    /// replication ships it.
    pub async fn isolate_replicas_of(&self, key: &str) {
        let owner = self.owner_of(key).await;
        for replica in &owner.replicas {
            let () = query(
                *replica,
                redis::cmd("CONFIG")
                    .arg("SET")
                    .arg("masterauth")
                    .arg("not-the-password"),
            )
            .await
            .expect("CONFIG SET masterauth");
        }
        let _: i64 = query(
            owner.primary,
            redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("replica"),
        )
        .await
        .expect("CLIENT KILL TYPE replica");
    }

    /// Kills the primary serving `key` and its replicas: the shard is gone,
    /// nobody can take over. Returns the primary's port.
    pub async fn kill_shard_of(&mut self, key: &str) -> u16 {
        let owner = self.owner_of(key).await;
        for node in &mut self.nodes {
            if node.port == owner.primary || owner.replicas.contains(&node.port) {
                if let Some(mut child) = node.child.take() {
                    let _ = child.kill(); // already dead is as good
                    let _ = child.wait(); // reaped, not left a zombie
                }
            }
        }
        owner.primary
    }

    /// Sends signal `name` to every running node.
    pub fn signal_all(&self, name: &str) {
        for child in self.nodes.iter().filter_map(|node| node.child.as_ref()) {
            let status = Command::new("kill")
                .arg(format!("-{name}"))
                .arg(child.id().to_string())
                .status()
                .expect("run kill");
            assert!(status.success(), "kill -{name} a cluster node");
        }
    }

    /// Every live node's `CLUSTER NODES`, for a failure's message.
    async fn describe(&self) -> String {
        let mut text = String::new();
        for port in self.live_ports() {
            let nodes = query::<String>(port, redis::cmd("CLUSTER").arg("NODES")).await;
            text.push_str(&format!("node {port}: {nodes:?}\n"));
        }
        text
    }

    /// Stops every node now (dropping does the same).
    pub fn stop(self) {}

    /// Runs `redis-cli --cluster create` over all six nodes, one replica each.
    async fn create(&self) {
        let addrs: Vec<String> = self
            .live_ports()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect();
        let output = tokio::process::Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output();
        let output = tokio::time::timeout(JOIN_BOUND, output)
            .await
            .expect("redis-cli --cluster create finishes")
            .expect("redis-cli must be installed (scripts/test installs it)");
        assert!(
            output.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&output.stdout)
        );
    }

    /// Waits until every node says `cluster_state:ok`, all agree on every
    /// slot's primary and replica (a node learns who replicates whom by
    /// gossip, after `--cluster create` returns), and each primary has its
    /// replica attached, so that `WAIT 1` can be answered.
    async fn wait_settled(&self, bound: Duration) {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(view) = self.agreed_view().await {
                if view.len() == PRIMARIES
                    && view.iter().all(|(_, _, owner)| owner.replicas.len() == 1)
                    && replicas_attached(&view).await
                {
                    return;
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "the cluster did not settle within {bound:?}:\n{}",
                    self.describe().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The slot ranges and their owners, if every live node says
    /// `cluster_state:ok` and all see the same primaries and replicas.
    async fn agreed_view(&self) -> Option<Vec<(u16, u16, SlotOwner)>> {
        let mut agreed: Option<Vec<(u16, u16, SlotOwner)>> = None;
        for port in self.live_ports() {
            let info: String = query(port, redis::cmd("CLUSTER").arg("INFO")).await.ok()?;
            if !info.lines().any(|line| line.trim() == "cluster_state:ok") {
                return None;
            }
            let mut view = cluster_slots(port).await.ok()?;
            view.sort_by_key(|range| range.0);
            for (_, _, owner) in &mut view {
                owner.replicas.sort_unstable();
            }
            match &agreed {
                Some(seen) if *seen != view => return None,
                Some(_) => {}
                None => agreed = Some(view),
            }
        }
        agreed
    }
}

/// Whether every primary of `view` reports its replica online.
async fn replicas_attached(view: &[(u16, u16, SlotOwner)]) -> bool {
    for (_, _, owner) in view {
        let info = query::<String>(owner.primary, redis::cmd("INFO").arg("replication")).await;
        let Ok(info) = info else { return false };
        if !info.lines().any(|line| line.trim() == "connected_slaves:1")
            || !info.contains("state=online")
        {
            return false;
        }
    }
    true
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(child) = node.child.as_mut() {
                // A stopped server must be woken to die of SIGKILL promptly.
                let _ = Command::new("kill")
                    .args(["-CONT", &child.id().to_string()])
                    .status();
                let _ = child.kill(); // already dead is as good
                let _ = child.wait(); // reaped, not left a zombie
            }
        }
    }
}

pub fn node_url(port: u16) -> String {
    format!("redis://127.0.0.1:{port}")
}

/// Sends one command to one node (no redirection followed) on a fresh
/// connection, bounded in time so that a dead or stalled node is an error.
pub async fn query<T: redis::FromRedisValue>(port: u16, cmd: &redis::Cmd) -> redis::RedisResult<T> {
    let attempt = async {
        let mut conn = redis::Client::open(node_url(port))?
            .get_multiplexed_async_connection()
            .await?;
        cmd.query_async(&mut conn).await
    };
    match tokio::time::timeout(COMMAND_BOUND, attempt).await {
        Ok(answer) => answer,
        Err(_) => Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into()),
    }
}

/// Starts one cluster node on a free port, with its bus on another free port
/// (`cluster-port`, so that port + 10000 need not be free or below 65536).
async fn start_node(dir: &std::path::Path, node_timeout_ms: &str) -> Node {
    for _ in 0..3 {
        let (port, bus) = (free_port(), free_port());
        let mut child = spawn_node(port, bus, dir, node_timeout_ms);
        let deadline = Instant::now() + START_BOUND;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break; // a port was taken meanwhile: try others
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Node {
                    child: Some(child),
                    port,
                };
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = child.kill(); // it never answered: make room for the next try
        let _ = child.wait(); // reaped, not left a zombie
    }
    panic!("could not start a cluster redis-server");
}

/// A cluster node that keeps nothing on disk but its own `nodes-<port>.conf`.
fn spawn_node(port: u16, bus: u16, dir: &std::path::Path, node_timeout_ms: &str) -> Child {
    Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .args(["--cluster-enabled", "yes"])
        .args(["--cluster-port", &bus.to_string()])
        .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
        .args(["--cluster-node-timeout", node_timeout_ms])
        // A replica that lost its primary a moment ago may always take over:
        // the default refuses one whose link has been down "too long".
        .args(["--cluster-replica-validity-factor", "0"])
        // A replica's first full sync starts at once, not after the default
        // 5 s wait for more replicas to share it.
        .args(["--repl-diskless-sync-delay", "0"])
        // A replica is listed in CLUSTER SLOTS only once its replication
        // offset is past 0, which an idle primary's pings (every 10 s by
        // default) are what advance.
        .args(["--repl-ping-replica-period", "1"])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server must be installed (scripts/test installs it)")
}

/// `CLUSTER SLOTS` of one node: (first slot, last slot, owner) per range.
async fn cluster_slots(port: u16) -> redis::RedisResult<Vec<(u16, u16, SlotOwner)>> {
    let reply: Value = query(port, redis::cmd("CLUSTER").arg("SLOTS")).await?;
    let Value::Array(ranges) = reply else {
        return Err(unexpected("CLUSTER SLOTS is not an array"));
    };
    ranges.iter().map(parse_range).collect()
}

/// One range of `CLUSTER SLOTS`: `[start, end, [ip, port, id], [ip, port, id]...]`.
fn parse_range(range: &Value) -> redis::RedisResult<(u16, u16, SlotOwner)> {
    let Value::Array(fields) = range else {
        return Err(unexpected("a slot range is not an array"));
    };
    let number = |value: &Value| match value {
        Value::Int(n) => u16::try_from(*n).map_err(|_| unexpected("out of range")),
        _ => Err(unexpected("not an integer")),
    };
    let node_port = |value: &Value| match value {
        Value::Array(node) if node.len() >= 2 => number(&node[1]),
        _ => Err(unexpected("a slot's node is not [ip, port, ...]")),
    };
    if fields.len() < 3 {
        return Err(unexpected("a slot range without a primary"));
    }
    let (start, end) = (number(&fields[0])?, number(&fields[1])?);
    let owner = SlotOwner {
        slot: start,
        primary: node_port(&fields[2])?,
        replicas: fields[3..]
            .iter()
            .map(node_port)
            .collect::<redis::RedisResult<_>>()?,
    };
    Ok((start, end, owner))
}

fn owner_in(slots: &[(u16, u16, SlotOwner)], slot: u16) -> Option<SlotOwner> {
    slots
        .iter()
        .find(|(start, end, _)| (*start..=*end).contains(&slot))
        .map(|(_, _, owner)| SlotOwner {
            slot,
            ..owner.clone()
        })
}

fn unexpected(what: &'static str) -> redis::RedisError {
    (redis::ErrorKind::UnexpectedReturnType, what).into()
}

/// What a test's nodes share rooms through: one Redis (`--redis`) or a Redis
/// Cluster (`--redis-cluster`), so that one test body runs over either.
pub enum Shared {
    One(super::redis::Redis),
    Cluster(RedisCluster),
}

impl Shared {
    pub async fn one() -> Self {
        Shared::One(super::redis::Redis::start().await)
    }

    pub async fn cluster() -> Self {
        Shared::Cluster(RedisCluster::start().await)
    }

    /// A cluster whose shards a test may stall without a failover.
    pub async fn cluster_for_stalls() -> Self {
        Shared::Cluster(RedisCluster::start_slow_to_fail_over().await)
    }

    /// The cluster, for a test that needs it as such.
    pub fn as_cluster(&mut self) -> &mut RedisCluster {
        match self {
            Shared::Cluster(cluster) => cluster,
            Shared::One(_) => panic!("this test needs a Redis Cluster"),
        }
    }

    /// Stalls (`STOP`) or wakes (`CONT`) what holds `room_id`: the Redis, or
    /// the primary of the room's shard.
    pub async fn signal_room(&self, room_id: &str, name: &str) {
        match self {
            Shared::One(redis) => redis.signal(name),
            // Only a running cluster says who the primary is: waking sends
            // CONT to every node, which is nothing to those not stopped.
            Shared::Cluster(cluster) if name == "CONT" => cluster.signal_all(name),
            Shared::Cluster(cluster) => {
                let key = format!("syncroom:{{{room_id}}}:room");
                cluster.signal_primary_of(&key, name).await;
            }
        }
    }

    /// The flag and value that point a node at it.
    pub fn args(&self) -> [String; 2] {
        match self {
            Shared::One(redis) => ["--redis".to_owned(), redis.url()],
            Shared::Cluster(cluster) => ["--redis-cluster".to_owned(), cluster.urls().join(",")],
        }
    }
}
