//! Request extractors whose every rejection is an [`ApiError`], so a malformed
//! request gets the same JSON error shape as everything else.

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::Value;

use std::sync::Arc;

use super::error::ApiError;
use super::AppState;
use crate::actor::handle::HostToken;

/// Largest request body accepted (docs/API.md: 16 KiB).
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Largest command body (64 KiB): room for a `queue_add` of 100 items with
/// long titles.
pub const MAX_COMMAND_BODY_BYTES: usize = 64 * 1024;

/// A JSON body of at most `LIMIT` bytes ([`MAX_BODY_BYTES`] unless a route
/// takes less), or `None` for an empty body (which needs no `Content-Type`).
/// Order of checks: size (413), then media type (415), then syntax (400
/// `invalid_json`).
pub struct JsonBody<const LIMIT: usize = MAX_BODY_BYTES>(pub Option<Value>);

impl<const LIMIT: usize> FromRequest<Arc<AppState>> for JsonBody<LIMIT> {
    type Rejection = ApiError;

    async fn from_request(request: Request, app: &Arc<AppState>) -> Result<Self, ApiError> {
        let too_large = ApiError::PayloadTooLarge { limit: LIMIT };
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > LIMIT as u64) {
            return Err(too_large);
        }
        let is_json = is_json_content_type(request.headers());
        let body: Body = request.into_body();
        let collect = Limited::new(body, LIMIT).collect();
        let Ok(collected) = tokio::time::timeout(app.config.body_timeout, collect).await else {
            return Err(ApiError::RequestTimeout);
        };
        let bytes = match collected {
            Ok(collected) => collected.to_bytes(),
            Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
                return Err(too_large)
            }
            Err(_) => {
                return Err(ApiError::invalid_json(
                    "the request body could not be read".into(),
                ))
            }
        };
        // JSON's whitespace only: a form feed is no JSON, and no empty body either.
        if bytes
            .iter()
            .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        {
            return Ok(JsonBody(None));
        }
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        serde_json::from_slice(&bytes)
            .map(|value| JsonBody(Some(value)))
            .map_err(json_error)
    }
}

/// JSON has no infinity: a number too large for a double (`1e400`) is how a
/// non-finite value arrives, and docs/API.md calls that `invalid_value`.
/// serde_json reports it as a syntax error, so it is told apart by its message
/// (pinned by a unit test below).
fn json_error(error: serde_json::Error) -> ApiError {
    if error.to_string().starts_with("number out of range") {
        ApiError::invalid_value(format!("a number is not finite: {error}"))
    } else {
        ApiError::invalid_json(format!("the body is not valid JSON: {error}"))
    }
}

/// `application/json`, with or without parameters such as `charset=utf-8`.
fn is_json_content_type(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// The token of an `Authorization: Bearer <token>` header, if there is one.
pub fn bearer_token(headers: &HeaderMap) -> Option<HostToken> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty())
        .then(|| HostToken(token.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::room::CommandError;
    use axum::http::HeaderValue;

    #[test]
    fn json_content_types_are_recognised_with_parameters() {
        let mut headers = HeaderMap::new();
        assert!(!is_json_content_type(&headers));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        assert!(is_json_content_type(&headers));
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(!is_json_content_type(&headers));
    }

    #[test]
    fn bearer_tokens_are_parsed_and_other_schemes_ignored() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(bearer_token(&headers).map(|t| t.0), Some("abc".to_owned()));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert!(bearer_token(&headers).is_none());
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert!(bearer_token(&headers).is_none());
    }

    #[test]
    fn numbers_beyond_a_double_are_invalid_values_and_garbage_is_invalid_json() {
        let parse = |raw: &str| json_error(serde_json::from_str::<Value>(raw).unwrap_err());
        assert!(matches!(
            parse(r#"{"position": 1e400}"#),
            ApiError::Rejected(CommandError::InvalidValue(_))
        ));
        assert!(matches!(
            parse(r#"{"position": -1e400}"#),
            ApiError::Rejected(CommandError::InvalidValue(_))
        ));
        assert!(matches!(
            parse(r#"{"position": }"#),
            ApiError::Rejected(CommandError::InvalidJson(_))
        ));
        assert!(matches!(
            parse("nope"),
            ApiError::Rejected(CommandError::InvalidJson(_))
        ));
    }
}
