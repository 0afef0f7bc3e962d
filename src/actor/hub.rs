//! [`Hub`]: what every room has, whichever store keeps it: the fan-out of
//! encoded frames, the history ring that makes `Last-Event-ID` resume work, the
//! listener count and its coalesced `presence`, and subscribe/replay.
//!
//! The two stores behind the actor ([`super::local`] and [`super::mirror`])
//! differ in how a change is committed and where presence goes; everything a
//! listener sees comes through here, so both share these lines.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::handle::{ListenerGuard, ListenerInfo, Request, RoomStatus, Subscription};
use super::RoomSettings;
use crate::delivery::fanout::Sink;
use crate::delivery::spread;
use crate::room::event::{Event, EventKind, Frame, SharedFrame};
use crate::room::history::History;
use crate::room::members::{Member, Roster};
use crate::room::state::{Room, RoomView};
use crate::telemetry::Metrics;

/// Presence events are coalesced to at most one per this interval.
pub const PRESENCE_INTERVAL: Duration = Duration::from_secs(1);

pub(crate) struct Hub {
    history: History,
    /// Frames a listener may fall behind (`--listener-buffer`): each sink's
    /// queue bound.
    listener_buffer: usize,
    /// Every listener's place in the direct fan-out (see [`crate::delivery::fanout`]);
    /// ended ones are dropped now and then.
    sinks: Vec<Arc<Sink>>,
    /// The listeners that have a stream id, by it: a kick ends one, and the
    /// named ones are the room's members.
    streams: HashMap<String, Listening>,
    /// Counts subscriptions, so that members are listed earliest first.
    joined: u64,
    /// Who's here, as listeners were last told, and when to tell them again.
    roster: Roster,
    members: Coalesced,
    /// A `: keepalive` goes out when the room has sent nothing this long.
    keepalive: Duration,
    /// Threads a large room's direct writes are spread over.
    fanout_threads: usize,
    /// When the room last sent its listeners anything.
    last_sent: Instant,
    pub(crate) status: Arc<RoomStatus>,
    /// Last command, chat, join, or the moment the last listener left.
    pub(crate) last_activity: Instant,
    presence: Presence,
    metrics: Arc<Metrics>,
}

/// A listener with a stream id.
struct Listening {
    sink: Arc<Sink>,
    name: Option<String>,
    joined: u64,
}

/// A change waiting to be announced at most once per [`PRESENCE_INTERVAL`].
#[derive(Default)]
struct Coalesced {
    pending: bool,
    sent_at: Option<Instant>,
}

#[derive(Default)]
struct Presence {
    /// The count last announced.
    sent: u64,
    sent_at: Option<Instant>,
    /// A change is waiting for the interval to pass.
    pending: bool,
}

impl Hub {
    /// A hub for `room`, with `history` (oldest first) already replayable.
    pub(crate) fn new(
        room: &Room,
        settings: &RoomSettings,
        metrics: Arc<Metrics>,
        history: Vec<Event>,
    ) -> Self {
        let status = Arc::new(RoomStatus::new(
            room.name.clone(),
            room.state.source.clone(),
            room.visibility,
        ));
        let mut ring = History::new(settings.history, settings.history_bytes);
        for event in history {
            ring.push(Arc::new(event.to_frame(None)));
        }
        metrics.history_bytes.inc_by(ring.bytes() as i64);
        Self {
            history: ring,
            listener_buffer: settings.listener_buffer.max(1),
            sinks: Vec::new(),
            streams: HashMap::new(),
            joined: 0,
            roster: Roster::default(),
            members: Coalesced::default(),
            keepalive: settings.keepalive,
            fanout_threads: settings.fanout_threads.max(1),
            last_sent: Instant::now(),
            status,
            last_activity: Instant::now(),
            presence: Presence::default(),
            metrics,
        }
    }

    /// Open event streams on this room on this node.
    pub(crate) fn listeners(&self) -> usize {
        self.status.listeners()
    }

    pub(crate) fn touch(&mut self) {
        self.last_activity = Instant::now();
    }

