//! Rooms shared by many nodes through Redis (`--redis URL`) or a Redis Cluster
//! (`--redis-cluster URL`): one protocol over either ([`Conn`]).
//!
//! **One source of truth.** Per room, Redis holds (keys share the `{room_id}`
//! hash tag, so on a cluster they are in one slot, and each script of a room
//! touches that slot only):
//! - `syncroom:{id}:room`, a hash: `v` (the version) and `json` (the whole
//!   [`Room`]: state, queue, control, the host token's *hash*), `p` persistent,
//!   `pub` public, `c` its creator's set (the name of the key below), `cid` the
//!   last commit's id, `lost` the versions a failover lost ([`lineage`]), `hb`
//!   the bytes of its events stream as counted at version `hbv`;
//! - `syncroom:{id}:events`, a stream capped at `--history` entries and
//!   `--history-bytes` bytes of them, whose ids are `<version>-0`: the
//!   replayable history, shared by every node;
//! - `syncroom:{id}:listeners`, a hash node id → `count:expires_at_ms:gate`,
//!   and the totals over live nodes (`_total`, `_gate`);
//! - `syncroom:{id}:chat`, the last chat messages; `syncroom:{id}:ready:<gate>`;
//!   `syncroom:{id}:kicked` and `syncroom:{id}:gone`, the streams kicked and
//!   the streams that ended (sorted sets, bounded; [`READY`] and [`VOTES`]
//!   take an ended stream's readiness and vote back and refuse its token);
//! - `syncroom:{id}:sync`, a hash stream id → `p95_ms:received_at_ms:buffering:name` (the
//!   listeners' drift reports, whichever node took them), and
//!   `syncroom:{id}:sync-summary`, their summary as last published ([`SYNC`]);
//! - `syncroom:{id}:votes:<item>`, a set of the streams that voted to skip the
//!   item loaded at version `<item>` (kept here, beside the room, rather than
//!   travelling between nodes like readiness: a vote must be counted once however
//!   many nodes hear of it, and taken back by whichever node its stream ended on;
//!   the set is the one count every node reads, [`VOTES`]);
//!
//! Across rooms (each kept by the node around a room's script, never inside it;
//! what that guarantees is in [`budgets`]):
//! - the room count for `--max-rooms` and the public listing scored by
//!   listeners ([`Layout`]: `syncroom:rooms` and `syncroom:public` on one
//!   Redis, buckets on a cluster);
//! - `syncroom:creator:<address>`, the ids of the rooms an address created, for
//!   `--max-rooms-per-client`. A room counts while it exists and its hash names
//!   that set (field `c`), so nothing has to be decremented for a room to stop
//!   counting: an expired room, or one whose node died, leaves no count behind;
//! - `syncroom:persistent`, the persistent rooms (`--max-persistent-rooms`).
//!
//! **Commits.** A node reads the room, runs the pure state machine on it and
//! commits with [`COMMIT`], a Lua script that writes only if the version is still
//! the one it read (compare-and-set), appends the events to the stream and
//! publishes them, all in one atomic step. A conflict is retried from the read,
//! so concurrent commands on different nodes get consecutive versions in one
//! total order. The script also refuses work past the caller's deadline, so a
//! command answered `503` after a Redis stall changes nothing when Redis wakes.
//!
//! **Fan-out.** Each node keeps one RESP3 subscription connection (on a
//! cluster, one per shard, sharded pub/sub: a room's messages stay on its
//! shard); it subscribes to `syncroom:{id}:feed` once per room it serves (not
//! per listener) and hands
//! each message to that room's mirror actor ([`Dispatcher`]). Pub/sub can lose
//! messages (a reconnect, a full inbox): the actor notices a version gap, or is
//! told through its `FeedAlarm`, and catches up from the stream, or resyncs
//! its listeners with a snapshot when the stream no longer reaches back.
//!
//! **Timers.** The end-of-video timer runs on every node serving the room; the
//! compare-and-set lets exactly one of them advance it. Idle expiry is Redis's
//! own key expiry (`--room-ttl`), refreshed by commands and by the heartbeats of
//! nodes that have listeners, so it happens once, even with every node gone.

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use rand::Rng;
use redis::aio::{AsyncPushSender, ConnectionManagerConfig, SendError};
use redis::cluster::ClusterClientBuilder;
use redis::streams::StreamRangeReply;
use redis::{
    AsyncCommands, AsyncConnectionConfig, Client, IntoConnectionInfo, ProtocolVersion, PushInfo,
    PushKind,
};

use super::connection::{Conn, Layout};

mod budgets;
mod lineage;

use self::lineage::{Heard, Lineages};
use serde::{Deserialize, Serialize};

use crate::actor::port::{
    busiest_first, CatchUp, Change, Committed, CreateLimits, CreateOutcome, Feed, FeedRoute,
    LostVersions, Opened, PortFuture, RoomSummary, SharedRooms, Unavailable, LISTING_LIMIT,
};
use crate::room::event::{Event, EventKind};
use crate::room::gate::ReadyChange;
use crate::room::members::Member;
use crate::room::moderation::{is_stream_id, MAX_KICKED};
use crate::room::state::ChatMessage;
use crate::room::state::Visibility;
use crate::room::sync::{
    SyncChange, SyncRefusal, SyncRules, SyncSummary, SyncTaken, BEHIND_LISTED, IN_SYNC_MS,
};
use crate::room::votes::VoteChange;
use crate::room::{Clock, CommandError, Room, RoomError};

/// A node's listener count is forgotten this long after its last report, so the
/// counts of a node that died fall out of the total.
const NODE_COUNT_TTL: Duration = Duration::from_secs(15);
/// How long a ready gate's set of ready streams is kept (well past any gate's
/// deadline; it is never read after its gate closed).
const READY_TTL: Duration = Duration::from_secs(60);
/// How long an item's set of votes is kept after its last vote (it is never
/// read once another item is loaded; this only bounds what a gone room leaves).
const VOTES_TTL: Duration = Duration::from_secs(24 * 3600);
/// How much longer than its own timeout a `WAIT` may take to answer before
/// this node stops waiting for it (the answer's way back).
const WAIT_SLACK: Duration = Duration::from_millis(100);
/// Longest pause between two attempts of a conflicting commit: a little jitter
/// keeps nodes that collided from colliding again in lockstep.
const CONFLICT_BACKOFF_MAX_MS: u64 = 3;

/// The Lua scripts, kept as files beside this one. Each takes its keys in
/// `KEYS` and the key layout's pieces it needs in `ARGV` (see [`keys`]).
const CREATE: &str = include_str!("lua/create.lua");
/// Compare-and-set commit: {1 done, 0 version conflict, -1 room gone, -2 past
/// the caller's deadline (nothing written); the room's listener total}.
const COMMIT: &str = include_str!("lua/commit.lua");
/// Records one node's listener count and answers the total over live nodes
/// (and what the node needs to keep the listing and the creator's set).
const PRESENCE: &str = include_str!("lua/presence.lua");
/// Counts a stream ready for a room's gate, or takes back the readiness of
/// streams that ended; answers {counted, ready, taking part}.
const READY: &str = include_str!("lua/ready.lua");
/// Reserves a room's place in a budget set (see [`budgets`]).
const RESERVE: &str = include_str!("lua/reserve.lua");
/// Records, forgets or sweeps sync reports; answers (and on change publishes)
/// the room's summary.
const SYNC: &str = include_str!("lua/sync.lua");
/// Casts or takes back votes to skip an item; answers {changed, votes}.
const VOTES: &str = include_str!("lua/votes.lua");
/// Records the versions a room's history lost if nobody did meanwhile
/// (compare-and-set) and publishes them: {1 written, 0 changed meanwhile, -1
/// room gone; the value now}.
const LOST: &str = include_str!("lua/lost.lua");

/// The key layout, written once: every key of a room shares its `{room_id}`
/// hash tag. The keys that span rooms and differ with the topology are in
/// [`Layout`].
mod keys {
    /// The key every node signs stream tokens with (64 hex digits), set by the
    /// first node to start.
    pub const STREAM_KEY: &str = "syncroom:stream-key";
    /// The persistent rooms of the cluster (`--max-persistent-rooms`): one
    /// key, hit only when a room becomes or stops being persistent.
    pub const PERSISTENT: &str = "syncroom:persistent";
    const ROOM_PREFIX: &str = "syncroom:{";
    const ROOM_SUFFIX: &str = "}:room";
    const FEED_SUFFIX: &str = "}:feed";

    pub fn room(room_id: &str) -> String {
        format!("{ROOM_PREFIX}{room_id}{ROOM_SUFFIX}")
    }

    pub fn events(room_id: &str) -> String {
        format!("{ROOM_PREFIX}{room_id}}}:events")
    }

    pub fn listeners(room_id: &str) -> String {
        format!("{ROOM_PREFIX}{room_id}}}:listeners")
    }

    /// The room's sync reports, by stream id.
    pub fn sync(room_id: &str) -> String {
        format!("{ROOM_PREFIX}{room_id}}}:sync")
    }

    /// Durations reported with the room's sync reports (hash stream ->
    /// "seconds:item"), apart so that nodes that predate them read the reports as before.
    pub fn sync_durations(room_id: &str) -> String {
        format!("{ROOM_PREFIX}{room_id}}}:sync-durations")
    }

    /// The room's sync summary as last published.
    pub fn sync_summary(room_id: &str) -> String {
        format!("{ROOM_PREFIX}{room_id}}}:sync-summary")
    }

    /// The room's last chat messages (a capped list, oldest first).
    /// The streams that reported ready gate `gate` ready (a set, short-lived).
    pub fn ready(room_id: &str, gate: u64) -> String {
        format!("{ROOM_PREFIX}{room_id}}}:ready:{gate}")
    }

    /// The streams that voted to skip the item loaded at version `item`.
    pub fn votes(room_id: &str, item: u64) -> String {
        format!("{ROOM_PREFIX}{room_id}}}:votes:{item}")
    }

