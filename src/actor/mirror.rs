//! A room shared through a backplane ([`SharedRooms`]): the [`Store`] behind
//! this node's actor of it ([`super::driver`]), which holds a mirror of the
//! shared room.
//!
//! Changes are committed to the shared room by spawned tasks (the actor never
//! waits on the store) and come back as [`Feed`] in version order, whatever
//! order they arrive in; a gap is filled from the shared history (catch-up), or,
//! when that no longer reaches back, listeners get a fresh snapshot. The mirror
//! also reports this node's listener count (heartbeats), which keeps the shared
//! room alive and makes the total every node announces. Sync reports, votes and
//! the kicked streams are kept in the shared store too (so every node counts
//! all of them); the heartbeat also forgets the expired reports there.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::driver::{check_votes, publish, recount, Core, RoomActor, Settled, Store};
use super::handle::{
    Boxed, CommandReply, HostToken, Inbox, Request, RoomHandle, MAX_CLOSED_STREAMS_PENDING,
};
use super::hub::Hub;
use super::port::{
    CatchUp, Feed, FeedAlarm, FeedRoute, FeedSink, LostVersions, Opened, SharedRooms, Unavailable,
    HEARTBEAT,
};
use super::{ActorContext, INBOX_CAPACITY};
use crate::room::command::CommandError;
use crate::room::command::{Command, CommandRequest};
use crate::room::error::RoomError;
use crate::room::event::{CloseReason, Event, Frame};
use crate::room::gate::{GateProgress, ReadyChange};
use crate::room::members::{Member, MAX_SHOWN_MEMBERS};
use crate::room::state::{Inputs, Room, RoomView, StartPolicy};
use crate::room::sync::{DriftReport, SyncChange, SyncSummary, SyncTaken};
use crate::room::votes::{VoteChange, VoteProgress};

/// A mirror with no listeners here goes after this long idle; the room itself
/// lives on in the shared store until its own TTL.
const MIRROR_IDLE: Duration = Duration::from_secs(60);
/// Out-of-order events a mirror holds while it fills a gap; past it, it resyncs.
const MAX_PENDING: usize = 1024;
/// Pause before a failed catch-up (the store unreachable) is tried again.
const CATCH_UP_RETRY: Duration = Duration::from_secs(1);
/// Closed streams forgotten in the shared store by one call.
const FORGET_BATCH: usize = 512;

/// A mirror's inbox, made before the room is read: the backplane routes the
/// room's feed to it first, so nothing committed after the read is missed.
pub struct MirrorInbox {
    requests: (mpsc::Sender<Boxed>, mpsc::Receiver<Boxed>),
    alarm: Arc<FeedAlarm>,
}

impl Default for MirrorInbox {
    fn default() -> Self {
        Self {
            requests: mpsc::channel(INBOX_CAPACITY),
            alarm: Arc::new(FeedAlarm::default()),
        }
    }
}

impl MirrorInbox {
    /// Where the backplane sends this room's feed, for the mirror of `generation`.
    pub fn route(&self, generation: u64) -> FeedRoute {
        FeedRoute {
            generation,
            sink: Arc::new(InboxSink(self.requests.0.downgrade())),
            alarm: self.alarm.clone(),
        }
    }
}

/// A mirror's inbox as the backplane sees it: feed is offered, never awaited.
struct InboxSink(mpsc::WeakSender<Boxed>);

impl FeedSink for InboxSink {
    fn offer(&self, feed: Feed) -> bool {
        match self.0.upgrade() {
            Some(inbox) => inbox.try_send(Box::new(Request::Feed(feed))).is_ok(),
            // A gone mirror has nobody left to tell.
            None => true,
        }
    }
}

/// Starts the actor of an opened shared room on `inbox` (routed beforehand)
/// and returns its handle.
pub fn spawn(
    opened: Opened,
    generation: u64,
    context: ActorContext,
    shared: Arc<dyn SharedRooms>,
    inbox: MirrorInbox,
) -> RoomHandle {
    let MirrorInbox {
        requests: (requests_tx, requests_rx),
        alarm,
    } = inbox;
    let room = opened.room;
    let mut hub = Hub::new(
        &room,
        &context.settings,
        context.metrics.clone(),
        opened.history,
    );
    // Says at once that this node serves the room: the others tell it who
    // listens there with a name.
    hub.members_changed();
    let handle = RoomHandle::new(
        Arc::from(room.room_id.as_str()),
        generation,
        requests_tx.clone(),
        hub.status.clone(),
    );
    let link = Link {
        shared,
        alarm,
        inbox: requests_tx.downgrade(),
        listeners: opened.listeners,
        reported: 0,
        gate_listeners: 0,
        reported_gate: 0,
        starts: context.settings.starts,
        reporting: Arc::default(),
        taking_back: Arc::default(),
    };
    let mut core = Core::new(room, hub, context);
    // Listeners that join see it in their snapshot; nobody here needs an event.
    let now = core.now();
    core.sync.update(opened.sync, now);
    core.sync.due(now);
    let mirror = Mirror {
        link,
        votes_gone: Vec::new(),
        ready_gone: Vec::new(),
        pending: BTreeMap::new(),
        catching_up: false,
        catch_up_retry_at: None,
        out_of_touch: false,
        reported_at: None,
        others: BTreeMap::new(),
        shared_named: None,
        lost: opened.lost,
    };
    RoomActor::start(core, mirror, requests_rx);
    handle
}

