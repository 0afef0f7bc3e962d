//! The HTTP face of the server: axum handlers that translate requests into room
//! calls and answers back into HTTP. No room logic lives here.
//!
//! - [`rooms`]: create, get, list, delete, commands, chat.
//! - [`events`]: the SSE route's handler.
//! - [`ready`]: readiness reports for the ready gate, bound to a stream by its token.
//! - [`stream`]: an open event stream ([`stream::Listener`]), shared by both writers.
//! - [`stream_token`]: the per-stream token that binds a page's reports to its live stream.
//! - [`sync`]: listeners' drift reports (sync health).
//! - [`socket_stream`]: event streams written straight to the socket.
//! - [`accept`]: the accept loop (connection cap, header deadline, graceful end).
//! - [`tls`]: HTTPS (`--tls-cert`): rustls, HTTP/1.1 and HTTP/2.
//! - [`pages`]: the embedded demo page and its assets.
//! - [`openapi`]: the OpenAPI 3.1 description, generated from the handlers.
//! - [`schema`]: the request bodies' and stream messages' schemas, from the decoder's tables.
//! - [`error`]: [`ApiError`], the one error type, and its JSON body.
//! - [`extract`]: body and header extractors that reject with [`ApiError`].
//! - [`vote`]: listeners' votes to skip, bound to a stream by its token.

pub mod accept;
pub mod cohosts;
pub mod error;
pub mod events;
pub mod extract;
pub mod item_info;
pub mod limits;
pub mod media;
pub mod openapi;
pub mod pages;
pub mod poll_again;
pub mod ready;
pub mod rooms;
pub mod schema;
pub mod socket_stream;
pub mod stream;
pub mod stream_token;
pub mod sync;
pub mod tls;
pub mod validators;
pub mod vote;

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

pub use error::ApiError;
use limits::{RateLimit, StreamCounts};

use crate::actor::port::SharedRooms;
use crate::actor::RoomHandle;
use crate::actor::RoomSettings;
use crate::config::Config;
use crate::metadata::Metadata;
use crate::registry::Registry;
use crate::room::{Clock, GateSettings, StartPolicy, SystemClock};
use crate::store::RoomStore;
use crate::telemetry::Metrics;

/// File descriptors kept back for everything that is not an event stream
/// (command requests, the listener socket, logs) when `--max-connections` is not set.
const FD_RESERVE: usize = 256;
/// File descriptors kept back from TCP connections for files, logs and the like.
const FD_RESERVE_NON_TCP: usize = 64;
/// How long browsers may cache a CORS preflight answer.
const CORS_MAX_AGE: Duration = Duration::from_secs(600);
/// How often idle rate-limiter entries are forgotten, bounding its memory.
const LIMITER_SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Everything the handlers share.
pub struct AppState {
    pub config: Config,
    pub registry: Registry,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    pub shutdown: CancellationToken,
    /// Chat messages per client address.
    pub chat_limit: RateLimit,
    /// Chat messages per room (on this node), whoever sends them.
    pub room_chat_limit: RateLimit<Arc<str>>,
    /// Commands, deletions and host token resets per client address.
    pub write_limit: RateLimit,
    /// Room creations per client address.
    pub create_limit: RateLimit,
    /// What the server reads about items itself: the operator's media files
    /// (`--media-dir`) and YouTube videos (`--youtube-api-key`), either optional.
    pub metadata: Metadata,
    /// Issues each stream's token and checks the reports that carry one.
    pub stream_tokens: stream_token::StreamTokens,
    stream_counts: StreamCounts,
    open_streams: AtomicUsize,
    max_streams: usize,
    /// The process's open-file limit, raised to its hard limit at start.
    fd_limit: usize,
    /// The rooms' shared store, when there is one (its health is reported).
    shared: Option<Arc<dyn SharedRooms>>,
}

impl AppState {
    /// Sets `syncroom_redis_up` from the shared store's last probe; answers
    /// the shards that did not answer.
    fn record_shard_health(&self) -> Vec<String> {
        let Some(shared) = &self.shared else {
            return Vec::new();
        };
        let mut down = Vec::new();
        for (shard, up) in shared.shard_health() {
            let gauge = self
                .metrics
                .redis_up
                .get_or_create(&crate::telemetry::ShardLabels {
                    shard: shard.clone(),
                });
            gauge.set(i64::from(up));
            if !up {
                down.push(shard);
            }
        }
        down
    }

