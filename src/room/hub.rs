//! [`Hub`]: what every room has, whichever driver owns it: the broadcast of
//! encoded frames, the history ring that makes `Last-Event-ID` resume work, the
//! listener count and its coalesced `presence`, and subscribe/replay.
//!
//! The two drivers ([`super::local`] and [`super::mirror`]) differ in how a
//! change is decided and where presence goes; everything a listener sees comes
//! through here, so both paths share these lines.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::time::Instant;

use super::actor::RoomSettings;
use super::event::{Event, EventKind, Frame, SharedFrame};
use super::handle::{ListenerGuard, Request, RoomShared, Subscription};
use super::history::History;
use super::state::{Room, RoomView};
use crate::telemetry::Metrics;

/// Presence events are coalesced to at most one per this interval.
pub const PRESENCE_INTERVAL: Duration = Duration::from_secs(1);

pub(crate) struct Hub {
    history: History,
    /// The live feed, made when the first listener subscribes and dropped when
    /// the last one has gone: an idle room holds no ring of `listener_buffer`
    /// slots (most of what a room cost before anyone joined).
    events_tx: Option<broadcast::Sender<SharedFrame>>,
    /// Frames a listener may fall behind (`--listener-buffer`): the feed's size.
    listener_buffer: usize,
    pub(crate) shared: Arc<RoomShared>,
    /// Last command, chat, join, or the moment the last listener left.
    pub(crate) last_activity: Instant,
    presence: Presence,
    metrics: Arc<Metrics>,
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
        let shared = Arc::new(RoomShared::new(
            room.name.clone(),
            room.state.source.clone(),
            room.visibility,
        ));
        let mut ring = History::new(settings.history);
        for event in history {
            ring.push(Arc::new(event.to_frame(None)));
        }
        Self {
            history: ring,
            events_tx: None,
            listener_buffer: settings.listener_buffer.max(1),
            shared,
            last_activity: Instant::now(),
            presence: Presence::default(),
            metrics,
        }
    }

    /// Open event streams on this room on this node.
    pub(crate) fn listeners(&self) -> usize {
        self.shared.listeners()
    }

    pub(crate) fn touch(&mut self) {
        self.last_activity = Instant::now();
    }

    /// Encodes each event once, keeps it for replay and sends it to every listener.
    pub(crate) fn publish(&mut self, events: Vec<Event>, arrived: Option<std::time::Instant>) {
        for event in events {
            match &event.kind {
                EventKind::State { state, .. } => self.shared.set_source(state.source.clone()),
                EventKind::Visibility { visibility } => self.shared.set_visibility(*visibility),
                _ => {}
            }
            let frame = Arc::new(event.to_frame(arrived));
            self.history.push(frame.clone());
            let delivered_to = self.send(frame.clone());
            if let Some(fanout) = &frame.fanout {
                fanout.expect(delivered_to);
            }
            self.metrics.events.inc();
        }
    }

    /// Sends a frame that is not kept for replay (presence, a resync snapshot).
    pub(crate) fn send_live(&self, frame: Frame) {
        self.send(Arc::new(frame));
    }

    /// Sends `frame` to every listener on this node; answers how many got it.
    fn send(&self, frame: SharedFrame) -> usize {
        self.events_tx
            .as_ref()
            // No receivers is not an error: a room with nobody listening here.
            .map_or(0, |events_tx| events_tx.send(frame).unwrap_or(0))
    }

    /// Replay restarts at the room as it is now (a mirror resynced).
    pub(crate) fn forget_history(&mut self) {
        self.history.clear();
    }

    /// Answers the requests that only read the room, the same for every driver;
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
                respond_to,
            } => {
                let _ = respond_to.send(Ok(self.subscribe(last_event_id, version, view)));
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
        version: u64,
        view: impl Fn(&Self) -> RoomView,
    ) -> Subscription {
        let guard = ListenerGuard::new(self.shared.clone());
        self.touch();
        let listener_buffer = self.listener_buffer;
        let events_rx = self
            .events_tx
            .get_or_insert_with(|| broadcast::channel(listener_buffer).0)
            .subscribe();
        let start = last_event_id
            .and_then(|last_seen| self.history.after(last_seen, version))
            .unwrap_or_else(|| vec![Arc::new(Frame::snapshot(&view(self)))]);
        Subscription {
            start,
            version,
            events_rx,
            guard,
        }
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
        if listeners == 0 {
            self.touch();
            // The last stream is gone: give the ring back. A receiver still
            // held (a subscription on its way) keeps it.
            if self
                .events_tx
                .as_ref()
                .is_some_and(|events_tx| events_tx.receiver_count() == 0)
            {
                self.events_tx = None;
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::room::state::Control;

    fn hub() -> (Hub, Room) {
        let room = Room::new("r".into(), "r".into(), Control::Open, None, "token", 10, 0);
        let settings = RoomSettings {
            history: 16,
            listener_buffer: 16,
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
    async fn the_ring_exists_only_while_someone_listens() {
        let (mut hub, room) = hub();
        assert!(hub.events_tx.is_none(), "an idle room holds no ring");
        // Sending to nobody is fine.
        hub.send_live(Frame::presence(0, 0));
        let first = hub.subscribe(None, room.version, |hub| {
            room.view(hub.listeners() as u64, 0)
        });
        let second = hub.subscribe(None, room.version, |hub| {
            room.view(hub.listeners() as u64, 0)
        });
        assert!(hub.events_tx.is_some());
        drop(first);
        hub.on_listeners_changed();
        assert!(hub.events_tx.is_some(), "one listener is left");
        drop(second);
        hub.on_listeners_changed();
        assert!(hub.events_tx.is_none(), "the last one gave the ring back");
        // A listener after that gets a ring of its own again, and live frames.
        let mut third = hub.subscribe(None, room.version, |hub| {
            room.view(hub.listeners() as u64, 0)
        });
        hub.send_live(Frame::presence(1, 0));
        assert!(third.events_rx.try_recv().is_ok());
    }
}