    /// Encodes each event once, keeps it for replay and sends it to every listener.
    pub(crate) fn publish(&mut self, events: Vec<Event>, arrived: Option<std::time::Instant>) {
        for event in events {
            match &event.kind {
                EventKind::State { state, .. } => self.status.set_source(state.source.clone()),
                EventKind::Visibility { visibility } => self.status.set_visibility(*visibility),
                _ => {}
            }
            let frame = Arc::new(event.to_frame(arrived));
            let before = self.history.bytes();
            self.history.push(frame.clone());
            self.count_history(before);
            self.send(frame);
            self.metrics.events.inc();
        }
    }

    /// Brings `syncroom_history_bytes` up to date after the ring held `before` bytes.
    fn count_history(&self, before: usize) {
        let after = self.history.bytes();
        self.metrics
            .history_bytes
            .inc_by(after as i64 - before as i64);
    }

    /// Sends a frame that is not kept for replay (presence, a resync snapshot).
    pub(crate) fn send_live(&mut self, frame: Frame) {
        self.send(Arc::new(frame));
    }

    /// When a `: keepalive` is due: the room has sent nothing for the
    /// keepalive interval and someone listens.
    pub(crate) fn keepalive_deadline(&self) -> Option<Instant> {
        (self.listeners() > 0).then(|| self.last_sent + self.keepalive)
    }

    /// Sends a `: keepalive` to every listener, so proxies and dead peers notice
    /// an idle stream (one timer per room, none per listener).
    pub(crate) fn send_keepalive(&mut self) {
        self.send_live(Frame::keepalive());
    }

    /// Sends `frame` to every listener on this node: written straight to the
    /// socket of each listener that is caught up, queued for the others.
    fn send(&mut self, frame: SharedFrame) {
        self.last_sent = Instant::now();
        let tally = spread::deliver(&frame, &self.sinks, self.fanout_threads);
        if tally.ended {
            self.sinks.retain(|sink| !sink.is_ended());
        }
        if let Some(fanout) = &frame.fanout {
            if tally.written == 0 {
                fanout.expect(tally.queued);
            } else {
                // The room counts as one more writer, done now.
                fanout.expect(tally.queued + 1);
                if let Some(elapsed) = fanout.written() {
                    self.metrics.fanout_seconds.observe(elapsed.as_secs_f64());
                }
            }
        }
    }

    /// Replay restarts at the room as it is now (a mirror resynced).
    pub(crate) fn forget_history(&mut self) {
        let before = self.history.bytes();
        self.history.clear();
        self.count_history(before);
    }

    /// Answers the requests that only read the room, the same for every store;
    /// hands any other back. `view` is the room as listeners see it now.
    pub(crate) fn answer_read(
        &mut self,
        request: Request,
        version: u64,
        view: impl Fn(&Self) -> RoomView,
    ) -> Option<Request> {
        // A requester that stopped waiting (client gone) is no error: the answer
        // is simply dropped. That is what every `let _ = respond_to.send(..)` means.
        match request {
            Request::View { respond_to } => {
                let _ = respond_to.send(Ok(view(self)));
            }
            Request::Subscribe {
                last_event_id,
                listener,
                respond_to,
            } => {
                let subscription = self.subscribe(last_event_id, listener, version, view);
                let _ = respond_to.send(Ok(subscription));
            }
            Request::Resync { respond_to } => {
                let _ = respond_to.send(Arc::new(Frame::snapshot(&view(self))));
            }
            other => return Some(other),
        }
        None
    }

    /// Subscribes and picks the start frames in one step of the actor, so no event
    /// can fall between the replay (or snapshot) and the live feed.
    fn subscribe(
        &mut self,
        last_event_id: Option<u64>,
        listener: ListenerInfo,
        version: u64,
        view: impl Fn(&Self) -> RoomView,
    ) -> Subscription {
        if self.listeners() == 0 {
            // Nobody heard the room's silence: the keepalive clock starts now.
            self.last_sent = Instant::now();
        }
        let mut guard = ListenerGuard::new(self.status.clone());
        self.touch();
        let start = last_event_id
            .and_then(|last_seen| self.history.after(last_seen, version))
            .unwrap_or_else(|| vec![Arc::new(Frame::snapshot(&view(self)))]);
        let sink = Arc::new(Sink::new(self.listener_buffer));
        self.sinks.push(sink.clone());
        if !listener.stream.is_empty() {
            // When this stream ends, its sync report stops counting.
            guard.set_stream(listener.stream.clone());
            self.joined += 1;
            let listening = Listening {
                sink: sink.clone(),
                name: listener.name,
                joined: self.joined,
            };
            self.streams.insert(listener.stream, listening);
        }
        Subscription {
            start,
            version,
            sink,
            guard,
        }
    }

