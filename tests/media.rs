//! `--media-dir`: the operator's files at `/media/{path}` (ranges, validators,
//! HEAD) and their listing at `/api/media`; nothing outside the directory, no
//! dotfiles and nothing but audio and video ever leaves the server.

mod common;

use std::path::{Path, PathBuf};

use common::{assert_error, spawn_app, TestApp};
use serde_json::{json, Value};

/// A media directory for one test, removed when dropped.
struct MediaDir {
    root: PathBuf,
    /// A folder beside the media directory: what a symlink may try to reach.
    outside: PathBuf,
}

impl Drop for MediaDir {
    fn drop(&mut self) {
        // Best effort: a leftover temp folder fails no test.
        let _ = std::fs::remove_dir_all(self.root.parent().expect("parent"));
    }
}

/// Bytes that differ at every offset, so a wrong range shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

fn write(path: &Path, bytes: &[u8]) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create folder");
    }
    std::fs::write(path, bytes).expect("write file");
}

/// song.wav (1000 bytes), albums/one two.mp3, .hidden.mp3, .private/x.mp3,
/// notes.html, and symlinks: inside.ogg -> song.wav (allowed), escape.mp3 and
/// escape-dir -> outside the directory, hidden-link.mp3 -> .private/x.mp3.
/// A symlink is served with its target's content type.
fn media_dir() -> MediaDir {
    let base = std::env::temp_dir().join(format!("syncroom-media-{}", uuid_like()));
    let root = base.join("media");
    let outside = base.join("outside");
    write(&root.join("song.wav"), &pattern(1000));
    write(&root.join("albums/one two.mp3"), &pattern(300));
    write(&root.join(".hidden.mp3"), b"hidden");
    write(&root.join(".private/x.mp3"), b"private");
    write(&root.join("notes.html"), b"<script>alert(1)</script>");
    write(&outside.join("secret.mp3"), b"secret");
    #[cfg(unix)]
    {
        use std::os::unix::fs::symlink;
        symlink(root.join("song.wav"), root.join("inside.ogg")).expect("symlink");
        symlink(outside.join("secret.mp3"), root.join("escape.mp3")).expect("symlink");
        symlink(&outside, root.join("escape-dir")).expect("symlink");
        symlink(root.join(".private/x.mp3"), root.join("hidden-link.mp3")).expect("symlink");
    }
    MediaDir { root, outside }
}

/// A name no other test of this run takes: the process, the clock, and a
/// counter (tests run in parallel threads, and two may read the same clock).
fn uuid_like() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!(
        "{}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

async fn app_with(dir: &MediaDir) -> TestApp {
    let root = dir.root.to_str().expect("utf-8 temp path").to_owned();
    spawn_app(&["--media-dir", &root]).await
}

#[tokio::test]
async fn a_media_file_is_served_whole_with_its_type_and_validators() {
    let dir = media_dir();
    let app = app_with(&dir).await;
    let response = app.get("/media/song.wav").await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "audio/wav");
    assert_eq!(headers["accept-ranges"], "bytes");
    assert_eq!(headers["content-length"], "1000");
    assert!(headers.contains_key("last-modified"));
    assert!(headers["etag"].to_str().expect("ascii").starts_with('"'));
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(
        response.bytes().await.expect("body").as_ref(),
        pattern(1000)
    );
}

#[tokio::test]
async fn a_byte_range_is_answered_206_with_exactly_those_bytes() {
    let dir = media_dir();
    let app = app_with(&dir).await;
    for (range, start, end) in [
        ("bytes=100-199", 100, 199),
        ("bytes=990-", 990, 999),
        ("bytes=-10", 990, 999),
    ] {
        let response = app
            .client
            .get(app.url("/media/song.wav"))
            .header("range", range)
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 206, "{range}");
        assert_eq!(
            response.headers()["content-range"],
            format!("bytes {start}-{end}/1000").as_str(),
            "{range}"
        );
        let body = response.bytes().await.expect("body");
        assert_eq!(body.as_ref(), &pattern(1000)[start..=end], "{range}");
    }
    let response = app
        .client
        .get(app.url("/media/song.wav"))
        .header("range", "bytes=5000-6000")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 416);
    assert_eq!(response.headers()["content-range"], "bytes */1000");
}

#[tokio::test]
async fn head_answers_the_headers_without_a_body() {
    let dir = media_dir();
    let app = app_with(&dir).await;
    let response = app
        .client
        .head(app.url("/media/albums/one%20two.mp3"))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "audio/mpeg");
    assert_eq!(response.headers()["content-length"], "300");
    assert!(response.bytes().await.expect("body").is_empty());
}

