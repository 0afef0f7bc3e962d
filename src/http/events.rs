//! `GET /api/rooms/{room_id}/events`: one room's Server-Sent Events stream.
//!
//! The body is a stream of pre-encoded frames written as they are: the actor
//! encoded each event once, and every listener writes the same `Bytes`. Per
//! listener there is one broadcast receiver and two timers, nothing more.
//!
//! A stream starts with `retry:` (jittered per connection), then a snapshot or
//! the replay of missed events, then live frames. It ends on `closed`, at its
//! maximum age (jittered, so reconnects spread out), or at server shutdown.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Extension;
use bytes::Bytes;
use rand::Rng;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;
use tokio::time::{sleep, Sleep};
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::direct::DirectStream;
use super::error::ApiError;
use super::limits::{ClientIp, StreamSlot};
use super::AppState;
use crate::room::event::{retry_frame, SharedFrame, KEEPALIVE};
use crate::room::handle::ListenerGuard;
use crate::room::RoomHandle;

/// Longest display name a listener may give, in characters.
pub const MAX_LISTENER_NAME_CHARS: usize = 64;
/// Streams end between this fraction of the maximum age and the full age.
const MAX_AGE_JITTER_FLOOR: f64 = 0.85;
/// How long a client turned away at capacity is asked to wait.
const FULL_RETRY_AFTER_SECS: u64 = 5;

/// The query string of an events request.
#[derive(Debug, serde::Deserialize)]
pub struct EventsQuery {
    pub name: Option<String>,
    pub last_event_id: Option<String>,
}

/// Where a stream resumes: the `Last-Event-ID` header if it is text, else the
/// `last_event_id` query parameter. The header is what a browser's EventSource
/// sends on reconnect; it wins over a query parameter that may date from the
/// page's first load. Only an id written as the server writes them (decimal digits,
/// white space around allowed) counts; any other is treated like an unknown one:
/// `None`, and the stream starts with a snapshot.
pub fn resume_from(header: Option<&HeaderValue>, query: Option<&str>) -> Option<u64> {
    let id = header.and_then(|v| v.to_str().ok()).or(query)?.trim();
    // `u64::from_str` alone would also take a leading `+`.
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    id.parse().ok()
}

pub async fn events(
    State(app): State<Arc<AppState>>,
    Path(room_id): Path<String>,
    client: ClientIp,
    direct: Option<Extension<DirectStream>>,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::InvalidValue(e.body_text()))?;
    if let Some(name) = &query.name {
        if name.chars().count() > MAX_LISTENER_NAME_CHARS {
            return Err(ApiError::InvalidValue(format!(
                "`name` must be at most {MAX_LISTENER_NAME_CHARS} characters"
            )));
        }
    }
    let handle = app
        .registry
        .get(&room_id)
        .await?
        .ok_or(ApiError::RoomNotFound)?;
    if let Some(max) = app.config.max_listeners_per_room {
        if handle.shared().listeners() >= max {
            return Err(ApiError::Unavailable {
                message: "this room holds as many listeners as it may; try again shortly",
                retry_after_secs: FULL_RETRY_AFTER_SECS,
            });
        }
    }
    let slot = app.take_stream_slot(client)?;
    let last_event_id = resume_from(headers.get("last-event-id"), query.last_event_id.as_deref());
    let subscription = handle.subscribe(last_event_id).await?;
    tracing::debug!(%room_id, name = query.name.as_deref().unwrap_or(""), resumed = last_event_id.is_some(), "listener joined");

    let config = &app.config;
    let retry_ms = {
        let base = u64::from(config.retry_ms);
        base + rand::rng().random_range(0..=base)
    };
    let max_age = config
        .max_stream_age
        .mul_f64(rand::rng().random_range(MAX_AGE_JITTER_FLOOR..=1.0));

    let mut start = VecDeque::with_capacity(subscription.start.len() + 1);
    start.push_back(retry_frame(retry_ms));
    start.extend(subscription.start.iter().map(|frame| frame.bytes.clone()));
    let listener = Listener {
        start,
        version: subscription.version,
        events_rx: subscription.events_rx,
        handle,
        keepalive_every: config.keepalive,
        keepalive: Box::pin(sleep(config.keepalive)),
        max_age: Box::pin(sleep(max_age)),
        shutdown: Box::pin(app.shutdown.clone().cancelled_owned()),
        ended: false,
        app: app.clone(),
        _guard: subscription.guard,
        _slot: slot,
    };
    // A connection that came in through the direct path writes the stream itself
    // (see `direct`); any other goes through hyper as a streaming body.
    let body = match direct {
        Some(Extension(direct)) => {
            direct.hand_over(listener);
            Body::empty()
        }
        None => Body::from_stream(futures_util::stream::unfold(
            listener,
            |mut listener| async move {
                let chunk = listener.next_chunk().await?;
                Some((Ok::<_, Infallible>(chunk), listener))
            },
        )),
    };
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// One open stream.
pub(crate) struct Listener {
    /// Written before anything live: `retry:`, then the snapshot or the replay.
    start: VecDeque<Bytes>,
    /// The last version written; live frames at or below it are skipped.
    version: u64,
    events_rx: Receiver<SharedFrame>,
    handle: RoomHandle,
    keepalive_every: Duration,
    keepalive: Pin<Box<Sleep>>,
    max_age: Pin<Box<Sleep>>,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    /// `closed` was written: the next poll ends the stream.
    ended: bool,
    app: Arc<AppState>,
    // Held for their `Drop`: counting this listener in the room and on the node.
    _guard: ListenerGuard,
    _slot: StreamSlot,
}

