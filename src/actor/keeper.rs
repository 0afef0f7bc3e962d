//! Where a node's rooms are kept: in this process ([`KeptHere`], with the
//! `--data-dir` store as an option), or in a store shared between nodes
//! ([`KeptShared`], through the port [`SharedRooms`]), where this node serves
//! mirrors of them. The registry is given one [`Keeper`] and never asks which.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

use super::mirror::MirrorInbox;
use super::port::{
    busiest_first, CreateLimits, CreateOutcome, PortFuture, RoomSummary, SharedRooms, Unavailable,
};
use super::{local, mirror, ActorContext, RoomHandle, RoomSettings};
use crate::room::state::{Room, Visibility};
use crate::room::{is_room_id, Clock};
use crate::store::RoomStore;
use crate::telemetry::Metrics;

/// This node's rooms: their handles, and what starting an actor takes.
pub struct Node {
    pub(crate) rooms: Arc<DashMap<Arc<str>, RoomHandle>>,
    next_generation: AtomicU64,
    pub(crate) settings: Arc<RoomSettings>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) metrics: Arc<Metrics>,
    /// Persistent rooms kept here (`--max-persistent-rooms`).
    pub(crate) persistent: Arc<super::PersistentSlots>,
}

impl Node {
    pub fn new(settings: RoomSettings, clock: Arc<dyn Clock>, metrics: Arc<Metrics>) -> Self {
        Self {
            rooms: Arc::new(DashMap::new()),
            next_generation: AtomicU64::new(1),
            settings: Arc::new(settings),
            clock,
            metrics,
            persistent: Arc::default(),
        }
    }

    /// Tells an actor from an earlier one of the same room id.
    fn next_generation(&self) -> u64 {
        self.next_generation.fetch_add(1, Ordering::Relaxed)
    }

    /// The context of the actor `generation` of room `key`. When it ends, the
    /// room leaves `rooms` (if the entry is still that actor), then `undo` runs:
    /// what its keeper holds for it.
    fn context(
        &self,
        key: Arc<str>,
        generation: u64,
        undo: Box<dyn FnOnce() + Send>,
    ) -> ActorContext {
        let rooms = Arc::downgrade(&self.rooms);
        let metrics = self.metrics.clone();
        ActorContext {
            settings: self.settings.clone(),
            clock: self.clock.clone(),
            metrics: self.metrics.clone(),
            on_exit: Box::new(move || {
                if let Some(rooms) = rooms.upgrade() {
                    rooms.remove_if(&key, |_, handle| handle.generation() == generation);
                }
                undo();
                metrics.rooms.dec();
            }),
            persistent: self.persistent.clone(),
        }
    }

    /// Puts a started actor's handle in `rooms`.
    fn insert(&self, key: Arc<str>, handle: RoomHandle) {
        self.rooms.insert(key, handle);
        self.metrics.rooms.inc();
    }
}

/// Where a node's rooms are kept. Every call that reaches a shared store is
/// bounded in time by it and answers [`Unavailable`] past it, with nothing changed.
pub trait Keeper: Send + Sync + 'static {
    /// Whether the store answers now (`/readyz`).
    fn ready(&self) -> PortFuture<'_, bool>;

    /// Stores a new room unless its id is taken or a limit is reached (a room
    /// kept here starts its actor at once).
    fn create<'a>(
        &'a self,
        node: &'a Node,
        room: Room,
        limits: CreateLimits,
    ) -> PortFuture<'a, Result<CreateOutcome, Unavailable>>;

    /// A room this node has no actor for: found in the store, it gets one.
    fn open<'a>(
        &'a self,
        node: &'a Node,
        room_id: &'a str,
    ) -> PortFuture<'a, Result<Option<RoomHandle>, Unavailable>>;

    /// The busiest public rooms first, at most `LISTING_LIMIT`.
    fn list<'a>(&'a self, node: &'a Node) -> PortFuture<'a, Result<Vec<RoomSummary>, Unavailable>>;

    /// Brings back rooms read from the `--data-dir` store, as they were.
    fn restore(&self, node: &Node, rooms: Vec<Room>);
}

/// Rooms kept by this process: each one's actor is the room.
pub struct KeptHere {
    store: Option<Arc<RoomStore>>,
    /// Rooms held per creating address (`--max-rooms-per-client`). Entries
    /// leave at zero.
    held: Arc<DashMap<IpAddr, usize>>,
}

impl KeptHere {
    /// `store`: where rooms are kept across restarts (`--data-dir`), if anywhere.
    pub fn new(store: Option<Arc<RoomStore>>) -> Self {
        Self {
            store,
            held: Arc::new(DashMap::new()),
        }
    }

    /// Starts the actor of `room` and puts it in `node`.
    fn start(&self, node: &Node, key: Arc<str>, room: Room) -> RoomHandle {
        let generation = node.next_generation();
        let creator = room.creator;
        let held = Arc::downgrade(&self.held);
        let undo = Box::new(move || {
            if let (Some(creator), Some(held)) = (creator, held.upgrade()) {
                if let Some(mut count) = held.get_mut(&creator) {
                    *count = count.saturating_sub(1);
                }
                held.remove_if(&creator, |_, count| *count == 0);
            }
        });
        let context = node.context(key, generation, undo);
        local::spawn(room, generation, context, self.store.clone())
    }

    /// Counts a room for `creator`, unless it holds `max` already. Called while
    /// the map's shard is held, so two creations from one address cannot both
    /// take its last place.
    fn hold(&self, creator: IpAddr, max: usize) -> bool {
        let mut held = self.held.entry(creator).or_insert(0);
        if *held >= max {
            drop(held);
            self.held.remove_if(&creator, |_, n| *n == 0);
            return false;
        }
        *held += 1;
        true
    }
}

