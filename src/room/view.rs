//! What a room looks like from outside: the values its snapshot and its events
//! carry (the playback state, the queue, chat, who may act, the gate settings),
//! and their bounds. The state machine ([`super::state`]) changes them; the
//! events ([`super::event`]) describe them; neither is needed to read them.

use serde::{Deserialize, Serialize};

pub use super::permissions::{CohostView, Control, Permissions};
use super::source::Source;

/// Largest position or duration accepted, in seconds (about 11.5 days): far past
/// any video, small enough that millisecond arithmetic stays exact.
pub const MAX_POSITION: f64 = 1_000_000.0;
/// Bounds of the per-room ready gate settings (`ready_gate` command, flags).
pub const MAX_GATE_QUORUM: u64 = 100;
pub const MAX_GATE_DEADLINE_MS: u64 = 30_000;

/// Two positions closer than this (seconds) are the same position: a command that
/// lands within it changes nothing and emits nothing.
const SAME_POSITION: f64 = 0.001;
/// A room's ready gate: after a `load`, `next` or auto-advance of a playing item
/// the room waits for `quorum` percent of the pages that take part to report the
/// item ready, or for `deadline_ms`, whichever comes first, then schedules the
/// start. `deadline_ms: 0` turns the gate off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GateSettings {
    /// Percent (0..=100) of the taking-part listeners that must be ready.
    pub quorum: u64,
    /// Longest wait for them, in milliseconds (0..=30000).
    pub deadline_ms: u64,
}

impl Default for GateSettings {
    fn default() -> Self {
        Self {
            quorum: 80,
            deadline_ms: 3_000,
        }
    }
}

/// Whether `GET /api/rooms` lists a room. Anyone with the id may still join an
/// unlisted room: the id is the secret, as with an unlisted video.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Listed by `GET /api/rooms`.
    Public,
    /// Not listed (the default).
    #[default]
    Unlisted,
}

/// What `next` and the end of an item do with the queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum QueueMode {
    /// Play the queue in order (the default).
    #[default]
    Normal,
    /// A finished item goes back to the end of the queue, under a new id.
    Loop,
    /// `next` and the end of an item play a queued item picked at random.
    Shuffle,
}

/// The playback state of a room, exactly the `state` object of docs/API.md.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = State)]
pub struct PlaybackState {
    /// What is loaded; on the wire `video_id` and `media_url`, both `null` for nothing.
    #[serde(flatten, with = "super::source::optional")]
    #[schema(value_type = super::source::SourceFields)]
    pub source: Option<Source>,
    /// Where playback was at `updated_at`, in seconds.
    pub position: f64,
    pub paused: bool,
    pub rate: f64,
    pub duration: Option<f64>,
    /// Server Unix time in milliseconds; never in the future.
    pub updated_at: i64,
    /// A pending start (server Unix ms): the room is `paused` at `position` and
    /// plays from it at this moment. `null` when no start is pending.
    #[serde(default)]
    pub starts_at: Option<i64>,
    /// While the pending start waits on the ready gate: the gate's id, which the
    /// pages name in their readiness reports. `null` otherwise.
    #[serde(default)]
    pub ready_gate: Option<u64>,
    /// The queue item that was loaded; `null` for an item loaded by `load`.
    #[serde(default)]
    pub item_id: Option<String>,
    /// The loaded item's title, artist and adder, `null` when unknown.
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub artist: Option<String>,
    #[serde(default)]
    pub added_by: Option<String>,
}

impl PlaybackState {
    /// A room's state before any video is loaded.
    pub fn empty(now: i64) -> Self {
        Self {
            source: None,
            position: 0.0,
            paused: true,
            rate: 1.0,
            duration: None,
            updated_at: now,
            starts_at: None,
            ready_gate: None,
            item_id: None,
            title: None,
            artist: None,
            added_by: None,
        }
    }

    /// Nothing loaded but this state's rate, at `now`: the base of a new item.
    pub(super) fn fresh(&self, now: i64) -> Self {
        Self {
            rate: self.rate,
            ..Self::empty(now)
        }
    }

    /// The position at server time `now`, as every client computes it:
    /// `paused ? position : position + (now - updated_at) / 1000 * rate`,
    /// clamped to `[0, duration]` when the duration is known.
    pub fn position_at(&self, now: i64) -> f64 {
        let position = if self.paused {
            self.position
        } else {
            self.position + (now - self.updated_at) as f64 / 1000.0 * self.rate
        };
        self.clamp(position)
    }