    /// Ends the stream `stream` if it listens here: it gets `kicked` (and
    /// nobody else does). Answers whether it was here.
    pub(crate) fn kick(&mut self, stream: &str, now: i64) -> bool {
        let Some(Listening { sink, .. }) = self.streams.remove(stream) else {
            return false;
        };
        let frame = Arc::new(Frame::kicked(now));
        spread::deliver(&frame, std::slice::from_ref(&sink), 1);
        // Whatever is queued before it is written, then the stream ends.
        sink.end();
        true
    }

    /// Whether the stream `stream` listens here now.
    pub(crate) fn is_streaming(&self, stream: &str) -> bool {
        self.streams.contains_key(stream)
    }

    /// Forgets the streams that ended here (their ids).
    pub(crate) fn forget_streams(&mut self, closed: &[String]) {
        for stream in closed {
            self.streams.remove(stream);
        }
    }

    /// The named listeners here, earliest first.
    pub(crate) fn named_here(&self) -> Vec<Member> {
        let mut named: Vec<(u64, Member)> = self
            .streams
            .iter()
            .filter(|(_, listening)| !listening.sink.is_ended())
            .filter_map(|(stream, listening)| {
                let name = listening.name.clone()?;
                let member = Member {
                    stream: stream.clone(),
                    name,
                };
                Some((listening.joined, member))
            })
            .collect();
        named.sort_by_key(|(joined, _)| *joined);
        named.into_iter().map(|(_, member)| member).collect()
    }

    /// Who's here may have changed (a listener came or went here, or another
    /// node told of its own): a `members` event is due once the interval passed.
    pub(crate) fn members_changed(&mut self) {
        self.members.pending = true;
    }

    pub(crate) fn members_deadline(&self) -> Option<Instant> {
        if !self.members.pending {
            return None;
        }
        Some(
            self.members
                .sent_at
                .map_or_else(Instant::now, |at| at + PRESENCE_INTERVAL),
        )
    }

    /// Whether the presence or members timer armed from these deadlines is
    /// due at `now` (a deadline of "now" counts whenever it is asked).
    pub(crate) fn presence_is_due(&self, now: Instant) -> bool {
        self.presence.pending
            && self
                .presence
                .sent_at
                .is_none_or(|at| at + PRESENCE_INTERVAL <= now)
    }

    pub(crate) fn members_is_due(&self, now: Instant) -> bool {
        self.members.pending
            && self
                .members
                .sent_at
                .is_none_or(|at| at + PRESENCE_INTERVAL <= now)
    }

    /// The members timer fired: brings the list to `named` among `listeners`
    /// and tells every listener what changed, if anything did.
    pub(crate) fn members_due(&mut self, named: &[Member], listeners: u64) {
        self.members.pending = false;
        if let Some(change) = self.roster.update(named, listeners) {
            self.members.sent_at = Some(Instant::now());
            self.send_live(Frame::members(&change));
        }
    }

    /// `view` with who's here as listeners were last told, and the rest of
    /// its listeners counted in `unnamed`.
    pub(crate) fn with_members(&self, view: RoomView) -> RoomView {
        RoomView {
            members: self.roster.shown().to_vec(),
            unnamed: self.roster.unnamed_of(view.listeners),
            ..view
        }
    }

    /// Who's here as listeners were last told.
    pub(crate) fn members(&self) -> Vec<Member> {
        self.roster.shown().to_vec()
    }

    /// When the room closes itself for lack of listeners and activity.
    pub(crate) fn expiry_deadline(&self, idle: Duration) -> Option<Instant> {
        (self.listeners() == 0).then(|| self.last_activity + idle)
    }

    pub(crate) fn presence_deadline(&self) -> Option<Instant> {
        if !self.presence.pending {
            return None;
        }
        Some(
            self.presence
                .sent_at
                .map_or_else(Instant::now, |at| at + PRESENCE_INTERVAL),
        )
    }

