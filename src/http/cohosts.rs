//! Co-host routes: the host adds, lists and revokes co-hosts. The rules (who
//! may, how many, the names) are the room's (`room::cohosts`); these handlers
//! only read the request and write the answer.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::error::{ApiError, ErrorBody};
use super::extract::{bearer_token, JsonBody};
use super::limits::ClientIp;
use super::AppState;
use crate::actor::handle::RoomError;
use crate::registry::new_host_token;
use crate::room::cohosts::{CohostAnswer, CohostCall, CohostView};
use crate::room::command::{decode_shaped, JsonType, Presence, Shape};

/// The fields of a new co-host's body.
const COHOST_SHAPE: Shape = Shape {
    name: "a co-host",
    fields: &[("name", JsonType::String, Presence::Required)],
    alternatives: None,
};

super::schema::shaped_body!(
    /// The body of `POST /api/rooms/{room_id}/cohosts`.
    NewCohostBody,
    "NewCohost",
    COHOST_SHAPE
);

#[derive(Deserialize)]
struct NewCohost {
    name: String,
}

/// The answer to adding a co-host.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AddedCohost {
    pub cohost_id: String,
    /// Shown only here: the co-host's key, sent as `Authorization: Bearer`.
    pub cohost_token: String,
    pub name: String,
}

/// The answer to listing co-hosts: ids and names, never tokens.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CohostList {
    pub cohosts: Vec<CohostView>,
}

async fn call(
    app: &AppState,
    room_id: &str,
    headers: &HeaderMap,
    call: CohostCall,
) -> Result<CohostAnswer, ApiError> {
    let handle = app
        .registry
        .get(room_id)
        .await?
        .ok_or(ApiError::RoomNotFound)?;
    Ok(handle.cohosts(bearer_token(headers), call).await?)
}

/// An answer that does not fit the call: never happens, but is no panic.
fn mismatched() -> ApiError {
    ApiError::from(RoomError::Closed)
}

/// `POST /api/rooms/{room_id}/cohosts`: a new co-host and their token.
#[utoipa::path(
    post,
    path = "/api/rooms/{room_id}/cohosts",
    tag = "rooms",
    params(("room_id" = String, Path, description = "The room's id")),
    security(("host_token" = [])),
    request_body(content = NewCohostBody, content_type = "application/json"),
    responses(
        (status = 201, description = "The co-host and their token (shown only here); listeners get a `cohosts` event", body = AddedCohost),
        (status = 400, description = "`invalid_json` / `invalid_command`: not `{\"name\"}`; `invalid_value`: the name breaks the chat-name rules, or the room has `--max-cohosts` co-hosts", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no host token", body = ErrorBody),
        (status = 403, description = "`forbidden`: the token is not the host's", body = ErrorBody),
        (status = 404, description = "`room_not_found`: no room has this id", body = ErrorBody),
        (status = 429, description = "`rate_limited`: this client address sent too many requests", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 503, description = "`unavailable`: the shared room store (Redis) did not answer; nothing changed", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    )
)]
pub async fn add(
    State(app): State<Arc<AppState>>,
    Path(room_id): Path<String>,
    client: ClientIp,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    app.write_limit.check(client)?;
    let body = body.ok_or_else(|| ApiError::invalid_json("send {\"name\": \"…\"}".into()))?;
    let NewCohost { name } = decode_shaped(body, &COHOST_SHAPE)?;
    let token = new_host_token();
    let add = CohostCall::Add {
        name,
        token: token.clone(),
        max: app.config.max_cohosts,
    };
    let CohostAnswer::Added(cohost) = call(&app, &room_id, &headers, add).await? else {
        return Err(mismatched());
    };
    let added = AddedCohost {
        cohost_id: cohost.cohost_id,
        cohost_token: token,
        name: cohost.name,
    };
    Ok((StatusCode::CREATED, Json(added)).into_response())
}

/// `GET /api/rooms/{room_id}/cohosts`: the co-hosts' ids and names.
#[utoipa::path(
    get,
    path = "/api/rooms/{room_id}/cohosts",
    tag = "rooms",
    params(("room_id" = String, Path, description = "The room's id")),
    security(("host_token" = [])),
    responses(
        (status = 200, description = "The co-hosts, oldest first: ids and names, never tokens", body = CohostList),
        (status = 401, description = "`unauthorized`: no host token", body = ErrorBody),
        (status = 403, description = "`forbidden`: the token is not the host's", body = ErrorBody),
        (status = 404, description = "`room_not_found`: no room has this id", body = ErrorBody),
        (status = 503, description = "`unavailable`: the shared room store (Redis) did not answer", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    )
)]
pub async fn list(
    State(app): State<Arc<AppState>>,
    Path(room_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<CohostList>, ApiError> {
    let CohostAnswer::List(cohosts) = call(&app, &room_id, &headers, CohostCall::List).await?
    else {
        return Err(mismatched());
    };
    Ok(Json(CohostList { cohosts }))
}

/// `DELETE /api/rooms/{room_id}/cohosts/{cohost_id}`: revokes a co-host at once.
#[utoipa::path(
    delete,
    path = "/api/rooms/{room_id}/cohosts/{cohost_id}",
    tag = "rooms",
    params(
        ("room_id" = String, Path, description = "The room's id"),
        ("cohost_id" = String, Path, description = "The co-host's id"),
    ),
    security(("host_token" = [])),
    responses(
        (status = 204, description = "Revoked: the co-host's token is refused from now on, on every node; listeners get a `cohosts` event"),
        (status = 401, description = "`unauthorized`: no host token", body = ErrorBody),
        (status = 403, description = "`forbidden`: the token is not the host's", body = ErrorBody),
        (status = 404, description = "`room_not_found`: no room has this id; `not_found`: no co-host has this id", body = ErrorBody),
        (status = 429, description = "`rate_limited`: this client address sent too many requests", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 503, description = "`unavailable`: the shared room store (Redis) did not answer; nothing changed", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    )
)]
pub async fn revoke(
    State(app): State<Arc<AppState>>,
    Path((room_id, cohost_id)): Path<(String, String)>,
    client: ClientIp,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    app.write_limit.check(client)?;
    call(&app, &room_id, &headers, CohostCall::Revoke { cohost_id }).await?;
    Ok(StatusCode::NO_CONTENT)
}