    /// The streams that ended while vote skip was on or a ready gate open (a
    /// sorted set by end time, newest `MAX_KICKED` kept, expiring like the
    /// votes): their tokens add no vote and report no readiness.
    pub fn gone(room_id: &str) -> String {
        format!("{ROOM_PREFIX}{room_id}}}:gone")
    }

    /// The streams kicked from the room (a sorted set by kick time, newest
    /// `MAX_KICKED` kept, expiring with the room's TTL after the last kick).
    pub fn kicked(room_id: &str) -> String {
        format!("{ROOM_PREFIX}{room_id}}}:kicked")
    }

    pub fn chat(room_id: &str) -> String {
        format!("{ROOM_PREFIX}{room_id}}}:chat")
    }

    /// The ids of the rooms created from `address`.
    pub fn creator(address: &std::net::IpAddr) -> String {
        format!("syncroom:creator:{address}")
    }

    pub fn feed(room_id: &str) -> String {
        format!("{ROOM_PREFIX}{room_id}{FEED_SUFFIX}")
    }

    /// The room id of a feed channel name.
    pub fn room_of_feed(channel: &str) -> Option<&str> {
        channel.strip_prefix(ROOM_PREFIX)?.strip_suffix(FEED_SUFFIX)
    }
}

/// What travels on a room's feed channel.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum FeedMessage {
    Event(Box<StampedEvent>),
    Presence {
        listeners: u64,
        /// Absent in messages of nodes from before the ready gate.
        #[serde(default)]
        gate_listeners: u64,
        server_time: i64,
    },
    Sync(SyncSummary),
    Gate {
        ready_gate: u64,
        ready: u64,
        listeners: u64,
    },
    Votes {
        item: u64,
        skip: u64,
    },
    /// A stream was kicked: the node holding it ends it. Nodes from before
    /// kicks log it as unreadable and leave the stream open (its token is
    /// refused by the nodes that know the kicked set).
    Kick {
        stream: String,
    },
    /// One node's named listeners in the room (at most 100, earliest first),
    /// counting until `expires_at` (server ms) unless sent again. Older nodes
    /// log it as unreadable: their listeners do not see the others' names.
    Members {
        node: String,
        members: Vec<Member>,
        expires_at: i64,
    },
    /// The versions the room's history lost (ranges, first and last), as
    /// recorded in its hash. Older nodes log it as unreadable: a resume there
    /// from a lost version is replayed.
    Lost {
        versions: Vec<(u64, u64)>,
    },
}

/// An event as it travels between nodes: the [`Event`]'s fields, and the id of
/// the commit that made it (absent from nodes that predate commit ids, whose
/// events are then not checked; older nodes ignore the field).
#[derive(Debug, Serialize, Deserialize)]
struct StampedEvent {
    version: u64,
    server_time: i64,
    kind: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cid: Option<String>,
    /// The commit id of the version before (none for a room's first commit
    /// after its creation, which has no commit id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prev: Option<String>,
}

/// Where an event came from: its commit, and the commit before it.
#[derive(Debug, Default, Clone)]
struct Origin {
    cid: Option<String>,
    prev: Option<String>,
}

impl Origin {
    /// What the lineage hears of `version` with this origin (nothing from a
    /// node that wrote no commit id).
    fn hear(&self, lineages: &Lineages, room_id: &str, version: u64) -> Heard {
        match &self.cid {
            Some(id) => lineage::hear(
                lineages,
                room_id,
                lineage::Stamp {
                    version,
                    id,
                    prev: self.prev.as_deref(),
                },
            ),
            None => Heard::InLine,
        }
    }
}

impl StampedEvent {
    fn new(event: &Event, cid: &str, prev: Option<&str>) -> Self {
        Self {
            version: event.version,
            server_time: event.server_time,
            kind: event.kind.clone(),
            cid: Some(cid.to_owned()),
            prev: prev.map(str::to_owned),
        }
    }

    fn into_event(self) -> (Event, Origin) {
        let event = Event {
            version: self.version,
            server_time: self.server_time,
            kind: self.kind,
        };
        let origin = Origin {
            cid: self.cid,
            prev: self.prev,
        };
        (event, origin)
    }
}

type Routes = Arc<DashMap<Arc<str>, FeedRoute>>;

/// A room hash's `json` and `cid` fields, as `HMGET` answers them.
type JsonAndCid = (Option<String>, Option<String>);
/// A room hash's `json`, `cid` and `lost` fields, as `HMGET` answers them.
type JsonCidLost = (Option<String>, Option<String>, Option<String>);
/// Each version's commit id as Redis has it (`None`: a commit without one).
type StoredIds = std::collections::BTreeMap<u64, Option<String>>;

/// Receives every message of the subscription connection, on its reader task:
/// it must not block, so a room whose inbox is full is told to catch up instead.
struct Dispatcher {
    routes: Routes,
    /// This node's id: its own `members` messages are no news to it.
    node_id: String,
    /// The feed channels whose subscription Redis confirmed: a confirmation
    /// for one of them again is a resubscription (after a lost connection or
    /// a failover), and whatever was published meanwhile is lost.
    confirmed: Arc<dashmap::DashSet<String>>,
    /// The commit ids of the versions delivered, per room.
    lineages: Lineages,
}

