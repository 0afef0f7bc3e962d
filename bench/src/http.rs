//! Just enough HTTP/1.1 for the tool: a response-head parser, an incremental body
//! decoder (chunked, Content-Length, or until close: syncroom and nchan both end
//! a fresh connection's stream by closing it; syncroom chunks a stream asked for
//! on a reused connection) and a keep-alive client for the few control requests.
//!
//! Hand-written on purpose: the listener path must cost a fraction of what the
//! server spends per delivery, with one small buffer per connection.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest response head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// The largest control-response body accepted.
const MAX_BODY: usize = 4 * 1024 * 1024;

pub fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// The parts of a response head the tool acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub chunked: bool,
    pub content_length: Option<u64>,
    pub close: bool,
    pub content_type: String,
}

/// Parses a response head from the start of `buf`: `Ok(None)` while incomplete,
/// else the head and how many bytes it took.
pub fn parse_head(buf: &[u8]) -> io::Result<Option<(Head, usize)>> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD {
            return Err(invalid("response head too large"));
        }
        return Ok(None);
    };
    let text = std::str::from_utf8(&buf[..end]).map_err(|_| invalid("response head not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(invalid(format!("not an HTTP/1 response: {status_line:?}")));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| invalid(format!("bad status line: {status_line:?}")))?;
    let mut head = Head {
        status,
        chunked: false,
        content_length: None,
        close: version == "HTTP/1.0",
        content_type: String::new(),
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            head.content_length = Some(value.parse().map_err(|_| invalid("bad Content-Length"))?);
        } else if name.eq_ignore_ascii_case("connection") {
            head.close = value.eq_ignore_ascii_case("close");
        } else if name.eq_ignore_ascii_case("content-type") {
            head.content_type = value.to_owned();
        }
    }
    Ok(Some((head, end + 4)))
}

/// Turns the bytes after a head into body bytes, as they arrive.
#[derive(Debug)]
pub enum BodyDecoder {
    Chunked(Chunked),
    Length(u64),
    UntilClose,
}

impl BodyDecoder {
    pub fn for_head(head: &Head) -> Self {
        if head.chunked {
            BodyDecoder::Chunked(Chunked::Size {
                value: 0,
                digits: 0,
                extension: false,
            })
        } else if let Some(length) = head.content_length {
            BodyDecoder::Length(length)
        } else {
            BodyDecoder::UntilClose
        }
    }

    /// Feeds raw bytes, handing each run of body bytes to `body`. Returns whether
    /// the body is complete (bytes after its end are ignored).
    pub fn feed(&mut self, input: &[u8], body: &mut impl FnMut(&[u8])) -> io::Result<bool> {
        match self {
            BodyDecoder::UntilClose => {
                body(input);
                Ok(false)
            }
            BodyDecoder::Length(remaining) => {
                let take = input
                    .len()
                    .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                body(&input[..take]);
                *remaining -= take as u64;
                Ok(*remaining == 0)
            }
            BodyDecoder::Chunked(state) => state.feed(input, body),
        }
    }
}

/// The chunked transfer coding, one state per place a byte can land.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunked {
    /// The hex size line (extensions after `;` are skipped).
    Size {
        value: u64,
        digits: u8,
        extension: bool,
    },
    /// Inside a chunk's data.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer lines after the last chunk; `true` at the start of a line.
    Trailer(bool),
    Done,
}

impl Chunked {
    const NEW_SIZE: Chunked = Chunked::Size {
        value: 0,
        digits: 0,
        extension: false,
    };

