//! `POST /api/rooms/{room_id}/ready`: a page's readiness report for the room's
//! ready gate. The report is bound to a live event stream by the stream's token
//! (from its `hello`), so a stranger can neither hold nor fake a room's gate, and
//! any node can check it (the key is shared in Redis mode).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;

use super::error::{ApiError, ErrorBody, StreamBoundErrors};
use super::extract::JsonBody;
use super::limits::ClientIp;
use super::AppState;
use crate::room::command::{decode_shaped, JsonType, Presence, Shape};
use crate::room::gate::GateProgress;

/// The fields of a readiness report, checked before serde reads it.
const READY_SHAPE: Shape = Shape {
    name: "a readiness report",
    fields: &[
        ("stream_token", JsonType::String, Presence::Required),
        (
            "ready_gate",
            JsonType::NonNegativeInteger,
            Presence::Required,
        ),
    ],
    alternatives: None,
};

super::schema::shaped_body!(
    /// The body of `POST /api/rooms/{room_id}/ready`.
    ReadyReportBody,
    "ReadyReport",
    READY_SHAPE
);

#[derive(Deserialize)]
struct ReadyBody {
    stream_token: String,
    ready_gate: u64,
}

/// `POST /api/rooms/{room_id}/ready`: "my stream's page has the gated item
/// loaded and buffered". Counts once per stream; a report naming a gate that is
/// no longer open is answered (`counted: false`) and changes nothing.
#[utoipa::path(
    post,
    path = "/api/rooms/{room_id}/ready",
    tag = "rooms",
    params(("room_id" = String, Path, description = "The room's id")),
    request_body(content = ReadyReportBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The gate's progress after the report", body = GateProgress),
        (status = 400, description = "`invalid_json`: the body is not a JSON object of the right field types; `invalid_command`: an unknown or missing field", body = ErrorBody),
        StreamBoundErrors,
    )
)]
pub async fn ready(
    State(app): State<Arc<AppState>>,
    Path(room_id): Path<String>,
    client: ClientIp,
    JsonBody(body): JsonBody,
) -> Result<Json<GateProgress>, ApiError> {
    let body = body.ok_or_else(|| {
        ApiError::invalid_json("send {\"stream_token\": \"…\", \"ready_gate\": N}".into())
    })?;
    let report: ReadyBody = decode_shaped(body, &READY_SHAPE)?;
    let (handle, stream) = app.room_and_stream(&room_id, &report.stream_token).await?;
    app.write_limit.check(client)?;
    let progress = handle.ready(stream.to_string(), report.ready_gate).await?;
    Ok(Json(progress))
}
