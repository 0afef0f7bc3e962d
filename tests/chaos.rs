//! Chaos through a real load balancer: three `syncroom` processes (`--redis`)
//! behind a real nginx running the repository's own `deploy/nginx.conf` (only
//! its ports filled in), one `redis-server` of the test's own, a few hundred
//! listeners through nginx and a command every 100 ms, while nodes restart,
//! Redis loses its data, or the link to Redis is slowed or cut by a fault proxy.
//!
//! The rule every test checks is the README's: every acknowledged version
//! reaches every listener, once, in order; a command answered `503` changed
//! nothing. Bounded on purpose (a few hundred listeners, well under a minute of
//! chaos each); `bench/chaos.sh` runs the same with 2,000 listeners for longer.
//!
//! The tests run one at a time (they would only starve each other on a small
//! machine). Each prints its figures (reconnects, resyncs, longest gap between
//! deliveries): `cargo test --test chaos -- --nocapture` shows them.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The load balancer's configuration as shipped; the test fills in its ports.
const NGINX_CONF: &str = include_str!("../deploy/nginx.conf");
/// The node ports and the listen port `deploy/nginx.conf` is written with.
const CONF_NODE_PORTS: [u16; 3] = [8081, 8082, 8083];
const CONF_LISTEN_PORT: u16 = 8080;

/// How often the commander sends a command.
const COMMAND_EVERY: Duration = Duration::from_millis(100);
/// A liveness bound for everyone to get the last version after the chaos ends.
const CONVERGE_BOUND: Duration = Duration::from_secs(60);
/// A liveness bound for a process to exit after a signal.
const EXIT_BOUND: Duration = Duration::from_secs(15);

/// Flags every node gets: behind nginx (`--trust-proxy`), so every listener and
/// command counts against one address, 127.0.0.1, and the per-address limits are
/// raised out of the way; quick reconnects and keepalives keep the test short.
const NODE_FLAGS: &[&str] = &[
    "--trust-proxy",
    "--max-streams-per-client",
    "100000",
    "--commands-per-minute",
    "1000000",
    "--commands-burst",
    "100000",
    "--retry-ms",
    "100",
    "--shutdown-retry-spread",
    "0.5",
    "--shutdown-grace",
    "2",
    "--keepalive",
    "1",
];

/// Listeners per test (split over its rooms and nodes as each test says), and
/// rounds of rolling restarts: `bench/chaos.sh` raises them through these
/// variables; the suite runs the defaults.
fn listeners() -> usize {
    scale("SYNCROOM_CHAOS_LISTENERS", 300)
}

fn restart_rounds() -> usize {
    scale("SYNCROOM_CHAOS_ROUNDS", 1)
}