#[tokio::test]
async fn a_matching_etag_or_date_is_answered_304_and_a_stale_if_range_gets_the_whole_file() {
    let dir = media_dir();
    let app = app_with(&dir).await;
    let first = app.get("/media/song.wav").await;
    let etag = first.headers()["etag"].to_str().expect("ascii").to_owned();
    let last_modified = first.headers()["last-modified"]
        .to_str()
        .expect("ascii")
        .to_owned();
    for (name, value) in [
        ("if-none-match", etag.clone()),
        ("if-none-match", format!("\"nope\", {etag}")),
        ("if-modified-since", last_modified.clone()),
    ] {
        let response = app
            .client
            .get(app.url("/media/song.wav"))
            .header(name, &value)
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 304, "{name}: {value}");
        assert!(response.bytes().await.expect("body").is_empty());
    }
    // A different tag: the file is sent, even with a matching date beside it.
    let response = app
        .client
        .get(app.url("/media/song.wav"))
        .header("if-none-match", "\"other\"")
        .header("if-modified-since", &last_modified)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);

    let ranged = |if_range: String| {
        app.client
            .get(app.url("/media/song.wav"))
            .header("range", "bytes=0-9")
            .header("if-range", if_range)
            .send()
    };
    assert_eq!(ranged(etag.clone()).await.expect("send").status(), 206);
    let stale = ranged("\"an-old-version\"".into()).await.expect("send");
    assert_eq!(stale.status(), 200);
    assert_eq!(stale.bytes().await.expect("body").len(), 1000);
}

#[tokio::test]
async fn traversal_dotfiles_escaping_symlinks_and_non_media_are_404() {
    let dir = media_dir();
    let app = app_with(&dir).await;
    let outside_name = dir
        .outside
        .file_name()
        .expect("name")
        .to_str()
        .expect("utf-8");
    let paths = [
        "/media/../outside/secret.mp3".to_owned(),
        format!("/media/%2e%2e/{outside_name}/secret.mp3"),
        format!("/media/%2E%2E%2F{outside_name}%2Fsecret.mp3"),
        "/media/albums/..%2F..%2Fsong.wav".to_owned(),
        "/media/..%5csong.wav".to_owned(),
        "/media/.hidden.mp3".to_owned(),
        "/media/.private/x.mp3".to_owned(),
        "/media/hidden-link.mp3".to_owned(),
        "/media/escape.mp3".to_owned(),
        "/media/escape-dir/secret.mp3".to_owned(),
        "/media/notes.html".to_owned(),
        "/media/albums".to_owned(),
        "/media/albums/".to_owned(),
        "/media/".to_owned(),
        "/media/missing.mp3".to_owned(),
        "/media/song.wav%00.mp3".to_owned(),
        format!("/media/{}.mp3", "a".repeat(5000)),
    ];
    for path in paths {
        // Raw request: a client library would normalise the `..` away.
        let (status, body) = raw_get(&app, &path).await;
        assert_eq!(status, 404, "{path}: {body}");
        if !body.is_empty() {
            let json: Value =
                serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path}: not JSON: {body}"));
            assert_eq!(json["error"]["code"], "not_found", "{path}");
        }
    }
    // What stays inside is served, symlink or not.
    let (status, _) = raw_get(&app, "/media/inside.ogg").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn without_media_dir_nothing_is_served_and_the_list_is_empty() {
    let app = spawn_app(&[]).await;
    assert_error(app.get("/media/song.wav").await, 404, "not_found").await;
    let list: Value = app.get("/api/media").await.json().await.expect("json");
    assert_eq!(list, json!({"files": []}));
}

#[tokio::test]
async fn the_list_names_every_audio_and_video_file_and_nothing_else() {
    let dir = media_dir();
    let app = app_with(&dir).await;
    let response = app.get("/api/media").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let list: Value = response.json().await.expect("json");
    assert_eq!(
        list,
        json!({"files": [
            {"path": "/media/albums/one%20two.mp3", "name": "one two.mp3", "size": 300, "content_type": "audio/mpeg"},
            {"path": "/media/inside.ogg", "name": "inside.ogg", "size": 1000, "content_type": "audio/wav"},
            {"path": "/media/song.wav", "name": "song.wav", "size": 1000, "content_type": "audio/wav"},
        ]})
    );
    // Every listed path is served.
    for file in list["files"].as_array().expect("files") {
        let path = file["path"].as_str().expect("path");
        assert_eq!(app.get(path).await.status(), 200, "{path}");
    }
}

#[test]
fn a_media_dir_that_is_not_a_directory_is_refused_at_start_by_name() {
    let dir = media_dir();
    for bad in [dir.root.join("missing"), dir.root.join("song.wav")] {
        let error = syncroom::http::media::MediaLibrary::open(&bad)
            .err()
            .unwrap_or_else(|| panic!("{} was accepted", bad.display()));
        let message = error.to_string();
        assert!(
            message.contains(&bad.display().to_string()) && message.contains("directory"),
            "{message}"
        );
    }
}

/// `GET path` exactly as written, on a fresh connection; the status and body.
async fn raw_get(app: &TestApp, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(common::WAIT, socket.read_to_end(&mut answer))
        .await
        .expect("answer in time")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}
