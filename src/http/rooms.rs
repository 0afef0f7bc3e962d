//! Room routes: create, get, list, delete, commands and chat. Each handler checks
//! the request's shape, calls the room and writes the answer; nothing more.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::{bearer_token, JsonBody};
use super::limits::ClientIp;
use super::AppState;
use crate::registry::CreateRoom;
use crate::room::command::{check_text, decode_shaped, Empty, JsonType, Presence, Shape};
use crate::room::handle::RoomError;
use crate::room::state::{MAX_CHAT_NAME_CHARS, MAX_CHAT_TEXT_CHARS};
use crate::room::{Command, RoomHandle};

async fn room(app: &AppState, room_id: &str) -> Result<RoomHandle, ApiError> {
    app.registry
        .get(room_id)
        .await?
        .ok_or(ApiError::RoomNotFound)
}

/// `POST /api/rooms`: every field optional, an empty body is fine.
pub async fn create(
    State(app): State<Arc<AppState>>,
    client: ClientIp,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    app.write_limit.check(client)?;
    let request = match body {
        None => CreateRoom::default(),
        Some(body) => CreateRoom::decode(body)?,
    };
    let created = app.registry.create(request).await?;
    let location = format!("/api/rooms/{}", created.room_id);
    let body = json!({
        "room_id": created.room_id,
        "host_token": created.host_token,
        "room": created.room,
    });
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response())
}

/// `GET /api/rooms/{room_id}`.
pub async fn get_room(
    State(app): State<Arc<AppState>>,
    Path(room_id): Path<String>,
) -> Result<Response, ApiError> {
    let view = room(&app, &room_id).await?.view().await?;
    Ok(Json(view).into_response())
}

/// `GET /api/rooms`: busiest first.
pub async fn list(State(app): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "rooms": app.registry.list().await? })))
}

/// `DELETE /api/rooms/{room_id}`: host token in every control mode.
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
pub async fn command(
    State(app): State<Arc<AppState>>,
    Path(room_id): Path<String>,
    client: ClientIp,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let arrived = Instant::now();
    app.write_limit.check(client)?;
    let handle = room(&app, &room_id).await?;
    let body = body.unwrap_or(Value::Null);
    // Counted under its type whenever the body names a known one, refused or not.
    let type_name = Command::type_of(&body).unwrap_or("unknown");
    let decoded = Command::decode(body);
    let outcome = match decoded {
        Err(error) => Err(RoomError::Refused(error)),
        Ok(request) => {
            handle
                .command(request, bearer_token(&headers), arrived)
                .await
        }
    };
    match outcome {
        Ok(reply) => {
            app.metrics
                .command(type_name, if reply.changed { "applied" } else { "noop" });
            Ok(Json(reply).into_response())
        }
        Err(error) => {
            let error = ApiError::from(error);
            app.metrics.command(type_name, error.code());
            Err(error)
        }
    }
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

#[derive(Deserialize)]
struct ChatBody {
    name: String,
    text: String,
}

/// `POST /api/rooms/{room_id}/chat`: no token, rate-limited per client address.
pub async fn chat(
    State(app): State<Arc<AppState>>,
    Path(room_id): Path<String>,
    client: ClientIp,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let handle = room(&app, &room_id).await?;
    let body = body
        .ok_or_else(|| ApiError::invalid_json("send {\"name\": \"…\", \"text\": \"…\"}".into()))?;
    let message: ChatBody = decode_shaped(body, &CHAT_SHAPE)?;
    // Validate before counting against the rate limit: a typo costs nothing.
    check_text("name", &message.name, MAX_CHAT_NAME_CHARS, Empty::Refused)?;
    check_text("text", &message.text, MAX_CHAT_TEXT_CHARS, Empty::Refused)?;
    app.chat_limit.check(client)?;
    let version = handle.chat(message.name, message.text).await?;
    Ok(Json(json!({ "version": version })))
}