    fn feed(&mut self, mut input: &[u8], body: &mut impl FnMut(&[u8])) -> io::Result<bool> {
        while !input.is_empty() {
            match self {
                Chunked::Data(remaining) => {
                    let take = input
                        .len()
                        .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                    body(&input[..take]);
                    input = &input[take..];
                    *remaining -= take as u64;
                    if *remaining == 0 {
                        *self = Chunked::DataEnd;
                    }
                    continue;
                }
                Chunked::Done => return Ok(true),
                _ => {}
            }
            let byte = input[0];
            input = &input[1..];
            *self = match *self {
                Chunked::Size {
                    value,
                    digits,
                    extension,
                } => match byte {
                    b'\n' if digits == 0 => return Err(invalid("chunk size missing")),
                    b'\n' if value == 0 => Chunked::Trailer(true),
                    b'\n' => Chunked::Data(value),
                    b'\r' => *self,
                    _ if extension => *self,
                    b';' => Chunked::Size {
                        value,
                        digits,
                        extension: true,
                    },
                    b' ' | b'\t' => *self,
                    _ => {
                        let digit = (byte as char)
                            .to_digit(16)
                            .ok_or_else(|| invalid("bad chunk size"))?;
                        if digits >= 15 {
                            return Err(invalid("chunk size too large"));
                        }
                        Chunked::Size {
                            value: value * 16 + u64::from(digit),
                            digits: digits + 1,
                            extension,
                        }
                    }
                },
                Chunked::DataEnd => match byte {
                    b'\r' => Chunked::DataEnd,
                    b'\n' => Chunked::NEW_SIZE,
                    _ => return Err(invalid("chunk data longer than its size")),
                },
                Chunked::Trailer(line_start) => match byte {
                    b'\n' if line_start => Chunked::Done,
                    b'\n' => Chunked::Trailer(true),
                    b'\r' => Chunked::Trailer(line_start),
                    _ => Chunked::Trailer(false),
                },
                Chunked::Data(_) | Chunked::Done => *self,
            };
        }
        Ok(*self == Chunked::Done)
    }
}

/// A complete response to a control request.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text, for error messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).trim().to_owned()
    }
}

