//! [`RoomHandle`]: the cheap, cloneable face of a room actor. HTTP handlers and
//! event streams talk to a room only through it: a request goes into the actor's
//! bounded inbox with a oneshot for the answer.

use crate::room::cohosts::{CohostAnswer, CohostCall};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot, Notify};

use super::port::Feed;
use crate::room::command::{Command, CommandRequest, ItemInfo};
pub use crate::room::error::RoomError;
use crate::room::event::SharedFrame;
use crate::room::gate::GateProgress;
use crate::room::source::Source;
use crate::room::state::{RoomView, Visibility};
use crate::room::sync::{DriftReport, SyncSummary};
use crate::room::votes::VoteProgress;

/// Closed streams a room remembers until its actor next looks (to forget their
/// sync reports at once); past this many, the rest simply expire.
pub const MAX_CLOSED_STREAMS_PENDING: usize = 4_096;

/// A host token on its way to the actor. Its `Debug` never shows the secret, so
/// it cannot leak into a log line by accident.
#[derive(Clone)]
pub struct HostToken(pub String);

impl fmt::Debug for HostToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HostToken(<redacted>)")
    }
}

/// What a room's inbox carries: a request, boxed. The channel allocates its
/// first block of 32 slots when made, so a slot is kept to one pointer: an idle
/// room then holds 32 pointers rather than 32 of the largest request.
pub(crate) type Boxed = Box<super::handle::Request>;

/// What the actor is asked to do. Every variant carries the oneshot its answer
/// goes back on (`respond_to`).
#[derive(Debug)]
pub(crate) enum Request {
    Command {
        request: CommandRequest,
        token: Option<HostToken>,
        arrived: Instant,
        respond_to: oneshot::Sender<Result<CommandReply, RoomError>>,
    },
    Chat {
        name: String,
        text: String,
        token: Option<HostToken>,
        respond_to: oneshot::Sender<Result<u64, RoomError>>,
    },
    /// Refused (`Unavailable`) by a mirror that has lost touch with the shared
    /// room: what it holds may be stale, and must not be served as current.
    View {
        respond_to: oneshot::Sender<Result<RoomView, RoomError>>,
    },
    /// Refused like [`Request::View`].
    Subscribe {
        last_event_id: Option<u64>,
        listener: ListenerInfo,
        respond_to: oneshot::Sender<Result<Subscription, RoomError>>,
    },
    Resync {
        respond_to: oneshot::Sender<SharedFrame>,
    },
    Delete {
        token: Option<HostToken>,
        respond_to: oneshot::Sender<Result<(), RoomError>>,
    },
    /// A page's readiness report: `stream` has `ready_gate`'s item loaded.
    Ready {
        stream: String,
        ready_gate: u64,
        respond_to: oneshot::Sender<Result<GateProgress, RoomError>>,
    },
    /// Replaces the host token with `new_token` (the current one is `token`).
    ResetHostToken {
        token: Option<HostToken>,
        new_token: HostToken,
        respond_to: oneshot::Sender<Result<u64, RoomError>>,
    },
    /// A listener's drift report, bound to its stream (by the stream token).
    SyncReport {
        stream: String,
        report: DriftReport,
        respond_to: oneshot::Sender<Result<SyncSummary, RoomError>>,
    },
    /// From the backplane: what other nodes (and this one) committed.
    Feed(Feed),
    /// The host lists, adds or revokes co-hosts.
    Cohosts {
        token: Option<HostToken>,
        call: CohostCall,
        respond_to: oneshot::Sender<Result<CohostAnswer, RoomError>>,
    },
    /// A listener's vote to skip the loaded item, bound to its stream (by the
    /// stream token).
    Vote {
        stream: String,
        respond_to: oneshot::Sender<Result<VoteProgress, RoomError>>,
    },
    /// Whether `stream` was kicked from the room (on any node).
    Kicked {
        stream: String,
        respond_to: oneshot::Sender<Result<bool, RoomError>>,
    },
}

