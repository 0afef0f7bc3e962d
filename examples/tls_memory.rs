//! Measures the server's memory per HTTP/2 stream and per TLS connection (the
//! figures in BENCHMARKS.md): starts the server binary with a certificate made
//! here (rcgen), opens event streams, and reads the server's VmRSS from /proc
//! before and after.
//!
//! ```sh
//! cargo build --release --bin syncroom
//! cargo run --release --example tls_memory -- target/release/syncroom 1000
//! ```
//!
//! Three runs, each on a fresh server, each `N` streams in one room:
//! - `h2 streams`: N streams over HTTP/2 on N/250 TLS connections (250 each);
//! - `TLS connections`: N TLS connections with one HTTP/2 stream each;
//! - `plain HTTP/1.1`: N plain connections with one stream each (the direct path),
//!   for comparison with the load tool's figure.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::StreamExt;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

const STREAMS_PER_CONNECTION: usize = 250;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start(bin: &str, tls: Option<(&str, &str)>, client: &reqwest::Client) -> Server {
    let port = free_port();
    let mut command = Command::new(bin);
    command
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--max-streams-per-client", "100000", "--keepalive", "60"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some((cert, key)) = tls {
        command.args(["--tls-cert", cert, "--tls-key", key]);
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    let server = Server {
        child: command.spawn().expect("start the server binary"),
        base: format!("{scheme}://127.0.0.1:{port}"),
    };
    for _ in 0..200 {
        if let Ok(response) = client.get(format!("{}/healthz", server.base)).send().await {
            if response.status().is_success() {
                return server;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server did not come up");
}

/// Opens `n` streams to `room`, spread over `clients` (one connection each, as
/// reqwest keeps one HTTP/2 connection per client; over HTTP/1.1 a connection
/// per stream), and waits for each one's first bytes. Gives the open bodies.
async fn open_streams(
    base: &str,
    room: &str,
    n: usize,
    clients: &[reqwest::Client],
) -> Vec<reqwest::Response> {
    let url = format!("{base}/api/rooms/{room}/events");
    let opened = futures_util::stream::iter(0..n)
        .map(|i| {
            let client = clients[i % clients.len()].clone();
            let url = url.clone();
            async move {
                let response = client.get(&url).send().await.expect("open a stream");
                assert!(response.status().is_success(), "{}", response.status());
                response
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    let mut bodies = Vec::with_capacity(n);
    for response in opened {
        bodies.push(response);
    }
    bodies
}

async fn measure(
    label: &str,
    server: &Server,
    n: usize,
    connections: usize,
    make_client: &dyn Fn() -> reqwest::Client,
) {
    let control = make_client();
    let created: serde_json::Value = control
        .post(format!("{}/api/rooms", server.base))
        .json(&serde_json::json!({"video_id": "dQw4w9WgXcQ"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let room = created["room_id"].as_str().unwrap().to_owned();
    // Warm-up on clients of its own (closed after): the room's first listener,
    // the first connection's buffers.
    let warm: Vec<_> = (0..2).map(|_| make_client()).collect();
    drop(open_streams(&server.base, &room, 2, &warm).await);
    drop(warm);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = server.child.id();
    let before = rss_kib(pid);
    let clients: Vec<_> = (0..connections).map(|_| make_client()).collect();
    let streams = open_streams(&server.base, &room, n, &clients).await;
    loop {
        let snapshot: serde_json::Value = control
            .get(format!("{}/api/rooms/{room}", server.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if snapshot["listeners"].as_u64() == Some(n as u64) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(pid);
    let per = (after.saturating_sub(before)) as f64 / n as f64;
    println!(
        "{label:<16} {n:>6} streams on {connections:>5} connections: RSS {before} -> {after} KiB, {per:.2} KiB per stream"
    );
    drop(streams);
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let bin = args
        .next()
        .unwrap_or_else(|| "target/release/syncroom".into());
    let n: usize = args.next().map_or(1000, |n| n.parse().expect("N"));

    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let dir = std::env::temp_dir().join(format!("syncroom-tls-memory-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let ca_pem = ca.pem();
    let tls_client = move || {
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
            .no_proxy()
            .build()
            .unwrap()
    };
    let plain_client = || {
        reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
    };
    let tls = Some((cert_path.to_str().unwrap(), key_path.to_str().unwrap()));

    let server = start(&bin, tls, &tls_client()).await;
    let connections = n.div_ceil(STREAMS_PER_CONNECTION);
    measure("h2 streams", &server, n, connections, &tls_client).await;
    drop(server);

    let server = start(&bin, tls, &tls_client()).await;
    measure("TLS connections", &server, n, n, &tls_client).await;
    drop(server);

    let server = start(&bin, None, &plain_client()).await;
    measure("plain HTTP/1.1", &server, n, 1, &plain_client).await;
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
