//! What rooms emit, and its encoding into Server-Sent Events frames.
//!
//! An event is serialized exactly once, into a [`Frame`] holding the finished SSE
//! bytes. The same frame (an `Arc`) goes into the room's history ring and to every
//! listener, so fan-out costs a reference count, not a serialization, per listener.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use super::permissions::CohostView;
use super::permissions::Permissions;
use super::view::{
    Control, GateSettings, PlaybackState, QueueItem, QueueMode, RoomView, Visibility,
};
use super::votes::VoteSkip;

/// Why a `state` event happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Cause {
    Play,
    Pause,
    Seek,
    Load,
    Rate,
    Duration,
    Next,
    Ended,
    /// A pending start happened (`starts_at` came).
    Start,
    /// The ready gate reached its quorum: the start was brought forward.
    Ready,
    /// Enough listeners voted to skip the item.
    #[serde(rename = "vote_skip")]
    VoteSkip,
}

/// What a `queue` event changed: never the whole queue, so that a change to
/// a long queue costs its listeners little.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum QueueChange {
    /// Items appended to the end, in order.
    Add { items: Vec<QueueItem> },
    /// Items gone from the queue.
    Remove { item_ids: Vec<String> },
    /// An item now at `index`.
    Move { item_id: String, index: u64 },
    /// Items whose metadata changed, whole, where they are.
    Update { items: Vec<QueueItem> },
}

impl QueueChange {
    /// Applies this change to `queue`, as every client does.
    pub fn apply_to(&self, queue: &mut Vec<QueueItem>) {
        match self {
            QueueChange::Add { items } => queue.extend(items.iter().cloned()),
            QueueChange::Remove { item_ids } => {
                queue.retain(|item| !item_ids.contains(&item.item_id));
            }
            QueueChange::Move { item_id, index } => {
                if let Some(from) = queue.iter().position(|item| &item.item_id == item_id) {
                    let item = queue.remove(from);
                    let to = usize::try_from(*index)
                        .unwrap_or(usize::MAX)
                        .min(queue.len());
                    queue.insert(to, item);
                }
            }
            QueueChange::Update { items } => {
                for changed in items {
                    if let Some(item) = queue.iter_mut().find(|i| i.item_id == changed.item_id) {
                        *item = changed.clone();
                    }
                }
            }
        }
    }
}

/// Why a room closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CloseReason {
    Deleted,
    Expired,
}

/// One id-carrying event: one version of the room. Its serde form is how nodes
/// pass events to each other through a backplane (never sent to browsers as is).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub version: u64,
    pub server_time: i64,
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum EventKind {
    State {
        cause: Cause,
        state: PlaybackState,
    },
    Queue {
        change: QueueChange,
    },
    #[serde(rename = "queue_mode")]
    QueueMode {
        queue_mode: QueueMode,
    },
    Chat {
        name: String,
        text: String,
    },
    Control {
        control: Control,
        #[serde(default)]
        permissions: Permissions,
    },
    Visibility {
        visibility: Visibility,
    },
    #[serde(rename = "chat_enabled")]
    ChatEnabled {
        chat_enabled: bool,
    },
    #[serde(rename = "chat_cleared")]
    ChatCleared {},
    #[serde(rename = "host_token")]
    HostToken {},
    ReadyGate {
        settings: GateSettings,
    },
    Closed {
        reason: CloseReason,
    },
    Persistent {
        persistent: bool,
    },
    Permissions {
        permissions: Permissions,
    },
    Cohosts {
        cohosts: Vec<CohostView>,
    },
    #[serde(rename = "chat_deleted")]
    ChatDeleted {
        chat_version: u64,
    },
    #[serde(rename = "vote_skip")]
    VoteSkip {
        settings: VoteSkip,
    },
}

impl EventKind {
    /// The SSE `event:` name.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::State { .. } => "state",
            EventKind::Queue { .. } => "queue",
            EventKind::QueueMode { .. } => "queue_mode",
            EventKind::Chat { .. } => "chat",
            EventKind::Control { .. } => "control",
            EventKind::ReadyGate { .. } => "ready_gate",
            EventKind::Visibility { .. } => "visibility",
            EventKind::ChatEnabled { .. } => "chat_enabled",
            EventKind::ChatCleared {} => "chat_cleared",
            EventKind::HostToken {} => "host_token",
            EventKind::Closed { .. } => "closed",
            EventKind::Persistent { .. } => "persistent",
            EventKind::Permissions { .. } => "permissions",
            EventKind::Cohosts { .. } => "cohosts",
            EventKind::ChatDeleted { .. } => "chat_deleted",
            EventKind::VoteSkip { .. } => "vote_skip",
        }
    }
}