/// Who a new listener is: its stream id (from its `hello`) and the name it
/// gave, if any. No id (tests, tools): it can be neither kicked nor listed.
#[derive(Debug, Clone, Default)]
pub struct ListenerInfo {
    pub stream: String,
    pub name: Option<String>,
}

/// The answer to a command: the room's version after it, and the room.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct CommandReply {
    pub version: u64,
    pub room: RoomView,
    /// False for a command that changed nothing (and emitted no event).
    #[serde(skip)]
    pub changed: bool,
}

/// State that readers outside the actor need without a round trip: the listing
/// (`GET /api/rooms`) reads it for every room at once.
#[derive(Debug)]
pub struct RoomStatus {
    pub name: String,
    /// Open event streams on this room (on this node).
    listeners: AtomicUsize,
    /// Those of them whose pages take part in the ready gate (`?ready_gate=1`).
    gate_listeners: AtomicUsize,
    /// Wakes the actor when `listeners` changes, for presence and expiry.
    pub(crate) listeners_changed: Notify,
    /// What is loaded, kept in step by the actor. A std mutex: held for a clone.
    source: Mutex<Option<Source>>,
    /// Listed by `GET /api/rooms`, kept in step by the actor.
    public: AtomicBool,
    /// Streams that closed since the actor last looked (their ids), so that their
    /// sync reports stop counting. A std mutex: held for a push or a swap.
    closed_streams: Mutex<Vec<String>>,
}

impl RoomStatus {
    pub(crate) fn new(name: String, source: Option<Source>, visibility: Visibility) -> Self {
        Self {
            name,
            listeners: AtomicUsize::new(0),
            gate_listeners: AtomicUsize::new(0),
            listeners_changed: Notify::new(),
            source: Mutex::new(source),
            public: AtomicBool::new(visibility == Visibility::Public),
            closed_streams: Mutex::new(Vec::new()),
        }
    }

    pub fn visibility(&self) -> Visibility {
        if self.public.load(Ordering::Acquire) {
            Visibility::Public
        } else {
            Visibility::Unlisted
        }
    }

    pub(crate) fn set_visibility(&self, visibility: Visibility) {
        self.public
            .store(visibility == Visibility::Public, Ordering::Release);
    }

    pub fn listeners(&self) -> usize {
        self.listeners.load(Ordering::Acquire)
    }

    /// Listeners here whose pages take part in the ready gate.
    pub fn gate_listeners(&self) -> usize {
        self.gate_listeners.load(Ordering::Acquire)
    }