/// A mirror's way to the shared room.
#[derive(Clone)]
struct Link {
    shared: Arc<dyn SharedRooms>,
    /// Raised when the feed may have lost messages.
    alarm: Arc<FeedAlarm>,
    /// The mirror's own inbox, for answers of the work it spawns. Weak: the
    /// mirror still ends when every handle is gone.
    inbox: mpsc::WeakSender<Boxed>,
    /// The listener total over every node, as last heard.
    listeners: u64,
    /// This node's count as last reported (it is part of `listeners`).
    reported: u64,
    /// Of them, those taking part in the ready gate, as last heard and reported.
    gate_listeners: u64,
    reported_gate: u64,
    /// How starts are scheduled (the server's settings).
    starts: StartPolicy,
    /// Held by the listener-count report under way.
    reporting: Arc<tokio::sync::Mutex<()>>,
    /// Take-backs of votes of streams that ended here, under way. Until they
    /// land, this node's own count is already without those streams but the
    /// votes it heard still hold theirs: it must not find the votes enough.
    taking_back: Arc<AtomicUsize>,
}

/// One take-back of votes under way (see [`Link::taking_back`]), until dropped.
struct TakingBack(Arc<AtomicUsize>);

impl TakingBack {
    fn new(link: &Link) -> Self {
        link.taking_back.fetch_add(1, Ordering::AcqRel);
        Self(link.taking_back.clone())
    }
}

impl Drop for TakingBack {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Link {
    /// The total now: as last heard, with this node's count brought up to date
    /// (a new listener's snapshot counts itself, as on a single node).
    fn listeners_now(&self, local: usize) -> u64 {
        (self.listeners.saturating_sub(self.reported) + local as u64).max(local as u64)
    }

    /// What a change depends on at the store's `now` (given to each commit),
    /// with the gate's listeners over every node (this node's brought up to
    /// date, as for [`Link::listeners_now`]).
    fn inputs(&self, local_gate: usize) -> impl Fn(i64) -> Inputs + Copy + Send + Sync + 'static {
        let starts = self.starts;
        let gate_listeners = (self.gate_listeners.saturating_sub(self.reported_gate)
            + local_gate as u64)
            .max(local_gate as u64);
        move |now| Inputs {
            now,
            starts,
            gate_listeners,
            pick: rand::random(),
        }
    }

    /// Commits `change` to the shared room and hands the events to the mirror
    /// before answering, so a read that follows the answer sees them. Answers the
    /// room after the change and whether anything changed. A room found gone
    /// makes the mirror check (and end its streams): its `closed` may be lost.
    async fn commit<F>(
        &self,
        room_id: &str,
        arrived: Option<std::time::Instant>,
        mut change: F,
    ) -> Result<(Room, bool), RoomError>
    where
        F: FnMut(&mut Room, i64) -> Result<Vec<Event>, CommandError> + Send,
    {
        match self.shared.commit(room_id, &mut change).await {
            Ok(committed) => {
                let changed = !committed.events.is_empty();
                if changed {
                    self.deliver(Feed::Events {
                        events: committed.events,
                        arrived,
                    })
                    .await;
                }
                Ok((committed.room, changed))
            }
            Err(error) => {
                if error == RoomError::Closed {
                    self.alarm.raise();
                }
                Err(error)
            }
        }
    }

    /// Brings the start of the open `gate` forward (the quorum is there). Once
    /// for the cluster: a gate already released commits nothing.
    async fn release_gate(
        &self,
        room_id: &str,
        gate: u64,
        inputs_at: impl Fn(i64) -> Inputs + Send + Sync,
    ) {
        let released = self
            .commit(room_id, None, |room, now| {
                Ok(room.release_gate(gate, &inputs_at(now)))
            })
            .await;
        if let Err(error) = released {
            tracing::debug!(%room_id, %error, "ready gate not released");
        }
    }

