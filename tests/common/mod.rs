//! Shared helpers for the integration tests: a real server on `127.0.0.1:0`
//! (zero2prod's `spawn_app`), small HTTP helpers, and a Server-Sent Events client
//! that reads the raw byte stream the way a browser's `EventSource` does.
//!
//! Every test binary compiles this module but uses only part of it.
#![allow(dead_code)]

pub mod redis;
pub mod redis_cluster;
pub mod tls;
#[allow(unused_imports)]
pub use self::redis::{free_port, Redis, TempDir};

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use clap::Parser;
use futures_util::{Stream, StreamExt};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Flags for a ready gate that waits for every taking-part page, for up to 30 s.
pub const STRICT_GATE: &[&str] = &[
    "--start-lead-ms",
    "300",
    "--gate-deadline-ms",
    "30000",
    "--gate-quorum",
    "100",
];

/// How long a test waits for something that should happen soon. Generous on
/// purpose: the machine has two shared cores and tests run in parallel.
pub const WAIT: Duration = Duration::from_secs(15);
/// How long a test watches for something that must *not* happen.
pub const QUIET: Duration = Duration::from_millis(1200);

/// The room-creation budgets (`--rooms-per-minute`, `--rooms-burst`,
/// `--max-rooms-per-client`) raised out of the way, for tests that create more
/// rooms from one address than a person would.
pub const MANY_ROOMS: [&str; 6] = [
    "--rooms-per-minute",
    "1000000",
    "--rooms-burst",
    "100000",
    "--max-rooms-per-client",
    "100000",
];

/// `args` with [`MANY_ROOMS`] before them.
pub fn many_rooms<'a>(args: &[&'a str]) -> Vec<&'a str> {
    MANY_ROOMS
        .iter()
        .copied()
        .chain(args.iter().copied())
        .collect()
}

/// A server running inside the test's runtime, stopped when dropped.
pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub client: reqwest::Client,
    pub shutdown: CancellationToken,
    pub server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Starts a server with `syncroom` flags `args` on a fresh port.
pub async fn spawn_app(args: &[&str]) -> TestApp {
    let mut argv = vec!["syncroom"];
    // The contract tests see starts at once unless they ask for a lead.
    if !args.iter().any(|arg| arg.starts_with("--start-lead-ms")) {
        argv.extend_from_slice(&["--start-lead-ms", "0"]);
    }
    argv.extend_from_slice(args);
    let config = syncroom::Config::try_parse_from(argv).expect("test flags parse");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(syncroom::run(listener, config, shutdown.clone()));
    TestApp {
        addr,
        base: format!("http://{addr}"),
        client: http_client(),
        shutdown,
        server: Some(server),
    }
}

/// A reqwest client that never goes through a proxy and never times out on its
/// own (event streams are long-lived; tests put their own bounds around reads).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .expect("reqwest client")
}

/// The parts of a room snapshot that only events may change: everything but the
/// clock and who listens (the count, and who's here).
pub fn fingerprint(room: &Value) -> Value {
    let mut room = room.clone();
    if let Some(obj) = room.as_object_mut() {
        obj.remove("server_time");
        obj.remove("listeners");
        obj.remove("members");
        obj.remove("unnamed");
    }
    room
}

/// Now, as server times are written: Unix milliseconds.
pub fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// Asserts `body` is the error shape of API.md with `code`.
pub fn assert_error_shape(body: &Value, code: &str) {
    let error = body
        .get("error")
        .unwrap_or_else(|| panic!("no `error` object in {body}"));
    assert_eq!(error["code"], json!(code), "error code in {body}");
    let message = error["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no string `message` in {body}"));
    assert!(!message.trim().is_empty(), "empty message in {body}");
}

/// Asserts a response is `status` with the JSON error `code`, and returns its headers.
pub async fn assert_error(response: reqwest::Response, status: u16, code: &str) -> HeaderMap {
    let got = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("error body");
    assert_eq!(got.as_u16(), status, "status; body: {text}");
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        content_type.starts_with("application/json"),
        "error content-type {content_type:?}, body {text}"
    );
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("error body is not JSON ({e}): {text}"));
    assert_error_shape(&body, code);
    headers
}