    pub fn source(&self) -> Option<Source> {
        self.source
            .lock()
            .map(|source| source.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    pub(crate) fn set_source(&self, source: Option<Source>) {
        match self.source.lock() {
            Ok(mut slot) => *slot = source,
            Err(poisoned) => *poisoned.into_inner() = source,
        }
    }

    /// Whether streams closed that the actor has not followed yet.
    pub(crate) fn has_closed_streams(&self) -> bool {
        match self.closed_streams.lock() {
            Ok(list) => !list.is_empty(),
            Err(poisoned) => !poisoned.into_inner().is_empty(),
        }
    }

    /// The streams that closed since the last call.
    pub(crate) fn take_closed_streams(&self) -> Vec<String> {
        match self.closed_streams.lock() {
            Ok(mut list) => std::mem::take(&mut *list),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }

    fn stream_closed(&self, stream: String) {
        let mut list = self
            .closed_streams
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if list.len() < MAX_CLOSED_STREAMS_PENDING {
            list.push(stream);
        }
    }
}

/// Counts one listener for as long as it lives; dropping it (the stream ended or
/// the client went away) counts the listener out and tells the actor.
#[derive(Debug)]
pub struct ListenerGuard {
    status: Arc<RoomStatus>,
    /// The stream's id, once known: its sync report stops counting when it ends.
    stream: Option<String>,
    /// Counted among the ready gate's listeners too.
    in_gate: bool,
}

impl ListenerGuard {
    pub(crate) fn new(status: Arc<RoomStatus>) -> Self {
        status.listeners.fetch_add(1, Ordering::AcqRel);
        status.listeners_changed.notify_one();
        Self {
            status,
            stream: None,
            in_gate: false,
        }
    }

    /// Names the stream this guard counts (the id its stream token carries).
    pub fn set_stream(&mut self, stream: String) {
        self.stream = Some(stream);
    }

    /// Counts this listener among those the ready gate waits for (its page
    /// said `?ready_gate=1`), for as long as it lives.
    pub fn join_ready_gate(&mut self) {
        if !self.in_gate {
            self.in_gate = true;
            self.status.gate_listeners.fetch_add(1, Ordering::AcqRel);
            self.status.listeners_changed.notify_one();
        }
    }
}

impl Drop for ListenerGuard {
    fn drop(&mut self) {
        if let Some(stream) = self.stream.take() {
            self.status.stream_closed(stream);
        }
        self.status.listeners.fetch_sub(1, Ordering::AcqRel);
        if self.in_gate {
            self.status.gate_listeners.fetch_sub(1, Ordering::AcqRel);
        }
        self.status.listeners_changed.notify_one();
    }
}

/// A new listener's start: the frames to write first (a snapshot, or the replay
/// of what it missed) and the live feed, subscribed at the same instant so that
/// nothing falls between the two.
#[derive(Debug)]
pub struct Subscription {
    pub start: Vec<SharedFrame>,
    /// The version the listener is at once `start` is written; live frames at or
    /// below it are duplicates and are skipped.
    pub version: u64,
    /// This listener's place in the room's fan-out: its live frames.
    pub sink: Arc<crate::delivery::fanout::Sink>,
    pub guard: ListenerGuard,
}

/// A room's actor while it sleeps (see [`Inbox`]).
pub(crate) trait Sleeper: Send + 'static {
    /// Runs the driver again, reading `requests_rx`.
    fn wake(self: Box<Self>, requests_rx: mpsc::Receiver<Boxed>);
}

/// Where a room's requests go: the inbox of its running driver or, while an
/// idle room sleeps, the driver itself, which the next request (or the expiry
/// sweep, [`Inbox::wake_if_expired`]) starts again with a fresh inbox. A
/// sleeping room holds no task, no timer and no channel: a party service keeps
/// many rooms that nobody uses for an hour.
pub(crate) struct Inbox {
    state: Mutex<InboxState>,
}

enum InboxState {
    Awake(mpsc::Sender<Boxed>),
    Asleep {
        driver: Box<dyn Sleeper>,
        /// When the room closes itself unless someone comes.
        expires_at: tokio::time::Instant,
    },
}

impl fmt::Debug for Inbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let asleep = matches!(*self.lock(), InboxState::Asleep { .. });
        f.debug_struct("Inbox").field("asleep", &asleep).finish()
    }
}