    pub fn new(
        config: Config,
        shutdown: CancellationToken,
        store: Option<Arc<RoomStore>>,
        backplane: Option<Arc<dyn SharedRooms>>,
        metadata: Metadata,
    ) -> Self {
        let metrics = Arc::new(Metrics::new());
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let settings = RoomSettings {
            history: config.history as usize,
            history_bytes: usize::try_from(config.history_bytes).unwrap_or(usize::MAX),
            listener_buffer: config.listener_buffer as usize,
            keepalive: config.keepalive,
            fanout_threads: config.threads.map_or_else(
                || std::thread::available_parallelism().map_or(1, |n| n.get()),
                usize::from,
            ),
            ttl: config.room_ttl,
            chat_history: config.chat_history as usize,
            sync: config.sync_rules(),
            starts: StartPolicy {
                lead_ms: config.start_lead_ms as i64,
                gate: GateSettings {
                    quorum: config.gate_quorum,
                    deadline_ms: config.gate_deadline_ms,
                },
            },
        };
        let registry = Registry::new(
            settings,
            config.max_queue,
            config.max_rooms,
            clock.clone(),
            metrics.clone(),
            store,
        )
        .with_max_rooms_per_client(config.max_rooms_per_client as usize)
        .with_max_persistent_rooms(config.max_persistent_rooms as usize);
        // Every node of a cluster must check the tokens any other node issued.
        let stream_key = backplane
            .as_ref()
            .map_or_else(rand::random, |backplane| backplane.stream_key());
        let stream_tokens = stream_token::StreamTokens::new(stream_key, config.max_stream_age);
        let shared = backplane.clone();
        let registry = match backplane {
            Some(backplane) => registry.with_backplane(backplane),
            None => registry,
        };
        let fd_limit = raise_fd_limit();
        let max_streams = config
            .max_connections
            .unwrap_or_else(|| fd_limit.saturating_sub(FD_RESERVE).max(1));
        let chat_limit = RateLimit::new(config.chat_per_minute, config.chat_burst);
        let room_chat_limit = RateLimit::new(config.room_chat_per_minute, config.room_chat_burst);
        let write_limit = RateLimit::new(config.commands_per_minute, config.commands_burst);
        let create_limit = RateLimit::new(config.rooms_per_minute, config.rooms_burst);
        Self {
            config,
            registry,
            metrics,
            clock,
            shutdown,
            chat_limit,
            room_chat_limit,
            write_limit,
            create_limit,
            metadata,
            stream_tokens,
            stream_counts: StreamCounts::default(),
            open_streams: AtomicUsize::new(0),
            max_streams,
            fd_limit,
            shared,
        }
    }

    /// The stream a report names by `token`, if the token is this room's and
    /// the stream was not kicked (on any node): what votes, sync reports and
    /// readiness reports all check first.
    pub async fn live_stream(
        &self,
        handle: &RoomHandle,
        token: &str,
    ) -> Result<stream_token::StreamId, ApiError> {
        let stream = self
            .stream_tokens
            .verify(handle.room_id(), token, self.clock.now_ms())?;
        if handle.kicked(stream.to_string()).await? {
            return Err(stream_token::TokenError::Kicked.into());
        }
        Ok(stream)
    }

    /// The room `room_id` and the live stream its report names by `token`:
    /// what the vote and ready routes look up before they ask the room.
    pub async fn room_and_stream(
        &self,
        room_id: &str,
        token: &str,
    ) -> Result<(RoomHandle, stream_token::StreamId), ApiError> {
        let handle = self
            .registry
            .get(room_id)
            .await?
            .ok_or(ApiError::RoomNotFound)?;
        let stream = self.live_stream(&handle, token).await?;
        Ok((handle, stream))
    }

    /// The most event streams this node holds at once.
    pub fn max_connections(&self) -> usize {
        self.max_streams
    }

    /// The TCP connection limits for the accept loop.
    pub fn connection_limits(&self) -> accept::ConnectionLimits {
        accept::ConnectionLimits {
            max_connections: self.fd_limit.saturating_sub(FD_RESERVE_NON_TCP).max(1),
            header_timeout: self.config.header_timeout,
            shutdown_grace: self.config.shutdown_grace,
            // A socket that took nothing through two keepalive intervals belongs
            // to a client that is gone or not reading: let it go.
            stall_timeout: self.config.keepalive * 2,
            // A keepalive left unacknowledged until the next one is due means the
            // peer is gone: its listener stops counting within that interval.
            dead_peer_timeout: self.config.keepalive,
        }
    }
}

/// Raises the open-file soft limit to the hard limit; answers the limit in force.
fn raise_fd_limit() -> usize {
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
    usize::try_from(limit).unwrap_or(usize::MAX)
}

