//! The room actor: the shell around the pure room ([`crate::room`]). Alice
//! Ryhl's "Actors with Tokio": a handle, a task, a bounded mpsc in and oneshot
//! replies out, and the frames its listeners get through [`hub`].
//!
//! - [`handle`]: [`RoomHandle`], the cheap cloneable face of an actor, and what
//!   readers see without a round trip ([`handle::RoomStatus`]).
//! - [`hub`]: broadcast, history, presence and subscribe/replay: what every room has.
//! - [`driver`]: the one room actor (one loop, one timer) and every rule about
//!   time: start and end of an item, ready gate, votes, presence, sync, expiry.
//! - [`local`]: the store of a room kept by this process (apply in place, the
//!   `--data-dir` store).
//! - [`mirror`]: the store of a room shared through a backplane (commit, feed,
//!   catch-up, heartbeat).
//! - [`port`]: how rooms are shared between nodes ([`port::SharedRooms`]),
//!   implemented by `crate::backplane`.
//! - [`keeper`]: where a node's rooms are kept (here, or shared through the
//!   port): the one thing the registry is given.
//!
//! This module holds what every actor is given and the small helpers of its loop.

pub mod driver;
pub mod handle;
pub mod hub;
pub mod keeper;
pub mod local;
pub mod mirror;
pub mod port;
#[cfg(test)]
mod tests;

pub use handle::{RoomHandle, Subscription};

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{sleep_until, Instant};

use crate::room::event::Frame;
use crate::room::gate::ReadyTally;
use crate::room::state::{Room, StartPolicy};
use crate::room::Clock;
use crate::telemetry::Metrics;

/// Requests that may wait in one room's inbox before callers wait for room.
pub const INBOX_CAPACITY: usize = 256;

/// The knobs every room shares, from the command line.
#[derive(Debug, Clone)]
pub struct RoomSettings {
    /// Replayable events kept (`--history`).
    pub history: usize,
    /// Bytes of replayable events kept (`--history-bytes`).
    pub history_bytes: usize,
    /// Frames a listener may fall behind before it is resynced (`--listener-buffer`).
    pub listener_buffer: usize,
    /// A `: keepalive` goes to the listeners when the room was quiet this long (`--keepalive`).
    pub keepalive: Duration,
    /// Threads a large room's direct writes are spread over (`--threads`).
    pub fanout_threads: usize,
    /// Idle time before the room closes itself (`--room-ttl`).
    pub ttl: Duration,
    /// Chat messages a room keeps for late joiners (`--chat-history`).
    pub chat_history: usize,
    /// How listeners' sync reports are kept (`--sync-report-interval`, `--max-sync-reports`).
    pub sync: crate::room::sync::SyncRules,
    /// How starts are scheduled (`--start-lead-ms`, `--gate-quorum`,
    /// `--gate-deadline-ms`).
    pub starts: StartPolicy,
}

/// The node's count of persistent rooms, bounded by `--max-persistent-rooms`
/// (rooms kept here; a backplane counts them in its store instead).
#[derive(Debug)]
pub struct PersistentSlots {
    max: std::sync::atomic::AtomicUsize,
    held: std::sync::atomic::AtomicUsize,
}

impl Default for PersistentSlots {
    fn default() -> Self {
        Self {
            max: std::sync::atomic::AtomicUsize::new(usize::MAX),
            held: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

impl PersistentSlots {
    pub fn set_max(&self, max: usize) {
        self.max.store(max, std::sync::atomic::Ordering::Relaxed);
    }

    /// Takes a place for one more persistent room, unless all are taken.
    pub fn take(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let max = self.max.load(Relaxed);
        self.held
            .fetch_update(Relaxed, Relaxed, |held| (held < max).then_some(held + 1))
            .is_ok()
    }

    /// Counts a persistent room read back from disk, whatever the bound: it
    /// was persistent before the restart and stays so.
    pub fn force_take(&self) {
        self.held.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn release(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let _ = self
            .held
            .fetch_update(Relaxed, Relaxed, |held| held.checked_sub(1));
    }
}

/// Everything a room's actor needs from the server around it.
pub struct ActorContext {
    /// The server's settings, shared by every room (a room's actor is kept
    /// small: an idle room is mostly its actor).
    pub settings: Arc<RoomSettings>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    /// Called once when the actor ends, to drop the room from the registry.
    pub on_exit: Box<dyn FnOnce() + Send>,
    /// The node's persistent rooms (`--max-persistent-rooms`).
    pub persistent: Arc<PersistentSlots>,
}

/// The open gate's `gate` progress frame, when one is due (coalesced by the
/// tally); `listeners` are those taking part as this node knows them.
pub(crate) fn progress_frame(
    tally: &mut ReadyTally,
    room: &Room,
    listeners: u64,
    now: i64,
) -> Option<Frame> {
    let progress = tally.progress_due(listeners, now)?;
    let gate = room.state.ready_gate?;
    Some(Frame::gate(gate, progress, room.state.starts_at, now))
}

/// The timer instant of server time `at_ms` by `clock` (now, when it is past).
pub(crate) fn instant_at(clock: &dyn Clock, at_ms: i64) -> Instant {
    Instant::now() + Duration::from_millis((at_ms - clock.now_ms()).max(0) as u64)
}

/// Sleeps until `deadline`, or forever when there is none (a timer not armed).
pub(crate) async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// A clock that follows tokio's time, so `tokio::time::pause` and `advance` move it.
/// Anchored to the wall clock when created.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    anchor_ms: i64,
    anchor: tokio::time::Instant,
}

impl TokioClock {
    pub fn new() -> Self {
        Self {
            anchor_ms: crate::room::SystemClock.now_ms(),
            anchor: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> i64 {
        self.anchor_ms + self.anchor.elapsed().as_millis() as i64
    }
}