// The `data:` payloads, field for field as docs/API.md lists them.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = StateEvent)]
pub(crate) struct StateData<'a> {
    version: u64,
    cause: Cause,
    state: &'a PlaybackState,
    server_time: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = QueueEvent)]
pub(crate) struct QueueData<'a> {
    version: u64,
    #[serde(flatten)]
    change: &'a QueueChange,
    server_time: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = QueueModeEvent)]
pub(crate) struct QueueModeData {
    version: u64,
    queue_mode: QueueMode,
    server_time: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ChatEvent)]
pub(crate) struct ChatData<'a> {
    version: u64,
    name: &'a str,
    text: &'a str,
    server_time: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ControlEvent)]
pub(crate) struct ControlData {
    version: u64,
    control: Control,
    permissions: Permissions,
    server_time: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = CohostsEvent)]
pub(crate) struct CohostsData<'a> {
    version: u64,
    cohosts: &'a [CohostView],
    server_time: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ChatDeletedEvent)]
pub(crate) struct ChatDeletedData {
    version: u64,
    chat_version: u64,
    server_time: i64,
}

/// `permissions` and `control` events carry the same: who may do what, and
/// the `control` derived from it.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = PermissionsEvent)]
pub(crate) struct PermissionsData {
    version: u64,
    permissions: Permissions,
    control: Control,
    server_time: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ReadyGateEvent)]
pub(crate) struct ReadyGateData {
    version: u64,
    ready_gate: GateSettings,
    server_time: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = VisibilityEvent)]
pub(crate) struct VisibilityData {
    version: u64,
    visibility: Visibility,
    server_time: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ChatEnabledEvent)]
pub(crate) struct ChatEnabledData {
    version: u64,
    chat_enabled: bool,
    server_time: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = PersistentEvent)]
pub(crate) struct PersistentData {
    version: u64,
    persistent: bool,
    server_time: i64,
}

/// The data of the events that carry nothing but their version: `chat_cleared`
/// (the kept chat is gone) and `host_token` (the host token was reset).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = VersionEvent)]
pub(crate) struct VersionData {
    version: u64,
    server_time: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ClosedEvent)]
pub(crate) struct ClosedData {
    version: u64,
    reason: CloseReason,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = PresenceEvent)]
pub(crate) struct PresenceData {
    listeners: u64,
    server_time: i64,
}

impl Event {
    /// The event's JSON `data`.
    pub fn data(&self) -> Vec<u8> {
        let (version, server_time) = (self.version, self.server_time);
        let encoded = match &self.kind {
            EventKind::State { cause, state } => serde_json::to_vec(&StateData {
                version,
                cause: *cause,
                state,
                server_time,
            }),
            EventKind::Queue { change } => serde_json::to_vec(&QueueData {
                version,
                change,
                server_time,
            }),
            EventKind::QueueMode { queue_mode } => serde_json::to_vec(&QueueModeData {
                version,
                queue_mode: *queue_mode,
                server_time,
            }),
            EventKind::Chat { name, text } => serde_json::to_vec(&ChatData {
                version,
                name,
                text,
                server_time,
            }),
            EventKind::Control {
                control,
                permissions,
            } => serde_json::to_vec(&ControlData {
                version,
                control: *control,
                permissions: *permissions,
                server_time,
            }),
            EventKind::ReadyGate { settings } => serde_json::to_vec(&ReadyGateData {
                version,
                ready_gate: *settings,
                server_time,
            }),
            EventKind::Visibility { visibility } => serde_json::to_vec(&VisibilityData {
                version,
                visibility: *visibility,
                server_time,
            }),
            EventKind::ChatEnabled { chat_enabled } => serde_json::to_vec(&ChatEnabledData {
                version,
                chat_enabled: *chat_enabled,
                server_time,
            }),
            EventKind::ChatCleared {} | EventKind::HostToken {} => {
                serde_json::to_vec(&VersionData {
                    version,
                    server_time,
                })
            }
            EventKind::Closed { reason } => serde_json::to_vec(&ClosedData {
                version,
                reason: *reason,
            }),
            EventKind::Persistent { persistent } => serde_json::to_vec(&PersistentData {
                version,
                persistent: *persistent,
                server_time,
            }),
            EventKind::Permissions { permissions } => serde_json::to_vec(&PermissionsData {
                version,
                permissions: *permissions,
                control: permissions.control(),
                server_time,
            }),
            EventKind::Cohosts { cohosts } => serde_json::to_vec(&CohostsData {
                version,
                cohosts,
                server_time,
            }),
            EventKind::ChatDeleted { chat_version } => serde_json::to_vec(&ChatDeletedData {
                version,
                chat_version: *chat_version,
                server_time,
            }),
            EventKind::VoteSkip { settings } => serde_json::to_vec(&VoteSkipData {
                version,
                vote_skip: *settings,
                server_time,
            }),
        };
        // Serializing these plain structs cannot fail: no maps with non-string
        // keys, no custom Serialize impls.
        encoded.unwrap_or_default()
    }