impl AsyncPushSender for Dispatcher {
    fn send(&self, info: PushInfo) -> Result<(), SendError> {
        match info.kind {
            PushKind::Message | PushKind::SMessage => self.dispatch(&info.data),
            PushKind::Subscribe | PushKind::SSubscribe => self.confirmed_again(&info.data),
            // Sent by a cluster node whose slot moved away (a failover), or in
            // answer to this node's own unsubscribe (then the route is gone).
            PushKind::Unsubscribe | PushKind::SUnsubscribe => {
                if let Some(channel) = channel_of(&info.data) {
                    self.alarm(&channel);
                }
            }
            // The connection dropped: whatever was published meanwhile is lost to
            // every room here. The manager reconnects and resubscribes; each room
            // catches up (its catch-up goes through this connection first).
            PushKind::Disconnection => {
                tracing::warn!("redis subscription connection lost; rooms will catch up");
                for route in self.routes.iter() {
                    route.alarm.raise();
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// The channel a subscription push is about.
fn channel_of(data: &[redis::Value]) -> Option<String> {
    redis::from_redis_value_ref::<String>(data.first()?).ok()
}

/// A node's connections before the backplane is built on them.
struct Connected {
    commands: Conn,
    subscriber: Conn,
    routes: Routes,
    confirmed: Arc<dashmap::DashSet<String>>,
    lineages: Lineages,
    node_id: String,
}

impl Dispatcher {
    /// A dispatcher for a new node (a new node id, no routes yet).
    fn new() -> Self {
        Self {
            routes: Arc::new(DashMap::new()),
            node_id: uuid::Uuid::new_v4().simple().to_string(),
            confirmed: Arc::new(dashmap::DashSet::new()),
            lineages: Lineages::default(),
        }
    }

    fn confirmed_again(&self, data: &[redis::Value]) {
        let Some(channel) = channel_of(data) else {
            return;
        };
        if !self.confirmed.insert(channel.clone()) {
            self.alarm(&channel);
        }
    }

    /// Tells the room of `channel`, if served here, to check what it missed.
    fn alarm(&self, channel: &str) {
        if let Some(route) = keys::room_of_feed(channel).and_then(|id| self.routes.get(id)) {
            route.alarm.raise();
        }
    }

    fn dispatch(&self, data: &[redis::Value]) {
        let [channel, payload] = data else { return };
        let (Ok(channel), Ok(payload)) = (
            redis::from_redis_value_ref::<String>(channel),
            redis::from_redis_value_ref::<Vec<u8>>(payload),
        ) else {
            return;
        };
        let Some(route) = keys::room_of_feed(&channel).and_then(|id| self.routes.get(id)) else {
            return;
        };
        let feed = match serde_json::from_slice::<FeedMessage>(&payload) {
            Ok(FeedMessage::Event(stamped)) => {
                let (event, origin) = stamped.into_event();
                let id = keys::room_of_feed(&channel).unwrap_or_default();
                if origin.hear(&self.lineages, id, event.version) == Heard::Rewritten {
                    // Held back: the mirror starts over from Redis instead.
                    tracing::warn!(room_id = %id, version = event.version, "the shared history was rewritten (a failover lost versions)");
                    route.alarm.raise();
                    return;
                }
                Feed::Events {
                    events: vec![event],
                    arrived: None,
                }
            }
            Ok(FeedMessage::Presence {
                listeners,
                gate_listeners,
                server_time,
            }) => Feed::Presence {
                listeners,
                gate_listeners,
                server_time,
            },
            Ok(FeedMessage::Sync(summary)) => Feed::Sync(summary),
            Ok(FeedMessage::Gate {
                ready_gate,
                ready,
                listeners,
            }) => Feed::Gate {
                ready_gate,
                ready,
                listeners,
            },
            Ok(FeedMessage::Kick { stream }) => Feed::Kick { stream },
            Ok(FeedMessage::Members {
                node,
                members,
                expires_at,
            }) => {
                if node == self.node_id {
                    return;
                }
                Feed::Members {
                    node,
                    members,
                    expires_at,
                }
            }
            Ok(FeedMessage::Votes { item, skip }) => Feed::Votes { item, skip },
            Ok(FeedMessage::Lost { versions }) => Feed::Lost(LostVersions::from_ranges(&versions)),
            Err(error) => {
                tracing::warn!(%channel, %error, "unreadable feed message ignored");
                return;
            }
        };
        route.deliver(feed);
    }
}

/// One node's connection to the shared rooms.
pub struct RedisBackplane {
    commands: Conn,
    subscriber: Conn,
    /// Where the keys that span rooms are (one Redis or a cluster).
    layout: Layout,
    routes: Routes,
    /// The feed subscriptions Redis confirmed (see [`Dispatcher`]).
    confirmed: Arc<dashmap::DashSet<String>>,
    /// The commit ids of the versions delivered to each served room's mirror.
    lineages: Lineages,
    /// Where Redis is (`host:port`, comma-separated seeds on a cluster): what
    /// a shard is called before the cluster said which there are.
    addr: String,
    /// Each shard and whether it answered the last probe (`/readyz`).
    shards: std::sync::Mutex<Vec<(String, bool)>>,
    /// Replicas each commit waits for (`--redis-wait-replicas`).
    wait_replicas: std::sync::atomic::AtomicUsize,
    /// When this node last extended the life of each served room's creator set.
    creators_kept: DashMap<Arc<str>, i64>,
    node_id: String,
    timeout: Duration,
    history: usize,
    history_bytes: usize,
    ttl: Duration,
    max_queue: usize,
    chat_history: usize,
    max_persistent_rooms: usize,
    clock: Arc<dyn Clock>,
    stream_key: [u8; 32],
    create: redis::Script,
    commit: redis::Script,
    presence: redis::Script,
    ready: redis::Script,
    reserve: redis::Script,
    sync_script: redis::Script,
    sync: SyncRules,
    votes: redis::Script,
    lost: redis::Script,
}

/// The knobs of [`RedisBackplane::connect`].
pub struct RedisSettings {
    /// The `--redis` URL; for [`RedisBackplane::connect_cluster`], the URLs of
    /// the cluster's seed nodes joined by commas.
    pub url: String,
    /// Longest wait for Redis before a request is answered `503`.
    pub timeout: Duration,
    pub history: usize,
    /// Bytes of the shared history kept per room (`--history-bytes`).
    pub history_bytes: usize,
    pub ttl: Duration,
    pub max_queue: usize,
    /// Chat messages kept per room (`--chat-history`), in a capped list beside it.
    pub chat_history: usize,
    /// How sync reports are kept (`--sync-report-interval`, `--max-sync-reports`).
    pub sync: SyncRules,
    /// Persistent rooms over the cluster (`--max-persistent-rooms`).
    pub max_persistent_rooms: usize,
}

/// Why [`RedisBackplane::connect`] did not connect. Neither message holds the
/// URL's password: only the address (`host:port`) is named.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL cannot work whatever Redis does: trying again will not help.
    #[error("not a Redis URL (expected redis://[:PASSWORD@]HOST:PORT[/DB] or rediss://...): {0}")]
    NotARedisUrl(#[source] redis::RedisError),
    /// Redis did not answer this attempt (refused, unreachable, too slow).
    #[error("cannot reach redis at {addr}: {source}")]
    Unreachable {
        addr: String,
        #[source]
        source: redis::RedisError,
    },
}

impl ConnectError {
    /// Whether a later attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unreachable { .. })
    }
}

fn unavailable(error: redis::RedisError) -> Unavailable {
    tracing::warn!(%error, "redis call failed");
    Unavailable
}

/// The error of a call that did not answer within `timeout`.
fn timed_out(timeout: Duration) -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("no answer within {timeout:?} (--redis-timeout)"),
    ))
}

/// Runs a connection step bounded by `timeout`, naming `addr` when it fails.
async fn within<T>(
    timeout: Duration,
    addr: &str,
    step: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, ConnectError> {
    tokio::time::timeout(timeout, step)
        .await
        .unwrap_or_else(|_| Err(timed_out(timeout)))
        .map_err(|source| ConnectError::Unreachable {
            addr: addr.to_owned(),
            source,
        })
}

impl RedisBackplane {
    /// Connects both connections (commands, subscriptions), in one attempt
    /// bounded by the settings' timeout: a node should not start
    /// half-configured. The caller decides whether to try again
    /// ([`ConnectError::is_retryable`]).
    pub async fn connect(
        settings: RedisSettings,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, ConnectError> {
        // rustls needs a process-wide crypto provider for `rediss://`; a second
        // call (several servers in one test process) finds it set, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let info = settings
            .url
            .as_str()
            .into_connection_info()
            .map_err(ConnectError::NotARedisUrl)?;
        let addr = info.addr().to_string();
        let resp3 = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client =
            Client::open(info.set_redis_settings(resp3)).map_err(ConnectError::NotARedisUrl)?;
        let timeout = settings.timeout;
        // One plain connection first: it fails fast and says why (the managers
        // below would retry on their own, silently, for seconds). Only the
        // outer timeout bounds it, so a slow Redis always reads the same.
        let attempt = async {
            let probe = AsyncConnectionConfig::new()
                .set_connection_timeout(None)
                .set_response_timeout(None);
            let mut probe = client
                .get_multiplexed_async_connection_with_config(&probe)
                .await?;
            redis::cmd("PING").query_async::<()>(&mut probe).await
        };
        within(timeout, &addr, attempt).await?;
        let dispatcher = Dispatcher::new();
        let (routes, confirmed) = (dispatcher.routes.clone(), dispatcher.confirmed.clone());
        let (lineages, node_id) = (dispatcher.lineages.clone(), dispatcher.node_id.clone());
        let base = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_max_delay(Duration::from_secs(2));
        let managers = async {
            let commands = client
                .get_connection_manager_with_config(base.clone())
                .await?;
            let subscriber = client
                .get_connection_manager_with_config(
                    base.set_push_sender(dispatcher)
                        .set_automatic_resubscription(),
                )
                .await?;
            Ok((commands, subscriber))
        };
        let (commands, subscriber) = within(timeout, &addr, managers).await?;
        let connected = Connected {
            commands: Conn::Single(commands),
            subscriber: Conn::Single(subscriber),
            routes,
            confirmed,
            lineages,
            node_id,
        };
        Self::finish(connected, &addr, settings, clock).await
    }

    /// Connects to a Redis Cluster through its seed nodes (`settings.url`, the
    /// URLs joined by commas): one connection per shard, which carries the
    /// commands and this node's sharded subscriptions alike, and follows the
    /// cluster's slot map (failovers included).
    pub async fn connect_cluster(
        settings: RedisSettings,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, ConnectError> {
        // See `connect`: `rediss://` needs the process-wide provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let seeds = settings
            .url
            .split(',')
            .map(|url| url.trim().into_connection_info())
            .collect::<Result<Vec<_>, _>>()
            .map_err(ConnectError::NotARedisUrl)?;
        let addr = seeds
            .iter()
            .map(|seed| seed.addr().to_string())
            .collect::<Vec<_>>()
            .join(",");
        let timeout = settings.timeout;
        let dispatcher = Dispatcher::new();
        let (routes, confirmed) = (dispatcher.routes.clone(), dispatcher.confirmed.clone());
        let (lineages, node_id) = (dispatcher.lineages.clone(), dispatcher.node_id.clone());
        let client = ClusterClientBuilder::new(seeds)
            .use_protocol(ProtocolVersion::RESP3)
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .push_sender(dispatcher)
            .build()
            .map_err(ConnectError::NotARedisUrl)?;
        let conn = within(timeout, &addr, client.get_async_connection()).await?;
        // Sharded pub/sub came with Redis 7: refuse to start on an older one
        // rather than lose every feed.
        let mut probe = conn.clone();
        let spublish = redis::cmd("SPUBLISH")
            .arg("syncroom:{probe}:feed")
            .arg("")
            .clone();
        within(timeout, &addr, spublish.query_async::<i64>(&mut probe)).await?;
        let connected = Connected {
            commands: Conn::Cluster(conn.clone()),
            subscriber: Conn::Cluster(conn),
            routes,
            confirmed,
            lineages,
            node_id,
        };
        Self::finish(connected, &addr, settings, clock).await
    }

    /// Agrees on the stream-token key, then builds the backplane.
    async fn finish(
        connected: Connected,
        addr: &str,
        settings: RedisSettings,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, ConnectError> {
        let stream_key = within(
            settings.timeout,
            addr,
            agree_on_stream_key(connected.commands.clone()),
        )
        .await?;
        Ok(Arc::new(Self {
            layout: connected.commands.layout(),
            commands: connected.commands,
            subscriber: connected.subscriber,
            routes: connected.routes,
            confirmed: connected.confirmed,
            lineages: connected.lineages,
            wait_replicas: std::sync::atomic::AtomicUsize::new(0),
            addr: addr.to_owned(),
            shards: std::sync::Mutex::new(Vec::new()),
            creators_kept: DashMap::new(),
            node_id: connected.node_id,
            timeout: settings.timeout,
            history: settings.history.max(1),
            history_bytes: settings.history_bytes,
            ttl: settings.ttl,
            max_queue: settings.max_queue,
            chat_history: settings.chat_history,
            max_persistent_rooms: settings.max_persistent_rooms,
            clock,
            stream_key,
            create: redis::Script::new(CREATE),
            commit: redis::Script::new(COMMIT),
            presence: redis::Script::new(PRESENCE),
            ready: redis::Script::new(READY),
            votes: redis::Script::new(VOTES),
            reserve: redis::Script::new(RESERVE),
            sync_script: redis::Script::new(SYNC),
            sync: settings.sync,
            lost: redis::Script::new(LOST),
        }))
    }

    /// Runs `call` with the configured time bound.
    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, Unavailable>>,
    ) -> Result<T, Unavailable> {
        tokio::time::timeout(self.timeout, call)
            .await
            .unwrap_or_else(|_| {
                tracing::warn!(timeout = ?self.timeout, "redis did not answer in time");
                Err(Unavailable)
            })
    }

    /// Runs a prepared script call within the time bound.
    async fn run_script<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
        conn: &mut Conn,
    ) -> Result<T, Unavailable> {
        self.bounded(async { invocation.invoke_async(conn).await.map_err(unavailable) })
            .await
    }

    /// The node's clock, as rooms see it.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    fn ttl_ms(&self) -> u64 {
        self.ttl.as_millis().max(1) as u64
    }

    /// Whether Redis answers now (`/readyz`): on a cluster, every primary.
    /// Remembers each shard's answer ([`RedisBackplane::shard_health`]).
    pub async fn ready(&self) -> bool {
        let mut conn = self.commands.clone();
        let shards = conn.probe_shards(&self.addr, self.timeout).await;
        let ready = shards.iter().all(|(_, up)| *up);
        for (shard, _) in shards.iter().filter(|(_, up)| !up) {
            tracing::warn!(%shard, "redis shard unreachable");
        }
        if let Ok(mut last) = self.shards.lock() {
            *last = shards;
        }
        ready
    }

    /// Each shard and whether it answered the last probe.
    pub fn shard_health(&self) -> Vec<(String, bool)> {
        self.shards
            .lock()
            .map(|last| last.clone())
            .unwrap_or_default()
    }

    /// Stores a new room, unless its id is taken or a limit is reached. The
    /// budgets that span rooms are reserved first ([`budgets`]), then the
    /// room's own script runs on its slot.
    pub async fn create(
        &self,
        room: &Room,
        limits: CreateLimits,
    ) -> Result<CreateOutcome, Unavailable> {
        let json = serde_json::to_string(room).map_err(|_| Unavailable)?;
        let id = &room.room_id;
        // A taken id answers as such whatever the budgets say.
        if self.exists(id).await? {
            return Ok(CreateOutcome::Exists);
        }
        let reserved = match self.reserve_creation(room, &limits).await? {
            Ok(reserved) => reserved,
            Err(refused) => return Ok(refused),
        };
        let creator = room.creator.map(|a| keys::creator(&a)).unwrap_or_default();
        let public = room.visibility == Visibility::Public;
        let mut conn = self.commands.clone();
        let mut invocation = self.create.key(keys::room(id));
        invocation
            .key(keys::events(id))
            .key(keys::listeners(id))
            .key(keys::chat(id))
            .arg(room.version)
            .arg(json)
            .arg(self.ttl_ms())
            .arg(flag(public))
            .arg(flag(room.persistent))
            .arg(creator);
        let answer: Result<i64, Unavailable> = self.run_script(&invocation, &mut conn).await;
        match answer {
            Ok(1) => {
                if public {
                    self.list_room(id, true, 0).await;
                }
                Ok(CreateOutcome::Created)
            }
            answer => {
                self.give_back(id, reserved).await;
                answer.map(|_| CreateOutcome::Exists)
            }
        }
    }

    /// Whether the room exists: a cheap first look before a mirror is set up, so
    /// requests for rooms that do not exist cost one round trip.
    pub async fn exists(&self, room_id: &str) -> Result<bool, Unavailable> {
        let mut conn = self.commands.clone();
        self.bounded(async { conn.exists(keys::room(room_id)).await.map_err(unavailable) })
            .await
    }

    /// Sends this room's feed messages to `inbox` from now on. Called before
    /// [`RedisBackplane::open`], so nothing published after the room is read
    /// can slip past the mirror.
    pub fn route(&self, room_id: &str, route: FeedRoute) {
        self.routes.insert(Arc::from(room_id), route);
    }

    /// Stops feeding this room's mirror (it ended) and drops the subscription,
    /// unless a newer mirror took the route meanwhile.
    pub fn unroute(self: &Arc<Self>, room_id: &str, generation: u64) {
        let removed = self
            .routes
            .remove_if(room_id, |_, route| route.generation == generation)
            .is_some();
        if !removed {
            return;
        }
        let this = self.clone();
        let room_id = room_id.to_owned();
        tokio::spawn(async move {
            let channel = keys::feed(&room_id);
            let mut subscriber = this.subscriber.clone();
            this.creators_kept.remove(room_id.as_str());
            lineage::forget(&this.lineages, &room_id);
            // Best effort: a subscription left behind only costs ignored messages.
            let _ = this
                .bounded(async {
                    subscriber
                        .unsubscribe_feed(&channel)
                        .await
                        .map_err(unavailable)
                })
                .await;
            this.confirmed.remove(&channel);
            // A new mirror may have subscribed just before our unsubscribe took
            // effect: subscribe again and let it check what it missed.
            if let Some(route) = this.routes.get(room_id.as_str()) {
                let _ = subscriber.subscribe_feed(&channel).await;
                route.alarm.raise();
            }
        });
    }

    /// Subscribes to the room's feed, then reads it: `None` if there is no such
    /// room. The route must be in place (see [`RedisBackplane::route`]).
    pub async fn open(&self, room_id: &str) -> Result<Option<Opened>, Unavailable> {
        let mut subscriber = self.subscriber.clone();
        let mut conn = self.commands.clone();
        let ((json, cid, lost), tail, listeners, chat): (
            JsonCidLost,
            StreamRangeReply,
            Option<u64>,
            Vec<String>,
        ) = self
            .bounded(async {
                subscriber
                    .subscribe_feed(&keys::feed(room_id))
                    .await
                    .map_err(unavailable)?;
                redis::pipe()
                    .cmd("HMGET")
                    .arg(keys::room(room_id))
                    .arg("json")
                    .arg("cid")
                    .arg("lost")
                    .xrevrange_count(keys::events(room_id), "+", "-", self.history)
                    .hget(keys::listeners(room_id), "_total")
                    .lrange(keys::chat(room_id), 0, -1)
                    .query_async(&mut conn)
                    .await
                    .map_err(unavailable)
            })
            .await?;
        let Some(mut room) = json.and_then(|json| self.parse_room(room_id, &json)) else {
            return Ok(None);
        };
        keep_chat(&mut room, &chat);
        // The mirror starts from what Redis has: its lineage too.
        lineage::restart(&self.lineages, room_id, room.version, cid.as_deref());
        let mut history: Vec<Event> = Vec::new();
        for (event, origin) in parse_events(room_id, tail).into_iter().rev() {
            // What disagrees here is left out of the run kept below, or
            // found at the next catch-up.
            let _ = origin.hear(&self.lineages, room_id, event.version);
            history.push(event);
        }
        // Keep only the gapless run that ends at the room's version.
        let mut kept = 0;
        let mut expected = room.version;
        for event in history.iter().rev() {
            if event.version != expected {
                break;
            }
            kept += 1;
            expected = expected.saturating_sub(1);
        }
        history.drain(..history.len() - kept);
        // The summary as it is now (expired reports forgotten), not as last
        // published: nobody may have swept since.
        let sync = match self.sync(room_id, SyncChange::Sweep).await {
            Ok(taken) => taken.summary,
            Err(RoomError::Unavailable(error)) => return Err(error),
            Err(_) => SyncSummary::default(),
        };
        Ok(Some(Opened {
            room,
            history,
            listeners: listeners.unwrap_or(0),
            sync,
            lost: parse_lost(room_id, lost.as_deref()),
        }))
    }

    fn parse_room(&self, room_id: &str, json: &str) -> Option<Room> {
        match serde_json::from_str::<Room>(json) {
            Ok(mut room) => {
                // The queue bound is the running node's.
                room.max_queue = self.max_queue;
                room.keep_chat(self.chat_history);
                Some(room)
            }
            Err(error) => {
                tracing::error!(%room_id, %error, "unreadable room in redis");
                None
            }
        }
    }

    /// Reads the room, lets `change` (the pure state machine) decide, and commits
    /// with compare-and-set, retrying on conflict, all within the time bound.
    pub async fn commit(
        &self,
        room_id: &str,
        change: &mut Change<'_>,
    ) -> Result<Committed, RoomError> {
        let give_up_ms = self.clock.now_ms() + self.timeout.as_millis() as i64;
        let attempt = async {
            loop {
                let mut conn = self.commands.clone();
                let read_at = std::time::Instant::now();
                // The kept chat comes along so that a change may remove a
                // message; the version check of the script guards it too (every
                // message is a version).
                let ((json, prev), chat): (JsonAndCid, Vec<String>) = redis::pipe()
                    .cmd("HMGET")
                    .arg(keys::room(room_id))
                    .arg("json")
                    .arg("cid")
                    .lrange(keys::chat(room_id), 0, -1)
                    .query_async(&mut conn)
                    .await
                    .map_err(unavailable)?;
                // The script's deadline leaves room for its answer to come back
                // before this node gives up (its `503` says nothing changed): the
                // read's round trip stands for the way back. Without it, a Redis
                // slow by a little more than a third of the timeout would apply a
                // commit whose answer arrives after the `503`.
                let deadline_ms = give_up_ms - read_at.elapsed().as_millis() as i64;
                let Some(mut room) = json.and_then(|json| self.parse_room(room_id, &json)) else {
                    return Err(RoomError::Closed);
                };
                keep_chat(&mut room, &chat);
                let read_version = room.version;
                if !lineage::agrees(&self.lineages, room_id, read_version, prev.as_deref()) {
                    // This node's mirror holds versions Redis lost: its events
                    // would follow them. Nothing is committed; it starts over.
                    self.alarm(room_id);
                    return Err(RoomError::Unavailable(Unavailable));
                }
                let before = Standing::of(&room);
                let events = change(&mut room, self.clock.now_ms())?;
                if events.is_empty() {
                    return Ok(Committed { room, events });
                }
                let reserved = self.reserve_standing(before, &room).await?;
                let origin = Origin {
                    cid: Some(hex::encode(rand::random::<[u8; 8]>())),
                    prev,
                };
                let invocation = self.commit_invocation(
                    room_id,
                    read_version,
                    &room,
                    &events,
                    deadline_ms,
                    &origin,
                )?;
                let answer: Result<(i64, u64), _> = invocation
                    .invoke_async(&mut conn)
                    .await
                    .map_err(unavailable);
                if let Ok((1, listeners)) = answer {
                    self.note_commit(room_id, &events, origin);
                    self.after_commit(before, &room, &events, listeners).await;
                    return Ok(Committed { room, events });
                }
                if reserved {
                    self.give_back_persistent(room_id).await;
                }
                match answer? {
                    (0, _) => {
                        let pause = rand::rng().random_range(0..=CONFLICT_BACKOFF_MAX_MS);
                        tokio::time::sleep(Duration::from_millis(pause)).await;
                    }
                    (-1, _) => return Err(RoomError::Closed),
                    _ => return Err(RoomError::Unavailable(Unavailable)),
                }
            }
        };
        let committed = match tokio::time::timeout(self.timeout, attempt).await {
            Ok(result) => result?,
            Err(_) => {
                tracing::warn!(%room_id, "commit did not finish in time");
                return Err(RoomError::Unavailable(Unavailable));
            }
        };
        if !committed.events.is_empty() {
            self.wait_for_replicas(room_id, give_up_ms).await;
        }
        Ok(committed)
    }

    /// With `--redis-wait-replicas N`: waits (`WAIT`, on the connection the
    /// commit went through, to the room's primary) until N replicas have the
    /// commit, for what is left of the Redis timeout. The commit stands
    /// whatever the answer (it cannot be withdrawn, and listeners may have it):
    /// a shortfall is logged, and the command still succeeds.
    async fn wait_for_replicas(&self, room_id: &str, give_up_ms: i64) {
        let wanted = self
            .wait_replicas
            .load(std::sync::atomic::Ordering::Relaxed);
        if wanted == 0 {
            return;
        }
        // WAIT answers within its own timeout, before the connection's.
        let left_ms =
            (give_up_ms - self.clock.now_ms() - WAIT_SLACK.as_millis() as i64).max(1) as u64;
        let mut conn = self.commands.clone();
        let waited = tokio::time::timeout(
            Duration::from_millis(left_ms) + WAIT_SLACK,
            conn.wait_replicas(&keys::room(room_id), wanted, left_ms),
        )
        .await;
        match waited {
            Ok(Ok(confirmed)) if confirmed >= wanted as i64 => {}
            Ok(Ok(confirmed)) => {
                tracing::warn!(%room_id, confirmed, wanted, "a commit is not on as many replicas as --redis-wait-replicas asks")
            }
            Ok(Err(error)) => {
                tracing::warn!(%room_id, %error, wanted, "a commit's replication could not be confirmed")
            }
            Err(_) => {
                tracing::warn!(%room_id, wanted, "a commit's replication was not confirmed in time")
            }
        }
    }

    /// How many replicas each commit waits for (`--redis-wait-replicas`; 0, the
    /// default, waits for none). Set once, before the node serves.
    pub fn wait_for_replicas_after_commits(&self, replicas: usize) {
        self.wait_replicas
            .store(replicas, std::sync::atomic::Ordering::Relaxed);
    }

    /// Remembers this node's own commit as delivered (its mirror gets its
    /// events at once); a version already delivered under another commit id
    /// means this mirror held lost versions: it is told to start over.
    fn note_commit(&self, room_id: &str, events: &[Event], mut origin: Origin) {
        let mut rewritten = false;
        for event in events {
            rewritten |= origin.hear(&self.lineages, room_id, event.version) == Heard::Rewritten;
            // The commit's later events follow its own first.
            origin.prev = origin.cid.clone();
        }
        if rewritten {
            self.alarm(room_id);
        }
    }

    /// Tells the room's mirror, if served here, to catch up.
    fn alarm(&self, room_id: &str) {
        if let Some(route) = self.routes.get(room_id) {
            route.alarm.raise();
        }
    }

    /// Reserves a place among the persistent rooms for a room that becomes
    /// persistent: whether it was reserved now (to give back if the commit
    /// does not happen).
    async fn reserve_standing(&self, before: Standing, room: &Room) -> Result<bool, RoomError> {
        if !room.persistent || before.persistent {
            return Ok(false);
        }
        match self
            .reserve_persistent(&room.room_id, self.max_persistent_rooms)
            .await?
        {
            Some(new) => Ok(new),
            None => Err(CommandError::TooManyPersistent.into()),
        }
    }

    async fn give_back_persistent(&self, room_id: &str) {
        let mut conn = self.commands.clone();
        let removed = self
            .bounded(async {
                conn.zrem::<_, _, ()>(keys::PERSISTENT, room_id)
                    .await
                    .map_err(unavailable)
            })
            .await;
        // A place left behind is found stale when the set looks full.
        let _ = removed;
    }

    /// Keeps the sets that span rooms in step with a committed change.
    async fn after_commit(&self, before: Standing, room: &Room, events: &[Event], listeners: u64) {
        let closing = matches!(
            events.last().map(|e| &e.kind),
            Some(EventKind::Closed { .. })
        );
        if closing {
            self.forget_room(room).await;
            return;
        }
        let now = Standing::of(room);
        if now.public != before.public {
            self.list_room(&room.room_id, now.public, listeners).await;
        }
        if before.persistent && !now.persistent {
            self.give_back_persistent(&room.room_id).await;
        }
        if let Some(address) = &room.creator {
            let creator = keys::creator(address);
            if now.persistent && !before.persistent {
                self.make_creator_last(&creator).await;
            }
            self.keep_creator(&room.room_id, &creator, now.persistent)
                .await;
        }
    }

    /// The commit script's call: `room` at its new version after `events`,
    /// over the stored room at `read_version`.
    fn commit_invocation(
        &self,
        room_id: &str,
        read_version: u64,
        room: &Room,
        events: &[Event],
        deadline_ms: i64,
        origin: &Origin,
    ) -> Result<redis::ScriptInvocation<'_>, Unavailable> {
        let cid = origin.cid.as_deref().unwrap_or_default();
        let closing = matches!(
            events.last().map(|e| &e.kind),
            Some(EventKind::Closed { .. })
        );
        // A deleted message is taken out by writing the kept list anew.
        let rewrites_chat = events.iter().any(|e| {
            matches!(
                e.kind,
                EventKind::ChatCleared {} | EventKind::ChatDeleted { .. }
            )
        });
        let mut invocation = self.commit.prepare_invoke();
        invocation
            .key(keys::room(room_id))
            .key(keys::events(room_id))
            .key(keys::listeners(room_id))
            .key(keys::chat(room_id))
            .arg(read_version)
            .arg(room.version)
            .arg(serde_json::to_string(room).map_err(|_| Unavailable)?)
            .arg(self.ttl_ms())
            .arg(self.history)
            .arg(keys::feed(room_id))
            .arg(flag(closing))
            .arg(deadline_ms)
            .arg(self.chat_history)
            .arg(flag(room.visibility == Visibility::Public))
            .arg(flag(rewrites_chat))
            .arg(flag(room.persistent))
            .arg(self.layout.publish())
            .arg(cid)
            .arg(self.history_bytes);
        // The chat messages to keep go first, then the events.
        let kept: Vec<&ChatMessage> = room
            .chat
            .iter()
            .filter(|kept| rewrites_chat || events.iter().any(|e| e.version == kept.version))
            .collect();
        invocation.arg(kept.len());
        for message in kept {
            invocation.arg(serde_json::to_string(message).map_err(|_| Unavailable)?);
        }
        let mut prev = origin.prev.as_deref();
        for event in events {
            let message = FeedMessage::Event(Box::new(StampedEvent::new(event, cid, prev)));
            prev = Some(cid);
            invocation.arg(serde_json::to_string(&message).map_err(|_| Unavailable)?);
        }
        Ok(invocation)
    }

    /// The room now and its history after `after`. Pings the subscription
    /// connection first: once that answers, the subscriptions are back after a
    /// reconnect, so what is committed after this read reaches the feed.
    /// When the room in Redis does not continue what this node delivered up to
    /// `after` (versions lost in a failover), it is the room only, marked
    /// rewritten: the mirror starts over from it.
    pub async fn catch_up(&self, room_id: &str, after: u64) -> Result<CatchUp, Unavailable> {
        let mut subscriber = self.subscriber.clone();
        let mut conn = self.commands.clone();
        let ((json, cid, recorded), range, chat): (JsonCidLost, StreamRangeReply, Vec<String>) =
            self.bounded(async {
                subscriber
                    .ping_node_of(&keys::room(room_id))
                    .await
                    .map_err(unavailable)?;
                redis::pipe()
                    .cmd("HMGET")
                    .arg(keys::room(room_id))
                    .arg("json")
                    .arg("cid")
                    .arg("lost")
                    // From `after` itself: its commit id says whether we agree on it.
                    .xrange_count(
                        keys::events(room_id),
                        format!("{after}-0"),
                        "+",
                        self.history + 1,
                    )
                    .lrange(keys::chat(room_id), 0, -1)
                    .query_async(&mut conn)
                    .await
                    .map_err(unavailable)
            })
            .await?;
        let Some(mut room) = json.and_then(|json| self.parse_room(room_id, &json)) else {
            return Ok(CatchUp {
                room: None,
                events: Vec::new(),
                rewritten: false,
                lost: LostVersions::default(),
            });
        };
        keep_chat(&mut room, &chat);
        let mut events = parse_events(room_id, range);
        let at_after = match events.first() {
            Some((event, origin)) if event.version == after => origin.cid.clone(),
            _ if room.version == after => cid.clone(),
            _ => None,
        };
        events.retain(|(event, _)| event.version > after);
        let in_line = lineage::continues(
            &self.lineages,
            room_id,
            after,
            room.version,
            at_after.as_deref(),
        ) && events.iter().all(|(event, origin)| {
            origin.hear(&self.lineages, room_id, event.version) == Heard::InLine
        });
        let mut lost = parse_lost(room_id, recorded.as_deref());
        if !in_line {
            tracing::warn!(%room_id, after, version = room.version, "the shared history was rewritten (a failover lost versions): listeners get a snapshot");
            // Redis's ids as far as this read has them; a failure to record
            // fails the catch-up, which is tried again from the same lineage.
            let mut stored: StoredIds = events
                .iter()
                .map(|(event, origin)| (event.version, origin.cid.clone()))
                .collect();
            stored.entry(room.version).or_insert_with(|| cid.clone());
            if let Some(id) = at_after {
                stored.insert(after, Some(id));
            }
            lost = self
                .record_rewrite(room_id, after, room.version, stored, recorded)
                .await?;
            lineage::restart(&self.lineages, room_id, room.version, cid.as_deref());
        }
        Ok(CatchUp {
            room: Some(room),
            events: if in_line {
                events.into_iter().map(|(event, _)| event).collect()
            } else {
                Vec::new()
            },
            rewritten: !in_line,
            lost,
        })
    }

    /// Works out which versions delivered here Redis lost (its ids in
    /// `stored`, read further back from the stream where this node remembers
    /// more) and records them with those recorded before (`recorded`, the
    /// field as read); answers what is recorded now.
    async fn record_rewrite(
        &self,
        room_id: &str,
        after: u64,
        version: u64,
        mut stored: StoredIds,
        recorded: Option<String>,
    ) -> Result<LostVersions, Unavailable> {
        let oldest = lineage::oldest(&self.lineages, room_id).filter(|oldest| *oldest < after);
        if let Some(oldest) = oldest {
            let mut conn = self.commands.clone();
            let range: StreamRangeReply = self
                .bounded(async {
                    conn.xrange_count(
                        keys::events(room_id),
                        format!("{oldest}-0"),
                        format!("{after}-0"),
                        self.history,
                    )
                    .await
                    .map_err(unavailable)
                })
                .await?;
            for (event, origin) in parse_events(room_id, range) {
                stored.insert(event.version, origin.cid);
            }
        }
        match lineage::lost(&self.lineages, room_id, after, version, &stored) {
            Some(range) => self.record_lost(room_id, range, version, recorded).await,
            None => Ok(parse_lost(room_id, recorded.as_deref())),
        }
    }

    /// Records `first..=last` as lost in the room hash (field `lost`), joined
    /// with what other nodes recorded: a compare-and-set, tried again with the
    /// field as it then is while other nodes record at the same moment (every
    /// node that delivered the lost versions does). The ranges the history
    /// window left behind go. The result is published on the room's feed, so
    /// every node serving the room knows it; answers it.
    async fn record_lost(
        &self,
        room_id: &str,
        (first, last): (u64, u64),
        version: u64,
        mut read: Option<String>,
    ) -> Result<LostVersions, Unavailable> {
        let mut conn = self.commands.clone();
        self.bounded(async {
            loop {
                let mut lost = parse_lost(room_id, read.as_deref());
                lost.add(first, last);
                lost.forget_before(version.saturating_sub(self.history as u64));
                let value = serde_json::to_string(lost.ranges()).map_err(|_| Unavailable)?;
                if read.as_deref() == Some(value.as_str()) {
                    return Ok(lost);
                }
                let message = FeedMessage::Lost {
                    versions: lost.ranges().to_vec(),
                };
                let message = serde_json::to_string(&message).map_err(|_| Unavailable)?;
                let (status, now): (i64, String) = self
                    .lost
                    .key(keys::room(room_id))
                    .arg(read.as_deref().unwrap_or(""))
                    .arg(&value)
                    .arg(keys::feed(room_id))
                    .arg(self.layout.publish())
                    .arg(message)
                    .invoke_async(&mut conn)
                    .await
                    .map_err(unavailable)?;
                if status != 0 {
                    return Ok(lost);
                }
                read = Some(now).filter(|now| !now.is_empty());
            }
        })
        .await
    }

    /// Reports this node's listener count in a room; answers the total over all
    /// live nodes (and keeps the room alive while it has listeners, with its
    /// place in the listing and its creator's set).
    pub async fn report_listeners(
        &self,
        room_id: &str,
        count: usize,
        gate_count: usize,
    ) -> Result<u64, Unavailable> {
        let mut conn = self.commands.clone();
        let mut invocation = self.presence.key(keys::room(room_id));
        invocation
            .key(keys::events(room_id))
            .key(keys::listeners(room_id))
            .key(keys::chat(room_id))
            .arg(&self.node_id)
            .arg(count)
            .arg(NODE_COUNT_TTL.as_millis() as u64)
            .arg(self.ttl_ms())
            .arg(keys::feed(room_id))
            .arg(gate_count)
            .arg(self.layout.publish());
        let answer: Vec<redis::Value> = self.run_script(&invocation, &mut conn).await?;
        let field = |i: usize| {
            answer
                .get(i)
                .and_then(|value| redis::from_redis_value_ref::<String>(value).ok())
                .unwrap_or_default()
        };
        let Ok(total) = field(0).parse::<i64>() else {
            return Err(Unavailable);
        };
        if total < 0 {
            return Ok(0);
        }
        let total = total as u64;
        if field(1) == "1" {
            self.list_room(room_id, true, total).await;
        }
        if total > 0 {
            self.keep_creator(room_id, &field(2), field(3) == "1").await;
        }
        Ok(total)
    }

    /// Changes the room's sync reports ([`SYNC`]) and answers its summary.
    pub async fn sync(&self, room_id: &str, change: SyncChange) -> Result<SyncTaken, RoomError> {
        let mut conn = self.commands.clone();
        let mut invocation = self.sync_script.prepare_invoke();
        invocation
            .key(keys::room(room_id))
            .key(keys::sync(room_id))
            .key(keys::sync_summary(room_id))
            .key(keys::sync_durations(room_id));
        let mode = match &change {
            SyncChange::Report { .. } => "report",
            SyncChange::Forget(_) => "forget",
            SyncChange::Sweep => "sweep",
        };
        invocation
            .arg(mode)
            .arg(self.sync.lifetime_ms())
            .arg(self.sync.min_gap_ms())
            .arg(self.sync.max_reports)
            .arg(IN_SYNC_MS)
            .arg(self.ttl_ms())
            .arg(keys::feed(room_id))
            .arg(BEHIND_LISTED)
            .arg(self.layout.publish());
        match &change {
            SyncChange::Report {
                stream,
                report,
                item,
            } => {
                invocation
                    .arg(stream)
                    // Display, never an exponent: the script's stored form is digits and a point.
                    .arg(report.p95_ms.to_string())
                    .arg(u8::from(report.buffering))
                    .arg(report.name.as_deref().unwrap_or(""))
                    .arg(report.duration.map_or(String::new(), |d| d.to_string()))
                    .arg(item);
            }
            SyncChange::Forget(streams) => {
                invocation.arg(streams);
            }
            SyncChange::Sweep => {}
        }
        let (status, summary, retry_ms, durations): (i64, String, i64, Vec<String>) =
            self.run_script(&invocation, &mut conn).await?;
        match status {
            1 => Ok(SyncTaken {
                summary: serde_json::from_str(&summary).map_err(|error| {
                    tracing::error!(%room_id, %error, "unreadable sync summary from lua");
                    RoomError::Unavailable(Unavailable)
                })?,
                durations: durations.iter().filter_map(|d| d.parse().ok()).collect(),
            }),
            0 => Err(SyncRefusal::TooSoon {
                retry_after_ms: retry_ms.max(1) as u64,
            }
            .into()),
            -2 => Err(SyncRefusal::Full.into()),
            _ => Err(RoomError::Closed),
        }
    }

    /// Counts a stream ready for the room's gate `ready_gate`, or takes back
    /// the readiness of streams that ended (remembered as gone: their tokens
    /// report nothing more); answers whether a report counted, and (ready,
    /// taking part) over every node; a change is published as progress.
    pub async fn report_ready(
        &self,
        room_id: &str,
        ready_gate: u64,
        change: ReadyChange,
    ) -> Result<(bool, u64, u64), Unavailable> {
        let mut conn = self.commands.clone();
        let mut invocation = self.ready.key(keys::ready(room_id, ready_gate));
        invocation
            .key(keys::listeners(room_id))
            .key(keys::gone(room_id))
            .arg(READY_TTL.as_millis() as u64)
            .arg(ready_gate)
            .arg(keys::feed(room_id))
            .arg(self.layout.publish());
        let streams = match change {
            ReadyChange::Report(stream) => {
                invocation.arg("report");
                vec![stream]
            }
            ReadyChange::Forget(streams) => {
                invocation.arg("forget");
                streams
            }
        };
        invocation
            .arg(MAX_KICKED)
            .arg(VOTES_TTL.as_millis() as u64)
            .arg(streams);
        let (counted, ready, listeners): (i64, i64, i64) =
            self.run_script(&invocation, &mut conn).await?;
        Ok((counted > 0, ready.max(0) as u64, listeners.max(0) as u64))
    }

    /// Casts or takes back votes to skip the room's item `item`; answers
    /// whether anything changed and the item's votes, and publishes a change.
    pub async fn vote(
        &self,
        room_id: &str,
        item: u64,
        change: VoteChange,
    ) -> Result<(bool, u64), Unavailable> {
        let mut conn = self.commands.clone();
        let mut invocation = self.votes.key(keys::votes(room_id, item));
        invocation
            .key(keys::gone(room_id))
            .arg(VOTES_TTL.as_millis() as u64)
            .arg(item)
            .arg(keys::feed(room_id));
        match change {
            VoteChange::Cast(stream) => invocation
                .arg("cast")
                .arg(MAX_KICKED)
                .arg(self.layout.publish())
                .arg(stream),
            VoteChange::Forget(streams) => invocation
                .arg("forget")
                .arg(MAX_KICKED)
                .arg(self.layout.publish())
                .arg(streams),
        };
        let (changed, votes): (i64, i64) = self.run_script(&invocation, &mut conn).await?;
        Ok((changed > 0, votes.max(0) as u64))
    }

    /// Remembers `stream` as kicked (a well-formed id only; the set is bounded
    /// and expires with the room's TTL after the last kick, so it outlives
    /// the stream's token with the default `--room-ttl`) and publishes the
    /// kick on the room's feed, in one transaction.
    pub async fn kick(&self, room_id: &str, stream: &str) -> Result<(), Unavailable> {
        let mut conn = self.commands.clone();
        let message = FeedMessage::Kick {
            stream: stream.to_owned(),
        };
        let message = serde_json::to_string(&message).map_err(|_| Unavailable)?;
        let key = keys::kicked(room_id);
        let mut pipe = redis::pipe();
        pipe.atomic();
        if is_stream_id(stream) {
            pipe.zadd(&key, stream, self.now_ms())
                .ignore()
                .cmd("ZREMRANGEBYRANK")
                .arg(&key)
                .arg(0)
                .arg(-(MAX_KICKED as i64) - 1)
                .ignore()
                .pexpire(&key, self.ttl_ms() as i64)
                .ignore();
        }
        pipe.cmd(self.layout.publish())
            .arg(keys::feed(room_id))
            .arg(message)
            .ignore();
        self.bounded(async { pipe.query_async::<()>(&mut conn).await.map_err(unavailable) })
            .await
    }

    /// Tells every other node serving the room who listens here with a name
    /// (they forget it [`NODE_COUNT_TTL`] later unless told again).
    pub async fn share_members(
        &self,
        room_id: &str,
        members: Vec<Member>,
    ) -> Result<(), Unavailable> {
        let mut conn = self.commands.clone();
        let message = FeedMessage::Members {
            node: self.node_id.clone(),
            members,
            expires_at: self.now_ms() + NODE_COUNT_TTL.as_millis() as i64,
        };
        let message = serde_json::to_string(&message).map_err(|_| Unavailable)?;
        self.bounded(async {
            redis::cmd(self.layout.publish())
                .arg(keys::feed(room_id))
                .arg(message)
                .query_async::<()>(&mut conn)
                .await
                .map_err(unavailable)
        })
        .await
    }

    /// Whether `stream` was kicked from the room.
    pub async fn kicked(&self, room_id: &str, stream: &str) -> Result<bool, Unavailable> {
        let mut conn = self.commands.clone();
        let score: Option<f64> = self
            .bounded(async {
                redis::cmd("ZSCORE")
                    .arg(keys::kicked(room_id))
                    .arg(stream)
                    .query_async(&mut conn)
                    .await
                    .map_err(unavailable)
            })
            .await?;
        Ok(score.is_some())
    }

    /// The busiest public shared rooms first, at most [`LISTING_LIMIT`]: the
    /// busiest of each listing bucket, each checked against its room (a room
    /// gone is taken out of the listing).
    pub async fn list(&self) -> Result<Vec<RoomSummary>, Unavailable> {
        let reads = self.layout.public_keys().into_iter().map(|key| {
            let mut conn = self.commands.clone();
            async move {
                self.bounded(async {
                    conn.zrevrange_withscores::<_, Vec<(String, f64)>>(
                        &key,
                        0,
                        LISTING_LIMIT as isize * 2,
                    )
                    .await
                    .map_err(unavailable)
                })
                .await
            }
        });
        let mut listed: Vec<(String, f64)> = futures_util::future::try_join_all(reads)
            .await?
            .into_iter()
            .flatten()
            .collect();
        listed.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        listed.truncate(LISTING_LIMIT * 2 + 1);
        let rooms = listed.into_iter().map(|(id, score)| {
            let mut conn = self.commands.clone();
            async move {
                let json: Option<String> = self
                    .bounded(async {
                        conn.hget(keys::room(&id), "json")
                            .await
                            .map_err(unavailable)
                    })
                    .await?;
                if json.is_none() {
                    self.list_room(&id, false, 0).await;
                }
                Ok::<_, Unavailable>(json.and_then(|json| summary(&json, score)))
            }
        });
        let mut rooms: Vec<RoomSummary> = futures_util::future::try_join_all(rooms)
            .await?
            .into_iter()
            .flatten()
            .collect();
        busiest_first(&mut rooms);
        Ok(rooms)
    }
}

/// A listed room's summary, unless it is not public (any more).
fn summary(json: &str, listeners: f64) -> Option<RoomSummary> {
    let room: Room = serde_json::from_str(json).ok()?;
    if room.visibility != Visibility::Public {
        return None;
    }
    Some(RoomSummary {
        listeners: listeners.max(0.0) as u64,
        room_id: room.room_id,
        name: room.name,
        source: room.state.source,
    })
}

/// The port, as Redis keeps it: every call is the inherent method of the same name.
impl SharedRooms for RedisBackplane {
    fn now_ms(&self) -> i64 {
        RedisBackplane::now_ms(self)
    }

