//! One task per listener: connect from its source address, subscribe, wait for its
//! snapshot, then read events until told to stop, checking that ids come one by
//! one and timing each against the moment its command was sent.
//!
//! Per connection the tool holds one read buffer, a parser with a tiny carry
//! buffer, and a few integers; a delivery costs a few atomic adds.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};

use crate::http::{invalid, parse_head, BodyDecoder};
use crate::sse::{Kind, Message, Parser};
use crate::stats::{Counters, Histogram};
use crate::{CommandKind, Target};

/// What listeners and the publisher share about one room.
pub struct Room {
    pub id: String,
    /// The room's last id before publishing (syncroom: its version; nchan: 0).
    pub base: AtomicU64,
    /// The last id published, set when publishing is over.
    pub last: AtomicU64,
    /// When the command for id `base + 1 + i` was sent: ns since the run's epoch,
    /// 0 while not sent. Written by the publisher before the request's first byte.
    pub sent_at: Box<[AtomicU64]>,
}

impl Room {
    pub fn new(id: String, commands: usize) -> Self {
        Self {
            id,
            base: AtomicU64::new(0),
            last: AtomicU64::new(0),
            sent_at: (0..commands).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn sent_at(&self, id: u64) -> Option<u64> {
        let offset = id.checked_sub(self.base.load(Ordering::Acquire) + 1)?;
        let slot = self.sent_at.get(usize::try_from(offset).ok()?)?;
        Some(slot.load(Ordering::Acquire)).filter(|&ns| ns != 0)
    }
}

/// Everything the listener tasks share.
pub struct Shared {
    pub target: Target,
    /// The servers: listener i connects to `addrs[i % len]`, room r's commands
    /// go to `addrs[r % len]` (syncroom nodes sharing rooms through Redis).
    pub addrs: Vec<SocketAddr>,
    /// What each command is.
    pub command: CommandKind,
    pub rooms: Vec<Room>,
    pub sources: Vec<Ipv4Addr>,
    pub read_buffer: usize,
    /// Bounds the connects and subscriptions in flight.
    pub connecting: Semaphore,
    /// The one clock: latencies are `Instant`s relative to this.
    pub epoch: Instant,
    pub latency_us: Histogram,
    /// Connect started → snapshot read (not counting the wait for a connect slot).
    pub subscribe_us: Histogram,
    pub counters: Counters,
}

impl Shared {
    /// Nanoseconds since the epoch, never 0 (0 marks "not sent").
    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64 + 1
    }

    pub fn room_of(&self, listener: usize) -> usize {
        listener % self.rooms.len()
    }
}

/// The life of listener number `index`.
pub async fn run(shared: Arc<Shared>, index: usize, mut stop: watch::Receiver<bool>) {
    let room = shared.room_of(index);
    let source = (!shared.sources.is_empty()).then(|| shared.sources[index % shared.sources.len()]);
    let mut buf = vec![0u8; shared.read_buffer].into_boxed_slice();
    let subscribed = {
        // The semaphore is never closed; a failed acquire would only mean no limit.
        let _permit = shared.connecting.acquire().await.ok();
        let started = Instant::now();
        let subscribed = subscribe(&shared, index, room, source, &mut buf).await;
        if subscribed.is_ok() {
            shared
                .subscribe_us
                .record(started.elapsed().as_micros() as u64);
        }
        subscribed
    };
    let (mut stream, mut feed) = match subscribed {
        Ok(connected) => connected,
        Err(error) => {
            shared.counters.fail(format!(
                "listener {index} (from {}): {error}",
                source.map_or("any".into(), |s| s.to_string())
            ));
            return;
        }
    };
    shared.counters.ready.fetch_add(1, Ordering::Relaxed);

    // A stream that ended early is counted as a disconnect; what it would have received
    // after that is not judged (the publishers may not even have finished).
    let mut stopped = false;
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => {
                stopped = true;
                break;
            }
            read = stream.read(&mut buf) => {
                let result = match read {
                    Ok(0) => Err(invalid("the server closed the stream")),
                    Ok(n) => feed.bytes(&shared, &buf[..n]),
                    Err(error) => Err(error),
                };
                match result {
                    Ok(true) => {
                        shared.counters.disconnect(format!("listener {index}: the stream ended"));
                        break;
                    }
                    Ok(false) => {}
                    Err(error) => {
                        shared.counters.disconnect(format!("listener {index}: {error}"));
                        break;
                    }
                }
            }
        }
    }
    if stopped {
        feed.finish(&shared);
    }
}

