//! The real `syncroom` binary: what it logs, how it stops on a signal, and its
//! command line (flags, environment, `--help`).

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::time::Instant;

/// A liveness bound for exiting after a signal, not a speed requirement.
const EXIT_BOUND: Duration = Duration::from_secs(10);

struct Server {
    child: Child,
    base: String,
    stderr_path: PathBuf,
    client: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        // Only our own child, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.stderr_path);
    }
}

/// Starts the binary on a free port with `args` and `env`, and waits for `/healthz`.
/// `--listen` is added unless `env` sets `SYNCROOM_LISTEN`.
async fn start(args: &[&str], env: &[(&str, &str)]) -> Server {
    for attempt in 0..3 {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let stderr_path = std::env::temp_dir().join(format!(
            "syncroom-test-{}-{port}-{attempt}.log",
            std::process::id()
        ));
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_syncroom"));
        command
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        for (name, value) in env {
            command.env(name, value.replace("{port}", &port.to_string()));
        }
        if !env.iter().any(|(name, _)| *name == "SYNCROOM_LISTEN") {
            command.args(["--listen", &listen]);
        }
        let child = command.spawn().expect("spawn syncroom");
        let mut server = Server {
            child,
            base: format!("http://{listen}"),
            stderr_path,
            client: http_client(),
        };
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                // Most likely the port was taken in the meantime: try another.
                eprintln!("syncroom exited early ({status}): {}", server.stderr());
                break;
            }
            if let Ok(response) = server
                .client
                .get(format!("{}/healthz", server.base))
                .send()
                .await
            {
                if response.status() == StatusCode::OK {
                    return server;
                }
            }
            assert!(
                Instant::now() < deadline,
                "syncroom never became healthy: {}",
                server.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    panic!("could not start syncroom");
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits up to [`EXIT_BOUND`] for the process to exit.
    async fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + EXIT_BOUND;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "syncroom still running {EXIT_BOUND:?} after the signal: {}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn create_room(&self, body: Value) -> (String, String) {
        let response = self
            .client
            .post(self.url("/api/rooms"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        (
            body["room_id"].as_str().unwrap().to_owned(),
            body["host_token"].as_str().unwrap().to_owned(),
        )
    }

    async fn command(&self, room: &str, token: &str, body: Value) -> StatusCode {
        self.client
            .post(self.url(&format!("/api/rooms/{room}/commands")))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
    }

    async fn events(&self, room: &str) -> SseStream {
        let response = self
            .client
            .get(self.url(&format!("/api/rooms/{room}/events")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        SseStream::from_response(response)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_token_never_appears_in_the_logs_at_debug_level() {
    let mut server = start(&[], &[("RUST_LOG", "debug")]).await;
    let (room, token) = server
        .create_room(json!({"room_id": "logged", "video_id": "dQw4w9WgXcQ"}))
        .await;
    let (other, other_token) = server.create_room(json!({"control": "open"})).await;
    let mut listener = server.events(&room).await;
    listener.expect_snapshot().await;

    for body in [
        json!({"type": "play"}),
        json!({"type": "seek", "position": 12.0}),
        json!({"type": "queue_add", "video_id": "9bZkp7q19f0"}),
        json!({"type": "control", "control": "open"}),
        json!({"type": "rate", "rate": 3.0}),
    ] {
        server.command(&room, &token, body).await;
    }
    // A wrong token (someone else's real one) and a conflict are logged as failures.
    assert_eq!(
        server
            .command(
                &room,
                &other_token,
                json!({"type": "control", "control": "host"})
            )
            .await,
        StatusCode::FORBIDDEN
    );
    server
        .command(
            &room,
            &token,
            json!({"type": "pause", "expected_version": 1}),
        )
        .await;
    for (id, secret) in [(&room, &token), (&other, &other_token)] {
        let response = server
            .client
            .delete(server.url(&format!("/api/rooms/{id}")))
            .bearer_auth(secret)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }
    assert_eq!(listener.expect_versioned().await.event, "state");

    server.signal("TERM");
    server.wait_exit().await;
    let logs = server.stderr();
    assert!(
        !logs.trim().is_empty(),
        "RUST_LOG=debug produced no logs at all"
    );
    for secret in [&token, &other_token] {
        assert!(
            !logs.contains(secret.as_str()),
            "a host token appears in the logs:\n{logs}"
        );
    }
}

async fn signal_with_open_streams_exits_promptly(signal: &str) {
    let mut server = start(&[], &[]).await;
    let (room, _) = server.create_room(json!({})).await;
    let mut listeners = Vec::new();
    for _ in 0..3 {
        let mut listener = server.events(&room).await;
        listener.expect_snapshot().await;
        listeners.push(listener);
    }
    server.signal(signal);
    for listener in &mut listeners {
        listener.expect_end().await;
    }
    let status = server.wait_exit().await;
    assert!(status.success(), "exit status after SIG{signal}: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_open_event_streams_ends_them_and_exits_promptly() {
    signal_with_open_streams_exits_promptly("TERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_with_open_event_streams_ends_them_and_exits_promptly() {
    signal_with_open_streams_exits_promptly("INT").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_are_also_read_from_syncroom_environment_variables() {
    let server = start(
        &[],
        &[
            ("SYNCROOM_LISTEN", "127.0.0.1:{port}"),
            ("SYNCROOM_KEEPALIVE", "0.3"),
            ("SYNCROOM_MAX_CONNECTIONS", "1"),
        ],
    )
    .await;
    let (room, _) = server.create_room(json!({})).await;
    let mut listener = server.events(&room).await;
    listener.expect_snapshot().await;
    loop {
        match listener.next_item(WAIT).await {
            Some(SseItem::Comment(text)) if text.trim() == "keepalive" => break,
            Some(SseItem::Event(e)) if e.event == "presence" => continue,
            other => panic!("expected a keepalive from SYNCROOM_KEEPALIVE, got {other:?}"),
        }
    }
    let second = server
        .client
        .get(server.url(&format!("/api/rooms/{room}/events")))
        .send()
        .await
        .unwrap();
    assert_error(second, 503, "unavailable").await;
}

#[test]
fn help_explains_the_flags_and_their_environment_variables() {
    let output = Command::new(env!("CARGO_BIN_EXE_syncroom"))
        .arg("--help")
        .output()
        .expect("run syncroom --help");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--listen",
        "--threads",
        "--keepalive",
        "--history",
        "--room-ttl",
        "--max-connections",
        "--max-stream-age",
        "--log-format",
        "SYNCROOM_LISTEN",
        "SYNCROOM_HISTORY",
    ] {
        assert!(help.contains(flag), "--help mentions {flag}:\n{help}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_format_writes_one_json_object_per_line() {
    let mut server = start(&["--log-format", "json"], &[("RUST_LOG", "info")]).await;
    server.create_room(json!({})).await;
    server.signal("TERM");
    server.wait_exit().await;
    let logs = server.stderr();
    let lines: Vec<&str> = logs.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "no logs at info");
    for line in lines {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
}

/// Starts the binary with `args` as they are (no `--listen` added, no waiting
/// for `/healthz`): for start-ups that fail or wait.
fn launch(args: &[&str]) -> Server {
    let stderr_path = std::env::temp_dir().join(format!(
        "syncroom-test-{}-{}.log",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
    let child = Command::new(env!("CARGO_BIN_EXE_syncroom"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("spawn syncroom");
    Server {
        child,
        base: String::new(),
        stderr_path,
        client: http_client(),
    }
}

impl Server {
    /// Waits until the logs hold `count` lines containing `needle`; gives them.
    async fn wait_for_lines(&mut self, needle: &str, count: usize) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let lines: Vec<String> = self
                .stderr()
                .lines()
                .filter(|line| line.contains(needle))
                .map(str::to_owned)
                .collect();
            if lines.len() >= count {
                return lines;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "syncroom exited ({status}) before logging {count} × {needle:?}: {}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "fewer than {count} log lines with {needle:?}: {}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The start-up of a node whose Redis does not answer: each attempt is logged
/// (attempt number, address, why; never the password), start-up goes on trying,
/// and `signal` stops it at once with a clean exit.
async fn waits_for_redis_until_a_signal(redis_port: u16, signal: &str, why: &str) {
    let url = format!("redis://:s3cret-pass@127.0.0.1:{redis_port}/0");
    let mut server = launch(&[
        "--listen",
        "127.0.0.1:0",
        "--redis-timeout",
        "0.2",
        "--redis",
        &url,
    ]);
    let attempts = server.wait_for_lines("redis is not reachable yet", 3).await;
    for (n, line) in attempts.iter().enumerate() {
        assert!(line.contains("WARN"), "not a warning: {line}");
        assert!(line.contains(&format!("attempt={}", n + 1)), "{line}");
        assert!(line.contains(&format!("127.0.0.1:{redis_port}")), "{line}");
        assert!(line.contains(why), "expected {why:?} in: {line}");
    }
    assert!(
        server.child.try_wait().expect("try_wait").is_none(),
        "start-up gave up: {}",
        server.stderr()
    );
    server.signal(signal);
    let status = server.wait_exit().await;
    assert!(status.success(), "exit status after SIG{signal}: {status}");
    let logs = server.stderr();
    assert!(
        !logs.contains("s3cret-pass"),
        "the password is logged:\n{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_nothing_on_the_redis_port_start_up_logs_each_attempt_and_stops_on_sigterm() {
    waits_for_redis_until_a_signal(free_port(), "TERM", "refused").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mute_redis_costs_each_attempt_only_redis_timeout_and_sigint_stops_the_wait() {
    // Connections complete in the kernel's backlog but nothing ever answers.
    let mute = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = mute.local_addr().expect("addr").port();
    waits_for_redis_until_a_signal(port, "INT", "--redis-timeout").await;
    drop(mute);
}

/// Runs the binary with `args` to its exit (bounded) and gives its status and logs.
async fn exit_of(args: &[&str]) -> (ExitStatus, String) {
    let mut server = launch(args);
    let status = server.wait_exit().await;
    (status, server.stderr())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_redis_url_is_refused_at_once_as_not_a_redis_url() {
    for url in [
        "notaurl",
        "http://127.0.0.1:6379",
        "redis://:s3cret-pass@127.0.0.1:notaport/0",
    ] {
        let (status, logs) = exit_of(&["--listen", "127.0.0.1:0", "--redis", url]).await;
        assert!(!status.success(), "{url} accepted");
        assert!(logs.contains("not a Redis URL"), "{url}: {logs}");
        assert!(!logs.contains("cannot reach"), "{url}: {logs}");
        assert!(!logs.contains("s3cret-pass"), "{url}: {logs}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_data_dir_is_named_with_what_was_expected() {
    let missing = std::env::temp_dir().join(format!("syncroom-missing-{}", uuid::Uuid::new_v4()));
    let file = std::env::temp_dir().join(format!("syncroom-file-{}", uuid::Uuid::new_v4()));
    std::fs::write(&file, b"not a directory").expect("write a file");
    for (path, why) in [(&missing, "no such directory"), (&file, "not a directory")] {
        let path = path.to_str().expect("utf-8 temp path");
        let (status, logs) = exit_of(&["--listen", "127.0.0.1:0", "--data-dir", path]).await;
        assert!(!status.success(), "--data-dir {path} accepted");
        let expected =
            format!("--data-dir {path}: {why} (expected an existing, writable directory)");
        assert!(
            logs.contains(&expected),
            "expected {expected:?} in:\n{logs}"
        );
    }
    assert!(!missing.exists(), "the missing data dir was created");
    let _ = std::fs::remove_file(&file);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_accepts_a_host_name_and_serves_on_every_address_it_names() {
    use std::net::ToSocketAddrs;
    let mut server = start(&[], &[("SYNCROOM_LISTEN", "localhost:{port}")]).await;
    let port: u16 = server
        .base
        .rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .expect("port");
    let logs = server.stderr();
    let mut served = 0;
    for addr in ("localhost", port)
        .to_socket_addrs()
        .expect("resolve localhost")
    {
        let field = format!("addr={addr}");
        let about: Vec<&str> = logs.lines().filter(|l| l.contains(&field)).collect();
        if about.iter().any(|l| l.contains("skipping an address")) {
            continue; // this host cannot listen there (no IPv6): logged, not served
        }
        assert!(
            about.iter().any(|l| l.contains("syncroom listening")),
            "{addr} not logged as listening:\n{logs}"
        );
        let response = server
            .client
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{addr} not served: {e}"));
        assert_eq!(response.status(), StatusCode::OK, "{addr}");
        served += 1;
    }
    assert!(served > 0, "localhost served on no address:\n{logs}");
    server.signal("TERM");
    assert!(server.wait_exit().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_on_serves_every_listener_it_is_given() {
    // What `--listen` does with a name that resolves to several addresses.
    let mut listeners = Vec::new();
    for _ in 0..2 {
        listeners.push(
            tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind"),
        );
    }
    let addrs: Vec<_> = listeners
        .iter()
        .map(|l| l.local_addr().expect("addr"))
        .collect();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let config = syncroom::Config::defaults();
    let server = tokio::spawn(syncroom::run_on(listeners, config, shutdown.clone()));
    let client = http_client();
    // Each in turn, several times: one listener must not starve the other.
    for _ in 0..3 {
        for addr in &addrs {
            let response = client
                .get(format!("http://{addr}/healthz"))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{addr} not served: {e}"));
            assert_eq!(response.status(), StatusCode::OK, "{addr}");
        }
    }
    shutdown.cancel();
    tokio::time::timeout(WAIT, server)
        .await
        .expect("server stops")
        .expect("joins")
        .expect("ends cleanly");
}
