//! `POST /api/rooms/{room_id}/sync`: a listener's page reports its drift.
//!
//! The report names its event stream by the stream token of that stream's
//! `hello` event, so reports count once per listening stream, whatever address
//! they come from; a later report of the same stream replaces the earlier one.
//! The body is small and strict: the fields of [`SYNC_SHAPE`], nothing else,
//! at most [`MAX_SYNC_REPORT_BYTES`]. Every refusal changes nothing.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;

use super::error::{ApiError, ErrorBody};
use super::extract::JsonBody;
use super::AppState;
use crate::room::command::{check_text, decode_shaped, Empty, JsonType, Presence, Shape};
use crate::room::state::MAX_CHAT_NAME_CHARS;
use crate::room::sync::{tenths, DriftReport, PlayerKind, SyncSummary, MAX_DRIFT_MS};
use crate::room::view::MAX_POSITION;
use crate::room::CommandError;

/// Largest sync report body: the fields with a token and a 64-character name fit in half of it.
pub const MAX_SYNC_REPORT_BYTES: usize = 1024;

/// The fields of a sync report, checked before serde reads it.
pub const SYNC_SHAPE: Shape = Shape {
    name: "a sync report",
    fields: &[
        ("stream_token", JsonType::String, Presence::Required),
        ("drift_p50_ms", JsonType::Number, Presence::Required),
        ("drift_p95_ms", JsonType::Number, Presence::Required),
        (
            "player",
            JsonType::OneOf(PlayerKind::NAMES),
            Presence::Required,
        ),
        ("buffering", JsonType::Boolean, Presence::Optional),
        ("name", JsonType::String, Presence::Optional),
        ("duration", JsonType::Number, Presence::Optional),
    ],
    alternatives: None,
};

#[derive(Deserialize)]
struct SyncReportFields {
    stream_token: String,
    drift_p50_ms: f64,
    drift_p95_ms: f64,
    player: PlayerKind,
    #[serde(default)]
    buffering: bool,
    name: Option<String>,
    duration: Option<f64>,
}

/// The answer to a sync report.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SyncAccepted {
    /// The room's sync summary with this report.
    pub sync: SyncSummary,
    /// When to send the next report (`--sync-report-interval`), in ms.
    pub report_every_ms: u64,
}

/// The body of `POST /api/rooms/{room_id}/sync`.
pub struct SyncReportBody;

impl utoipa::PartialSchema for SyncReportBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::Schema;
        Schema::Object(super::schema::shape_schema(&SYNC_SHAPE, &[]).build()).into()
    }
}

impl utoipa::ToSchema for SyncReportBody {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("SyncReport")
    }
}

/// The report, checked: each drift from 0 to [`MAX_DRIFT_MS`], p50 ≤ p95, and a
/// name as a chat name (trimmed, 1 to 64 characters, no control characters),
/// a duration above 0 and at most [`MAX_POSITION`] seconds.
fn check_report(fields: &SyncReportFields) -> Result<DriftReport, CommandError> {
    for (name, value) in [
        ("drift_p50_ms", fields.drift_p50_ms),
        ("drift_p95_ms", fields.drift_p95_ms),
    ] {
        if !(0.0..=MAX_DRIFT_MS).contains(&value) {
            return Err(CommandError::InvalidValue(format!(
                "`{name}` must be from 0 to {MAX_DRIFT_MS} (milliseconds)"
            )));
        }
    }
    if fields.drift_p50_ms > fields.drift_p95_ms {
        return Err(CommandError::InvalidValue(
            "`drift_p50_ms` must not be larger than `drift_p95_ms`".into(),
        ));
    }
    if let Some(duration) = fields.duration {
        if !(duration > 0.0 && duration <= MAX_POSITION) {
            return Err(CommandError::InvalidValue(format!(
                "`duration` must be above 0 and at most {MAX_POSITION} (seconds)"
            )));
        }
    }
    let name = match &fields.name {
        Some(name) => {
            Some(check_text("name", name, MAX_CHAT_NAME_CHARS, Empty::Refused)?.to_owned())
        }
        None => None,
    };
    // In the summary's 0.1 ms steps from here on: every store rounds and compares alike.
    Ok(DriftReport {
        p50_ms: tenths(fields.drift_p50_ms),
        p95_ms: tenths(fields.drift_p95_ms),
        player: fields.player,
        buffering: fields.buffering,
        name,
        duration: fields.duration,
    })
}

/// `POST /api/rooms/{room_id}/sync`: no host token; the stream token says whose.
#[utoipa::path(
    post,
    path = "/api/rooms/{room_id}/sync",
    tag = "rooms",
    params(("room_id" = String, Path, description = "The room's id")),
    request_body(content = SyncReportBody, content_type = "application/json", description = "The page's drift over its last report interval, and its stream's token (from `hello`)"),
    responses(
        (status = 200, description = "Taken: it replaces the stream's previous report and counts for three report intervals, or until the stream closes", body = SyncAccepted),
        (status = 400, description = "`invalid_json`: the body is not a JSON object of the right field types; `invalid_command`: an unknown or missing field; `invalid_value`: an unknown `player`, a drift outside 0..600000 ms, p50 above p95, a `duration` not above 0 or above 1000000 s, or a `name` that is blank, longer than 64 characters or holds a control character", body = ErrorBody),
        (status = 401, description = "`unauthorized`: `stream_token` is empty", body = ErrorBody),
        (status = 403, description = "`forbidden`: `stream_token` is not valid for this room (another room's, forged, or expired), or its stream was kicked", body = ErrorBody),
        (status = 404, description = "`room_not_found`: no room has this id", body = ErrorBody),
        (status = 408, description = "`request_timeout`: the body did not arrive within `--body-timeout`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: the body is larger than 1 KiB", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: a non-empty body without `Content-Type: application/json`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: this stream reported less than half a report interval ago", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 503, description = "`unavailable`: the room holds `--max-sync-reports` reports, or the shared room store (Redis) did not answer; nothing changed", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    )
)]
pub async fn report(
    State(app): State<Arc<AppState>>,
    Path(room_id): Path<String>,
    JsonBody(body): JsonBody<MAX_SYNC_REPORT_BYTES>,
) -> Result<Json<SyncAccepted>, ApiError> {
    let handle = app
        .registry
        .get(&room_id)
        .await?
        .ok_or(ApiError::RoomNotFound)?;
    let body = body.ok_or_else(|| {
        ApiError::invalid_json(
            "send {\"stream_token\": \"…\", \"drift_p50_ms\": …, \"drift_p95_ms\": …, \"player\": \"…\"}"
                .into(),
        )
    })?;
    let fields: SyncReportFields = decode_shaped(body, &SYNC_SHAPE)?;
    let report = check_report(&fields)?;
    let stream = app.live_stream(&handle, &fields.stream_token).await?;
    let (player, p95_ms, buffering) = (report.player, report.p95_ms, report.buffering);
    let sync = handle.report_sync(stream.to_string(), report).await?;
    // The histogram is of drift while playing: a stalled player's distance is left out.
    if !buffering {
        app.metrics.listener_drift(player.as_str(), p95_ms);
    }
    Ok(Json(SyncAccepted {
        sync,
        report_every_ms: app.config.sync_report_interval.as_millis() as u64,
    }))
}
