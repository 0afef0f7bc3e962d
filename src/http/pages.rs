//! The bundled demo page and its assets, embedded in the binary at build time so
//! the server runs from any directory with nothing beside it.

use axum::extract::Path;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

use super::error::ApiError;

#[derive(RustEmbed)]
#[folder = "static/"]
#[exclude = "test/*"]
struct Assets;

/// What the page may load: itself, and exactly what the YouTube IFrame player needs.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; \
script-src 'self' https://www.youtube.com https://s.ytimg.com; \
frame-src https://www.youtube.com https://www.youtube-nocookie.com; \
img-src 'self' data: https://i.ytimg.com; \
style-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'";

/// `GET /` and `GET /r/{room_id}`: the page; it reads the room id from the URL.
pub async fn index() -> Result<Response, ApiError> {
    let mut response = serve("index.html")?;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    // The YouTube player wants to know the embedding origin, nothing more.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
    Ok(response)
}

/// `GET /static/{path}`.
pub async fn asset(Path(path): Path<String>) -> Result<Response, ApiError> {
    serve(&path)
}

fn serve(path: &str) -> Result<Response, ApiError> {
    let file = Assets::get(path).ok_or(ApiError::NotFound)?;
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let content_type = HeaderValue::from_str(mime.as_ref())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            // Always revalidate: a new server version must not meet an old script.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        file.data,
    )
        .into_response())
}