    /// The finished SSE frame, ready for every listener.
    pub fn to_frame(&self, arrived: Option<Instant>) -> Frame {
        Frame {
            version: Some(self.version),
            bytes: sse_frame(Some(self.version), self.kind.name(), &self.data()),
            ends_stream: matches!(self.kind, EventKind::Closed { .. }),
            restarts: false,
            fanout: arrived.map(FanoutTimer::new),
        }
    }
}

/// One encoded SSE message, shared by the history ring and every listener.
#[derive(Debug)]
pub struct Frame {
    /// The SSE id, for id-carrying events; `None` for `presence`.
    pub version: Option<u64>,
    pub bytes: Bytes,
    /// A `closed` frame: the stream ends after writing it.
    pub ends_stream: bool,
    /// A snapshot sent because the shared history was rewritten (versions
    /// lost in a failover, then reused): a listener takes it even at or below
    /// the version it has, since what it has is not the room any more.
    pub restarts: bool,
    /// Measures command arrival → written to every local listener.
    pub fanout: Option<FanoutTimer>,
}

impl Frame {
    /// The `snapshot` frame that starts listeners over after the shared
    /// history was rewritten ([`Frame::restarts`]).
    pub fn restart(view: &RoomView) -> Frame {
        Frame {
            restarts: true,
            ..Frame::snapshot(view)
        }
    }

    /// The `snapshot` frame for a room view: id = the version it shows.
    pub fn snapshot(view: &RoomView) -> Frame {
        let data = serde_json::to_vec(view).unwrap_or_default();
        Frame {
            version: Some(view.version),
            bytes: sse_frame(Some(view.version), "snapshot", &data),
            ends_stream: false,
            restarts: false,
            fanout: None,
        }
    }

    /// A `: keepalive` comment: no id, never replayed.
    pub fn keepalive() -> Frame {
        Frame {
            version: None,
            bytes: Bytes::from_static(KEEPALIVE),
            ends_stream: false,
            restarts: false,
            fanout: None,
        }
    }

    /// A `presence` frame: no id, never replayed.
    pub fn presence(listeners: u64, server_time: i64) -> Frame {
        let data = serde_json::to_vec(&PresenceData {
            listeners,
            server_time,
        })
        .unwrap_or_default();
        Frame {
            version: None,
            bytes: sse_frame(None, "presence", &data),
            ends_stream: false,
            restarts: false,
            fanout: None,
        }
    }

