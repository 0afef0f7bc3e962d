//! `GET /api/rooms/{room_id}/events`: one room's Server-Sent Events stream.
//!
//! The body is a stream of pre-encoded frames written as they are: the actor
//! encoded each event once, and every listener is sent the same `Bytes`. Per
//! listener the room holds one sink (`delivery::fanout::Sink`): a bounded queue
//! of shared frames that the stream's task writes, or, once a stream with a
//! socket of its own has caught up, that socket, which the room writes itself.
//!
//! A stream starts with `retry:` (jittered per connection), `hello` (the
//! stream's id and token, see [`super::stream_token`]), then a snapshot or
//! the replay of missed events, then live frames. It ends on `closed`, at its
//! maximum age (jittered, so reconnects spread out), or at server shutdown.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Extension;

use super::error::{ApiError, ErrorBody};
use super::limits::{ClientIp, FULL_RETRY_AFTER_SECS};
use super::stream::{DirectStream, Listener};
use super::AppState;
use crate::actor::handle::ListenerInfo;
use crate::room::check::{check_text, Empty};
use crate::room::command::MAX_CHAT_NAME_CHARS;

/// The query string of an events request.
#[derive(Debug, serde::Deserialize)]
pub struct EventsQuery {
    pub name: Option<String>,
    pub last_event_id: Option<String>,
    /// `1`: this page takes part in the ready gate (it reports readiness).
    pub ready_gate: Option<u8>,
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

/// `GET /api/rooms/{room_id}/events`: the room's Server-Sent Events stream.
#[utoipa::path(
    get,
    path = "/api/rooms/{room_id}/events",
    tag = "events",
    params(
        ("room_id" = String, Path, description = "The room's id"),
        ("name" = Option<String>, Query, description = "A display name, shown to the room (its `members`) and in logs: trimmed, 1 to 64 characters, no control characters (the rules of a chat name)"),
        ("last_event_id" = Option<String>, Query, description = "Resume after this event id (the `Last-Event-ID` header wins)"),
        ("ready_gate" = Option<u8>, Query, description = "`1`: this page takes part in the ready gate (it reports to `POST /api/rooms/{room_id}/ready`), so the room waits for it after a load; `0` or absent: it does not"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id: the events missed are replayed, or a `snapshot` comes when they are no longer kept"),
    ),
    responses(
        (status = 200, description = "The stream. Each message is one of `SseMessage` (`snapshot`, `state`, `queue`, `chat`, `control`, `permissions`, `cohosts`, `ready_gate`, `hello`, `presence`, `sync`, `gate`, `kicked`, `members`, `closed`), written as SSE text: `id:`, `event:`, `data:` (JSON).", content_type = "text/event-stream", body = super::schema::SseMessage,
            headers(("Cache-Control" = String, description = "`no-cache`"), ("X-Accel-Buffering" = String, description = "`no`: proxies must not buffer the stream"))),
        (status = 400, description = "`invalid_value`: a query parameter is malformed, or `name` breaks the chat-name rules (empty, too long, control characters)", body = ErrorBody),
        (status = 404, description = "`room_not_found`: no room has this id", body = ErrorBody),
        (status = 429, description = "`rate_limited`: this client address holds `--max-streams-per-client` streams already", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 503, description = "`unavailable`: the room holds `--max-listeners-per-room` listeners, the server holds as many streams as it may, or the shared room store did not answer", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    )
)]
pub async fn events(
    State(app): State<Arc<AppState>>,
    Path(room_id): Path<String>,
    client: ClientIp,
    direct: Option<Extension<DirectStream>>,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::invalid_value(e.body_text()))?;
    // Shown to the room (its `members`): the rules of a chat author's name.
    let name = match &query.name {
        Some(name) => {
            Some(check_text("name", name, MAX_CHAT_NAME_CHARS, Empty::Refused)?.to_owned())
        }
        None => None,
    };
    if query.ready_gate.is_some_and(|flag| flag > 1) {
        return Err(ApiError::invalid_value(
            "`ready_gate` must be 1 (take part) or 0".into(),
        ));
    }
    let handle = app
        .registry
        .get(&room_id)
        .await?
        .ok_or(ApiError::RoomNotFound)?;
    if let Some(max) = app.config.max_listeners_per_room {
        if handle.status().listeners() >= max {
            return Err(ApiError::Busy {
                message: "this room holds as many listeners as it may; try again shortly",
                retry_after_secs: FULL_RETRY_AFTER_SECS,
            });
        }
    }
    let slot = app.take_stream_slot(client)?;
    let last_event_id = resume_from(headers.get("last-event-id"), query.last_event_id.as_deref());
    let hello = app
        .stream_tokens
        .issue(handle.room_id(), app.clock.now_ms());
    let listener = ListenerInfo {
        stream: hello.stream.to_string(),
        name,
    };
    let mut subscription = handle.subscribe_as(last_event_id, listener).await?;
    if query.ready_gate == Some(1) {
        subscription.guard.join_ready_gate();
    }
    tracing::debug!(%room_id, name = query.name.as_deref().unwrap_or("").trim(), resumed = last_event_id.is_some(), "listener joined");

    let listener = Listener::new(&app, handle, subscription, slot, hello);
    // A connection that came in through the socket writer writes the stream
    // itself (see `socket_stream`); any other goes through hyper as a body.
    let body = match direct {
        Some(Extension(direct)) => {
            direct.hand_over(listener);
            Body::empty()
        }
        None => listener.into_body(),
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
        // `u64::from_str` takes a leading `+`: `+5` must not resume from 5.
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
