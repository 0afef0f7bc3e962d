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

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio::time::{sleep_until, Instant};

use super::event::{CloseReason, Event, EventKind, Frame, SharedFrame};
use super::handle::{CommandReply, ListenerGuard, Request, RoomHandle, RoomShared, Subscription};
use super::history::History;
use super::state::{Access, Room};
use super::{Clock, Command};
use crate::store::RoomStore;
use crate::telemetry::Metrics;

/// Requests that may wait in one room's inbox before callers wait for room.
pub const INBOX_CAPACITY: usize = 256;
/// Presence events are coalesced to at most one per this interval.
pub const PRESENCE_INTERVAL: Duration = Duration::from_secs(1);

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
}

/// Starts the actor for `room` and returns its handle.
pub fn spawn(room: Room, generation: u64, context: ActorContext) -> RoomHandle {
    let (requests_tx, requests_rx) = mpsc::channel(INBOX_CAPACITY);
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
    let actor = RoomActor {
        history: History::new(context.settings.history),
        room,
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
    room: Room,
    history: History,
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
        loop {
            let end_at = self.end_deadline();
            let presence_at = self.presence_deadline();
            let expire_at = self.expiry_deadline();
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
                _ = sleep_until_some(end_at) => self.on_end_timer(),
                _ = sleep_until_some(presence_at) => self.send_presence(),
                _ = sleep_until_some(expire_at) => {
                    if self.shared.listeners() == 0 {
                        self.close(CloseReason::Expired);
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
        // A requester that stopped waiting (client gone) is no error: the answer is
        // simply dropped. That is what every `let _ = respond_to.send(..)` means.
        match request {
            Request::Command {
                request,
                token,
                arrived,
                respond_to,
            } => {
                let access = match request.command {
                    Command::Control { .. } => Access::HostOnly,
                    _ => Access::Command,
                };
                let now = self.now();
                let result = self
                    .room
                    .authorize(token.as_ref().map(|t| t.0.as_str()), access)
                    .and_then(|()| self.room.check_version(request.expected_version))
                    .and_then(|()| self.room.apply(request.command, now));
                let reply = result.map(|events| {
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
                let _ = respond_to.send(reply);
            }
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
            Request::Delete { token, respond_to } => {
                let allowed = self
                    .room
                    .authorize(token.as_ref().map(|t| t.0.as_str()), Access::HostOnly);
                let stop = allowed.is_ok();
                if stop {
                    self.close(CloseReason::Deleted);
                }
                let _ = respond_to.send(allowed);
                if stop {
                    return Flow::Stop;
                }
            }
        }
        Flow::Continue
    }

    fn view(&self, now: i64) -> super::RoomView {
        self.room.view(self.shared.listeners() as u64, now)
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
        let ends_at = self.room.state.ends_at()?;
        let wait_ms = (ends_at - self.now()).max(0) as u64;
        Some(Instant::now() + Duration::from_millis(wait_ms))
    }

    fn on_end_timer(&mut self) {
        let events = self.room.on_end(self.now());
        self.publish(events, None);
    }

    fn expiry_deadline(&self) -> Option<Instant> {
        (self.shared.listeners() == 0).then(|| self.last_activity + self.context.settings.ttl)
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
        // Nobody to tell when the room just emptied; the count is still recorded.
        let _ = self
            .events_tx
            .send(Arc::new(Frame::presence(listeners, self.now())));
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
