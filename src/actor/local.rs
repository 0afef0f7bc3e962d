//! The driver of a room owned by this process (the default, single-node mode):
//! it applies commands in place, owns the end-of-video timer and idle expiry, and
//! keeps the room in the store (`--data-dir`) when there is one.
//!
//! It only sequences: it stamps the time, calls the pure [`Room`] methods and
//! hands the events to its [`Hub`], which encodes each once and fans it out. It
//! awaits nothing but its inbox and its own timers, so no client can stall it.
//!
//! Timers, all recomputed from the room on every turn of the loop (no polling):
//! - start: a pending start (`starts_at`) happens (re-armed by every change);
//! - end of video: auto-advance or pause at the end (re-armed by every change);
//! - gate progress: at most one `gate` event per 250 ms while a ready gate is open;
//! - presence: at most one `presence` event per second, only on change;
//! - idle expiry: `closed` (expired) after the TTL with no listeners and no commands;
//!   while only that one is armed, the room sleeps without a task (see
//!   [`Inbox`]) and the registry's sweep wakes it when its time is up;
//! - sync: the oldest drift report expires; a changed summary is due as a `sync` event;
//! - keepalive: a `: keepalive` when the room sent its listeners nothing for `--keepalive`;
//! - votes: at most one `votes` event per 250 ms while votes to skip change.

use std::sync::{Arc, Weak};

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::handle::{Boxed, CommandReply, HostToken, Inbox, Request, RoomHandle, Sleeper};
use super::hub::Hub;
use super::{instant_at, progress_frame, sleep_until_some, ActorContext, Flow, INBOX_CAPACITY};
use crate::room::check::CommandError;
use crate::room::cohosts::{CohostAnswer, CohostCall};
use crate::room::command::{Command, CommandRequest};
use crate::room::error::RoomError;
use crate::room::event::{CloseReason, Event, EventKind, Frame};
use crate::room::gate::{GateProgress, ReadyTally};
use crate::room::moderation::KickedStreams;
use crate::room::state::{Access, Inputs, Room, RoomView};
use crate::room::sync::{SyncAnnouncer, SyncBoard, SyncSummary};
use crate::room::votes::{VoteProgress, VoteTally, VOTES_OFF};
use crate::store::RoomStore;

/// Starts the driver of a room kept here and returns its handle. `store`: where
/// the room is kept across restarts (`--data-dir`), if anywhere.
pub fn spawn(
    room: Room,
    generation: u64,
    context: ActorContext,
    store: Option<Arc<RoomStore>>,
) -> RoomHandle {
    let (requests_tx, requests_rx) = mpsc::channel(INBOX_CAPACITY);
    let hub = Hub::new(
        &room,
        &context.settings,
        context.metrics.clone(),
        Vec::new(),
    );
    let handle = RoomHandle::new(
        Arc::from(room.room_id.as_str()),
        generation,
        requests_tx,
        hub.status.clone(),
    );
    let votes = VoteTally::following(room.item_since);
    let driver = LocalRoom {
        room,
        tally: ReadyTally::default(),
        votes,
        hub,
        sync_board: SyncBoard::new(context.settings.sync),
        sync: SyncAnnouncer::default(),
        inbox: Arc::downgrade(handle.inbox()),
        store,
        kicked: KickedStreams::default(),
        context,
    };
    // Boxed: an async fn keeps its argument in its future twice over, and a
    // room's driver is a kilobyte.
    Box::new(driver).wake(requests_rx);
    handle
}

struct LocalRoom {
    room: Room,
    /// Who reported the open ready gate's item loaded.
    tally: ReadyTally,
    /// Who voted to skip the loaded item.
    votes: VoteTally,
    hub: Hub,
    /// The listeners' drift reports.
    sync_board: SyncBoard,
    /// The summary of `sync_board`, and when to announce it.
    sync: SyncAnnouncer,
    /// Where the room sleeps when idle (weak: the handles own it).
    inbox: Weak<Inbox>,
    store: Option<Arc<RoomStore>>,
    /// The streams kicked from this room: their tokens are refused. Kept for
    /// the room's life here (bounded), not in the store: a restart ends every
    /// stream, and their tokens with them only at their expiry.
    kicked: KickedStreams,
    context: ActorContext,
}