/// One keep-alive connection for control requests (room creation, commands,
/// nchan publishes), reopened when the server closes it.
pub struct Client {
    addr: SocketAddr,
    host: String,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            host: addr.to_string(),
            stream: None,
            buf: Vec::with_capacity(4096),
        }
    }

    /// Sends one request and reads its whole response. `on_send` runs right before
    /// the request's bytes are written (the moment latency is measured from); a
    /// kept-alive connection the server had closed is retried once on a new one.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        json_body: Option<&[u8]>,
        on_send: &mut (dyn FnMut() + Send),
    ) -> io::Result<Response> {
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.host);
        if let Some(body) = json_body {
            request.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        request.push_str("\r\n");
        let mut request = request.into_bytes();
        request.extend_from_slice(json_body.unwrap_or_default());

        let reused = self.stream.is_some();
        match self.exchange(&request, on_send).await {
            Ok(response) => Ok(response),
            Err(_) if reused => {
                self.stream = None;
                self.exchange(&request, on_send).await
            }
            Err(error) => Err(error),
        }
    }

    async fn exchange(
        &mut self,
        request: &[u8],
        on_send: &mut (dyn FnMut() + Send),
    ) -> io::Result<Response> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(self.addr).await?;
            stream.set_nodelay(true)?;
            self.stream = Some(stream);
        }
        let result = self.exchange_on_open(request, on_send).await;
        // Keep the connection only when the answer left it open.
        if !matches!(result, Ok((_, true))) {
            self.stream = None;
        }
        result.map(|(response, _)| response)
    }

    /// Returns the response and whether the connection stays open.
    async fn exchange_on_open(
        &mut self,
        request: &[u8],
        on_send: &mut (dyn FnMut() + Send),
    ) -> io::Result<(Response, bool)> {
        let stream = self
            .stream
            .as_mut()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))?;
        on_send();
        stream.write_all(request).await?;
        self.buf.clear();
        let (head, head_len) = loop {
            if let Some(parsed) = parse_head(&self.buf)? {
                break parsed;
            }
            if stream.read_buf(&mut self.buf).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        };
        let mut decoder = BodyDecoder::for_head(&head);
        let mut body = Vec::new();
        let mut too_large = false;
        let mut append = |bytes: &[u8]| {
            if body.len() + bytes.len() > MAX_BODY {
                too_large = true;
            } else {
                body.extend_from_slice(bytes);
            }
        };
        let mut complete = decoder.feed(&self.buf[head_len..], &mut append)?;
        let mut chunk = [0u8; 4096];
        while !complete {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                if matches!(decoder, BodyDecoder::UntilClose) {
                    break;
                }
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            complete = decoder.feed(&chunk[..n], &mut append)?;
        }
        if too_large {
            return Err(invalid("response body too large"));
        }
        let keep = complete && !head.close;
        Ok((
            Response {
                status: head.status,
                body,
            },
            keep,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(decoder: &mut BodyDecoder, pieces: &[&[u8]]) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        let mut done = false;
        for piece in pieces {
            done = decoder
                .feed(piece, &mut |b: &[u8]| out.extend_from_slice(b))
                .unwrap();
        }
        (out, done)
    }

    #[test]
    fn a_head_says_status_and_framing() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\nrest";
        let (head, len) = parse_head(raw).unwrap().unwrap();
        assert_eq!(head.status, 200);
        assert!(head.chunked && !head.close);
        assert_eq!(head.content_type, "text/event-stream");
        assert_eq!(&raw[len..], b"rest");
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n").unwrap().is_none());
        assert!(parse_head(b"SSH-2.0-x\r\n\r\n").is_err());
    }

    #[test]
    fn chunked_bodies_decode_across_any_split() {
        let raw: &[u8] = b"5;ext=1\r\nhello\r\nB\r\n, the world\r\n0\r\nX-T: 1\r\n\r\nignored";
        for split in 0..raw.len() {
            let head = parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                .unwrap()
                .unwrap()
                .0;
            let mut decoder = BodyDecoder::for_head(&head);
            let (out, done) = decode(&mut decoder, &[&raw[..split], &raw[split..]]);
            assert_eq!(out, b"hello, the world", "split at {split}");
            assert!(done);
        }
    }

    #[test]
    fn a_bad_chunk_size_is_an_error_not_a_panic() {
        let mut decoder = BodyDecoder::Chunked(Chunked::NEW_SIZE);
        assert!(decoder.feed(b"zz\r\n", &mut |_: &[u8]| {}).is_err());
        let mut decoder = BodyDecoder::Chunked(Chunked::NEW_SIZE);
        assert!(decoder
            .feed(b"ffffffffffffffffff\r\n", &mut |_: &[u8]| {})
            .is_err());
    }

    #[test]
    fn length_and_close_delimited_bodies() {
        let mut decoder = BodyDecoder::Length(3);
        assert_eq!(
            decode(&mut decoder, &[b"ab", b"cd"]),
            (b"abc".to_vec(), true)
        );
        let mut decoder = BodyDecoder::UntilClose;
        assert_eq!(
            decode(&mut decoder, &[b"ab", b"cd"]),
            (b"abcd".to_vec(), false)
        );
    }

    /// The client keeps its connection while answers leave it open: two
    /// requests, one connection (a reconnect per command once inflated every
    /// server's per-command cost).
    #[tokio::test]
    async fn the_client_reuses_a_connection_left_open() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut accepted = 0;
            while let Ok(Ok((mut socket, _))) =
                tokio::time::timeout(std::time::Duration::from_millis(300), listener.accept()).await
            {
                accepted += 1;
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = socket.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if socket.write_all(answer).await.is_err() {
                            break;
                        }
                    }
                });
            }
            accepted
        });
        let mut client = Client::new(addr);
        for _ in 0..2 {
            let response = client.request("GET", "/", None, &mut || {}).await.unwrap();
            assert_eq!(
                (response.status, response.body.as_slice()),
                (200, &b"ok"[..])
            );
        }
        assert_eq!(server.await.unwrap(), 1);
    }
}
