//! The task that owns one room (Alice Ryhl's "Actors with Tokio": a handle, a
//! task, a bounded mpsc in and oneshot replies out, plus a broadcast of encoded
//! frames to listeners).
//!
//! The actor only sequences: it stamps the time, calls the pure [`Room`] methods,
//! encodes each resulting event once and fans the frame out. It awaits nothing
//! but its inbox and its own timers, so no client can stall it; a listener that
//! cannot keep up falls behind in the broadcast ring and resyncs on its own.
//!
//! Timers, all recomputed from the room on every turn of the loop (no polling):
//! - end of video: auto-advance or pause at the end (re-armed by every change);
//! - presence: at most one `presence` event per second, only on change;
//! - idle expiry: `closed` (expired) after the TTL with no listeners and no commands.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio::time::{sleep_until, Instant};

use super::event::{CloseReason, Event, EventKind, Frame, SharedFrame};
use super::handle::{
    CommandReply, ListenerGuard, Request, RoomError, RoomHandle, RoomShared, Subscription,
};
use super::history::History;
use super::shared::{CatchUp, Feed, FeedAlarm, FeedSink, SharedRooms, Unavailable, HEARTBEAT};
use super::state::{Access, Room};
use super::{Clock, Command};
use crate::store::RoomStore;
use crate::telemetry::Metrics;

/// Requests that may wait in one room's inbox before callers wait for room.
pub const INBOX_CAPACITY: usize = 256;
/// Presence events are coalesced to at most one per this interval.
pub const PRESENCE_INTERVAL: Duration = Duration::from_secs(1);
/// A mirror (Redis mode) with no listeners here goes after this long idle; the
/// room itself lives on in Redis until its own TTL.
const MIRROR_IDLE: Duration = Duration::from_secs(60);
/// Out-of-order events a mirror holds while it fills a gap; past it, it resyncs.
const MAX_PENDING: usize = 1024;
/// Pause before a failed catch-up (Redis unreachable) is tried again.
const CATCH_UP_RETRY: Duration = Duration::from_secs(1);
/// Pause before an end-of-video commit that changed nothing is tried again.
const END_RETRY: Duration = Duration::from_secs(1);

/// The knobs every room shares, from the command line.
#[derive(Debug, Clone)]
pub struct RoomSettings {
    /// Replayable events kept (`--history`).
    pub history: usize,
    /// Frames a listener may fall behind before it is resynced (`--listener-buffer`).
    pub listener_buffer: usize,
    /// Idle time before the room closes itself (`--room-ttl`).
    pub ttl: Duration,
}

/// Everything an actor needs from the server around it.
pub struct ActorContext {
    pub settings: RoomSettings,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    /// Where the room is kept across restarts (`--data-dir`), if anywhere.
    pub store: Option<Arc<RoomStore>>,
    /// Called once when the actor ends, to drop the room from the registry.
    pub on_exit: Box<dyn FnOnce() + Send>,
    /// Shared mode: the room lives in the shared store and this actor is this
    /// node's mirror.
    pub link: Option<SharedLink>,
}

/// A mirror actor's way to the shared room.
#[derive(Clone)]
pub struct SharedLink {
    pub backplane: Arc<dyn SharedRooms>,
    /// Raised when the feed may have lost messages.
    pub alarm: Arc<FeedAlarm>,
    /// The actor's own inbox, for answers of the work it spawns. Weak: the actor
    /// still ends when every handle is gone.
    pub(crate) inbox: mpsc::WeakSender<Request>,
    /// The listener total over every node, as last heard.
    pub listeners: u64,
    /// This node's count as last reported (it is part of `listeners`).
    pub reported: u64,
}

impl SharedLink {
    /// The total now: as last heard, with this node's count brought up to date
    /// (a new listener's snapshot counts itself, as on a single node).
    fn listeners_now(&self, local: usize) -> u64 {
        (self.listeners.saturating_sub(self.reported) + local as u64).max(local as u64)
    }
}

