//! The one room actor: one task per room, one loop, one timer. Every rule
//! about time and about the room's own progress is written here once: the
//! start or end of an item (and the wait before firing again), the ready gate's
//! quorum and progress, votes to skip, presence and who's here, the sync
//! summary's announcement, keepalives, idle expiry, and the requests that are
//! decided by the room alone (chat, co-hosts, host token reset, delete).
//!
//! What differs between the places a room is kept sits behind [`Store`]:
//! kept here ([`super::local`]), a change is applied at once and published;
//! kept in a shared store ([`super::mirror`]), a task of its own commits it
//! and the events come back on the feed. The actor cannot tell them apart,
//! as Centrifugo's hub cannot tell its memory engine from its Redis one.
//!
//! The loop sleeps until the earliest deadline (one timer-wheel entry), then
//! does whatever is due. A room kept here that nobody listens to and with
//! nothing due gives its task up (see [`Inbox`]) until a request or the
//! registry's expiry sweep wakes it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::handle::{Boxed, HostToken, Inbox, Request, Sleeper};
use super::hub::Hub;
use super::port::{Feed, FeedAlarm};
use super::{instant_at, progress_frame, sleep_until_some, ActorContext};
use crate::room::command::{CommandError, CommandRequest};
use crate::room::error::RoomError;
use crate::room::event::{CloseReason, Event, EventKind, Frame};
use crate::room::gate::{GateProgress, ReadyTally};
use crate::room::members::Member;
use crate::room::state::{Access, GateSettings, Room, RoomView};
use crate::room::sync::{DriftReport, SyncAnnouncer, SyncSummary};
use crate::room::votes::{VoteProgress, VoteTally, VOTES_OFF};
use crate::room::Inputs;

/// Pause before a start or end of an item that changed nothing is tried
/// again (a shared room's other nodes fire too; one of them wins).
const END_RETRY: Duration = Duration::from_secs(1);

/// Where the change a rule decided goes, and what it answers: the room after
/// it and whether anything changed, or why not.
pub(crate) type Settled<'a> = Result<(&'a Room, bool), RoomError>;