impl Sleeper for LocalRoom {
    fn wake(self: Box<Self>, requests_rx: mpsc::Receiver<Boxed>) {
        tokio::spawn(self.run(requests_rx));
    }
}

impl LocalRoom {
    async fn run(mut self: Box<Self>, mut requests_rx: mpsc::Receiver<Boxed>) {
        loop {
            // One timer for the earliest of the deadlines (each re-armed every
            // turn costs a timer-wheel entry; one keeps the task small).
            let due_at = self.room.next_due().map(|at| self.instant_at(at));
            let now_ms = self.now();
            let progress_at = self.frames_deadline(now_ms);
            // Presence and members: each at most once per interval.
            let announce_at = [self.hub.presence_deadline(), self.hub.members_deadline()]
                .into_iter()
                .flatten()
                .min();
            // A persistent room stays until it is deleted, however idle.
            let expire_at = if self.room.persistent {
                None
            } else {
                self.hub.expiry_deadline(self.context.settings.ttl)
            };
            let report_expires_at = self.sync_board.next_expiry().map(|at| self.instant_at(at));
            let sync_at = self.sync.deadline(now_ms).map(|at| self.instant_at(at));
            let keepalive_at = self.hub.keepalive_deadline();
            let due = [
                due_at,
                progress_at,
                announce_at,
                report_expires_at,
                sync_at,
                keepalive_at,
            ]
            .into_iter()
            .flatten()
            .min();
            // Idle: nobody listening (else no expiry) and nothing else due. The
            // room gives its task up until the next request or the expiry sweep.
            if due.is_none() {
                let expiring = expire_at.filter(|at| *at > Instant::now());
                if let (Some(expires_at), Some(inbox)) = (expiring, self.inbox.upgrade()) {
                    match inbox.sleep(self, &requests_rx, expires_at) {
                        Ok(()) => return,
                        Err(driver) => self = driver,
                    }
                }
            }
            let next = due.into_iter().chain(expire_at).min();
            tokio::select! {
                biased;
                request = requests_rx.recv() => match request {
                    Some(request) => {
                        if self.handle(*request) == Flow::Stop {
                            break;
                        }
                    }
                    // Every handle is gone (the room was dropped from the registry at
                    // shutdown): nobody can reach this room any more. Requests
                    // already queued were answered first, so in-flight commands
                    // complete during a graceful shutdown.
                    None => break,
                },
                _ = self.hub.status.listeners_changed.notified() => self.on_listeners_changed(),
                _ = sleep_until_some(next) => {
                    let now = Instant::now();
                    if due_at.is_some_and(|at| at <= now) {
                        let events = self.room.on_due(&self.inputs());
                        self.publish(events, None);
                    }
                    if progress_at.is_some_and(|at| at <= now) {
                        self.send_due_frames();
                    }
                    if announce_at.is_some_and(|at| at <= now) {
                        self.announce_due(now);
                    }
                    if report_expires_at.is_some_and(|at| at <= now) {
                        self.sync_board.prune(self.now());
                        self.refresh_sync();
                    }
                    if sync_at.is_some_and(|at| at <= now) {
                        if let Some(summary) = self.sync.due(self.now()) {
                            self.hub.send_live(Frame::sync(&summary));
                        }
                    }
                    if keepalive_at.is_some_and(|at| at <= now) {
                        self.hub.send_keepalive();
                    }
                    if expire_at.is_some_and(|at| at <= now) && self.hub.listeners() == 0 {
                        self.close(CloseReason::Expired);
                        break;
                    }
                }
            }
        }
        let this = *self;
        if this.room.persistent {
            this.context.persistent.release();
        }
        (this.context.on_exit)();
    }

