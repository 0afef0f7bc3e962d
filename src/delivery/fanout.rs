//! Fan-out: how a frame reaches one listener. Every listener has a [`Sink`],
//! in one of three modes:
//!
//! - **queued** (where every stream starts): the room appends each frame to the
//!   sink's own queue, at most `--listener-buffer` of them, and wakes the
//!   listener's task, which writes them. The task writes its start first, so
//!   frames published meanwhile wait here. Streams hyper serves (reused
//!   connections, HTTP/2, TLS) stay queued for their whole life.
//! - **direct**: a task on its own socket that finds its queue empty hands the
//!   socket to the room ([`Sink::next`]) and sleeps. The room then writes each
//!   frame with a non-blocking send and wakes nobody; the sends of a batch of
//!   sinks go out in one system call ([`super::send_batch`]).
//! - **ended**: nothing more is written (the stream ended, the socket failed,
//!   or the room is gone).
//!
//! When the socket pushes back (it took part of a frame, or none), the room
//! puts the sink back in queued mode with what the socket did not take first
//! ([`DirectWrite::finish`]) and wakes the task, which writes on at its own pace. A
//! queue that overflows is dropped whole and the task resyncs with a fresh
//! snapshot; a socket that takes nothing for the stall time is dropped (by the
//! task). So the room never waits for a listener.
//!
//! Everything happens under the sink's lock, which the room and the task each
//! hold for a few instructions (or one `write`): a frame is in the queue or
//! written by the room, never both and never neither. There is no room-wide
//! ring: a room of ten listeners holds ten short queues, most of them empty.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::send_batch;
use crate::room::event::SharedFrame;

/// One listener's place in its room's fan-out.
#[derive(Debug)]
pub struct Sink {
    state: Mutex<SinkState>,
    /// Wakes the listener's task: a frame is queued, the room handed the
    /// stream back, or ended it.
    wake: Notify,
}

#[derive(Debug)]
struct SinkState {
    mode: Mode,
    /// Most frames the queue holds (`--listener-buffer`).
    capacity: usize,
    /// The last version the room wrote to the socket itself.
    version: u64,
}

#[derive(Debug)]
enum Mode {
    /// The task writes, from `queue`.
    Queued(Queue),
    /// The room writes to this socket.
    Direct(Arc<TcpStream>),
    /// Nothing more is written.
    Ended,
}

#[derive(Debug, Default)]
struct Queue {
    /// What the socket did not take of a frame the room wrote: first out.
    rest: Option<Bytes>,
    /// That frame ends the stream (`closed`).
    rest_ends: bool,
    frames: VecDeque<SharedFrame>,
    /// Frames were dropped: the task resyncs before anything queued after.
    lagged: bool,
    /// The room is gone: nothing follows what is queued.
    last: bool,
}

/// How a frame went to one sink, for the room.
#[derive(Debug, PartialEq)]
pub(crate) enum Delivery {
    /// Written whole to the socket.
    Written,
    /// Queued for the task (the socket pushed back, or the task writes).
    Queued,
    /// Nobody writes here any more: the room may forget this sink.
    Ended,
}

/// [`Sink::begin`]'s answer.
pub(crate) enum Begin<'a> {
    /// Queued for the task, or nobody writes here any more.
    Done(Delivery),
    /// The room holds the socket: write the frame, then [`DirectWrite::finish`].
    Direct(DirectWrite<'a>),
}

/// A sink in direct mode, locked while the room writes to its socket (so the
/// task cannot take the socket back halfway).
///
/// The socket is out of the sink's state meanwhile (which says `Ended`, seen
/// by nobody while the lock is held): [`DirectWrite::finish`] puts it back or
/// lets it go. Dropped without `finish` (a panic between the two), the sink
/// stays ended: its task ends the stream and the listener reconnects.
pub(crate) struct DirectWrite<'a> {
    sink: &'a Sink,
    socket: Arc<TcpStream>,
    state: MutexGuard<'a, SinkState>,
}

