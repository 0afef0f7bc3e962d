//! Event streams written straight to the socket.
//!
//! Most connections that ask for an event stream ask for nothing else: the
//! browser's EventSource opens a connection, sends one `GET`, and reads until
//! the stream ends. Kept inside hyper, such a connection would hold hyper's
//! read and write buffers and its per-connection machinery for hours, and every
//! event would go through it. So the accept loop reads a connection's first
//! request head itself ([`read_head`]); when it is a plain `GET` of
//! `/api/rooms/{room_id}/events`, the request still goes through the whole
//! router (every layer, the same handler and the same error answers), but the
//! handler hands its `stream::Listener` back instead of a body, and this module writes
//! the response head and then each pre-encoded frame with one `write` on the
//! socket. What a listener then costs is its task, the socket and the
//! listener's small state, and a delivery is one wake and one syscall.
//!
//! The body is delimited by the connection closing (`Connection: close`), as
//! nchan and most SSE servers do, rather than chunked. Anything else (other
//! routes, a stream asked for on a connection that served requests before,
//! unusual heads) goes to hyper with the bytes already read put back in front.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderName, HeaderValue, Method, Request, Response, Version};
use axum::Router;
use http_body_util::{BodyExt, Limited};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tower::ServiceExt;

use super::stream::{is_events_path, DirectStream};

/// The most bytes read ourselves looking for the first request head; a longer
/// head is not an event-stream request we take, and hyper judges it.
pub const HEAD_PROBE_LIMIT: usize = 8 * 1024;
/// Headers a direct request may have; more, and hyper judges it.
const MAX_HEADERS: usize = 48;
/// The largest non-streaming answer (an error) the direct path writes.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Reads from `stream` into `buf` until it holds a complete request head
/// (`\r\n\r\n`), [`HEAD_PROBE_LIMIT`] bytes, or the peer closes. Returns the
/// length of the head when one is complete.
pub async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
    use tokio::io::AsyncReadExt;
    loop {
        // Look for the end of the head in what is new, plus the three bytes
        // before it that may start the `\r\n\r\n`.
        let searched = buf.len().saturating_sub(3);
        let room = HEAD_PROBE_LIMIT - buf.len();
        let read = (&mut *stream).take(room as u64).read_buf(buf).await?;
        if let Some(at) = buf[searched..].windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(Some(searched + at + 4));
        }
        if read == 0 || buf.len() >= HEAD_PROBE_LIMIT {
            return Ok(None);
        }
    }
}

/// The request, if `head` is a plain `GET` of an event stream: no body, no
/// upgrade, headers hyper would also accept. Anything else is left to hyper.
pub fn stream_request(head: &[u8], peer: SocketAddr) -> Option<(Request<Body>, DirectStream)> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    if !matches!(parsed.parse(head), Ok(httparse::Status::Complete(_))) {
        return None;
    }
    if parsed.method != Some("GET") || !is_events_path(parsed.path?) {
        return None;
    }
    let version = match parsed.version? {
        1 => Version::HTTP_11,
        0 => Version::HTTP_10,
        _ => return None,
    };
    let mut request = Request::builder()
        .method(Method::GET)
        .uri(parsed.path?)
        .version(version);
    for header in parsed.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes()).ok()?;
        let carries_body = name == axum::http::header::TRANSFER_ENCODING
            || (name == axum::http::header::CONTENT_LENGTH && header.value != b"0");
        if carries_body || name == axum::http::header::UPGRADE {
            return None;
        }
        request = request.header(name, HeaderValue::from_bytes(header.value).ok()?);
    }
    let direct = DirectStream::default();
    let request = request
        .extension(ConnectInfo(peer))
        .extension(direct.clone())
        .body(Body::empty())
        .ok()?;
    Some((request, direct))
}

