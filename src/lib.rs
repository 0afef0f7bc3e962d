//! syncroom: synchronized media rooms over Server-Sent Events.
//!
//! A room's playback state (video, position at a server timestamp, paused, rate)
//! lives in one actor task per room. Hosts change it with small POSTs; every
//! listener follows one SSE stream that carries only changes. Clients compute the
//! current position from the server clock, so nothing is sent per second.
//!
//! The map of the crate:
//! - [`config`]: the command line (`--help` is written there).
//! - [`room`]: the domain, pure: the state machine ([`room::state`]), commands,
//!   events, the ready gate, sync health. No tokio, no sockets, no Redis.
//! - [`actor`]: the one room actor (one loop, one timer) that sequences commands,
//!   keeps every rule about time and hands encoded frames to its listeners, over
//!   a room kept here or one shared through the port; [`actor::RoomHandle`] is
//!   its face, and [`actor::port::SharedRooms`] the port through which rooms are
//!   shared.
//! - [`delivery`]: getting frames to sockets: direct fan-out, batched sends, and a
//!   large room's writes spread over threads (all `unsafe` is here).
//! - [`registry`]: room id → [`actor::RoomHandle`], creation, lookup and listing.
//! - [`http`]: axum handlers that only translate HTTP to room calls and back.
//! - [`metadata`]: what the server learns about an item by itself: a media file's
//!   duration, tags and cover art, a YouTube video's details (YouTube Data API).
//! - [`store`]: rooms kept on disk across restarts (`--data-dir`).
//! - [`backplane`]: implementations of the port for sharing rooms between nodes
//!   ([`actor::port::SharedRooms`]); Redis (`--redis`) or a Redis Cluster
//!   (`--redis-cluster`).
//! - [`telemetry`]: logging and the Prometheus metrics registry.
//!
//! The binary is a thin wrapper: tests start the same server through [`run`] on
//! `127.0.0.1:0`.

// An `unsafe fn` body is not one big `unsafe` block: each operation in it
// needs its own block and its own `// SAFETY:`.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod actor;
pub mod backplane;
pub mod config;
pub mod delivery;
pub mod http;
pub mod metadata;
pub mod registry;
pub mod room;
pub mod store;
pub mod telemetry;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;

/// Serves the whole API on the listening `socket` until `shutdown` is cancelled.
///
/// On shutdown the server stops accepting, every open event stream ends (so
/// open SSE bodies cannot hold the process up) and in-flight requests finish.
pub async fn run(
    socket: TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    run_on(vec![socket], config, shutdown).await
}

/// Like [`run`], on several listening sockets at once: a `--listen` host name such as
/// `localhost` may name several addresses (`127.0.0.1` and `::1`).
pub async fn run_on(
    sockets: Vec<TcpListener>,
    config: Config,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    if sockets.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "no address to listen on",
        ));
    }
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(http::tls::acceptor(cert, key)?),
        (None, None) => None,
        (Some(_), None) | (None, Some(_)) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "--tls-cert and --tls-key go together: give both or neither",
            ))
        }
    };
    let store = match &config.data_dir {
        Some(dir) => Some(store::RoomStore::open(dir)?),
        None => None,
    };
    let metadata = open_metadata(&config)?;
    let target = match (&config.redis, config.redis_cluster.is_empty()) {
        (Some(url), _) => Some(RedisTarget::Single(url.clone())),
        (None, false) => Some(RedisTarget::Cluster(config.redis_cluster.join(","))),
        (None, true) => None,
    };
    let backplane = match target {
        Some(target) => match connect_redis(target, &config, &shutdown).await? {
            Some(backplane) => {
                let backplane: Arc<dyn actor::port::SharedRooms> = backplane;
                Some(backplane)
            }
            None => {
                tracing::info!("syncroom stopped before redis answered");
                return Ok(());
            }
        },
        None => None,
    };
    let app = Arc::new(http::AppState::new(
        config,
        shutdown.clone(),
        store.clone(),
        backplane,
        metadata,
    ));
    if let Some(store) = &store {
        let rooms = store.load()?;
        tracing::info!(
            rooms = rooms.len(),
            "rooms restored from the data directory"
        );
        app.registry.restore(rooms);
        tokio::spawn(store.clone().run_writer(shutdown.clone()));
    }
    let router = http::router(app.clone());
    for socket in &sockets {
        tracing::info!(
            addr = %socket.local_addr()?,
            max_connections = app.max_connections(),
            tls = tls.is_some(),
            "syncroom listening"
        );
    }
    http::accept::serve(sockets, router, app.connection_limits(), tls, shutdown).await?;
    app.registry.close_all();
    if let Some(store) = &store {
        store.flush().await;
    }
    tracing::info!("syncroom stopped");
    Ok(())
}

