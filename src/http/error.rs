//! [`ApiError`]: every error the API answers, as a value with a status. Its
//! `IntoResponse` writes `{"error": {"code", "message"}}` exactly as docs/API.md
//! specifies. Internal details of a 5xx are logged, never shown.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::registry::CreateError;
use crate::room::{CommandError, RoomError, Unavailable};

/// Every error the API answers. Domain errors are wrapped as they are (their
/// message is the answer's); only what HTTP itself adds is declared here.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A request the room's rules refuse (shape, value, token, version).
    #[error(transparent)]
    Rejected(#[from] CommandError),
    #[error(transparent)]
    Create(#[from] CreateError),
    /// The shared room store did not answer; nothing changed.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    #[error("no room has this id")]
    RoomNotFound,
    #[error("no such route")]
    NotFound,
    #[error("this route does not accept that method")]
    MethodNotAllowed,
    #[error("the body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    #[error("send the body as JSON with `Content-Type: application/json`")]
    UnsupportedMediaType,
    #[error("too many requests; try again in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// This node cannot take the request now (full, shutting down).
    #[error("{message}")]
    Busy {
        message: &'static str,
        retry_after_secs: u64,
    },
    #[error("internal error")]
    Internal(String),
}

/// How long a client is asked to wait after the shared store did not answer.
const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 1;
/// How long a client is asked to wait when the server holds all the rooms it may.
const FULL_ROOMS_RETRY_AFTER_SECS: u64 = 60;

impl ApiError {
    pub fn invalid_json(message: String) -> Self {
        CommandError::InvalidJson(message).into()
    }

    pub fn invalid_command(message: String) -> Self {
        CommandError::InvalidCommand(message).into()
    }

    pub fn invalid_value(message: String) -> Self {
        CommandError::InvalidValue(message).into()
    }

    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    /// The `code` of the JSON body; also the `outcome` label of command metrics.
    pub fn code(&self) -> &'static str {
        self.parts().1
    }

    fn retry_after_secs(&self) -> Option<u64> {
        self.parts().2.map(|secs| secs.max(1))
    }

    /// Status, code and `Retry-After` of each error, in one table.
    fn parts(&self) -> (StatusCode, &'static str, Option<u64>) {
        match self {
            ApiError::Rejected(error) => rejected_parts(error),
            ApiError::Create(CreateError::Invalid(error)) => rejected_parts(error),
            ApiError::Create(CreateError::Exists) => (StatusCode::CONFLICT, "room_exists", None),
            ApiError::Create(CreateError::Full) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                Some(FULL_ROOMS_RETRY_AFTER_SECS),
            ),
            ApiError::Create(CreateError::Unavailable(_)) | ApiError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                Some(UNAVAILABLE_RETRY_AFTER_SECS),
            ),
            ApiError::RoomNotFound => (StatusCode::NOT_FOUND, "room_not_found", None),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found", None),
            ApiError::MethodNotAllowed => {
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", None)
            }
            ApiError::PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", None)
            }
            ApiError::RequestTimeout => (StatusCode::REQUEST_TIMEOUT, "request_timeout", None),
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                None,
            ),
            ApiError::RateLimited { retry_after_secs } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                Some(*retry_after_secs),
            ),
            ApiError::Busy {
                retry_after_secs, ..
            } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                Some(*retry_after_secs),
            ),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", None),
        }
    }
}

/// Status and code of a refusal by the room's rules.
fn rejected_parts(error: &CommandError) -> (StatusCode, &'static str, Option<u64>) {
    match error {
        CommandError::InvalidJson(_) => (StatusCode::BAD_REQUEST, "invalid_json", None),
        CommandError::InvalidCommand(_) => (StatusCode::BAD_REQUEST, "invalid_command", None),
        CommandError::InvalidValue(_) => (StatusCode::BAD_REQUEST, "invalid_value", None),
        CommandError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", None),
        CommandError::Forbidden => (StatusCode::FORBIDDEN, "forbidden", None),
        CommandError::VersionConflict { .. } => (StatusCode::CONFLICT, "version_conflict", None),
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

/// A closed room is, to a client, a room that does not exist.
impl From<RoomError> for ApiError {
    fn from(error: RoomError) -> Self {
        match error {
            RoomError::Closed => ApiError::RoomNotFound,
            RoomError::Refused(error) => error.into(),
            RoomError::Unavailable(error) => error.into(),
        }
    }
}