    fn ready(&self) -> PortFuture<'_, bool> {
        Box::pin(RedisBackplane::ready(self))
    }

    fn shard_health(&self) -> Vec<(String, bool)> {
        RedisBackplane::shard_health(self)
    }

    fn create<'a>(
        &'a self,
        room: &'a Room,
        limits: CreateLimits,
    ) -> PortFuture<'a, Result<CreateOutcome, Unavailable>> {
        Box::pin(RedisBackplane::create(self, room, limits))
    }

    fn exists<'a>(&'a self, room_id: &'a str) -> PortFuture<'a, Result<bool, Unavailable>> {
        Box::pin(RedisBackplane::exists(self, room_id))
    }

    fn route(&self, room_id: &str, route: FeedRoute) {
        RedisBackplane::route(self, room_id, route);
    }

    fn unroute(self: Arc<Self>, room_id: &str, generation: u64) {
        RedisBackplane::unroute(&self, room_id, generation);
    }

    fn open<'a>(&'a self, room_id: &'a str) -> PortFuture<'a, Result<Option<Opened>, Unavailable>> {
        Box::pin(RedisBackplane::open(self, room_id))
    }

    fn commit<'a>(
        &'a self,
        room_id: &'a str,
        change: &'a mut Change<'_>,
    ) -> PortFuture<'a, Result<Committed, RoomError>> {
        Box::pin(RedisBackplane::commit(self, room_id, change))
    }

    fn catch_up<'a>(
        &'a self,
        room_id: &'a str,
        after: u64,
    ) -> PortFuture<'a, Result<CatchUp, Unavailable>> {
        Box::pin(RedisBackplane::catch_up(self, room_id, after))
    }

    fn report_listeners<'a>(
        &'a self,
        room_id: &'a str,
        count: usize,
        gate_count: usize,
    ) -> PortFuture<'a, Result<u64, Unavailable>> {
        Box::pin(RedisBackplane::report_listeners(
            self, room_id, count, gate_count,
        ))
    }

    fn report_ready<'a>(
        &'a self,
        room_id: &'a str,
        ready_gate: u64,
        change: ReadyChange,
    ) -> PortFuture<'a, Result<(bool, u64, u64), Unavailable>> {
        Box::pin(RedisBackplane::report_ready(
            self, room_id, ready_gate, change,
        ))
    }

    fn list(&self) -> PortFuture<'_, Result<Vec<RoomSummary>, Unavailable>> {
        Box::pin(RedisBackplane::list(self))
    }

    fn sync<'a>(
        &'a self,
        room_id: &'a str,
        change: SyncChange,
    ) -> PortFuture<'a, Result<SyncTaken, RoomError>> {
        Box::pin(RedisBackplane::sync(self, room_id, change))
    }

    fn stream_key(&self) -> [u8; 32] {
        self.stream_key
    }

    fn vote<'a>(
        &'a self,
        room_id: &'a str,
        item: u64,
        change: VoteChange,
    ) -> PortFuture<'a, Result<(bool, u64), Unavailable>> {
        Box::pin(RedisBackplane::vote(self, room_id, item, change))
    }

    fn kick<'a>(
        &'a self,
        room_id: &'a str,
        stream: &'a str,
    ) -> PortFuture<'a, Result<(), Unavailable>> {
        Box::pin(RedisBackplane::kick(self, room_id, stream))
    }

    fn kicked<'a>(
        &'a self,
        room_id: &'a str,
        stream: &'a str,
    ) -> PortFuture<'a, Result<bool, Unavailable>> {
        Box::pin(RedisBackplane::kicked(self, room_id, stream))
    }

    fn share_members<'a>(
        &'a self,
        room_id: &'a str,
        members: Vec<Member>,
    ) -> PortFuture<'a, Result<(), Unavailable>> {
        Box::pin(RedisBackplane::share_members(self, room_id, members))
    }
}