/// Connects, sends the subscription and reads until the listener is ready: its
/// snapshot for syncroom, the `200` head for nchan (which sends no snapshot).
async fn subscribe(
    shared: &Shared,
    index: usize,
    room: usize,
    source: Option<Ipv4Addr>,
    buf: &mut [u8],
) -> std::io::Result<(TcpStream, Feed)> {
    let socket = crate::sys::client_socket(source)?;
    let addr = shared.addrs[index % shared.addrs.len()];
    let mut stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    let room_id = &shared.rooms[room].id;
    let path = match shared.target {
        Target::Syncroom => format!("/api/rooms/{room_id}/events"),
        Target::Nchan => format!("/sub/{room_id}"),
    };
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;

    let mut filled = 0;
    let (head, head_len) = loop {
        if filled == buf.len() {
            return Err(invalid("response head larger than --read-buffer"));
        }
        let n = stream.read(&mut buf[filled..]).await?;
        if n == 0 {
            return Err(invalid("closed before the response head"));
        }
        filled += n;
        if let Some(parsed) = parse_head(&buf[..filled])? {
            break parsed;
        }
    };
    if head.status != 200 {
        let body = String::from_utf8_lossy(&buf[head_len..filled]);
        let hint = if head.status == 429 {
            " (the server limits streams per client address: use more --source-ips, or raise its --max-streams-per-client)"
        } else {
            ""
        };
        return Err(invalid(format!(
            "HTTP {}: {}{hint}",
            head.status,
            body.trim()
        )));
    }
    if !head.content_type.starts_with("text/event-stream") {
        return Err(invalid(format!("Content-Type {:?}", head.content_type)));
    }
    let mut feed = Feed {
        room,
        decoder: BodyDecoder::for_head(&head),
        parser: Parser::default(),
        // nchan subscribers start before the first message, with nothing to wait for.
        ready: shared.target == Target::Nchan,
        last: 0,
    };
    let mut ended = feed.bytes(shared, &buf[head_len..filled])?;
    while !feed.ready && !ended {
        let n = stream.read(buf).await?;
        if n == 0 {
            return Err(invalid("closed before the snapshot"));
        }
        ended = feed.bytes(shared, &buf[..n])?;
    }
    if !feed.ready {
        return Err(invalid("the stream ended before the snapshot"));
    }
    Ok((stream, feed))
}

/// A subscribed stream's parsing state and its place in the sequence.
struct Feed {
    room: usize,
    decoder: BodyDecoder,
    parser: Parser,
    ready: bool,
    /// The last id this listener holds (syncroom: its version; nchan: the sequence).
    last: u64,
}

impl Feed {
    /// Takes bytes read from the socket. Returns whether the body ended.
    fn bytes(&mut self, shared: &Shared, input: &[u8]) -> std::io::Result<bool> {
        let now = shared.now_ns();
        shared
            .counters
            .bytes
            .fetch_add(input.len() as u64, Ordering::Relaxed);
        let Feed {
            room,
            decoder,
            parser,
            ready,
            last,
        } = self;
        let mut track = Track {
            shared,
            room: &shared.rooms[*room],
            ready,
            last,
            now,
        };
        let comments_before = parser.comments;
        let mut parse_error = None;
        let ended = decoder.feed(input, &mut |body: &[u8]| {
            if parse_error.is_none() {
                if let Err(error) =
                    parser.feed(body, &mut |message: &Message| track.message(message))
                {
                    parse_error = Some(error);
                }
            }
        })?;
        if let Some(error) = parse_error {
            return Err(error);
        }
        let comments = parser.comments - comments_before;
        if comments > 0 {
            shared.counters.other.fetch_add(comments, Ordering::Relaxed);
        }
        Ok(ended)
    }

    /// Counts what never came: ids up to the last one published.
    fn finish(&self, shared: &Shared) {
        let published = shared.rooms[self.room].last.load(Ordering::Acquire);
        let counters = &shared.counters;
        if self.last < published {
            counters
                .lost
                .fetch_add(published - self.last, Ordering::Relaxed);
        } else if self.last > published {
            counters
                .unexpected
                .fetch_add(self.last - published, Ordering::Relaxed);
        }
    }
}

/// Applies messages to one listener's sequence; borrowed for one read.
struct Track<'a> {
    shared: &'a Shared,
    room: &'a Room,
    ready: &'a mut bool,
    last: &'a mut u64,
    now: u64,
}