impl DirectWrite<'_> {
    /// The socket to write the frame to, open for as long as this borrow.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }

    /// Records how the write of `frame` went: written whole; in part or not at
    /// all (the rest and what follows go to the task); or failed (the peer is
    /// gone: the task notices and ends).
    pub(crate) fn finish(self, frame: &SharedFrame, written: io::Result<usize>) -> Delivery {
        let DirectWrite {
            sink,
            socket,
            mut state,
        } = self;
        let written = match written {
            Ok(written) => written,
            // Full (or interrupted): the task writes it all, at the socket's pace.
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                0
            }
            Err(_) => {
                state.mode = Mode::Ended;
                drop(state);
                sink.wake.notify_one();
                return Delivery::Ended;
            }
        };
        if let Some(version) = frame.version {
            state.version = version;
        }
        if written >= frame.bytes.len() {
            if frame.ends_stream {
                state.mode = Mode::Ended;
                drop(state);
                sink.wake.notify_one();
            } else {
                state.mode = Mode::Direct(socket);
            }
            return Delivery::Written;
        }
        state.mode = Mode::Queued(Queue {
            rest: Some(frame.bytes.slice(written..)),
            rest_ends: frame.ends_stream,
            ..Queue::default()
        });
        drop(state);
        sink.wake.notify_one();
        Delivery::Queued
    }
}

