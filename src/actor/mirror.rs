//! The driver of a room shared through a backplane ([`SharedRooms`]): this
//! node's mirror of it.
//!
//! Changes are committed to the shared room by spawned tasks (the driver never
//! waits on the store) and come back as [`Feed`] in version order, whatever
//! order they arrive in; a gap is filled from the shared history (catch-up), or,
//! when that no longer reaches back, listeners get a fresh snapshot. The mirror
//! also reports this node's listener count (heartbeats), which keeps the shared
//! room alive and makes the total every node announces. Sync reports are kept in
//! the shared store too (so every node counts all of them); the heartbeat also
//! forgets the expired ones there. What listeners see goes through the same
//! [`Hub`] as a local room's.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::handle::{
    Boxed, CommandReply, HostToken, Request, RoomHandle, MAX_CLOSED_STREAMS_PENDING,
};
use super::hub::Hub;
use super::port::{
    CatchUp, Feed, FeedAlarm, FeedRoute, FeedSink, Opened, SharedRooms, Unavailable, HEARTBEAT,
};
use super::{instant_at, progress_frame, sleep_until_some, ActorContext, Flow, INBOX_CAPACITY};
use crate::room::command::CommandError;
use crate::room::command::{Command, CommandRequest};
use crate::room::error::RoomError;
use crate::room::event::{CloseReason, Event, EventKind, Frame};
use crate::room::gate::{GateProgress, ReadyTally};
use crate::room::members::{Member, MAX_SHOWN_MEMBERS};
use crate::room::state::{Access, Inputs, Room, RoomView, StartPolicy};
use crate::room::sync::{DriftReport, SyncAnnouncer, SyncChange, SyncSummary, SyncTaken};
use crate::room::votes::{VoteChange, VoteProgress, VoteTally, VOTES_OFF};

/// A mirror with no listeners here goes after this long idle; the room itself
/// lives on in the shared store until its own TTL.
const MIRROR_IDLE: Duration = Duration::from_secs(60);
/// Out-of-order events a mirror holds while it fills a gap; past it, it resyncs.
const MAX_PENDING: usize = 1024;
/// Pause before a failed catch-up (the store unreachable) is tried again.
const CATCH_UP_RETRY: Duration = Duration::from_secs(1);
/// Pause before an end-of-video commit that changed nothing is tried again.
const END_RETRY: Duration = Duration::from_secs(1);
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

