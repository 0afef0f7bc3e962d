//! The room's domain, pure: no tokio, no sockets, no threads, no Redis, no HTTP.
//! The actor around it lives in `crate::actor`; delivery to sockets in
//! `crate::delivery`.
//!
//! - [`state`]: `Room` and its changes ([`Room::apply`], [`Room::decide`]), pure
//!   functions of (room, command, [`Inputs`]).
//! - [`command`]: the commands hosts send, decoded and validated.
//! - [`check`]: [`CommandError`] and the checks commands, chat and sources share.
//! - [`view`]: the values a snapshot and events carry (playback state, queue,
//!   chat, control, gate settings).
//! - [`event`]: what a room emits, encoded once into SSE frames shared by every listener.
//! - [`history`]: the ring of recent frames that makes `Last-Event-ID` resume work.
//! - [`gate`]: the ready gate's quorum and the tally of ready streams.
//! - [`error`]: [`RoomError`], why a room call could not be answered.
//! - [`source`]: [`Source`], what an item plays: a YouTube video or a media URL.
//! - [`sync`]: sync health: listeners' drift reports and the room's summary of them.
//! - [`votes`]: vote skip: the host's setting, the votes an item needs, the tally.

pub mod check;
pub mod cohosts;
pub mod command;
pub mod error;
pub mod event;
pub mod gate;
pub mod history;
pub mod limits;
pub mod members;
pub mod moderation;
pub mod permissions;
#[cfg(test)]
mod queue_tests;
pub mod source;
pub mod state;
pub mod sync;
pub mod view;
#[cfg(test)]
mod vote_tests;
pub mod votes;

use std::time::{SystemTime, UNIX_EPOCH};

pub use command::{Command, CommandError};
pub use error::{RoomError, Unavailable};
pub use event::{Cause, Event, EventKind, Frame};
pub use source::Source;
pub use state::{
    Control, GateSettings, Inputs, PlaybackState, QueueItem, Room, RoomView, StartPolicy,
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
