//! Direct fan-out: the room writes each frame straight to the sockets of the
//! listeners that are caught up, so a delivery is one non-blocking `write` from
//! the room's task and wakes nobody.
//!
//! Every listener has a [`Sink`], in one of three modes:
//! - **task** (where every stream starts): the listener's own task writes, and
//!   frames reach it through its broadcast receiver, as on any stream hyper
//!   serves. It writes its start, then drains the receiver.
//! - **direct**: the task found its receiver empty and handed its socket to the
//!   room ([`Sink::park`]); it dropped the receiver and sleeps until the room
//!   hands the stream back. The room writes each frame with `try_write`.
//! - **ended**: nothing more is written (the stream ended, the socket failed,
//!   or the room is gone).
//!
//! When the socket pushes back (it took part of a frame, or none), the room
//! hands the stream back ([`Sink::deliver`]): the task gets what the socket did
//! not take and a receiver subscribed right after that frame, and writes on at
//! its own pace. Everything else a slow listener has always had still holds:
//! the room never waits for a socket, a listener that falls a whole ring behind
//! is resynced, one whose socket takes nothing for the stall time is dropped.
//!
//! The sink's lock is what keeps a frame from being written twice or not at
//! all: the room sends each frame to the broadcast first and then visits the
//! sinks under their locks; a task parks only under the lock and only when its
//! receiver is empty. A frame sent before the task looked is in its receiver;
//! one sent after is written by the room.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::sync::broadcast::error::TryRecvError;
use tokio::sync::{broadcast, Notify};

use super::event::{Frame, SharedFrame};

/// A listener's live feed while its task writes.
pub type FrameReceiver = broadcast::Receiver<SharedFrame>;

/// One listener's place in its room's direct fan-out.
#[derive(Debug, Default)]
pub struct Sink {
    state: Mutex<SinkState>,
    /// Wakes the parked task: the room handed the stream back, or ended it.
    wake: Notify,
}

#[derive(Debug, Default)]
struct SinkState {
    mode: Mode,
    /// The last version the room wrote here while direct.
    version: u64,
    /// What the room handed back and the task has not taken yet (boxed: it
    /// is rare, and every listener has a sink).
    handoff: Option<Box<Handoff>>,
}

#[derive(Debug, Default)]
enum Mode {
    /// The listener's task writes.
    #[default]
    Task,
    /// The room writes to this socket.
    Direct(Arc<TcpStream>),
    /// Nothing more is written.
    Ended,
}

/// What the task takes back when the room hands it the stream.
#[derive(Debug)]
pub struct Handoff {
    /// What the socket did not take of the last frame: written first.
    pub rest: Bytes,
    /// That frame ends the stream (`closed`): nothing follows it.
    pub ends_stream: bool,
    /// The live feed from the frame after it on (`None` when it ends the stream).
    pub events_rx: Option<FrameReceiver>,
    /// The last version written to this listener.
    pub version: u64,
}

/// How a frame went to one sink, for the room.
#[derive(Debug, PartialEq)]
pub(crate) enum Delivery {
    /// Written whole to the socket.
    Written,
    /// The socket pushed back: the task has it now.
    HandedBack,
    /// The task writes this listener's frames (from the broadcast).
    NotDirect,
    /// Nobody writes here any more: the room may forget this sink.
    Ended,
}

/// What a task that tried to park found instead.
#[derive(Debug)]
pub enum Park {
    /// The room writes from now on: wait in [`Sink::parked`].
    Parked,
    /// A frame was waiting: write it, then try again.
    Frame(SharedFrame),
    /// The receiver fell a ring behind: resync.
    Lagged,
    /// The room is gone, or the stream ended.
    Closed,
}

/// How a parked task's wait ended.
#[derive(Debug)]
pub enum Resume {
    /// The room handed the stream back.
    Back(Handoff),
    /// The stream ended: the room wrote `closed`, the socket failed or the room is gone.
    Ended,
}