    /// The listener count changed: answers the count to announce now, if one is
    /// due (at most one per [`PRESENCE_INTERVAL`]; a later one is kept pending).
    pub(crate) fn on_listeners_changed(&mut self) -> Option<u64> {
        let listeners = self.listeners() as u64;
        // Forget ended sinks: all of them once nobody listens, else once they
        // are as many as the live ones (each sweep then pays for itself).
        if listeners == 0 || self.sinks.len() > 2 * listeners as usize + 16 {
            self.sinks.retain(|sink| !sink.is_ended());
            self.streams
                .retain(|_, listening| !listening.sink.is_ended());
        }
        if listeners == 0 {
            self.touch();
        }
        self.members.pending = true;
        if listeners == self.presence.sent {
            return None;
        }
        let due = self
            .presence
            .sent_at
            .is_none_or(|at| at.elapsed() >= PRESENCE_INTERVAL);
        if due {
            self.presence_due()
        } else {
            self.presence.pending = true;
            None
        }
    }

    /// The presence timer fired (or a change is due): answers the count to
    /// announce, unless it is the one announced last.
    pub(crate) fn presence_due(&mut self) -> Option<u64> {
        self.presence.pending = false;
        let listeners = self.listeners() as u64;
        if listeners == self.presence.sent {
            return None;
        }
        self.presence.sent = listeners;
        self.presence.sent_at = Some(Instant::now());
        Some(listeners)
    }
}

