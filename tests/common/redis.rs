//! The one Redis fixture of the tests: a `redis-server` of the test's own on a
//! free port (never the machine's 6379), in a directory of its own, both gone
//! when dropped. Self-contained, so that the library's unit tests
//! (`src/backplane/redis.rs`) include this same file.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

/// A liveness bound for redis-server to accept connections.
const START_BOUND: Duration = Duration::from_secs(15);

/// A `redis-server` of our own, gone when dropped (its directory with it).
pub struct Redis {
    child: Child,
    pub port: u16,
    _dir: Arc<TempDir>,
}

impl Redis {
    pub async fn start() -> Self {
        let dir = Arc::new(TempDir::new("redis"));
        for _ in 0..3 {
            let port = free_port();
            let child = spawn_server(port, &dir.0);
            let mut redis = Redis {
                child,
                port,
                _dir: dir.clone(),
            };
            let deadline = Instant::now() + START_BOUND;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = redis.child.try_wait() {
                    break; // the port was taken meanwhile: try another
                }
                if answers_as(port, redis.child.id()).await {
                    return redis;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        panic!("could not start redis-server");
    }

    /// Kills this server and starts a new one on the same port with nothing in
    /// it (the fixture never persists): Redis restarted after losing its data.
    pub async fn restart_empty(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for entry in std::fs::read_dir(&self._dir.0)
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = std::fs::remove_file(entry.path());
        }
        self.child = spawn_server(self.port, &self._dir.0);
        let deadline = Instant::now() + START_BOUND;
        while !answers_as(self.port, self.child.id()).await {
            assert!(Instant::now() < deadline, "redis-server did not restart");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} redis");
    }
}

/// Whether the Redis answering on `port` is the process `pid`: a free port can
/// be taken by another process between the test picking it and its server
/// binding it, and a connection that succeeds proves only that someone listens.
async fn answers_as(port: u16, pid: u32) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    if stream
        .write_all(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let wanted = format!("process_id:{pid}\r\n");
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let read_all = async {
        while !String::from_utf8_lossy(&seen).contains("\r\n\r\n") && seen.len() < 64 * 1024 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), read_all).await;
    String::from_utf8_lossy(&seen).contains(&wanted)
}

impl Drop for Redis {
    fn drop(&mut self) {
        // A stopped server must be woken to die of SIGKILL promptly everywhere.
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `redis-server` on `port` that keeps nothing on disk, its files in `dir`.
fn spawn_server(port: u16, dir: &std::path::Path) -> Child {
    Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server must be installed (scripts/test installs it)")
}

pub struct TempDir(pub std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "syncroom-{tag}-{}-{}",
            std::process::id(),
            uuid_like()
        ));
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir(path)
    }
}

fn uuid_like() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64);
    NEXT.fetch_add(1, Ordering::Relaxed) * 1_000_003 + now % 1_000_003
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .expect("local addr")
        .port()
}
