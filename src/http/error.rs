//! [`ApiError`]: every error the API answers, as a value with a status. Its
//! `IntoResponse` writes `{"error": {"code", "message"}}` exactly as docs/API.md
//! specifies. Internal details of a 5xx are logged, never shown.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::stream_token::TokenError;
use crate::registry::CreateError;
use crate::room::sync::SyncRefusal;
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
    /// A report named no live stream of the room.
    #[error(transparent)]
    StreamToken(#[from] TokenError),
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
    /// Parts of the shared room store do not answer (`/readyz` names them).
    #[error("redis unreachable: {shards}")]
    StoreDown { shards: String },
    /// This node cannot take the request now (full, shutting down).
    #[error("{message}")]
    Busy {
        message: &'static str,
        retry_after_secs: u64,
    },
    #[error("internal error")]
    Internal(String),
}

/// The `code` of an error body: every one the API answers, one per kind of refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidJson,
    InvalidCommand,
    InvalidValue,
    Unauthorized,
    Forbidden,
    VersionConflict,
    RoomExists,
    RoomNotFound,
    NotFound,
    MethodNotAllowed,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
    RateLimited,
    Unavailable,
    Internal,
}

impl ErrorCode {
    /// The wire name (also the `outcome` label of command metrics).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidCommand => "invalid_command",
            ErrorCode::InvalidValue => "invalid_value",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::VersionConflict => "version_conflict",
            ErrorCode::RoomExists => "room_exists",
            ErrorCode::RoomNotFound => "room_not_found",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }
}

/// The body of every error answer: `{"error": {"code", "message"}}`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// The failures every route bound to a live event stream by its token shares (a
/// vote, a readiness report), besides its own `200` and `400`: for the OpenAPI
/// description only, never built.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum StreamBoundErrors {
    #[response(status = 401, description = "`unauthorized`: `stream_token` is empty")]
    Unauthorized(ErrorBody),
    #[response(
        status = 403,
        description = "`forbidden`: `stream_token` is not valid for this room (another room's, forged, or expired), or its stream was kicked"
    )]
    Forbidden(ErrorBody),
    #[response(status = 404, description = "`room_not_found`: no room has this id")]
    RoomNotFound(ErrorBody),
    #[response(
        status = 408,
        description = "`request_timeout`: the body did not arrive within `--body-timeout`"
    )]
    RequestTimeout(ErrorBody),
    #[response(
        status = 413,
        description = "`payload_too_large`: the body is larger than the limit"
    )]
    PayloadTooLarge(ErrorBody),
    #[response(
        status = 415,
        description = "`unsupported_media_type`: a non-empty body without `Content-Type: application/json`"
    )]
    UnsupportedMediaType(ErrorBody),
    #[response(status = 429, description = "`rate_limited`: this client address sent too many writes (`--commands-per-minute`, `--commands-burst`)", headers(("Retry-After" = u64, description = "Seconds to wait before trying again")))]
    RateLimited(ErrorBody),
    #[response(status = 503, description = "`unavailable`: the shared room store (Redis) did not answer; nothing changed", headers(("Retry-After" = u64, description = "Seconds to wait before trying again")))]
    Unavailable(ErrorBody),
}

/// What went wrong: a stable code for programs, a sentence for people.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    /// Says what to change; never internal details.
    pub message: String,
}

