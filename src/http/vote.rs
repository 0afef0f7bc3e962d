//! `POST /api/rooms/{room_id}/vote`: a listener's vote to skip the loaded item.
//! Like a readiness report, the vote is bound to a live event stream by the
//! stream's token (from its `hello`): each live stream votes once per item, a
//! stranger cannot vote, and the vote goes when its stream ends.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;

use super::error::{ApiError, ErrorBody, StreamBoundErrors};
use super::extract::JsonBody;
use super::limits::ClientIp;
use super::AppState;
use crate::room::command::{decode_shaped, JsonType, Presence, Shape};
use crate::room::votes::VoteProgress;

/// What a vote may be: only skipping, for now.
const VOTE_NAMES: &[&str] = &["skip"];

/// The fields of a vote, checked before serde reads it.
const VOTE_SHAPE: Shape = Shape {
    name: "a vote",
    fields: &[
        ("stream_token", JsonType::String, Presence::Required),
        ("vote", JsonType::OneOf(VOTE_NAMES), Presence::Required),
    ],
    alternatives: None,
};

super::schema::shaped_body!(
    /// The body of `POST /api/rooms/{room_id}/vote`.
    VoteBody,
    "Vote",
    VOTE_SHAPE
);

#[derive(Deserialize)]
struct Vote {
    stream_token: String,
}

/// `POST /api/rooms/{room_id}/vote`: "my stream votes to skip what plays".
/// Counts once per stream and item; a second vote is answered (`counted:
/// false`) and changes nothing. Enough votes skip the item at once.
#[utoipa::path(
    post,
    path = "/api/rooms/{room_id}/vote",
    tag = "rooms",
    params(("room_id" = String, Path, description = "The room's id")),
    request_body(content = VoteBody, content_type = "application/json"),
    responses(
        (status = 200, description = "How the votes to skip the loaded item stand after this one", body = VoteProgress),
        (status = 400, description = "`invalid_json`: the body is not a JSON object of the right field types; `invalid_value`: `vote` is not `\"skip\"`; `invalid_command`: an unknown or missing field, or vote skip is off in this room", body = ErrorBody),
        StreamBoundErrors,
    )
)]
pub async fn vote(
    State(app): State<Arc<AppState>>,
    Path(room_id): Path<String>,
    client: ClientIp,
    JsonBody(body): JsonBody,
) -> Result<Json<VoteProgress>, ApiError> {
    let body = body.ok_or_else(|| {
        ApiError::invalid_json("send {\"stream_token\": \"…\", \"vote\": \"skip\"}".into())
    })?;
    let vote: Vote = decode_shaped(body, &VOTE_SHAPE)?;
    let (handle, stream) = app.room_and_stream(&room_id, &vote.stream_token).await?;
    app.write_limit.check(client)?;
    let progress = handle.vote(stream.to_string()).await?;
    Ok(Json(progress))
}
