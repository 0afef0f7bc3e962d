//! [`ApiError`]: every error the API answers, as a value with a status. Its
//! `IntoResponse` writes `{"error": {"code", "message"}}` exactly as docs/API.md
//! specifies. Internal details of a 5xx are logged, never shown.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::backplane::Unavailable;
use crate::registry::CreateError;
use crate::room::handle::RoomError;
use crate::room::CommandError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidJson(String),
    #[error("{0}")]
    InvalidCommand(String),
    #[error("{0}")]
    InvalidValue(String),
    #[error("this action needs the room's host token: send `Authorization: Bearer <host_token>`")]
    Unauthorized,
    #[error("the host token does not match this room")]
    Forbidden,
    #[error("no room has this id")]
    RoomNotFound,
    #[error("no such route")]
    NotFound,
    #[error("this route does not accept that method")]
    MethodNotAllowed,
    #[error("a room with this id exists already")]
    RoomExists,
    #[error("{0}")]
    VersionConflict(String),
    #[error("the body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    #[error("send the body as JSON with `Content-Type: application/json`")]
    UnsupportedMediaType,
    #[error("too many requests; try again in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("{message}")]
    Unavailable {
        message: &'static str,
        retry_after_secs: u64,
    },
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidJson(_) | ApiError::InvalidCommand(_) | ApiError::InvalidValue(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::RoomNotFound | ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RoomExists | ApiError::VersionConflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `code` of the JSON body; also the `outcome` label of command metrics.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::InvalidCommand(_) => "invalid_command",
            ApiError::InvalidValue(_) => "invalid_value",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden => "forbidden",
            ApiError::RoomNotFound => "room_not_found",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::RoomExists => "room_exists",
            ApiError::VersionConflict(_) => "version_conflict",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::RequestTimeout => "request_timeout",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Unavailable { .. } => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    fn retry_after_secs(&self) -> Option<u64> {
        match self {
            ApiError::RateLimited { retry_after_secs }
            | ApiError::Unavailable {
                retry_after_secs, ..
            } => Some((*retry_after_secs).max(1)),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            tracing::error!(%detail, "internal error");
        }
        let body = json!({"error": {"code": self.code(), "message": self.to_string()}});
        let mut response = (self.status(), Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<CommandError> for ApiError {
    fn from(error: CommandError) -> Self {
        match error {
            CommandError::InvalidJson(m) => ApiError::InvalidJson(m),
            CommandError::InvalidCommand(m) => ApiError::InvalidCommand(m),
            CommandError::InvalidValue(m) => ApiError::InvalidValue(m),
            CommandError::Unauthorized => ApiError::Unauthorized,
            CommandError::Forbidden => ApiError::Forbidden,
            conflict @ CommandError::VersionConflict { .. } => {
                ApiError::VersionConflict(conflict.to_string())
            }
        }
    }
}

impl From<RoomError> for ApiError {
    fn from(error: RoomError) -> Self {
        match error {
            RoomError::Closed => ApiError::RoomNotFound,
            RoomError::Refused(error) => error.into(),
            RoomError::Unavailable(error) => error.into(),
        }
    }
}

impl From<CreateError> for ApiError {
    fn from(error: CreateError) -> Self {
        match error {
            CreateError::InvalidValue(m) => ApiError::InvalidValue(m),
            CreateError::Exists => ApiError::RoomExists,
            CreateError::Full => ApiError::Unavailable {
                message: "this server holds as many rooms as it may; try again later",
                retry_after_secs: 60,
            },
            CreateError::Unavailable(error) => error.into(),
        }
    }
}

impl From<Unavailable> for ApiError {
    fn from(_: Unavailable) -> Self {
        ApiError::Unavailable {
            message: "the shared room store is not answering; nothing changed, try again shortly",
            retry_after_secs: 1,
        }
    }
}