impl SharedLink {
    /// Commits `change` to the shared room and hands the events to the actor
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
        F: FnMut(&mut Room, i64) -> Result<Vec<Event>, super::CommandError> + Send,
    {
        match self.backplane.commit(room_id, &mut change).await {
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

    /// Hands the actor what was committed (before the committer answers its
    /// client, so a read that follows sees it).
    async fn deliver(&self, feed: Feed) {
        if let Some(inbox) = self.inbox.upgrade() {
            // A gone actor has nobody left to tell.
            let _ = inbox.send(Request::Feed(feed)).await;
        }
    }
}

/// A mirror's inbox as the backplane sees it: feed is offered, never awaited.
pub struct InboxSink(pub(crate) mpsc::WeakSender<Request>);

impl FeedSink for InboxSink {
    fn offer(&self, feed: Feed) -> bool {
        match self.0.upgrade() {
            Some(inbox) => inbox.try_send(Request::Feed(feed)).is_ok(),
            // A gone mirror has nobody left to tell.
            None => true,
        }
    }
}

/// Starts the actor for `room` and returns its handle.
pub fn spawn(room: Room, generation: u64, context: ActorContext) -> RoomHandle {
    spawn_with_inbox(
        room,
        generation,
        context,
        mpsc::channel(INBOX_CAPACITY),
        Vec::new(),
    )
}

/// Starts an actor on an inbox made beforehand (a mirror's feed is routed to it
/// before the room is read), with `history` (oldest first) already replayable.
pub(crate) fn spawn_with_inbox(
    room: Room,
    generation: u64,
    context: ActorContext,
    (requests_tx, requests_rx): (mpsc::Sender<Request>, mpsc::Receiver<Request>),
    history: Vec<Event>,
) -> RoomHandle {
    let (events_tx, _) = broadcast::channel(context.settings.listener_buffer.max(1));
    let shared = Arc::new(RoomShared::new(
        room.name.clone(),
        room.state.video_id.clone(),
    ));
    let handle = RoomHandle::new(
        Arc::from(room.room_id.as_str()),
        generation,
        requests_tx,
        shared.clone(),
    );
    let mut ring = History::new(context.settings.history);
    for event in history {
        ring.push(Arc::new(event.to_frame(None)));
    }
    let actor = RoomActor {
        history: ring,
        room,
        pending: BTreeMap::new(),
        catching_up: false,
        catch_up_retry_at: None,
        end_wait: None,
        reported_at: None,
        events_tx,
        requests_rx,
        shared,
        last_activity: Instant::now(),
        presence: Presence::default(),
        context,
    };
    tokio::spawn(actor.run());
    handle
}

struct RoomActor {
    /// The room (in-memory mode), or this node's mirror of it (Redis mode).
    room: Room,
    history: History,
    /// Mirror only: events past a gap, waiting for it to be filled.
    pending: BTreeMap<u64, (Event, Option<std::time::Instant>)>,
    /// Mirror only: a catch-up read is under way.
    catching_up: bool,
    catch_up_retry_at: Option<Instant>,
    /// Mirror only: the end timer fired at this version; wait before firing again.
    end_wait: Option<(u64, Instant)>,
    /// Mirror only: when this node last reported its listener count.
    reported_at: Option<Instant>,
    events_tx: broadcast::Sender<SharedFrame>,
    requests_rx: mpsc::Receiver<Request>,
    shared: Arc<RoomShared>,
    /// Last command, chat, join, or the moment the last listener left.
    last_activity: Instant,
    presence: Presence,
    context: ActorContext,
}

#[derive(Default)]
struct Presence {
    /// The count last announced.
    sent: u64,
    sent_at: Option<Instant>,
    /// A change is waiting for the interval to pass.
    pending: bool,
}

/// Whether the loop goes on after a request.
#[derive(PartialEq)]
enum Flow {
    Continue,
    Stop,
}

impl RoomActor {
    async fn run(mut self) {
        let alarm = self.context.link.as_ref().map(|link| link.alarm.clone());
        loop {
            let end_at = self.end_deadline();
            let presence_at = self.presence_deadline();
            let expire_at = self.expiry_deadline();
            let link_at = self.link_deadline();
            tokio::select! {
                biased;
                request = self.requests_rx.recv() => match request {
                    Some(request) => {
                        if self.handle(request) == Flow::Stop {
                            break;
                        }
                    }
                    // Every handle is gone (the room was dropped from the registry at
                    // shutdown): nobody can reach this room any more. Requests
                    // already queued were answered first, so in-flight commands
                    // complete during a graceful shutdown.
                    None => break,
                },
                _ = self.shared.listeners_changed.notified() => self.on_listeners_changed(),
                _ = wait_alarm(alarm.as_deref()) => self.start_catch_up(),
                _ = sleep_until_some(end_at) => self.on_end_timer(),
                _ = sleep_until_some(presence_at) => self.send_presence(),
                _ = sleep_until_some(link_at) => self.on_link_timer(),
                _ = sleep_until_some(expire_at) => {
                    if self.shared.listeners() == 0 {
                        // A mirror just goes: the room lives on in Redis, which
                        // expires it by itself, once, for the whole cluster.
                        if self.context.link.is_none() {
                            self.close(CloseReason::Expired);
                        }
                        break;
                    }
                }
            }
        }
        (self.context.on_exit)();
    }

    fn now(&self) -> i64 {
        self.context.clock.now_ms()
    }

    fn handle(&mut self, request: Request) -> Flow {
        if let Some(link) = self.context.link.clone() {
            return self.handle_mirrored(request, link);
        }
        // A requester that stopped waiting (client gone) is no error: the answer is
        // simply dropped. That is what every `let _ = respond_to.send(..)` means.
        match request {
            Request::Command {
                request,
                token,
                arrived,
                respond_to,
            } => {
                let access = access_for(&request.command);
                let now = self.now();
                let result = self
                    .room
                    .authorize(token.as_ref().map(|t| t.0.as_str()), access)
                    .and_then(|()| self.room.check_version(request.expected_version))
                    .and_then(|()| self.room.apply(request.command, now));
                let reply = result.map_err(RoomError::from).map(|events| {
                    self.last_activity = Instant::now();
                    let changed = !events.is_empty();
                    self.publish(events, Some(arrived));
                    CommandReply {
                        version: self.room.version,
                        room: self.view(now),
                        changed,
                    }
                });
                let _ = respond_to.send(reply);
            }
            Request::Chat {
                name,
                text,
                respond_to,
            } => {
                let now = self.now();
                let reply = self.room.chat(&name, &text, now).map(|event| {
                    self.last_activity = Instant::now();
                    self.publish(vec![event], None);
                    self.room.version
                });
                let _ = respond_to.send(reply.map_err(RoomError::from));
            }
            Request::Delete { token, respond_to } => {
                let allowed = self
                    .room
                    .authorize(token.as_ref().map(|t| t.0.as_str()), Access::HostOnly);
                let stop = allowed.is_ok();
                if stop {
                    self.close(CloseReason::Deleted);
                }
                let _ = respond_to.send(allowed.map_err(RoomError::from));
                if stop {
                    return Flow::Stop;
                }
            }
            // Only mirrors are fed.
            Request::Feed(_) => {}
            other => self.handle_read(other),
        }
        Flow::Continue
    }

    /// Requests that only read the room: the same in both modes.
    fn handle_read(&mut self, request: Request) {
        match request {
            Request::View { respond_to } => {
                let _ = respond_to.send(self.view(self.now()));
            }
            Request::Subscribe {
                last_event_id,
                respond_to,
            } => {
                let _ = respond_to.send(self.subscribe(last_event_id));
            }
            Request::Resync { respond_to } => {
                let _ = respond_to.send(Arc::new(Frame::snapshot(&self.view(self.now()))));
            }
            _ => {}
        }
    }

    /// Redis mode: changes are committed to the shared room by a spawned task
    /// (the actor never waits on Redis) and come back as [`Feed`] in version order.
    fn handle_mirrored(&mut self, request: Request, link: SharedLink) -> Flow {
        let room_id = self.room.room_id.clone();
        match request {
            Request::Command {
                request,
                token,
                arrived,
                respond_to,
            } => {
                self.last_activity = Instant::now();
                let local = self.shared.listeners();
                let access = access_for(&request.command);
                let command = request.command;
                let expected = request.expected_version;
                tokio::spawn(async move {
                    let committed = link
                        .commit(&room_id, Some(arrived), |room, now| {
                            room.authorize(token.as_ref().map(|t| t.0.as_str()), access)?;
                            room.check_version(expected)?;
                            room.apply(command.clone(), now)
                        })
                        .await;
                    let reply = committed.map(|(room, changed)| CommandReply {
                        version: room.version,
                        room: room.view(link.listeners_now(local), link.backplane.now_ms()),
                        changed,
                    });
                    let _ = respond_to.send(reply);
                });
            }
            Request::Chat {
                name,
                text,
                respond_to,
            } => {
                self.last_activity = Instant::now();
                tokio::spawn(async move {
                    let committed = link
                        .commit(&room_id, None, |room, now| {
                            Ok(vec![room.chat(&name, &text, now)?])
                        })
                        .await;
                    let _ = respond_to.send(committed.map(|(room, _)| room.version));
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
            Request::Feed(Feed::Events { events, arrived }) => {
                return self.on_feed_events(events, arrived);
            }
            Request::Feed(Feed::Presence {
                listeners,
                server_time,
            }) => self.on_listener_total(listeners, server_time),
            Request::Feed(Feed::CaughtUp(result)) => return self.on_caught_up(result),
            other => self.handle_read(other),
        }
        Flow::Continue
    }

    /// Mirror: takes committed events in version order, whatever order they came
    /// in; a gap is filled from the shared history.
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
            let closed = matches!(event.kind, EventKind::Closed { .. });
            self.publish(vec![event], arrived);
            if closed {
                tracing::info!(room_id = %self.room.room_id, "shared room closed");
                return Flow::Stop;
            }
        }
        if !self.pending.is_empty() {
            self.start_catch_up();
        }
        Flow::Continue
    }

    /// Mirror: reads what it may have missed (spawned; the answer comes back as
    /// [`Feed::CaughtUp`]). One read at a time.
    fn start_catch_up(&mut self) {
        let Some(link) = self.context.link.clone() else {
            return;
        };
        if self.catching_up {
            return;
        }
        self.catching_up = true;
        self.catch_up_retry_at = None;
        let room_id = self.room.room_id.clone();
        let after = self.room.version;
        tokio::spawn(async move {
            let result = link.backplane.catch_up(&room_id, after).await;
            link.deliver(Feed::CaughtUp(result)).await;
        });
    }

    fn on_caught_up(&mut self, result: Result<CatchUp, Unavailable>) -> Flow {
        self.catching_up = false;
        let caught_up = match result {
            Ok(caught_up) => caught_up,
            Err(Unavailable) => {
                // Redis is away: streams stay open on keepalives; try again soon.
                self.catch_up_retry_at = Some(Instant::now() + CATCH_UP_RETRY);
                return Flow::Continue;
            }
        };
        let Some(room) = caught_up.room else {
            // The room was deleted (or expired) while this node was not hearing.
            let event = self.room.close(CloseReason::Deleted, self.now());
            self.publish(vec![event], None);
            return Flow::Stop;
        };
        for event in caught_up.events {
            if event.version > self.room.version {
                self.pending.insert(event.version, (event, None));
            }
        }
        if self.drain_pending() == Flow::Stop {
            return Flow::Stop;
        }
        if self.room.version < room.version {
            // The shared history no longer reaches back to us: listeners get a
            // fresh snapshot (the state is idempotent) and replay restarts here.
            tracing::info!(room_id = %room.room_id, from = self.room.version, to = room.version, "mirror resynced");
            self.room = room;
            self.history.clear();
            let frame = Arc::new(Frame::snapshot(&self.view(self.now())));
            // No receivers is not an error: nobody listening here.
            let _ = self.events_tx.send(frame);
            self.pending
                .retain(|version, _| *version > self.room.version);
            self.catching_up = false;
            return self.drain_pending();
        }
        Flow::Continue
    }

    /// Mirror: the listener total over every node changed.
    fn on_listener_total(&mut self, listeners: u64, server_time: i64) {
        if let Some(link) = self.context.link.as_mut() {
            link.listeners = listeners;
        }
        // No receivers is not an error.
        let _ = self
            .events_tx
            .send(Arc::new(Frame::presence(listeners, server_time)));
    }

    /// Mirror timers: a catch-up retry, the listener-count heartbeat.
    fn link_deadline(&self) -> Option<Instant> {
        self.context.link.as_ref()?;
        let heartbeat = (self.shared.listeners() > 0).then(|| {
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
        if self.shared.listeners() > 0
            && self
                .reported_at
                .is_none_or(|at| at + HEARTBEAT <= Instant::now())
        {
            self.report_listeners();
        }
    }

    /// Mirror: tells Redis how many listeners this node has here (which keeps
    /// the room alive and makes the total every node announces).
    fn report_listeners(&mut self) {
        let count = self.shared.listeners();
        let Some(link) = self.context.link.as_mut() else {
            return;
        };
        link.reported = count as u64;
        let link = link.clone();
        self.reported_at = Some(Instant::now());
        let room_id = self.room.room_id.clone();
        tokio::spawn(async move {
            // A failed report is retried by the next heartbeat.
            let _ = link.backplane.report_listeners(&room_id, count).await;
        });
    }

    fn view(&self, now: i64) -> super::RoomView {
        let local = self.shared.listeners();
        let listeners = match &self.context.link {
            Some(link) => link.listeners_now(local),
            None => local as u64,
        };
        self.room.view(listeners, now)
    }

    /// Subscribes and picks the start frames in one step of the actor, so no event
    /// can fall between the replay (or snapshot) and the live feed.
    fn subscribe(&mut self, last_event_id: Option<u64>) -> Subscription {
        let guard = ListenerGuard::new(self.shared.clone());
        self.last_activity = Instant::now();
        let events_rx = self.events_tx.subscribe();
        let version = self.room.version;
        let start = last_event_id
            .and_then(|last_seen| self.history.after(last_seen, version))
            .unwrap_or_else(|| vec![Arc::new(Frame::snapshot(&self.view(self.now())))]);
        Subscription {
            start,
            version,
            events_rx,
            guard,
        }
    }

    /// Encodes each event once, keeps it for replay and sends it to every listener.
    fn publish(&mut self, events: Vec<Event>, arrived: Option<std::time::Instant>) {
        if events.is_empty() {
            return;
        }
        if let Some(store) = &self.context.store {
            let closed = matches!(
                events.last().map(|e| &e.kind),
                Some(EventKind::Closed { .. })
            );
            if closed {
                store.forget(&self.room.room_id);
            } else {
                store.save(&self.room);
            }
        }
        for event in events {
            if let EventKind::State { state, .. } = &event.kind {
                self.shared.set_video_id(state.video_id.clone());
            }
            let frame = Arc::new(event.to_frame(arrived));
            self.history.push(frame.clone());
            // No receivers is not an error: a room with nobody listening.
            let delivered_to = self.events_tx.send(frame.clone()).unwrap_or(0);
            if let Some(fanout) = &frame.fanout {
                fanout.expect(delivered_to);
            }
            self.context.metrics.events.inc();
        }
    }

    fn close(&mut self, reason: CloseReason) {
        let event = self.room.close(reason, self.now());
        self.publish(vec![event], None);
        tracing::info!(room_id = %self.room.room_id, ?reason, "room closed");
    }

    fn end_deadline(&self) -> Option<Instant> {
        if let Some((version, at)) = self.end_wait {
            if version == self.room.version {
                return Some(at);
            }
        }
        let ends_at = self.room.state.ends_at()?;
        let wait_ms = (ends_at - self.now()).max(0) as u64;
        Some(Instant::now() + Duration::from_millis(wait_ms))
    }

    fn on_end_timer(&mut self) {
        let Some(link) = self.context.link.clone() else {
            let events = self.room.on_end(self.now());
            self.publish(events, None);
            return;
        };
        // Every node serving the room fires; the compare-and-set lets one win and
        // the others find nothing left to do. Until the version moves, wait.
        self.end_wait = Some((self.room.version, Instant::now() + END_RETRY));
        let room_id = self.room.room_id.clone();
        tokio::spawn(async move {
            if let Err(error) = link
                .commit(&room_id, None, |room, now| Ok(room.on_end(now)))
                .await
            {
                tracing::debug!(%room_id, %error, "end of video not committed");
            }
        });
    }

    fn expiry_deadline(&self) -> Option<Instant> {
        let idle = match self.context.link {
            Some(_) => self.context.settings.ttl.min(MIRROR_IDLE),
            None => self.context.settings.ttl,
        };
        (self.shared.listeners() == 0).then(|| self.last_activity + idle)
    }

    fn presence_deadline(&self) -> Option<Instant> {
        if !self.presence.pending {
            return None;
        }
        Some(
            self.presence
                .sent_at
                .map_or_else(Instant::now, |at| at + PRESENCE_INTERVAL),
        )
    }

    fn on_listeners_changed(&mut self) {
        let listeners = self.shared.listeners() as u64;
        if listeners == 0 {
            self.last_activity = Instant::now();
        }
        if listeners == self.presence.sent {
            return;
        }
        let due = self
            .presence
            .sent_at
            .is_none_or(|at| at.elapsed() >= PRESENCE_INTERVAL);
        if due {
            self.send_presence();
        } else {
            self.presence.pending = true;
        }
    }

    fn send_presence(&mut self) {
        self.presence.pending = false;
        let listeners = self.shared.listeners() as u64;
        if listeners == self.presence.sent {
            return;
        }
        self.presence.sent = listeners;
        self.presence.sent_at = Some(Instant::now());
        if self.context.link.is_some() {
            // The total over all nodes comes back on the feed.
            self.report_listeners();
            return;
        }
        // Nobody to tell when the room just emptied; the count is still recorded.
        let _ = self
            .events_tx
            .send(Arc::new(Frame::presence(listeners, self.now())));
    }
}

/// Which commands need the host token even in open rooms.
fn access_for(command: &Command) -> Access {
    match command {
        Command::Control { .. } => Access::HostOnly,
        _ => Access::Command,
    }
}

async fn wait_alarm(alarm: Option<&FeedAlarm>) {
    match alarm {
        Some(alarm) => alarm.wait().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    //! The actor under paused tokio time: timers fire exactly when the clock says.
    use super::*;
    use crate::room::command::CommandRequest;
    use crate::room::handle::HostToken;
    use crate::room::state::Control;
    use crate::room::TokioClock;
    use std::sync::atomic::{AtomicBool, Ordering};

    const TOKEN: &str = "token";

    fn start(ttl: Duration) -> (RoomHandle, Arc<AtomicBool>) {
        let clock = Arc::new(TokioClock::new());
        let room = Room::new(
            "r".into(),
            "r".into(),
            Control::Host,
            None,
            TOKEN,
            10,
            clock.now_ms(),
        );
        let exited = Arc::new(AtomicBool::new(false));
        let flag = exited.clone();
        let handle = spawn(
            room,
            1,
            ActorContext {
                settings: RoomSettings {
                    history: 16,
                    listener_buffer: 16,
                    ttl,
                },
                clock,
                metrics: Arc::new(Metrics::new()),
                store: None,
                on_exit: Box::new(move || flag.store(true, Ordering::SeqCst)),
                link: None,
            },
        );
        (handle, exited)
    }

    async fn send(handle: &RoomHandle, command: Command) -> CommandReply {
        handle
            .command(
                CommandRequest {
                    command,
                    expected_version: None,
                },
                Some(HostToken(TOKEN.into())),
                std::time::Instant::now(),
            )
            .await
            .expect("command accepted")
    }

    fn event_name(frame: &SharedFrame) -> String {
        let text = String::from_utf8_lossy(&frame.bytes);
        let name = text
            .lines()
            .find_map(|line| line.strip_prefix("event: "))
            .unwrap_or_default()
            .to_owned();
        if name == "state" {
            let cause = text.split("\"cause\":\"").nth(1).unwrap_or("");
            format!("state:{}", cause.split('"').next().unwrap_or(""))
        } else {
            name
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_room_advances_by_itself_exactly_at_the_end_scaled_by_rate() {
        let (handle, _) = start(Duration::from_secs(3600));
        let mut sub = handle.subscribe(None).await.unwrap();
        send(
            &handle,
            Command::QueueAdd {
                video_id: "9bZkp7q19f0".into(),
                title: None,
            },
        )
        .await;
        send(
            &handle,
            Command::Load {
                video_id: "dQw4w9WgXcQ".into(),
                position: None,
                paused: None,
                duration: Some(10.0),
            },
        )
        .await;
        send(&handle, Command::Rate { rate: 2.0 }).await;
        let mut names = Vec::new();
        while let Ok(frame) = sub.events_rx.try_recv() {
            names.push(event_name(&frame));
        }
        // A presence event for our own join may come first.
        names.retain(|n| n != "presence");
        assert_eq!(names, ["queue", "state:load", "state:rate"]);

        // Ten seconds of video at 2x: nothing at 4.9 s, the next video at 5 s.
        tokio::time::sleep(Duration::from_millis(4_900)).await;
        assert!(matches!(
            sub.events_rx.try_recv(),
            Err(broadcast::error::TryRecvError::Empty)
        ));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let next: Vec<_> = [
            sub.events_rx.recv().await.unwrap(),
            sub.events_rx.recv().await.unwrap(),
        ]
        .iter()
        .map(event_name)
        .collect();
        assert_eq!(next, ["state:next", "queue"]);
        let view = handle.view().await.unwrap();
        assert_eq!(view.state.video_id.as_deref(), Some("9bZkp7q19f0"));
        assert!(view.queue.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn pause_cancels_the_end_timer() {
        let (handle, _) = start(Duration::from_secs(3600));
        send(
            &handle,
            Command::Load {
                video_id: "dQw4w9WgXcQ".into(),
                position: None,
                paused: None,
                duration: Some(5.0),
            },
        )
        .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let paused = send(&handle, Command::Pause { position: None }).await;
        tokio::time::sleep(Duration::from_secs(60)).await;
        let view = handle.view().await.unwrap();
        assert_eq!(view.version, paused.version);
        assert!(view.state.paused);
        assert!(view.state.position < 5.0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_room_expires_after_its_ttl_and_not_before() {
        let (handle, exited) = start(Duration::from_secs(60));
        tokio::time::sleep(Duration::from_secs(59)).await;
        assert!(!exited.load(Ordering::SeqCst));
        // A command is activity: the clock starts again.
        send(&handle, Command::Seek { position: 1.0 }).await;
        tokio::time::sleep(Duration::from_secs(59)).await;
        assert!(!exited.load(Ordering::SeqCst));
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(exited.load(Ordering::SeqCst));
        assert_eq!(
            handle.view().await,
            Err(super::super::handle::RoomError::Closed)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_room_with_listeners_never_expires() {
        let (handle, exited) = start(Duration::from_secs(60));
        let subscription = handle.subscribe(None).await.unwrap();
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert!(!exited.load(Ordering::SeqCst));
        drop(subscription);
        tokio::time::sleep(Duration::from_secs(61)).await;
        assert!(exited.load(Ordering::SeqCst));
    }

    #[tokio::test(start_paused = true)]
    async fn presence_is_coalesced_to_one_per_second() {
        let (handle, _) = start(Duration::from_secs(3600));
        let mut watcher = handle.subscribe(None).await.unwrap();
        let mut others = Vec::new();
        for _ in 0..300 {
            others.push(handle.subscribe(None).await.unwrap());
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mut counts = Vec::new();
        while let Ok(frame) = watcher.events_rx.try_recv() {
            let text = String::from_utf8_lossy(&frame.bytes).to_string();
            if let Some(rest) = text.split("\"listeners\":").nth(1) {
                counts.push(rest.split(',').next().unwrap_or("").to_owned());
            }
        }
        assert!(counts.len() <= 3, "{counts:?}");
        assert_eq!(counts.last().map(String::as_str), Some("301"));
    }

    #[tokio::test(start_paused = true)]
    async fn resume_replays_exactly_what_was_missed() {
        let (handle, _) = start(Duration::from_secs(3600));
        for position in 1..=5 {
            send(
                &handle,
                Command::Seek {
                    position: position as f64,
                },
            )
            .await;
        }
        // Version 6 now; a listener that saw 3 gets 4, 5, 6 and no snapshot.
        let sub = handle.subscribe(Some(3)).await.unwrap();
        let versions: Vec<_> = sub.start.iter().map(|f| f.version).collect();
        assert_eq!(versions, [Some(4), Some(5), Some(6)]);
        assert_eq!(sub.version, 6);
        let fresh = handle.subscribe(Some(99)).await.unwrap();
        assert_eq!(fresh.start.len(), 1);
        assert!(event_name(&fresh.start[0]) == "snapshot");
    }
}