impl Inbox {
    pub(crate) fn awake(requests_tx: mpsc::Sender<Boxed>) -> Self {
        Self {
            state: Mutex::new(InboxState::Awake(requests_tx)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, InboxState> {
        // Nothing under the lock panics halfway; a poisoned state is whole.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The running driver's inbox; wakes a sleeping one first.
    fn sender(&self) -> mpsc::Sender<Boxed> {
        let mut state = self.lock();
        if let InboxState::Awake(requests_tx) = &*state {
            return requests_tx.clone();
        }
        let (requests_tx, requests_rx) = mpsc::channel(super::INBOX_CAPACITY);
        let asleep = std::mem::replace(&mut *state, InboxState::Awake(requests_tx.clone()));
        if let InboxState::Asleep { driver, .. } = asleep {
            driver.wake(requests_rx);
        }
        requests_tx
    }

    /// The driver's side: puts `driver` to sleep, unless a request waits in
    /// `requests_rx` or is on its way (someone holds a sender). Answers the
    /// driver back when it must run on.
    pub(crate) fn sleep<D: Sleeper>(
        &self,
        driver: Box<D>,
        requests_rx: &mpsc::Receiver<Boxed>,
        expires_at: tokio::time::Instant,
    ) -> Result<(), Box<D>> {
        let mut state = self.lock();
        // Senders are cloned under this lock: one held elsewhere is a request
        // on its way, and a request sent is in `requests_rx`.
        let quiet = matches!(&*state, InboxState::Awake(requests_tx)
            if requests_tx.strong_count() == 1 && requests_rx.is_empty());
        if !quiet {
            return Err(driver);
        }
        *state = InboxState::Asleep { driver, expires_at };
        Ok(())
    }

    /// Wakes a sleeping room whose time is up, so that it closes itself
    /// (`closed`, expired). Answers whether it did.
    pub(crate) fn wake_if_expired(&self, now: tokio::time::Instant) -> bool {
        let due =
            matches!(&*self.lock(), InboxState::Asleep { expires_at, .. } if *expires_at <= now);
        if due {
            drop(self.sender());
        }
        due
    }

    pub(crate) fn is_asleep(&self) -> bool {
        matches!(*self.lock(), InboxState::Asleep { .. })
    }
}

/// The face of one room actor. Cloning is a few reference counts.
#[derive(Debug, Clone)]
pub struct RoomHandle {
    room_id: Arc<str>,
    /// Tells this room from an earlier one with the same id (deleted, re-created).
    generation: u64,
    inbox: Arc<Inbox>,
    status: Arc<RoomStatus>,
}

impl RoomHandle {
    pub(crate) fn new(
        room_id: Arc<str>,
        generation: u64,
        requests_tx: mpsc::Sender<Boxed>,
        status: Arc<RoomStatus>,
    ) -> Self {
        Self {
            room_id,
            generation,
            inbox: Arc::new(Inbox::awake(requests_tx)),
            status,
        }
    }

    /// Where this room's requests go (its driver sleeps and wakes through it).
    pub(crate) fn inbox(&self) -> &Arc<Inbox> {
        &self.inbox
    }

    /// Wakes the room if it sleeps past its expiry, so it closes itself.
    pub fn wake_if_expired(&self, now: tokio::time::Instant) -> bool {
        self.inbox.wake_if_expired(now)
    }

    /// No task runs for this room now (it is idle and asleep).
    pub fn is_asleep(&self) -> bool {
        self.inbox.is_asleep()
    }

    pub fn room_id(&self) -> &str {
        &self.room_id
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn status(&self) -> &RoomStatus {
        &self.status
    }

    /// Applies a command; `arrived` starts the fan-out latency measurement.
    pub async fn command(
        &self,
        request: CommandRequest,
        token: Option<HostToken>,
        arrived: Instant,
    ) -> Result<CommandReply, RoomError> {
        let reply = self
            .call(|respond_to| Request::Command {
                request,
                token,
                arrived,
                respond_to,
            })
            .await?;
        reply
    }

    /// Metadata that arrived after an item was added (a file's tags, the
    /// YouTube API), for the queued item `item_id` or, with `None`, the loaded
    /// one: the room fills what it does not know (a `queue` op `update`, or a
    /// `state` cause `duration`). The server's own input: no token. Answers
    /// the room's version after it.
    pub async fn item_info(
        &self,
        item_id: Option<String>,
        info: ItemInfo,
    ) -> Result<u64, RoomError> {
        let request = CommandRequest {
            command: Command::ItemInfo { item_id, info },
            expected_version: None,
        };
        let reply = self.command(request, None, Instant::now()).await?;
        Ok(reply.version)
    }

    /// Posts a chat message; answers the version it became.
    pub async fn chat(
        &self,
        name: String,
        text: String,
        token: Option<HostToken>,
    ) -> Result<u64, RoomError> {
        let version = self
            .call(|respond_to| Request::Chat {
                name,
                text,
                token,
                respond_to,
            })
            .await?;
        version
    }

    /// The room's snapshot now.
    pub async fn view(&self) -> Result<RoomView, RoomError> {
        self.call(|respond_to| Request::View { respond_to }).await?
    }

    /// Opens a listener with no stream id, resuming after `last_event_id`
    /// when the room still can.
    pub async fn subscribe(&self, last_event_id: Option<u64>) -> Result<Subscription, RoomError> {
        self.subscribe_as(last_event_id, ListenerInfo::default())
            .await
    }

    /// Opens the listener `listener`, resuming after `last_event_id` when the
    /// room still can.
    pub async fn subscribe_as(
        &self,
        last_event_id: Option<u64>,
        listener: ListenerInfo,
    ) -> Result<Subscription, RoomError> {
        self.call(|respond_to| Request::Subscribe {
            last_event_id,
            listener,
            respond_to,
        })
        .await?
    }

    /// Whether `stream` was kicked from this room: its token then counts for
    /// nothing (votes, sync reports, readiness), on every node.
    pub async fn kicked(&self, stream: String) -> Result<bool, RoomError> {
        let kicked = self
            .call(|respond_to| Request::Kicked { stream, respond_to })
            .await?;
        kicked
    }

    /// A fresh `snapshot` frame for a listener that fell behind.
    pub async fn resync(&self) -> Result<SharedFrame, RoomError> {
        self.call(|respond_to| Request::Resync { respond_to }).await
    }

    /// Takes a listener's drift report for its stream; answers the room's summary
    /// with it.
    pub async fn report_sync(
        &self,
        stream: String,
        report: DriftReport,
    ) -> Result<SyncSummary, RoomError> {
        let summary = self
            .call(|respond_to| Request::SyncReport {
                stream,
                report,
                respond_to,
            })
            .await?;
        summary
    }

    /// Counts the event stream `stream` (verified by the caller) ready for the
    /// gate `ready_gate`; answers the gate's progress.
    pub async fn ready(&self, stream: String, ready_gate: u64) -> Result<GateProgress, RoomError> {
        let progress = self
            .call(|respond_to| Request::Ready {
                stream,
                ready_gate,
                respond_to,
            })
            .await?;
        progress
    }

    /// Counts the event stream `stream` (verified by the caller) as a vote to
    /// skip the loaded item; answers how the votes stand.
    pub async fn vote(&self, stream: String) -> Result<VoteProgress, RoomError> {
        let progress = self
            .call(|respond_to| Request::Vote { stream, respond_to })
            .await?;
        progress
    }

    /// Closes the room (host token required): listeners get `closed`.
    pub async fn delete(&self, token: Option<HostToken>) -> Result<(), RoomError> {
        let result = self
            .call(|respond_to| Request::Delete { token, respond_to })
            .await?;
        result
    }

    /// Exchanges the host token `token` for `new_token`: the old one stops working
    /// at once. Answers the room's version after the change.
    pub async fn reset_host_token(
        &self,
        token: Option<HostToken>,
        new_token: HostToken,
    ) -> Result<u64, RoomError> {
        let result = self
            .call(|respond_to| Request::ResetHostToken {
                token,
                new_token,
                respond_to,
            })
            .await?;
        result
    }

    /// The host's call on the room's co-hosts (`token` must be the host's).
    pub async fn cohosts(
        &self,
        token: Option<HostToken>,
        call: CohostCall,
    ) -> Result<CohostAnswer, RoomError> {
        let result = self
            .call(|respond_to| Request::Cohosts {
                token,
                call,
                respond_to,
            })
            .await?;
        result
    }

    /// Sends one request and waits for its answer. A full inbox makes the caller
    /// wait (backpressure on this room only); a gone actor is [`RoomError::Closed`].
    async fn call<T>(
        &self,
        request: impl FnOnce(oneshot::Sender<T>) -> Request,
    ) -> Result<T, RoomError> {
        let (respond_to, answer) = oneshot::channel();
        self.inbox
            .sender()
            .send(Box::new(request(respond_to)))
            .await
            .map_err(|_| RoomError::Closed)?;
        answer.await.map_err(|_| RoomError::Closed)
    }
}