/// What differs between the places a room is kept; the actor asks it and
/// never which one it is.
pub(crate) trait Store: Send + Sized + 'static {
    /// The room's listeners over every node, with `here` listening on this one.
    fn listeners_with(&self, here: usize) -> u64;

    /// Whether the votes as heard agree with [`Store::listeners_with`]: not
    /// while votes of streams that ended here are being taken back elsewhere.
    fn votes_settled(&self) -> bool {
        true
    }

    /// Whether a listener at `version` may hold an event the room's history
    /// no longer has (a shared store that lost it): its resume cannot be
    /// replayed, and gets a snapshot.
    fn in_doubt(&self, _version: u64) -> bool {
        false
    }

    /// Those taking part in the open ready gate, as its quorum counts them.
    fn gate_listeners(&self, core: &Core) -> u64;

    /// How long the room's actor lives without listeners or activity (`None`:
    /// for ever).
    fn idle(&self, core: &Core) -> Option<Duration>;

    /// Where the actor may give its task up while idle, if anywhere.
    fn inbox(&self) -> Option<Arc<Inbox>>;

    /// Raised when what this actor holds may be stale (a feed that lost
    /// messages), if the store can say so.
    fn alarm(&self) -> Option<Arc<FeedAlarm>>;

    /// The alarm was raised.
    fn on_alarm(&mut self, core: &mut Core);

    /// The earliest of the store's own timers.
    fn deadline(&self, core: &Core) -> Option<Instant>;

    /// One of the store's own timers is due at `now`.
    fn on_timer(&mut self, core: &mut Core, now: Instant);

    /// Commits `change` to the room, with what a change depends on besides
    /// the room given to it; `settled` gets the outcome. Here the change
    /// applies at once and is published before `settled` runs; shared, a task
    /// of its own commits it, and the events come back on the feed before
    /// `settled` runs (so a read that follows the answer sees them).
    fn commit<C, A>(
        &mut self,
        core: &mut Core,
        arrived: Option<std::time::Instant>,
        change: C,
        settled: A,
    ) where
        C: FnMut(&mut Room, &Inputs) -> Result<Vec<Event>, CommandError> + Send + 'static,
        A: FnOnce(Settled<'_>) + Send + 'static;

    /// A client's command (what is decided besides the room differs: the
    /// persistent rooms' count, where kicked streams are kept).
    fn command(
        &mut self,
        core: &mut Core,
        request: CommandRequest,
        token: Option<HostToken>,
        arrived: std::time::Instant,
        respond_to: oneshot::Sender<Result<super::handle::CommandReply, RoomError>>,
    );

    /// A page's readiness for the open gate: counted, and the gate checked.
    fn ready(
        &mut self,
        core: &mut Core,
        stream: String,
        ready_gate: u64,
        respond_to: oneshot::Sender<Result<GateProgress, RoomError>>,
    );

    /// A listener's vote to skip the loaded item (vote skip is on): counted, and the votes checked.
    fn vote(
        &mut self,
        core: &mut Core,
        stream: String,
        respond_to: oneshot::Sender<Result<VoteProgress, RoomError>>,
    );

    /// A listener's sync report: kept with the others, the summary answered.
    fn sync_report(
        &mut self,
        core: &mut Core,
        stream: String,
        report: DriftReport,
        respond_to: oneshot::Sender<Result<SyncSummary, RoomError>>,
    );

    /// Whether `stream` was kicked from the room.
    fn kicked(
        &self,
        core: &Core,
        stream: String,
        respond_to: oneshot::Sender<Result<bool, RoomError>>,
    );

    /// What the store tells the actor (a shared store's feed).
    fn feed(&mut self, core: &mut Core, feed: Feed);

    /// Answers a read the store cannot serve now (stale); hands any other back.
    fn refuse_read(&self, request: Request) -> Option<Request>;

    /// Presence is due: `listeners` here to announce, if they changed.
    fn announce(&mut self, core: &mut Core, listeners: Option<u64>);

    /// A listener came or went here: `listeners` to announce (as for
    /// [`Store::announce`]), and the streams that ended.
    fn listeners_changed(&mut self, core: &mut Core, listeners: Option<u64>, closed: Vec<String>);

    /// Who's here is due: the named listeners over every node, and the total.
    fn members(&mut self, core: &mut Core) -> (Vec<Member>, u64);

    /// The room was idle for [`Store::idle`]: it closes (here), or this node's
    /// actor just goes (shared: the store expires the room itself, once).
    fn expire(&mut self, core: &mut Core);

    /// The actor ends.
    fn on_exit(&mut self, core: &Core);
}

/// What every room's actor holds, whichever store keeps the room.
pub(crate) struct Core {
    /// The room as this actor knows it (a shared room: its mirror here).
    pub room: Room,
    /// Who reported the open ready gate's item loaded (as heard, for a shared room).
    pub tally: ReadyTally,
    /// The gate this actor last tried to release (once per gate).
    pub release_tried: Option<u64>,
    /// Who voted to skip the loaded item (as heard, for a shared room).
    pub votes: VoteTally,
    /// The item this actor last tried to skip by votes (once per item).
    pub skip_tried: Option<u64>,
    pub hub: Hub,
    /// The room's sync summary, and when to announce it.
    pub sync: SyncAnnouncer,
    /// The start or end fired at this version; wait before firing again.
    pub end_wait: Option<(u64, Instant)>,
    /// The actor ends after this turn (the room closed, or the mirror goes).
    pub stopping: bool,
    pub context: ActorContext,
}

impl Core {
    pub(crate) fn new(room: Room, hub: Hub, context: ActorContext) -> Self {
        let votes = VoteTally::following(room.item_since);
        Self {
            room,
            tally: ReadyTally::default(),
            release_tried: None,
            votes,
            skip_tried: None,
            hub,
            sync: SyncAnnouncer::default(),
            end_wait: None,
            stopping: false,
            context,
        }
    }

    pub(crate) fn now(&self) -> i64 {
        self.context.clock.now_ms()
    }

    /// The timer instant of server time `at_ms`.
    pub(crate) fn instant_at(&self, at_ms: i64) -> Instant {
        instant_at(&*self.context.clock, at_ms)
    }

    /// The room as its listeners see it, with `listeners` over every node.
    pub(crate) fn view(&self, listeners: u64, now: i64) -> RoomView {
        let gate = self.context.settings.starts.gate;
        view(&self.room, &self.hub, &self.sync, gate, listeners, now)
    }

