//! The port: how rooms are shared between nodes.
//!
//! The room core owns this trait and names no infrastructure. A single node needs
//! none of it (each room's actor *is* the room); with a backplane the room lives
//! in a shared store and every node that serves it runs the room's actor over a
//! mirror of it (see [`super::mirror`]), which talks to the store only through
//! [`SharedRooms`].
//! The Redis backplane (`crate::backplane::redis`) is one implementation; a NATS
//! one, a Redis Cluster one or a test double is one more `impl`, with no change
//! here.
//!
//! The contract every implementation keeps:
//! - [`SharedRooms::commit`] reads the room, lets the pure state machine decide,
//!   and writes only if nobody wrote meanwhile (compare-and-set, retried), so
//!   every node sees one total order of versions;
//! - committed events reach every routed mirror as [`Feed::Events`]; a feed may
//!   lose messages, and says so through the route's [`FeedAlarm`];
//! - [`SharedRooms::catch_up`] gives what a mirror missed, from a shared history.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::room::command::CommandError;
pub use crate::room::error::{RoomError, Unavailable};
use crate::room::event::Event;
use crate::room::gate::ReadyChange;
use crate::room::members::Member;
use crate::room::state::Room;
use crate::room::sync::{SyncChange, SyncSummary, SyncTaken};
use crate::room::votes::VoteChange;

/// A boxed future, so that the port can be used as `dyn SharedRooms`.
pub type PortFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The pure state machine's decision on a read room, run by
/// [`SharedRooms::commit`] (again after a conflict): the events, or a refusal.
pub type Change<'a> = dyn FnMut(&mut Room, i64) -> Result<Vec<Event>, CommandError> + Send + 'a;

/// How often a node with listeners in a shared room re-reports its count (which
/// keeps the room from expiring in the shared store).
pub const HEARTBEAT: Duration = Duration::from_secs(5);

/// Most rooms returned by `GET /api/rooms`.
pub const LISTING_LIMIT: usize = 100;

/// Most ranges a room keeps in its [`LostVersions`]: past it, the two oldest
/// become one (a resume between them gets a snapshot it did not need, never a
/// replay it should not have).
pub const MAX_LOST_RANGES: usize = 16;