/// The cluster's stream-token key: the one already in Redis, or a new random
/// one that this node sets (`SET NX GET`: one round trip, and two nodes
/// starting together still agree). A value that is not 64 hex digits (written
/// by something else) is replaced.
async fn agree_on_stream_key(mut conn: Conn) -> redis::RedisResult<[u8; 32]> {
    let candidate: [u8; 32] = rand::random();
    let candidate_hex = hex::encode(candidate);
    let existing: Option<String> = redis::cmd("SET")
        .arg(keys::STREAM_KEY)
        .arg(&candidate_hex)
        .arg("NX")
        .arg("GET")
        .query_async(&mut conn)
        .await?;
    let Some(existing) = existing else {
        return Ok(candidate);
    };
    let mut key = [0u8; 32];
    if hex::decode_to_slice(&existing, &mut key).is_ok() {
        return Ok(key);
    }
    tracing::warn!(
        key = keys::STREAM_KEY,
        "replacing a malformed stream-token key"
    );
    redis::cmd("SET")
        .arg(keys::STREAM_KEY)
        .arg(&candidate_hex)
        .query_async::<()>(&mut conn)
        .await?;
    Ok(candidate)
}

/// What a commit may change that the sets spanning rooms follow.
#[derive(Clone, Copy)]
struct Standing {
    public: bool,
    persistent: bool,
}

