//! The bundled demo page and its assets, embedded in the binary at build time so
//! the server runs from any directory with nothing beside it.
//!
//! - `/static/*`: the page itself (`static/`: `app.js`, `style.css`, ...);
//! - `/client/*`: the `syncroom-client` package (`clients/js/`), the same ES modules
//!   the npm tarball ships, which the page imports.
//!
//! Every file goes out with a weak `ETag` made of rust-embed's SHA-256 of its
//! content, and `If-None-Match` answers `304`; text goes out compressed when the
//! client accepts it (tower-http's compression layer, on these routes only).

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rust_embed::{EmbeddedFile, RustEmbed};
use tower_http::compression::CompressionLayer;

use super::error::ApiError;
use super::validators::if_none_match_names;

#[derive(RustEmbed)]
#[folder = "static/"]
struct PageAssets;

#[derive(RustEmbed)]
#[folder = "clients/js/"]
#[include = "*.js"]
#[include = "*.d.ts"]
#[exclude = "node_modules/*"]
#[exclude = "test/*"]
#[exclude = "examples/*"]
struct ClientAssets;

/// What the page may load: itself, exactly what the YouTube IFrame player needs, and
/// media from anywhere (a pasted media URL; plain `http` is still mixed content on HTTPS).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; \
script-src 'self' https://www.youtube.com https://s.ytimg.com; \
frame-src https://www.youtube.com https://www.youtube-nocookie.com; \
img-src 'self' data: https://i.ytimg.com; \
media-src 'self' https: http:; \
style-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'";

/// The page's routes: `/`, `/r/{room_id}`, `/static/*` and `/client/*`, compressed.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/r/{room_id}", get(room_page))
        .route("/static/{*path}", get(asset))
        .route("/client/{*path}", get(client_asset))
        .layer(CompressionLayer::new())
}

/// `GET /`: the demo page.
#[utoipa::path(
    get,
    path = "/",
    tag = "pages",
    responses(
        (status = 200, description = "The demo page", content_type = "text/html", body = String),
        (status = 304, description = "The page is unchanged (`If-None-Match`)"),
    )
)]
pub async fn index(request: HeaderMap) -> Result<Response, ApiError> {
    let mut response = serve("index.html", PageAssets::get("index.html"), &request)?;
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

/// `GET /r/{room_id}`: the same page; it reads the room id from the URL.
#[utoipa::path(
    get,
    path = "/r/{room_id}",
    tag = "pages",
    params(("room_id" = String, Path, description = "Any text; the page looks the room up itself")),
    responses(
        (status = 200, description = "The demo page", content_type = "text/html", body = String),
        (status = 304, description = "The page is unchanged (`If-None-Match`)"),
    )
)]
pub async fn room_page(request: HeaderMap) -> Result<Response, ApiError> {
    index(request).await
}

/// `GET /static/{path}`: the page's own files.
#[utoipa::path(
    get,
    path = "/static/{path}",
    tag = "pages",
    params(("path" = String, Path, description = "An asset of the demo page")),
    responses(
        (status = 200, description = "The asset (JavaScript, CSS, images), gzip when accepted", content_type = "*/*", body = String),
        (status = 304, description = "The asset is unchanged (`If-None-Match`)"),
        (status = 404, description = "No such asset (`not_found`)", body = super::error::ErrorBody),
    )
)]
pub async fn asset(Path(path): Path<String>, request: HeaderMap) -> Result<Response, ApiError> {
    serve(&path, PageAssets::get(&path), &request)
}

/// `GET /client/{path}`: the client package's modules and type declarations.
#[utoipa::path(
    get,
    path = "/client/{path}",
    tag = "pages",
    params(("path" = String, Path, description = "A module of the `syncroom-client` package")),
    responses(
        (status = 200, description = "The module, gzip when accepted", content_type = "*/*", body = String),
        (status = 304, description = "The module is unchanged (`If-None-Match`)"),
        (status = 404, description = "No such file (`not_found`)", body = super::error::ErrorBody),
    )
)]
pub async fn client_asset(
    Path(path): Path<String>,
    request: HeaderMap,
) -> Result<Response, ApiError> {
    serve(&path, ClientAssets::get(&path), &request)
}

/// The validator of one embedded file: weak, because the compression layer may send
/// the same entity in another encoding.
fn etag(file: &EmbeddedFile) -> HeaderValue {
    let hash = file.metadata.sha256_hash();
    let mut tag = String::with_capacity(38);
    tag.push_str("W/\"");
    for byte in &hash[..16] {
        tag.push_str(&format!("{byte:02x}"));
    }
    tag.push('"');
    HeaderValue::from_str(&tag).unwrap_or(HeaderValue::from_static("W/\"0\""))
}

fn serve(
    path: &str,
    file: Option<EmbeddedFile>,
    request: &HeaderMap,
) -> Result<Response, ApiError> {
    let file = file.ok_or(ApiError::NotFound)?;
    let tag = etag(&file);
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let content_type = if path.ends_with(".d.ts") {
        HeaderValue::from_static("text/plain; charset=utf-8")
    } else {
        HeaderValue::from_str(mime.as_ref())
            .unwrap_or(HeaderValue::from_static("application/octet-stream"))
    };
    let headers = [
        // Always revalidate: a new server version must not meet an old script.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (header::ETAG, tag.clone()),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
    ];
    if if_none_match_names(request, tag.as_bytes()) {
        return Ok((StatusCode::NOT_MODIFIED, headers).into_response());
    }
    Ok((headers, [(header::CONTENT_TYPE, content_type)], file.data).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_and_client_file_is_embedded() {
        for name in ["index.html", "app.js", "style.css"] {
            assert!(PageAssets::get(name).is_some(), "{name}");
        }
        for name in [
            "index.js",
            "room.js",
            "api.js",
            "clock.js",
            "player-sync.js",
            "sync-core.js",
            "sim-player.js",
            "index.d.ts",
        ] {
            assert!(ClientAssets::get(name).is_some(), "{name}");
        }
        assert!(ClientAssets::get("package.json").is_none());
    }
}