/// How long a client is asked to wait after the shared store did not answer.
const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 1;
/// How long a client is asked to wait when the server holds all the rooms it may,
/// or its address holds all the rooms it may (`--max-rooms-per-client`).
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
        self.parts().1.as_str()
    }

    fn retry_after_secs(&self) -> Option<u64> {
        self.parts().2.map(|secs| secs.max(1))
    }

    /// Status, code and `Retry-After` of each error, in one table.
    fn parts(&self) -> (StatusCode, ErrorCode, Option<u64>) {
        match self {
            ApiError::Rejected(error) => rejected_parts(error),
            ApiError::Create(
                CreateError::Invalid(error) | CreateError::TooManyPersistent(error),
            ) => rejected_parts(error),
            ApiError::Create(CreateError::Exists) => {
                (StatusCode::CONFLICT, ErrorCode::RoomExists, None)
            }
            ApiError::Create(CreateError::Full) => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                Some(FULL_ROOMS_RETRY_AFTER_SECS),
            ),
            ApiError::Create(CreateError::TooManyForClient) => (
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                Some(FULL_ROOMS_RETRY_AFTER_SECS),
            ),
            ApiError::Create(CreateError::Unavailable(_))
            | ApiError::Unavailable(_)
            | ApiError::StoreDown { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                Some(UNAVAILABLE_RETRY_AFTER_SECS),
            ),
            ApiError::StreamToken(TokenError::Missing) => {
                (StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, None)
            }
            ApiError::StreamToken(
                TokenError::Invalid | TokenError::Expired | TokenError::Kicked,
            ) => (StatusCode::FORBIDDEN, ErrorCode::Forbidden, None),
            ApiError::RoomNotFound => (StatusCode::NOT_FOUND, ErrorCode::RoomNotFound, None),
            ApiError::NotFound => (StatusCode::NOT_FOUND, ErrorCode::NotFound, None),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::MethodNotAllowed,
                None,
            ),
            ApiError::PayloadTooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                None,
            ),
            ApiError::RequestTimeout => {
                (StatusCode::REQUEST_TIMEOUT, ErrorCode::RequestTimeout, None)
            }
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                None,
            ),
            ApiError::RateLimited { retry_after_secs } => (
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                Some(*retry_after_secs),
            ),
            ApiError::Busy {
                retry_after_secs, ..
            } => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                Some(*retry_after_secs),
            ),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, None),
        }
    }
}

/// Status and code of a refusal by the room's rules.
fn rejected_parts(error: &CommandError) -> (StatusCode, ErrorCode, Option<u64>) {
    match error {
        CommandError::InvalidJson(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidJson, None),
        CommandError::InvalidCommand(_) => {
            (StatusCode::BAD_REQUEST, ErrorCode::InvalidCommand, None)
        }
        CommandError::InvalidValue(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidValue, None),
        CommandError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, None),
        CommandError::Forbidden => (StatusCode::FORBIDDEN, ErrorCode::Forbidden, None),
        CommandError::TooManyPersistent => {
            (StatusCode::TOO_MANY_REQUESTS, ErrorCode::RateLimited, None)
        }
        CommandError::VersionConflict { .. } => {
            (StatusCode::CONFLICT, ErrorCode::VersionConflict, None)
        }
        CommandError::NotPermitted(_) => (StatusCode::FORBIDDEN, ErrorCode::Forbidden, None),
        CommandError::NotFound(_) => (StatusCode::NOT_FOUND, ErrorCode::NotFound, None),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            tracing::error!(%detail, "internal error");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.parts().1,
                message: self.to_string(),
            },
        };
        let mut response = (self.status(), Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if matches!(
            self,
            ApiError::PayloadTooLarge { .. } | ApiError::RequestTimeout
        ) {
            // The rest of the body was never read, so the connection cannot
            // carry another request: say so, or a client that keeps it in its
            // pool fails its next request on it. (HTTP/2 drops the header.)
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// A closed room is, to a client, a room that does not exist.
/// How long a reporter turned away from a room full of reports is asked to wait.
const FULL_SYNC_RETRY_AFTER_SECS: u64 = 5;

impl From<RoomError> for ApiError {
    fn from(error: RoomError) -> Self {
        match error {
            RoomError::Closed => ApiError::RoomNotFound,
            RoomError::Refused(error) => error.into(),
            RoomError::Unavailable(error) => error.into(),
            RoomError::Sync(SyncRefusal::TooSoon { retry_after_ms }) => ApiError::RateLimited {
                retry_after_secs: retry_after_ms.div_ceil(1000).max(1),
            },
            RoomError::Sync(SyncRefusal::Full) => ApiError::Busy {
                message: "this room holds as many sync reports as it may (--max-sync-reports); try again shortly",
                retry_after_secs: FULL_SYNC_RETRY_AFTER_SECS,
            },
        }
    }
}
