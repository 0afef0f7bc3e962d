//! The rules about time, tested once against both stores: each test body runs
//! on a room kept by this process and on a room shared through a real
//! `redis-server` of the test's own (started on a free port).

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use super::handle::HostToken;
use super::port::SharedRooms;
use super::{RoomHandle, RoomSettings};
use crate::backplane::redis::test_redis::Redis;
use crate::backplane::redis::{RedisBackplane, RedisSettings};
use crate::registry::{CreateRoom, Registry};
use crate::room::command::CommandRequest;
use crate::room::event::SharedFrame;
use crate::room::sync::SyncRules;
use crate::room::{Clock, Command, RoomView, Source, StartPolicy, SystemClock};
use crate::telemetry::Metrics;

const SYNC_RULES: SyncRules = SyncRules {
    interval: Duration::from_secs(5),
    max_reports: 100,
};

/// How long a rule may take to show before the test gives up.
const PATIENCE: Duration = Duration::from_secs(5);

/// Which store the room is kept in.
#[derive(Debug, Clone, Copy)]
enum Store {
    Here,
    Redis,
}

/// One node: its registry, and the redis-server it shares rooms through.
struct Node {
    registry: Registry,
    _redis: Option<Redis>,
}

impl Node {
    async fn start(store: Store, ttl: Duration) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let settings = RoomSettings {
            history: 64,
            history_bytes: 1 << 20,
            listener_buffer: 64,
            keepalive: Duration::from_secs(15),
            fanout_threads: 2,
            ttl,
            chat_history: 5,
            sync: SYNC_RULES,
            starts: StartPolicy::default(),
        };
        let registry = Registry::new(
            settings,
            10,
            100,
            clock.clone(),
            Arc::new(Metrics::new()),
            None,
        );
        match store {
            Store::Here => Self {
                registry,
                _redis: None,
            },
            Store::Redis => {
                let redis = Redis::start().await;
                let backplane = RedisBackplane::connect(
                    RedisSettings {
                        url: redis.url(),
                        timeout: Duration::from_secs(5),
                        history: 64,
                        history_bytes: 1 << 20,
                        ttl,
                        max_queue: 10,
                        chat_history: 5,
                        sync: SYNC_RULES,
                        max_persistent_rooms: 100,
                    },
                    clock,
                )
                .await
                .expect("connect to the test's redis-server");
                Self {
                    registry: registry.with_backplane(backplane as Arc<dyn SharedRooms>),
                    _redis: Some(redis),
                }
            }
        }
    }

    /// A new room: its handle and host token.
    async fn room(&self) -> (RoomHandle, HostToken) {
        let created = self
            .registry
            .create(CreateRoom::default(), Ipv4Addr::LOCALHOST.into())
            .await
            .expect("created");
        let handle = self
            .registry
            .get(&created.room_id)
            .await
            .expect("store answers")
            .expect("the room exists");
        (handle, HostToken(created.host_token))
    }
}

async fn send(handle: &RoomHandle, token: &HostToken, command: Command) -> RoomView {
    handle
        .command(
            CommandRequest {
                command,
                expected_version: None,
            },
            Some(token.clone()),
            std::time::Instant::now(),
        )
        .await
        .expect("command accepted")
        .room
}

/// Reads the room until `done` holds for it, within [`PATIENCE`].
async fn until(handle: &RoomHandle, what: &str, done: impl Fn(&RoomView) -> bool) -> RoomView {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let view = handle.view().await.expect("the room answers");
        if done(&view) {
            return view;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: {view:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn video(duration: Option<f64>, paused: bool) -> Command {
    Command::Load {
        title: None,
        artist: None,
        source: Source::Video("dQw4w9WgXcQ".into()),
        position: None,
        paused: Some(paused),
        duration,
        starts_at: None,
    }
}

/// Runs one async test body against both stores, as two tests.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod here {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Store::Here).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Store::Redis).await;
                }
            )*
        }
    };
}

