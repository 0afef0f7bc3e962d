//! What every room actor shares, whichever role it has (Alice Ryhl's "Actors with
//! Tokio": a handle, a task, a bounded mpsc in and oneshot replies out, plus a
//! broadcast of encoded frames to listeners).
//!
//! There are two roles, one struct each: [`super::local`] drives a room kept by
//! this process, [`super::mirror`] this node's mirror of a room shared through a
//! backplane. Both hand what listeners see to the same [`super::hub`]. This
//! module holds what they are both given and the small helpers of their loops.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{sleep_until, Instant};

use super::state::{Access, StartPolicy};
use super::{Clock, Command};
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
    pub sync: super::sync::SyncRules,
    /// How starts are scheduled (`--start-lead-ms`, `--gate-quorum`,
    /// `--gate-deadline-ms`); its `gate_listeners` is filled in by the driver.
    pub starts: StartPolicy,
}

/// Everything a room's driver needs from the server around it.
pub struct ActorContext {
    /// The server's settings, shared by every room (a room's driver is kept
    /// small: an idle room is mostly its driver).
    pub settings: Arc<RoomSettings>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    /// Called once when the driver ends, to drop the room from the registry.
    pub on_exit: Box<dyn FnOnce() + Send>,
}

/// Whether a driver's loop goes on after a request.
#[derive(PartialEq)]
pub(crate) enum Flow {
    Continue,
    Stop,
}

/// Which commands need the host token even in open rooms.
pub(crate) fn access_for(command: &Command) -> Access {
    match command {
        Command::Control { .. }
        | Command::Visibility { .. }
        | Command::ChatEnabled { .. }
        | Command::ClearChat {}
        | Command::ReadyGate { .. } => Access::HostOnly,
        _ => Access::Command,
    }
}

/// Sleeps until `deadline`, or forever when there is none (a timer not armed).
pub(crate) async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