impl Listener {
    /// What is written before anything live (`retry:`, then the snapshot or the
    /// replay), all at once, so a direct connection writes its start in one go.
    pub(crate) fn take_start(&mut self) -> VecDeque<Bytes> {
        std::mem::take(&mut self.start)
    }

    /// The next bytes to write, or `None` to end the stream.
    ///
    /// Not cancel-safe: a resync in progress would be lost. Poll it to completion.
    pub(crate) async fn next_chunk(&mut self) -> Option<Bytes> {
        if self.ended {
            return None;
        }
        if let Some(chunk) = self.start.pop_front() {
            return Some(chunk);
        }
        loop {
            tokio::select! {
                biased;
                // The server is stopping: tell the browser to come back after a
                // random share of the spread, so a restart meets no reconnect storm.
                _ = &mut self.shutdown => {
                    self.ended = true;
                    let spread = self.app.config.shutdown_retry_spread.as_millis() as u64;
                    let base = u64::from(self.app.config.retry_ms);
                    return Some(retry_frame(base + rand::rng().random_range(0..=spread)));
                }
                _ = &mut self.max_age => return None,
                received = self.events_rx.recv() => match received {
                    Ok(frame) => {
                        if let Some(version) = frame.version {
                            if version <= self.version {
                                continue;
                            }
                            self.version = version;
                        }
                        if let Some(fanout) = &frame.fanout {
                            if let Some(elapsed) = fanout.written() {
                                self.app.metrics.fanout_seconds.observe(elapsed.as_secs_f64());
                            }
                        }
                        self.ended = frame.ends_stream;
                        self.reset_keepalive();
                        return Some(frame.bytes.clone());
                    }
                    // Too slow: the ring moved past us. A fresh snapshot puts this
                    // listener back on its feet (the state is idempotent); what is
                    // still in the ring at or below its version is skipped above.
                    Err(RecvError::Lagged(_)) => {
                        let snapshot = self.handle.resync().await.ok()?;
                        // Lagged only on frames without a version (presence): this
                        // listener already has the state, so send nothing twice.
                        match snapshot.version {
                            Some(version) if version <= self.version => continue,
                            Some(version) => self.version = version,
                            None => {}
                        }
                        self.reset_keepalive();
                        return Some(snapshot.bytes.clone());
                    }
                    // The actor ended without `closed` (server stopping).
                    Err(RecvError::Closed) => return None,
                },
                _ = &mut self.keepalive => {
                    self.reset_keepalive();
                    return Some(Bytes::from_static(KEEPALIVE));
                }
            }
        }
    }

    fn reset_keepalive(&mut self) {
        let deadline = tokio::time::Instant::now() + self.keepalive_every;
        self.keepalive.as_mut().reset(deadline);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(value: &str) -> HeaderValue {
        HeaderValue::from_str(value).unwrap()
    }

    #[test]
    fn resume_reads_decimal_ids_from_the_header_before_the_query() {
        assert_eq!(resume_from(Some(&header("42")), Some("7")), Some(42));
        assert_eq!(resume_from(Some(&header(" 7\t")), None), Some(7));
        assert_eq!(resume_from(None, Some("0007")), Some(7));
        assert_eq!(
            resume_from(None, Some("18446744073709551615")),
            Some(u64::MAX)
        );
        // A header that is text wins, even when it is no id.
        assert_eq!(resume_from(Some(&header("abc")), Some("7")), None);
        // One that is not text is as if absent.
        let binary = HeaderValue::from_bytes(b"\xff").unwrap();
        assert_eq!(resume_from(Some(&binary), Some("7")), Some(7));
    }

    #[test]
    fn resume_refuses_ids_the_server_never_writes() {
        // Found by the last_event_id fuzz target: `+5` parsed as 5.
        for id in [
            "+5",
            "-1",
            "1.5",
            "2abc",
            "",
            " ",
            "18446744073709551616",
            "٣",
        ] {
            assert_eq!(resume_from(Some(&header(id)), None), None, "header {id:?}");
            assert_eq!(resume_from(None, Some(id)), None, "query {id:?}");
        }
    }
}