    /// Presence and who's here, whichever is due at `now`.
    fn announce_due(&mut self, now: Instant) {
        if self.hub.presence_is_due(now) {
            let due = self.hub.presence_due();
            self.announce(due);
        }
        if self.hub.members_is_due(now) {
            let named = self.hub.named_here();
            let listeners = self.hub.listeners() as u64;
            self.hub.members_due(&named, listeners);
        }
    }

    /// A listener came or went: presence, the sync board and the gate follow.
    fn on_listeners_changed(&mut self) {
        let due = self.hub.on_listeners_changed();
        self.announce(due);
        let closed = self.hub.status.take_closed_streams();
        for stream in &closed {
            self.sync_board.forget(stream);
            self.votes.forget(stream);
        }
        self.hub.forget_streams(&closed);
        self.refresh_sync();
        // One who took part may have left: the rest may be the quorum.
        self.check_gate();
        // Fewer listeners need fewer votes.
        self.votes.touch();
        self.check_votes();
    }

    fn now(&self) -> i64 {
        self.context.clock.now_ms()
    }

    /// What a change of the room depends on besides the room, now.
    fn inputs(&self) -> Inputs {
        Inputs {
            now: self.now(),
            starts: self.context.settings.starts,
            gate_listeners: self.hub.status.gate_listeners() as u64,
            pick: rand::random(),
        }
    }

    fn view(&self, now: i64) -> RoomView {
        self.hub.with_members(RoomView {
            sync: self.sync.current(),
            ..self.room.view(
                self.hub.listeners() as u64,
                now,
                self.context.settings.starts.gate,
            )
        })
    }

    /// The tokio instant of a server time (ms).
    fn instant_at(&self, at_ms: i64) -> Instant {
        instant_at(&*self.context.clock, at_ms)
    }

    /// The reports changed: the summary is brought up to date (and announced
    /// when due). Answers it.
    fn refresh_sync(&mut self) -> SyncSummary {
        let summary = self.sync_board.summary();
        if let Some(due) = self.sync.update(summary.clone(), self.now()) {
            self.hub.send_live(Frame::sync(&due));
        }
        summary
    }

    fn handle(&mut self, request: Request) -> Flow {
        let now = self.now();
        let (room, sync) = (&self.room, &self.sync);
        let server_gate = self.context.settings.starts.gate;
        let Some(request) = self.hub.answer_read(request, room.version, |hub| {
            hub.with_members(RoomView {
                sync: sync.current(),
                ..room.view(hub.listeners() as u64, now, server_gate)
            })
        }) else {
            return Flow::Continue;
        };
        // A requester that stopped waiting (client gone) is no error: the answer is
        // simply dropped. That is what every `let _ = respond_to.send(..)` means.
        match request {
            Request::Command {
                request,
                token,
                arrived,
                respond_to,
            } => {
                let reply = self.command(request, token, arrived);
                let _ = respond_to.send(reply);
            }
            Request::Chat {
                name,
                text,
                token,
                respond_to,
            } => {
                let token = token.as_ref().map(|t| t.0.as_str());
                let _ = respond_to.send(self.chat(token, &name, &text, now));
            }
            Request::SyncReport {
                stream,
                report,
                respond_to,
            } => {
                let item = self.room.reported_item();
                let recorded = self.sync_board.record(&stream, &report, &item, now);
                if recorded.is_ok() && report.duration.is_some() {
                    let durations = self.sync_board.durations(&item);
                    let events = self.room.take_reported_duration(&durations, now);
                    self.publish(events, None);
                }
                let reply = recorded.map(|()| self.refresh_sync());
                let _ = respond_to.send(reply.map_err(RoomError::from));
            }
            Request::Delete { token, respond_to } => {
                let deleted = self.delete(token);
                let stop = deleted.is_ok();
                let _ = respond_to.send(deleted);
                if stop {
                    return Flow::Stop;
                }
            }
            Request::Ready {
                stream,
                ready_gate,
                respond_to,
            } => {
                let counted = self.tally.report(ready_gate, stream);
                if counted {
                    self.check_gate();
                }
                let _ = respond_to.send(Ok(GateProgress {
                    ready_gate: self.room.state.ready_gate,
                    ready: self.tally.ready(),
                    listeners: self.hub.status.gate_listeners() as u64,
                    counted,
                }));
            }
            Request::ResetHostToken {
                token,
                new_token,
                respond_to,
            } => {
                let reply = self.reset_host_token(token, new_token);
                let _ = respond_to.send(reply);
            }
            Request::Cohosts {
                token,
                call,
                respond_to,
            } => {
                let token = token.as_ref().map(|t| t.0.as_str());
                let _ = respond_to.send(self.cohosts(token, &call, now));
            }
            Request::Kicked { stream, respond_to } => self.answer_kicked(&stream, respond_to),
            Request::Vote { stream, respond_to } => {
                let _ = respond_to.send(self.vote(stream));
            }
            // Only mirrors are fed; reads were answered above.
            Request::Feed(_)
            | Request::View { .. }
            | Request::Subscribe { .. }
            | Request::Resync { .. } => {}
        }
        Flow::Continue
    }