    /// A `sync` frame (the room's sync health changed): no id, never replayed.
    pub fn sync(summary: &super::sync::SyncSummary) -> Frame {
        let data = serde_json::to_vec(summary).unwrap_or_default();
        Frame {
            version: None,
            bytes: sse_frame(None, "sync", &data),
            ends_stream: false,
            restarts: false,
            fanout: None,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = GateEvent)]
pub(crate) struct GateData {
    ready_gate: u64,
    ready: u64,
    listeners: u64,
    starts_at: Option<i64>,
    server_time: i64,
}

impl Frame {
    /// A `gate` frame: how far the open ready gate is. No id, never replayed.
    pub fn gate(
        ready_gate: u64,
        (ready, listeners): (u64, u64),
        starts_at: Option<i64>,
        server_time: i64,
    ) -> Frame {
        let data = serde_json::to_vec(&GateData {
            ready_gate,
            ready,
            listeners,
            starts_at,
            server_time,
        })
        .unwrap_or_default();
        Frame {
            version: None,
            bytes: sse_frame(None, "gate", &data),
            ends_stream: false,
            restarts: false,
            fanout: None,
        }
    }
}

/// The `kicked` event's data: the one stream it goes to ends after it.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = KickedEvent)]
pub(crate) struct KickedData {
    server_time: i64,
}

impl Frame {
    /// A `kicked` frame, for the kicked stream only: no id, never replayed,
    /// and the stream ends after it.
    pub fn kicked(server_time: i64) -> Frame {
        let data = serde_json::to_vec(&KickedData { server_time }).unwrap_or_default();
        Frame {
            version: None,
            bytes: sse_frame(None, "kicked", &data),
            ends_stream: true,
            restarts: false,
            fanout: None,
        }
    }
}

impl Frame {
    /// A `members` frame: who joined and left the room's list. No id, never
    /// replayed (a snapshot carries the list).
    pub fn members(change: &super::members::MembersChange) -> Frame {
        let data = serde_json::to_vec(change).unwrap_or_default();
        Frame {
            version: None,
            bytes: sse_frame(None, "members", &data),
            ends_stream: false,
            restarts: false,
            fanout: None,
        }
    }
}

/// Counts down the listeners still to write a frame; the last one to write it
/// reports how long the whole fan-out took since the command arrived.
#[derive(Debug)]
pub struct FanoutTimer {
    arrived: Instant,
    remaining: AtomicUsize,
}

impl FanoutTimer {
    fn new(arrived: Instant) -> Self {
        Self {
            arrived,
            remaining: AtomicUsize::new(0),
        }
    }

    /// Sets how many listeners the frame was sent to. Called by the actor right
    /// after the broadcast, before any listener can have counted down past zero
    /// (a listener that already wrote it made `remaining` wrap, fixed up here).
    pub fn expect(&self, listeners: usize) {
        self.remaining.fetch_add(listeners, Ordering::AcqRel);
    }

    /// One listener wrote the frame. Returns the fan-out time if it was the last.
    pub fn written(&self) -> Option<std::time::Duration> {
        let before = self.remaining.fetch_sub(1, Ordering::AcqRel);
        (before == 1).then(|| self.arrived.elapsed())
    }
}

/// The SSE comment sent on an idle stream so proxies and dead peers notice it.
pub const KEEPALIVE: &[u8] = b": keepalive\n\n";

/// The first bytes of every stream: the reconnection delay for the browser.
pub fn retry_frame(retry_ms: u64) -> Bytes {
    Bytes::from(format!("retry: {retry_ms}\n\n"))
}

/// A `hello` frame: no id, written first on every connection of a stream,
/// carrying what belongs to this one stream (its id and token) as JSON.
pub fn hello_frame(data: &impl Serialize) -> Bytes {
    sse_frame(None, "hello", &serde_json::to_vec(data).unwrap_or_default())
}

/// `id:`, `event:` and one `data:` line. serde_json never writes a raw newline, so
/// one data line always holds the whole JSON.
fn sse_frame(id: Option<u64>, event: &str, data: &[u8]) -> Bytes {
    let mut frame = BytesMut::with_capacity(data.len() + event.len() + 40);
    if let Some(id) = id {
        frame.put_slice(b"id: ");
        frame.put_slice(itoa::Buffer::new().format(id).as_bytes());
        frame.put_u8(b'\n');
    }
    frame.put_slice(b"event: ");
    frame.put_slice(event.as_bytes());
    frame.put_slice(b"\ndata: ");
    frame.put_slice(data);
    frame.put_slice(b"\n\n");
    frame.freeze()
}

/// Shared ownership of a frame, as broadcast to listeners.
pub type SharedFrame = Arc<Frame>;

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = VoteSkipEvent)]
pub(crate) struct VoteSkipData {
    version: u64,
    vote_skip: VoteSkip,
    server_time: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = VotesEvent)]
pub(crate) struct VotesData {
    /// Streams that voted to skip the loaded item.
    skip: u64,
    /// Votes that skip it now.
    needed: u64,
    /// The room's live streams over every node.
    listeners: u64,
    server_time: i64,
}

