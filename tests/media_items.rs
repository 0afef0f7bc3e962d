//! Media items: a room item is a YouTube video (`video_id`) or a media file
//! (`media_url`), never both. Each rule of docs/API.md's "Items" section,
//! against a real server on 127.0.0.1:0.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const VIDEO: &str = "dQw4w9WgXcQ";
const SONG: &str = "/media/music/one.ogg";
const REMOTE: &str = "https://cdn.example.com/audio/two.mp3?sig=abc";

async fn stop(mut app: TestApp) {
    app.shutdown.cancel();
    let server = app.server.take().expect("server task");
    tokio::time::timeout(WAIT, server)
        .await
        .expect("server stops")
        .expect("server task joins")
        .expect("server ends cleanly");
}

/// An empty host room with a listener past its snapshot.
async fn listening_room(app: &TestApp) -> (String, String, SseStream) {
    // Public, so that the listing shows what it plays.
    let (room, token, _) = app.create_room(json!({"visibility": "public"})).await;
    let mut listener = app.events(&room).await;
    listener.expect_snapshot().await;
    (room, token, listener)
}

fn assert_media(item: &Value, url: &str) {
    assert_eq!(item["media_url"], url, "{item}");
    assert_eq!(item["video_id"], Value::Null, "{item}");
}

