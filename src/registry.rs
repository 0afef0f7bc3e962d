//! Room id → [`RoomHandle`]: creation, lookup, listing.
//!
//! A `DashMap` so lookups from many connections never queue behind one lock. The
//! fan-out path never touches it: a listener's sink is held by its room's actor
//! directly. A room leaves the map when its actor ends (deleted, expired), and
//! only if the entry is still that room (an id can be re-created meanwhile).
//! Where rooms are kept (here, or shared between nodes) is the [`Keeper`] the
//! registry is given; it never asks which.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::RngCore;

use crate::actor::keeper::{Keeper, KeptHere, KeptShared, Node};
pub use crate::actor::port::{busiest_first, RoomSummary, LISTING_LIMIT};
use crate::actor::port::{CreateLimits, CreateOutcome, SharedRooms, Unavailable};
use crate::actor::{RoomHandle, RoomSettings};
use crate::room::command::{
    check_text, decode_shaped, Alternatives, Empty, JsonType, Presence, Shape, CONTROL_NAMES,
    ITEM_SOURCE, VISIBILITY_NAMES,
};
use crate::room::state::{Control, Room, RoomView, Visibility, MAX_ROOM_NAME_CHARS};
use crate::room::{is_room_id, Clock, CommandError, Source};
use crate::store::RoomStore;
use crate::telemetry::Metrics;

/// The fields of a create body (`POST /api/rooms`), checked before serde reads it.
pub const CREATE_SHAPE: Shape = Shape {
    name: "a room",
    fields: &[
        ("room_id", JsonType::String, Presence::Optional),
        ("name", JsonType::String, Presence::Optional),
        (
            "control",
            JsonType::OneOf(CONTROL_NAMES),
            Presence::Optional,
        ),
        (
            "visibility",
            JsonType::OneOf(VISIBILITY_NAMES),
            Presence::Optional,
        ),
        ("video_id", JsonType::String, Presence::Optional),
        ("media_url", JsonType::String, Presence::Optional),
        ("persistent", JsonType::Boolean, Presence::Optional),
    ],
    alternatives: Some(Alternatives {
        fields: ITEM_SOURCE.fields,
        presence: Presence::Optional,
        refuses: &[],
    }),
};

/// What a client asks for when creating a room; every field optional.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct CreateRoom {
    #[serde(default)]
    pub room_id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub control: Option<Control>,
    /// `unlisted` unless asked.
    #[serde(default)]
    pub visibility: Option<Visibility>,
    #[serde(default)]
    pub video_id: Option<String>,
    /// At most one of `video_id` and `media_url`.
    #[serde(default)]
    pub media_url: Option<String>,
    /// Exempt from `--room-ttl`; not unless asked.
    #[serde(default)]
    pub persistent: Option<bool>,
}

impl CreateRoom {
    /// Reads a create body: every field optional, none unknown, every value in
    /// range (so a bad body is refused before it counts against any budget).
    pub fn decode(body: serde_json::Value) -> Result<Self, CommandError> {
        let request: Self = decode_shaped(body, &CREATE_SHAPE)?;
        request.checked_id()?;
        request.checked_name()?;
        request.checked_source()?;
        Ok(request)
    }

    /// The room id asked for, if any, checked.
    fn checked_id(&self) -> Result<Option<&str>, CommandError> {
        match &self.room_id {
            Some(id) if is_room_id(id) => Ok(Some(id)),
            Some(_) => Err(CommandError::InvalidValue(
                "`room_id` must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -".into(),
            )),
            None => Ok(None),
        }
    }

    /// The name asked for, trimmed (empty when none).
    fn checked_name(&self) -> Result<String, CommandError> {
        match &self.name {
            Some(name) => {
                Ok(check_text("name", name, MAX_ROOM_NAME_CHARS, Empty::Allowed)?.to_owned())
            }
            None => Ok(String::new()),
        }
    }

    /// What the room starts with, if anything, checked.
    fn checked_source(&self) -> Result<Option<Source>, CommandError> {
        let source = Source::from_fields(self.video_id.clone(), self.media_url.clone())?;
        if let Some(source) = &source {
            source.validate()?;
        }
        Ok(source)
    }
}

/// A created room: its id, its host token (shown once) and its first snapshot.
#[derive(Debug)]
pub struct Created {
    pub room_id: String,
    pub host_token: String,
    pub room: RoomView,
}