/// Starts the mirror of an opened shared room on `inbox` (routed beforehand) and
/// returns its handle.
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
    };
    let mut sync = SyncAnnouncer::default();
    // Listeners that join see it in their snapshot; nobody here needs an event.
    let now = context.clock.now_ms();
    sync.update(opened.sync, now);
    sync.due(now);
    let votes = VoteTally::following(room.item_since);
    let driver = MirrorRoom {
        room,
        tally: ReadyTally::default(),
        release_tried: None,
        votes,
        skip_tried: None,
        votes_gone: Vec::new(),
        hub,
        link,
        sync,
        pending: BTreeMap::new(),
        catching_up: false,
        catch_up_retry_at: None,
        out_of_touch: false,
        end_wait: None,
        reported_at: None,
        others: BTreeMap::new(),
        shared_named: None,
        requests_rx,
        context,
    };
    // Boxed: an async fn keeps its argument in its future twice over, and a
    // room's driver is a kilobyte; boxed, an idle room's task stays small.
    tokio::spawn(Box::new(driver).run());
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

    /// Commits `change` in a task of its own (the mirror never waits on the
    /// store) and answers the room's version after it.
    fn spawn_commit_answering_version<F>(
        self,
        room_id: String,
        respond_to: oneshot::Sender<Result<u64, RoomError>>,
        change: F,
    ) where
        F: FnMut(&mut Room, i64) -> Result<Vec<Event>, CommandError> + Send + 'static,
    {
        tokio::spawn(async move {
            let committed = self.commit(&room_id, None, change).await;
            // A requester that stopped waiting is no error.
            let _ = respond_to.send(committed.map(|(room, _)| room.version));
        });
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

struct MirrorRoom {
    /// This node's mirror of the shared room.
    room: Room,
    /// The open ready gate's progress as heard (the tally itself is shared).
    tally: ReadyTally,
    /// The gate this node last tried to release after listeners left.
    release_tried: Option<u64>,
    /// The votes to skip the loaded item as heard (the voters are kept in
    /// the shared store, so that every node counts all of them).
    votes: VoteTally,
    /// The item this node last tried to skip by votes.
    skip_tried: Option<u64>,
    /// Streams that ended here whose votes are to be taken back.
    votes_gone: Vec<String>,
    hub: Hub,
    link: Link,
    /// The room's sync summary over every node, as last heard.
    sync: SyncAnnouncer,
    /// Events past a gap, waiting for it to be filled.
    pending: BTreeMap<u64, (Event, Option<std::time::Instant>)>,
    /// A catch-up read is under way.
    catching_up: bool,
    catch_up_retry_at: Option<Instant>,
    /// The feed may have lost messages and the shared room could not be read
    /// since: what this mirror holds may be stale. Reads are refused until a
    /// catch-up succeeds; open streams stay open on keepalives meanwhile.
    out_of_touch: bool,
    /// The end timer fired at this version; wait before firing again.
    end_wait: Option<(u64, Instant)>,
    /// When this node last reported its listener count.
    reported_at: Option<Instant>,
    /// Who's here on the other nodes, by node: their named listeners and
    /// until when (server ms) they count.
    others: BTreeMap<String, (Vec<Member>, i64)>,
    /// This node's named listeners as last told to the others; `None` until
    /// first told (a new mirror says so at once, so the others answer).
    shared_named: Option<Vec<Member>>,
    requests_rx: mpsc::Receiver<Boxed>,
    context: ActorContext,
}

impl MirrorRoom {
    async fn run(mut self: Box<Self>) {
        let alarm = self.link.alarm.clone();
        loop {
            let end_at = self.end_deadline();
            let now_ms = self.now();
            let progress_at = self
                .tally
                .progress_deadline(now_ms)
                .map(|at| self.instant_at(at));
            let presence_at = self.hub.presence_deadline();
            let members_at = self.hub.members_deadline();
            let idle = self.context.settings.ttl.min(MIRROR_IDLE);
            let expire_at = self.hub.expiry_deadline(idle);
            let link_at = self.link_deadline();
            let sync_at = self.sync.deadline(now_ms).map(|at| self.instant_at(at));
            let keepalive_at = self.hub.keepalive_deadline();
            let votes_at = self.votes.deadline(now_ms).map(|at| self.instant_at(at));
            tokio::select! {
                biased;
                request = self.requests_rx.recv() => match request {
                    Some(request) => {
                        if self.handle(*request) == Flow::Stop {
                            break;
                        }
                    }
                    // Every handle is gone (see the local driver).
                    None => break,
                },
                _ = self.hub.status.listeners_changed.notified() => {
                    let closed = self.hub.status.take_closed_streams();
                    self.take_votes_back(&closed);
                    let gate_changed =
                        self.hub.status.gate_listeners() as u64 != self.link.reported_gate;
                    if self.hub.on_listeners_changed().is_some() || gate_changed {
                        self.report_listeners();
                    }
                    self.forget_votes_gone();
                    self.forget_closed_streams(closed);
                }
                _ = sleep_until_some(sync_at) => {
                    if let Some(summary) = self.sync.due(self.now()) {
                        self.hub.send_live(Frame::sync(&summary));
                    }
                }
                _ = sleep_until_some(progress_at) => self.send_progress(),
                _ = sleep_until_some(votes_at) => self.send_votes(),
                _ = alarm.wait() => self.start_catch_up(),
                _ = sleep_until_some(end_at) => self.on_end_timer(),
                _ = sleep_until_some(presence_at) => {
                    if self.hub.presence_due().is_some() {
                        self.report_listeners();
                    }
                }
                _ = sleep_until_some(members_at) => self.on_members_due(),
                _ = sleep_until_some(link_at) => self.on_link_timer(),
                _ = sleep_until_some(keepalive_at) => self.hub.send_keepalive(),
                _ = sleep_until_some(expire_at) => {
                    // A mirror just goes: the room lives on in the shared store,
                    // which expires it by itself, once, for the whole cluster.
                    if self.hub.listeners() == 0 {
                        break;
                    }
                }
            }
        }
        let this = *self;
        (this.context.on_exit)();
    }

    fn now(&self) -> i64 {
        self.context.clock.now_ms()
    }

    /// The timer instant of server time `at_ms`.
    fn instant_at(&self, at_ms: i64) -> Instant {
        instant_at(&*self.context.clock, at_ms)
    }

    fn view(&self, now: i64) -> RoomView {
        self.hub.with_members(RoomView {
            sync: self.sync.current(),
            ..self.room.view(
                self.link.listeners_now(self.hub.listeners()),
                now,
                self.link.starts.gate,
            )
        })
    }

    fn handle(&mut self, request: Request) -> Flow {
        let Some(request) = self.refuse_stale_read(request) else {
            return Flow::Continue;
        };
        let now = self.now();
        let (room, link, sync) = (&self.room, &self.link, &self.sync);
        let Some(request) = self.hub.answer_read(request, room.version, |hub| {
            hub.with_members(RoomView {
                sync: sync.current(),
                ..room.view(link.listeners_now(hub.listeners()), now, link.starts.gate)
            })
        }) else {
            return Flow::Continue;
        };
        let room_id = self.room.room_id.clone();
        let link = self.link.clone();
        match request {
            Request::Command {
                request,
                token,
                arrived,
                respond_to,
            } => self.commit_command(request, token, arrived, respond_to),
            Request::Chat {
                name,
                text,
                token,
                respond_to,
            } => {
                self.hub.touch();
                link.spawn_commit_answering_version(room_id, respond_to, move |room, now| {
                    let token = token.as_ref().map(|t| t.0.as_str());
                    Ok(vec![room.decide_chat(token, &name, &text, now)?])
                });
            }
            Request::Delete { token, respond_to } => {
                tokio::spawn(async move {
                    let committed = link
                        .commit(&room_id, None, |room, now| {
                            room.authorize(token.as_ref().map(|t| t.0.as_str()), Access::HostOnly)?;
                            Ok(vec![room.close(CloseReason::Deleted, now)])
                        })
                        .await;
                    let _ = respond_to.send(committed.map(|_| ()));
                });
            }
            Request::Ready {
                stream,
                ready_gate,
                respond_to,
            } => self.on_ready(stream, ready_gate, respond_to),
            Request::Cohosts {
                token,
                call,
                respond_to,
            } => {
                self.hub.touch();
                // Checked and changed against the shared room, like a host
                // token reset: every node's next commit reads the co-hosts.
                tokio::spawn(async move {
                    let committed = link
                        .commit(&room_id, None, |room, now| {
                            room.change_cohosts(token.as_ref().map(|t| t.0.as_str()), &call, now)
                        })
                        .await;
                    let answer = committed.map(|(room, _)| room.cohosts_answer(&call));
                    let _ = respond_to.send(answer);
                });
            }
            Request::ResetHostToken {
                token,
                new_token,
                respond_to,
            } => {
                self.hub.touch();
                // Checked and replaced in one compare-and-set against the shared
                // room: every node's next commit reads the new hash.
                link.spawn_commit_answering_version(room_id, respond_to, move |room, now| {
                    room.authorize(token.as_ref().map(|t| t.0.as_str()), Access::HostOnly)?;
                    Ok(vec![room.reset_host_token(&new_token.0, now)])
                });
            }
            Request::SyncReport {
                stream,
                report,
                respond_to,
            } => self.on_sync_report(stream, report, respond_to),
            Request::Feed(feed) => return self.on_feed(feed),
            Request::Kicked { stream, respond_to } => self.answer_kicked(stream, respond_to),
            Request::Vote { stream, respond_to } => self.on_vote(stream, respond_to),
            // Answered above.
            Request::View { .. } | Request::Subscribe { .. } | Request::Resync { .. } => {}
        }
        Flow::Continue
    }

    /// Whether `stream` was kicked: the kicked set is the shared store's, so
    /// a kick on any node counts (spawned; the mirror never waits on the store).
    fn answer_kicked(&self, stream: String, respond_to: oneshot::Sender<Result<bool, RoomError>>) {
        let link = self.link.clone();
        let room_id = self.room.room_id.clone();
        tokio::spawn(async move {
            let kicked = link.shared.kicked(&room_id, &stream).await;
            let _ = respond_to.send(kicked.map_err(RoomError::from));
        });
    }

    /// A listener's sync report: kept beside the others in the store; a
    /// duration the reports now agree on is committed to the shared room.
    fn on_sync_report(
        &mut self,
        stream: String,
        report: DriftReport,
        respond_to: oneshot::Sender<Result<SyncSummary, RoomError>>,
    ) {
        let room_id = self.room.room_id.clone();
        let link = self.link.clone();
        let item = self.room.reported_item();
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
        request: CommandRequest,
        token: Option<HostToken>,
        arrived: std::time::Instant,
        respond_to: oneshot::Sender<Result<CommandReply, RoomError>>,
    ) {
        let room_id = self.room.room_id.clone();
        let link = self.link.clone();
        self.hub.touch();
        let local = self.hub.listeners();
        let command = request.command;
        let expected = request.expected_version;
        let inputs_at = link.inputs(self.hub.status.gate_listeners());
        let sync = self.sync.current();
        let members = self.hub.members();
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
    fn on_feed(&mut self, feed: Feed) -> Flow {
        match feed {
            Feed::Gate {
                ready_gate,
                ready,
                listeners,
            } => {
                self.link.gate_listeners = listeners;
                self.tally.heard(ready_gate, ready);
            }
            Feed::Sync(summary) => {
                if let Some(due) = self.sync.update(summary, self.now()) {
                    self.hub.send_live(Frame::sync(&due));
                }
            }
            Feed::Events { events, arrived } => {
                return self.on_feed_events(events, arrived);
            }
            Feed::Presence {
                listeners,
                gate_listeners,
                server_time,
            } => {
                self.link.gate_listeners = gate_listeners;
                self.tally.touch();
                self.on_listener_total(listeners, server_time);
                self.hub.members_changed();
                // One who took part may have left: the rest may be the quorum.
                self.check_gate();
                self.votes.touch();
                self.check_votes();
            }
            Feed::CaughtUp(result) => return self.on_caught_up(*result),
            Feed::Votes { item, skip } => {
                self.votes.heard(item, skip);
                self.check_votes();
            }
            Feed::Kick { stream } => {
                self.hub.kick(&stream, self.now());
            }
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
                        self.share_members(named.clone());
                    }
                }
                self.hub.members_changed();
            }
        }
        Flow::Continue
    }

    /// Answers a read `Unavailable` while out of touch (a stale room must not
    /// be served as the current one); hands any other request back.
    fn refuse_stale_read(&self, request: Request) -> Option<Request> {
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

    /// Takes committed events in version order, whatever order they came in; a
    /// gap is filled from the shared history.
    fn on_feed_events(&mut self, events: Vec<Event>, arrived: Option<std::time::Instant>) -> Flow {
        for event in events {
            if event.version > self.room.version {
                self.pending.insert(event.version, (event, arrived));
            }
        }
        if self.pending.len() > MAX_PENDING {
            // Too far behind to buffer: start over from the room as it is now.
            self.pending.clear();
            self.start_catch_up();
            return Flow::Continue;
        }
        self.drain_pending()
    }

    fn drain_pending(&mut self) -> Flow {
        while let Some(entry) = self.pending.first_entry() {
            let version = *entry.key();
            if version <= self.room.version {
                entry.remove();
                continue;
            }
            if version != self.room.version + 1 {
                break;
            }
            let (event, arrived) = entry.remove();
            self.room.absorb(&event);
            self.tally.follow(self.room.state.ready_gate);
            self.votes.follow(self.room.item_since);
            let closed = matches!(event.kind, EventKind::Closed { .. });
            let vote_skip_set = matches!(event.kind, EventKind::VoteSkip { .. });
            self.hub.publish(vec![event], arrived);
            if closed {
                tracing::info!(room_id = %self.room.room_id, "shared room closed");
                return Flow::Stop;
            }
            if vote_skip_set {
                // A lower bar may be met by the votes that stand.
                self.votes.touch();
                self.check_votes();
            }
        }
        if !self.pending.is_empty() {
            self.start_catch_up();
        }
        Flow::Continue
    }

    /// Reads what the mirror may have missed (spawned; the answer comes back as
    /// [`Feed::CaughtUp`]). One read at a time.
    fn start_catch_up(&mut self) {
        if self.catching_up {
            return;
        }
        self.catching_up = true;
        self.catch_up_retry_at = None;
        let link = self.link.clone();
        let room_id = self.room.room_id.clone();
        let after = self.room.version;
        tokio::spawn(async move {
            let result = link.shared.catch_up(&room_id, after).await;
            link.deliver(Feed::CaughtUp(Box::new(result))).await;
        });
    }

    fn on_caught_up(&mut self, result: Result<CatchUp, Unavailable>) -> Flow {
        self.catching_up = false;
        let caught_up = match result {
            Ok(caught_up) => caught_up,
            Err(Unavailable) => {
                // The store is away: streams stay open on keepalives; try again soon.
                if !self.out_of_touch {
                    tracing::warn!(room_id = %self.room.room_id, "mirror out of touch with the shared room");
                }
                self.out_of_touch = true;
                self.catch_up_retry_at = Some(Instant::now() + CATCH_UP_RETRY);
                return Flow::Continue;
            }
        };
        self.out_of_touch = false;
        let Some(room) = caught_up.room else {
            // The room was deleted (or expired) while this node was not hearing.
            let event = self.room.close(CloseReason::Deleted, self.now());
            self.hub.publish(vec![event], None);
            return Flow::Stop;
        };
        if caught_up.rewritten {
            self.pending.clear();
        }
        for event in caught_up.events {
            if event.version > self.room.version {
                self.pending.insert(event.version, (event, None));
            }
        }
        if self.drain_pending() == Flow::Stop {
            return Flow::Stop;
        }
        if self.room.version < room.version || caught_up.rewritten {
            // The shared history no longer reaches back to us: listeners get a
            // fresh snapshot (the state is idempotent) and replay restarts here.
            tracing::info!(room_id = %room.room_id, from = self.room.version, to = room.version, "mirror resynced");
            self.room = room;
            self.votes.follow(self.room.item_since);
            self.hub.forget_history();
            let view = self.view(self.now());
            let snapshot = match caught_up.rewritten {
                true => Frame::restart(&view),
                false => Frame::snapshot(&view),
            };
            self.hub.send_live(snapshot);
            self.pending
                .retain(|version, _| *version > self.room.version);
            self.catching_up = false;
            return self.drain_pending();
        }
        Flow::Continue
    }

    /// The listener total over every node changed.
    fn on_listener_total(&mut self, listeners: u64, server_time: i64) {
        self.link.listeners = listeners;
        self.hub.send_live(Frame::presence(listeners, server_time));
    }

    /// A catch-up retry, the listener-count heartbeat.
    fn link_deadline(&self) -> Option<Instant> {
        let heartbeat = (self.hub.listeners() > 0).then(|| {
            self.reported_at
                .map_or_else(Instant::now, |at| at + HEARTBEAT)
        });
        match (self.catch_up_retry_at, heartbeat) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn on_link_timer(&mut self) {
        if self
            .catch_up_retry_at
            .is_some_and(|at| at <= Instant::now())
        {
            self.start_catch_up();
        }
        if self.hub.listeners() > 0
            && self
                .reported_at
                .is_none_or(|at| at + HEARTBEAT <= Instant::now())
        {
            self.report_listeners();
            // Said again while there is anything to say, so the others keep
            // counting it (and a node that came later hears it).
            if let Some(named) = self.shared_named.as_ref().filter(|n| !n.is_empty()) {
                self.share_members(named.clone());
            }
            // Another node's names may have expired meanwhile.
            self.hub.members_changed();
            if self.sync.current().reporting > 0 {
                // Expired reports leave the summary even when nobody reports.
                self.change_sync(SyncChange::Sweep);
            }
        }
    }

    /// Who's here is due: this node's named listeners go to the others when
    /// they changed, and this node's listeners hear what changed over all.
    fn on_members_due(&mut self) {
        let now = self.now();
        self.others.retain(|_, (_, expires_at)| *expires_at >= now);
        let mut named = self.hub.named_here();
        named.truncate(MAX_SHOWN_MEMBERS);
        if self.shared_named.as_ref() != Some(&named) {
            self.shared_named = Some(named.clone());
            self.share_members(named.clone());
        }
        for (members, _) in self.others.values() {
            named.extend(members.iter().cloned());
        }
        let listeners = self.link.listeners_now(self.hub.listeners());
        self.hub.members_due(&named, listeners);
    }

    /// Tells the other nodes (spawned); a failure is made good by the next heartbeat.
    fn share_members(&self, members: Vec<Member>) {
        let link = self.link.clone();
        let room_id = self.room.room_id.clone();
        tokio::spawn(async move {
            let _ = link.shared.share_members(&room_id, members).await;
        });
    }

    /// Streams that ended here stop counting in the shared store at once.
    fn forget_closed_streams(&mut self, closed: Vec<String>) {
        self.hub.forget_streams(&closed);
        if closed.is_empty() || self.sync.current().reporting == 0 {
            return;
        }
        for batch in closed.chunks(FORGET_BATCH) {
            self.change_sync(SyncChange::Forget(batch.to_vec()));
        }
    }

    /// Changes the shared reports (spawned); a changed summary comes back on the feed.
    fn change_sync(&self, change: SyncChange) {
        let link = self.link.clone();
        let room_id = self.room.room_id.clone();
        tokio::spawn(async move {
            // A failed sweep is retried by the next heartbeat; reports of streams
            // whose forgetting failed expire by themselves.
            let _ = link.shared.sync(&room_id, change).await;
        });
    }

    /// Tells the store how many listeners this node has here (which keeps the
    /// room alive and makes the total every node announces; it comes back on
    /// the feed).
    fn report_listeners(&mut self) {
        let count = self.hub.listeners();
        let gate_count = self.hub.status.gate_listeners();
        self.link.reported = count as u64;
        self.link.reported_gate = gate_count as u64;
        self.reported_at = Some(Instant::now());
        let link = self.link.clone();
        let room_id = self.room.room_id.clone();
        let counts = self.hub.status.clone();
        let gone = std::mem::take(&mut self.votes_gone);
        let item = self.room.item_since;
        tokio::spawn(async move {
            // One report at a time, each with the counts as they are when its turn
            // comes: two spawned reports must not land in the wrong order (the
            // older count would stand until the next heartbeat).
            let _turn = link.reporting.lock().await;
            forget_votes(&link, &room_id, item, gone).await;
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

    fn end_deadline(&self) -> Option<Instant> {
        if let Some((version, at)) = self.end_wait {
            if version == self.room.version {
                return Some(at);
            }
        }
        Some(self.instant_at(self.room.next_due()?))
    }

    /// A pending start, or the end of the video, is due.
    fn on_end_timer(&mut self) {
        // Every node serving the room fires; the compare-and-set lets one win and
        // the others find nothing left to do. Until the version moves, wait.
        self.end_wait = Some((self.room.version, Instant::now() + END_RETRY));
        let link = self.link.clone();
        let room_id = self.room.room_id.clone();
        let inputs_at = link.inputs(self.hub.status.gate_listeners());
        tokio::spawn(async move {
            if let Err(error) = link
                .commit(&room_id, None, |room, now| Ok(room.on_due(&inputs_at(now))))
                .await
            {
                tracing::debug!(%room_id, %error, "start or end of video not committed");
            }
        });
    }

    /// A page's readiness report: counted in the shared tally, and the start
    /// committed (once, by compare-and-set) when the gate has its quorum.
    fn on_ready(
        &mut self,
        stream: String,
        ready_gate: u64,
        respond_to: tokio::sync::oneshot::Sender<Result<GateProgress, RoomError>>,
    ) {
        if self.room.state.ready_gate != Some(ready_gate) {
            let _ = respond_to.send(Ok(GateProgress {
                ready_gate: self.room.state.ready_gate,
                ready: self.tally.ready(),
                listeners: self.link.gate_listeners,
                counted: false,
            }));
            return;
        }
        let link = self.link.clone();
        let room_id = self.room.room_id.clone();
        let settings = self.room.gate(link.starts.gate);
        let inputs_at = link.inputs(self.hub.status.gate_listeners());
        tokio::spawn(async move {
            let reply = match link
                .shared
                .report_ready(&room_id, ready_gate, &stream)
                .await
            {
                Ok((ready, listeners)) => {
                    if settings.met(ready, listeners) {
                        link.release_gate(&room_id, ready_gate, inputs_at).await;
                    }
                    Ok(GateProgress {
                        ready_gate: Some(ready_gate),
                        ready,
                        listeners,
                        counted: true,
                    })
                }
                Err(unavailable) => Err(RoomError::from(unavailable)),
            };
            let _ = respond_to.send(reply);
        });
    }

    /// Commits the start when the open gate has its quorum of the taking-part
    /// listeners over every node as last heard (after some left). Every node
    /// serving the room may find it so; the compare-and-set commits one start,
    /// and each node tries once per gate.
    fn check_gate(&mut self) {
        let heard = Inputs {
            now: self.now(),
            starts: self.link.starts,
            gate_listeners: self.link.gate_listeners,
            pick: 0,
        };
        let Some(gate) = self.room.gate_met(self.tally.ready(), &heard) else {
            return;
        };
        if self.release_tried == Some(gate) {
            return;
        }
        self.release_tried = Some(gate);
        let link = self.link.clone();
        let room_id = self.room.room_id.clone();
        let inputs_at = link.inputs(self.hub.status.gate_listeners());
        tokio::spawn(async move { link.release_gate(&room_id, gate, inputs_at).await });
    }

    /// Streams that ended here take their votes back, and are remembered as
    /// gone so that their tokens add no vote later, while vote skip is on.
    fn take_votes_back(&mut self, closed: &[String]) {
        if self.room.vote_skip.is_on() && self.votes_gone.len() < MAX_CLOSED_STREAMS_PENDING {
            self.votes_gone.extend_from_slice(closed);
        }
    }

    /// Takes back the votes of streams that ended (spawned; the change comes
    /// back on the feed). In the turn of the listener-count reports: a vote
    /// must be gone before the count without its stream reaches other nodes,
    /// or they could find the votes enough that no longer are.
    fn forget_votes_gone(&mut self) {
        if self.votes_gone.is_empty() {
            return;
        }
        let gone = std::mem::take(&mut self.votes_gone);
        let link = self.link.clone();
        let room_id = self.room.room_id.clone();
        let item = self.room.item_since;
        tokio::spawn(async move {
            let _turn = link.reporting.lock().await;
            forget_votes(&link, &room_id, item, gone).await;
        });
    }

    /// A listener's vote to skip the loaded item: counted in the shared store
    /// (once per stream and item), and the skip committed (once, by
    /// compare-and-set) when the votes are enough.
    fn on_vote(
        &mut self,
        stream: String,
        respond_to: oneshot::Sender<Result<VoteProgress, RoomError>>,
    ) {
        let settings = self.room.vote_skip;
        if !settings.is_on() {
            let _ = respond_to.send(Err(CommandError::InvalidCommand(VOTES_OFF.into()).into()));
            return;
        }
        let listeners = self.link.listeners_now(self.hub.listeners());
        let (skip, item) = (self.votes.skip(), self.room.item_since);
        if self.room.state.source.is_none() {
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
        let room_id = self.room.room_id.clone();
        let inputs_at = link.inputs(self.hub.status.gate_listeners());
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

    /// Commits the skip when the votes as last heard are enough with the
    /// listeners over every node (after a vote elsewhere, or after some left).
    /// Every node serving the room may find it so; the compare-and-set skips
    /// once, and each node tries once per item.
    fn check_votes(&mut self) {
        let listeners = self.link.listeners_now(self.hub.listeners());
        let skip = self.votes.skip();
        let Some(item) = self.room.vote_skip_met(skip, listeners) else {
            return;
        };
        if self.skip_tried == Some(item) {
            return;
        }
        self.skip_tried = Some(item);
        let link = self.link.clone();
        let room_id = self.room.room_id.clone();
        let inputs_at = link.inputs(self.hub.status.gate_listeners());
        tokio::spawn(async move {
            link.skip_by_vote(&room_id, item, skip, listeners, inputs_at)
                .await
        });
    }

    /// Tells this node's listeners how the votes to skip stand (coalesced).
    fn send_votes(&mut self) {
        let listeners = self.link.listeners_now(self.hub.listeners());
        let now = self.now();
        if let Some(votes) = self.votes.due(&self.room.vote_skip, listeners, now) {
            self.hub.send_live(Frame::votes(votes, now));
        }
    }

    /// Tells this node's listeners how far the open gate is (coalesced).
    fn send_progress(&mut self) {
        let (listeners, now) = (self.link.gate_listeners, self.now());
        if let Some(frame) = progress_frame(&mut self.tally, &self.room, listeners, now) {
            self.hub.send_live(frame);
        }
    }
}

/// Takes back the votes of streams that ended, in batches. A vote that could
/// not be taken back (the store away) stays until the item changes: votes are
/// kept per item.
async fn forget_votes(link: &Link, room_id: &str, item: u64, gone: Vec<String>) {
    for batch in gone.chunks(FORGET_BATCH) {
        let forget = VoteChange::Forget(batch.to_vec());
        if link.shared.vote(room_id, item, forget).await.is_err() {
            return;
        }
    }
}