/// The media library (`--media-dir`) and the YouTube client (`--youtube-api-key`),
/// each only when its flag is given.
fn open_metadata(config: &Config) -> std::io::Result<metadata::Metadata> {
    let library = match &config.media_dir {
        Some(dir) => Some(metadata::MediaLibrary::open(dir)?),
        None => None,
    };
    let youtube = match &config.youtube_api_key {
        Some(key) => {
            let client = metadata::YouTube::new(config.youtube_api_url.clone(), key.clone())
                .map_err(|error| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("--youtube-api-url: {error}"),
                    )
                })?;
            tracing::info!(
                api = config.youtube_api_url.host_str().unwrap_or_default(),
                "YouTube items get their details from the YouTube Data API"
            );
            Some(client)
        }
        None => None,
    };
    Ok(metadata::Metadata::new(library, youtube))
}

/// Where the rooms are shared: `--redis` or `--redis-cluster`.
enum RedisTarget {
    Single(String),
    /// The seed nodes' URLs, joined by commas.
    Cluster(String),
}

impl RedisTarget {
    fn urls(&self) -> &str {
        match self {
            RedisTarget::Single(url) | RedisTarget::Cluster(url) => url,
        }
    }

    fn flag(&self) -> &'static str {
        match self {
            RedisTarget::Single(_) => "--redis",
            RedisTarget::Cluster(_) => "--redis-cluster",
        }
    }
}

/// The pause after the first failed attempt to reach Redis at start-up; it
/// doubles after each further failure, up to [`REDIS_RETRY_MAX`].
const REDIS_RETRY_FIRST: Duration = Duration::from_millis(250);
/// The longest pause between two start-up attempts to reach Redis.
const REDIS_RETRY_MAX: Duration = Duration::from_secs(10);

/// Connects to Redis before serving anything. Each attempt is bounded by
/// `--redis-timeout` and each failure is logged (a warning naming the address,
/// never the URL: it may hold a password); attempts go on, with a growing
/// pause, until Redis answers or `shutdown` is cancelled (then `None`), so a
/// node started before its Redis (boot order, a Redis restart) comes up on its
/// own and `systemctl stop` still stops it at once. A URL that cannot work is
/// an error at once.
async fn connect_redis(
    target: RedisTarget,
    config: &Config,
    shutdown: &CancellationToken,
) -> std::io::Result<Option<Arc<backplane::RedisBackplane>>> {
    let mut pause = REDIS_RETRY_FIRST;
    let mut attempt: u64 = 0;
    loop {
        attempt += 1;
        let settings = backplane::redis::RedisSettings {
            url: target.urls().to_owned(),
            timeout: config.redis_timeout,
            history: config.history as usize,
            history_bytes: usize::try_from(config.history_bytes).unwrap_or(usize::MAX),
            ttl: config.room_ttl,
            max_queue: config.max_queue,
            chat_history: config.chat_history as usize,
            sync: config.sync_rules(),
            max_persistent_rooms: config.max_persistent_rooms as usize,
        };
        let clock = Arc::new(room::SystemClock);
        let connecting = async {
            match &target {
                RedisTarget::Single(_) => backplane::RedisBackplane::connect(settings, clock).await,
                RedisTarget::Cluster(_) => {
                    backplane::RedisBackplane::connect_cluster(settings, clock).await
                }
            }
        };
        let connected = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ok(None),
            connected = connecting => connected,
        };
        match connected {
            Ok(backplane) => {
                backplane.wait_for_replicas_after_commits(config.redis_wait_replicas as usize);
                tracing::info!(attempt, "rooms are shared through redis");
                return Ok(Some(backplane));
            }
            Err(error) if error.is_retryable() => tracing::warn!(
                attempt,
                %error,
                retry_in = ?pause,
                "redis is not reachable yet: trying again until it answers (SIGTERM stops)"
            ),
            Err(error) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("{}: {error}", target.flag()),
                ))
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(None),
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(REDIS_RETRY_MAX);
    }
}
