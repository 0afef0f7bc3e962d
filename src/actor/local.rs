//! A room kept by this process (the default, single-node mode): the
//! [`Store`] behind the room's actor ([`super::driver`]) that applies every
//! change in place, keeps the listeners' sync reports and the kicked streams
//! itself, and keeps the room in the store (`--data-dir`) when there is one.
//!
//! A change is applied and published in the actor's turn: it awaits nothing
//! but its inbox and its one timer, so no client can stall it. While nobody
//! listens and only its expiry is armed, the room sleeps without a task (see
//! [`Inbox`]) and the registry's sweep wakes it when its time is up.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::driver::{check_gate, check_votes, publish, recount, Core, RoomActor, Settled, Store};
use super::handle::{CommandReply, HostToken, Inbox, Request, RoomHandle};
use super::hub::Hub;
use super::port::{Feed, FeedAlarm};
use super::{ActorContext, INBOX_CAPACITY};
use crate::room::check::CommandError;
use crate::room::command::{Command, CommandRequest};
use crate::room::error::RoomError;
use crate::room::event::{CloseReason, Event, EventKind, Frame};
use crate::room::gate::GateProgress;
use crate::room::members::Member;
use crate::room::moderation::KickedStreams;
use crate::room::state::{Inputs, Room};
use crate::room::sync::{DriftReport, SyncBoard, SyncSummary};
use crate::room::votes::VoteProgress;
use crate::store::RoomStore;

/// Starts the actor of a room kept here and returns its handle. `store`: where
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
    let here = Here {
        sync_board: SyncBoard::new(context.settings.sync),
        inbox: Arc::downgrade(handle.inbox()),
        store,
        kicked: KickedStreams::default(),
    };
    RoomActor::start(Core::new(room, hub, context), here, requests_rx);
    handle
}

/// What a room kept here holds besides what every room's actor does.
struct Here {
    /// The listeners' drift reports.
    sync_board: SyncBoard,
    /// Where the room sleeps when idle (weak: the handles own it).
    inbox: Weak<Inbox>,
    store: Option<Arc<RoomStore>>,
    /// The streams kicked from this room: their tokens are refused. Kept for
    /// the room's life here (bounded), not in the store: a restart ends every
    /// stream, and their tokens with them only at their expiry.
    kicked: KickedStreams,
}

impl Here {
    /// What a change depends on besides the room, now.
    fn inputs(core: &Core) -> Inputs {
        Inputs {
            now: core.now(),
            starts: core.context.settings.starts,
            gate_listeners: core.hub.status.gate_listeners() as u64,
            pick: rand::random(),
        }
    }

    /// Keeps the room in the store, then hands the events to the listeners.
    fn publish(
        &mut self,
        core: &mut Core,
        events: Vec<Event>,
        arrived: Option<std::time::Instant>,
    ) {
        if events.is_empty() {
            return;
        }
        if let Some(store) = &self.store {
            let closed = matches!(
                events.last().map(|e| &e.kind),
                Some(EventKind::Closed { .. })
            );
            if closed {
                store.forget(&core.room.room_id);
            } else {
                store.save(&core.room);
            }
        }
        publish(self, core, events, arrived);
    }

    /// The reports changed: the summary is brought up to date (and announced
    /// when due). Answers it.
    fn refresh_sync(&mut self, core: &mut Core) -> SyncSummary {
        let summary = self.sync_board.summary();
        core.take_sync(summary.clone());
        summary
    }
}

impl Store for Here {
    fn listeners_with(&self, here: usize) -> u64 {
        here as u64
    }

    fn gate_listeners(&self, core: &Core) -> u64 {
        core.hub.status.gate_listeners() as u64
    }

    fn idle(&self, core: &Core) -> Option<Duration> {
        // A persistent room stays until it is deleted, however idle.
        (!core.room.persistent).then_some(core.context.settings.ttl)
    }

    fn inbox(&self) -> Option<Arc<Inbox>> {
        self.inbox.upgrade()
    }

    fn alarm(&self) -> Option<Arc<FeedAlarm>> {
        None
    }

    fn on_alarm(&mut self, _core: &mut Core) {}

    fn deadline(&self, core: &Core) -> Option<Instant> {
        // The oldest drift report expires.
        let expires_at = self.sync_board.next_expiry()?;
        Some(core.instant_at(expires_at))
    }

    fn on_timer(&mut self, core: &mut Core, _now: Instant) {
        self.sync_board.prune(core.now());
        self.refresh_sync(core);
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
        let inputs = Self::inputs(core);
        match change(&mut core.room, &inputs) {
            Ok(events) => {
                let changed = !events.is_empty();
                self.publish(core, events, arrived);
                settled(Ok((&core.room, changed)));
            }
            Err(refused) => settled(Err(refused.into())),
        }
    }

    fn command(
        &mut self,
        core: &mut Core,
        request: CommandRequest,
        token: Option<HostToken>,
        arrived: std::time::Instant,
        respond_to: oneshot::Sender<Result<CommandReply, RoomError>>,
    ) {
        let reply = self.decide_command(core, request, token, arrived);
        let _ = respond_to.send(reply);
    }

