//! `--media-dir`: the operator's files at `/media/{path}` (ranges, validators,
//! HEAD), their listing at `/api/media` with what each file says about itself
//! (duration, title, artist) and their cover art at `/api/media/art/{path}`;
//! nothing outside the directory, no dotfiles and nothing but audio and video
//! ever leaves the server.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// A connection that asked for `path` (the whole file) with a small receive buffer.
async fn ask_for(app: &TestApp, path: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(64 * 1024).expect("SO_RCVBUF");
    let mut stream = socket.connect(app.addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nRange: bytes=0-\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    stream
}

/// Reads until the server ends the response or the connection: the bytes read
/// (head and body), however it ended (a reset discards what was not read yet).
async fn read_until_ended(stream: &mut tokio::net::TcpStream, want: usize) -> usize {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0;
    while got < want {
        match tokio::time::timeout(common::WAIT, stream.read(&mut buf))
            .await
            .expect("the answer goes on or ends in time")
        {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    got
}

#[tokio::test]
async fn a_download_its_client_stops_reading_is_reset_and_a_slow_reader_gets_it_whole() {
    use tokio::io::AsyncReadExt;
    let dir = media_dir();
    // Far more than the sockets on both ends hold.
    let size = 24 << 20;
    write(&dir.root.join("long.wav"), &pattern(size));
    // A short keepalive: a connection that takes nothing is reset after two of them (2 s).
    let root = dir.root.to_str().expect("utf-8 temp path");
    let app = spawn_app(&["--media-dir", root, "--keepalive", "1"]).await;
    let mut parked = ask_for(&app, "/media/long.wav").await;
    let mut slow = ask_for(&app, "/media/long.wav").await;
    // The slow one takes a little every 300 ms, for longer than a parked download
    // is kept; the parked one reads nothing.
    let started = std::time::Instant::now();
    let mut buf = vec![0u8; 32 * 1024];
    let mut slow_got = 0;
    while started.elapsed() < Duration::from_secs(8) {
        slow_got += slow.read(&mut buf).await.expect("slow read");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let parked_got = read_until_ended(&mut parked, size).await;
    assert!(
        parked_got < size,
        "a download nobody read for 8 s was still served: {parked_got} bytes"
    );
    slow_got += read_until_ended(&mut slow, size + 1024).await;
    // Whole: the body and its head (a few hundred bytes).
    assert!(
        slow_got > size && slow_got < size + 1024,
        "a slow reader got {slow_got} bytes of {size}"
    );
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
            {"path": "/media/albums/one%20two.mp3", "name": "one two.mp3", "size": 300, "content_type": "audio/mpeg",
             "duration": null, "title": null, "artist": null},
            {"path": "/media/inside.ogg", "name": "inside.ogg", "size": 1000, "content_type": "audio/wav",
             "duration": null, "title": null, "artist": null},
            {"path": "/media/song.wav", "name": "song.wav", "size": 1000, "content_type": "audio/wav",
             "duration": null, "title": null, "artist": null},
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

// What a file says about itself: duration, title, artist, cover art.

/// The bytes of a mono 16-bit PCM WAV file of `seconds` (8 kHz): a 440 Hz tone.
fn tone_wav(seconds: f64) -> Vec<u8> {
    const RATE: u32 = 8000;
    let samples = (seconds * f64::from(RATE)).round() as u32;
    let mut wav = Vec::with_capacity(44 + samples as usize * 2);
    let data_len = samples * 2;
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes()); // fmt chunk size
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&RATE.to_le_bytes());
    wav.extend_from_slice(&(RATE * 2).to_le_bytes()); // byte rate
    wav.extend_from_slice(&2u16.to_le_bytes()); // block align
    wav.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..samples {
        let t = f64::from(i) / f64::from(RATE);
        let value = (0.3 * (2.0 * std::f64::consts::PI * 440.0 * t).sin() * 32767.0) as i16;
        wav.extend_from_slice(&value.to_le_bytes());
    }
    wav
}

/// A 1x1 PNG: the smallest picture a browser shows.
const COVER_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0,
    0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// Writes a tag of `kind` into the file at `path` with lofty (a real tag
/// writer): the title, the artist and the cover, where given.
fn tag_file(
    path: &Path,
    kind: lofty::tag::TagType,
    title: Option<&str>,
    artist: Option<&str>,
    cover: Option<&[u8]>,
) {
    use lofty::config::WriteOptions;
    use lofty::picture::{MimeType, Picture, PictureType};
    use lofty::tag::{Accessor, Tag, TagExt};
    let mut tag = Tag::new(kind);
    if let Some(title) = title {
        tag.set_title(title.to_owned());
    }
    if let Some(artist) = artist {
        tag.set_artist(artist.to_owned());
    }
    if let Some(cover) = cover {
        tag.push_picture(
            Picture::unchecked(cover.to_vec())
                .pic_type(PictureType::CoverFront)
                .mime_type(MimeType::Png)
                .build(),
        );
    }
    tag.save_to_path(path, WriteOptions::default())
        .expect("lofty writes the tag");
}

/// tagged.wav (1.5 s; ID3v2 title, artist and a PNG cover), info.wav (0.5 s;
/// RIFF INFO title only), plain.wav (2.25 s, no tags), "with space.wav" (1 s,
/// ID3v2 artist only) and broken.mp3 (not audio at all).
fn tagged_media_dir() -> MediaDir {
    let base = std::env::temp_dir().join(format!("syncroom-tags-{}", uuid_like()));
    let root = base.join("media");
    let outside = base.join("outside");
    std::fs::create_dir_all(&outside).expect("create folder");
    write(&root.join("tagged.wav"), &tone_wav(1.5));
    tag_file(
        &root.join("tagged.wav"),
        lofty::tag::TagType::Id3v2,
        Some("Morning Song"),
        Some("The Testers"),
        Some(COVER_PNG),
    );
    write(&root.join("info.wav"), &tone_wav(0.5));
    tag_file(
        &root.join("info.wav"),
        lofty::tag::TagType::RiffInfo,
        Some("Only a Title"),
        None,
        None,
    );
    write(&root.join("plain.wav"), &tone_wav(2.25));
    write(&root.join("with space.wav"), &tone_wav(1.0));
    tag_file(
        &root.join("with space.wav"),
        lofty::tag::TagType::Id3v2,
        None,
        Some("Someone"),
        None,
    );
    write(&root.join("broken.mp3"), &pattern(500));
    MediaDir { root, outside }
}

/// The listing's entry for `name`.
fn listed<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|file| file["name"] == name)
        .unwrap_or_else(|| panic!("{name} not listed in {list}"))
}

#[tokio::test]
async fn the_list_gives_each_files_duration_title_and_artist_and_null_when_unknown() {
    let dir = tagged_media_dir();
    let app = app_with(&dir).await;
    let list: Value = app.get("/api/media").await.json().await.expect("json");
    for (name, duration, title, artist) in [
        (
            "tagged.wav",
            json!(1.5),
            json!("Morning Song"),
            json!("The Testers"),
        ),
        ("info.wav", json!(0.5), json!("Only a Title"), Value::Null),
        ("plain.wav", json!(2.25), Value::Null, Value::Null),
        ("with space.wav", json!(1.0), Value::Null, json!("Someone")),
        ("broken.mp3", Value::Null, Value::Null, Value::Null),
    ] {
        let file = listed(&list, name);
        assert_eq!(file["duration"], duration, "{name}: {file}");
        assert_eq!(file["title"], title, "{name}: {file}");
        assert_eq!(file["artist"], artist, "{name}: {file}");
    }
    assert_eq!(
        listed(&list, "with space.wav")["path"],
        "/media/with%20space.wav"
    );
}

#[tokio::test]
async fn cover_art_is_answered_with_its_type_and_validators() {
    let dir = tagged_media_dir();
    let app = app_with(&dir).await;
    let response = app.get("/api/media/art/tagged.wav").await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "image/png");
    assert_eq!(headers["cache-control"], "no-cache");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(headers.contains_key("last-modified"));
    let etag = headers["etag"].to_str().expect("ascii").to_owned();
    assert!(etag.starts_with('"'), "{etag}");
    assert_eq!(response.bytes().await.expect("body").as_ref(), COVER_PNG);

    let again = app
        .client
        .get(app.url("/api/media/art/tagged.wav"))
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("send");
    assert_eq!(again.status(), 304);
    assert!(again.bytes().await.expect("body").is_empty());

    let head = app
        .client
        .head(app.url("/api/media/art/tagged.wav"))
        .send()
        .await
        .expect("send");
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-type"], "image/png");
    assert!(head.bytes().await.expect("body").is_empty());

    // A new version of the file is a new validator: the old one no longer matches.
    tag_file(
        &dir.root.join("tagged.wav"),
        lofty::tag::TagType::Id3v2,
        Some("Evening Song"),
        Some("The Testers"),
        Some(COVER_PNG),
    );
    let changed = app
        .client
        .get(app.url("/api/media/art/tagged.wav"))
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("send");
    assert_eq!(changed.status(), 200);
    assert_ne!(changed.headers()["etag"].to_str().expect("ascii"), etag);
}