/// Reads a `Retry-After` header as whole seconds, which it must be.
pub fn retry_after_secs(headers: &HeaderMap) -> u64 {
    let value = headers
        .get("retry-after")
        .expect("Retry-After header")
        .to_str()
        .expect("Retry-After is ASCII");
    value
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("Retry-After {value:?} is not delay-seconds"))
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// `POST /api/rooms` with `body`, asserting `201`; gives (room_id, host_token, body).
    pub async fn create_room(&self, body: Value) -> (String, String, Value) {
        let response = self
            .client
            .post(self.url("/api/rooms"))
            .json(&body)
            .send()
            .await
            .expect("POST /api/rooms");
        let status = response.status();
        let text = response.text().await.expect("create body");
        assert_eq!(status, StatusCode::CREATED, "create room {body}: {text}");
        let created: Value = serde_json::from_str(&text).expect("create answer is JSON");
        let room_id = created["room_id"].as_str().expect("room_id").to_owned();
        let token = created["host_token"]
            .as_str()
            .expect("host_token")
            .to_owned();
        (room_id, token, created)
    }

    /// A room with a video loaded and nothing else, in `control` mode "host".
    pub async fn video_room(&self) -> (String, String) {
        let (room, token, _) = self.create_room(json!({"video_id": "dQw4w9WgXcQ"})).await;
        (room, token)
    }

    /// `POST /api/rooms/{room}/commands`, with the host token when given.
    pub async fn command(&self, room: &str, token: Option<&str>, body: Value) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.url(&format!("/api/rooms/{room}/commands")))
            .json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("POST commands")
    }

    /// `POST /api/rooms/{room}/ready`: a readiness report for gate `ready_gate`.
    pub async fn ready(
        &self,
        room: &str,
        stream_token: &str,
        ready_gate: u64,
    ) -> reqwest::Response {
        self.client
            .post(self.url(&format!("/api/rooms/{room}/ready")))
            .json(&json!({"stream_token": stream_token, "ready_gate": ready_gate}))
            .send()
            .await
            .expect("POST ready")
    }

    /// A command that must succeed: asserts `200` and gives the answer's JSON.
    pub async fn command_ok(&self, room: &str, token: Option<&str>, body: Value) -> Value {
        let response = self.command(room, token, body.clone()).await;
        let status = response.status();
        let text = response.text().await.expect("command body");
        assert_eq!(status, StatusCode::OK, "command {body}: {text}");
        let answer: Value = serde_json::from_str(&text).expect("command answer is JSON");
        assert!(answer["version"].is_u64(), "version in {answer}");
        assert_eq!(
            answer["room"]["version"], answer["version"],
            "answer's room is at its version"
        );
        answer
    }

    /// `POST /api/rooms/{room}/chat`.
    pub async fn chat(&self, room: &str, body: Value) -> reqwest::Response {
        self.client
            .post(self.url(&format!("/api/rooms/{room}/chat")))
            .json(&body)
            .send()
            .await
            .expect("POST chat")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// `GET /api/rooms/{room}`, asserting `200`.
    pub async fn get_room(&self, room: &str) -> Value {
        let response = self.get(&format!("/api/rooms/{room}")).await;
        assert_eq!(response.status(), StatusCode::OK, "GET room {room}");
        response.json().await.expect("room JSON")
    }

    pub async fn list_rooms(&self) -> Vec<Value> {
        let response = self.get("/api/rooms").await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.expect("rooms JSON");
        body["rooms"].as_array().expect("rooms array").clone()
    }

    pub async fn delete_room(&self, room: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = self.client.delete(self.url(&format!("/api/rooms/{room}")));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("DELETE room")
    }

    /// Waits until the room's `listeners` equals `n` (streams register asynchronously).
    pub async fn wait_listeners(&self, room: &str, n: u64) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let snapshot = self.get_room(room).await;
            if snapshot["listeners"] == json!(n) {
                return snapshot;
            }
            assert!(
                Instant::now() < deadline,
                "room {room} never reached {n} listeners: {snapshot}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Opens `GET /api/rooms/{room}/events` and asserts `200`.
    pub async fn events(&self, room: &str) -> SseStream {
        self.events_at(&format!("/api/rooms/{room}/events"), &[])
            .await
    }

    /// Opens an event stream at `path_and_query` with extra request headers, asserting `200`.
    pub async fn events_at(&self, path_and_query: &str, headers: &[(&str, &str)]) -> SseStream {
        let response = self.open_events(path_and_query, headers).await;
        let status = response.status();
        if status != StatusCode::OK {
            let text = response.text().await.unwrap_or_default();
            panic!("GET {path_and_query}: {status}: {text}");
        }
        SseStream::from_response(response)
    }

    /// Opens an event stream of `room` that takes part in the ready gate
    /// (`?ready_gate=1`), past its `hello` and snapshot: the stream and its token.
    pub async fn gate_listener(&self, room: &str) -> (SseStream, String) {
        let mut stream = self
            .events_at(&format!("/api/rooms/{room}/events?ready_gate=1"), &[])
            .await;
        let hello = stream.expect_hello().await;
        stream.expect_snapshot().await;
        let token = hello["stream_token"].as_str().expect("token").to_owned();
        (stream, token)
    }

    /// Opens an event stream without judging the answer.
    pub async fn open_events(
        &self,
        path_and_query: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self
            .client
            .get(self.url(path_and_query))
            .header("accept", "text/event-stream");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path_and_query}: {e}"))
    }

    /// Opens an event stream on a plain TCP socket with a tiny receive buffer and
    /// returns it after writing the request, without reading anything: a listener
    /// that genuinely does not read until the test says so.
    pub async fn raw_events(&self, path_and_query: &str) -> RawRequest {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        // A small receive window makes the kernel buffers fill quickly, so the
        // server sees a slow consumer sooner. The kernel may round it up.
        let _ = socket.set_recv_buffer_size(4096);
        let mut stream = socket.connect(self.addr).await.expect("connect");
        let request = format!(
            "GET {path_and_query} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
            self.addr
        );
        stream
            .write_all(request.as_bytes())
            .await
            .expect("write request");
        RawRequest { stream }
    }
}