/// "How rooms are shared": everything a node asks of the store that holds the
/// rooms of the cluster. Every call is bounded in time by the implementation and
/// answers [`Unavailable`] past it, with nothing changed.
pub trait SharedRooms: Send + Sync + 'static {
    /// The node's clock, as rooms see it.
    fn now_ms(&self) -> i64;

    /// Whether the store answers now (`/readyz`).
    fn ready(&self) -> PortFuture<'_, bool>;

    /// Each part of the store (a Redis shard) by name, and whether it answered
    /// the last [`SharedRooms::ready`] probe: what `/readyz` and the metrics name.
    fn shard_health(&self) -> Vec<(String, bool)> {
        Vec::new()
    }

    /// Stores a new room unless its id is taken, the cluster holds `max_rooms`,
    /// or its creator (`room.creator`) holds `max_rooms_per_client` rooms that
    /// are still open. A room stops counting for its creator when it is deleted
    /// or expires, however its nodes end (no count can leak).
    fn create<'a>(
        &'a self,
        room: &'a Room,
        limits: CreateLimits,
    ) -> PortFuture<'a, Result<CreateOutcome, Unavailable>>;

    /// Whether the room exists: a cheap first look before a mirror is set up.
    fn exists<'a>(&'a self, room_id: &'a str) -> PortFuture<'a, Result<bool, Unavailable>>;

    /// Sends this room's feed to `route` from now on. Called before
    /// [`SharedRooms::open`], so nothing committed after the read can slip past.
    fn route(&self, room_id: &str, route: FeedRoute);

    /// Stops feeding the mirror of `generation` (it ended), unless a newer mirror
    /// took the route meanwhile.
    fn unroute(self: Arc<Self>, room_id: &str, generation: u64);

    /// Reads the room for a new mirror: `None` if there is no such room. The
    /// route must be in place.
    fn open<'a>(&'a self, room_id: &'a str) -> PortFuture<'a, Result<Option<Opened>, Unavailable>>;

    /// Reads the room, lets `change` decide, and commits with compare-and-set,
    /// retrying on conflict. A room found gone is [`RoomError::Closed`].
    fn commit<'a>(
        &'a self,
        room_id: &'a str,
        change: &'a mut Change<'_>,
    ) -> PortFuture<'a, Result<Committed, RoomError>>;

    /// The room now and the shared history after `after`. Once this answers,
    /// whatever is committed later reaches the feed.
    fn catch_up<'a>(
        &'a self,
        room_id: &'a str,
        after: u64,
    ) -> PortFuture<'a, Result<CatchUp, Unavailable>>;

    /// Reports this node's listener count in a room (and how many of them take
    /// part in the ready gate); answers the total over all live nodes, and keeps
    /// the room alive while it has listeners.
    fn report_listeners<'a>(
        &'a self,
        room_id: &'a str,
        count: usize,
        gate_count: usize,
    ) -> PortFuture<'a, Result<u64, Unavailable>>;

    /// Counts an event stream ready for the room's gate `ready_gate`, or takes
    /// back the readiness of streams that ended (their tokens then report
    /// nothing); answers whether a report counted and (ready, taking part)
    /// over every node, and tells every node of a change ([`Feed::Gate`]).
    fn report_ready<'a>(
        &'a self,
        room_id: &'a str,
        ready_gate: u64,
        change: ReadyChange,
    ) -> PortFuture<'a, Result<(bool, u64, u64), Unavailable>>;

    /// A secret every node of the cluster holds, agreed when the node joined:
    /// it signs what one node issues and another must check (stream tokens).
    fn stream_key(&self) -> [u8; 32];

    /// The busiest public shared rooms first, at most [`LISTING_LIMIT`].
    fn list(&self) -> PortFuture<'_, Result<Vec<RoomSummary>, Unavailable>>;

    /// Changes the room's sync reports (over every node) and answers the room's
    /// summary after it; a changed summary also reaches every mirror as
    /// [`Feed::Sync`], and the durations reported for the report's item. A report is refused as [`RoomError::Sync`], a gone room
    /// is [`RoomError::Closed`].
    fn sync<'a>(
        &'a self,
        room_id: &'a str,
        change: SyncChange,
    ) -> PortFuture<'a, Result<SyncTaken, RoomError>>;

    /// Changes the votes to skip the room's item `item` (its `item_since`),
    /// kept beside the room so that every node counts all of them. Answers
    /// whether the change changed anything and the item's votes after it; a
    /// change reaches every mirror as [`Feed::Votes`].
    fn vote<'a>(
        &'a self,
        room_id: &'a str,
        item: u64,
        change: VoteChange,
    ) -> PortFuture<'a, Result<(bool, u64), Unavailable>>;

    /// Remembers `stream` as kicked from the room, so that every node refuses
    /// its token from then on, and tells every node ([`Feed::Kick`]): the one
    /// holding the stream ends it.
    fn kick<'a>(
        &'a self,
        room_id: &'a str,
        stream: &'a str,
    ) -> PortFuture<'a, Result<(), Unavailable>>;

    /// Whether `stream` was kicked from the room.
    fn kicked<'a>(
        &'a self,
        room_id: &'a str,
        stream: &'a str,
    ) -> PortFuture<'a, Result<bool, Unavailable>>;

    /// Tells every other node serving the room this node's named listeners
    /// there ([`Feed::Members`]); they count for a while, and a node says
    /// them again with its heartbeat.
    fn share_members<'a>(
        &'a self,
        room_id: &'a str,
        members: Vec<Member>,
    ) -> PortFuture<'a, Result<(), Unavailable>>;
}

/// The caps [`SharedRooms::create`] enforces, cluster-wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreateLimits {
    /// `--max-rooms`.
    pub max_rooms: usize,
    /// `--max-rooms-per-client`.
    pub max_rooms_per_client: usize,
    /// `--max-persistent-rooms`, over the whole cluster.
    pub max_persistent_rooms: usize,
}