impl Sink {
    fn lock(&self) -> MutexGuard<'_, SinkState> {
        // Nothing under the lock can panic halfway; a poisoned lock's state is whole.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The room's side: writes `frame` if the room writes this listener's
    /// frames. `subscribe` makes a receiver of the frames after this one, for
    /// the task when the socket pushes back; the room calls this after it has
    /// sent `frame` to the broadcast.
    pub(crate) fn deliver(
        &self,
        frame: &Frame,
        subscribe: impl FnOnce() -> FrameReceiver,
    ) -> Delivery {
        let mut state = self.lock();
        let socket = match &state.mode {
            Mode::Direct(socket) => socket,
            Mode::Task => return Delivery::NotDirect,
            Mode::Ended => return Delivery::Ended,
        };
        let written = match socket.try_write(&frame.bytes) {
            Ok(written) => written,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => 0,
            Err(_) => {
                // The peer is gone; its task notices and ends.
                state.mode = Mode::Ended;
                drop(state);
                self.wake.notify_one();
                return Delivery::Ended;
            }
        };
        if let Some(version) = frame.version {
            state.version = version;
        }
        if written == frame.bytes.len() {
            if !frame.ends_stream {
                return Delivery::Written;
            }
            state.mode = Mode::Ended;
            drop(state);
            self.wake.notify_one();
            return Delivery::Written;
        }
        state.handoff = Some(Box::new(Handoff {
            rest: frame.bytes.slice(written..),
            ends_stream: frame.ends_stream,
            events_rx: (!frame.ends_stream).then(subscribe),
            version: state.version,
        }));
        state.mode = Mode::Task;
        drop(state);
        self.wake.notify_one();
        Delivery::HandedBack
    }

    /// The task's side: takes the next frame from `events_rx`, or, when there
    /// is none, hands `socket` to the room and drops the receiver.
    pub fn park(&self, events_rx: &mut Option<FrameReceiver>, socket: &Arc<TcpStream>) -> Park {
        let mut state = self.lock();
        if matches!(state.mode, Mode::Ended) {
            return Park::Closed;
        }
        let Some(receiver) = events_rx.as_mut() else {
            return Park::Closed;
        };
        match receiver.try_recv() {
            Ok(frame) => Park::Frame(frame),
            Err(TryRecvError::Lagged(_)) => Park::Lagged,
            Err(TryRecvError::Closed) => Park::Closed,
            Err(TryRecvError::Empty) => {
                *events_rx = None;
                state.mode = Mode::Direct(socket.clone());
                Park::Parked
            }
        }
    }

    /// The task's side, parked: waits until the room hands the stream back or
    /// ends it. Cancel-safe: the state lives in the sink, the wake is only a wake.
    pub async fn parked(&self) -> Resume {
        loop {
            self.wake.notified().await;
            let mut state = self.lock();
            match &state.mode {
                Mode::Direct(_) => continue,
                Mode::Ended => return Resume::Ended,
                Mode::Task => {
                    return state
                        .handoff
                        .take()
                        .map_or(Resume::Ended, |handoff| Resume::Back(*handoff));
                }
            }
        }
    }

    /// The task's side: the stream ends. Answers what the room handed back and
    /// the task has not written yet, if anything.
    pub fn close(&self) -> Option<Handoff> {
        let mut state = self.lock();
        state.mode = Mode::Ended;
        state.handoff.take().map(|handoff| *handoff)
    }

    /// The room's side: the room is gone; a parked task ends its stream.
    pub(crate) fn end(&self) {
        self.lock().mode = Mode::Ended;
        self.wake.notify_one();
    }

    pub(crate) fn is_ended(&self) -> bool {
        matches!(self.lock().mode, Mode::Ended)
    }
}

