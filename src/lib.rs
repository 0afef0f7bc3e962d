//! syncroom: synchronized media rooms over Server-Sent Events.
//!
//! A room's playback state (video, position at a server timestamp, paused, rate)
//! lives in one actor task per room. Hosts change it with small POSTs; every
//! listener follows one SSE stream that carries only changes. Clients compute the
//! current position from the server clock, so nothing is sent per second.
//!
//! The map of the crate:
//! - [`config`]: the command line (`--help` is written there).
//! - [`room`]: the pure state machine ([`room::state`]), commands and events, and the
//!   actor shell that sequences commands and fans out pre-encoded SSE frames.
//! - [`registry`]: room id → [`room::RoomHandle`], creation, lookup and listing.
//! - [`http`]: axum handlers that only translate HTTP to room calls and back.
//! - [`store`]: rooms kept on disk across restarts (`--data-dir`).
//! - [`backplane`]: rooms shared by many nodes through Redis (`--redis`).
//! - [`telemetry`]: logging and the Prometheus metrics registry.
//!
//! The binary is a thin wrapper: tests start the same server through [`run`] on
//! `127.0.0.1:0`.

pub mod backplane;
pub mod config;
pub mod http;
pub mod registry;
pub mod room;
pub mod store;
pub mod telemetry;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;

/// Serves the whole API on `listener` until `shutdown` is cancelled.
///
/// On shutdown the listener stops accepting, every open event stream ends (so
/// open SSE bodies cannot hold the process up) and in-flight requests finish.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let store = match &config.data_dir {
        Some(dir) => Some(store::RoomStore::open(dir)?),
        None => None,
    };
    let media = match &config.media_dir {
        Some(dir) => Some(http::media::MediaLibrary::open(dir)?),
        None => None,
    };
    let backplane = match &config.redis {
        Some(url) => Some(connect_redis(url, &config).await?),
        None => None,
    };
    let app = Arc::new(http::AppState::new(
        config,
        shutdown.clone(),
        store.clone(),
        backplane,
        media,
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
    let local = listener.local_addr()?;
    tracing::info!(
        addr = %local,
        max_connections = app.max_connections(),
        "syncroom listening"
    );
    http::serve::serve(listener, router, app.connection_limits(), shutdown).await?;
    app.registry.close_all();
    if let Some(store) = &store {
        store.flush().await;
    }
    tracing::info!("syncroom stopped");
    Ok(())
}

/// Connects to Redis, failing start-up if it cannot be reached now. The URL is
/// never logged: it may hold a password.
async fn connect_redis(
    url: &str,
    config: &Config,
) -> std::io::Result<Arc<backplane::RedisBackplane>> {
    let settings = backplane::redis::RedisSettings {
        url: url.to_owned(),
        timeout: config.redis_timeout,
        history: config.history as usize,
        ttl: config.room_ttl,
        max_queue: config.max_queue,
    };
    let backplane = backplane::RedisBackplane::connect(settings, Arc::new(room::SystemClock))
        .await
        .map_err(|error| std::io::Error::other(format!("cannot reach redis: {error}")))?;
    tracing::info!("rooms are shared through redis");
    Ok(backplane)
}
