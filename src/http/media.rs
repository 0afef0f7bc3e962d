//! The operator's own media files (`--media-dir`): `GET /media/{path}` serves them
//! with byte ranges and validators, `GET /api/media` lists them.
//!
//! The directory is the only thing served and only audio and video are served
//! from it: a path is refused (`404`) when a segment is empty, starts with a dot
//! (`.`, `..`, dotfiles) or holds a backslash, when it leads (through symlinks)
//! outside the directory or through a dot-named entry, and when the file is not
//! audio or video by its extension. There is no directory listing.
//!
//! The bytes go out through tower-http's `ServeFile` (ranges, `Last-Modified`,
//! `If-Modified-Since`, `HEAD`). It follows symlinks, so the path is resolved here
//! first and `ServeFile` is handed the resolved file. This module adds a strong
//! `ETag` (size and modification time, as nginx's), `If-None-Match` and
//! `If-Range`, which `ServeFile` does not do.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde::Serialize;
use tower::ServiceExt;
use tower_http::services::ServeFile;

use super::error::ApiError;
use super::validators::if_none_match_names;
use super::AppState;

/// Longest request path below `/media/` that is looked at (bytes).
const MAX_PATH_BYTES: usize = 4096;
/// Most files `GET /api/media` lists; a larger library is listed in part.
pub const MAX_LISTED_FILES: usize = 10_000;
/// Deepest folder nesting `GET /api/media` walks into.
const MAX_LIST_DEPTH: usize = 16;
/// How long one listing is reused: many pages opening at once walk the disk once.
const LIST_CACHE_FOR: Duration = Duration::from_secs(2);

/// What is escaped in a listed path: everything but unreserved characters and `/`.
const PATH_SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'[')
    .add(b']')
    .add(b'\\')
    .add(b'^')
    .add(b'|')
    .add(b'&')
    .add(b'+')
    .add(b';')
    .add(b'=')
    .add(b'\'');

/// One file of the library, as `GET /api/media` lists it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MediaFile {
    /// The URL path to use as a `media_url`: `/media/` and the percent-encoded path.
    pub path: String,
    /// The file's name, as on disk.
    pub name: String,
    pub size: u64,
    pub content_type: String,
}

/// The directory given with `--media-dir`, resolved once at start.
pub struct MediaLibrary {
    root: PathBuf,
    /// The last listing and when it was made; the lock also makes concurrent
    /// listings wait for one walk instead of each walking the disk.
    listing: tokio::sync::Mutex<Option<(Instant, Arc<Vec<MediaFile>>)>>,
}

impl MediaLibrary {
    /// Opens `dir`, which must be an existing directory; the error names it.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        let root = std::fs::canonicalize(dir).map_err(|error| {
            std::io::Error::new(
                error.kind(),
                format!(
                    "--media-dir {}: {error} (expected an existing, readable directory)",
                    dir.display()
                ),
            )
        })?;
        if !root.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                format!(
                    "--media-dir {}: not a directory (expected an existing, readable directory)",
                    dir.display()
                ),
            ));
        }
        Ok(Self {
            root,
            listing: tokio::sync::Mutex::new(None),
        })
    }

    /// The file a request path names, if it may be served: see the module docs.
    async fn resolve(&self, path: &str) -> Option<(PathBuf, std::fs::Metadata)> {
        let relative = safe_relative(path)?;
        let real = tokio::fs::canonicalize(self.root.join(relative))
            .await
            .ok()?;
        let inside = real.strip_prefix(&self.root).ok()?;
        if inside.components().any(|part| !is_visible(part)) || media_type(&real).is_none() {
            return None;
        }
        let meta = tokio::fs::metadata(&real).await.ok()?;
        meta.is_file().then_some((real, meta))
    }

    /// Every audio and video file under the directory, sorted by path.
    async fn list(&self) -> Arc<Vec<MediaFile>> {
        let mut cached = self.listing.lock().await;
        if let Some((made, files)) = cached.as_ref() {
            if made.elapsed() < LIST_CACHE_FOR {
                return files.clone();
            }
        }
        let root = self.root.clone();
        let files = tokio::task::spawn_blocking(move || walk(&root))
            .await
            .unwrap_or_else(|error| {
                tracing::error!(%error, "listing the media directory failed");
                Vec::new()
            });
        let files = Arc::new(files);
        *cached = Some((Instant::now(), files.clone()));
        files
    }
}

/// The relative path of a request, or `None` when any segment is empty, starts
/// with a dot, or holds a backslash or NUL. The router has percent-decoded it, so
/// `%2e%2e` arrives here as `..` and is refused like it.
fn safe_relative(path: &str) -> Option<PathBuf> {
    if path.is_empty() || path.len() > MAX_PATH_BYTES {
        return None;
    }
    let mut relative = PathBuf::new();
    for segment in path.split('/') {
        if segment.is_empty() || segment.starts_with('.') || segment.contains(['\\', '\0']) {
            return None;
        }
        relative.push(segment);
    }
    Some(relative)
}

/// A resolved path component that may be served: a name not starting with a dot.
fn is_visible(part: Component<'_>) -> bool {
    match part {
        Component::Normal(name) => !name.as_encoded_bytes().starts_with(b"."),
        _ => false,
    }
}

