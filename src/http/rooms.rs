//! Room routes: create, get, list, delete, commands, chat and host token resets. Each handler checks
//! the request's shape, calls the room and writes the answer; nothing more.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;

use super::error::{ApiError, ErrorBody};
use super::extract::{bearer_token, JsonBody, MAX_COMMAND_BODY_BYTES};
use super::item_info;
use super::limits::ClientIp;
use super::AppState;
use crate::actor::handle::{CommandReply, HostToken};
use crate::actor::port::RoomSummary;
use crate::actor::RoomHandle;
use crate::registry::{new_host_token, CreateRoom};
use crate::room::command::{
    check_text, decode_shaped, CommandRequest, Empty, JsonType, Presence, Shape,
};
use crate::room::state::RoomView;
use crate::room::state::{MAX_CHAT_NAME_CHARS, MAX_CHAT_TEXT_CHARS};
use crate::room::Command;

async fn room(app: &AppState, room_id: &str) -> Result<RoomHandle, ApiError> {
    app.registry
        .get(room_id)
        .await?
        .ok_or(ApiError::RoomNotFound)
}

/// The answer to `POST /api/rooms`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = CreatedRoom)]
pub struct CreatedRoom {
    pub room_id: String,
    /// Shown only here: the key to control and close the room.
    pub host_token: String,
    pub room: RoomView,
}

/// The answer to `GET /api/rooms`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RoomList {
    /// Busiest first, at most a fixed number of rooms.
    pub rooms: Vec<RoomSummary>,
}

/// The answer to a host token reset.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct HostTokenReply {
    /// The room's new host token, shown only here; the old one no longer works.
    pub host_token: String,
    /// The room's version after the reset (its `host_token` event).
    pub version: u64,
}

/// The answer to a chat message.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ChatReply {
    /// The room's version after the message.
    pub version: u64,
}

/// `POST /api/rooms`: every field optional, an empty body is fine.
#[utoipa::path(
    post,
    path = "/api/rooms",
    tag = "rooms",
    request_body(content = super::schema::CreateRoomBody, content_type = "application/json", description = "Every field optional; an empty body is fine"),
    responses(
        (status = 201, description = "The room was created", body = CreatedRoom, headers(("Location" = String, description = "The room's URL"))),
        (status = 400, description = "`invalid_json`: the body is not a JSON object of the right field types; `invalid_command`: an unknown or missing field (or `type`); `invalid_value`: a value out of range", body = ErrorBody),
        (status = 408, description = "`request_timeout`: the body did not arrive within `--body-timeout`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: the body is larger than the limit", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: a non-empty body without `Content-Type: application/json`", body = ErrorBody),
        (status = 409, description = "`room_exists`: a room with this `room_id` exists already", body = ErrorBody),
        (status = 429, description = "`rate_limited`: this client address created too many rooms lately (`--rooms-per-minute`, `--rooms-burst`), or holds `--max-rooms-per-client` open rooms (`Retry-After: 60`)", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 503, description = "`unavailable`: the server holds `--max-rooms` rooms, or the shared room store (Redis) did not answer", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    )
)]
pub async fn create(
    State(app): State<Arc<AppState>>,
    client: ClientIp,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let request = match body {
        None => CreateRoom::default(),
        Some(body) => CreateRoom::decode(body)?,
    };
    // After the body: a typo costs nothing. Creation has its own budget, apart
    // from commands, so that one address cannot fill the server with rooms.
    app.create_limit.check(client)?;
    let created = app.registry.create(request, client.0).await?;
    let location = format!("/api/rooms/{}", created.room_id);
    let body = CreatedRoom {
        room_id: created.room_id,
        host_token: created.host_token,
        room: created.room,
    };
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response())
}

/// `GET /api/rooms/{room_id}`.
#[utoipa::path(
    get,
    path = "/api/rooms/{room_id}",
    tag = "rooms",
    params(("room_id" = String, Path, description = "The room's id")),
    responses(
        (status = 200, description = "The room, now", body = RoomView),
        (status = 404, description = "`room_not_found`: no room has this id", body = ErrorBody),
        (status = 503, description = "`unavailable`: the shared room store (Redis) did not answer; nothing changed", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    )
)]
pub async fn get_room(
    State(app): State<Arc<AppState>>,
    Path(room_id): Path<String>,
) -> Result<Response, ApiError> {
    let view = room(&app, &room_id).await?.view().await?;
    Ok(Json(view).into_response())
}

/// `GET /api/rooms`: the public rooms, busiest first.
#[utoipa::path(
    get,
    path = "/api/rooms",
    tag = "rooms",
    responses(
        (status = 200, description = "The public rooms, busiest first (unlisted rooms are never listed)", body = RoomList),
        (status = 503, description = "`unavailable`: the shared room store (Redis) did not answer; nothing changed", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    )
)]
pub async fn list(State(app): State<Arc<AppState>>) -> Result<Json<RoomList>, ApiError> {
    Ok(Json(RoomList {
        rooms: app.registry.list().await?,
    }))
}

