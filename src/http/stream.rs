//! An open event stream, as both ways of writing it share it: the [`Listener`]
//! (what to write next: the start, live frames, keepalives, the end), the route
//! it answers ([`EVENTS_ROUTE`]) and the hand-over slot ([`DirectStream`]) by
//! which the events handler gives a listener to the socket writer
//! ([`super::socket_stream`]) instead of building a hyper body.
//!
//! The handler ([`super::events`]) and the socket writer both depend on this
//! module, never on each other.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use bytes::Bytes;
use rand::Rng;
use tokio::net::TcpStream;
use tokio::time::{sleep, Sleep};
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::limits::StreamSlot;
use super::stream_token::{IssuedToken, StreamId};
use super::AppState;
use crate::actor::handle::{ListenerGuard, Subscription};
use crate::actor::RoomHandle;
use crate::delivery::fanout::{Next, Sink};
use crate::room::event::{hello_frame, retry_frame};

/// Streams end between this fraction of the maximum age and the full age.
const MAX_AGE_JITTER_FLOOR: f64 = 0.85;

/// The route of a room's event stream, written once: the router serves it and
/// the socket writer recognises it ([`is_events_path`]).
pub const EVENTS_ROUTE: &str = "/api/rooms/{room_id}/events";

/// True for [`EVENTS_ROUTE`] with a room id filled in, with or without a query
/// string.
pub fn is_events_path(target: &str) -> bool {
    let (prefix, suffix) = EVENTS_ROUTE
        .split_once("{room_id}")
        .unwrap_or((EVENTS_ROUTE, ""));
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    path.strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix(suffix))
        .is_some_and(|room| !room.is_empty() && !room.contains('/'))
}

/// Put in the request's extensions by the direct path: the handler leaves the
/// stream's [`Listener`] here instead of building a body.
#[derive(Clone, Default)]
pub struct DirectStream(Arc<Mutex<Option<Listener>>>);

impl DirectStream {
    pub fn hand_over(&self, listener: Listener) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(listener);
        }
    }

    pub fn take(&self) -> Option<Listener> {
        self.0.lock().ok()?.take()
    }
}

/// One open stream.
pub struct Listener {
    /// Written before anything live: first `retry:`, `hello`, then the snapshot
    /// or the replay; later what the room handed back unwritten.
    queue: VecDeque<Bytes>,
    /// This stream's id, as its `hello` named it.
    stream_id: StreamId,
    /// The last version written; live frames at or below it are skipped.
    version: u64,
    /// Where live frames come from (see [`crate::delivery::fanout`]).
    sink: Arc<Sink>,
    handle: RoomHandle,
    max_age: Pin<Box<Sleep>>,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    /// `closed` was written: the next poll ends the stream.
    ended: bool,
    app: Arc<AppState>,
    // Held for their `Drop`: counting this listener in the room and on the node.
    _guard: ListenerGuard,
    _slot: StreamSlot,
}

impl Listener {
    /// A stream for `subscription`: `retry:` (jittered per connection), `hello`
    /// (this stream's id and token, issued before it subscribed), then its start frames, then live ones, until its maximum age (jittered, so
    /// reconnects spread out), `closed`, or shutdown.
    pub fn new(
        app: &Arc<AppState>,
        handle: RoomHandle,
        subscription: Subscription,
        slot: StreamSlot,
        hello: IssuedToken,
    ) -> Self {
        let config = &app.config;
        let retry_ms = {
            let base = u64::from(config.retry_ms);
            base + rand::rng().random_range(0..=base)
        };
        let max_age = config
            .max_stream_age
            .mul_f64(rand::rng().random_range(MAX_AGE_JITTER_FLOOR..=1.0));
        let mut queue = VecDeque::with_capacity(subscription.start.len() + 2);
        queue.push_back(retry_frame(retry_ms));
        queue.push_back(hello_frame(&hello));
        queue.extend(subscription.start.iter().map(|frame| frame.bytes.clone()));
        Listener {
            queue,
            stream_id: hello.stream,
            version: subscription.version,
            sink: subscription.sink,
            handle,
            max_age: Box::pin(sleep(max_age)),
            shutdown: Box::pin(app.shutdown.clone().cancelled_owned()),
            ended: false,
            app: app.clone(),
            _guard: subscription.guard,
            _slot: slot,
        }
    }