    /// Whether `stream` was kicked here (the room's only node).
    fn answer_kicked(&self, stream: &str, respond_to: oneshot::Sender<Result<bool, RoomError>>) {
        let _ = respond_to.send(Ok(self.kicked.contains(stream)));
    }

    /// A chat message, decided by the room and published: the room's version after it.
    fn chat(
        &mut self,
        token: Option<&str>,
        name: &str,
        text: &str,
        now: i64,
    ) -> Result<u64, RoomError> {
        let event = self.room.decide_chat(token, name, text, now)?;
        self.hub.touch();
        self.publish(vec![event], None);
        Ok(self.room.version)
    }

    /// The host's call on co-hosts, decided by the room and published.
    fn cohosts(
        &mut self,
        token: Option<&str>,
        call: &CohostCall,
        now: i64,
    ) -> Result<CohostAnswer, RoomError> {
        let events = self.room.change_cohosts(token, call, now)?;
        self.hub.touch();
        self.publish(events, None);
        Ok(self.room.cohosts_answer(call))
    }

    /// A client's command, decided by the room and published.
    fn command(
        &mut self,
        request: CommandRequest,
        token: Option<HostToken>,
        arrived: std::time::Instant,
    ) -> Result<CommandReply, RoomError> {
        let inputs = self.inputs();
        let token = token.as_ref().map(|t| t.0.as_str());
        let was_persistent = self.room.persistent;
        // A place among the node's persistent rooms is taken before the room
        // becomes one (and only for the host: nobody else may ask).
        let took = matches!(request.command, Command::Persistent { persistent: true })
            && !was_persistent
            && {
                self.room.authorize(token, request.command.access())?;
                self.context
                    .persistent
                    .take()
                    .then_some(())
                    .ok_or(CommandError::TooManyPersistent)?;
                true
            };
        let kick = match &request.command {
            Command::Kick { stream } => Some(stream.clone()),
            _ => None,
        };
        let decided = self
            .room
            .decide(token, request.expected_version, request.command, &inputs);
        if (took || was_persistent) && !self.room.persistent {
            self.context.persistent.release();
        }
        let events = decided?;
        self.hub.touch();
        if let Some(stream) = kick {
            self.kicked.insert(&stream);
            self.hub.kick(&stream, inputs.now);
        }
        let changed = !events.is_empty();
        self.publish(events, Some(arrived));
        Ok(CommandReply {
            version: self.room.version,
            room: self.view(inputs.now),
            changed,
        })
    }

    /// Closes the room for its host: listeners get `closed`.
    fn delete(&mut self, token: Option<HostToken>) -> Result<(), RoomError> {
        let token = token.as_ref().map(|t| t.0.as_str());
        self.room.authorize(token, Access::HostOnly)?;
        self.close(CloseReason::Deleted);
        Ok(())
    }

    /// Replaces the host token; answers the room's version after it.
    fn reset_host_token(
        &mut self,
        token: Option<HostToken>,
        new_token: HostToken,
    ) -> Result<u64, RoomError> {
        let token = token.as_ref().map(|t| t.0.as_str());
        self.room.authorize(token, Access::HostOnly)?;
        let event = self.room.reset_host_token(&new_token.0, self.now());
        self.hub.touch();
        self.publish(vec![event], None);
        Ok(self.room.version)
    }