/// `DELETE /api/rooms/{room_id}`: host token in every control mode.
#[utoipa::path(
    delete,
    path = "/api/rooms/{room_id}",
    tag = "rooms",
    params(("room_id" = String, Path, description = "The room's id")),
    security(("host_token" = [])),
    responses(
        (status = 204, description = "The room is closed; its streams end with `closed`"),
        (status = 401, description = "`unauthorized`: no host token", body = ErrorBody),
        (status = 403, description = "`forbidden`: the host token is wrong", body = ErrorBody),
        (status = 404, description = "`room_not_found`: no room has this id", body = ErrorBody),
        (status = 429, description = "`rate_limited`: this client address sent too many requests (`--commands-per-minute`, `--commands-burst`)", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 503, description = "`unavailable`: the shared room store (Redis) did not answer; nothing changed", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    )
)]
pub async fn delete(
    State(app): State<Arc<AppState>>,
    Path(room_id): Path<String>,
    client: ClientIp,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    app.write_limit.check(client)?;
    room(&app, &room_id)
        .await?
        .delete(bearer_token(&headers))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/rooms/{room_id}/commands`.
#[utoipa::path(
    post,
    path = "/api/rooms/{room_id}/commands",
    tag = "rooms",
    params(("room_id" = String, Path, description = "The room's id")),
    security(("host_token" = []), ()),
    request_body(content = super::schema::CommandBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Applied (or a no-op): the room's version and the room after it", body = CommandReply),
        (status = 400, description = "`invalid_json`: the body is not a JSON object of the right field types; `invalid_command`: an unknown or missing field (or `type`); `invalid_value`: a value out of range", body = ErrorBody),
        (status = 408, description = "`request_timeout`: the body did not arrive within `--body-timeout`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: the body is larger than the limit", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: a non-empty body without `Content-Type: application/json`", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no token, and the room's permissions do not give this command's group to anyone (or it is the host's alone)", body = ErrorBody),
        (status = 403, description = "`forbidden`: the token is wrong, or its holder may not do this (the message names the group and who may)", body = ErrorBody),
        (status = 404, description = "`room_not_found`: no room has this id", body = ErrorBody),
        (status = 409, description = "`version_conflict`: `expected_version` is not the room's version", body = ErrorBody),
        (status = 429, description = "`rate_limited`: this client address sent too many requests (`--commands-per-minute`, `--commands-burst`)", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 503, description = "`unavailable`: the shared room store (Redis) did not answer; nothing changed", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    )
)]
pub async fn command(
    State(app): State<Arc<AppState>>,
    Path(room_id): Path<String>,
    client: ClientIp,
    headers: HeaderMap,
    JsonBody(body): JsonBody<MAX_COMMAND_BODY_BYTES>,
) -> Result<Response, ApiError> {
    let arrived = Instant::now();
    app.write_limit.check(client)?;
    let handle = room(&app, &room_id).await?;
    let body = body.unwrap_or(Value::Null);
    // Counted under its type whenever the body names a known one, refused or not.
    let type_name = Command::type_of(&body).unwrap_or("unknown");
    let outcome = match Command::decode(body) {
        Err(error) => Err(ApiError::from(error)),
        Ok(request) => apply_command(&app, handle, request, bearer_token(&headers), arrived).await,
    };
    match outcome {
        Ok(reply) => {
            app.metrics
                .command(type_name, if reply.changed { "applied" } else { "noop" });
            Ok(Json(reply).into_response())
        }
        Err(error) => {
            app.metrics.command(type_name, error.code());
            Err(error)
        }
    }
}

/// Applies a decoded command with what the server knows of its items: a
/// playlist becomes its videos, media files give their duration and tags
/// first, YouTube videos' details follow in the background.
async fn apply_command(
    app: &AppState,
    handle: RoomHandle,
    mut request: CommandRequest,
    token: Option<HostToken>,
    arrived: Instant,
) -> Result<CommandReply, ApiError> {
    let metadata = &app.metadata;
    let max_queue = app.config.max_queue;
    let requests = match item_info::expand_playlist(metadata, &handle, max_queue, &request).await? {
        Some(requests) => requests,
        None => {
            item_info::fill_from_files(metadata, &mut request.command).await;
            vec![request]
        }
    };
    let videos: Vec<String> = requests
        .iter()
        .flat_map(|request| item_info::videos_to_look_up(metadata, &request.command))
        .collect();
    let reply = item_info::apply_all(&handle, requests, token, arrived).await?;
    item_info::look_up_later(metadata, handle, videos, &reply.room);
    Ok(reply)
}

/// The fields of a chat body, checked before serde reads it.
const CHAT_SHAPE: Shape = Shape {
    name: "a chat message",
    fields: &[
        ("name", JsonType::String, Presence::Required),
        ("text", JsonType::String, Presence::Required),
    ],
    alternatives: None,
};

super::schema::shaped_body!(
    /// The body of `POST /api/rooms/{room_id}/chat`.
    ChatMessageBody,
    "ChatMessage",
    CHAT_SHAPE
);

#[derive(Deserialize)]
struct ChatBody {
    name: String,
    text: String,
}

/// `POST /api/rooms/{room_id}/chat`: rate-limited per client address; a token
/// only where the room's `chat` permission asks for one.
#[utoipa::path(
    post,
    path = "/api/rooms/{room_id}/chat",
    tag = "rooms",
    params(("room_id" = String, Path, description = "The room's id")),
    security((), ("host_token" = [])),
    request_body(content = ChatMessageBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Sent to every listener as a `chat` event", body = ChatReply),
        (status = 400, description = "`invalid_json`: the body is not a JSON object of the right field types; `invalid_command`: an unknown or missing field, or the host turned chat off in this room; `invalid_value`: a value out of range", body = ErrorBody),
        (status = 408, description = "`request_timeout`: the body did not arrive within `--body-timeout`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: the body is larger than the limit", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: a non-empty body without `Content-Type: application/json`", body = ErrorBody),
        (status = 401, description = "`unauthorized`: the room's `chat` permission is not `anyone` and no token came", body = ErrorBody),
        (status = 403, description = "`forbidden`: the token is wrong, or its holder may not chat here (the message names the group and who may)", body = ErrorBody),
        (status = 404, description = "`room_not_found`: no room has this id", body = ErrorBody),
        (status = 429, description = "`rate_limited`: this client address sent too many messages (`--chat-per-minute`, `--chat-burst`), or the room took too many from everyone (`--room-chat-per-minute`, `--room-chat-burst`)", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 503, description = "`unavailable`: the shared room store (Redis) did not answer; nothing changed", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    )
)]
pub async fn chat(
    State(app): State<Arc<AppState>>,
    Path(room_id): Path<String>,
    client: ClientIp,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Json<ChatReply>, ApiError> {
    let handle = room(&app, &room_id).await?;
    let body = body
        .ok_or_else(|| ApiError::invalid_json("send {\"name\": \"…\", \"text\": \"…\"}".into()))?;
    let message: ChatBody = decode_shaped(body, &CHAT_SHAPE)?;
    // Validate before counting against the rate limit: a typo costs nothing.
    check_text("name", &message.name, MAX_CHAT_NAME_CHARS, Empty::Refused)?;
    check_text("text", &message.text, MAX_CHAT_TEXT_CHARS, Empty::Refused)?;
    app.chat_limit.check(client)?;
    // The room's own budget, whoever sends: many addresses cannot flood one room.
    app.room_chat_limit
        .check_key(&Arc::from(handle.room_id()))?;
    let version = handle
        .chat(message.name, message.text, bearer_token(&headers))
        .await?;
    Ok(Json(ChatReply { version }))
}

/// `POST /api/rooms/{room_id}/host-token`: exchanges the host token for a new one.
#[utoipa::path(
    post,
    path = "/api/rooms/{room_id}/host-token",
    tag = "rooms",
    params(("room_id" = String, Path, description = "The room's id")),
    security(("host_token" = [])),
    responses(
        (status = 200, description = "The new host token; the old one stopped working on every node, and listeners get a `host_token` event", body = HostTokenReply),
        (status = 401, description = "`unauthorized`: no host token", body = ErrorBody),
        (status = 403, description = "`forbidden`: the host token is wrong", body = ErrorBody),
        (status = 404, description = "`room_not_found`: no room has this id", body = ErrorBody),
        (status = 429, description = "`rate_limited`: this client address sent too many requests (`--commands-per-minute`, `--commands-burst`)", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 503, description = "`unavailable`: the shared room store (Redis) did not answer; nothing changed", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
    )
)]
pub async fn reset_host_token(
    State(app): State<Arc<AppState>>,
    Path(room_id): Path<String>,
    client: ClientIp,
    headers: HeaderMap,
) -> Result<Json<HostTokenReply>, ApiError> {
    app.write_limit.check(client)?;
    let new_token = new_host_token();
    let version = room(&app, &room_id)
        .await?
        .reset_host_token(bearer_token(&headers), HostToken(new_token.clone()))
        .await?;
    Ok(Json(HostTokenReply {
        host_token: new_token,
        version,
    }))
}