    /// Skips `item` (`skip` votes of `listeners`), as the shared room decides:
    /// its settings, and whether the item is still loaded and not skipped yet.
    async fn skip_by_vote(
        &self,
        room_id: &str,
        item: u64,
        skip: u64,
        listeners: u64,
        inputs_at: impl Fn(i64) -> Inputs + Send + Sync,
    ) {
        let skipped = self
            .commit(room_id, None, |room, now| {
                Ok(match room.vote_skip_met(skip, listeners) {
                    Some(met) if met == item => room.skip_by_vote(item, &inputs_at(now)),
                    _ => Vec::new(),
                })
            })
            .await;
        if let Err(error) = skipped {
            tracing::debug!(%room_id, %error, "vote skip not committed");
        }
    }

    /// Hands the mirror what was committed (before the committer answers its
    /// client, so a read that follows sees it).
    async fn deliver(&self, feed: Feed) {
        if let Some(inbox) = self.inbox.upgrade() {
            // A gone mirror has nobody left to tell.
            let _ = inbox.send(Box::new(Request::Feed(feed))).await;
        }
    }
}

/// What this node's actor of a shared room holds besides what every room's
/// actor does.
struct Mirror {
    link: Link,
    /// Streams that ended here whose votes are to be taken back.
    votes_gone: Vec<String>,
    /// Streams that ended here while a gate was open: their readiness goes.
    ready_gone: Vec<String>,
    /// Events past a gap, waiting for it to be filled.
    pending: BTreeMap<u64, (Event, Option<std::time::Instant>)>,
    /// A catch-up read is under way.
    catching_up: bool,
    catch_up_retry_at: Option<Instant>,
    /// The feed may have lost messages and the shared room could not be read
    /// since: what this mirror holds may be stale. Reads are refused until a
    /// catch-up succeeds; open streams stay open on keepalives meanwhile.
    out_of_touch: bool,
    /// When this node last reported its listener count.
    reported_at: Option<Instant>,
    /// Who's here on the other nodes, by node: their named listeners and
    /// until when (server ms) they count.
    others: BTreeMap<String, (Vec<Member>, i64)>,
    /// This node's named listeners as last told to the others; `None` until
    /// first told (a new mirror says so at once, so the others answer).
    shared_named: Option<Vec<Member>>,
    /// Versions a listener may hold that the shared history lost (a failover):
    /// a resume from one of them gets a snapshot.
    lost: LostVersions,
}

impl Store for Mirror {
    fn listeners_with(&self, here: usize) -> u64 {
        self.link.listeners_now(here)
    }

    fn votes_settled(&self) -> bool {
        self.link.taking_back.load(Ordering::Acquire) == 0
    }

    fn in_doubt(&self, version: u64) -> bool {
        self.lost.contains(version)
    }

    fn gate_listeners(&self, _core: &Core) -> u64 {
        // As last heard: the shared tally counts them over every node.
        self.link.gate_listeners
    }

    fn idle(&self, core: &Core) -> Option<Duration> {
        Some(core.context.settings.ttl.min(MIRROR_IDLE))
    }

    fn inbox(&self) -> Option<Arc<Inbox>> {
        // A mirror keeps its task: the backplane feeds it.
        None
    }

    fn alarm(&self) -> Option<Arc<FeedAlarm>> {
        Some(self.link.alarm.clone())
    }

    fn on_alarm(&mut self, core: &mut Core) {
        self.start_catch_up(core);
    }

    fn deadline(&self, core: &Core) -> Option<Instant> {
        // A catch-up retry, the listener-count heartbeat.
        let heartbeat = (core.hub.listeners() > 0).then(|| {
            self.reported_at
                .map_or_else(Instant::now, |at| at + HEARTBEAT)
        });
        self.catch_up_retry_at.into_iter().chain(heartbeat).min()
    }

    fn on_timer(&mut self, core: &mut Core, now: Instant) {
        if self.catch_up_retry_at.is_some_and(|at| at <= now) {
            self.start_catch_up(core);
        }
        if core.hub.listeners() > 0 && self.reported_at.is_none_or(|at| at + HEARTBEAT <= now) {
            self.report_listeners(core);
            // Said again while there is anything to say, so the others keep
            // counting it (and a node that came later hears it).
            if let Some(named) = self.shared_named.as_ref().filter(|n| !n.is_empty()) {
                self.share_members(core, named.clone());
            }
            // Another node's names may have expired meanwhile.
            core.hub.members_changed();
            if core.sync.current().reporting > 0 {
                // Expired reports leave the summary even when nobody reports.
                self.change_sync(core, SyncChange::Sweep);
            }
        }
    }