/// All routes, with the state they share.
pub fn router(app: Arc<AppState>) -> Router {
    // Forgets rate-limiter entries of clients that have gone quiet.
    spawn_sweeper(&app, LIMITER_SWEEP_EVERY, |app| {
        app.chat_limit.sweep();
        app.room_chat_limit.sweep();
        app.write_limit.sweep();
        app.create_limit.sweep();
    });
    // Closes sleeping rooms whose idle time is up (a sleeping room has no
    // timer of its own; see `actor::handle::Inbox`).
    let expiry_sweep = app.registry.expiry_sweep_interval();
    spawn_sweeper(&app, expiry_sweep, |app| {
        app.registry.wake_expired();
    });
    Router::new()
        .route("/api/rooms", post(rooms::create).get(rooms::list))
        .route(
            "/api/rooms/{room_id}",
            get(rooms::get_room).delete(rooms::delete),
        )
        .route("/api/rooms/{room_id}/commands", post(rooms::command))
        .route("/api/rooms/{room_id}/chat", post(rooms::chat))
        .route("/api/rooms/{room_id}/ready", post(ready::ready))
        .route(
            "/api/rooms/{room_id}/host-token",
            post(rooms::reset_host_token),
        )
        .route("/api/rooms/{room_id}/sync", post(sync::report))
        .route(
            "/api/rooms/{room_id}/cohosts",
            post(cohosts::add).get(cohosts::list),
        )
        .route(
            "/api/rooms/{room_id}/cohosts/{cohost_id}",
            delete(cohosts::revoke),
        )
        .route("/api/rooms/{room_id}/vote", post(vote::vote))
        .route(stream::EVENTS_ROUTE, get(events::events))
        .route("/api/media", get(media::list))
        .route("/api/media/art/{*path}", get(media::art))
        .route("/api/time", get(time))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(openapi::OPENAPI_ROUTE, get(openapi::openapi))
        // API answers are live state (and `/api/time` a clock): never cached.
        .route_layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .merge(pages::routes())
        .route("/media/{*path}", get(media::file))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(tower::util::option_layer(cors_layer(
            &app.config.cors_origins,
        )))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(app)
}

/// The span of one request: method, path and the request id (set by the outer
/// layer). No headers: they may carry the host token.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id,
    )
}

/// CORS for the configured origins; `None` (same origin only) when there are none.
fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow_origin = if origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        // The flag's parser admitted only printable ASCII, which always converts.
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|origin| HeaderValue::from_str(origin).ok()),
        )
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                HeaderName::from_static("last-event-id"),
            ])
            .expose_headers([header::LOCATION, header::RETRY_AFTER])
            .max_age(CORS_MAX_AGE),
    )
}

/// Runs `sweep` every `every` until the server stops (or is dropped).
fn spawn_sweeper(app: &Arc<AppState>, every: Duration, sweep: fn(&AppState)) {
    let app = Arc::downgrade(app);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(every);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let Some(app) = app.upgrade() else { break };
            if app.shutdown.is_cancelled() {
                break;
            }
            sweep(&app);
        }
    });
}

/// The answer to `GET /api/time`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ServerTime {
    /// Server Unix time in milliseconds.
    pub server_time: i64,
}

/// The answer to `GET /healthz` (`ok`) and `GET /readyz` (`ready`).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    #[schema(value_type = String, examples("ok", "ready"))]
    pub status: &'static str,
}

/// `GET /api/time`: the server's clock, for clients that extrapolate positions.
#[utoipa::path(
    get,
    path = "/api/time",
    tag = "server",
    responses((status = 200, description = "The server's clock", body = ServerTime))
)]
async fn time(State(app): State<Arc<AppState>>) -> Json<ServerTime> {
    Json(ServerTime {
        server_time: app.clock.now_ms(),
    })
}

/// `GET /healthz`: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "server",
    responses((status = 200, description = "`{\"status\": \"ok\"}`", body = Health))
)]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// `GET /readyz`: the node takes requests (not shutting down, its Redis answers).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "server",
    responses(
        (status = 200, description = "`{\"status\": \"ready\"}`", body = Health),
        (status = 503, description = "`unavailable`: shutting down, or Redis does not answer", body = error::ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    )
)]
async fn readyz(State(app): State<Arc<AppState>>) -> Result<Json<Health>, ApiError> {
    if app.shutdown.is_cancelled() {
        return Err(ApiError::Busy {
            message: "this server is shutting down",
            retry_after_secs: 1,
        });
    }
    let ready = app.registry.ready().await;
    let down = app.record_shard_health();
    if !ready {
        return Err(match down.is_empty() {
            true => ApiError::Unavailable(crate::room::Unavailable),
            false => ApiError::StoreDown {
                shards: down.join(", "),
            },
        });
    }
    Ok(Json(Health { status: "ready" }))
}

/// `GET /metrics`: OpenMetrics text for Prometheus.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "server",
    responses((status = 200, description = "The metrics", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String))
)]
async fn metrics(State(app): State<Arc<AppState>>) -> Response {
    if app.shared.is_some() {
        // Probed now, so that the gauges say how the shards are, not were.
        app.registry.ready().await;
        app.record_shard_health();
    }
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        app.metrics.render(),
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