#[tokio::test]
async fn art_of_a_file_without_a_picture_or_outside_the_library_is_404_not_found() {
    let dir = tagged_media_dir();
    let app = app_with(&dir).await;
    for path in [
        "/api/media/art/plain.wav",
        "/api/media/art/info.wav",
        "/api/media/art/broken.mp3",
        "/api/media/art/missing.wav",
        "/api/media/art/..%2Foutside%2Fx.wav",
        "/api/media/art/.hidden.wav",
    ] {
        let (status, body) = raw_get(&app, path).await;
        assert_eq!(status, 404, "{path}: {body}");
        let json: Value =
            serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path}: not JSON: {body}"));
        assert_eq!(json["error"]["code"], "not_found", "{path}");
    }
    let without = spawn_app(&[]).await;
    assert_error(
        without.get("/api/media/art/tagged.wav").await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn an_items_details_come_from_its_file_and_follow_the_files_changes() {
    use syncroom::metadata::{ItemInfo, ItemSource, Metadata};
    let dir = tagged_media_dir();
    let library = syncroom::metadata::MediaLibrary::open(&dir.root).expect("open");
    let metadata = Metadata::new(Some(library), None);
    assert_eq!(
        metadata
            .item_info(ItemSource::Media("/media/tagged.wav"))
            .await,
        Some(ItemInfo {
            duration: Some(1.5),
            title: Some("Morning Song".into()),
            artist: Some("The Testers".into()),
        })
    );
    assert_eq!(
        metadata
            .item_info(ItemSource::Media("/media/with%20space.wav?t=1"))
            .await,
        Some(ItemInfo {
            duration: Some(1.0),
            title: None,
            artist: Some("Someone".into()),
        })
    );
    // The same file, tagged anew: its new version is read, not the cached one.
    tag_file(
        &dir.root.join("tagged.wav"),
        lofty::tag::TagType::Id3v2,
        Some("A Much Longer Evening Song Title"),
        Some("The Testers"),
        None,
    );
    let info = metadata
        .item_info(ItemSource::Media("/media/tagged.wav"))
        .await
        .expect("known");
    assert_eq!(
        info.title.as_deref(),
        Some("A Much Longer Evening Song Title")
    );
    for unknown in [
        "/media/broken.mp3",
        "/media/missing.wav",
        "/media/../outside/x.wav",
        "https://example.com/media/tagged.wav",
    ] {
        assert_eq!(
            metadata.item_info(ItemSource::Media(unknown)).await,
            None,
            "{unknown}"
        );
    }
}