    fn commit<C, A>(
        &mut self,
        core: &mut Core,
        arrived: Option<std::time::Instant>,
        mut change: C,
        settled: A,
    ) where
        C: FnMut(&mut Room, &Inputs) -> Result<Vec<Event>, CommandError> + Send + 'static,
        A: FnOnce(Settled<'_>) + Send + 'static,
    {
        let link = self.link.clone();
        let room_id = core.room.room_id.clone();
        let inputs_at = link.inputs(core.hub.status.gate_listeners());
        tokio::spawn(async move {
            let committed = link
                .commit(&room_id, arrived, |room, now| change(room, &inputs_at(now)))
                .await;
            match committed {
                Ok((room, changed)) => settled(Ok((&room, changed))),
                Err(error) => settled(Err(error)),
            }
        });
    }

    fn command(
        &mut self,
        core: &mut Core,
        request: CommandRequest,
        token: Option<HostToken>,
        arrived: std::time::Instant,
        respond_to: oneshot::Sender<Result<CommandReply, RoomError>>,
    ) {
        self.commit_command(core, request, token, arrived, respond_to);
    }

    fn ready(
        &mut self,
        core: &mut Core,
        stream: String,
        ready_gate: u64,
        respond_to: oneshot::Sender<Result<GateProgress, RoomError>>,
    ) {
        self.on_ready(core, stream, ready_gate, respond_to);
    }

    fn vote(
        &mut self,
        core: &mut Core,
        stream: String,
        respond_to: oneshot::Sender<Result<VoteProgress, RoomError>>,
    ) {
        self.on_vote(core, stream, respond_to);
    }

    fn sync_report(
        &mut self,
        core: &mut Core,
        stream: String,
        report: DriftReport,
        respond_to: oneshot::Sender<Result<SyncSummary, RoomError>>,
    ) {
        self.on_sync_report(core, stream, report, respond_to);
    }

    /// The kicked set is the shared store's, so a kick on any node counts
    /// (spawned; the actor never waits on the store).
    fn kicked(
        &self,
        core: &Core,
        stream: String,
        respond_to: oneshot::Sender<Result<bool, RoomError>>,
    ) {
        let link = self.link.clone();
        let room_id = core.room.room_id.clone();
        tokio::spawn(async move {
            let kicked = link.shared.kicked(&room_id, &stream).await;
            let _ = respond_to.send(kicked.map_err(RoomError::from));
        });
    }

    fn feed(&mut self, core: &mut Core, feed: Feed) {
        self.on_feed(core, feed);
    }

    /// Answers a read `Unavailable` while out of touch (a stale room must not
    /// be served as the current one); hands any other request back.
    fn refuse_read(&self, request: Request) -> Option<Request> {
        if !self.out_of_touch {
            return Some(request);
        }
        let refused = RoomError::Unavailable(Unavailable);
        match request {
            Request::View { respond_to } => {
                let _ = respond_to.send(Err(refused));
            }
            Request::Subscribe { respond_to, .. } => {
                let _ = respond_to.send(Err(refused));
            }
            other => return Some(other),
        }
        None
    }

    fn announce(&mut self, core: &mut Core, listeners: Option<u64>) {
        // The total over every node comes back on the feed, and is announced then.
        if listeners.is_some() {
            self.report_listeners(core);
        }
    }

    fn listeners_changed(&mut self, core: &mut Core, listeners: Option<u64>, closed: Vec<String>) {
        self.take_votes_back(core, &closed);
        if core.room.state.ready_gate.is_some()
            && self.ready_gone.len() < MAX_CLOSED_STREAMS_PENDING
        {
            self.ready_gone.extend_from_slice(&closed);
        }
        let gate_changed = core.hub.status.gate_listeners() as u64 != self.link.reported_gate;
        if listeners.is_some() || gate_changed {
            self.report_listeners(core);
        }
        self.forget_votes_gone(core);
        self.forget_closed_streams(core, closed);
        // The gate and the votes are checked when the total comes back on the
        // feed: a vote must be gone before the count without its stream counts.
    }

    /// This node's named listeners go to the others when they changed, and
    /// this node's listeners hear what changed over all.
    fn members(&mut self, core: &mut Core) -> (Vec<Member>, u64) {
        let now = core.now();
        self.others.retain(|_, (_, expires_at)| *expires_at >= now);
        let mut named = core.hub.named_here();
        named.truncate(MAX_SHOWN_MEMBERS);
        if self.shared_named.as_ref() != Some(&named) {
            self.shared_named = Some(named.clone());
            self.share_members(core, named.clone());
        }
        for (members, _) in self.others.values() {
            named.extend(members.iter().cloned());
        }
        (named, self.link.listeners_now(core.hub.listeners()))
    }

    fn expire(&mut self, core: &mut Core) {
        // A mirror just goes: the room lives on in the shared store, which
        // expires it by itself, once, for the whole cluster.
        core.stopping = true;
    }

    fn on_exit(&mut self, _core: &Core) {}
}

impl Mirror {
    /// A listener's sync report: kept beside the others in the store; a
    /// duration the reports now agree on is committed to the shared room.
    fn on_sync_report(
        &mut self,
        core: &mut Core,
        stream: String,
        report: DriftReport,
        respond_to: oneshot::Sender<Result<SyncSummary, RoomError>>,
    ) {
        let room_id = core.room.room_id.clone();
        let link = self.link.clone();
        let item = core.room.reported_item();
        tokio::spawn(async move {
            let change = SyncChange::Report {
                stream,
                report,
                item: item.clone(),
            };
            let taken = link.shared.sync(&room_id, change).await;
            let Ok(SyncTaken { summary, durations }) = taken else {
                let _ = respond_to.send(taken.map(|taken| taken.summary));
                return;
            };
            // Before the answer, so a read that follows sees it.
            link.deliver(Feed::Sync(summary.clone())).await;
            if !durations.is_empty() {
                // The shared room decides: known there, or loaded anew since, it stays.
                let take = move |room: &mut Room, now: i64| -> Result<Vec<Event>, CommandError> {
                    if room.reported_item() != item {
                        return Ok(Vec::new());
                    }
                    Ok(room.take_reported_duration(&durations, now))
                };
                if let Err(error) = link.commit(&room_id, None, take).await {
                    tracing::warn!(%room_id, %error, "reported duration not committed");
                }
            }
            let _ = respond_to.send(Ok(summary));
        });
    }

