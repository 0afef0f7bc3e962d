//! Limits, durability and security headers: each rule of the "Operating" part of
//! the README, against a real server on 127.0.0.1:0.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn stop(mut app: TestApp) {
    app.shutdown.cancel();
    let server = app.server.take().expect("server task");
    tokio::time::timeout(WAIT, server)
        .await
        .expect("server stops")
        .expect("server task joins")
        .expect("server ends cleanly");
}

#[tokio::test]
async fn rooms_keep_their_state_version_and_token_across_a_restart_with_data_dir() {
    let dir = std::env::temp_dir().join(format!("syncroom-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir(&dir).expect("create the data dir");
    let data_dir = dir.to_str().expect("utf-8 temp dir").to_owned();

    let app = spawn_app(&["--data-dir", &data_dir]).await;
    let (room, token, _) = app
        .create_room(json!({"room_id": "kept", "name": "Kept"}))
        .await;
    app.command_ok(
        &room,
        Some(&token),
        json!({"type": "load", "video_id": "dQw4w9WgXcQ", "paused": true, "position": 30}),
    )
    .await;
    app.command_ok(
        &room,
        Some(&token),
        json!({"type": "queue_add", "video_id": "9bZkp7q19f0", "title": "next"}),
    )
    .await;
    let before = app.get_room(&room).await;
    stop(app).await;

    let app = spawn_app(&["--data-dir", &data_dir]).await;
    let after = app.get_room(&room).await;
    assert_eq!(fingerprint(&after), fingerprint(&before));
    assert_eq!(after["version"], 3);

    // The same host token still commands the room, and versions go on from 3.
    let answer = app
        .command_ok(&room, Some(&token), json!({"type": "seek", "position": 31}))
        .await;
    assert_eq!(answer["version"], 4);
    let wrong = app
        .command(&room, Some("not-the-token"), json!({"type": "play"}))
        .await;
    assert_error(wrong, 403, "forbidden").await;

    // A listener that had seen version 4 resumes with nothing to replay: no snapshot.
    let mut stream = app
        .events_at(
            &format!("/api/rooms/{room}/events"),
            &[("Last-Event-ID", "4")],
        )
        .await;
    app.command_ok(&room, Some(&token), json!({"type": "play"}))
        .await;
    let event = stream.expect_versioned().await;
    assert_eq!(event.event, "state");
    assert_eq!(event.id_num(), 5);

    // A deleted room does not come back.
    let deleted = app.delete_room(&room, Some(&token)).await;
    assert_eq!(deleted.status(), 204);
    stop(app).await;
    let app = spawn_app(&["--data-dir", &data_dir]).await;
    let gone = app.get(&format!("/api/rooms/{room}")).await;
    assert_error(gone, 404, "room_not_found").await;
    stop(app).await;
    let _ = std::fs::remove_dir_all(&dir); // best effort: a temp dir
}

#[tokio::test]
async fn a_client_holding_too_many_streams_gets_429_with_retry_after() {
    let app = spawn_app(&["--max-streams-per-client", "3"]).await;
    let (room, _, _) = app.create_room(json!({})).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        let mut stream = app.events(&room).await;
        stream.expect_snapshot().await;
        open.push(stream);
    }
    let refused = app.get(&format!("/api/rooms/{room}/events")).await;
    let headers = assert_error(refused, 429, "rate_limited").await;
    assert!(retry_after_secs(&headers) >= 1);

    // Closing one frees a place.
    drop(open.pop());
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let response = app.get(&format!("/api/rooms/{room}/events")).await;
        if response.status() == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a place never freed up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_full_room_refuses_listeners_with_503() {
    let app = spawn_app(&["--max-listeners-per-room", "2"]).await;
    let (room, _, _) = app.create_room(json!({})).await;
    let mut a = app.events(&room).await;
    a.expect_snapshot().await;
    let mut b = app.events(&room).await;
    b.expect_snapshot().await;
    app.wait_listeners(&room, 2).await;
    let refused = app.get(&format!("/api/rooms/{room}/events")).await;
    let headers = assert_error(refused, 503, "unavailable").await;
    assert!(retry_after_secs(&headers) >= 1);
    // Other rooms are not affected.
    let (other, _, _) = app.create_room(json!({})).await;
    let mut c = app.events(&other).await;
    c.expect_snapshot().await;
}

#[tokio::test]
async fn past_max_rooms_creation_is_503_and_nothing_is_created() {
    let app = spawn_app(&["--max-rooms", "2"]).await;
    app.create_room(json!({"visibility": "public"})).await;
    app.create_room(json!({"visibility": "public"})).await;
    let refused = app
        .client
        .post(app.url("/api/rooms"))
        .json(&json!({"room_id": "third"}))
        .send()
        .await
        .expect("POST /api/rooms");
    let headers = assert_error(refused, 503, "unavailable").await;
    assert!(retry_after_secs(&headers) >= 1);
    assert_eq!(app.list_rooms().await.len(), 2);
    let missing = app.get("/api/rooms/third").await;
    assert_error(missing, 404, "room_not_found").await;
}

#[tokio::test]
async fn commands_past_the_per_client_rate_get_429_and_change_nothing() {
    let app = spawn_app(&["--commands-per-minute", "1", "--commands-burst", "2"]).await;
    // Creation has its own budget: the two seeks are the burst.
    let (room, token, _) = app.create_room(json!({})).await;
    app.command_ok(&room, Some(&token), json!({"type": "seek", "position": 1}))
        .await;
    app.command_ok(&room, Some(&token), json!({"type": "seek", "position": 2}))
        .await;
    let before = app.get_room(&room).await;
    let refused = app
        .command(&room, Some(&token), json!({"type": "seek", "position": 3}))
        .await;
    let headers = assert_error(refused, 429, "rate_limited").await;
    assert!(retry_after_secs(&headers) >= 1);
    assert_eq!(
        fingerprint(&app.get_room(&room).await),
        fingerprint(&before)
    );
}

#[tokio::test]
async fn with_trust_proxy_the_forwarded_address_is_the_client() {
    let app = spawn_app(&[
        "--trust-proxy",
        "--chat-burst",
        "1",
        "--chat-per-minute",
        "1",
    ])
    .await;
    let (room, _, _) = app.create_room(json!({})).await;
    let chat = |forwarded: &'static str| {
        app.client
            .post(app.url(&format!("/api/rooms/{room}/chat")))
            .header("X-Forwarded-For", forwarded)
            .json(&json!({"name": "Ann", "text": "hi"}))
            .send()
    };
    // Two clients behind the proxy each get their own allowance; the leftmost
    // entry (client-supplied) does not make a new client.
    assert_eq!(
        chat("198.51.100.7, 203.0.113.1").await.unwrap().status(),
        200
    );
    assert_eq!(chat("203.0.113.2").await.unwrap().status(), 200);
    let refused = chat("192.0.2.99, 203.0.113.1").await.unwrap();
    assert_error(refused, 429, "rate_limited").await;
}

#[tokio::test]
async fn without_trust_proxy_forwarded_headers_are_ignored() {
    let app = spawn_app(&["--chat-burst", "1", "--chat-per-minute", "1"]).await;
    let (room, _, _) = app.create_room(json!({})).await;
    for (i, forwarded) in ["203.0.113.1", "203.0.113.2"].into_iter().enumerate() {
        let response = app
            .client
            .post(app.url(&format!("/api/rooms/{room}/chat")))
            .header("X-Forwarded-For", forwarded)
            .json(&json!({"name": "Ann", "text": "hi"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), if i == 0 { 200 } else { 429 });
    }
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_cut_off() {
    let app = spawn_app(&["--header-timeout", "0.5"]).await;
    let mut socket = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    socket
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .unwrap();
    // Keep trickling header lines; the server must close the connection
    // without ever answering.
    let mut closed = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if socket.write_all(b"X-Slow: 1\r\n").await.is_err() {
            closed = true;
            break;
        }
        let mut byte = [0u8; 1];
        if let Ok(read) =
            tokio::time::timeout(Duration::from_millis(1), socket.read(&mut byte)).await
        {
            assert!(
                matches!(read, Ok(0) | Err(_)),
                "the server answered a half request"
            );
            closed = true;
            break;
        }
    }
    assert!(closed, "a slowloris client was never cut off");
    // Meanwhile everyone else is served.
    assert_eq!(app.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn a_client_trickling_its_body_gets_408() {
    let app = spawn_app(&["--body-timeout", "0.5"]).await;
    let (room, _, _) = app.create_room(json!({"control": "open"})).await;
    let mut socket = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /api/rooms/{room}/commands HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"type\""
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, socket.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"request_timeout\""), "{answer}");
}

#[tokio::test]
async fn cors_is_off_by_default_and_on_for_configured_origins() {
    let app = spawn_app(&[]).await;
    let response = app
        .client
        .get(app.url("/api/time"))
        .header("Origin", "https://party.example")
        .send()
        .await
        .unwrap();
    assert!(response
        .headers()
        .get("access-control-allow-origin")
        .is_none());

    let app = spawn_app(&["--cors-origin", "https://party.example"]).await;
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/api/rooms/x/commands"))
        .header("Origin", "https://party.example")
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://party.example"
    );
    let allowed = preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("authorization") && allowed.contains("content-type"));
    let other = app
        .client
        .get(app.url("/api/time"))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn the_page_carries_a_csp_that_allows_exactly_the_youtube_player_and_media() {
    let app = spawn_app(&[]).await;
    for path in ["/", "/r/friday"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200);
        let csp = response.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(csp.contains("default-src 'self'"), "{csp}");
        assert!(
            csp.contains("script-src 'self' https://www.youtube.com"),
            "{csp}"
        );
        assert!(csp.contains("frame-src https://www.youtube.com"), "{csp}");
        // Media elements play the server's /media/ files and any pasted http(s) URL; nothing else.
        assert!(csp.contains("media-src 'self' https: http:;"), "{csp}");
        assert_eq!(csp.matches("media-src").count(), 1, "{csp}");
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    }
}