impl TestApp {
    /// Like [`TestApp::raw_events`], on a connection that first served a
    /// `GET /healthz` (read to its end), as a browser reusing a keep-alive
    /// connection would.
    pub async fn raw_events_after_a_request(&self, path_and_query: &str) -> RawRequest {
        let mut stream = TcpStream::connect(self.addr).await.expect("connect");
        let host = self.addr;
        stream
            .write_all(format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
            .await
            .expect("write request");
        let mut buf = Vec::new();
        let (head_end, length) = loop {
            let mut chunk = [0u8; 1024];
            let n = tokio::time::timeout(WAIT, stream.read(&mut chunk))
                .await
                .expect("healthz answer in time")
                .expect("read healthz answer");
            assert!(n > 0, "connection closed after the first request");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(pos) = find(&buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..pos]).to_ascii_lowercase();
                assert!(!head.contains("connection: close"), "{head}");
                let length: usize = head
                    .split("\r\n")
                    .find_map(|line| line.strip_prefix("content-length:"))
                    .expect("a content-length")
                    .trim()
                    .parse()
                    .expect("a number");
                break (pos + 4, length);
            }
        };
        while buf.len() < head_end + length {
            let mut chunk = [0u8; 1024];
            let n = stream.read(&mut chunk).await.expect("read healthz body");
            assert!(n > 0, "connection closed in the healthz body");
            buf.extend_from_slice(&chunk[..n]);
        }
        stream
            .write_all(
                format!("GET {path_and_query} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .expect("write request");
        RawRequest { stream }
    }
}

/// An HTTP request written on a raw socket and not yet read.
pub struct RawRequest {
    stream: TcpStream,
}

impl RawRequest {
    /// Reads the status line and headers, and turns the rest into an event stream.
    pub async fn into_sse(mut self) -> (u16, HeaderMap, SseStream) {
        let mut buf = Vec::new();
        let header_end = loop {
            if let Some(pos) = find(&buf, b"\r\n\r\n") {
                break pos;
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(WAIT, self.stream.read(&mut chunk))
                .await
                .expect("response head in time")
                .expect("read response head");
            assert!(n > 0, "connection closed before the response head");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..header_end]).into_owned();
        let rest = buf[header_end + 4..].to_vec();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().expect("status line");
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let mut headers = HeaderMap::new();
        for line in lines {
            if let Some((name, value)) = line.split_once(':') {
                headers.append(
                    reqwest::header::HeaderName::from_bytes(name.trim().as_bytes())
                        .expect("header name"),
                    value.trim().parse().expect("header value"),
                );
            }
        }
        let chunked = headers
            .get("transfer-encoding")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let mut dechunk = if chunked {
            Some(Dechunker::default())
        } else {
            None
        };
        let body = match dechunk.as_mut() {
            Some(d) => d.feed(&rest),
            None => rest,
        };
        let mut sse = SseStream::new(Source::Raw {
            stream: self.stream,
            dechunk,
        });
        sse.status = status;
        sse.headers = headers.clone();
        sse.feed(&body);
        (status, headers, sse)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Undoes HTTP/1.1 chunked transfer coding, incrementally.
#[derive(Default)]
struct Dechunker {
    state: ChunkState,
    size_line: Vec<u8>,
}

#[derive(Default)]
enum ChunkState {
    #[default]
    Size,
    Data(usize),
    DataEnd(usize),
    Done,
}

impl Dechunker {
    fn feed(&mut self, mut input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        while !input.is_empty() {
            match self.state {
                ChunkState::Size => {
                    let byte = input[0];
                    input = &input[1..];
                    if byte == b'\n' {
                        let line = String::from_utf8_lossy(&self.size_line).into_owned();
                        self.size_line.clear();
                        let hex = line
                            .trim()
                            .split(';')
                            .next()
                            .unwrap_or("")
                            .trim()
                            .to_owned();
                        let size = usize::from_str_radix(&hex, 16)
                            .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
                        self.state = if size == 0 {
                            ChunkState::Done
                        } else {
                            ChunkState::Data(size)
                        };
                    } else {
                        self.size_line.push(byte);
                    }
                }
                ChunkState::Data(left) => {
                    let take = left.min(input.len());
                    out.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    self.state = if take == left {
                        ChunkState::DataEnd(2)
                    } else {
                        ChunkState::Data(left - take)
                    };
                }
                ChunkState::DataEnd(left) => {
                    input = &input[1..];
                    self.state = if left == 1 {
                        ChunkState::Size
                    } else {
                        ChunkState::DataEnd(left - 1)
                    };
                }
                ChunkState::Done => break,
            }
        }
        out
    }

    fn done(&self) -> bool {
        matches!(self.state, ChunkState::Done)
    }
}

/// One dispatched Server-Sent Event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    /// The `event:` field, `message` when absent.
    pub event: String,
    /// The `id:` field of this event's block, if it had one.
    pub id: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

impl SseEvent {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("event data is not JSON ({e}): {:?}", self.data))
    }