/// What [`SharedRooms::create`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateOutcome {
    Created,
    Exists,
    Full,
    /// The creator holds `max_rooms_per_client` rooms already.
    TooManyForClient,
    /// The room asked to be persistent and `max_persistent_rooms` are already.
    TooManyPersistent,
}

/// A room as a node first sees it.
pub struct Opened {
    pub room: Room,
    /// The tail of the shared history, oldest first, ending at `room.version`.
    pub history: Vec<Event>,
    pub listeners: u64,
    /// The room's sync summary over every node.
    pub sync: SyncSummary,
    /// Versions a listener may hold that the shared history lost.
    pub lost: LostVersions,
}

/// A committed change: the room after it and its events (none for a no-op).
pub struct Committed {
    pub room: Room,
    pub events: Vec<Event>,
}

/// What a mirror needs to close a gap: the room now (`None`: it is gone) and the
/// shared history after the mirror's version.
#[derive(Debug)]
pub struct CatchUp {
    pub room: Option<Room>,
    pub events: Vec<Event>,
    /// The shared history no longer continues what the mirror holds (versions
    /// lost in a failover, then reused): it starts over from `room`.
    pub rewritten: bool,
    /// Versions a listener may hold that the shared history lost, as the
    /// store has them now (with what this catch-up found, when rewritten).
    pub lost: LostVersions,
}

/// Versions whose events some listener may have got although the shared
/// history no longer has them (lost in a failover, then reused by other
/// commits). Event ids are versions, so a resume from one of them cannot be
/// replayed exactly: it gets a snapshot. Inclusive ranges, ascending,
/// disjoint, at most [`MAX_LOST_RANGES`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LostVersions(Vec<(u64, u64)>);

impl LostVersions {
    /// The ranges `(first, last)` as given, in any order, overlapping or not.
    pub fn from_ranges(ranges: &[(u64, u64)]) -> Self {
        let mut lost = Self::default();
        for &(first, last) in ranges {
            lost.add(first, last);
        }
        lost
    }

    /// The ranges `(first, last)`, as they travel and are stored.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.0
    }

    /// Whether a listener at `version` may hold an event the history lost.
    pub fn contains(&self, version: u64) -> bool {
        self.0
            .iter()
            .any(|&(first, last)| first <= version && version <= last)
    }

    /// Adds `first..=last`, joined with the ranges it meets or touches.
    pub fn add(&mut self, first: u64, last: u64) {
        if first > last {
            return;
        }
        self.0.push((first, last));
        self.0.sort_unstable();
        let mut joined: Vec<(u64, u64)> = Vec::with_capacity(self.0.len());
        for (first, last) in self.0.drain(..) {
            match joined.last_mut() {
                Some(before) if first <= before.1.saturating_add(1) => {
                    before.1 = before.1.max(last);
                }
                _ => joined.push((first, last)),
            }
        }
        while joined.len() > MAX_LOST_RANGES {
            let (_, last) = joined.remove(1);
            joined[0].1 = last;
        }
        self.0 = joined;
    }

    /// Adds every range of `other`.
    pub fn merge(&mut self, other: &LostVersions) {
        for &(first, last) in &other.0 {
            self.add(first, last);
        }
    }

    /// Forgets the ranges that end before `oldest`: a resume from there is
    /// older than the history reaches, and gets a snapshot anyway.
    pub fn forget_before(&mut self, oldest: u64) {
        self.0.retain(|&(_, last)| last >= oldest);
    }
}

/// What a mirror is told, through its inbox.
#[derive(Debug)]
pub enum Feed {
    /// Committed events: from the feed, or from this node's own commit (so a
    /// client reading right after its command sees it).
    Events {
        events: Vec<Event>,
        arrived: Option<std::time::Instant>,
    },
    /// The room's listener total over every live node changed (or the number
    /// of them that take part in the ready gate).
    Presence {
        listeners: u64,
        gate_listeners: u64,
        server_time: i64,
    },
    /// A page somewhere reported the ready gate's item ready: the progress.
    Gate {
        ready_gate: u64,
        ready: u64,
        listeners: u64,
    },
    /// The answer of a catch-up read.
    CaughtUp(Box<Result<CatchUp, Unavailable>>),
    /// The room's sync summary over every node changed.
    Sync(SyncSummary),
    /// The votes to skip the room's item `item` changed (over every node).
    Votes { item: u64, skip: u64 },
    /// A moderator kicked `stream`: the node holding it ends it.
    Kick { stream: String },
    /// Versions the shared history lost, as a node that delivered them
    /// recorded them (with every range recorded before).
    Lost(LostVersions),
    /// Another node's named listeners in the room, counting until
    /// `expires_at` (server ms) unless it says them again.
    Members {
        node: String,
        members: Vec<Member>,
        expires_at: i64,
    },
}