    /// Keeps the room in the store, then hands the events to the hub.
    fn publish(&mut self, events: Vec<Event>, arrived: Option<std::time::Instant>) {
        if events.is_empty() {
            return;
        }
        if let Some(store) = &self.store {
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
        let vote_skip_set = events
            .iter()
            .any(|event| matches!(event.kind, EventKind::VoteSkip { .. }));
        self.hub.publish(events, arrived);
        self.tally.follow(self.room.state.ready_gate);
        self.votes.follow(self.room.item_since);
        if vote_skip_set {
            // A lower bar may be met by the votes that stand.
            self.votes.touch();
            self.check_votes();
        }
    }

    /// Opens the start when the open ready gate has its quorum.
    fn check_gate(&mut self) {
        if self.room.state.ready_gate.is_none() {
            return;
        }
        self.tally.touch();
        let inputs = self.inputs();
        if let Some(gate) = self.room.gate_met(self.tally.ready(), &inputs) {
            let events = self.room.release_gate(gate, &inputs);
            self.publish(events, None);
        }
    }

    /// A listener's vote to skip the loaded item: counted once per stream and
    /// item, and the item skipped when the votes are enough.
    fn vote(&mut self, stream: String) -> Result<VoteProgress, RoomError> {
        let settings = self.room.vote_skip;
        if !settings.is_on() {
            return Err(CommandError::InvalidCommand(VOTES_OFF.into()).into());
        }
        // A stream that ended took its vote back: its token, still valid, adds none.
        let counted = self.hub.is_streaming(&stream)
            && self.room.state.source.is_some()
            && self.votes.cast(self.room.item_since, stream);
        let listeners = self.hub.listeners() as u64;
        let skip = self.votes.skip();
        if counted {
            self.check_votes();
        }
        Ok(VoteProgress {
            skip,
            needed: settings.needed(listeners),
            listeners,
            counted,
        })
    }

    /// Skips the loaded item when the votes are enough (once per item).
    fn check_votes(&mut self) {
        let listeners = self.hub.listeners() as u64;
        if let Some(item) = self.room.vote_skip_met(self.votes.skip(), listeners) {
            let events = self.room.skip_by_vote(item, &self.inputs());
            self.publish(events, None);
        }
    }

    /// When the next coalesced frame (`gate` progress, `votes`) may go.
    fn frames_deadline(&self, now_ms: i64) -> Option<Instant> {
        let progress = self.tally.progress_deadline(now_ms);
        let votes = self.votes.deadline(now_ms);
        let at = progress.into_iter().chain(votes).min()?;
        Some(self.instant_at(at))
    }

    /// Sends the coalesced frames whose time has come.
    fn send_due_frames(&mut self) {
        let now = self.now();
        if self
            .tally
            .progress_deadline(now)
            .is_some_and(|at| at <= now)
        {
            self.send_progress();
        }
        if self.votes.deadline(now).is_some_and(|at| at <= now) {
            self.send_votes();
        }
    }

    /// Tells the listeners how the votes to skip stand (coalesced).
    fn send_votes(&mut self) {
        let (listeners, now) = (self.hub.listeners() as u64, self.now());
        if let Some(votes) = self.votes.due(&self.room.vote_skip, listeners, now) {
            self.hub.send_live(Frame::votes(votes, now));
        }
    }

    /// Tells the listeners how far the open gate is (coalesced).
    fn send_progress(&mut self) {
        let listeners = self.hub.status.gate_listeners() as u64;
        let now = self.now();
        if let Some(frame) = progress_frame(&mut self.tally, &self.room, listeners, now) {
            self.hub.send_live(frame);
        }
    }

    /// Presence goes straight to this node's listeners.
    fn announce(&mut self, listeners: Option<u64>) {
        if let Some(listeners) = listeners {
            self.hub.send_live(Frame::presence(listeners, self.now()));
        }
    }

    fn close(&mut self, reason: CloseReason) {
        let event = self.room.close(reason, self.now());
        self.publish(vec![event], None);
        tracing::info!(room_id = %self.room.room_id, ?reason, "room closed");
    }
}

#[cfg(test)]
mod tests {
    //! The local driver under paused tokio time: timers fire exactly when the clock says.
    use super::*;
    use crate::actor::handle::HostToken;
    use crate::actor::RoomSettings;
    use crate::actor::TokioClock;
    use crate::room::command::CommandRequest;
    use crate::room::event::SharedFrame;
    use crate::room::state::{Control, StartPolicy};
    use crate::room::{Clock, Command, Source};
    use crate::telemetry::Metrics;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

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
                settings: Arc::new(RoomSettings {
                    history: 16,
                    history_bytes: 1 << 20,
                    listener_buffer: 16,
                    keepalive: Duration::from_secs(15),
                    fanout_threads: 2,
                    ttl,
                    chat_history: 3,
                    sync: crate::room::sync::SyncRules {
                        interval: Duration::from_secs(5),
                        max_reports: 100,
                    },
                    starts: StartPolicy::default(),
                }),
                clock,
                metrics: Arc::new(Metrics::new()),
                on_exit: Box::new(move || flag.store(true, Ordering::SeqCst)),
                persistent: Arc::default(),
            },
            None,
        );
        (handle, exited)
    }

    /// Loads a YouTube video of `duration` seconds, playing.
    fn load_video(duration: f64) -> Command {
        Command::Load {
            title: None,
            artist: None,
            source: Source::Video("dQw4w9WgXcQ".into()),
            position: None,
            paused: None,
            duration: Some(duration),
            starts_at: None,
        }
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
        let sub = handle.subscribe(None).await.unwrap();
        send(
            &handle,
            Command::add(Source::Media("/media/next.ogg".into()), None),
        )
        .await;
        send(&handle, load_video(10.0)).await;
        send(&handle, Command::Rate { rate: 2.0 }).await;
        let mut names = Vec::new();
        while let Some(frame) = sub.sink.try_next() {
            names.push(event_name(&frame));
        }
        // A presence event for our own join may come first.
        names.retain(|n| n != "presence" && n != "members");
        assert_eq!(names, ["queue", "state:load", "state:rate"]);

        // Ten seconds of video at 2x: nothing at 4.9 s, the next video at 5 s.
        tokio::time::sleep(Duration::from_millis(4_900)).await;
        assert!(sub.sink.try_next().is_none());
        tokio::time::sleep(Duration::from_millis(200)).await;
        let next: Vec<_> = [
            sub.sink.next_frame().await.unwrap(),
            sub.sink.next_frame().await.unwrap(),
        ]
        .iter()
        .map(event_name)
        .collect();
        assert_eq!(next, ["state:next", "queue"]);
        let view = handle.view().await.unwrap();
        // A YouTube video ends into a media file the same way.
        assert_eq!(
            view.state.source,
            Some(Source::Media("/media/next.ogg".into()))
        );
        assert!(view.queue.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn pause_cancels_the_end_timer() {
        let (handle, _) = start(Duration::from_secs(3600));
        send(&handle, load_video(5.0)).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let paused = send(&handle, Command::Pause { position: None }).await;
        tokio::time::sleep(Duration::from_secs(60)).await;
        let view = handle.view().await.unwrap();
        assert_eq!(view.version, paused.version);
        assert!(view.state.paused);
        assert!(view.state.position < 5.0);
    }

    /// Lets `duration` pass, sweeping once a second as the registry does.
    async fn pass_sweeping(handle: &RoomHandle, duration: Duration) {
        let end = Instant::now() + duration;
        while Instant::now() < end {
            tokio::time::sleep(Duration::from_secs(1).min(end - Instant::now())).await;
            handle.wake_if_expired(Instant::now());
        }
        // Let a woken room run to its end.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_room_expires_after_its_ttl_and_not_before() {
        let (handle, exited) = start(Duration::from_secs(60));
        pass_sweeping(&handle, Duration::from_secs(59)).await;
        assert!(!exited.load(Ordering::SeqCst));
        // A command is activity: the clock starts again.
        send(&handle, Command::Seek { position: 1.0 }).await;
        pass_sweeping(&handle, Duration::from_secs(59)).await;
        assert!(!exited.load(Ordering::SeqCst));
        pass_sweeping(&handle, Duration::from_secs(2)).await;
        assert!(exited.load(Ordering::SeqCst));
        assert_eq!(handle.view().await, Err(RoomError::Closed));
    }

    #[tokio::test(start_paused = true)]
    async fn a_room_with_listeners_never_expires() {
        let (handle, exited) = start(Duration::from_secs(60));
        let subscription = handle.subscribe(None).await.unwrap();
        pass_sweeping(&handle, Duration::from_secs(600)).await;
        assert!(!exited.load(Ordering::SeqCst));
        assert!(!handle.is_asleep(), "a room with a listener keeps its task");
        drop(subscription);
        pass_sweeping(&handle, Duration::from_secs(61)).await;
        assert!(exited.load(Ordering::SeqCst));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_room_sleeps_without_a_task_and_any_request_wakes_it() {
        let (handle, exited) = start(Duration::from_secs(3600));
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(handle.is_asleep(), "nobody listens and nothing is due");
        // Each request wakes it, is answered, and it sleeps again.
        for position in 1u32..=3 {
            let reply = send(
                &handle,
                Command::Seek {
                    position: f64::from(position),
                },
            )
            .await;
            assert_eq!(reply.version, 1 + u64::from(position));
            tokio::time::sleep(Duration::from_millis(1)).await;
            assert!(handle.is_asleep());
        }
        assert_eq!(handle.view().await.unwrap().version, 4);
        // A playing video with a known end keeps its timer, so its task.
        send(&handle, load_video(10.0)).await;
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(!handle.is_asleep());
        // It ends (paused at the end, no queue), and sleeps again.
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert!(handle.is_asleep());
        assert!(handle.view().await.unwrap().state.paused);
        // A listener wakes it and keeps it awake; the room sleeps once it left.
        let subscription = handle.subscribe(None).await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!handle.is_asleep());
        drop(subscription);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(handle.is_asleep());
        assert!(!exited.load(Ordering::SeqCst));
    }

    /// Requests from many threads at once, while the room keeps falling asleep
    /// between them: every one is answered, none meets a closed inbox.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_racing_a_room_falling_asleep_are_all_answered() {
        let (handle, exited) = start(Duration::from_secs(3600));
        let mut last = 1;
        for round in 0..200u32 {
            let calls: Vec<_> = (0..8u32)
                .map(|i| {
                    let handle = handle.clone();
                    tokio::spawn(async move {
                        if i == 0 {
                            let position = f64::from(round + 1);
                            send(&handle, Command::Seek { position }).await.version
                        } else {
                            handle.view().await.expect("answered").version
                        }
                    })
                })
                .collect();
            for call in calls {
                last = last.max(call.await.expect("no panic"));
            }
            if round % 2 == 0 {
                // Let the room fall asleep: the next round's requests wake it.
                let deadline = Instant::now() + Duration::from_secs(5);
                while !handle.is_asleep() {
                    assert!(Instant::now() < deadline, "an idle room falls asleep");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
        assert_eq!(last, 201, "every seek applied once");
        assert_eq!(handle.view().await.unwrap().version, 201);
        assert!(!exited.load(Ordering::SeqCst));
    }

    #[tokio::test(start_paused = true)]
    async fn presence_is_coalesced_to_one_per_second() {
        let (handle, _) = start(Duration::from_secs(3600));
        let watcher = handle.subscribe(None).await.unwrap();
        let mut others = Vec::new();
        for _ in 0..300 {
            others.push(handle.subscribe(None).await.unwrap());
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mut counts = Vec::new();
        while let Some(frame) = watcher.sink.try_next() {
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
