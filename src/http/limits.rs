//! Per-client fairness: who the client is ([`ClientIp`]), how fast it may write
//! ([`RateLimit`]), and how many event streams it may hold ([`StreamSlot`]).
//!
//! A public watch-party server must stay fair when one client opens a thousand
//! streams or floods commands; these are the answers (`429 rate_limited` and
//! `503 unavailable`, both with `Retry-After`).

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use dashmap::DashMap;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::error::ApiError;
use super::AppState;

/// How long a client turned away for holding too many streams is asked to wait.
const STREAMS_RETRY_AFTER_SECS: u64 = 5;
/// How long a client turned away at node capacity is asked to wait.
pub const FULL_RETRY_AFTER_SECS: u64 = 5;

/// The client's address: the TCP peer, or with `--trust-proxy` the address the
/// proxy appended to `X-Forwarded-For` (the rightmost one: entries to its left
/// come from the client and can be forged).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<Arc<AppState>> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<AppState>) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
            .ok_or_else(|| ApiError::Internal("no peer address on the request".into()))?;
        if !app.config.trust_proxy {
            return Ok(ClientIp(peer));
        }
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|entry| entry.trim().parse::<IpAddr>().ok())
            .next_back();
        Ok(ClientIp(forwarded.unwrap_or(peer)))
    }
}

/// A rate limit per key (GCRA, from `governor`): per client address, or per
/// room (the chat flood guard).
pub struct RateLimit<K = IpAddr>
where
    K: std::hash::Hash + Eq + Clone,
{
    limiter: DefaultKeyedRateLimiter<K>,
}

impl RateLimit<IpAddr> {
    /// Counts one request from `client`, or says when it may come back.
    pub fn check(&self, client: ClientIp) -> Result<(), ApiError> {
        self.check_key(&client.0)
    }
}

impl<K: std::hash::Hash + Eq + Clone> RateLimit<K> {
    pub fn new(per_minute: u32, burst: u32) -> Self {
        let quota = Quota::per_minute(nonzero(per_minute)).allow_burst(nonzero(burst));
        Self {
            limiter: RateLimiter::keyed(quota),
        }
    }

    /// Counts one request under `key`, or says when the next may come.
    pub fn check_key(&self, key: &K) -> Result<(), ApiError> {
        self.limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::RateLimited {
                retry_after_secs: wait.as_secs_f64().ceil() as u64,
            }
        })
    }

    /// Forgets clients that have gone quiet, so memory follows active clients.
    pub fn sweep(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

fn nonzero(value: u32) -> NonZeroU32 {
    NonZeroU32::new(value).unwrap_or(NonZeroU32::MIN)
}

/// Open event streams per client address. Entries leave when they reach zero,
/// so the map holds only clients with open streams.
#[derive(Default)]
pub struct StreamCounts {
    per_client: DashMap<IpAddr, usize>,
}

/// One counted event stream; dropping it frees the place on the node and for
/// its client.
pub struct StreamSlot {
    app: Arc<AppState>,
    client: IpAddr,
    /// Counted in the `syncroom_connections` gauge (not for a refused stream).
    counted: bool,
}

impl AppState {
    /// Claims room for one more event stream from `client`.
    pub(crate) fn take_stream_slot(
        self: &Arc<Self>,
        client: ClientIp,
    ) -> Result<StreamSlot, ApiError> {
        {
            let mut count = self.stream_counts.per_client.entry(client.0).or_insert(0);
            if *count >= self.config.max_streams_per_client {
                return Err(ApiError::RateLimited {
                    retry_after_secs: STREAMS_RETRY_AFTER_SECS,
                });
            }
            *count += 1;
        }
        // From here the slot exists, and its Drop undoes both counts.
        let before = self.open_streams.fetch_add(1, Ordering::AcqRel);
        let mut slot = StreamSlot {
            app: self.clone(),
            client: client.0,
            counted: false,
        };
        if before >= self.max_streams {
            return Err(ApiError::Busy {
                message: "this server holds as many event streams as it may; try again shortly",
                retry_after_secs: FULL_RETRY_AFTER_SECS,
            });
        }
        self.metrics.connections.inc();
        slot.counted = true;
        Ok(slot)
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.app.open_streams.fetch_sub(1, Ordering::AcqRel);
        if self.counted {
            self.app.metrics.connections.dec();
        }
        let counts = &self.app.stream_counts.per_client;
        if let Some(mut count) = counts.get_mut(&self.client) {
            *count = count.saturating_sub(1);
        }
        counts.remove_if(&self.client, |_, count| *count == 0);
    }
}