/// Answers `request` through `router` and, when the answer is an event stream,
/// writes it to `stream` until it ends. A listener whose socket takes nothing
/// for `stall` is dropped.
pub async fn serve(
    mut stream: TcpStream,
    request: Request<Body>,
    direct: DirectStream,
    router: Router,
    stall: Duration,
) {
    // Boxed: the router's future is large and lives only until the answer.
    let Ok(response) = Box::pin(router.oneshot(request)).await;
    let Some(mut listener) = direct.take() else {
        // An error answer: write it whole and close.
        let (parts, body) = response.into_parts();
        let body = match Limited::new(body, MAX_ANSWER_BYTES).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => return,
        };
        let mut out = encode_head(&Response::from_parts(parts, ()), Some(body.len()));
        out.extend_from_slice(&body);
        let _ = write_all(&stream, &out, stall).await;
        let _ = stream.shutdown().await;
        return;
    };

    let mut start = encode_head(&response.map(|_| ()), None);
    for frame in listener.take_start() {
        start.extend_from_slice(&frame);
    }
    if write_all(&stream, &start, stall).await.is_err() {
        return;
    }
    drop(start);
    // Shared with the room, which writes to it while this listener is caught up.
    let stream = Arc::new(stream);
    loop {
        let next = listener.next_chunk(Some(&stream));
        tokio::pin!(next);
        // `next_chunk` is polled to completion (see its docs); meanwhile the
        // socket is watched, so a client that hangs up is let go at once
        // rather than at the next write.
        let chunk = tokio::select! {
            biased;
            chunk = &mut next => chunk,
            _ = stream.readable() => {
                // An event stream expects nothing from the client: data or
                // end of file, the conversation is over.
                let mut byte = [0u8; 1];
                match stream.try_read(&mut byte) {
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => next.await,
                    _ => return,
                }
            }
        };
        let Some(chunk) = chunk else { break };
        if write_all(&stream, &chunk, stall).await.is_err() {
            return;
        }
    }
    // The listener first, so the room holds the socket no more.
    drop(listener);
    let _ = socket2::SockRef::from(&*stream).shutdown(std::net::Shutdown::Write);
}

/// Sets `TCP_USER_TIMEOUT`: the kernel closes the connection when sent data
/// stays unacknowledged for `timeout`, so a peer that vanished without a FIN (a
/// laptop lid closed, a phone gone under ground) is noticed then rather than
/// after the kernel's ~15 minutes of retransmissions. Where the option is
/// unknown, nothing.
pub fn fail_fast(stream: &TcpStream, timeout: Duration) {
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "fuchsia"))]
    if let Err(error) = socket2::SockRef::from(stream).set_tcp_user_timeout(Some(timeout)) {
        tracing::debug!(%error, "cannot set TCP_USER_TIMEOUT");
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "fuchsia")))]
    let _ = (stream, timeout);
}

