//! The operator's media files (`--media-dir`): `GET /media/{path}` serves them
//! with byte ranges and validators, `GET /api/media` lists them with what each
//! file says about itself, `GET /api/media/art/{path}` answers a file's cover art.
//!
//! Which paths may be served is [`crate::metadata::library`]'s rule; there is no
//! directory listing.
//!
//! The bytes go out through tower-http's `ServeFile` (ranges, `Last-Modified`,
//! `If-Modified-Since`, `HEAD`). It follows symlinks, so the path is resolved
//! first and `ServeFile` is handed the resolved file. This module adds a strong
//! `ETag` (size and modification time, as nginx's), `If-None-Match` and
//! `If-Range`, which `ServeFile` does not do.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use tower::ServiceExt;
use tower_http::services::ServeFile;

use super::error::ApiError;
use super::validators::if_none_match_names;
use super::AppState;
pub use crate::metadata::library::MAX_LISTED_FILES;
use crate::metadata::tags::FileVersion;
pub use crate::metadata::{MediaFile, MediaLibrary};

/// `GET` and `HEAD /media/{path}`.
#[utoipa::path(
    get,
    path = "/media/{path}",
    tag = "media",
    params(
        ("path" = String, Path, description = "A file's path under `--media-dir`, as `GET /api/media` lists it"),
        ("Range" = Option<String>, Header, description = "One byte range: `bytes=A-B`, `bytes=A-`, `bytes=-N`"),
    ),
    responses(
        (status = 200, description = "The whole file", content_type = "*/*", body = Vec<u8>),
        (status = 206, description = "The range asked for, with `Content-Range`", content_type = "*/*", body = Vec<u8>),
        (status = 304, description = "Unchanged (`If-None-Match`, `If-Modified-Since`)"),
        (status = 404, description = "`not_found`: no such audio or video file, or no `--media-dir`", body = super::error::ErrorBody),
        (status = 412, description = "`If-Unmodified-Since` is older than the file"),
        (status = 416, description = "The range is past the end, or several ranges were asked for; `Content-Range: bytes */SIZE`"),
    )
)]
pub async fn file(
    State(app): State<Arc<AppState>>,
    UrlPath(path): UrlPath<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let library = app.metadata.library().ok_or(ApiError::NotFound)?;
    let (real, meta) = library.resolve(&path).await.ok_or(ApiError::NotFound)?;
    let etag = FileVersion::of(&meta).etag();
    let (parts, _body) = request.into_parts();
    tracing::debug!(range = ?parts.headers.get(header::RANGE), "media file asked");

    if if_none_match_names(&parts.headers, etag.as_bytes()) {
        return Ok(not_modified(&etag, &meta));
    }
    // Only what ServeFile reads goes through; If-Modified-Since is ignored when
    // If-None-Match is present (RFC 9110 13.1.3), and a Range whose If-Range no
    // longer matches becomes a full answer, never a splice of two versions.
    let mut headers = HeaderMap::new();
    let range_still_valid = parts.headers.get(header::IF_RANGE).is_none_or(|value| {
        value.as_bytes() == etag.as_bytes() || last_modified(&meta).is_some_and(|lm| value == lm)
    });
    if range_still_valid {
        copy_header(&parts.headers, &mut headers, header::RANGE);
    }
    if !parts.headers.contains_key(header::IF_NONE_MATCH) {
        copy_header(&parts.headers, &mut headers, header::IF_MODIFIED_SINCE);
    }
    copy_header(&parts.headers, &mut headers, header::IF_UNMODIFIED_SINCE);
    let mut inner = Request::new(Body::empty());
    *inner.method_mut() = if parts.method == Method::HEAD {
        Method::HEAD
    } else {
        Method::GET
    };
    *inner.headers_mut() = headers;

    let served = match ServeFile::new(&real).oneshot(inner).await {
        Ok(response) => response,
        Err(error) => match error {},
    };
    if served.status() == StatusCode::NOT_FOUND {
        // Gone between the check and the open.
        return Err(ApiError::NotFound);
    }
    let mut response = served.map(Body::new);
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

fn copy_header(from: &HeaderMap, to: &mut HeaderMap, name: header::HeaderName) {
    if let Some(value) = from.get(&name) {
        to.insert(name, value.clone());
    }
}

fn last_modified(meta: &std::fs::Metadata) -> Option<HeaderValue> {
    let modified = meta.modified().ok()?;
    HeaderValue::from_str(&httpdate::fmt_http_date(modified)).ok()
}

fn not_modified(etag: &str, meta: &std::fs::Metadata) -> Response {
    let mut response = StatusCode::NOT_MODIFIED.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
    if let Some(value) = last_modified(meta) {
        headers.insert(header::LAST_MODIFIED, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The body of `GET /api/media`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MediaList {
    #[schema(value_type = Vec<MediaFile>)]
    pub files: Arc<Vec<MediaFile>>,
}

/// `GET /api/media`: the library's audio and video files, with each one's
/// duration, title and artist; none without `--media-dir`.
#[utoipa::path(
    get,
    path = "/api/media",
    tag = "media",
    responses((status = 200, description = "The audio and video files under `--media-dir`, sorted by `path`, each with its `duration`, `title` and `artist` (`null` when unknown)", body = MediaList))
)]
pub async fn list(State(app): State<Arc<AppState>>) -> Json<MediaList> {
    let files = match app.metadata.library() {
        Some(library) => library.list().await,
        None => Arc::new(Vec::new()),
    };
    Json(MediaList { files })
}

/// `GET` and `HEAD /api/media/art/{path}`: the cover art embedded in a media
/// file. Its validator is the file's own (size and modification time): the
/// picture changes only when the file does, so nothing is read for a `304`.
#[utoipa::path(
    get,
    path = "/api/media/art/{path}",
    tag = "media",
    params(
        ("path" = String, Path, description = "A file's path under `--media-dir`, as in `/media/{path}`"),
    ),
    responses(
        (status = 200, description = "The file's front cover, else its first picture: PNG, JPEG, GIF, BMP, TIFF or WebP, with `ETag` and `Last-Modified`", content_type = "image/*", body = Vec<u8>),
        (status = 304, description = "Unchanged (`If-None-Match`)"),
        (status = 404, description = "`not_found`: no such audio or video file, no picture in it (or none of those types), or no `--media-dir`", body = super::error::ErrorBody),
    )
)]
pub async fn art(
    State(app): State<Arc<AppState>>,
    UrlPath(path): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let library = app.metadata.library().ok_or(ApiError::NotFound)?;
    let (real, meta) = library.resolve(&path).await.ok_or(ApiError::NotFound)?;
    let etag = FileVersion::of(&meta).etag();
    if if_none_match_names(&headers, etag.as_bytes()) {
        return Ok(not_modified(&etag, &meta));
    }
    let artwork = library.artwork(real).await.ok_or(ApiError::NotFound)?;
    let mut response = artwork.data.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(artwork.content_type),
    );
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    if let Some(value) = last_modified(&meta) {
        headers.insert(header::LAST_MODIFIED, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}
