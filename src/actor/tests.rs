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
                        ttl,
                        max_queue: 10,
                        chat_history: 5,
                        sync: SYNC_RULES,
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
    an_item_at_its_end_gives_way_to_the_next_in_the_queue,
    a_scheduled_start_happens_at_its_moment,
    the_ready_gate_opens_once_its_quorum_is_ready,
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
    let mut listener = handle.subscribe(None).await.expect("subscribed");
    listener.guard.set_stream("stream-1".into());
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