/// Writes `frame` to the socket of every write in `direct` in one batch
/// ([`send_batch::send_all`]), finishes each write and hands its delivery to
/// `count`; leaves `direct` empty. `outcomes` is scratch space, kept by the
/// caller to spare an allocation per batch.
pub(crate) fn write_batch(
    direct: &mut Vec<DirectWrite<'_>>,
    frame: &SharedFrame,
    outcomes: &mut Vec<io::Result<usize>>,
    mut count: impl FnMut(Delivery),
) {
    // Borrows each write's socket: the writes cannot be finished (the sinks
    // unlocked, their sockets let go) until the sends are over.
    let writes: Vec<(BorrowedFd<'_>, &[u8])> = direct
        .iter()
        .map(|write| (write.fd(), &frame.bytes[..]))
        .collect();
    send_batch::send_all(&writes, outcomes);
    drop(writes);
    for (write, outcome) in direct.drain(..).zip(outcomes.drain(..)) {
        count(write.finish(frame, outcome));
    }
}

/// What the task is to do next.
#[derive(Debug)]
pub enum Next {
    /// Write the rest of a frame the room began; `ends_stream`: nothing
    /// follows. `version`: the last version the room wrote to the socket
    /// itself (frames at or below it reaching the task later are duplicates).
    Rest {
        bytes: Bytes,
        ends_stream: bool,
        version: u64,
    },
    /// Write this frame.
    Frame(SharedFrame),
    /// Frames were dropped: write a fresh snapshot first.
    Lagged,
    /// Nothing to write now: wait in [`Sink::changed`]. (Given a socket, the
    /// room writes to it from now on.)
    Wait,
    /// The stream ended: the room wrote `closed`, the socket failed, or the
    /// room is gone.
    Closed,
}

impl Sink {
    /// A sink in queued mode holding at most `capacity` frames.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(SinkState {
                mode: Mode::Queued(Queue::default()),
                capacity: capacity.max(1),
                version: 0,
            }),
            wake: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SinkState> {
        // Nothing under the lock can panic halfway; a poisoned lock's state is whole.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The room's side for one sink: writes `frame` to the socket if the room
    /// holds it (by the same non-blocking send the room's batches use), else
    /// queues it for the task. The room itself writes in batches
    /// ([`Sink::begin`], then [`DirectWrite::finish`]).
    #[cfg(test)]
    pub(crate) fn deliver(&self, frame: &SharedFrame) -> Delivery {
        match self.begin(frame) {
            Begin::Done(delivery) => delivery,
            Begin::Direct(write) => {
                let mut outcome = Vec::with_capacity(1);
                send_batch::send_all(&[(write.fd(), &frame.bytes[..])], &mut outcome);
                let written = outcome
                    .pop()
                    .unwrap_or_else(|| Err(io::Error::other("no outcome")));
                write.finish(frame, written)
            }
        }
    }

    /// The room's side, first half: queues `frame` (or drops it for an
    /// ended sink), or, when the room holds the socket, keeps the sink locked
    /// for the caller to write and [`DirectWrite::finish`]. Lets the room write
    /// many sinks' sockets in one batch.
    pub(crate) fn begin(&self, frame: &SharedFrame) -> Begin<'_> {
        let mut state = self.lock();
        let capacity = state.capacity;
        match std::mem::replace(&mut state.mode, Mode::Ended) {
            Mode::Direct(socket) => Begin::Direct(DirectWrite {
                sink: self,
                socket,
                state,
            }),
            Mode::Queued(mut queue) => {
                if queue.frames.len() >= capacity {
                    // Too slow: what is queued is dropped, a snapshot replaces it.
                    queue.frames = VecDeque::new();
                    queue.lagged = true;
                }
                queue.frames.push_back(frame.clone());
                state.mode = Mode::Queued(queue);
                drop(state);
                self.wake.notify_one();
                Begin::Done(Delivery::Queued)
            }
            Mode::Ended => Begin::Done(Delivery::Ended),
        }
    }

    /// The task's side: what to write next. With `socket` and nothing queued,
    /// hands the socket to the room (direct mode) and answers [`Next::Wait`].
    pub fn next(&self, socket: Option<&Arc<TcpStream>>) -> Next {
        let mut state = self.lock();
        let queue = match &mut state.mode {
            Mode::Queued(queue) => queue,
            Mode::Direct(_) => return Next::Wait,
            Mode::Ended => return Next::Closed,
        };
        if let Some(bytes) = queue.rest.take() {
            let ends_stream = std::mem::take(&mut queue.rest_ends);
            if ends_stream {
                state.mode = Mode::Ended;
            }
            return Next::Rest {
                bytes,
                ends_stream,
                version: state.version,
            };
        }
        if queue.lagged {
            queue.lagged = false;
            return Next::Lagged;
        }
        if let Some(frame) = queue.frames.pop_front() {
            return Next::Frame(frame);
        }
        if queue.last {
            state.mode = Mode::Ended;
            return Next::Closed;
        }
        if let Some(socket) = socket {
            state.mode = Mode::Direct(socket.clone());
        }
        Next::Wait
    }

    /// Waits until something changed ([`Sink::next`] has news). Cancel-safe:
    /// the state lives in the sink, the wake is only a wake.
    pub async fn changed(&self) {
        self.wake.notified().await;
    }

    /// The task's side: the stream ends; the room lets go of the socket.
    /// Answers what the room began and the socket did not take, if anything:
    /// the task writes it before its last words.
    pub fn close(&self) -> Option<Bytes> {
        let mut state = self.lock();
        let rest = match &mut state.mode {
            Mode::Queued(queue) => queue.rest.take(),
            _ => None,
        };
        state.mode = Mode::Ended;
        rest
    }

    /// The room's side: the room is gone; the task writes what is queued
    /// (its `closed`, say) and ends its stream.
    pub(crate) fn end(&self) {
        let mut state = self.lock();
        match &mut state.mode {
            Mode::Queued(queue) => queue.last = true,
            _ => state.mode = Mode::Ended,
        }
        drop(state);
        self.wake.notify_one();
    }

    pub(crate) fn is_ended(&self) -> bool {
        matches!(self.lock().mode, Mode::Ended)
    }

    /// Takes the next queued frame, for tests of the room.
    #[cfg(test)]
    pub(crate) fn try_next(&self) -> Option<SharedFrame> {
        match self.next(None) {
            Next::Frame(frame) => Some(frame),
            _ => None,
        }
    }

    /// Waits for the next queued frame, for tests of the room.
    #[cfg(test)]
    pub(crate) async fn next_frame(&self) -> Option<SharedFrame> {
        loop {
            match self.next(None) {
                Next::Frame(frame) => return Some(frame),
                Next::Closed => return None,
                Next::Wait | Next::Lagged | Next::Rest { .. } => self.changed().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The handover on real loopback sockets: a reader that stops reading makes
    //! the socket push back.
    use super::*;
    use crate::room::event::Frame;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    async fn pair() -> (Arc<TcpStream>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (Arc::new(server), client)
    }

    fn frame(version: u64, size: usize) -> SharedFrame {
        let mut bytes = format!("id: {version}\n").into_bytes();
        bytes.resize(size, b'x');
        Arc::new(Frame {
            version: Some(version),
            bytes: Bytes::from(bytes),
            ends_stream: false,
            restarts: false,
            fanout: None,
        })
    }

    async fn read_exactly(client: &mut TcpStream, expected: usize) -> Vec<u8> {
        let mut got = vec![0; expected];
        client.read_exact(&mut got).await.unwrap();
        got
    }

    #[tokio::test]
    async fn a_caught_up_listener_is_written_by_the_room_and_handed_back_on_push_back() {
        let (socket, mut client) = pair().await;
        let sink = Sink::new(1_000_000);

        // Queued: frames wait for the task, which takes them in order.
        let first = frame(1, 100);
        assert_eq!(sink.deliver(&first), Delivery::Queued);
        let Next::Frame(waiting) = sink.next(Some(&socket)) else {
            panic!("the queued frame comes first");
        };
        assert_eq!(waiting.version, Some(1));
        // Nothing queued: the socket goes to the room.
        assert!(matches!(sink.next(Some(&socket)), Next::Wait));

        // Direct: the room writes until the socket is full, then hands back.
        let mut sent = Vec::new();
        let mut last = None;
        for version in 2..100_000 {
            let next = frame(version, 4096);
            match sink.deliver(&next) {
                Delivery::Written => sent.extend_from_slice(&next.bytes),
                Delivery::Queued => {
                    last = Some(next);
                    break;
                }
                Delivery::Ended => panic!("the socket is fine"),
            }
        }
        let last = last.expect("a reader that never reads fills the socket");
        // What comes after the push back is queued behind the rest.
        let after = frame(u64::MAX, 64);
        assert_eq!(sink.deliver(&after), Delivery::Queued);
        let Next::Rest {
            bytes: rest,
            ends_stream: false,
            version,
        } = sink.next(Some(&socket))
        else {
            panic!("the rest of the frame comes first");
        };
        assert_eq!(
            Some(version),
            last.version,
            "the last version the room wrote"
        );
        let taken = last.bytes.len() - rest.len();
        sent.extend_from_slice(&last.bytes[..taken]);
        let Next::Frame(queued) = sink.next(Some(&socket)) else {
            panic!("then what was queued");
        };
        assert_eq!(queued.version, Some(u64::MAX));

        // The reader gets exactly what the room wrote, in order, then the rest.
        let got = read_exactly(&mut client, sent.len()).await;
        assert!(got == sent, "the direct writes arrive whole and in order");
        socket.writable().await.unwrap();
        assert_eq!(socket.try_write(&rest).unwrap(), rest.len());
        assert_eq!(read_exactly(&mut client, rest.len()).await, rest);

        // Caught up again: the task hands the socket back, and the room writes once more.
        assert!(matches!(sink.next(Some(&socket)), Next::Wait));
        let again = frame(7, 50);
        assert_eq!(sink.deliver(&again), Delivery::Written);
        assert_eq!(read_exactly(&mut client, 50).await, again.bytes);
    }

    #[tokio::test]
    async fn a_queue_that_overflows_is_dropped_for_a_resync() {
        let sink = Sink::new(3);
        for version in 1..=5 {
            assert_eq!(sink.deliver(&frame(version, 20)), Delivery::Queued);
        }
        // Three fitted; the fourth found the queue full: those three are
        // dropped for a resync, and what came from then on is kept.
        assert!(matches!(sink.next(None), Next::Lagged));
        for version in [4, 5] {
            let Next::Frame(kept) = sink.next(None) else {
                panic!("what came after the overflow is kept");
            };
            assert_eq!(kept.version, Some(version));
        }
        // Without a socket the sink stays queued: the room never writes.
        assert!(matches!(sink.next(None), Next::Wait));
        assert_eq!(sink.deliver(&frame(6, 20)), Delivery::Queued);
    }

    #[tokio::test]
    async fn closing_and_ending_reach_both_sides() {
        let (socket, _client) = pair().await;
        let sink = Sink::new(16);
        assert!(matches!(sink.next(Some(&socket)), Next::Wait));
        // A `closed` frame written whole ends the stream for the parked task.
        let closed = Arc::new(Frame {
            version: Some(3),
            bytes: Bytes::from_static(b"event: closed\n\n"),
            ends_stream: true,
            restarts: false,
            fanout: None,
        });
        assert_eq!(sink.deliver(&closed), Delivery::Written);
        sink.changed().await;
        assert!(matches!(sink.next(Some(&socket)), Next::Closed));
        assert!(sink.is_ended());
        assert_eq!(sink.deliver(&closed), Delivery::Ended);

        // A task that closes its stream takes the socket out of the room's hands.
        let other = Sink::new(16);
        assert!(matches!(other.next(Some(&socket)), Next::Wait));
        assert!(other.close().is_none());
        assert_eq!(other.deliver(&closed), Delivery::Ended);

        // The room going away wakes a parked task.
        let third = Sink::new(16);
        assert!(matches!(third.next(Some(&socket)), Next::Wait));
        third.end();
        third.changed().await;
        assert!(matches!(third.next(Some(&socket)), Next::Closed));

        // A task still writing its queue writes it out first.
        let fourth = Sink::new(16);
        assert_eq!(fourth.deliver(&closed), Delivery::Queued);
        fourth.end();
        assert!(matches!(fourth.next(Some(&socket)), Next::Frame(_)));
        assert!(matches!(fourth.next(Some(&socket)), Next::Closed));
        assert!(fourth.is_ended());
    }
}