impl Frame {
    /// A `votes` frame: how the votes to skip the loaded item stand. No id,
    /// never replayed.
    pub fn votes((skip, needed, listeners): (u64, u64, u64), server_time: i64) -> Frame {
        let data = serde_json::to_vec(&VotesData {
            skip,
            needed,
            listeners,
            server_time,
        })
        .unwrap_or_default();
        Frame {
            version: None,
            bytes: sse_frame(None, "votes", &data),
            ends_stream: false,
            restarts: false,
            fanout: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_event_encodes_as_one_sse_message() {
        let event = Event {
            version: 17,
            server_time: 1_000,
            kind: EventKind::State {
                cause: Cause::Seek,
                state: PlaybackState {
                    item_id: None,
                    title: None,
                    artist: None,
                    added_by: None,
                    source: Some(crate::room::Source::Video("dQw4w9WgXcQ".into())),
                    position: 42.5,
                    paused: false,
                    rate: 1.0,
                    duration: None,
                    updated_at: 999,
                    starts_at: None,
                    ready_gate: None,
                },
            },
        };
        let frame = event.to_frame(None);
        assert_eq!(
            std::str::from_utf8(&frame.bytes).unwrap(),
            "id: 17\nevent: state\ndata: {\"version\":17,\"cause\":\"seek\",\"state\":{\"video_id\":\"dQw4w9WgXcQ\",\"media_url\":null,\"position\":42.5,\"paused\":false,\"rate\":1.0,\"duration\":null,\"updated_at\":999,\"starts_at\":null,\"ready_gate\":null,\"item_id\":null,\"title\":null,\"artist\":null,\"added_by\":null},\"server_time\":1000}\n\n"
        );
        assert_eq!(frame.version, Some(17));
        assert!(!frame.ends_stream);
    }

    #[test]
    fn chat_text_with_newlines_stays_on_one_data_line() {
        let event = Event {
            version: 2,
            server_time: 1,
            kind: EventKind::Chat {
                name: "a".into(),
                text: "x\ny\r\n".into(),
            },
        };
        let frame = event.to_frame(None);
        let text = std::str::from_utf8(&frame.bytes).unwrap();
        assert_eq!(text.matches('\n').count(), 4, "{text}");
    }

    #[test]
    fn closed_ends_the_stream_and_presence_has_no_id() {
        let closed = Event {
            version: 5,
            server_time: 1,
            kind: EventKind::Closed {
                reason: CloseReason::Expired,
            },
        }
        .to_frame(None);
        assert!(closed.ends_stream);
        assert_eq!(
            std::str::from_utf8(&closed.bytes).unwrap(),
            "id: 5\nevent: closed\ndata: {\"version\":5,\"reason\":\"expired\"}\n\n"
        );
        let presence = Frame::presence(3, 9);
        assert_eq!(presence.version, None);
        assert_eq!(
            std::str::from_utf8(&presence.bytes).unwrap(),
            "event: presence\ndata: {\"listeners\":3,\"server_time\":9}\n\n"
        );
    }

    #[test]
    fn the_fanout_timer_reports_once_when_the_last_listener_writes() {
        let timer = FanoutTimer::new(Instant::now());
        // A fast listener may write before the actor has counted the listeners.
        assert!(timer.written().is_none());
        timer.expect(3);
        assert!(timer.written().is_none());
        assert!(timer.written().is_some());
        assert!(timer.written().is_none());
    }

    #[test]
    fn events_read_back_from_their_wire_form_are_exactly_the_same() {
        // Found by the command_json fuzz target: serde_json's default float parsing
        // may land one ulp off, so a mirror (or a room restored from disk) was not
        // exactly the room. The `float_roundtrip` feature makes it exact.
        for position in [
            123.41357802469135,
            0.1 + 0.2,
            1.0 / 3.0,
            999_999.999_999_999_9,
        ] {
            let event = Event {
                version: 2,
                server_time: 1,
                kind: EventKind::State {
                    cause: Cause::Seek,
                    state: PlaybackState {
                        position,
                        ..PlaybackState::empty(1)
                    },
                },
            };
            let wire = serde_json::to_string(&event).unwrap();
            assert_eq!(
                serde_json::from_str::<Event>(&wire).unwrap(),
                event,
                "{wire}"
            );
        }
    }
}