    /// A client's command, committed by a task of its own (the mirror never
    /// waits on the store); the answer goes to `respond_to`.
    fn commit_command(
        &mut self,
        core: &mut Core,
        request: CommandRequest,
        token: Option<HostToken>,
        arrived: std::time::Instant,
        respond_to: oneshot::Sender<Result<CommandReply, RoomError>>,
    ) {
        let room_id = core.room.room_id.clone();
        let link = self.link.clone();
        core.hub.touch();
        let local = core.hub.listeners();
        let command = request.command;
        let expected = request.expected_version;
        let inputs_at = link.inputs(core.hub.status.gate_listeners());
        let sync = core.sync.current();
        let members = core.hub.members();
        tokio::spawn(async move {
            let token = token.as_ref().map(|t| t.0.as_str());
            let mut committed = link
                .commit(&room_id, Some(arrived), |room, now| {
                    room.decide(token, expected, command.clone(), &inputs_at(now))
                })
                .await;
            if let (Ok(_), Command::Kick { stream }) = (&committed, &command) {
                // Allowed: remembered and announced before the answer, so a
                // report sent after it is refused on every node.
                if let Err(unavailable) = link.shared.kick(&room_id, stream).await {
                    committed = Err(unavailable.into());
                }
            }
            let reply = committed.map(|(room, changed)| CommandReply {
                version: room.version,
                room: RoomView {
                    sync,
                    unnamed: (link.listeners_now(local)).saturating_sub(members.len() as u64),
                    members,
                    ..room.view(
                        link.listeners_now(local),
                        link.shared.now_ms(),
                        link.starts.gate,
                    )
                },
                changed,
            });
            let _ = respond_to.send(reply);
        });
    }

    /// What the backplane tells this mirror.
    fn on_feed(&mut self, core: &mut Core, feed: Feed) {
        match feed {
            Feed::Gate {
                ready_gate,
                ready,
                listeners,
            } => {
                self.link.gate_listeners = listeners;
                core.tally.heard(ready_gate, ready);
            }
            Feed::Sync(summary) => core.take_sync(summary),
            Feed::Events { events, arrived } => {
                self.on_feed_events(core, events, arrived);
            }
            Feed::Presence {
                listeners,
                gate_listeners,
                server_time,
            } => {
                self.link.gate_listeners = gate_listeners;
                self.link.listeners = listeners;
                core.hub.send_live(Frame::presence(listeners, server_time));
                core.hub.members_changed();
                recount(self, core);
            }
            Feed::CaughtUp(result) => self.on_caught_up(core, *result),
            Feed::Votes { item, skip } => {
                core.votes.heard(item, skip);
                check_votes(self, core);
            }
            Feed::Kick { stream } => {
                core.hub.kick(&stream, core.now());
            }
            Feed::Lost(lost) => self.learn_lost(core, &lost),
            Feed::Members {
                node,
                members,
                expires_at,
            } => {
                let new = self.others.insert(node, (members, expires_at)).is_none();
                // A node heard of for the first time (it just came) hears
                // this one's names now rather than at the next heartbeat.
                if let Some(named) = self.shared_named.as_ref().filter(|_| new) {
                    if !named.is_empty() {
                        self.share_members(core, named.clone());
                    }
                }
                core.hub.members_changed();
            }
        }
    }