    fn ready(
        &mut self,
        core: &mut Core,
        stream: String,
        ready_gate: u64,
        respond_to: oneshot::Sender<Result<GateProgress, RoomError>>,
    ) {
        // A stream that ended took its readiness along: its token, still
        // valid, reports nothing.
        let counted = core.hub.is_streaming(&stream) && core.tally.report(ready_gate, stream);
        if counted {
            check_gate(self, core);
        }
        let _ = respond_to.send(Ok(GateProgress {
            ready_gate: core.room.state.ready_gate,
            ready: core.tally.ready(),
            listeners: core.hub.status.gate_listeners() as u64,
            counted,
        }));
    }

    fn vote(
        &mut self,
        core: &mut Core,
        stream: String,
        respond_to: oneshot::Sender<Result<VoteProgress, RoomError>>,
    ) {
        let settings = core.room.vote_skip;
        // A stream that ended took its vote back: its token, still valid, adds none.
        let counted = core.hub.is_streaming(&stream)
            && core.room.state.source.is_some()
            && core.votes.cast(core.room.item_since, stream);
        let listeners = core.hub.listeners() as u64;
        let skip = core.votes.skip();
        if counted {
            check_votes(self, core);
        }
        let _ = respond_to.send(Ok(VoteProgress {
            skip,
            needed: settings.needed(listeners),
            listeners,
            counted,
        }));
    }

    fn sync_report(
        &mut self,
        core: &mut Core,
        stream: String,
        report: DriftReport,
        respond_to: oneshot::Sender<Result<SyncSummary, RoomError>>,
    ) {
        let now = core.now();
        let item = core.room.reported_item();
        let recorded = self.sync_board.record(&stream, &report, &item, now);
        if recorded.is_ok() && report.duration.is_some() {
            let durations = self.sync_board.durations(&item);
            let events = core.room.take_reported_duration(&durations, now);
            self.publish(core, events, None);
        }
        let reply = recorded.map(|()| self.refresh_sync(core));
        let _ = respond_to.send(reply.map_err(RoomError::from));
    }

    fn kicked(
        &self,
        _core: &Core,
        stream: String,
        respond_to: oneshot::Sender<Result<bool, RoomError>>,
    ) {
        // This process is the room's only node.
        let _ = respond_to.send(Ok(self.kicked.contains(&stream)));
    }

    fn feed(&mut self, _core: &mut Core, _feed: Feed) {
        // Nothing feeds a room kept here.
    }

    fn refuse_read(&self, request: Request) -> Option<Request> {
        Some(request)
    }

    fn announce(&mut self, core: &mut Core, listeners: Option<u64>) {
        // Presence goes straight to the listeners.
        if let Some(listeners) = listeners {
            core.hub.send_live(Frame::presence(listeners, core.now()));
        }
    }

    fn listeners_changed(&mut self, core: &mut Core, listeners: Option<u64>, closed: Vec<String>) {
        self.announce(core, listeners);
        for stream in &closed {
            self.sync_board.forget(stream);
        }
        core.hub.forget_streams(&closed);
        self.refresh_sync(core);
        recount(self, core);
    }

    fn members(&mut self, core: &mut Core) -> (Vec<Member>, u64) {
        (core.hub.named_here(), core.hub.listeners() as u64)
    }

    fn expire(&mut self, core: &mut Core) {
        let event = core.room.close(CloseReason::Expired, core.now());
        self.publish(core, vec![event], None);
        tracing::info!(room_id = %core.room.room_id, "room closed (expired)");
    }

    fn on_exit(&mut self, core: &Core) {
        if core.room.persistent {
            core.context.persistent.release();
        }
    }
}

impl Here {
    /// A client's command, decided by the room and published.
    fn decide_command(
        &mut self,
        core: &mut Core,
        request: CommandRequest,
        token: Option<HostToken>,
        arrived: std::time::Instant,
    ) -> Result<CommandReply, RoomError> {
        let inputs = Self::inputs(core);
        let token = token.as_ref().map(|t| t.0.as_str());
        let was_persistent = core.room.persistent;
        // A place among the node's persistent rooms is taken before the room
        // becomes one (and only for the host: nobody else may ask).
        let took = matches!(request.command, Command::Persistent { persistent: true })
            && !was_persistent
            && {
                let command = &request.command;
                core.room
                    .authorize_for(token, command.access(), command.type_name())?;
                core.context
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
        let decided = core
            .room
            .decide(token, request.expected_version, request.command, &inputs);
        if (took || was_persistent) && !core.room.persistent {
            core.context.persistent.release();
        }
        let events = decided?;
        core.hub.touch();
        if let Some(stream) = kick {
            self.kicked.insert(&stream);
            core.hub.kick(&stream, inputs.now);
        }
        let changed = !events.is_empty();
        self.publish(core, events, Some(arrived));
        Ok(CommandReply {
            version: core.room.version,
            room: core.view(core.hub.listeners() as u64, inputs.now),
            changed,
        })
    }
}

#[cfg(test)]
mod tests {
    //! What only a room kept here does, under paused tokio time (timers fire
    //! exactly when the clock says): it sleeps without a task while idle, and
    //! its expiry is swept. The rules every room keeps are tested once against
    //! both stores in `actor/tests.rs`.
    use super::*;
    use crate::actor::handle::HostToken;
    use crate::actor::RoomSettings;
    use crate::actor::TokioClock;
    use crate::room::command::CommandRequest;
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
}