impl Track<'_> {
    fn message(&mut self, message: &Message) {
        let counters = &self.shared.counters;
        let id = match self.shared.target {
            Target::Syncroom => message.id,
            Target::Nchan => message.data_version,
        };
        let Some(id) = id else {
            // presence, or anything else without a sequence number
            counters.other.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if message.kind == Kind::Snapshot {
            if *self.ready {
                // A mid-stream snapshot: the server dropped this listener's backlog.
                counters.resyncs.fetch_add(1, Ordering::Relaxed);
                if id > *self.last {
                    counters.lost.fetch_add(id - *self.last, Ordering::Relaxed);
                    *self.last = id;
                }
            } else {
                *self.ready = true;
                *self.last = id;
            }
            return;
        }
        if !*self.ready {
            // syncroom always starts with a snapshot; an event before it is a bug.
            counters.unexpected.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if id <= *self.last {
            counters.duplicated.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if id > *self.last + 1 {
            counters
                .lost
                .fetch_add(id - *self.last - 1, Ordering::Relaxed);
        }
        *self.last = id;
        counters.delivered.fetch_add(1, Ordering::Relaxed);
        match self.room.sent_at(id) {
            Some(sent) => self
                .shared
                .latency_us
                .record(self.now.saturating_sub(sent) / 1_000),
            None => {
                counters.unmatched.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(target: Target) -> Shared {
        Shared {
            target,
            addrs: vec![SocketAddr::from(([127, 0, 0, 1], 9))],
            command: CommandKind::Seek,
            rooms: vec![Room::new("b0".into(), 8)],
            sources: Vec::new(),
            read_buffer: 2048,
            connecting: Semaphore::new(1),
            epoch: Instant::now(),
            latency_us: Histogram::new(),
            subscribe_us: Histogram::new(),
            counters: Counters::default(),
        }
    }

    fn feed(target: Target) -> Feed {
        Feed {
            room: 0,
            decoder: BodyDecoder::UntilClose,
            parser: Parser::default(),
            ready: target == Target::Nchan,
            last: 0,
        }
    }

    fn counts(shared: &Shared) -> [u64; 5] {
        let c = &shared.counters;
        [
            &c.delivered,
            &c.lost,
            &c.duplicated,
            &c.unexpected,
            &c.unmatched,
        ]
        .map(Counters::get)
    }

    #[test]
    fn ids_must_come_one_by_one_from_the_snapshot_on() {
        let shared = shared(Target::Syncroom);
        let room = &shared.rooms[0];
        room.base.store(5, Ordering::Release);
        room.sent_at[0].store(shared.now_ns(), Ordering::Release);
        let mut feed = feed(Target::Syncroom);
        let stream = b"retry: 2000\n\nid: 5\nevent: snapshot\ndata: {}\n\n\
            id: 6\nevent: state\ndata: {}\n\nid: 7\nevent: state\ndata: {}\n\n\
            id: 7\nevent: state\ndata: {}\n\nevent: presence\ndata: {}\n\n\
            id: 9\nevent: state\ndata: {}\n\n";
        assert!(!feed.bytes(&shared, stream).unwrap());
        assert!(feed.ready);
        // delivered 6, 7, 9; 8 lost; the second 7 duplicated; 7 and 9 never sent.
        assert_eq!(counts(&shared), [3, 1, 1, 0, 2]);
        assert_eq!(shared.latency_us.summary().count, 1);
        room.last.store(10, Ordering::Release);
        feed.finish(&shared);
        assert_eq!(counts(&shared)[1], 2, "10 never came");
    }

    #[test]
    fn a_mid_stream_snapshot_counts_what_it_skipped_as_lost() {
        let shared = shared(Target::Syncroom);
        let mut feed = feed(Target::Syncroom);
        let stream = b"id: 1\nevent: snapshot\ndata: {}\n\nid: 4\nevent: snapshot\ndata: {}\n\n";
        feed.bytes(&shared, stream).unwrap();
        assert_eq!(Counters::get(&shared.counters.resyncs), 1);
        assert_eq!(counts(&shared), [0, 3, 0, 0, 0]);
    }

    #[test]
    fn nchan_sequences_are_read_from_the_data_and_extra_ones_are_unexpected() {
        let shared = shared(Target::Nchan);
        let mut feed = feed(Target::Nchan);
        let stream =
            b": hi\n\nid: 1:0\ndata: {\"version\":1}\n\nid: 1:1\ndata: {\"version\":2}\n\n";
        feed.bytes(&shared, stream).unwrap();
        assert_eq!(counts(&shared), [2, 0, 0, 0, 2]);
        shared.rooms[0].last.store(1, Ordering::Release);
        feed.finish(&shared);
        assert_eq!(counts(&shared)[3], 1);
    }
}