impl Standing {
    fn of(room: &Room) -> Self {
        Self {
            public: room.visibility == Visibility::Public,
            persistent: room.persistent,
        }
    }
}

/// A yes/no argument of the Lua scripts.
fn flag(yes: bool) -> &'static str {
    if yes {
        "1"
    } else {
        "0"
    }
}

/// Puts the room's kept chat messages (as the list holds them, oldest first)
/// into a room just read; an unreadable entry is skipped.
fn keep_chat(room: &mut Room, list: &[String]) {
    room.chat = list
        .iter()
        .filter_map(|entry| serde_json::from_str::<ChatMessage>(entry).ok())
        .collect();
    let limit = room.chat_history;
    room.keep_chat(limit);
}

/// The events of a stream range, in the range's order, each with the id of
/// its commit (when its node wrote one). An entry that cannot be read is
/// logged and skipped (the version gap it leaves is then caught).
fn parse_events(room_id: &str, range: StreamRangeReply) -> Vec<(Event, Origin)> {
    range
        .ids
        .iter()
        .filter_map(|entry| {
            let payload: Vec<u8> = entry.get("e")?;
            match serde_json::from_slice::<FeedMessage>(&payload) {
                Ok(FeedMessage::Event(stamped)) => Some(stamped.into_event()),
                Ok(
                    FeedMessage::Presence { .. }
                    | FeedMessage::Sync(_)
                    | FeedMessage::Gate { .. }
                    | FeedMessage::Votes { .. }
                    | FeedMessage::Kick { .. }
                    | FeedMessage::Members { .. }
                    | FeedMessage::Lost { .. },
                ) => None,
                Err(error) => {
                    tracing::warn!(%room_id, id = %entry.id, %error, "unreadable history entry");
                    None
                }
            }
        })
        .collect()
}