    /// Takes committed events in version order, whatever order they came in; a
    /// gap is filled from the shared history.
    fn on_feed_events(
        &mut self,
        core: &mut Core,
        events: Vec<Event>,
        arrived: Option<std::time::Instant>,
    ) {
        for event in events {
            if event.version > core.room.version {
                self.pending.insert(event.version, (event, arrived));
            }
        }
        if self.pending.len() > MAX_PENDING {
            // Too far behind to buffer: start over from the room as it is now.
            self.pending.clear();
            self.start_catch_up(core);
            return;
        }
        self.drain_pending(core);
    }

    fn drain_pending(&mut self, core: &mut Core) {
        while let Some(entry) = self.pending.first_entry() {
            let version = *entry.key();
            if version <= core.room.version {
                entry.remove();
                continue;
            }
            if version != core.room.version + 1 {
                break;
            }
            let (event, arrived) = entry.remove();
            core.room.absorb(&event);
            publish(self, core, vec![event], arrived);
            if core.stopping {
                tracing::info!(room_id = %core.room.room_id, "shared room closed");
                return;
            }
        }
        if !self.pending.is_empty() {
            self.start_catch_up(core);
        }
    }

    /// Reads what the mirror may have missed (spawned; the answer comes back as
    /// [`Feed::CaughtUp`]). One read at a time.
    fn start_catch_up(&mut self, core: &mut Core) {
        if self.catching_up {
            return;
        }
        self.catching_up = true;
        self.catch_up_retry_at = None;
        let link = self.link.clone();
        let room_id = core.room.room_id.clone();
        let after = core.room.version;
        tokio::spawn(async move {
            let result = link.shared.catch_up(&room_id, after).await;
            link.deliver(Feed::CaughtUp(Box::new(result))).await;
        });
    }

    fn on_caught_up(&mut self, core: &mut Core, result: Result<CatchUp, Unavailable>) {
        self.catching_up = false;
        let caught_up = match result {
            Ok(caught_up) => caught_up,
            Err(Unavailable) => {
                // The store is away: streams stay open on keepalives; try again soon.
                if !self.out_of_touch {
                    tracing::warn!(room_id = %core.room.room_id, "mirror out of touch with the shared room");
                }
                self.out_of_touch = true;
                self.catch_up_retry_at = Some(Instant::now() + CATCH_UP_RETRY);
                return;
            }
        };
        self.out_of_touch = false;
        self.learn_lost(core, &caught_up.lost);
        let Some(room) = caught_up.room else {
            // The room was deleted (or expired) while this node was not hearing.
            let event = core.room.close(CloseReason::Deleted, core.now());
            publish(self, core, vec![event], None);
            return;
        };
        if caught_up.rewritten {
            self.pending.clear();
        }
        for event in caught_up.events {
            if event.version > core.room.version {
                self.pending.insert(event.version, (event, None));
            }
        }
        self.drain_pending(core);
        if core.stopping {
            return;
        }
        if core.room.version < room.version || caught_up.rewritten {
            // The shared history no longer reaches back to us (or was rewritten
            // after a failover): listeners get a fresh snapshot (the state is
            // idempotent) and replay restarts here.
            tracing::info!(room_id = %room.room_id, from = core.room.version, to = room.version, "mirror resynced");
            core.room = room;
            core.votes.follow(core.room.item_since);
            core.hub.forget_history();
            let listeners = self.link.listeners_now(core.hub.listeners());
            let view = core.view(listeners, core.now());
            let snapshot = match caught_up.rewritten {
                true => Frame::restart(&view),
                false => Frame::snapshot(&view),
            };
            core.hub.send_live(snapshot);
            self.pending
                .retain(|version, _| *version > core.room.version);
            self.catching_up = false;
            self.drain_pending(core);
        }
    }

    /// Keeps the versions the shared history lost, as far back as a resume
    /// can still be replayed from.
    fn learn_lost(&mut self, core: &Core, lost: &LostVersions) {
        self.lost.merge(lost);
        let window = core.context.settings.history as u64;
        self.lost
            .forget_before(core.room.version.saturating_sub(window));
    }

