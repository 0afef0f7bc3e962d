//! The embedded page and client package over HTTP: validators (`ETag` from
//! rust-embed's hash, `304` on `If-None-Match`) and gzip for text assets, on the
//! page's routes only.

mod common;

use common::spawn_app;
use reqwest::header::{
    HeaderMap, ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_SECURITY_POLICY,
    CONTENT_TYPE, ETAG, IF_NONE_MATCH, VARY,
};
use reqwest::StatusCode;

fn header(headers: &HeaderMap, name: reqwest::header::HeaderName) -> &str {
    headers
        .get(&name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header in {headers:?}"))
}

/// `W/"` + 32 lowercase hex digits + `"`.
fn assert_etag_shape(tag: &str) {
    let inner = tag
        .strip_prefix("W/\"")
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or_else(|| panic!("weak quoted ETag: {tag}"));
    assert_eq!(inner.len(), 32, "{tag}");
    assert!(inner.bytes().all(|b| b.is_ascii_hexdigit()), "{tag}");
}

#[tokio::test]
async fn assets_carry_an_etag_and_answer_304_to_if_none_match() {
    let app = spawn_app(&[]).await;
    for path in [
        "/static/app.js",
        "/static/style.css",
        "/client/index.js",
        "/client/room.js",
    ] {
        let first = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(first.status(), StatusCode::OK, "{path}");
        let tag = header(first.headers(), ETAG).to_owned();
        assert_etag_shape(&tag);
        assert_eq!(header(first.headers(), CACHE_CONTROL), "no-cache", "{path}");
        assert!(!first.bytes().await.unwrap().is_empty());

        let again = app
            .client
            .get(app.url(path))
            .header(IF_NONE_MATCH, &tag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert_eq!(header(again.headers(), ETAG), tag);
        assert!(again.bytes().await.unwrap().is_empty(), "a 304 has no body");

        // The strong form of the same tag, and a list holding it, match too (weak comparison).
        let strong = tag.trim_start_matches("W/");
        for candidate in [strong.to_owned(), format!("\"nope\", {tag}")] {
            let listed = app
                .client
                .get(app.url(path))
                .header(IF_NONE_MATCH, candidate.as_str())
                .send()
                .await
                .unwrap();
            assert_eq!(
                listed.status(),
                StatusCode::NOT_MODIFIED,
                "{path} {candidate}"
            );
        }

        let stale = app
            .client
            .get(app.url(path))
            .header(IF_NONE_MATCH, "W/\"00000000000000000000000000000000\"")
            .send()
            .await
            .unwrap();
        assert_eq!(stale.status(), StatusCode::OK, "{path}");
        assert_eq!(header(stale.headers(), ETAG), tag);
    }
}

#[tokio::test]
async fn different_files_have_different_etags_and_the_page_keeps_its_policy_on_304() {
    let app = spawn_app(&[]).await;
    let a = app.get("/static/app.js").await;
    let b = app.get("/client/index.js").await;
    assert_ne!(header(a.headers(), ETAG), header(b.headers(), ETAG));

    let page = app.get("/").await;
    assert_eq!(page.status(), StatusCode::OK);
    let tag = header(page.headers(), ETAG).to_owned();
    for path in ["/", "/r/friday"] {
        let cached = app
            .client
            .get(app.url(path))
            .header(IF_NONE_MATCH, &tag)
            .send()
            .await
            .unwrap();
        assert_eq!(cached.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert!(header(cached.headers(), CONTENT_SECURITY_POLICY).contains("default-src 'self'"));
    }
}

#[tokio::test]
async fn text_assets_are_gzipped_when_accepted_and_plain_otherwise() {
    let app = spawn_app(&[]).await;
    for path in [
        "/static/app.js",
        "/static/style.css",
        "/",
        "/client/player-sync.js",
    ] {
        let plain = app.get(path).await;
        assert_eq!(plain.status(), StatusCode::OK);
        assert!(plain.headers().get(CONTENT_ENCODING).is_none(), "{path}");
        let plain_body = plain.bytes().await.unwrap();

        let zipped = app
            .client
            .get(app.url(path))
            .header(ACCEPT_ENCODING, "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(zipped.status(), StatusCode::OK, "{path}");
        assert_eq!(header(zipped.headers(), CONTENT_ENCODING), "gzip", "{path}");
        assert!(header(zipped.headers(), VARY)
            .to_ascii_lowercase()
            .contains("accept-encoding"));
        assert!(header(zipped.headers(), ETAG).starts_with("W/"), "{path}");
        let body = zipped.bytes().await.unwrap();
        assert_eq!(&body[..2], &[0x1f, 0x8b], "{path}: a gzip member");
        assert!(
            body.len() < plain_body.len(),
            "{path}: {} gzipped vs {} plain",
            body.len(),
            plain_body.len()
        );
    }
    // The served script is the file in the repository, byte for byte.
    let served = app.get("/static/app.js").await.bytes().await.unwrap();
    let on_disk = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/static/app.js")).unwrap();
    assert_eq!(served.as_ref(), on_disk.as_slice());
}

#[tokio::test]
async fn the_api_is_not_compressed_and_the_client_package_serves_only_modules_and_types() {
    let app = spawn_app(&[]).await;
    let api = app
        .client
        .get(app.url("/api/rooms"))
        .header(ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::OK);
    assert!(api.headers().get(CONTENT_ENCODING).is_none());
    assert!(api.headers().get(ETAG).is_none());

    let types = app.get("/client/index.d.ts").await;
    assert_eq!(types.status(), StatusCode::OK);
    assert!(header(types.headers(), CONTENT_TYPE).starts_with("text/plain"));
    for missing in [
        "/client/package.json",
        "/client/README.md",
        "/client/examples/node-follow.mjs",
        "/static/syncroom.js",
    ] {
        assert_eq!(
            app.get(missing).await.status(),
            StatusCode::NOT_FOUND,
            "{missing}"
        );
    }
}