    /// The summary changed: announced when due.
    pub(crate) fn take_sync(&mut self, summary: SyncSummary) {
        if let Some(due) = self.sync.update(summary, self.now()) {
            self.hub.send_live(Frame::sync(&due));
        }
    }

    /// When a pending start or the end of the item is due.
    fn due_deadline(&self) -> Option<Instant> {
        if let Some((version, at)) = self.end_wait {
            if version == self.room.version {
                return Some(at);
            }
        }
        Some(self.instant_at(self.room.next_due()?))
    }
}

/// The room as its listeners see it; `gate`: the server's gate settings.
fn view(
    room: &Room,
    hub: &Hub,
    sync: &SyncAnnouncer,
    gate: GateSettings,
    listeners: u64,
    now: i64,
) -> RoomView {
    hub.with_members(RoomView {
        sync: sync.current(),
        ..room.view(listeners, now, gate)
    })
}

/// Hands committed events to the listeners and follows them: the gate, the
/// item voted on, a lower bar for votes, the room's close.
pub(crate) fn publish<S: Store>(
    store: &mut S,
    core: &mut Core,
    events: Vec<Event>,
    arrived: Option<std::time::Instant>,
) {
    if events.is_empty() {
        return;
    }
    let closed = events
        .iter()
        .any(|event| matches!(event.kind, EventKind::Closed { .. }));
    let vote_skip_set = events
        .iter()
        .any(|event| matches!(event.kind, EventKind::VoteSkip { .. }));
    core.hub.publish(events, arrived);
    core.tally.follow(core.room.state.ready_gate);
    core.votes.follow(core.room.item_since);
    if closed {
        core.stopping = true;
        return;
    }
    if vote_skip_set {
        // A lower bar may be met by the votes that stand.
        core.votes.touch();
        check_votes(store, core);
    }
}

/// Releases the open gate's start when its quorum is ready (once per gate:
/// a shared room's other nodes may find it so too; the commit lets one win).
pub(crate) fn check_gate<S: Store>(store: &mut S, core: &mut Core) {
    if core.room.state.ready_gate.is_none() {
        return;
    }
    core.tally.touch();
    let heard = Inputs {
        now: core.now(),
        starts: core.context.settings.starts,
        gate_listeners: store.gate_listeners(core),
        pick: 0,
    };
    let Some(gate) = core.room.gate_met(core.tally.ready(), &heard) else {
        return;
    };
    if core.release_tried == Some(gate) {
        return;
    }
    core.release_tried = Some(gate);
    let room_id = core.room.room_id.clone();
    let release = move |room: &mut Room, inputs: &Inputs| Ok(room.release_gate(gate, inputs));
    store.commit(core, None, release, move |settled| {
        if let Err(error) = settled {
            tracing::debug!(%room_id, %error, "ready gate not released");
        }
    });
}

/// Skips the loaded item when the votes are enough with the listeners over
/// every node (once per item; the room decides again when it commits).
pub(crate) fn check_votes<S: Store>(store: &mut S, core: &mut Core) {
    if !store.votes_settled() {
        return;
    }
    let listeners = store.listeners_with(core.hub.listeners());
    let skip = core.votes.skip();
    let Some(item) = core.room.vote_skip_met(skip, listeners) else {
        return;
    };
    if core.skip_tried == Some(item) {
        return;
    }
    core.skip_tried = Some(item);
    let room_id = core.room.room_id.clone();
    let skip_item = move |room: &mut Room, inputs: &Inputs| {
        Ok(match room.vote_skip_met(skip, listeners) {
            Some(met) if met == item => room.skip_by_vote(item, inputs),
            _ => Vec::new(),
        })
    };
    store.commit(core, None, skip_item, move |settled| {
        if let Err(error) = settled {
            tracing::debug!(%room_id, %error, "vote skip not committed");
        }
    });
}

/// Listeners left or came: one who took part in the gate may have left (the
/// rest may be the quorum), and fewer listeners need fewer votes.
pub(crate) fn recount<S: Store>(store: &mut S, core: &mut Core) {
    check_gate(store, core);
    core.votes.touch();
    check_votes(store, core);
}