    /// The id as a number; panics when the event has none.
    pub fn id_num(&self) -> u64 {
        self.id
            .as_deref()
            .unwrap_or_else(|| panic!("event without id: {self:?}"))
            .parse()
            .unwrap_or_else(|_| panic!("id is not a number: {self:?}"))
    }
}

/// What the stream delivered, in order.
#[derive(Debug, Clone)]
pub enum SseItem {
    /// A `retry:` field (milliseconds).
    Retry(u64),
    /// A comment line, without the leading `:` (and one space).
    Comment(String),
    /// The id-less `hello` that opens every connection (its `data`), kept apart
    /// from the room's events.
    Hello(Value),
    Event(SseEvent),
}

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

enum Source {
    Reqwest(ByteStream),
    Raw {
        stream: TcpStream,
        dechunk: Option<Dechunker>,
    },
}

impl Source {
    /// The next body bytes; `None` at the end of the body (or on a connection error).
    /// Cancel-safe: either a whole chunk is returned or nothing is consumed.
    async fn next_chunk(&mut self) -> Option<Result<Vec<u8>, String>> {
        match self {
            Source::Reqwest(stream) => match stream.next().await {
                Some(Ok(bytes)) => Some(Ok(bytes.to_vec())),
                Some(Err(e)) => Some(Err(e.to_string())),
                None => None,
            },
            Source::Raw { stream, dechunk } => {
                if dechunk.as_ref().is_some_and(|d| d.done()) {
                    return None;
                }
                let mut buf = vec![0u8; 64 * 1024];
                match stream.read(&mut buf).await {
                    Ok(0) => None,
                    Ok(n) => {
                        buf.truncate(n);
                        Some(Ok(match dechunk {
                            Some(d) => d.feed(&buf),
                            None => buf,
                        }))
                    }
                    Err(e) => Some(Err(e.to_string())),
                }
            }
        }
    }
}

/// Id-less events that come as listeners come and go, incidental in most tests.
pub const INCIDENTAL: &[&str] = &["presence", "gate", "members"];

/// A small, spec-following SSE client (WHATWG HTML "event stream interpretation").
pub struct SseStream {
    source: Source,
    /// Bytes received but not yet split into lines.
    buf: Vec<u8>,
    started: bool,
    pending: VecDeque<SseItem>,
    // The event being assembled.
    event_type: String,
    data: String,
    has_data: bool,
    block_id: Option<String>,
    /// The last `retry:` seen.
    pub retry: Option<u64>,
    /// The last `hello` seen: this connection's stream id and token.
    pub hello: Option<Value>,
    /// The last-event-id buffer, as a browser keeps it.
    pub last_event_id: String,
    /// The end of the body has been reached.
    pub ended: bool,
    /// The transport error that ended the body, if it was not a clean end.
    pub error: Option<String>,
    pub status: u16,
    pub headers: HeaderMap,
}

impl SseStream {
    fn new(source: Source) -> Self {
        SseStream {
            source,
            buf: Vec::new(),
            started: false,
            pending: VecDeque::new(),
            event_type: String::new(),
            data: String::new(),
            has_data: false,
            block_id: None,
            retry: None,
            hello: None,
            last_event_id: String::new(),
            ended: false,
            error: None,
            status: 0,
            headers: HeaderMap::new(),
        }
    }