impl Keeper for KeptHere {
    fn ready(&self) -> PortFuture<'_, bool> {
        Box::pin(async { true })
    }

    fn create<'a>(
        &'a self,
        node: &'a Node,
        room: Room,
        limits: CreateLimits,
    ) -> PortFuture<'a, Result<CreateOutcome, Unavailable>> {
        Box::pin(async move {
            // A soft limit: concurrent creations may pass it by a few.
            if node.rooms.len() >= limits.max_rooms {
                return Ok(CreateOutcome::Full);
            }
            let key: Arc<str> = Arc::from(room.room_id.as_str());
            let Entry::Vacant(slot) = node.rooms.entry(key.clone()) else {
                return Ok(CreateOutcome::Exists);
            };
            if room.persistent && !node.persistent.take() {
                return Ok(CreateOutcome::TooManyPersistent);
            }
            if let Some(creator) = room.creator {
                if !self.hold(creator, limits.max_rooms_per_client) {
                    if room.persistent {
                        node.persistent.release();
                    }
                    return Ok(CreateOutcome::TooManyForClient);
                }
            }
            if let Some(store) = &self.store {
                store.save(&room);
            }
            let handle = self.start(node, key, room);
            slot.insert(handle);
            node.metrics.rooms.inc();
            Ok(CreateOutcome::Created)
        })
    }

    fn open<'a>(
        &'a self,
        _node: &'a Node,
        _room_id: &'a str,
    ) -> PortFuture<'a, Result<Option<RoomHandle>, Unavailable>> {
        // Every room kept here has its actor in `rooms` for as long as it exists.
        Box::pin(async { Ok(None) })
    }

    fn list<'a>(&'a self, node: &'a Node) -> PortFuture<'a, Result<Vec<RoomSummary>, Unavailable>> {
        let mut rooms: Vec<RoomSummary> = node
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
        Box::pin(async move { Ok(rooms) })
    }

    fn restore(&self, node: &Node, rooms: Vec<Room>) {
        for room in rooms {
            let key: Arc<str> = Arc::from(room.room_id.as_str());
            if let Some(creator) = room.creator {
                *self.held.entry(creator).or_insert(0) += 1;
            }
            if room.persistent {
                node.persistent.force_take();
            }
            let handle = self.start(node, key.clone(), room);
            node.insert(key, handle);
        }
    }
}

/// Rooms kept in a store shared between nodes: `rooms` holds this node's mirrors.
pub struct KeptShared {
    shared: Arc<dyn SharedRooms>,
    /// One opener per room id at a time, so a room gets one mirror.
    opening: DashMap<Arc<str>, Arc<tokio::sync::Mutex<()>>>,
}

impl KeptShared {
    pub fn new(shared: Arc<dyn SharedRooms>) -> Self {
        Self {
            shared,
            opening: DashMap::new(),
        }
    }

    async fn open_mirror(
        &self,
        node: &Node,
        room_id: &str,
    ) -> Result<Option<RoomHandle>, Unavailable> {
        let key: Arc<str> = Arc::from(room_id);
        let lock = self.opening.entry(key.clone()).or_default().clone();
        let opened = async {
            let _one_opener = lock.lock().await;
            if let Some(entry) = node.rooms.get(room_id) {
                return Ok(Some(entry.value().clone()));
            }
            let generation = node.next_generation();
            let inbox = MirrorInbox::default();
            // Route first: whatever is published from now on reaches the inbox.
            self.shared.route(room_id, inbox.route(generation));
            let opened = match self.shared.open(room_id).await {
                Ok(Some(opened)) => opened,
                other => {
                    self.shared.clone().unroute(room_id, generation);
                    return other.map(|_| None);
                }
            };
            let shared = self.shared.clone();
            let unrouted = key.clone();
            let undo = Box::new(move || shared.unroute(&unrouted, generation));
            let context = node.context(key.clone(), generation, undo);
            let handle = mirror::spawn(opened, generation, context, self.shared.clone(), inbox);
            node.insert(key.clone(), handle.clone());
            Ok(Some(handle))
        }
        .await;
        // Later openers find the room in `rooms`; the lock only had to span this one.
        self.opening
            .remove_if(&key, |_, held| Arc::ptr_eq(held, &lock));
        opened
    }
}

impl Keeper for KeptShared {
    fn ready(&self) -> PortFuture<'_, bool> {
        self.shared.ready()
    }

    fn create<'a>(
        &'a self,
        _node: &'a Node,
        room: Room,
        limits: CreateLimits,
    ) -> PortFuture<'a, Result<CreateOutcome, Unavailable>> {
        // Mirrors start when a node first serves the room.
        Box::pin(async move { self.shared.create(&room, limits).await })
    }

    fn open<'a>(
        &'a self,
        node: &'a Node,
        room_id: &'a str,
    ) -> PortFuture<'a, Result<Option<RoomHandle>, Unavailable>> {
        Box::pin(async move {
            if !is_room_id(room_id) || !self.shared.exists(room_id).await? {
                return Ok(None);
            }
            self.open_mirror(node, room_id).await
        })
    }

    fn list<'a>(
        &'a self,
        _node: &'a Node,
    ) -> PortFuture<'a, Result<Vec<RoomSummary>, Unavailable>> {
        self.shared.list()
    }

    fn restore(&self, _node: &Node, rooms: Vec<Room>) {
        // `--data-dir` and `--redis` exclude each other: nothing to bring back.
        debug_assert!(rooms.is_empty());
    }
}
