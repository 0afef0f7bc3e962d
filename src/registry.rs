//! Room id → [`RoomHandle`]: creation, lookup, listing.
//!
//! A `DashMap` so lookups from many connections never queue behind one lock. The
//! fan-out path never touches it: a listener holds its room's broadcast receiver
//! directly. A room leaves the map when its actor ends (deleted, expired), and
//! only if the entry is still that room (an id can be re-created meanwhile).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use rand::RngCore;

use crate::room::actor::{ActorContext, RoomSettings};
use crate::room::command::{
    check_text, decode_shaped, Alternatives, Empty, JsonType, Presence, Shape, CONTROL_NAMES,
    ITEM_SOURCE,
};
use crate::room::mirror::MirrorInbox;
pub use crate::room::shared::{busiest_first, RoomSummary, LISTING_LIMIT};
use crate::room::shared::{CreateOutcome, SharedRooms, Unavailable};
use crate::room::state::{Control, Room, RoomView, MAX_ROOM_NAME_CHARS};
use crate::room::{is_room_id, Clock, CommandError, RoomHandle, Source};
use crate::room::{local, mirror};
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
    #[serde(default)]
    pub video_id: Option<String>,
    /// At most one of `video_id` and `media_url`.
    #[serde(default)]
    pub media_url: Option<String>,
}

impl CreateRoom {
    /// Reads a create body: every field optional, none unknown.
    pub fn decode(body: serde_json::Value) -> Result<Self, CommandError> {
        decode_shaped(body, &CREATE_SHAPE)
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
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

/// Every room this node holds.
pub struct Registry {
    rooms: Arc<DashMap<Arc<str>, RoomHandle>>,
    next_generation: AtomicU64,
    settings: RoomSettings,
    max_queue: usize,
    max_rooms: usize,
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
            settings,
            max_queue,
            max_rooms,
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

    /// The backplane, in shared mode.
    pub fn backplane(&self) -> Option<&Arc<dyn SharedRooms>> {
        self.backplane.as_ref()
    }

    /// Validates the request and starts the room's actor (in Redis mode: stores
    /// the room there; mirrors start when a node first serves it).
    pub async fn create(&self, request: CreateRoom) -> Result<Created, CreateError> {
        // A soft limit: concurrent creations may pass it by a few.
        if self.backplane.is_none() && self.rooms.len() >= self.max_rooms {
            return Err(CreateError::Full);
        }
        let room_id = match request.room_id {
            Some(id) if is_room_id(&id) => id,
            Some(_) => {
                return Err(CommandError::InvalidValue(
                    "`room_id` must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -".into(),
                )
                .into())
            }
            None => uuid::Uuid::new_v4().simple().to_string(),
        };
        let name = match &request.name {
            Some(name) => check_text("name", name, MAX_ROOM_NAME_CHARS, Empty::Allowed)?.to_owned(),
            None => String::new(),
        };
        let name = if name.is_empty() {
            room_id.clone()
        } else {
            name
        };
        let source = Source::from_fields(request.video_id, request.media_url)?;
        if let Some(source) = &source {
            source.validate()?;
        }
        let host_token = new_host_token();
        let now = self.clock.now_ms();
        let room = Room::new(
            room_id.clone(),
            name,
            request.control.unwrap_or(Control::Host),
            source,
            &host_token,
            self.max_queue,
            now,
        );
        let view = room.view(0, now);
        if let Some(backplane) = &self.backplane {
            return match backplane.create(&room, self.max_rooms).await? {
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
            };
        }
        let key: Arc<str> = Arc::from(room_id.as_str());
        match self.rooms.entry(key.clone()) {
            Entry::Occupied(_) => Err(CreateError::Exists),
            Entry::Vacant(slot) => {
                if let Some(store) = &self.store {
                    store.save(&room);
                }
                let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
                let handle = local::spawn(
                    room,
                    generation,
                    self.actor_context(key, generation),
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

    fn actor_context(&self, key: Arc<str>, generation: u64) -> ActorContext {
        let rooms = Arc::downgrade(&self.rooms);
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
                metrics.rooms.dec();
            }),
        }
    }

    /// Brings back rooms kept on disk, as they were (same version, same token).
    pub fn restore(&self, rooms: Vec<Room>) {
        for mut room in rooms {
            // The queue bound is the running server's, not the one it was kept with.
            room.max_queue = self.max_queue;
            let key: Arc<str> = Arc::from(room.room_id.as_str());
            let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
            let handle = local::spawn(
                room,
                generation,
                self.actor_context(key.clone(), generation),
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
            let context = self.actor_context(key.clone(), generation);
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

    /// The busiest rooms first, at most [`LISTING_LIMIT`]: every shared room in
    /// Redis mode, this node's rooms otherwise.
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
            .map(|entry| {
                let shared = entry.value().shared();
                RoomSummary {
                    room_id: entry.key().to_string(),
                    name: shared.name.clone(),
                    listeners: shared.listeners() as u64,
                    source: shared.source(),
                }
            })
            .collect();
        busiest_first(&mut rooms);
        rooms
    }

    pub fn len(&self) -> usize {
        self.rooms.len()
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
fn new_host_token() -> String {
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