    pub fn from_response(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let mut sse = SseStream::new(Source::Reqwest(Box::pin(response.bytes_stream())));
        sse.status = status;
        sse.headers = headers;
        sse
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        if !self.started && self.buf.len() >= 3 {
            self.started = true;
            if self.buf.starts_with(&[0xEF, 0xBB, 0xBF]) {
                self.buf.drain(..3);
            }
        }
        // Split into lines on CRLF, LF or CR. A CR at the very end may be the
        // first half of a CRLF still in flight, so it waits for more bytes
        // unless the body has ended.
        let mut start = 0;
        let mut i = 0;
        while i < self.buf.len() {
            match self.buf[i] {
                b'\n' => {
                    let line = self.buf[start..i].to_vec();
                    self.line(&line);
                    i += 1;
                    start = i;
                }
                b'\r' => {
                    if i + 1 == self.buf.len() && !self.ended {
                        break;
                    }
                    let line = self.buf[start..i].to_vec();
                    self.line(&line);
                    i += 1;
                    if i < self.buf.len() && self.buf[i] == b'\n' {
                        i += 1;
                    }
                    start = i;
                }
                _ => i += 1,
            }
        }
        self.buf.drain(..start);
    }

    fn line(&mut self, line: &[u8]) {
        let line = String::from_utf8_lossy(line).into_owned();
        if line.is_empty() {
            self.dispatch();
            return;
        }
        if let Some(comment) = line.strip_prefix(':') {
            let comment = comment.strip_prefix(' ').unwrap_or(comment);
            self.pending.push_back(SseItem::Comment(comment.to_owned()));
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_str(), ""),
        };
        match field {
            "event" => self.event_type = value.to_owned(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            // An id with a NUL is ignored, as the spec says.
            "id" if !value.contains('\0') => {
                self.last_event_id = value.to_owned();
                self.block_id = Some(value.to_owned());
            }
            // A retry that is not all digits is ignored.
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                let ms = value.parse().unwrap_or(u64::MAX);
                self.retry = Some(ms);
                self.pending.push_back(SseItem::Retry(ms));
            }
            _ => {}
        }
    }

    fn dispatch(&mut self) {
        let event_type = std::mem::take(&mut self.event_type);
        let data = std::mem::take(&mut self.data);
        let id = self.block_id.take();
        if !std::mem::replace(&mut self.has_data, false) {
            // No data: per the spec nothing is dispatched.
            return;
        }
        if event_type == "hello" && id.is_none() {
            let hello: Value = serde_json::from_str(&data)
                .unwrap_or_else(|e| panic!("`hello` data is not JSON ({e}): {data}"));
            self.hello = Some(hello.clone());
            self.pending.push_back(SseItem::Hello(hello));
            return;
        }
        self.pending.push_back(SseItem::Event(SseEvent {
            event: if event_type.is_empty() {
                "message".to_owned()
            } else {
                event_type
            },
            id,
            data,
        }));
    }