fn scale(variable: &str, default: usize) -> usize {
    std::env::var(variable)
        .ok()
        .and_then(|value| value.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

/// One test at a time, whatever `--test-threads` says (each has its own runtime).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Sends `signal` (a name: TERM, KILL, STOP…) to one of our own children.
fn kill(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {}", child.id());
}

/// Waits up to [`EXIT_BOUND`] for `child` to exit.
async fn wait_exit(child: &mut Child, what: &str) {
    let deadline = Instant::now() + EXIT_BOUND;
    while child.try_wait().expect("try_wait").is_none() {
        assert!(
            Instant::now() < deadline,
            "{what} still running after a signal"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_port(port: u16, what: &str) {
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < deadline, "{what} never listened on {port}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A `syncroom` node as its own process on a fixed port, so that it can be
/// stopped and started again where nginx expects it.
struct Node {
    port: u16,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
    client: reqwest::Client,
}

impl Node {
    async fn start(redis_url: &str, extra: &[&str], dir: &Path) -> Node {
        let port = free_port();
        let mut args: Vec<String> = vec![
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--redis".into(),
            redis_url.into(),
        ];
        args.extend(NODE_FLAGS.iter().chain(extra).map(|a| a.to_string()));
        let mut node = Node {
            port,
            args,
            log: dir.join(format!("node-{port}.log")),
            child: None,
            client: http_client(),
        };
        node.spawn();
        node.wait_ready().await;
        node
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("node log");
        let child = Command::new(env!("CARGO_BIN_EXE_syncroom"))
            .args(&self.args)
            .env("RUST_LOG", "warn,syncroom=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn syncroom");
        self.child = Some(child);
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(response) = self
                .client
                .get(format!("{}/readyz", self.base()))
                .send()
                .await
            {
                if response.status() == StatusCode::OK {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "node {} never became ready: {}",
                self.port,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the node with `signal`, starts it again on the same port, and
    /// waits until it is ready.
    async fn restart(&mut self, signal: &str) {
        let mut child = self.child.take().expect("a running node");
        kill(&child, signal);
        wait_exit(&mut child, "syncroom").await;
        self.spawn();
        self.wait_ready().await;
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// nginx running `deploy/nginx.conf` in a prefix directory of its own, in front
/// of `nodes`.
struct Nginx {
    port: u16,
    child: Child,
    log: PathBuf,
}

impl Nginx {
    async fn start(dir: &Path, nodes: &[u16]) -> Nginx {
        let prefix = dir.join("nginx");
        let tmp = prefix.join("tmp");
        std::fs::create_dir_all(&tmp).expect("nginx prefix");
        // When the tests run as root, nginx's workers run as nobody: they must be
        // able to write their temporary files.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o777));
        }
        let port = free_port();
        let conf = prefix.join("nginx.conf");
        std::fs::write(&conf, nginx_conf(port, nodes)).expect("write nginx.conf");
        let log = prefix.join("error.log");
        let child = Command::new(nginx_binary())
            .arg("-p")
            .arg(&prefix)
            .args(["-e", "stderr", "-c"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("nginx log"))
            .spawn()
            .expect("nginx must be installed (scripts/test installs it)");
        let nginx = Nginx { port, child, log };
        wait_port(port, "nginx").await;
        nginx
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // TERM, not KILL: the master takes its workers with it only when asked.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + EXIT_BOUND;
        while matches!(self.child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "nginx log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

/// `nginx` on PATH, or where Debian puts it (`/usr/sbin`, not on every PATH).
fn nginx_binary() -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("nginx"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| PathBuf::from("nginx"))
}

/// `deploy/nginx.conf` with its ports replaced: nothing else changes.
fn nginx_conf(listen: u16, nodes: &[u16]) -> String {
    let mut conf = NGINX_CONF.replace(
        &format!("listen 127.0.0.1:{CONF_LISTEN_PORT};"),
        &format!("listen 127.0.0.1:{listen};"),
    );
    assert_ne!(
        conf, NGINX_CONF,
        "deploy/nginx.conf no longer listens on {CONF_LISTEN_PORT}"
    );
    for (from, to) in CONF_NODE_PORTS.iter().zip(nodes) {
        let before = conf.clone();
        conf = conf.replace(
            &format!("server 127.0.0.1:{from} "),
            &format!("server 127.0.0.1:{to} "),
        );
        assert_ne!(conf, before, "deploy/nginx.conf has no node on {from}");
    }
    conf
}

/// Three nodes (each with its own Redis URL, so one can go through a fault
/// proxy) behind nginx.
struct Cluster {
    nodes: Vec<Node>,
    nginx: Nginx,
    client: reqwest::Client,
    // Last, so the logs the others write are still there while they stop.
    _dir: TempDir,
}

impl Cluster {
    async fn start(redis_urls: [&str; 3], extra: &[&str]) -> Cluster {
        let dir = TempDir::new("chaos");
        let mut nodes = Vec::new();
        for url in redis_urls {
            nodes.push(Node::start(url, extra, &dir.0).await);
        }
        let ports: Vec<u16> = nodes.iter().map(|n| n.port).collect();
        let nginx = Nginx::start(&dir.0, &ports).await;
        Cluster {
            nodes,
            nginx,
            client: http_client(),
            _dir: dir,
        }
    }

    /// A room with a video, created through nginx: (room id, host token).
    async fn room(&self) -> (String, String) {
        let deadline = Instant::now() + WAIT;
        loop {
            let response = self
                .client
                .post(format!("{}/api/rooms", self.nginx.base()))
                .json(&json!({"video_id": "dQw4w9WgXcQ"}))
                .send()
                .await;
            if let Ok(response) = response {
                if response.status() == StatusCode::CREATED {
                    let body: Value = response.json().await.expect("create answer");
                    return (
                        body["room_id"].as_str().expect("room_id").to_owned(),
                        body["host_token"].as_str().expect("host_token").to_owned(),
                    );
                }
            }
            assert!(Instant::now() < deadline, "no room could be created");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The room's version now: the highest any node serves (read through
    /// `base` and from each node), since a node whose mirror is still
    /// catching up may answer an older one.
    async fn latest_version(&self, base: &str, room: &str) -> Option<u64> {
        let mut latest = self.version(base, room).await;
        for node in &self.nodes {
            latest = latest.max(self.version(&node.base(), room).await);
        }
        latest
    }

    /// The room's version as `base` serves it.
    async fn version(&self, base: &str, room: &str) -> Option<u64> {
        let response = self
            .client
            .get(format!("{base}/api/rooms/{room}"))
            .send()
            .await
            .ok()?;
        if response.status() != StatusCode::OK {
            return None;
        }
        response.json::<Value>().await.ok()?["version"].as_u64()
    }
}

/// What one listener heard, EventSource-style (it reconnects with
/// `Last-Event-ID` whenever its stream ends).
#[derive(Debug, Default)]
struct Heard {
    /// The version of the first snapshot.
    start: u64,
    /// Every event with an id after that, in arrival order: (id, event, data).
    events: Vec<(u64, String, Value)>,
    /// Snapshots after the first one (a resync): their versions.
    resyncs: Vec<u64>,
    /// Streams that ended or failed, and failed attempts to open one.
    reconnects: u32,
    keepalives: u32,
    /// The longest wait between two events with an id.
    longest_gap: Duration,
    /// It got `closed` (and stopped there).
    closed: bool,
    /// Statuses of refused attempts to open a stream.
    refusals: Vec<u16>,
}

impl Heard {
    fn last(&self) -> u64 {
        self.events.last().map_or(self.start, |e| e.0)
    }

    /// Ids strictly consecutive from the first snapshot: nothing lost,
    /// duplicated or out of order.
    fn assert_gapless(&self, who: &str) {
        let ids: Vec<u64> = self.events.iter().map(|e| e.0).collect();
        let expected: Vec<u64> = (self.start + 1..=self.last()).collect();
        assert_eq!(ids, expected, "{who}: ids after snapshot {}", self.start);
        assert!(
            self.resyncs.is_empty(),
            "{who} was resynced: {:?}",
            self.resyncs
        );
    }

    /// The seek positions of the `state` events heard (the commander's sequence numbers).
    fn positions(&self) -> impl Iterator<Item = u64> + '_ {
        self.events
            .iter()
            .filter(|e| e.1 == "state" && e.2["cause"] == "seek")
            .filter_map(|e| e.2["state"]["position"].as_f64().map(|p| p as u64))
    }
}

/// A listener on `room` through `base`, until it has heard the version the
/// room's `target` names, or `closed`, or `stop`.
async fn listen(
    client: reqwest::Client,
    base: String,
    room: String,
    mut target: watch::Receiver<Option<u64>>,
    ready: mpsc::Sender<()>,
    stop: CancellationToken,
) -> Heard {
    let url = format!("{base}/api/rooms/{room}/events");
    let mut heard = Heard::default();
    let mut last_id: Option<u64> = None;
    let mut retry = Duration::from_millis(100);
    let mut last_event_at = std::time::Instant::now();
    let done = |heard: &Heard, last_id: Option<u64>, target: &watch::Receiver<Option<u64>>| {
        heard.closed || matches!((last_id, *target.borrow()), (Some(l), Some(t)) if l >= t)
    };
    loop {
        if done(&heard, last_id, &target) {
            return heard;
        }
        let mut request = client.get(&url).header("accept", "text/event-stream");
        if let Some(id) = last_id {
            request = request.header("last-event-id", id.to_string());
        }
        let response = tokio::select! {
            _ = stop.cancelled() => return heard,
            response = request.send() => response,
        };
        let response = match response {
            Ok(response) if response.status() == StatusCode::OK => response,
            Ok(response) => {
                heard.refusals.push(response.status().as_u16());
                if response.status() == StatusCode::NOT_FOUND && last_id.is_some() {
                    // The room is gone: a browser's client stops here too.
                    return heard;
                }
                heard.reconnects += 1;
                tokio::time::sleep(retry).await;
                continue;
            }
            Err(_) => {
                heard.reconnects += 1;
                tokio::time::sleep(retry).await;
                continue;
            }
        };
        let mut stream = SseStream::from_response(response);
        loop {
            let far = Instant::now() + Duration::from_secs(3600);
            let item = tokio::select! {
                _ = stop.cancelled() => return heard,
                changed = target.changed() => {
                    if changed.is_err() || done(&heard, last_id, &target) {
                        return heard;
                    }
                    continue;
                }
                item = stream.next_item_until(far) => item,
            };
            match item {
                Ok(Some(SseItem::Retry(ms))) => retry = Duration::from_millis(ms),
                Ok(Some(SseItem::Comment(_))) => heard.keepalives += 1,
                Ok(Some(SseItem::Hello(_))) => {}
                // Id-less events (presence and the like) are not versions.
                Ok(Some(SseItem::Event(event))) if event.id.is_none() => {}
                Ok(Some(SseItem::Event(event))) => {
                    let id = event.id_num();
                    let now = std::time::Instant::now();
                    if event.event == "snapshot" {
                        if last_id.is_none() {
                            heard.start = id;
                            let _ = ready.send(()).await;
                        } else {
                            heard.resyncs.push(id);
                        }
                    } else {
                        if last_id.is_some() {
                            heard.longest_gap = heard.longest_gap.max(now - last_event_at);
                        }
                        heard.events.push((id, event.event.clone(), event.json()));
                        heard.closed = event.event == "closed";
                    }
                    last_event_at = now;
                    last_id = Some(id);
                    if done(&heard, last_id, &target) {
                        return heard;
                    }
                }
                // The stream ended (a node stopping, or killed): reconnect.
                Ok(None) | Err(()) => {
                    heard.reconnects += 1;
                    tokio::time::sleep(retry).await;
                    break;
                }
            }
        }
    }
}

/// Listeners on one room, and the way to tell them where it ends.
struct Audience {
    room: String,
    target: watch::Sender<Option<u64>>,
    tasks: Vec<tokio::task::JoinHandle<Heard>>,
}

impl Audience {
    /// `n` listeners through `base`; returns once each has its snapshot.
    async fn join(base: &str, room: &str, n: usize, stop: &CancellationToken) -> Audience {
        let (target, target_rx) = watch::channel(None);
        let (ready_tx, mut ready_rx) = mpsc::channel(n.max(1));
        let client = http_client();
        let tasks = (0..n)
            .map(|_| {
                tokio::spawn(listen(
                    client.clone(),
                    base.to_owned(),
                    room.to_owned(),
                    target_rx.clone(),
                    ready_tx.clone(),
                    stop.clone(),
                ))
            })
            .collect();
        let deadline = Instant::now() + CONVERGE_BOUND;
        for joined in 0..n {
            let got = tokio::time::timeout_at(deadline, ready_rx.recv()).await;
            assert!(
                matches!(got, Ok(Some(()))),
                "only {joined} of {n} listeners joined {room}"
            );
        }
        Audience {
            room: room.to_owned(),
            target,
            tasks,
        }
    }

    /// Tells every listener the last version, and gathers what each heard.
    async fn finish(self, last: Option<u64>) -> Vec<Heard> {
        let _ = self.target.send(last);
        let all = tokio::time::timeout(CONVERGE_BOUND, join_all(self.tasks))
            .await
            .unwrap_or_else(|_| panic!("listeners of {} never converged", self.room));
        all.into_iter().map(|h| h.expect("listener task")).collect()
    }
}

/// What the commander sent, by sequence number (the seek position it asked for).
#[derive(Debug, Default)]
struct Sent {
    /// Answered `200`: (sequence, version).
    acked: Vec<(u64, u64)>,
    /// Answered `503 unavailable`: must have changed nothing.
    refused: Vec<u64>,
    /// Anything else (a `502` from nginx while a node died, a dropped
    /// connection): it may or may not have been applied.
    unknown: Vec<u64>,
}

/// Sends a seek to `room` every [`COMMAND_EVERY`] through `base` until `stop`,
/// one at a time; sequence numbers start at `first`.
async fn command_loop(
    client: reqwest::Client,
    base: String,
    room: String,
    token: String,
    first: u64,
    stop: CancellationToken,
) -> Sent {
    let mut sent = Sent::default();
    let mut tick = tokio::time::interval(COMMAND_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for seq in first.. {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let answer = client
            .post(format!("{base}/api/rooms/{room}/commands"))
            .bearer_auth(&token)
            .json(&json!({"type": "seek", "position": seq}))
            .send()
            .await;
        match answer {
            Ok(response) if response.status() == StatusCode::OK => {
                let body: Value = response.json().await.unwrap_or_default();
                match body["version"].as_u64() {
                    Some(version) => sent.acked.push((seq, version)),
                    None => sent.unknown.push(seq),
                }
            }
            Ok(response) if response.status() == StatusCode::SERVICE_UNAVAILABLE => {
                sent.refused.push(seq)
            }
            _ => sent.unknown.push(seq),
        }
    }
    sent
}

/// Acknowledged versions go up, one command each.
fn assert_acks_in_order(sent: &Sent) {
    let versions: Vec<u64> = sent.acked.iter().map(|a| a.1).collect();
    assert!(
        versions.windows(2).all(|w| w[0] < w[1]),
        "acknowledged versions out of order: {versions:?}"
    );
}

/// Every listener heard every version from its snapshot to `last`, once, in
/// order, with each acknowledged command where it was acknowledged and no
/// refused command anywhere.
fn assert_delivered(room: &str, heard: &[Heard], sent: &Sent, last: u64) {
    let acked: BTreeMap<u64, u64> = sent.acked.iter().map(|&(seq, v)| (v, seq)).collect();
    let refused: HashSet<u64> = sent.refused.iter().copied().collect();
    for (i, h) in heard.iter().enumerate() {
        let who = format!("listener {i} of {room}");
        h.assert_gapless(&who);
        assert_eq!(h.last(), last, "{who} ended elsewhere");
        for (version, _, data) in &h.events {
            if let Some(seq) = acked.get(version) {
                assert_eq!(
                    data["state"]["position"].as_f64(),
                    Some(*seq as f64),
                    "{who}: version {version} is not the command acknowledged with it"
                );
            }
        }
        let half_applied: Vec<u64> = h.positions().filter(|p| refused.contains(p)).collect();
        assert!(
            half_applied.is_empty(),
            "{who} heard commands that were answered 503: {half_applied:?}"
        );
    }
}

fn report(name: &str, heard: &[Heard], sent: &Sent) {
    let reconnects: u32 = heard.iter().map(|h| h.reconnects).sum();
    let longest = heard
        .iter()
        .map(|h| h.longest_gap)
        .max()
        .unwrap_or_default();
    let resyncs: usize = heard.iter().map(|h| h.resyncs.len()).sum();
    println!(
        "chaos {name}: {} listeners, {} commands acknowledged, {} refused (503), {} unknown; \
         {reconnects} reconnects, {resyncs} resyncs, longest gap between deliveries {:.2} s",
        heard.len(),
        sent.acked.len(),
        sent.refused.len(),
        sent.unknown.len(),
        longest.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_rolling_restarts_lose_nothing() {
    let _serial = SERIAL.lock().await;
    let redis = Redis::start().await;
    let url = redis.url();
    let mut cluster = Cluster::start([&url, &url, &url], &[]).await;
    let stop = CancellationToken::new();
    let base = cluster.nginx.base();
    let (room, token) = cluster.room().await;
    let audience = Audience::join(&base, &room, listeners(), &stop).await;
    let commands = CancellationToken::new();
    let commander = tokio::spawn(command_loop(
        http_client(),
        base.clone(),
        room.clone(),
        token,
        1,
        commands.clone(),
    ));

    tokio::time::sleep(Duration::from_secs(1)).await;
    for signal in ["TERM", "KILL"].repeat(restart_rounds()) {
        for i in 0..cluster.nodes.len() {
            cluster.nodes[i].restart(signal).await;
            // Let the listeners settle on the others before the next one goes.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    commands.cancel();
    let sent = commander.await.expect("commander");
    assert!(!sent.acked.is_empty(), "no command went through");
    assert_acks_in_order(&sent);
    let last = cluster
        .latest_version(&base, &room)
        .await
        .expect("the room after the restarts");
    assert!(last >= sent.acked.last().map_or(0, |a| a.1));
    let heard = audience.finish(Some(last)).await;
    report("rolling restart (TERM then KILL, 3 nodes)", &heard, &sent);
    assert_delivered(&room, &heard, &sent, last);
    assert!(
        heard.iter().all(|h| h.reconnects > 0),
        "every listener was on a restarted node at some point"
    );
    drop(stop);
}

/// A TCP proxy between nodes and Redis with faults the test sets: latency on
/// everything it forwards (each way), or a cut (every connection dropped, new
/// ones refused) until healed.
struct FaultProxy {
    port: u16,
    faults: Arc<Faults>,
    accept: tokio::task::JoinHandle<()>,
}

struct Faults {
    latency_ms: AtomicU64,
    cut: AtomicBool,
    /// Bumped by a cut (and by dropping the proxy): older connections end.
    generation: watch::Sender<u64>,
}

impl FaultProxy {
    async fn start(upstream: u16) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let faults = Arc::new(Faults {
            latency_ms: AtomicU64::new(0),
            cut: AtomicBool::new(false),
            generation: watch::channel(0).0,
        });
        let accept = tokio::spawn(proxy_accept(listener, upstream, faults.clone()));
        FaultProxy {
            port,
            faults,
            accept,
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn set_latency(&self, latency: Duration) {
        self.faults
            .latency_ms
            .store(latency.as_millis() as u64, Ordering::Relaxed);
    }

    fn cut(&self) {
        self.faults.cut.store(true, Ordering::Relaxed);
        self.faults.generation.send_modify(|g| *g += 1);
    }

    fn heal(&self) {
        self.set_latency(Duration::ZERO);
        self.faults.cut.store(false, Ordering::Relaxed);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.faults.generation.send_modify(|g| *g += 1);
    }
}

async fn proxy_accept(listener: TcpListener, upstream: u16, faults: Arc<Faults>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        if faults.cut.load(Ordering::Relaxed) {
            continue; // dropped: the connection is refused
        }
        let faults = faults.clone();
        let mut generation = faults.generation.subscribe();
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                return;
            };
            let (client_rx, client_tx) = client.into_split();
            let (server_rx, server_tx) = server.into_split();
            // Whichever ends first ends the connection: both sockets are dropped.
            tokio::select! {
                _ = generation.changed() => {}
                _ = proxy_pipe(client_rx, server_tx, &faults) => {}
                _ = proxy_pipe(server_rx, client_tx, &faults) => {}
            }
        });
    }
}

/// Forwards one direction, each chunk held for the latency set when it was
/// read, in order.
async fn proxy_pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    faults: &Faults,
) {
    let (chunks_tx, mut chunks_rx) = mpsc::channel::<(Instant, Vec<u8>)>(1024);
    let read = async move {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n @ 1..) = from.read(&mut buf).await {
            let latency = Duration::from_millis(faults.latency_ms.load(Ordering::Relaxed));
            if chunks_tx
                .send((Instant::now() + latency, buf[..n].to_vec()))
                .await
                .is_err()
            {
                break;
            }
        }
    };
    let write = async move {
        while let Some((due, chunk)) = chunks_rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                break;
            }
        }
    };
    tokio::join!(read, write);
}

impl Sent {
    fn extend(&mut self, other: Sent) {
        self.acked.extend(other.acked);
        self.refused.extend(other.refused);
        self.unknown.extend(other.unknown);
    }
}

/// Commands to `room` through `base` for `how_long`, numbered from `first`.
async fn commands_for(base: &str, room: &str, token: &str, first: u64, how_long: Duration) -> Sent {
    let stop = CancellationToken::new();
    let commander = tokio::spawn(command_loop(
        http_client(),
        base.to_owned(),
        room.to_owned(),
        token.to_owned(),
        first,
        stop.clone(),
    ));
    tokio::time::sleep(how_long).await;
    stop.cancel();
    commander.await.expect("commander")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_redis_restarted_empty_closes_rooms_and_new_rooms_work() {
    let _serial = SERIAL.lock().await;
    let mut redis = Redis::start().await;
    let url = redis.url();
    let mut cluster = Cluster::start([&url, &url, &url], &[]).await;
    let base = cluster.nginx.base();
    let stop = CancellationToken::new();
    let mut audiences = Vec::new();
    let mut rooms = Vec::new();
    for _ in 0..3 {
        let (room, token) = cluster.room().await;
        audiences.push(Audience::join(&base, &room, listeners() / 6, &stop).await);
        rooms.push((room, token));
    }
    let before = commands_for(&base, &rooms[0].0, &rooms[0].1, 1, Duration::from_secs(2)).await;
    assert!(!before.acked.is_empty());

    redis.restart_empty().await;
    for audience in audiences {
        let room = audience.room.clone();
        let heard = audience.finish(None).await;
        for (i, h) in heard.iter().enumerate() {
            let who = format!("listener {i} of {room}");
            assert!(h.closed, "{who} was never told its room is gone: {h:?}");
            let closed = h.events.last().map(|e| e.2.clone()).unwrap_or_default();
            assert_eq!(closed["reason"], "deleted", "{who}");
            h.assert_gapless(&who);
        }
        report(
            "redis restarted empty: a gone room",
            &heard,
            &Sent::default(),
        );
        for node in &cluster.nodes {
            let status = node
                .client
                .get(format!("{}/api/rooms/{room}", node.base()))
                .send()
                .await
                .expect("GET room")
                .status();
            assert_eq!(
                status,
                StatusCode::NOT_FOUND,
                "{room} on node {}",
                node.port
            );
        }
    }
    // No node was restarted: the same processes serve a new room.
    let (room, token) = cluster.room().await;
    let audience = Audience::join(&base, &room, listeners() / 6, &stop).await;
    let sent = commands_for(&base, &room, &token, 1, Duration::from_secs(2)).await;
    assert!(
        sent.refused.is_empty() && sent.unknown.is_empty(),
        "{sent:?}"
    );
    let last = sent.acked.last().map(|a| a.1);
    let heard = audience.finish(last).await;
    report("redis restarted empty: a new room", &heard, &sent);
    assert_delivered(&room, &heard, &sent, last.expect("acknowledged"));
    for node in &mut cluster.nodes {
        let child = node.child.as_mut().expect("node");
        assert!(
            matches!(child.try_wait(), Ok(None)),
            "node {} exited",
            node.port
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_a_slow_or_cut_redis_refuses_cleanly_and_converges() {
    let _serial = SERIAL.lock().await;
    let redis = Redis::start().await;
    let proxy = FaultProxy::start(redis.port).await;
    let url = proxy.url();
    let cluster = Cluster::start([&url, &url, &url], &["--redis-timeout", "2"]).await;
    let base = cluster.nginx.base();
    let stop = CancellationToken::new();
    let (room, token) = cluster.room().await;
    let audience = Audience::join(&base, &room, listeners() * 2 / 3, &stop).await;
    let mut all = Sent::default();
    let phase = Duration::from_secs(4);

    // Well under --redis-timeout (each command is two round trips): it only slows down.
    proxy.set_latency(Duration::from_millis(100));
    let slow = commands_for(&base, &room, &token, 1_000, phase).await;
    assert!(
        !slow.acked.is_empty(),
        "slow commands still succeed: {slow:?}"
    );
    assert!(
        slow.refused.is_empty(),
        "slow commands still succeed: {slow:?}"
    );
    all.extend(slow);

    // Just past it (the commit reaches Redis before the deadline, its answer
    // comes back after it), then far past it: 503, and nothing applied.
    for (latency, first) in [(600, 2_000), (1_500, 3_000)] {
        proxy.set_latency(Duration::from_millis(latency));
        let late = commands_for(&base, &room, &token, first, phase).await;
        assert!(!late.refused.is_empty(), "503 past the timeout: {late:?}");
        all.extend(late);
    }

    // Cut: every connection to Redis dropped, new ones refused.
    proxy.set_latency(Duration::ZERO);
    proxy.cut();
    let cut = commands_for(&base, &room, &token, 4_000, phase).await;
    assert!(
        cut.acked.is_empty(),
        "nothing commits without Redis: {cut:?}"
    );
    assert!(!cut.refused.is_empty(), "{cut:?}");
    all.extend(cut);

    proxy.heal();
    for node in &cluster.nodes {
        node.wait_ready().await;
    }
    let healed = commands_for(&base, &room, &token, 5_000, phase).await;
    assert!(!healed.acked.is_empty(), "{healed:?}");
    all.extend(healed);
    assert_acks_in_order(&all);
    let last = cluster
        .latest_version(&base, &room)
        .await
        .expect("room after healing");
    let heard = audience.finish(Some(last)).await;
    report(
        "redis slow, then past the timeout, then cut, then healed",
        &heard,
        &all,
    );
    assert_delivered(&room, &heard, &all, last);
    // Every node serves the same room again.
    for node in &cluster.nodes {
        assert_eq!(cluster.version(&node.base(), &room).await, Some(last));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_a_node_cut_off_from_redis_keeps_listeners_informed_and_serves_nothing_stale() {
    let _serial = SERIAL.lock().await;
    let redis = Redis::start().await;
    let proxy = FaultProxy::start(redis.port).await;
    let (direct, through) = (redis.url(), proxy.url());
    let cluster = Cluster::start([&through, &direct, &direct], &["--redis-timeout", "1"]).await;
    let base = cluster.nginx.base();
    let island = cluster.nodes[0].base();
    let stop = CancellationToken::new();
    let (room, token) = cluster.room().await;
    // Listeners on the node about to be cut off (it still reaches them), and
    // through nginx on any node.
    let stranded = Audience::join(&island, &room, listeners() / 3, &stop).await;
    let others = Audience::join(&base, &room, listeners() / 3, &stop).await;
    let mut all = commands_for(&base, &room, &token, 1, Duration::from_secs(1)).await;
    let before = cluster
        .version(&island, &room)
        .await
        .expect("room on node 0");

    proxy.cut();
    let cut = commands_for(&base, &room, &token, 100_000, Duration::from_secs(4)).await;
    assert!(!cut.acked.is_empty(), "the other nodes go on: {cut:?}");
    all.extend(cut);
    let moved_on = cluster
        .version(&cluster.nodes[1].base(), &room)
        .await
        .expect("room on node 1");
    assert!(moved_on > before);
    // Node 0 cannot know the room now: it says so rather than answer what it last knew.
    let client = http_client();
    for path in ["", "/events"] {
        let response = client
            .get(format!("{island}/api/rooms/{room}{path}"))
            .send()
            .await
            .expect("GET on the cut-off node");
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "GET {path} on a node cut off from Redis (version {before} while the room is at {moved_on}): {body}"
        );
    }

    proxy.heal();
    cluster.nodes[0].wait_ready().await;
    let healed = commands_for(&base, &room, &token, 200_000, Duration::from_secs(1)).await;
    all.extend(healed);
    let last = cluster
        .latest_version(&base, &room)
        .await
        .expect("room after healing");
    let stranded = stranded.finish(Some(last)).await;
    let others = others.finish(Some(last)).await;
    report(
        "one node cut off from redis: its own listeners",
        &stranded,
        &all,
    );
    report(
        "one node cut off from redis: listeners through nginx",
        &others,
        &all,
    );
    assert_delivered(&room, &stranded, &all, last);
    assert_delivered(&room, &others, &all, last);
    for (i, h) in stranded.iter().enumerate() {
        assert!(
            h.keepalives > 0,
            "listener {i} on node 0 heard no keepalive while cut off"
        );
    }
    assert_eq!(cluster.version(&island, &room).await, Some(last));
}
