//! Rooms: the pure state machine and the actor shell around it.
//!
//! - [`state`]: `Room` and `Room::apply`, a pure function of (room, command, clock).
//! - [`command`]: the commands hosts send, decoded and validated.
//! - [`event`]: what a room emits, encoded once into SSE frames shared by every listener.
//! - [`history`]: the ring of recent frames that makes `Last-Event-ID` resume work.
//! - [`actor`]: what both room drivers share (settings, context, loop helpers).
//! - [`gate`]: the ready gate's tally in a room kept here, and its quorum.
//! - [`hub`]: broadcast, history, presence and subscribe/replay: what every room has.
//! - [`local`]: the driver of a room owned by this process (apply in place, timers, store).
//! - [`mirror`]: the driver of a room shared through a backplane (commit, catch up, heartbeat).
//! - [`handle`]: [`RoomHandle`], the cheap cloneable face of an actor.
//! - [`error`]: [`RoomError`], why a room call could not be answered.
//! - [`source`]: [`Source`], what an item plays: a YouTube video or a media URL.
//! - [`sync`]: sync health: listeners' drift reports and the room's summary of them.
//! - [`shared`]: the port for rooms shared between nodes ([`shared::SharedRooms`]),
//!   implemented outside the room core (`crate::backplane`).

pub mod actor;
pub mod command;
pub mod error;
pub mod event;
pub mod gate;
pub mod handle;
pub mod history;
pub mod hub;
pub mod limits;
pub mod local;
pub mod mirror;
pub mod shared;
pub mod source;
pub mod state;
pub mod sync;

use std::time::{SystemTime, UNIX_EPOCH};

pub use command::{Command, CommandError};
pub use error::{RoomError, Unavailable};
pub use event::{Cause, Event, EventKind, Frame};
pub use handle::{RoomHandle, Subscription};
pub use source::Source;
pub use state::{
    Control, GateSettings, PlaybackState, QueueItem, Room, RoomView, StartPolicy,
    MAX_GATE_DEADLINE_MS, MAX_GATE_QUORUM,
};

/// Server time in Unix milliseconds, the unit of `server_time` and `updated_at`.
///
/// Injected everywhere time is read so that time-based rules can be tested with a
/// clock the test controls.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;
}

/// The wall clock. Browsers estimate their offset to it through `/api/time`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_millis() as i64)
            .unwrap_or(0)
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
            anchor_ms: SystemClock.now_ms(),
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

/// True for ids of the form `[A-Za-z0-9_-]{min,max}`: room ids and YouTube video ids.
pub(crate) fn is_id(text: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Room ids match `[A-Za-z0-9_-]{1,64}` ([`limits::MAX_ROOM_ID_CHARS`]).
pub fn is_room_id(text: &str) -> bool {
    is_id(text, 1, limits::MAX_ROOM_ID_CHARS)
}

/// YouTube video ids are exactly 11 characters of `[A-Za-z0-9_-]`.
pub fn is_video_id(text: &str) -> bool {
    is_id(text, 11, 11)
}