    /// The id this stream's `hello` gave it: reports naming it by its token
    /// count for this stream.
    pub fn stream_id(&self) -> StreamId {
        self.stream_id
    }

    /// The stream as a hyper body (a connection that did not come in through
    /// the socket writer).
    pub fn into_body(self) -> Body {
        Body::from_stream(futures_util::stream::unfold(
            self,
            |mut listener| async move {
                let chunk = listener.next_chunk(None).await?;
                Some((Ok::<_, Infallible>(chunk), listener))
            },
        ))
    }

    /// What is written before anything live (`retry:`, then the snapshot or the
    /// replay), all at once, so a direct connection writes its start in one go.
    pub(crate) fn take_start(&mut self) -> VecDeque<Bytes> {
        std::mem::take(&mut self.queue)
    }

    /// The next bytes to write, or `None` to end the stream. Given the
    /// stream's `socket`, a listener that is caught up hands it to the room,
    /// which writes each frame itself until the socket pushes back; meanwhile
    /// this waits, woken by nothing the room sends.
    ///
    /// Not cancel-safe: a resync in progress would be lost. Poll it to completion.
    pub(crate) async fn next_chunk(&mut self, socket: Option<&Arc<TcpStream>>) -> Option<Bytes> {
        loop {
            if let Some(chunk) = self.queue.pop_front() {
                return Some(chunk);
            }
            if self.ended {
                return None;
            }
            // A listener with a backlog looks at the stop signals between frames.
            if self.app.shutdown.is_cancelled() {
                self.stop_for_shutdown();
                continue;
            }
            if self.max_age.is_elapsed() {
                self.finish();
                continue;
            }
            match self.sink.next(socket) {
                Next::Rest {
                    bytes,
                    ends_stream,
                    version,
                } => {
                    // The room wrote the frames up to this one itself.
                    self.version = self.version.max(version);
                    self.ended = ends_stream;
                    return Some(bytes);
                }
                Next::Frame(frame) => {
                    if let Some(version) = frame.version {
                        if version <= self.version && !frame.restarts {
                            continue;
                        }
                        self.version = version;
                    }
                    if let Some(fanout) = &frame.fanout {
                        if let Some(elapsed) = fanout.written() {
                            self.app
                                .metrics
                                .fanout_seconds
                                .observe(elapsed.as_secs_f64());
                        }
                    }
                    self.ended = frame.ends_stream;
                    return Some(frame.bytes.clone());
                }
                // Too slow: frames were dropped. A fresh snapshot puts this
                // listener back on its feet (the state is idempotent); frames
                // queued at or below its version are skipped above.
                Next::Lagged => {
                    let snapshot = self.handle.resync().await.ok()?;
                    // Dropped frames without a version (presence) only: this
                    // listener already has the state, so send nothing twice.
                    match snapshot.version {
                        Some(version) if version <= self.version => continue,
                        Some(version) => self.version = version,
                        None => {}
                    }
                    return Some(snapshot.bytes.clone());
                }
                Next::Wait => {
                    tokio::select! {
                        biased;
                        _ = &mut self.shutdown => self.stop_for_shutdown(),
                        _ = &mut self.max_age => self.finish(),
                        _ = self.sink.changed() => {}
                    }
                }
                // The room wrote `closed`, the socket failed, or the room is
                // gone (the server stopping).
                Next::Closed => return None,
            }
        }
    }

    /// The stream ends (at its maximum age, say): the room lets go of the
    /// socket, and the rest of a frame it began is written first.
    fn finish(&mut self) {
        if let Some(rest) = self.sink.close() {
            self.queue.push_back(rest);
        }
        self.ended = true;
    }

    /// The server is stopping: tell the browser to come back after a random
    /// share of the spread, so a restart meets no reconnect storm; then end.
    fn stop_for_shutdown(&mut self) {
        self.finish();
        let spread = self.app.config.shutdown_retry_spread.as_millis() as u64;
        let base = u64::from(self.app.config.retry_ms);
        self.queue
            .push_back(retry_frame(base + rand::rng().random_range(0..=spread)));
    }
}

impl Drop for Listener {
    /// The room stops writing to this stream's socket (and lets go of it).
    fn drop(&mut self) {
        self.sink.close();
    }
}