    /// Tells the other nodes (spawned); a failure is made good by the next heartbeat.
    fn share_members(&self, core: &Core, members: Vec<Member>) {
        let link = self.link.clone();
        let room_id = core.room.room_id.clone();
        tokio::spawn(async move {
            let _ = link.shared.share_members(&room_id, members).await;
        });
    }

    /// Streams that ended here stop counting in the shared store at once.
    fn forget_closed_streams(&mut self, core: &mut Core, closed: Vec<String>) {
        core.hub.forget_streams(&closed);
        if closed.is_empty() || core.sync.current().reporting == 0 {
            return;
        }
        for batch in closed.chunks(FORGET_BATCH) {
            self.change_sync(core, SyncChange::Forget(batch.to_vec()));
        }
    }

    /// Changes the shared reports (spawned); a changed summary comes back on the feed.
    fn change_sync(&self, core: &Core, change: SyncChange) {
        let link = self.link.clone();
        let room_id = core.room.room_id.clone();
        tokio::spawn(async move {
            // A failed sweep is retried by the next heartbeat; reports of streams
            // whose forgetting failed expire by themselves.
            let _ = link.shared.sync(&room_id, change).await;
        });
    }

    /// Tells the store how many listeners this node has here (which keeps the
    /// room alive and makes the total every node announces; it comes back on
    /// the feed).
    fn report_listeners(&mut self, core: &mut Core) {
        let count = core.hub.listeners();
        let gate_count = core.hub.status.gate_listeners();
        self.link.reported = count as u64;
        self.link.reported_gate = gate_count as u64;
        self.reported_at = Some(Instant::now());
        let link = self.link.clone();
        let room_id = core.room.room_id.clone();
        let counts = core.hub.status.clone();
        let gone = std::mem::take(&mut self.votes_gone);
        let taking_back = (!gone.is_empty()).then(|| TakingBack::new(&link));
        let item = core.room.item_since;
        let ready_gone = self.take_ready_gone(core);
        tokio::spawn(async move {
            // One report at a time, each with the counts as they are when its turn
            // comes: two spawned reports must not land in the wrong order (the
            // older count would stand until the next heartbeat).
            let _turn = link.reporting.lock().await;
            if let Some(taking_back) = taking_back {
                forget_votes(&link, &room_id, item, gone, taking_back).await;
            }
            // Likewise, a readiness goes before the count without its stream.
            if let Some((gate, streams)) = ready_gone {
                forget_ready(&link, &room_id, gate, streams).await;
            }
            let (count, gate_count) = (counts.listeners(), counts.gate_listeners());
            // A failed report is retried by the next heartbeat; it also means the
            // feed may be silently gone (a dead link sends no disconnection), so
            // the mirror checks what it missed, and learns it is out of touch.
            if link
                .shared
                .report_listeners(&room_id, count, gate_count)
                .await
                .is_err()
            {
                link.alarm.raise();
            }
        });
    }

    /// A page's readiness report: counted in the shared tally, and the start
    /// committed (once, by compare-and-set) when the gate has its quorum.
    fn on_ready(
        &mut self,
        core: &mut Core,
        stream: String,
        ready_gate: u64,
        respond_to: tokio::sync::oneshot::Sender<Result<GateProgress, RoomError>>,
    ) {
        if core.room.state.ready_gate != Some(ready_gate) {
            let _ = respond_to.send(Ok(GateProgress {
                ready_gate: core.room.state.ready_gate,
                ready: core.tally.ready(),
                listeners: self.link.gate_listeners,
                counted: false,
            }));
            return;
        }
        let link = self.link.clone();
        let room_id = core.room.room_id.clone();
        let settings = core.room.gate(link.starts.gate);
        let inputs_at = link.inputs(core.hub.status.gate_listeners());
        tokio::spawn(async move {
            let report = ReadyChange::Report(stream);
            let reply = match link.shared.report_ready(&room_id, ready_gate, report).await {
                Ok((counted, ready, listeners)) => {
                    if counted && settings.met(ready, listeners) {
                        link.release_gate(&room_id, ready_gate, inputs_at).await;
                    }
                    Ok(GateProgress {
                        ready_gate: Some(ready_gate),
                        ready,
                        listeners,
                        counted,
                    })
                }
                Err(unavailable) => Err(RoomError::from(unavailable)),
            };
            let _ = respond_to.send(reply);
        });
    }

    /// Streams that ended here take their votes back, and are remembered as
    /// gone so that their tokens add no vote later, while vote skip is on.
    fn take_votes_back(&mut self, core: &Core, closed: &[String]) {
        if core.room.vote_skip.is_on() && self.votes_gone.len() < MAX_CLOSED_STREAMS_PENDING {
            self.votes_gone.extend_from_slice(closed);
        }
    }