/// The versions a room's history lost, as its hash records them (nothing, if
/// unreadable: that is logged).
fn parse_lost(room_id: &str, recorded: Option<&str>) -> LostVersions {
    let Some(recorded) = recorded.filter(|r| !r.is_empty()) else {
        return LostVersions::default();
    };
    match serde_json::from_str::<Vec<(u64, u64)>>(recorded) {
        Ok(ranges) => LostVersions::from_ranges(&ranges),
        Err(error) => {
            tracing::warn!(%room_id, %error, "unreadable lost versions in redis");
            LostVersions::default()
        }
    }
}

/// The tests' one Redis fixture, shared with the integration tests.
#[cfg(test)]
#[path = "../../tests/common/redis.rs"]
pub(crate) mod test_redis;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actor::RoomSettings;
    use crate::registry::{CreateRoom, Registry};
    use crate::room::command::CommandRequest;
    use crate::room::event::SharedFrame;
    use crate::room::{Command, SystemClock};
    use crate::telemetry::Metrics;

    use super::test_redis as fixture;

    const SYNC_RULES: SyncRules = SyncRules {
        interval: Duration::from_secs(5),
        max_reports: 100,
    };

    /// One node's registry on `url`, keeping `history` events.
    async fn node(url: &str, history: usize) -> (Registry, Arc<RedisBackplane>) {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let backplane = RedisBackplane::connect(
            RedisSettings {
                url: url.to_owned(),
                timeout: Duration::from_secs(5),
                history,
                history_bytes: 1 << 20,
                ttl: Duration::from_secs(3600),
                max_queue: 10,
                chat_history: 5,
                sync: SYNC_RULES,
                max_persistent_rooms: 100,
            },
            clock.clone(),
        )
        .await
        .expect("connect");
        let settings = RoomSettings {
            history,
            listener_buffer: 64,
            keepalive: Duration::from_secs(15),
            fanout_threads: 2,
            ttl: Duration::from_secs(3600),
            chat_history: 5,
            history_bytes: 1 << 20,
            sync: SYNC_RULES,
            starts: crate::room::StartPolicy::default(),
        };
        let registry = Registry::new(settings, 10, 100, clock, Arc::new(Metrics::new()), None)
            .with_backplane(backplane.clone() as Arc<dyn SharedRooms>);
        (registry, backplane)
    }

    /// Commits `n` seeks straight to Redis while the mirror on `registry` hears
    /// nothing (its route is gone, as after a lost connection), then lets it
    /// notice; gives the frames its listener gets, up to `version`.
    async fn miss_then_catch_up(history: usize, n: usize) -> Vec<String> {
        let redis = fixture::Redis::start().await;
        let (registry, backplane) = node(&redis.url(), history).await;
        let created = registry
            .create(CreateRoom::default(), std::net::Ipv4Addr::LOCALHOST.into())
            .await
            .expect("create");
        let handle = registry
            .get(&created.room_id)
            .await
            .expect("redis up")
            .expect("room exists");
        let subscription = handle.subscribe(None).await.expect("subscribe");
        let route = backplane
            .routes
            .remove(created.room_id.as_str())
            .expect("the mirror is routed")
            .1;
        for i in 0..n {
            backplane
                .commit(&created.room_id, &mut |room, now| {
                    room.apply(
                        Command::Seek {
                            position: i as f64 + 1.0,
                        },
                        &crate::room::Inputs::at(now),
                    )
                })
                .await
                .expect("commit");
        }
        let alarm = route.alarm.clone();
        backplane
            .routes
            .insert(Arc::from(created.room_id.as_str()), route);
        alarm.raise();
        let target = 1 + n as u64;
        let mut frames = Vec::new();
        loop {
            let frame =
                tokio::time::timeout(Duration::from_secs(10), subscription.sink.next_frame())
                    .await
                    .expect("the mirror caught up in time")
                    .expect("frame");
            let Some(version) = frame.version else {
                continue;
            };
            frames.push(label(&frame));
            if version >= target {
                break;
            }
        }
        // And the room answers at its new version, with what was committed.
        let view = handle.view().await.expect("view");
        assert_eq!(view.version, target);
        assert_eq!(view.state.position, n as f64);
        // Commands still go through (the mirror is in step).
        let reply = handle
            .command(
                CommandRequest {
                    command: Command::Seek { position: 100.0 },
                    expected_version: Some(target),
                },
                Some(crate::actor::handle::HostToken(created.host_token.clone())),
                std::time::Instant::now(),
            )
            .await
            .expect("command");
        assert_eq!(reply.version, target + 1);
        frames
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_mirror_that_missed_events_replays_them_from_the_shared_history() {
        let frames = miss_then_catch_up(16, 5).await;
        assert_eq!(
            frames,
            ["state:2", "state:3", "state:4", "state:5", "state:6"]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_mirror_behind_the_shared_history_resyncs_its_listeners_with_a_snapshot() {
        let frames = miss_then_catch_up(2, 5).await;
        assert_eq!(frames, ["snapshot:6"]);
    }

    /// A frame as `event:version` (0 for a frame without one).
    fn label(frame: &SharedFrame) -> String {
        let text = String::from_utf8_lossy(&frame.bytes);
        let name = text
            .lines()
            .find_map(|l| l.strip_prefix("event: "))
            .unwrap_or_default();
        format!("{name}:{}", frame.version.unwrap_or_default())
    }

    /// Each start frame of `subscription` as `event:version`.
    fn start_of(subscription: &crate::actor::Subscription) -> Vec<String> {
        subscription.start.iter().map(label).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lost_versions_recorded_by_nodes_at_once_are_all_kept_and_resumes_from_them_get_a_snapshot(
    ) {
        let redis = fixture::Redis::start().await;
        let (registry, one) = node(&redis.url(), 100).await;
        let (_, other) = node(&redis.url(), 100).await;
        let created = registry
            .create(CreateRoom::default(), std::net::Ipv4Addr::LOCALHOST.into())
            .await
            .expect("create");
        let id = created.room_id.as_str();
        let handle = registry
            .get(id)
            .await
            .expect("redis up")
            .expect("room exists");
        // Versions 1 to 5 (the room was created at 0).
        for i in 0..5 {
            one.commit(id, &mut |room, now| {
                room.apply(
                    Command::Seek { position: i as f64 },
                    &crate::room::Inputs::at(now),
                )
            })
            .await
            .expect("commit");
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let version = handle.view().await.expect("view").version;
            if version >= 5 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the mirror is at {version}, not 5"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Two nodes that delivered different lost versions record them at once.
        let (a, b) = tokio::join!(
            one.record_lost(id, (2, 3), 5, None),
            other.record_lost(id, (5, 5), 5, None)
        );
        a.expect("recorded");
        b.expect("recorded");
        let mut conn = one.commands.clone();
        let recorded: Option<String> = conn.hget(keys::room(id), "lost").await.expect("hget");
        let lost = parse_lost(id, recorded.as_deref());
        assert_eq!(lost.ranges(), &[(2, 3), (5, 5)]);
        // The mirror serving the room hears it on the feed: a resume from a
        // lost version gets a snapshot, any other is replayed as before.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let resumed = handle.subscribe(Some(3)).await.expect("subscribe");
            if start_of(&resumed) == ["snapshot:5"] {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{:?}",
                start_of(&resumed)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for (seen, start) in [
            (1, vec!["state:2", "state:3", "state:4", "state:5"]),
            (2, vec!["snapshot:5"]),
            (4, vec!["state:5"]),
            (5, vec!["snapshot:5"]),
        ] {
            let resumed = handle.subscribe(Some(seen)).await.expect("subscribe");
            assert_eq!(start_of(&resumed), start, "resumed at {seen}");
        }
        // What the history window left behind goes at the next record.
        let lost = one
            .record_lost(id, (150, 151), 200, recorded)
            .await
            .expect("recorded");
        assert_eq!(lost.ranges(), &[(150, 151)]);
        // A room that is gone records nothing (no hash is left behind).
        one.record_lost("gone", (1, 1), 1, None)
            .await
            .expect("answered");
        let left: bool = conn.exists(keys::room("gone")).await.expect("exists");
        assert!(!left);
    }

    #[test]
    fn feed_channels_name_their_room_and_nothing_else() {
        assert_eq!(keys::room_of_feed(&keys::feed("abc-1")), Some("abc-1"));
        assert_eq!(keys::room_of_feed("syncroom:{abc}:room"), None);
        assert_eq!(keys::room_of_feed("other"), None);
    }

    #[test]
    fn the_presence_message_written_by_lua_is_read_back() {
        let message: FeedMessage =
            serde_json::from_str(r#"{"presence":{"listeners":12,"server_time":1763800000000}}"#)
                .unwrap();
        assert!(matches!(
            message,
            FeedMessage::Presence {
                listeners: 12,
                gate_listeners: 0,
                server_time: 1_763_800_000_000
            }
        ));
    }
}