impl Drop for Hub {
    /// The room is gone: every listener's task ends its stream, and its kept
    /// events go with it.
    fn drop(&mut self) {
        for sink in &self.sinks {
            sink.end();
        }
        self.metrics
            .history_bytes
            .dec_by(self.history.bytes() as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::room::state::Control;

    fn hub() -> (Hub, Room) {
        let room = Room::new("r".into(), "r".into(), Control::Open, None, "token", 10, 0);
        let settings = RoomSettings {
            history: 16,
            history_bytes: 1 << 20,
            listener_buffer: 16,
            keepalive: Duration::from_secs(15),
            fanout_threads: 2,
            ttl: Duration::from_secs(60),
            chat_history: 0,
            sync: crate::room::sync::SyncRules {
                interval: Duration::from_secs(5),
                max_reports: 16,
            },
            starts: crate::room::state::StartPolicy::default(),
        };
        let hub = Hub::new(&room, &settings, Arc::new(Metrics::new()), Vec::new());
        (hub, room)
    }

    #[tokio::test]
    async fn each_listener_has_its_own_bounded_queue_and_a_room_forgets_ended_ones() {
        use crate::delivery::fanout::Next;
        let (mut hub, room) = hub();
        let view = |hub: &Hub| room.view(hub.listeners() as u64, 0, Default::default());
        // Sending to nobody is fine.
        hub.send_live(Frame::presence(0, 0));
        let first = hub.subscribe(None, ListenerInfo::default(), room.version, view);
        let second = hub.subscribe(None, ListenerInfo::default(), room.version, view);
        hub.send_live(Frame::presence(2, 0));
        assert!(first.sink.try_next().is_some());
        assert!(second.sink.try_next().is_some());
        // The second reads nothing more: past its bound it is told to resync.
        for n in 0..20 {
            hub.send_live(Frame::presence(n, 0));
            assert!(first.sink.try_next().is_some());
        }
        assert!(matches!(second.sink.next(None), Next::Lagged));
        // Gone listeners' sinks are dropped when the room hears of it.
        first.sink.close();
        drop(first);
        hub.on_listeners_changed();
        assert_eq!(
            hub.sinks.len(),
            2,
            "one left, and a sweep pays once they are many"
        );
        second.sink.close();
        drop(second);
        hub.on_listeners_changed();
        assert!(hub.sinks.is_empty(), "nobody listens: nothing kept");
    }

    /// A room big enough to split its writes over threads: every parked
    /// listener, whichever part it falls in, gets the frame once from the
    /// room; the others get it queued.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_large_room_writes_over_threads_and_reaches_everyone_once() {
        use crate::delivery::fanout::Next;
        use tokio::io::AsyncReadExt;

        let (mut hub, room) = hub();
        let view = |hub: &Hub| room.view(hub.listeners() as u64, 0, Default::default());
        use crate::delivery::spread::PARALLEL_FANOUT_MIN;
        let subscriptions: Vec<_> = (0..PARALLEL_FANOUT_MIN)
            .map(|_| hub.subscribe(None, ListenerInfo::default(), room.version, view))
            .collect();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut readers = Vec::new();
        let parked_at = [0, PARALLEL_FANOUT_MIN / 2 + 1, PARALLEL_FANOUT_MIN - 1];
        for &at in &parked_at {
            let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            let (server, _) = listener.accept().await.unwrap();
            let parked = subscriptions[at].sink.next(Some(&Arc::new(server)));
            assert!(matches!(parked, Next::Wait));
            readers.push(client);
        }

        hub.send_live(Frame::presence(7, 0));

        for reader in &mut readers {
            let mut got = vec![0; Frame::presence(7, 0).bytes.len()];
            reader.read_exact(&mut got).await.unwrap();
            assert!(got.ends_with(b"\n\n"), "one whole frame");
            let mut more = [0u8; 1];
            let extra =
                tokio::time::timeout(Duration::from_millis(50), reader.read(&mut more)).await;
            assert!(extra.is_err(), "written once");
        }
        for (at, subscription) in subscriptions.iter().enumerate() {
            let queued = subscription.sink.try_next();
            assert_eq!(queued.is_some(), !parked_at.contains(&at), "listener {at}");
        }
    }

    #[tokio::test]
    async fn a_kick_ends_that_stream_alone_after_its_kicked_frame() {
        use crate::delivery::fanout::Next;
        let (mut hub, room) = hub();
        let view = |hub: &Hub| room.view(hub.listeners() as u64, 0, Default::default());
        let as_stream = |stream: &str| ListenerInfo {
            stream: stream.into(),
            name: None,
        };
        let kicked = hub.subscribe(None, as_stream("a"), room.version, view);
        let other = hub.subscribe(None, as_stream("b"), room.version, view);
        assert!(!hub.kick("nobody", 5), "an unknown stream is no one here");
        assert!(hub.kick("a", 5));
        let frame = kicked.sink.try_next().expect("the kicked frame");
        let text = std::str::from_utf8(&frame.bytes).unwrap();
        assert_eq!(text, "event: kicked\ndata: {\"server_time\":5}\n\n");
        assert!(matches!(kicked.sink.next(None), Next::Closed));
        assert!(other.sink.try_next().is_none(), "nobody else hears of it");
        assert!(!hub.kick("a", 6), "once");
    }

    #[tokio::test(start_paused = true)]
    async fn members_go_out_at_most_once_a_second_and_only_when_the_list_changed() {
        let (mut hub, room) = hub();
        let view = |hub: &Hub| room.view(hub.listeners() as u64, 0, Default::default());
        let named = |stream: &str, name: Option<&str>| ListenerInfo {
            stream: stream.into(),
            name: name.map(Into::into),
        };
        let watcher = hub.subscribe(None, named("w", None), room.version, view);
        let _ann = hub.subscribe(None, named("a", Some("Ann")), room.version, view);
        hub.on_listeners_changed();
        let due = |hub: &mut Hub| {
            let at = hub.members_deadline()?;
            assert!(hub.members_is_due(at));
            let listeners = hub.listeners() as u64;
            hub.members_due(&hub.named_here(), listeners);
            let frame = watcher.sink.try_next()?;
            Some(String::from_utf8_lossy(&frame.bytes).into_owned())
        };
        let first = due(&mut hub).expect("Ann joined");
        assert!(
            first.contains(r#""joined":[{"stream":"a","name":"Ann"}]"#),
            "{first}"
        );
        assert!(first.contains(r#""unnamed":1"#), "{first}");
        // An unnamed listener: the count alone is no `members` event.
        let _quiet = hub.subscribe(None, named("q", None), room.version, view);
        hub.on_listeners_changed();
        assert_eq!(due(&mut hub), None);
        let with = hub.with_members(view(&hub));
        assert_eq!((with.members.len(), with.unnamed), (1, 2));
        // Bo comes within the second: told once the second has passed.
        let _bo = hub.subscribe(None, named("b", Some("Bo")), room.version, view);
        hub.on_listeners_changed();
        let at = hub.members_deadline().expect("pending");
        assert!(!hub.members_is_due(Instant::now()));
        tokio::time::sleep_until(at).await;
        let second = due(&mut hub).expect("Bo joined");
        assert!(
            second.contains(r#""joined":[{"stream":"b","name":"Bo"}],"left":[]"#),
            "{second}"
        );
    }
}