/// Why a room was not created. Nothing was created in any case.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CreateError {
    /// The request breaks a rule (a field's shape or value).
    #[error(transparent)]
    Invalid(#[from] CommandError),
    #[error("a room with this id exists already")]
    Exists,
    #[error("this server holds as many rooms as it may; try again later")]
    Full,
    /// The creating address holds `--max-rooms-per-client` rooms already.
    #[error("this address holds as many rooms as it may; close one or try again later")]
    TooManyForClient,
    /// `--max-persistent-rooms` rooms are persistent already.
    #[error(transparent)]
    TooManyPersistent(CommandError),
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

/// Every room this node holds.
pub struct Registry {
    node: Node,
    /// Where the rooms are kept: given once, never asked which.
    keeper: Arc<dyn Keeper>,
    max_queue: usize,
    max_rooms: usize,
    /// Rooms one client address may hold (`--max-rooms-per-client`).
    max_rooms_per_client: usize,
    /// Persistent rooms the node, or the cluster, may hold (`--max-persistent-rooms`).
    max_persistent_rooms: usize,
}

impl Registry {
    /// Rooms kept by this process, and in `store` (`--data-dir`) when given.
    pub fn new(
        settings: RoomSettings,
        max_queue: usize,
        max_rooms: usize,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        store: Option<Arc<RoomStore>>,
    ) -> Self {
        Self {
            node: Node::new(settings, clock, metrics),
            keeper: Arc::new(KeptHere::new(store)),
            max_queue,
            max_rooms,
            max_rooms_per_client: usize::MAX,
            max_persistent_rooms: usize::MAX,
        }
    }

    /// Shares rooms through a backplane instead of keeping them here.
    pub fn with_backplane(mut self, backplane: Arc<dyn SharedRooms>) -> Self {
        self.keeper = Arc::new(KeptShared::new(backplane));
        self
    }

    /// Caps the rooms one client address may hold (`--max-rooms-per-client`).
    pub fn with_max_rooms_per_client(mut self, max: usize) -> Self {
        self.max_rooms_per_client = max;
        self
    }

    /// Caps the persistent rooms (`--max-persistent-rooms`): on this node, or
    /// across the cluster once it has a backplane.
    pub fn with_max_persistent_rooms(mut self, max: usize) -> Self {
        self.max_persistent_rooms = max;
        self.node.persistent.set_max(max);
        self
    }

    /// Whether the rooms' store answers now (`/readyz`).
    pub async fn ready(&self) -> bool {
        self.keeper.ready().await
    }

    /// Validates the request and stores the room (a room kept here starts its
    /// actor; a shared one gets a mirror when a node first serves it).
    /// `creator` is the requesting address, which holds the room until it closes.
    pub async fn create(
        &self,
        request: CreateRoom,
        creator: IpAddr,
    ) -> Result<Created, CreateError> {
        let room_id = match request.checked_id()? {
            Some(id) => id.to_owned(),
            None => uuid::Uuid::new_v4().simple().to_string(),
        };
        let name = request.checked_name()?;
        let name = if name.is_empty() {
            room_id.clone()
        } else {
            name
        };
        let source = request.checked_source()?;
        let host_token = new_host_token();
        let now = self.node.clock.now_ms();
        let mut room = Room::new(
            room_id.clone(),
            name,
            request.control.unwrap_or(Control::Host),
            source,
            &host_token,
            self.max_queue,
            now,
        );
        room.keep_chat(self.node.settings.chat_history);
        room.visibility = request.visibility.unwrap_or_default();
        room.creator = Some(creator);
        room.persistent = request.persistent.unwrap_or(false);
        let view = room.view(0, now, self.node.settings.starts.gate);
        let limits = CreateLimits {
            max_rooms: self.max_rooms,
            max_rooms_per_client: self.max_rooms_per_client,
            max_persistent_rooms: self.max_persistent_rooms,
        };
        match self.keeper.create(&self.node, room, limits).await? {
            CreateOutcome::Created => {
                tracing::info!(%room_id, "room created");
                Ok(Created {
                    room_id,
                    host_token,
                    room: view,
                })
            }
            CreateOutcome::Exists => Err(CreateError::Exists),
            CreateOutcome::Full => Err(CreateError::Full),
            CreateOutcome::TooManyForClient => Err(CreateError::TooManyForClient),
            CreateOutcome::TooManyPersistent => Err(CreateError::TooManyPersistent(
                CommandError::TooManyPersistent,
            )),
        }
    }

    /// Brings back rooms kept on disk, as they were (same version, same token).
    pub fn restore(&self, rooms: Vec<Room>) {
        let rooms = rooms
            .into_iter()
            .map(|mut room| {
                // The queue bound is the running server's, not the one it was kept with.
                room.max_queue = self.max_queue;
                room.keep_chat(self.node.settings.chat_history);
                room
            })
            .collect();
        self.keeper.restore(&self.node, rooms);
    }

    /// The room with this id, if it is open. A shared room this node does not
    /// serve yet is looked up in the store and gets a mirror here.
    pub async fn get(&self, room_id: &str) -> Result<Option<RoomHandle>, Unavailable> {
        if let Some(entry) = self.node.rooms.get(room_id) {
            return Ok(Some(entry.value().clone()));
        }
        self.keeper.open(&self.node, room_id).await
    }

    /// The busiest public rooms first, at most [`LISTING_LIMIT`]: every public
    /// room of the store. Unlisted rooms never show.
    pub async fn list(&self) -> Result<Vec<RoomSummary>, Unavailable> {
        self.keeper.list(&self.node).await
    }

    pub fn len(&self) -> usize {
        self.node.rooms.len()
    }

    /// Wakes every sleeping room whose idle time is up, so it closes itself.
    /// Answers how many it woke.
    pub fn wake_expired(&self) -> usize {
        let now = tokio::time::Instant::now();
        // Collected first: a woken room leaves the map, which must not be
        // locked by this walk then.
        let asleep: Vec<RoomHandle> = self
            .node
            .rooms
            .iter()
            .filter(|entry| entry.value().is_asleep())
            .map(|entry| entry.value().clone())
            .collect();
        asleep
            .iter()
            .filter(|handle| handle.wake_if_expired(now))
            .count()
    }

    /// How often [`Registry::wake_expired`] should run: often enough that a
    /// room closes close to its TTL, rarely enough to cost nothing.
    pub fn expiry_sweep_interval(&self) -> Duration {
        (self.node.settings.ttl / 20).clamp(Duration::from_millis(50), Duration::from_secs(5))
    }

    pub fn is_empty(&self) -> bool {
        self.node.rooms.is_empty()
    }

    /// Forgets every room (at shutdown): dropping the last handles ends the actors
    /// once they have answered what is already in their inboxes.
    pub fn close_all(&self) {
        self.node.rooms.clear();
    }
}

/// 256 random bits from the OS-seeded CSPRNG, hex: URL-safe, shown once.
pub fn new_host_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_tokens_are_long_url_safe_and_fresh() {
        let a = new_host_token();
        let b = new_host_token();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