fn assert_video(item: &Value, id: &str) {
    assert_eq!(item["video_id"], id, "{item}");
    assert!(item.get("media_url").is_some(), "no media_url in {item}");
    assert_eq!(item["media_url"], Value::Null, "{item}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_takes_a_media_url_and_every_view_carries_it() {
    let app = spawn_app(&[]).await;
    let (room, token, mut listener) = listening_room(&app).await;
    for url in [SONG, REMOTE] {
        let answer = app
            .command_ok(
                &room,
                Some(&token),
                json!({"type": "load", "media_url": url, "duration": 30}),
            )
            .await;
        assert_media(&answer["room"]["state"], url);
        let event = listener.expect_versioned().await;
        assert_eq!(event.event, "state");
        assert_eq!(event.json()["cause"], "load");
        assert_media(&event.json()["state"], url);
        assert_media(&app.get_room(&room).await["state"], url);
    }
    // A late listener's snapshot, and the listing.
    let mut late = app.events(&room).await;
    assert_media(&late.expect_snapshot().await["state"], REMOTE);
    let listed = app.list_rooms().await;
    let summary = listed
        .iter()
        .find(|r| r["room_id"] == room.as_str())
        .expect("the room is listed");
    assert_media(summary, REMOTE);
    // And back to YouTube: media_url is null again.
    app.command_ok(
        &room,
        Some(&token),
        json!({"type": "load", "video_id": VIDEO}),
    )
    .await;
    assert_video(&app.get_room(&room).await["state"], VIDEO);
    let listed = app.list_rooms().await;
    assert_video(
        listed
            .iter()
            .find(|r| r["room_id"] == room.as_str())
            .expect("listed"),
        VIDEO,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_add_takes_a_media_url() {
    let app = spawn_app(&[]).await;
    let (room, token, mut listener) = listening_room(&app).await;
    app.command_ok(
        &room,
        Some(&token),
        json!({"type": "queue_add", "media_url": SONG, "title": "One"}),
    )
    .await;
    app.command_ok(
        &room,
        Some(&token),
        json!({"type": "queue_add", "video_id": VIDEO}),
    )
    .await;
    let first = listener.expect_versioned().await.json();
    assert_media(&first["items"][0], SONG);
    assert_eq!(first["items"][0]["title"], "One");
    let queue = &app.get_room(&room).await["queue"];
    assert_media(&queue[0], SONG);
    assert_video(&queue[1], VIDEO);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_or_neither_source_is_refused_saying_which() {
    let app = spawn_app(&[]).await;
    let (room, token) = app.video_room().await;
    let cases = [
        (
            json!({"type": "load", "video_id": VIDEO, "media_url": SONG}),
            "not both",
        ),
        (
            json!({"type": "queue_add", "video_id": VIDEO, "media_url": SONG}),
            "not both",
        ),
        (json!({"type": "load"}), "neither"),
        (
            json!({"type": "load", "video_id": null, "media_url": null}),
            "neither",
        ),
        (json!({"type": "queue_add", "title": "x"}), "neither"),
    ];
    for (body, says) in cases {
        let before = app.get_room(&room).await;
        let response = app.command(&room, Some(&token), body.clone()).await;
        assert_eq!(response.status(), 400, "{body}");
        let answer: Value = response.json().await.expect("JSON error");
        assert_error_shape(&answer, "invalid_value");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{body}: {message}");
        assert!(message.contains("media_url"), "{body}: {message}");
        assert_eq!(
            fingerprint(&app.get_room(&room).await),
            fingerprint(&before)
        );
    }
}

/// Every form of `media_url` that is not an http(s) URL or a clean `/media/` path.
const BAD_MEDIA_URLS: &[(&str, &str)] = &[
    ("javascript scheme", "javascript:alert(1)"),
    ("data scheme", "data:audio/wav;base64,UklGRg=="),
    ("file scheme", "file:///etc/passwd"),
    ("ftp scheme", "ftp://example.com/a.mp3"),
    ("scheme-relative", "//example.com/a.mp3"),
    ("relative path", "music/a.mp3"),
    ("another absolute path", "/static/app.js"),
    ("the media prefix alone", "/media/"),
    ("empty", ""),
    ("no host", "https:///a.mp3"),
    ("user and password", "https://ann:secret@example.com/a.mp3"),
    ("user name", "https://ann@example.com/a.mp3"),
    ("whitespace", "https://example.com/a b.mp3"),
    ("leading space", " https://example.com/a.mp3"),
    ("newline", "https://example.com/a.mp3\n"),
    ("backslash URL", "https:\\\\example.com\\a.mp3"),
    ("dot-dot segment", "/media/../secret.mp3"),
    ("nested dot-dot", "/media/a/../../secret.mp3"),
    ("encoded dot-dot", "/media/%2e%2e/secret.mp3"),
    ("half-encoded dot-dot", "/media/.%2E/secret.mp3"),
    ("dot segment", "/media/./a.mp3"),
    ("encoded slash", "/media/a%2F..%2Fb.mp3"),
    ("backslash path", "/media/a\\b.mp3"),
    ("control character", "/media/a\u{7}.mp3"),
    ("encoded NUL", "/media/a%00.mp3"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_media_urls_are_refused_and_change_nothing() {
    let app = spawn_app(&[]).await;
    let (room, token) = app.video_room().await;
    for (rule, url) in BAD_MEDIA_URLS {
        for body in [
            json!({"type": "load", "media_url": url}),
            json!({"type": "queue_add", "media_url": url}),
        ] {
            let before = app.get_room(&room).await;
            let response = app.command(&room, Some(&token), body.clone()).await;
            let status = response.status().as_u16();
            let answer: Value = response.json().await.expect("JSON error");
            assert_eq!(status, 400, "{rule}: {body} answered {answer}");
            assert_error_shape(&answer, "invalid_value");
            assert_eq!(
                fingerprint(&app.get_room(&room).await),
                fingerprint(&before),
                "{rule}: {body} changed the room"
            );
        }
        let created = app
            .client
            .post(app.url("/api/rooms"))
            .json(&json!({"media_url": url}))
            .send()
            .await
            .expect("POST /api/rooms");
        assert_error(created, 400, "invalid_value").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_media_url_over_2048_bytes_is_refused() {
    let app = spawn_app(&[]).await;
    let (room, token) = app.video_room().await;
    let prefix = "https://example.com/";
    let longest = format!("{prefix}{}", "a".repeat(2_048 - prefix.len()));
    let too_long = format!("{longest}a");
    assert_eq!((longest.len(), too_long.len()), (2_048, 2_049));
    let before = app.get_room(&room).await;
    let response = app
        .command(
            &room,
            Some(&token),
            json!({"type": "load", "media_url": too_long}),
        )
        .await;
    assert_error(response, 400, "invalid_value").await;
    let path = format!("/media/{}", "b".repeat(2_049 - "/media/".len()));
    let response = app
        .command(
            &room,
            Some(&token),
            json!({"type": "queue_add", "media_url": path}),
        )
        .await;
    assert_error(response, 400, "invalid_value").await;
    assert_eq!(
        fingerprint(&app.get_room(&room).await),
        fingerprint(&before)
    );
    // 2,048 bytes is still a media URL.
    let answer = app
        .command_ok(
            &room,
            Some(&token),
            json!({"type": "load", "media_url": longest}),
        )
        .await;
    assert_media(&answer["room"]["state"], &longest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_takes_a_media_url_or_a_video_id_but_not_both() {
    let app = spawn_app(&[]).await;
    let (_, _, created) = app.create_room(json!({"media_url": SONG})).await;
    assert_media(&created["room"]["state"], SONG);
    assert_eq!(created["room"]["state"]["paused"], true);
    let (_, _, empty) = app.create_room(json!({})).await;
    assert_eq!(empty["room"]["state"]["video_id"], Value::Null);
    assert_eq!(empty["room"]["state"]["media_url"], Value::Null);
    let both = app
        .client
        .post(app.url("/api/rooms"))
        .json(&json!({"video_id": VIDEO, "media_url": SONG}))
        .send()
        .await
        .expect("POST /api/rooms");
    assert_error(both, 400, "invalid_value").await;
    let wrong_type = app
        .client
        .post(app.url("/api/rooms"))
        .json(&json!({"media_url": 7}))
        .send()
        .await
        .expect("POST /api/rooms");
    assert_error(wrong_type, 400, "invalid_json").await;
}

/// Waits for the next `state` event caused by `next` and the `queue` after it.
async fn expect_advance(listener: &mut SseStream) -> (Value, Value) {
    loop {
        let event = listener.expect_versioned().await;
        if event.event == "state" && event.json()["cause"] == "next" {
            let queue = listener.expect_versioned().await;
            assert_eq!(queue.event, "queue");
            return (event.json(), queue.json());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_advance_goes_from_media_to_media_and_from_media_to_youtube() {
    let app = spawn_app(&[]).await;
    let (room, token, mut listener) = listening_room(&app).await;
    app.command_ok(
        &room,
        Some(&token),
        json!({"type": "load", "media_url": SONG, "duration": 0.5}),
    )
    .await;
    for body in [
        json!({"type": "queue_add", "media_url": REMOTE}),
        json!({"type": "queue_add", "video_id": VIDEO}),
    ] {
        app.command_ok(&room, Some(&token), body).await;
    }
    // The first media item ends by itself into the second.
    let (state, queue) = expect_advance(&mut listener).await;
    assert_media(&state["state"], REMOTE);
    assert_eq!(state["state"]["paused"], false);
    assert_eq!(queue["op"], "remove");
    assert_eq!(
        app.get_room(&room).await["queue"].as_array().map(Vec::len),
        Some(1)
    );
    // The second learns its duration (as the page reports it) and ends into YouTube.
    app.command_ok(
        &room,
        Some(&token),
        json!({"type": "duration", "duration": 0.5}),
    )
    .await;
    let (state, queue) = expect_advance(&mut listener).await;
    assert_video(&state["state"], VIDEO);
    assert_eq!(queue["op"], "remove");
    assert_eq!(app.get_room(&room).await["queue"], json!([]));
    // Nothing more happens by itself: the video's length is unknown.
    listener.expect_quiet(Duration::from_millis(800)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_and_queue_remove_and_move_work_on_media_items() {
    let app = spawn_app(&[]).await;
    let (room, token, _listener) = listening_room(&app).await;
    for body in [
        json!({"type": "queue_add", "media_url": SONG}),
        json!({"type": "queue_add", "video_id": VIDEO}),
        json!({"type": "queue_add", "media_url": REMOTE}),
    ] {
        app.command_ok(&room, Some(&token), body).await;
    }
    app.command_ok(
        &room,
        Some(&token),
        json!({"type": "queue_move", "item_id": "q3", "index": 0}),
    )
    .await;
    app.command_ok(
        &room,
        Some(&token),
        json!({"type": "queue_remove", "item_id": "q1"}),
    )
    .await;
    let answer = app
        .command_ok(&room, Some(&token), json!({"type": "next"}))
        .await;
    assert_media(&answer["room"]["state"], REMOTE);
    let queue = &answer["room"]["queue"];
    assert_eq!(queue.as_array().map(Vec::len), Some(1));
    assert_video(&queue[0], VIDEO);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_data_dir_keeps_media_urls() {
    let dir = TempDir::new("media-items");
    let data_dir = dir.0.to_str().expect("utf-8 temp dir").to_owned();
    let app = spawn_app(&["--data-dir", &data_dir]).await;
    let (room, token, _) = app.create_room(json!({"room_id": "kept"})).await;
    app.command_ok(
        &room,
        Some(&token),
        json!({"type": "load", "media_url": SONG, "paused": true, "position": 3}),
    )
    .await;
    app.command_ok(
        &room,
        Some(&token),
        json!({"type": "queue_add", "media_url": REMOTE}),
    )
    .await;
    let before = app.get_room(&room).await;
    stop(app).await;

    let app = spawn_app(&["--data-dir", &data_dir]).await;
    let after = app.get_room(&room).await;
    assert_eq!(fingerprint(&after), fingerprint(&before));
    assert_media(&after["state"], SONG);
    assert_media(&after["queue"][0], REMOTE);
    stop(app).await;
}