/// Writes all of `bytes`; fails if the socket accepts nothing for `stall`.
/// The common case is one `write` that takes everything, with no timer.
async fn write_all(stream: &TcpStream, mut bytes: &[u8], stall: Duration) -> io::Result<()> {
    while !bytes.is_empty() {
        match stream.try_write(bytes) {
            Ok(written) => bytes = &bytes[written..],
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                tokio::time::timeout(stall, stream.writable())
                    .await
                    .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
            }
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// The status line and headers of `response`, closing the connection after the
/// body; with a `Content-Length` when the body's size is known.
fn encode_head(response: &Response<()>, content_length: Option<usize>) -> Vec<u8> {
    let status = response.status();
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in response.headers() {
        if matches!(
            name.as_str(),
            "connection" | "content-length" | "transfer-encoding" | "date"
        ) {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"date: ");
    out.extend_from_slice(httpdate::fmt_http_date(SystemTime::now()).as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some(length) = content_length {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(itoa::Buffer::new().format(length).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"connection: close\r\n\r\n");
    out
}

/// Unsent bytes the kernel holds for a connection (`TCP_NOTSENT_LOWAT`): the
/// socket takes more only once the client has taken some, so "takes nothing"
/// means the client reads nothing, not a send buffer of megabytes draining
/// slowly.
const NOTSENT_LOWAT: u32 = 128 * 1024;

/// A connection whose first bytes were already read: they are read again first.
///
/// A write the socket takes nothing of for `stall` (the streams' cut-off, two
/// keepalive intervals) fails, and the connection is then reset, as a stream's
/// on the direct path and a TLS connection are. A browser stops reading a media
/// download once it has buffered enough (Firefox suspends it, Chromium defers
/// it) and may leave it parked for as long as the page stays open: one of its
/// six connections per server, a file and megabytes of socket buffers here, and
/// forever for a client that stopped reading. A browser's media cache asks for
/// a new range where it needs more (Firefox was seen doing so).
pub struct Prefixed {
    prefix: Vec<u8>,
    consumed: usize,
    io: TcpStream,
    stall: Duration,
    /// While writes wait on a socket that takes nothing: when that ends it.
    stalled_until: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Prefixed {
    pub fn new(prefix: Vec<u8>, io: TcpStream, stall: Duration) -> Self {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Err(error) = socket2::SockRef::from(&io).set_tcp_notsent_lowat(NOTSENT_LOWAT) {
            tracing::debug!(%error, "cannot set TCP_NOTSENT_LOWAT");
        }
        Prefixed {
            prefix,
            consumed: 0,
            io,
            stall,
            stalled_until: None,
        }
    }

    /// `written` as it came, unless the socket has taken nothing for
    /// `stall`: then an error, with the socket set to reset on
    /// close (what it still holds is never sent).
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if written.is_ready() {
            self.stalled_until = None;
            return written;
        }
        let stall = self.stall;
        let deadline = self
            .stalled_until
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
        if deadline.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.stalled_until = None;
        if let Err(error) = socket2::SockRef::from(&self.io).set_linger(Some(Duration::ZERO)) {
            tracing::debug!(%error, "cannot set SO_LINGER");
        }
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client took nothing of the response",
        )))
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.consumed < this.prefix.len() {
            let rest = &this.prefix[this.consumed..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.consumed += n;
            if this.consumed == this.prefix.len() {
                this.prefix = Vec::new();
                this.consumed = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write(cx, buf);
        this.watch(cx, written)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.watch(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 4000))
    }

    #[test]
    fn only_event_stream_paths_are_taken() {
        assert!(is_events_path("/api/rooms/r1/events"));
        assert!(is_events_path("/api/rooms/r1/events?last_event_id=4"));
        assert!(!is_events_path("/api/rooms//events"));
        assert!(!is_events_path("/api/rooms/a/b/events"));
        assert!(!is_events_path("/api/rooms/r1"));
        assert!(!is_events_path("/api/rooms/r1/eventsx"));
        assert!(!is_events_path("/"));
    }

    #[test]
    fn a_plain_get_of_a_stream_is_taken_with_its_headers() {
        let head =
            b"GET /api/rooms/r1/events?name=x HTTP/1.1\r\nHost: a\r\nLast-Event-ID: 7\r\n\r\n";
        let (request, _) = stream_request(head, peer()).expect("taken");
        assert_eq!(request.uri().path(), "/api/rooms/r1/events");
        assert_eq!(request.uri().query(), Some("name=x"));
        assert_eq!(request.headers()["last-event-id"], "7");
        assert!(request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .is_some());
    }

    #[test]
    fn anything_unusual_is_left_to_hyper() {
        let cases: [&[u8]; 6] = [
            b"POST /api/rooms/r1/events HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /api/rooms/r1 HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /api/rooms/r1/events HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
            b"GET /api/rooms/r1/events HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET /api/rooms/r1/events HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
            b"GET /api/rooms/r1/events HTTP/1.1\r\nHost: a\r\n",
        ];
        for head in cases {
            assert!(
                stream_request(head, peer()).is_none(),
                "{}",
                String::from_utf8_lossy(head)
            );
        }
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn streams_give_up_on_unacknowledged_data_after_the_stall_time() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        fail_fast(&server, Duration::from_secs(30));
        let set = socket2::SockRef::from(&server).tcp_user_timeout().unwrap();
        assert_eq!(set, Some(Duration::from_secs(30)));
        drop(client);
    }

    #[test]
    fn heads_close_the_connection_and_drop_hop_by_hop_headers() {
        let response = Response::builder()
            .status(404)
            .header("content-type", "application/json")
            .header("transfer-encoding", "chunked")
            .body(())
            .unwrap();
        let head = String::from_utf8(encode_head(&response, Some(12))).unwrap();
        assert!(head.starts_with("HTTP/1.1 404 Not Found\r\n"), "{head}");
        assert!(head.contains("content-type: application/json\r\n"));
        assert!(head.contains("content-length: 12\r\n"));
        assert!(head.contains("\r\ndate: "));
        assert!(!head.contains("transfer-encoding"));
        assert!(head.ends_with("connection: close\r\n\r\n"));
    }
}