#[cfg(test)]
mod tests {
    //! The handover on real loopback sockets: a reader that stops reading makes
    //! the socket push back.
    use super::*;
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
            fanout: None,
        })
    }

    /// Reads until `expected` bytes have come.
    async fn read_exactly(client: &mut TcpStream, expected: usize) -> Vec<u8> {
        let mut got = vec![0; expected];
        client.read_exact(&mut got).await.unwrap();
        got
    }

    #[tokio::test]
    async fn a_caught_up_listener_is_written_by_the_room_and_handed_back_on_push_back() {
        let (socket, mut client) = pair().await;
        let (tx, rx) = broadcast::channel::<SharedFrame>(1024);
        let sink = Sink::default();

        // Task mode: frames go to the receiver and the room leaves them alone.
        let first = frame(1, 100);
        tx.send(first.clone()).unwrap();
        assert_eq!(sink.deliver(&first, || tx.subscribe()), Delivery::NotDirect);
        let mut events_rx = Some(rx);
        let Park::Frame(waiting) = sink.park(&mut events_rx, &socket) else {
            panic!("the waiting frame comes first");
        };
        assert_eq!(waiting.version, Some(1));
        assert!(matches!(sink.park(&mut events_rx, &socket), Park::Parked));
        assert!(events_rx.is_none(), "a parked task holds no receiver");

        // Direct: the room writes until the socket is full, then hands back.
        let mut sent = Vec::new();
        let mut handoff = None;
        for version in 2..100_000 {
            let next = frame(version, 4096);
            let _ = tx.send(next.clone());
            match sink.deliver(&next, || tx.subscribe()) {
                Delivery::Written => sent.extend_from_slice(&next.bytes),
                Delivery::HandedBack => {
                    let Resume::Back(back) = sink.parked().await else {
                        panic!("handed back");
                    };
                    assert_eq!(back.version, version);
                    let taken = next.bytes.len() - back.rest.len();
                    sent.extend_from_slice(&next.bytes[..taken]);
                    handoff = Some(back);
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        let handoff = handoff.expect("a reader that never reads fills the socket");
        // Frames after the push back reach the task's new receiver, not the socket.
        let after = frame(u64::MAX, 64);
        tx.send(after.clone()).unwrap();
        assert_eq!(sink.deliver(&after, || tx.subscribe()), Delivery::NotDirect);
        let mut events_rx = handoff.events_rx;
        let receiver = events_rx.as_mut().unwrap();
        assert_eq!(receiver.try_recv().unwrap().version, Some(u64::MAX));
        assert!(matches!(receiver.try_recv(), Err(TryRecvError::Empty)));

        // The reader gets exactly what the room wrote, in order, then the rest.
        let got = read_exactly(&mut client, sent.len()).await;
        assert!(got == sent, "the direct writes arrive whole and in order");
        socket.writable().await.unwrap();
        let written = socket.try_write(&handoff.rest).unwrap();
        assert_eq!(written, handoff.rest.len());
        assert_eq!(read_exactly(&mut client, written).await, handoff.rest);

        // Caught up again: the task parks, and the room writes once more.
        assert!(matches!(sink.park(&mut events_rx, &socket), Park::Parked));
        let again = frame(7, 50);
        assert_eq!(sink.deliver(&again, || tx.subscribe()), Delivery::Written);
        assert_eq!(read_exactly(&mut client, 50).await, again.bytes);
    }

    #[tokio::test]
    async fn a_frame_sent_while_the_task_looks_is_delivered_exactly_once() {
        let (socket, mut client) = pair().await;
        let (tx, rx) = broadcast::channel::<SharedFrame>(16);
        let sink = Sink::default();
        let mut events_rx = Some(rx);
        // Sent to the broadcast before the task looks: the task takes it and
        // the room, seeing task mode, does not write it.
        let one = frame(1, 40);
        tx.send(one.clone()).unwrap();
        assert!(matches!(sink.park(&mut events_rx, &socket), Park::Frame(_)));
        assert_eq!(sink.deliver(&one, || tx.subscribe()), Delivery::NotDirect);
        // Parked, then sent: written by the room only (no receiver holds it).
        assert!(matches!(sink.park(&mut events_rx, &socket), Park::Parked));
        let two = frame(2, 40);
        assert!(
            tx.send(two.clone()).is_err(),
            "no receiver is left to hold it"
        );
        assert_eq!(sink.deliver(&two, || tx.subscribe()), Delivery::Written);
        assert_eq!(read_exactly(&mut client, 40).await, two.bytes);
    }

    #[tokio::test]
    async fn closing_and_ending_reach_both_sides() {
        let (socket, _client) = pair().await;
        let (tx, rx) = broadcast::channel::<SharedFrame>(16);
        let sink = Sink::default();
        let mut events_rx = Some(rx);
        assert!(matches!(sink.park(&mut events_rx, &socket), Park::Parked));
        // A `closed` frame written whole ends the stream for the parked task.
        let closed = Arc::new(Frame {
            version: Some(3),
            bytes: Bytes::from_static(b"event: closed\n\n"),
            ends_stream: true,
            fanout: None,
        });
        assert_eq!(sink.deliver(&closed, || tx.subscribe()), Delivery::Written);
        assert!(matches!(sink.parked().await, Resume::Ended));
        assert!(sink.is_ended());
        assert_eq!(sink.deliver(&closed, || tx.subscribe()), Delivery::Ended);

        // A task that closes its stream takes the socket out of the room's hands.
        let other = Sink::default();
        let mut events_rx = Some(tx.subscribe());
        assert!(matches!(other.park(&mut events_rx, &socket), Park::Parked));
        assert!(other.close().is_none());
        assert_eq!(other.deliver(&closed, || tx.subscribe()), Delivery::Ended);

        // The room going away wakes a parked task.
        let third = Sink::default();
        let mut events_rx = Some(tx.subscribe());
        assert!(matches!(third.park(&mut events_rx, &socket), Park::Parked));
        third.end();
        assert!(matches!(third.parked().await, Resume::Ended));
    }
}
