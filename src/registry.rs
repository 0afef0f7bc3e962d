//! Room id → [`RoomHandle`]: creation, lookup, listing.
//!
//! A `DashMap` so lookups from many connections never queue behind one lock. The
//! fan-out path never touches it: a listener holds its room's broadcast receiver
//! directly. A room leaves the map when its actor ends (deleted, expired), and
//! only if the entry is still that room (an id can be re-created meanwhile).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use rand::RngCore;

use crate::actor::{ActorContext, RoomSettings};
use crate::room::command::{
    check_text, decode_shaped, Alternatives, Empty, JsonType, Presence, Shape, CONTROL_NAMES,
    ITEM_SOURCE, VISIBILITY_NAMES,
};
use crate::actor::mirror::MirrorInbox;
pub use crate::actor::port::{busiest_first, RoomSummary, LISTING_LIMIT};
use crate::actor::port::{CreateLimits, CreateOutcome, SharedRooms, Unavailable};
use crate::room::state::{Control, Room, RoomView, Visibility, MAX_ROOM_NAME_CHARS};
use crate::actor::RoomHandle;
use crate::room::{is_room_id, Clock, CommandError, Source};
use crate::actor::{local, mirror};
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
    ],
    alternatives: Some(Alternatives {
        fields: ITEM_SOURCE.fields,
        presence: Presence::Optional,
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
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

/// Every room this node holds.
pub struct Registry {
    rooms: Arc<DashMap<Arc<str>, RoomHandle>>,
    next_generation: AtomicU64,
    settings: Arc<RoomSettings>,
    max_queue: usize,
    max_rooms: usize,
    /// Rooms one client address may hold (`--max-rooms-per-client`).
    max_rooms_per_client: usize,
    /// Rooms held here per creating address (single-node mode; with a backplane
    /// the shared store counts them). Entries leave at zero.
    held: Arc<DashMap<IpAddr, usize>>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    store: Option<Arc<RoomStore>>,
    /// Shared mode: rooms live in the shared store; `rooms` holds this node's mirrors.
    backplane: Option<Arc<dyn SharedRooms>>,
    /// Shared mode: one opener per room id at a time, so a room gets one mirror.
    opening: DashMap<Arc<str>, Arc<tokio::sync::Mutex<()>>>,
}

impl Registry {
    pub fn new(
        settings: RoomSettings,
        max_queue: usize,
        max_rooms: usize,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        store: Option<Arc<RoomStore>>,
    ) -> Self {
        Self {
            rooms: Arc::new(DashMap::new()),
            next_generation: AtomicU64::new(1),
            settings: Arc::new(settings),
            max_queue,
            max_rooms,
            max_rooms_per_client: usize::MAX,
            held: Arc::new(DashMap::new()),
            clock,
            metrics,
            store,
            backplane: None,
            opening: DashMap::new(),
        }
    }

    /// Shares rooms through a backplane instead of keeping them here.
    pub fn with_backplane(mut self, backplane: Arc<dyn SharedRooms>) -> Self {
        self.backplane = Some(backplane);
        self
    }

    /// Caps the rooms one client address may hold (`--max-rooms-per-client`).
    pub fn with_max_rooms_per_client(mut self, max: usize) -> Self {
        self.max_rooms_per_client = max;
        self
    }

    /// The backplane, in shared mode.
    pub fn backplane(&self) -> Option<&Arc<dyn SharedRooms>> {
        self.backplane.as_ref()
    }

    /// Validates the request and starts the room's actor (in Redis mode: stores
    /// the room there; mirrors start when a node first serves it). `creator` is
    /// the requesting address, which holds the room until it closes.
    pub async fn create(
        &self,
        request: CreateRoom,
        creator: IpAddr,
    ) -> Result<Created, CreateError> {
        // A soft limit: concurrent creations may pass it by a few.
        if self.backplane.is_none() && self.rooms.len() >= self.max_rooms {
            return Err(CreateError::Full);
        }
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
        let now = self.clock.now_ms();
        let mut room = Room::new(
            room_id.clone(),
            name,
            request.control.unwrap_or(Control::Host),
            source,
            &host_token,
            self.max_queue,
            now,
        );
        room.keep_chat(self.settings.chat_history);
        room.visibility = request.visibility.unwrap_or_default();
        room.creator = Some(creator);
        let view = room.view(0, now, self.settings.starts.gate);
        if let Some(backplane) = &self.backplane {
            let limits = CreateLimits {
                max_rooms: self.max_rooms,
                max_rooms_per_client: self.max_rooms_per_client,
            };
            return match backplane.create(&room, limits).await? {
                CreateOutcome::Created => {
                    tracing::info!(%room_id, "shared room created");
                    Ok(Created {
                        room_id,
                        host_token,
                        room: view,
                    })
                }
                CreateOutcome::Exists => Err(CreateError::Exists),
                CreateOutcome::Full => Err(CreateError::Full),
                CreateOutcome::TooManyForClient => Err(CreateError::TooManyForClient),
            };
        }
        let key: Arc<str> = Arc::from(room_id.as_str());
        match self.rooms.entry(key.clone()) {
            Entry::Occupied(_) => Err(CreateError::Exists),
            Entry::Vacant(slot) => {
                // Counted while the map's shard is held, so two creations from one
                // address cannot both take its last place.
                {
                    let mut held = self.held.entry(creator).or_insert(0);
                    if *held >= self.max_rooms_per_client {
                        drop(held);
                        self.held.remove_if(&creator, |_, n| *n == 0);
                        return Err(CreateError::TooManyForClient);
                    }
                    *held += 1;
                }
                if let Some(store) = &self.store {
                    store.save(&room);
                }
                let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
                let handle = local::spawn(
                    room,
                    generation,
                    self.actor_context(key, generation, Some(creator)),
                    self.store.clone(),
                );
                slot.insert(handle);
                self.metrics.rooms.inc();
                tracing::info!(%room_id, "room created");
                Ok(Created {
                    room_id,
                    host_token,
                    room: view,
                })
            }
        }
    }

    /// `creator`: the address a room kept here counts against until it ends
    /// (`None` for a mirror: the shared store counts those).
    fn actor_context(
        &self,
        key: Arc<str>,
        generation: u64,
        creator: Option<IpAddr>,
    ) -> ActorContext {
        let rooms = Arc::downgrade(&self.rooms);
        let held = Arc::downgrade(&self.held);
        let metrics = self.metrics.clone();
        let backplane = self.backplane.clone();
        ActorContext {
            settings: self.settings.clone(),
            clock: self.clock.clone(),
            metrics: self.metrics.clone(),
            on_exit: Box::new(move || {
                if let Some(rooms) = rooms.upgrade() {
                    rooms.remove_if(&key, |_, handle| handle.generation() == generation);
                }
                if let Some(backplane) = backplane {
                    backplane.unroute(&key, generation);
                }
                if let (Some(creator), Some(held)) = (creator, held.upgrade()) {
                    if let Some(mut count) = held.get_mut(&creator) {
                        *count = count.saturating_sub(1);
                    }
                    held.remove_if(&creator, |_, count| *count == 0);
                }
                metrics.rooms.dec();
            }),
        }
    }

    /// Brings back rooms kept on disk, as they were (same version, same token).
    pub fn restore(&self, rooms: Vec<Room>) {
        for mut room in rooms {
            // The queue bound is the running server's, not the one it was kept with.
            room.max_queue = self.max_queue;
            room.keep_chat(self.settings.chat_history);
            let key: Arc<str> = Arc::from(room.room_id.as_str());
            let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
            let creator = room.creator;
            if let Some(creator) = creator {
                *self.held.entry(creator).or_insert(0) += 1;
            }
            let handle = local::spawn(
                room,
                generation,
                self.actor_context(key.clone(), generation, creator),
                self.store.clone(),
            );
            self.rooms.insert(key, handle);
            self.metrics.rooms.inc();
        }
    }

    /// The room with this id, if it is open. In Redis mode a room this node does
    /// not serve yet is looked up there and gets a mirror here.
    pub async fn get(&self, room_id: &str) -> Result<Option<RoomHandle>, Unavailable> {
        if let Some(entry) = self.rooms.get(room_id) {
            return Ok(Some(entry.value().clone()));
        }
        match &self.backplane {
            Some(backplane) if is_room_id(room_id) && backplane.exists(room_id).await? => {
                self.open_mirror(backplane, room_id).await
            }
            _ => Ok(None),
        }
    }

    async fn open_mirror(
        &self,
        backplane: &Arc<dyn SharedRooms>,
        room_id: &str,
    ) -> Result<Option<RoomHandle>, Unavailable> {
        let key: Arc<str> = Arc::from(room_id);
        let lock = self.opening.entry(key.clone()).or_default().clone();
        let opened = async {
            let _one_opener = lock.lock().await;
            if let Some(entry) = self.rooms.get(room_id) {
                return Ok(Some(entry.value().clone()));
            }
            let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
            let inbox = MirrorInbox::default();
            // Route first: whatever is published from now on reaches the inbox.
            backplane.route(room_id, inbox.route(generation));
            let opened = match backplane.open(room_id).await {
                Ok(Some(opened)) => opened,
                other => {
                    backplane.clone().unroute(room_id, generation);
                    return other.map(|_| None);
                }
            };
            let context = self.actor_context(key.clone(), generation, None);
            let handle = mirror::spawn(opened, generation, context, backplane.clone(), inbox);
            self.rooms.insert(key.clone(), handle.clone());
            self.metrics.rooms.inc();
            Ok(Some(handle))
        }
        .await;
        // Later openers find the room in `rooms`; the lock only had to span this one.
        self.opening
            .remove_if(&key, |_, held| Arc::ptr_eq(held, &lock));
        opened
    }

    /// The busiest public rooms first, at most [`LISTING_LIMIT`]: every shared
    /// public room in Redis mode, this node's otherwise. Unlisted rooms never show.
    pub async fn list(&self) -> Result<Vec<RoomSummary>, Unavailable> {
        if let Some(backplane) = &self.backplane {
            return backplane.list().await;
        }
        Ok(self.list_local())
    }

    fn list_local(&self) -> Vec<RoomSummary> {
        let mut rooms: Vec<RoomSummary> = self
            .rooms
            .iter()
            .filter(|entry| entry.value().status().visibility() == Visibility::Public)
            .map(|entry| {
                let status = entry.value().status();
                RoomSummary {
                    room_id: entry.key().to_string(),
                    name: status.name.clone(),
                    listeners: status.listeners() as u64,
                    source: status.source(),
                }
            })
            .collect();
        busiest_first(&mut rooms);
        rooms
    }

    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    /// Wakes every sleeping room whose idle time is up, so it closes itself.
    /// Answers how many it woke.
    pub fn wake_expired(&self) -> usize {
        let now = tokio::time::Instant::now();
        // Collected first: a woken room leaves the map, which must not be
        // locked by this walk then.
        let asleep: Vec<RoomHandle> = self
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
        (self.settings.ttl / 20).clamp(Duration::from_millis(50), Duration::from_secs(5))
    }

    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }

    /// Forgets every room (at shutdown): dropping the last handles ends the actors
    /// once they have answered what is already in their inboxes.
    pub fn close_all(&self) {
        self.rooms.clear();
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