    /// Takes back the votes, and the readiness, of streams that ended
    /// (spawned; the change comes back on the feed). In the turn of the
    /// listener-count reports: a vote must be gone before the count without
    /// its stream reaches other nodes, or they could find the votes enough
    /// that no longer are (a readiness, the quorum).
    fn forget_votes_gone(&mut self, core: &mut Core) {
        let ready_gone = self.take_ready_gone(core);
        if self.votes_gone.is_empty() && ready_gone.is_none() {
            return;
        }
        let gone = std::mem::take(&mut self.votes_gone);
        let link = self.link.clone();
        let taking_back = (!gone.is_empty()).then(|| TakingBack::new(&link));
        let room_id = core.room.room_id.clone();
        let item = core.room.item_since;
        tokio::spawn(async move {
            let _turn = link.reporting.lock().await;
            if let Some(taking_back) = taking_back {
                forget_votes(&link, &room_id, item, gone, taking_back).await;
            }
            if let Some((gate, streams)) = ready_gone {
                forget_ready(&link, &room_id, gate, streams).await;
            }
        });
    }

    /// The streams that ended here while a gate was open, with the gate open
    /// now, whose readiness they take back (none when no gate is open any
    /// more: no count is left to correct).
    fn take_ready_gone(&mut self, core: &Core) -> Option<(u64, Vec<String>)> {
        let gone = std::mem::take(&mut self.ready_gone);
        let gate = core.room.state.ready_gate?;
        (!gone.is_empty()).then_some((gate, gone))
    }

    /// A listener's vote to skip the loaded item: counted in the shared store
    /// (once per stream and item), and the skip committed (once, by
    /// compare-and-set) when the votes are enough.
    fn on_vote(
        &mut self,
        core: &mut Core,
        stream: String,
        respond_to: oneshot::Sender<Result<VoteProgress, RoomError>>,
    ) {
        let settings = core.room.vote_skip;
        let listeners = self.link.listeners_now(core.hub.listeners());
        let (skip, item) = (core.votes.skip(), core.room.item_since);
        if core.room.state.source.is_none() {
            let needed = settings.needed(listeners);
            let _ = respond_to.send(Ok(VoteProgress {
                skip,
                needed,
                listeners,
                counted: false,
            }));
            return;
        }
        let link = self.link.clone();
        let room_id = core.room.room_id.clone();
        let inputs_at = link.inputs(core.hub.status.gate_listeners());
        tokio::spawn(async move {
            let reply = match link
                .shared
                .vote(&room_id, item, VoteChange::Cast(stream))
                .await
            {
                Ok((counted, skip)) => {
                    if counted && settings.met(skip, listeners) {
                        link.skip_by_vote(&room_id, item, skip, listeners, inputs_at)
                            .await;
                    }
                    Ok(VoteProgress {
                        skip,
                        needed: settings.needed(listeners),
                        listeners,
                        counted,
                    })
                }
                Err(unavailable) => Err(RoomError::from(unavailable)),
            };
            let _ = respond_to.send(reply);
        });
    }
}

/// Takes back the readiness of streams that ended, in batches (the progress
/// comes back on the feed). One that could not be taken back (the store
/// away) stays until the gate closes, at its deadline at the latest.
async fn forget_ready(link: &Link, room_id: &str, gate: u64, gone: Vec<String>) {
    for batch in gone.chunks(FORGET_BATCH) {
        let forget = ReadyChange::Forget(batch.to_vec());
        if link
            .shared
            .report_ready(room_id, gate, forget)
            .await
            .is_err()
        {
            break;
        }
    }
}

/// Takes back the votes of streams that ended, in batches. A vote that could
/// not be taken back (the store away) stays until the item changes: votes are
/// kept per item.
/// Takes back the votes of streams that ended here; then, the take-back over,
/// the mirror checks the votes again as they now stand (a check it skipped
/// meanwhile may have been due).
async fn forget_votes(
    link: &Link,
    room_id: &str,
    item: u64,
    gone: Vec<String>,
    taking_back: TakingBack,
) {
    let mut skip = None;
    for batch in gone.chunks(FORGET_BATCH) {
        let forget = VoteChange::Forget(batch.to_vec());
        match link.shared.vote(room_id, item, forget).await {
            Ok((_, now)) => skip = Some(now),
            Err(Unavailable) => break,
        }
    }
    drop(taking_back);
    if let Some(skip) = skip {
        link.deliver(Feed::Votes { item, skip }).await;
    }
}