    /// The next item before `deadline`: `Ok(None)` at the end of the stream,
    /// `Err(())` when the deadline passes first. Safe to call again after a timeout.
    pub async fn next_item_until(&mut self, deadline: Instant) -> Result<Option<SseItem>, ()> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Ok(Some(item));
            }
            if self.ended {
                return Ok(None);
            }
            match tokio::time::timeout_at(deadline, self.source.next_chunk()).await {
                Err(_) => return Err(()),
                Ok(Some(Ok(bytes))) => self.feed(&bytes),
                Ok(Some(Err(e))) => {
                    self.error = Some(e);
                    self.ended = true;
                }
                Ok(None) => {
                    self.ended = true;
                    // A pending lone CR ends its line now; an unterminated block
                    // is discarded, as the spec says.
                    self.feed(&[]);
                }
            }
        }
    }

    /// The next item; `None` at the end of the stream. Panics after `timeout`.
    pub async fn next_item(&mut self, timeout: Duration) -> Option<SseItem> {
        self.next_item_until(Instant::now() + timeout)
            .await
            .unwrap_or_else(|_| panic!("no SSE item within {timeout:?}"))
    }

    /// The next event, skipping `retry:` fields and comments: `Ok(None)` at the
    /// end of the stream, `Err(())` if nothing arrives within `timeout`.
    pub async fn try_next_event(&mut self, timeout: Duration) -> Result<Option<SseEvent>, ()> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.next_item_until(deadline).await? {
                Some(SseItem::Event(event)) => return Ok(Some(event)),
                Some(_) => continue,
                None => return Ok(None),
            }
        }
    }

    /// The next event; `None` at the end of the stream. Panics after `timeout`.
    pub async fn next_event(&mut self, timeout: Duration) -> Option<SseEvent> {
        self.try_next_event(timeout)
            .await
            .unwrap_or_else(|_| panic!("no SSE event within {timeout:?}"))
    }

    /// The next event, which must come within [`WAIT`] and not be the end.
    pub async fn expect_event(&mut self) -> SseEvent {
        self.next_event(WAIT)
            .await
            .expect("the stream ended where an event was expected")
    }

    /// The next event, which must be of type `kind`.
    pub async fn expect(&mut self, kind: &str) -> SseEvent {
        let event = self.expect_event().await;
        assert_eq!(
            event.event, kind,
            "expected a `{kind}` event, got {event:?}"
        );
        event
    }

    /// The next event that is not `presence`, `gate` or `members` (incidental
    /// in most tests).
    pub async fn expect_versioned(&mut self) -> SseEvent {
        loop {
            let event = self.expect_event().await;
            if !INCIDENTAL.contains(&event.event.as_str()) {
                return event;
            }
        }
    }

    /// Asserts no event other than `presence`, `gate` or `members` arrives within `window`.
    pub async fn expect_quiet(&mut self, window: Duration) {
        let deadline = Instant::now() + window;
        loop {
            match self.next_item_until(deadline).await {
                Err(()) => return,
                Ok(Some(SseItem::Event(e))) if INCIDENTAL.contains(&e.event.as_str()) => continue,
                Ok(Some(SseItem::Event(e))) => panic!("unexpected event {e:?}"),
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the stream ended while it should stay quiet"),
            }
        }
    }

    /// Asserts the stream ends within [`WAIT`], skipping anything before the end
    /// except events with an id.
    pub async fn expect_end(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.next_item_until(deadline).await {
                Err(()) => panic!("the stream did not end within {WAIT:?}"),
                Ok(None) => return,
                Ok(Some(SseItem::Event(e))) if e.id.is_some() => {
                    panic!("event {e:?} where the stream should end")
                }
                Ok(Some(_)) => continue,
            }
        }
    }

    /// Reads up to this connection's `hello` and gives its data.
    pub async fn expect_hello(&mut self) -> Value {
        loop {
            match self.next_item(WAIT).await {
                Some(SseItem::Hello(hello)) => return hello,
                Some(SseItem::Event(e)) => panic!("event {e:?} before `hello`"),
                Some(_) => continue,
                None => panic!("the stream ended before `hello`"),
            }
        }
    }

    /// Reads the first event, which must be a `snapshot`, and gives its room.
    pub async fn expect_snapshot(&mut self) -> Value {
        let event = self.expect("snapshot").await;
        let room = event.json();
        assert_eq!(
            json!(event.id_num()),
            room["version"],
            "snapshot id is its version"
        );
        room
    }
}