/// A room's deadlines; the loop sleeps until the earliest.
struct Timers {
    /// A pending start, or the end of the item.
    due: Option<Instant>,
    /// The coalesced `gate` progress and `votes` frames.
    frames: Option<Instant>,
    presence: Option<Instant>,
    members: Option<Instant>,
    /// The sync summary's announcement.
    sync: Option<Instant>,
    keepalive: Option<Instant>,
    /// The store's own (sync reports' expiry; heartbeat, catch-up retry).
    store: Option<Instant>,
    expiry: Option<Instant>,
}

impl Timers {
    /// The earliest deadline but expiry (which alone lets a room sleep).
    fn busy(&self) -> Option<Instant> {
        [
            self.due,
            self.frames,
            self.presence,
            self.members,
            self.sync,
            self.keepalive,
            self.store,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn next(&self) -> Option<Instant> {
        self.busy().into_iter().chain(self.expiry).min()
    }
}

/// One room's actor over the store `S` that keeps the room.
pub(crate) struct RoomActor<S> {
    core: Core,
    store: S,
}

impl<S: Store> Sleeper for RoomActor<S> {
    fn wake(self: Box<Self>, requests_rx: mpsc::Receiver<Boxed>) {
        tokio::spawn(self.run(requests_rx));
    }
}

impl<S: Store> RoomActor<S> {
    /// Starts the actor on `requests_rx`.
    pub(crate) fn start(core: Core, store: S, requests_rx: mpsc::Receiver<Boxed>) {
        // Boxed: an async fn keeps its argument in its future twice over, and a
        // room's actor is a kilobyte; boxed, an idle room's task stays small.
        Box::new(Self { core, store }).wake(requests_rx);
    }

    async fn run(mut self: Box<Self>, mut requests_rx: mpsc::Receiver<Boxed>) {
        let alarm = self.store.alarm();
        let status = self.core.hub.status.clone();
        loop {
            let timers = self.timers();
            // Idle: nobody listening (else no expiry) and nothing else due. The
            // room gives its task up until the next request or the expiry sweep.
            if timers.busy().is_none() {
                let expiring = timers.expiry.filter(|at| *at > Instant::now());
                if let (Some(expires_at), Some(inbox)) = (expiring, self.store.inbox()) {
                    match inbox.sleep(self, &requests_rx, expires_at) {
                        Ok(()) => return,
                        Err(actor) => self = actor,
                    }
                }
            }
            tokio::select! {
                biased;
                request = requests_rx.recv() => match request {
                    Some(request) => self.handle(*request),
                    // Every handle is gone (the room was dropped from the registry at
                    // shutdown): nobody can reach this room any more. Requests
                    // already queued were answered first, so in-flight commands
                    // complete during a graceful shutdown.
                    None => break,
                },
                _ = status.listeners_changed.notified() => self.on_listeners_changed(),
                _ = wait_alarm(alarm.as_deref()) => self.store.on_alarm(&mut self.core),
                _ = sleep_until_some(timers.next()) => self.on_timers(&timers, Instant::now()),
            }
            if self.core.stopping {
                break;
            }
        }
        let Self { core, mut store } = *self;
        store.on_exit(&core);
        (core.context.on_exit)();
    }

    /// Every deadline, as the room stands now.
    fn timers(&self) -> Timers {
        let core = &self.core;
        let now_ms = core.now();
        let frames = [
            core.tally.progress_deadline(now_ms),
            core.votes.deadline(now_ms),
        ];
        Timers {
            due: core.due_deadline(),
            frames: frames
                .into_iter()
                .flatten()
                .min()
                .map(|at| core.instant_at(at)),
            presence: core.hub.presence_deadline(),
            members: core.hub.members_deadline(),
            sync: core.sync.deadline(now_ms).map(|at| core.instant_at(at)),
            keepalive: core.hub.keepalive_deadline(),
            store: self.store.deadline(core),
            expiry: self
                .store
                .idle(core)
                .and_then(|idle| core.hub.expiry_deadline(idle)),
        }
    }

    /// Does what is due at `now` of `timers`.
    fn on_timers(&mut self, timers: &Timers, now: Instant) {
        let due = |at: Option<Instant>| at.is_some_and(|at| at <= now);
        let (core, store) = (&mut self.core, &mut self.store);
        if due(timers.due) {
            on_due(store, core);
        }
        if due(timers.frames) {
            send_due_frames(store, core);
        }
        if due(timers.presence) && core.hub.presence_is_due(now) {
            let listeners = core.hub.presence_due();
            store.announce(core, listeners);
        }
        if due(timers.members) && core.hub.members_is_due(now) {
            let (named, listeners) = store.members(core);
            core.hub.members_due(&named, listeners);
        }
        if due(timers.store) {
            store.on_timer(core, now);
        }
        if due(timers.sync) {
            if let Some(summary) = core.sync.due(core.now()) {
                core.hub.send_live(Frame::sync(&summary));
            }
        }
        if due(timers.keepalive) {
            core.hub.send_keepalive();
        }
        if due(timers.expiry) && core.hub.listeners() == 0 && !core.stopping {
            store.expire(core);
        }
    }

    fn on_listeners_changed(&mut self) {
        let (core, store) = (&mut self.core, &mut self.store);
        let closed = core.hub.status.take_closed_streams();
        // A stream that ended counts for nothing any more: its readiness and
        // its vote go with it (a shared store takes them back there too).
        for stream in &closed {
            core.tally.forget(stream);
            core.votes.forget(stream);
        }
        let listeners = core.hub.on_listeners_changed();
        store.listeners_changed(core, listeners, closed);
    }

    fn handle(&mut self, request: Request) {
        // A report names a stream: a stream that ended before it is followed
        // first (its count, readiness and vote gone), so that its report
        // cannot count with the listeners already counted without it.
        if matches!(request, Request::Ready { .. } | Request::Vote { .. })
            && self.core.hub.status.has_closed_streams()
        {
            self.on_listeners_changed();
        }
        let (core, store) = (&mut self.core, &mut self.store);
        let Some(mut request) = store.refuse_read(request) else {
            return;
        };
        if let Request::Subscribe { last_event_id, .. } = &mut request {
            if last_event_id.is_some_and(|seen| store.in_doubt(seen)) {
                *last_event_id = None;
            }
        }
        let now = core.now();
        let (room, sync) = (&core.room, &core.sync);
        let (version, gate) = (room.version, core.context.settings.starts.gate);
        let Some(request) = core.hub.answer_read(request, version, |hub| {
            view(
                room,
                hub,
                sync,
                gate,
                store.listeners_with(hub.listeners()),
                now,
            )
        }) else {
            return;
        };
        // A requester that stopped waiting (client gone) is no error: the answer is
        // simply dropped. That is what every `let _ = respond_to.send(..)` means.
        match request {
            Request::Command {
                request,
                token,
                arrived,
                respond_to,
            } => store.command(core, request, token, arrived, respond_to),
            request @ (Request::Chat { .. }
            | Request::Cohosts { .. }
            | Request::ResetHostToken { .. }
            | Request::Delete { .. }) => decided_by_room(store, core, request),
            Request::Ready {
                stream,
                ready_gate,
                respond_to,
            } => store.ready(core, stream, ready_gate, respond_to),
            Request::SyncReport {
                stream,
                report,
                respond_to,
            } => store.sync_report(core, stream, report, respond_to),
            Request::Kicked { stream, respond_to } => store.kicked(core, stream, respond_to),
            Request::Vote { stream, respond_to } => vote(store, core, stream, respond_to),
            Request::Feed(feed) => store.feed(core, feed),
            // Answered above.
            Request::View { .. } | Request::Subscribe { .. } | Request::Resync { .. } => {}
        }
    }
}

/// A vote to skip the loaded item: refused while the room has vote skip off
/// (in either store), else counted by the store.
fn vote<S: Store>(
    store: &mut S,
    core: &mut Core,
    stream: String,
    respond_to: oneshot::Sender<Result<VoteProgress, RoomError>>,
) {
    if !core.room.vote_skip.is_on() {
        let _ = respond_to.send(Err(CommandError::InvalidCommand(VOTES_OFF.into()).into()));
        return;
    }
    store.vote(core, stream, respond_to);
}

/// The requests the room alone decides, committed like any change: chat,
/// co-hosts, a host token reset, delete.
fn decided_by_room<S: Store>(store: &mut S, core: &mut Core, request: Request) {
    match request {
        Request::Chat {
            name,
            text,
            token,
            respond_to,
        } => {
            core.hub.touch();
            let chat = move |room: &mut Room, inputs: &Inputs| {
                let token = token.as_ref().map(|t| t.0.as_str());
                Ok(vec![room.decide_chat(token, &name, &text, inputs.now)?])
            };
            store.commit(core, None, chat, answer_version(respond_to));
        }
        Request::Cohosts {
            token,
            call,
            respond_to,
        } => {
            core.hub.touch();
            // Checked and changed against the room as committed: a shared
            // room's every node reads the co-hosts at its next commit.
            let answered = call.clone();
            let change = move |room: &mut Room, inputs: &Inputs| {
                room.change_cohosts(token.as_ref().map(|t| t.0.as_str()), &call, inputs.now)
            };
            store.commit(core, None, change, move |settled| {
                let answer = settled.map(|(room, _)| room.cohosts_answer(&answered));
                let _ = respond_to.send(answer);
            });
        }
        Request::ResetHostToken {
            token,
            new_token,
            respond_to,
        } => {
            core.hub.touch();
            // Checked and replaced in one commit: a shared room's every
            // node reads the new hash at its next commit.
            let reset = move |room: &mut Room, inputs: &Inputs| {
                room.authorize(token.as_ref().map(|t| t.0.as_str()), Access::HostOnly)?;
                Ok(vec![room.reset_host_token(&new_token.0, inputs.now)])
            };
            store.commit(core, None, reset, answer_version(respond_to));
        }
        Request::Delete { token, respond_to } => {
            let room_id = core.room.room_id.clone();
            let delete = move |room: &mut Room, inputs: &Inputs| {
                room.authorize(token.as_ref().map(|t| t.0.as_str()), Access::HostOnly)?;
                Ok(vec![room.close(CloseReason::Deleted, inputs.now)])
            };
            store.commit(core, None, delete, move |settled| {
                if settled.is_ok() {
                    tracing::info!(%room_id, "room deleted");
                }
                let _ = respond_to.send(settled.map(|_| ()));
            });
        }
        // The others are not decided by the room alone.
        _ => {}
    }
}

/// Answers the room's version after a change.
fn answer_version(
    respond_to: oneshot::Sender<Result<u64, RoomError>>,
) -> impl FnOnce(Settled<'_>) + Send + 'static {
    move |settled| {
        let _ = respond_to.send(settled.map(|(room, _)| room.version));
    }
}

/// A pending start, or the end of the item, is due. Every node serving a
/// shared room fires; the commit lets one win and the others find nothing
/// left to do. Until the version moves, the actor waits before firing again.
fn on_due<S: Store>(store: &mut S, core: &mut Core) {
    core.end_wait = Some((core.room.version, Instant::now() + END_RETRY));
    let room_id = core.room.room_id.clone();
    let due = |room: &mut Room, inputs: &Inputs| Ok(room.on_due(inputs));
    store.commit(core, None, due, move |settled| {
        if let Err(error) = settled {
            tracing::debug!(%room_id, %error, "start or end of the item not committed");
        }
    });
}

/// Sends the coalesced frames (`gate` progress, `votes`) whose time has come.
fn send_due_frames<S: Store>(store: &mut S, core: &mut Core) {
    let now = core.now();
    if core
        .tally
        .progress_deadline(now)
        .is_some_and(|at| at <= now)
    {
        let listeners = store.gate_listeners(core);
        if let Some(frame) = progress_frame(&mut core.tally, &core.room, listeners, now) {
            core.hub.send_live(frame);
        }
    }
    if core.votes.deadline(now).is_some_and(|at| at <= now) {
        let listeners = store.listeners_with(core.hub.listeners());
        if let Some(votes) = core.votes.due(&core.room.vote_skip, listeners, now) {
            core.hub.send_live(Frame::votes(votes, now));
        }
    }
}

/// Waits for `alarm`, or for ever when the store has none.
async fn wait_alarm(alarm: Option<&FeedAlarm>) {
    match alarm {
        Some(alarm) => alarm.wait().await,
        None => std::future::pending().await,
    }
}