on_both_stores!(
    the_room_advances_by_itself_at_the_end_scaled_by_rate,
    pause_cancels_the_end_timer,
    a_room_with_listeners_never_expires,
    presence_is_coalesced_to_one_per_second,
    resume_replays_exactly_what_was_missed,
    an_item_at_its_end_gives_way_to_the_next_in_the_queue,
    a_scheduled_start_happens_at_its_moment,
    the_ready_gate_opens_once_its_quorum_is_ready,
    a_ready_stream_that_leaves_takes_its_readiness_along,
    an_idle_room_expires_after_its_ttl,
    metadata_that_arrives_later_reaches_the_room_without_a_token,
);

async fn metadata_that_arrives_later_reaches_the_room_without_a_token(store: Store) {
    let node = Node::start(store, Duration::from_secs(3600)).await;
    let (handle, token) = node.room().await;
    let queued = send(
        &handle,
        &token,
        Command::add(Source::Media("/media/a.ogg".into()), None),
    )
    .await;
    let item_id = queued.queue[0].item_id.clone();
    let info = crate::room::command::ItemInfo {
        title: Some("Song".into()),
        artist: None,
        duration: Some(12.5),
    };
    let version = handle
        .item_info(Some(item_id), info)
        .await
        .expect("taken without a token");
    assert_eq!(version, queued.version + 1, "{store:?}: one queue update");
    let view = until(&handle, "the update shows", |view| view.version == version).await;
    assert_eq!(view.queue[0].title.as_deref(), Some("Song"), "{store:?}");
    assert_eq!(view.queue[0].duration, Some(12.5), "{store:?}");
}

async fn an_item_at_its_end_gives_way_to_the_next_in_the_queue(store: Store) {
    let node = Node::start(store, Duration::from_secs(3600)).await;
    let (handle, token) = node.room().await;
    let next = Source::Media("/media/next.ogg".into());
    let queue_add = Command::add(next.clone(), None);
    send(&handle, &token, queue_add).await;
    let playing = send(&handle, &token, video(Some(0.3), false)).await;
    assert!(!playing.state.paused, "{store:?}: plays at once");
    let ended = until(&handle, "the next item loads", |view| {
        view.state.source.as_ref() == Some(&next)
    })
    .await;
    assert!(ended.queue.is_empty(), "{store:?}");
    assert!(
        ended.server_time - playing.server_time >= 300,
        "{store:?}: not before its end"
    );
}

async fn a_scheduled_start_happens_at_its_moment(store: Store) {
    let node = Node::start(store, Duration::from_secs(3600)).await;
    let (handle, token) = node.room().await;
    let loaded = send(&handle, &token, video(Some(600.0), true)).await;
    let at = loaded.server_time + 400;
    let play = Command::Play {
        position: None,
        starts_at: Some(at),
    };
    let pending = send(&handle, &token, play).await;
    assert!(pending.state.paused, "{store:?}: waits for its moment");
    assert_eq!(pending.state.starts_at, Some(at), "{store:?}");
    let started = until(&handle, "the start happens", |view| !view.state.paused).await;
    assert_eq!(started.state.starts_at, None, "{store:?}");
    assert_eq!(
        started.state.updated_at, at,
        "{store:?}: anchored at its moment"
    );
}

async fn the_ready_gate_opens_once_its_quorum_is_ready(store: Store) {
    let node = Node::start(store, Duration::from_secs(3600)).await;
    let (handle, token) = node.room().await;
    let mut listener = listen(&handle, "stream-1").await;
    listener.guard.join_ready_gate();
    let loaded = send(&handle, &token, video(Some(600.0), false)).await;
    let gate = loaded
        .state
        .ready_gate
        .unwrap_or_else(|| panic!("{store:?}: a page takes part, so the load waits on a gate"));
    // At the gate's deadline (3 s by default) unless the quorum comes first;
    // a shared room's answer reads the clock a moment after the commit did.
    let deadline_start = loaded.state.starts_at.expect("a start is pending");
    let wait = deadline_start - loaded.server_time;
    assert!((2_900..=3_000).contains(&wait), "{store:?}: {wait} ms");
    let progress = handle
        .ready("stream-1".into(), gate)
        .await
        .expect("counted");
    assert!(progress.counted, "{store:?}");
    let started = until(&handle, "the gate opens", |view| !view.state.paused).await;
    assert_eq!(started.state.ready_gate, None, "{store:?}");
    assert!(
        started.state.updated_at < deadline_start,
        "{store:?}: before the deadline"
    );
}