    /// This state (anchored at `now`) set to play from `position` at `at`: a
    /// pending start, or playing at once when `at` is not in the future.
    pub(super) fn start_at(self, at: i64, now: i64) -> Self {
        if at <= now {
            return self.started(at);
        }
        Self {
            paused: true,
            starts_at: Some(at),
            ready_gate: None,
            ..self
        }
    }

    /// The state once its pending start happened at `at`: playing from `position`.
    pub(super) fn started(&self, at: i64) -> Self {
        Self {
            paused: false,
            updated_at: at,
            starts_at: None,
            ready_gate: None,
            ..self.clone()
        }
    }

    /// When (server ms) a playing video with a known duration reaches its end.
    /// A pending start is paused until it happens, so it has no end yet.
    pub fn ends_at(&self) -> Option<i64> {
        let duration = self.duration?;
        if self.paused {
            return None;
        }
        let remaining_ms = (duration - self.position).max(0.0) / self.rate * 1000.0;
        Some(self.updated_at + remaining_ms.ceil() as i64)
    }

    pub(super) fn clamp(&self, position: f64) -> f64 {
        let position = position.max(0.0);
        match self.duration {
            Some(duration) => position.min(duration),
            None => position,
        }
    }

    /// The same state re-expressed at `now`: same current position, new anchor.
    pub(super) fn anchored_at(&self, now: i64) -> Self {
        Self {
            position: self.position_at(now),
            updated_at: now,
            ..self.clone()
        }
    }

    /// True when a client could not tell `self` from `other` at `now`, so moving
    /// from one to the other is no change at all.
    pub(super) fn same_as(&self, other: &Self, now: i64) -> bool {
        self.source == other.source
            && self.paused == other.paused
            && self.starts_at == other.starts_at
            && self.ready_gate == other.ready_gate
            && self.rate == other.rate
            && self.duration == other.duration
            && self.item_id == other.item_id
            && self.title == other.title
            && self.artist == other.artist
            && (self.position_at(now) - other.position_at(now)).abs() < SAME_POSITION
    }
}

/// One entry of a room's queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueueItem {
    pub item_id: String,
    /// On the wire `video_id` and `media_url`, one of them `null`.
    #[serde(flatten)]
    #[schema(value_type = super::source::SourceFields)]
    pub source: Source,
    pub title: Option<String>,
    /// Rooms kept before these fields existed load with them `null`.
    #[serde(default)]
    pub artist: Option<String>,
    /// Seconds, `null` while unknown.
    #[serde(default)]
    pub duration: Option<f64>,
    /// The adder's name (chat-name rules), `null` when none was given.
    #[serde(default)]
    pub added_by: Option<String>,
}

/// One remembered chat message: the `chat` event's data, kept for late joiners.
/// (`ChatEntry` in the OpenAPI document: `ChatMessage` there is the chat request body.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = ChatEntry)]
pub struct ChatMessage {
    pub version: u64,
    pub name: String,
    pub text: String,
    pub server_time: i64,
}

/// The `room` object of docs/API.md: a snapshot at `server_time`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = Room)]
pub struct RoomView {
    pub room_id: String,
    pub name: String,
    pub control: Control,
    /// Listed by `GET /api/rooms` (`public`) or not (`unlisted`, the default).
    pub visibility: Visibility,
    pub version: u64,
    pub state: PlaybackState,
    pub queue: Vec<QueueItem>,
    /// The last chat messages, oldest first (`--chat-history`).
    pub chat: Vec<ChatMessage>,
    /// The room's ready gate: the host's setting, or the server's.
    pub ready_gate: GateSettings,
    /// Whether the room takes chat messages (the host can turn chat off).
    pub chat_enabled: bool,
    #[serde(default)]
    pub queue_mode: QueueMode,
    pub listeners: u64,
    pub server_time: i64,
    /// The listeners' sync health: reports live now (see `room::sync`).
    #[serde(default)]
    pub sync: super::sync::SyncSummary,
    /// Exempt from `--room-ttl`: the room stays until it is deleted.
    #[serde(default)]
    pub persistent: bool,
    /// Who may do what; `control` is derived from it.
    #[serde(default)]
    pub permissions: Permissions,
    /// The host's co-hosts: ids and names, never tokens.
    #[serde(default)]
    pub cohosts: Vec<CohostView>,
    /// The host's vote skip setting (`ratio: 0`: off).
    #[serde(default)]
    pub vote_skip: super::votes::VoteSkip,
    /// Who's here: up to 100 listening streams that gave a name.
    #[serde(default)]
    pub members: Vec<super::members::Member>,
    /// The listeners `members` does not show.
    #[serde(default)]
    pub unnamed: u64,
}