/// Where a mirror takes its feed: offered without waiting (the backplane's
/// reader must never block).
pub trait FeedSink: Send + Sync {
    /// Hands `feed` over now. `false`: it was lost (the inbox is full), and the
    /// mirror must catch up. A mirror that is gone takes everything.
    fn offer(&self, feed: Feed) -> bool;
}

/// One room's feed destination on this node.
pub struct FeedRoute {
    /// Tells this mirror from a later one of the same room id.
    pub generation: u64,
    pub sink: Arc<dyn FeedSink>,
    /// Raised when the feed may have lost messages.
    pub alarm: Arc<FeedAlarm>,
}

impl FeedRoute {
    /// Hands `feed` to the mirror, or raises the alarm when it was lost.
    pub fn deliver(&self, feed: Feed) {
        if !self.sink.offer(feed) {
            self.alarm.raise();
        }
    }
}

/// Raised when a room's feed may have lost messages (a full inbox, a dropped
/// connection): its mirror then catches up from the shared history.
#[derive(Debug, Default)]
pub struct FeedAlarm {
    raised: AtomicBool,
    wake: Notify,
}

impl FeedAlarm {
    pub fn raise(&self) {
        self.raised.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Waits for the alarm and lowers it.
    pub async fn wait(&self) {
        loop {
            if self.raised.swap(false, Ordering::AcqRel) {
                return;
            }
            self.wake.notified().await;
        }
    }
}

/// One line of the room listing.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct RoomSummary {
    pub room_id: String,
    pub name: String,
    pub listeners: u64,
    /// What the room plays: `video_id` and `media_url` on the wire.
    #[serde(flatten, with = "crate::room::source::optional")]
    #[schema(value_type = crate::room::source::SourceFields)]
    pub source: Option<crate::room::Source>,
}

/// Orders a listing busiest first (ties by id) and keeps [`LISTING_LIMIT`].
pub fn busiest_first(rooms: &mut Vec<RoomSummary>) {
    rooms.sort_by(|a, b| {
        b.listeners
            .cmp(&a.listeners)
            .then_with(|| a.room_id.cmp(&b.room_id))
    });
    rooms.truncate(LISTING_LIMIT);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_versions_join_ranges_that_meet_and_know_what_they_hold() {
        let mut lost = LostVersions::from_ranges(&[(7, 9), (2, 3), (4, 4), (12, 12)]);
        assert_eq!(lost.ranges(), &[(2, 4), (7, 9), (12, 12)]);
        assert!(!lost.contains(1) && lost.contains(2) && lost.contains(4));
        assert!(!lost.contains(5) && !lost.contains(10) && lost.contains(12));
        lost.merge(&LostVersions::from_ranges(&[(8, 11), (9, 0)]));
        assert_eq!(lost.ranges(), &[(2, 4), (7, 12)]);
        lost.forget_before(5);
        assert_eq!(lost.ranges(), &[(7, 12)]);
    }

    #[test]
    fn past_the_most_lost_ranges_kept_the_oldest_become_one_and_lose_no_version() {
        let ranges: Vec<(u64, u64)> = (0..MAX_LOST_RANGES as u64 + 2)
            .map(|i| (i * 10, i * 10 + 1))
            .collect();
        let lost = LostVersions::from_ranges(&ranges);
        assert_eq!(lost.ranges().len(), MAX_LOST_RANGES);
        assert_eq!(lost.ranges()[0], (0, 21));
        assert!(ranges
            .iter()
            .all(|&(first, last)| lost.contains(first) && lost.contains(last)));
    }
}