/// A listener of `stream` (the id its token would carry), as an event stream opens one.
async fn listen(handle: &RoomHandle, stream: &str) -> super::handle::Subscription {
    let info = super::handle::ListenerInfo {
        stream: stream.into(),
        name: None,
    };
    handle.subscribe_as(None, info).await.expect("subscribed")
}

async fn a_ready_stream_that_leaves_takes_its_readiness_along(store: Store) {
    let node = Node::start(store, Duration::from_secs(3600)).await;
    let (handle, token) = node.room().await;
    // Everyone must be ready, and the deadline is far: only reports start it.
    let all = Command::ReadyGate {
        quorum: 100,
        deadline_ms: 30_000,
    };
    send(&handle, &token, all).await;
    let mut leaving = listen(&handle, "stream-1").await;
    leaving.guard.join_ready_gate();
    let mut staying = listen(&handle, "stream-2").await;
    staying.guard.join_ready_gate();
    let loaded = send(&handle, &token, video(Some(600.0), false)).await;
    let gate = loaded.state.ready_gate.expect("a gate is open");
    let progress = handle
        .ready("stream-1".into(), gate)
        .await
        .expect("counted");
    assert!(progress.counted, "{store:?}: {progress:?}");
    // The ready one leaves: one of one would be everyone, but it took its
    // readiness along, and its token (still valid) reports nothing more.
    drop(leaving);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let again = handle
            .ready("stream-1".into(), gate)
            .await
            .expect("answered");
        if !again.counted && again.ready == 0 && again.listeners == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{store:?}: the leaver still counts: {again:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let waiting = handle.view().await.expect("the room answers");
    assert_eq!(
        waiting.state.ready_gate,
        Some(gate),
        "{store:?}: still waiting"
    );
    let progress = handle
        .ready("stream-2".into(), gate)
        .await
        .expect("counted");
    assert!(progress.counted, "{store:?}: {progress:?}");
    let started = until(&handle, "the gate opens", |view| !view.state.paused).await;
    assert_eq!(started.state.ready_gate, None, "{store:?}");
    drop(staying);
}

async fn an_idle_room_expires_after_its_ttl(store: Store) {
    let ttl = Duration::from_secs(1);
    let node = Node::start(store, ttl).await;
    let (handle, _) = node.room().await;
    let room_id = handle.room_id().to_owned();
    let created = tokio::time::Instant::now();
    drop(handle);
    let deadline = created + PATIENCE;
    loop {
        node.registry.wake_expired();
        let found = node.registry.get(&room_id).await.expect("store answers");
        if found.is_none() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{store:?}: the room expires"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        created.elapsed() >= ttl - Duration::from_millis(100),
        "{store:?}: not before its ttl"
    );
}

/// An event's name; a `state` event's with its cause (`state:load`).
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

/// The next `state` or `queue` event a listener gets, within [`PATIENCE`].
async fn next_change(sink: &crate::delivery::fanout::Sink) -> String {
    loop {
        let frame = tokio::time::timeout(PATIENCE, sink.next_frame())
            .await
            .expect("a change comes")
            .expect("the stream goes on");
        let name = event_name(&frame);
        if name.starts_with("state") || name == "queue" {
            return name;
        }
    }
}

async fn the_room_advances_by_itself_at_the_end_scaled_by_rate(store: Store) {
    let node = Node::start(store, Duration::from_secs(3600)).await;
    let (handle, token) = node.room().await;
    let sub = handle.subscribe(None).await.expect("subscribed");
    let next = Source::Media("/media/next.ogg".into());
    send(&handle, &token, Command::add(next.clone(), None)).await;
    send(&handle, &token, video(Some(1.0), false)).await;
    let rated = send(&handle, &token, Command::Rate { rate: 2.0 }).await;
    let mut names = Vec::new();
    for _ in 0..3 {
        names.push(next_change(&sub.sink).await);
    }
    assert_eq!(names, ["queue", "state:load", "state:rate"], "{store:?}");
    // One second of video at 2x: the next item half a second after the load.
    let ended = [next_change(&sub.sink).await, next_change(&sub.sink).await];
    assert_eq!(ended, ["state:next", "queue"], "{store:?}");
    let view = handle.view().await.expect("the room answers");
    assert_eq!(view.state.source, Some(next), "{store:?}");
    assert!(view.queue.is_empty(), "{store:?}");
    let loaded_at = rated.state.updated_at - (rated.state.position * 1000.0) as i64;
    let took = view.state.updated_at - loaded_at;
    assert!(
        (450..900).contains(&took),
        "{store:?}: ended after {took} ms"
    );
}

async fn pause_cancels_the_end_timer(store: Store) {
    let node = Node::start(store, Duration::from_secs(3600)).await;
    let (handle, token) = node.room().await;
    send(&handle, &token, video(Some(0.5), false)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let paused = send(&handle, &token, Command::Pause { position: None }).await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let view = handle.view().await.expect("the room answers");
    assert_eq!(view.version, paused.version, "{store:?}: nothing since");
    assert!(view.state.paused, "{store:?}");
    assert!(view.state.position < 0.5, "{store:?}");
}

async fn a_room_with_listeners_never_expires(store: Store) {
    // Longer than a shared room's heartbeat, which keeps it alive there.
    let ttl = super::port::HEARTBEAT + Duration::from_secs(1);
    let node = Node::start(store, ttl).await;
    let (handle, _) = node.room().await;
    let room_id = handle.room_id().to_owned();
    let subscription = handle.subscribe(None).await.expect("subscribed");
    let listened = tokio::time::Instant::now();
    while listened.elapsed() < ttl + Duration::from_secs(2) {
        node.registry.wake_expired();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let found = node.registry.get(&room_id).await.expect("store answers");
    assert!(found.is_some(), "{store:?}: a room listened to stays");
    drop((subscription, found, handle));
    let left = tokio::time::Instant::now();
    loop {
        node.registry.wake_expired();
        if node
            .registry
            .get(&room_id)
            .await
            .expect("store answers")
            .is_none()
        {
            break;
        }
        assert!(
            left.elapsed() < ttl + PATIENCE,
            "{store:?}: it expires once left"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn presence_is_coalesced_to_one_per_second(store: Store) {
    let node = Node::start(store, Duration::from_secs(3600)).await;
    let (handle, _) = node.room().await;
    let watcher = handle.subscribe(None).await.expect("subscribed");
    let mut others = Vec::new();
    for _ in 0..300 {
        others.push(handle.subscribe(None).await.expect("subscribed"));
    }
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let mut counts = Vec::new();
    while let Some(frame) = watcher.sink.try_next() {
        if event_name(&frame) != "presence" {
            continue;
        }
        let text = String::from_utf8_lossy(&frame.bytes).to_string();
        if let Some(rest) = text.split("\"listeners\":").nth(1) {
            counts.push(rest.split([',', '}']).next().unwrap_or("").to_owned());
        }
    }
    assert!(counts.len() <= 4, "{store:?}: {counts:?}");
    assert_eq!(counts.last().map(String::as_str), Some("301"), "{store:?}");
}

async fn resume_replays_exactly_what_was_missed(store: Store) {
    let node = Node::start(store, Duration::from_secs(3600)).await;
    let (handle, token) = node.room().await;
    for position in 1..=5 {
        let position = f64::from(position);
        send(&handle, &token, Command::Seek { position }).await;
    }
    let version = handle.view().await.expect("the room answers").version;
    // A listener that saw three versions ago gets exactly the three since.
    let sub = handle
        .subscribe(Some(version - 3))
        .await
        .expect("subscribed");
    let versions: Vec<_> = sub.start.iter().map(|f| f.version).collect();
    let missed: Vec<_> = (version - 2..=version).map(Some).collect();
    assert_eq!(versions, missed, "{store:?}");
    assert_eq!(sub.version, version, "{store:?}");
    let fresh = handle
        .subscribe(Some(version + 99))
        .await
        .expect("subscribed");
    assert_eq!(fresh.start.len(), 1, "{store:?}");
    assert_eq!(event_name(&fresh.start[0]), "snapshot", "{store:?}");
}