/// The content type of an audio or video file, by its extension; `None` for anything else.
fn media_type(path: &Path) -> Option<mime_guess::Mime> {
    let mime = mime_guess::from_path(path).first()?;
    matches!(
        mime.type_(),
        mime_guess::mime::AUDIO | mime_guess::mime::VIDEO
    )
    .then_some(mime)
}

/// A strong validator from the file's size and modification time (nanoseconds).
fn etag(meta: &std::fs::Metadata) -> String {
    let modified = meta
        .modified()
        .ok()
        .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |since| since.as_nanos());
    format!("\"{:x}-{:x}\"", meta.len(), modified)
}

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
    let library = app.media.as_ref().ok_or(ApiError::NotFound)?;
    let (real, meta) = library.resolve(&path).await.ok_or(ApiError::NotFound)?;
    let etag = etag(&meta);
    let (parts, _body) = request.into_parts();

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

/// `GET /api/media`: the library's audio and video files; none without `--media-dir`.
#[utoipa::path(
    get,
    path = "/api/media",
    tag = "media",
    responses((status = 200, description = "The audio and video files under `--media-dir`, sorted by `path`", body = MediaList))
)]
pub async fn list(State(app): State<Arc<AppState>>) -> Json<MediaList> {
    let files = match &app.media {
        Some(library) => library.list().await,
        None => Arc::new(Vec::new()),
    };
    Json(MediaList { files })
}

/// Walks `root` depth-first for audio and video files, skipping dot-named
/// entries, symlinks that lead outside `root` or to folders (no loops), and
/// names that are not UTF-8; stops at [`MAX_LISTED_FILES`].
fn walk(root: &Path) -> Vec<MediaFile> {
    let mut files = Vec::new();
    let mut folders = vec![(root.to_path_buf(), 0usize)];
    while let Some((folder, depth)) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_dir() {
                if depth + 1 < MAX_LIST_DEPTH {
                    folders.push((path, depth + 1));
                }
                continue;
            }
            let Ok(real) = std::fs::canonicalize(&path) else {
                continue;
            };
            let Ok(inside) = real.strip_prefix(root) else {
                continue;
            };
            if !inside.components().all(is_visible) {
                continue;
            }
            let Some(mime) = media_type(&real) else {
                continue;
            };
            let Ok(meta) = std::fs::metadata(&real) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let Some(url) = url_path(root, &path) else {
                continue;
            };
            files.push(MediaFile {
                path: url,
                name,
                size: meta.len(),
                content_type: mime.to_string(),
            });
            if files.len() == MAX_LISTED_FILES {
                tracing::warn!(
                    limit = MAX_LISTED_FILES,
                    "the media directory holds more files than are listed"
                );
                files.sort_by(|a, b| a.path.cmp(&b.path));
                return files;
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

/// `/media/` and the percent-encoded path of `path` below `root` (as listed, not
/// resolved: a symlink is served under its own name).
fn url_path(root: &Path, path: &Path) -> Option<String> {
    let relative = path.strip_prefix(root).ok()?;
    let mut url = String::from("/media");
    for part in relative.components() {
        let Component::Normal(name) = part else {
            return None;
        };
        url.push('/');
        url.extend(utf8_percent_encode(name.to_str()?, PATH_SEGMENT));
    }
    Some(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_paths_with_dot_empty_or_backslash_segments_are_refused() {
        for bad in [
            "",
            "..",
            "../etc/passwd",
            "a/../b.mp3",
            "./a.mp3",
            ".hidden.mp3",
            "dir/.secret/a.mp3",
            "a//b.mp3",
            "a/",
            "a\\..\\b.mp3",
            "a\0.mp3",
        ] {
            assert_eq!(safe_relative(bad), None, "{bad:?}");
        }
        assert_eq!(
            safe_relative("albums/one two.mp3"),
            Some(PathBuf::from("albums/one two.mp3"))
        );
        assert_eq!(safe_relative(&"a".repeat(MAX_PATH_BYTES + 1)), None);
    }

    #[test]
    fn only_audio_and_video_have_a_media_type() {
        for (name, expected) in [
            ("a.mp3", Some("audio/mpeg")),
            ("a.wav", Some("audio/wav")),
            ("a.flac", Some("audio/flac")),
            ("a.ogg", Some("audio/ogg")),
            ("a.opus", Some("audio/ogg")),
            ("a.mp4", Some("video/mp4")),
            ("a.webm", Some("video/webm")),
            ("a.html", None),
            ("a.txt", None),
            ("a", None),
        ] {
            assert_eq!(
                media_type(Path::new(name)).map(|m| m.essence_str().to_owned()),
                expected.map(str::to_owned),
                "{name}"
            );
        }
    }

    #[test]
    fn listed_paths_are_percent_encoded_per_segment() {
        let root = Path::new("/srv/music");
        assert_eq!(
            url_path(root, Path::new("/srv/music/Live at #1/a b?.mp3")).as_deref(),
            Some("/media/Live%20at%20%231/a%20b%3F.mp3")
        );
    }
}
