//! HTTPS with `--tls-cert`/`--tls-key`: HTTP/2 (and HTTP/1.1) over rustls, with
//! a certificate made at test time. Event streams over HTTP/2 follow the same
//! rules as over plain HTTP: events, resume, per-client limits, shutdown. A
//! garbage handshake, plain HTTP on the TLS port or a silent client is closed
//! and the server goes on serving.

mod common;

use std::process::Stdio;
use std::time::Duration;

use clap::Parser;
use common::tls::{spawn_tls_app, TestCerts};
use common::*;
use reqwest::{StatusCode, Version};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::Instant;

fn events_path(room: &str) -> String {
    format!("/api/rooms/{room}/events")
}

/// Opens an event stream over the app's client, asserting `200` over HTTP/2.
async fn h2_events(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> SseStream {
    let response = app.open_events(path, headers).await;
    assert_eq!(response.status(), StatusCode::OK, "GET {path}");
    assert_eq!(response.version(), Version::HTTP_2, "ALPN chose HTTP/2");
    SseStream::from_response(response)
}

/// Reads `stream` until the peer closes it (or it errors), within [`WAIT`].
/// Gives what was read.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let deadline = Instant::now() + WAIT;
    loop {
        let mut buf = [0u8; 1024];
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => panic!("the server kept the connection open; read so far: {got:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return got,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_over_http2_receives_events() {
    let certs = TestCerts::new();
    let app = spawn_tls_app(&certs, &[]).await;
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(health.version(), Version::HTTP_2);
    let (room, token) = app.video_room().await;
    let mut stream = h2_events(&app, &events_path(&room), &[]).await;
    assert_eq!(
        stream.headers["content-type"], "text/event-stream",
        "the SSE headers over HTTP/2"
    );
    assert!(
        stream.headers.get("connection").is_none(),
        "no connection-specific header over HTTP/2"
    );
    assert!(matches!(
        stream.next_item(WAIT).await,
        Some(SseItem::Retry(_))
    ));
    stream.expect_snapshot().await;
    app.command_ok(&room, Some(&token), json!({"type": "play"}))
        .await;
    let event = stream.expect_versioned().await;
    assert_eq!(event.json()["cause"], "play");
    assert_eq!(event.id_num(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_with_last_event_id_over_http2_replays_missed_events() {
    let certs = TestCerts::new();
    let app = spawn_tls_app(&certs, &[]).await;
    let (room, token) = app.video_room().await;
    let mut first = h2_events(&app, &events_path(&room), &[]).await;
    assert_eq!(first.expect_snapshot().await["version"], 1);
    drop(first);
    for position in [1.0, 2.0, 3.0] {
        app.command_ok(
            &room,
            Some(&token),
            json!({"type": "seek", "position": position}),
        )
        .await;
    }
    let mut again = h2_events(&app, &events_path(&room), &[("last-event-id", "1")]).await;
    for (id, position) in [(2, 1.0), (3, 2.0), (4, 3.0)] {
        let event = again.expect_versioned().await;
        assert_eq!(event.event, "state", "replayed, not a snapshot: {event:?}");
        assert_eq!(event.id_num(), id);
        assert_eq!(event.json()["state"]["position"].as_f64(), Some(position));
    }
    app.command_ok(&room, Some(&token), json!({"type": "play"}))
        .await;
    assert_eq!(again.expect_versioned().await.id_num(), 5);
}

/// Many streams share one HTTP/2 connection; the per-client limit counts the
/// streams, not the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_client_limit_counts_http2_streams_not_connections() {
    let certs = TestCerts::new();
    let app = spawn_tls_app(&certs, &["--max-streams-per-client", "3"]).await;
    let (room, _) = app.video_room().await;
    let mut open = Vec::new();
    for _ in 0..3 {
        let mut stream = h2_events(&app, &events_path(&room), &[]).await;
        stream.expect_snapshot().await;
        open.push(stream);
    }
    app.wait_listeners(&room, 3).await;
    let refused = app.open_events(&events_path(&room), &[]).await;
    assert_eq!(refused.version(), Version::HTTP_2);
    let headers = assert_error(refused, 429, "rate_limited").await;
    assert!(retry_after_secs(&headers) >= 1);
    // Ending one stream (the connection stays) frees one place.
    open.pop();
    app.wait_listeners(&room, 2).await;
    h2_events(&app, &events_path(&room), &[])
        .await
        .expect_snapshot()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_plain_http_on_the_tls_port_are_closed_and_serving_goes_on() {
    let certs = TestCerts::new();
    let app = spawn_tls_app(&certs, &[]).await;

    let mut garbage = TcpStream::connect(app.addr).await.unwrap();
    garbage
        .write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 0xde, 0xad, 0xbe, 0xef])
        .await
        .unwrap();
    garbage.write_all(&[0x5a; 4096]).await.unwrap();
    read_until_closed(&mut garbage).await;

    let mut plain = TcpStream::connect(app.addr).await.unwrap();
    plain
        .write_all(format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", app.addr).as_bytes())
        .await
        .unwrap();
    let answer = read_until_closed(&mut plain).await;
    assert!(
        !answer.starts_with(b"HTTP/"),
        "a plain-HTTP request gets no HTTP answer: {:?}",
        String::from_utf8_lossy(&answer)
    );

    let health = app.get("/healthz").await;
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(health.version(), Version::HTTP_2);
}

/// A client that connects and says nothing, or finishes the handshake and
/// sends no request, is cut off at the header deadline: it holds no slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_clients_on_the_tls_port_are_cut_off_at_the_header_deadline() {
    let certs = TestCerts::new();
    let app = spawn_tls_app(&certs, &["--header-timeout", "0.5"]).await;
    let mut silent = TcpStream::connect(app.addr).await.unwrap();
    read_until_closed(&mut silent).await;

    // A full handshake (ALPN h2), then nothing.
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::pem::PemObject::pem_file_iter(&certs.ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = TcpStream::connect(app.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await.expect("handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let closed = tokio::time::timeout(WAIT, async {
        let mut buf = [0u8; 256];
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "a silent TLS client is cut off");

    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_every_http2_stream_and_run_returns() {
    let certs = TestCerts::new();
    let mut app = spawn_tls_app(&certs, &["--shutdown-retry-spread", "0"]).await;
    let (room, _) = app.video_room().await;
    let mut listeners = Vec::new();
    for _ in 0..3 {
        let mut listener = h2_events(&app, &events_path(&room), &[]).await;
        listener.expect_snapshot().await;
        listeners.push(listener);
    }
    app.shutdown.cancel();
    for listener in &mut listeners {
        listener.expect_end().await;
        assert_eq!(
            listener.error, None,
            "each stream ends cleanly (END_STREAM)"
        );
    }
    let server = app.server.take().unwrap();
    let result = tokio::time::timeout(WAIT, server)
        .await
        .expect("run() returns once its streams have ended")
        .expect("server task did not panic");
    assert!(result.is_ok(), "run() ends cleanly: {result:?}");
}

/// curl, as an operator would try it: `--http2 --cacert`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_over_http2_receives_events() {
    let certs = TestCerts::new();
    let app = spawn_tls_app(&certs, &[]).await;
    let (room, token) = app.video_room().await;
    let mut curl = tokio::process::Command::new("curl")
        .args([
            "--http2",
            "--no-buffer",
            "--silent",
            "--show-error",
            "--verbose",
        ])
        .arg("--cacert")
        .arg(&certs.ca)
        .args(["--max-time", "60"])
        .arg(app.url(&events_path(&room)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("curl is installed");
    let mut lines = BufReader::new(curl.stdout.take().unwrap()).lines();
    let mut commanded = false;
    let found = tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.expect("curl output") {
            if line == "event: snapshot" && !commanded {
                commanded = true;
                app.command_ok(&room, Some(&token), json!({"type": "play"}))
                    .await;
            }
            if line.starts_with("data:") && line.contains("\"cause\":\"play\"") {
                return true;
            }
        }
        false
    })
    .await;
    curl.start_kill().unwrap();
    let output = curl.wait_with_output().await.unwrap();
    let verbose = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        found,
        Ok(true),
        "curl received the event; curl said:\n{verbose}"
    );
    assert!(
        verbose.contains("< HTTP/2 200"),
        "curl spoke HTTP/2:\n{verbose}"
    );
}

#[tokio::test]
async fn tls_flags_go_together_and_bad_files_are_named() {
    let one = syncroom::Config::try_parse_from(["syncroom", "--tls-cert", "/x.pem"]);
    let error = one.expect_err("--tls-cert alone is refused").to_string();
    assert!(error.contains("--tls-key"), "{error}");
    let other = syncroom::Config::try_parse_from(["syncroom", "--tls-key", "/x.pem"]);
    assert!(other
        .expect_err("--tls-key alone is refused")
        .to_string()
        .contains("--tls-cert"));

    let certs = TestCerts::new();
    let missing = certs.dir.0.join("missing.pem");
    let not_pem = certs.dir.0.join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let other_key = certs.dir.0.join("other-key.pem");
    std::fs::write(
        &other_key,
        rcgen::KeyPair::generate().unwrap().serialize_pem(),
    )
    .unwrap();
    let cases = [
        (&missing, &certs.key, &missing),
        (&certs.cert, &missing, &missing),
        (&not_pem, &certs.key, &not_pem),
        (&certs.cert, &not_pem, &not_pem),
        (&certs.cert, &other_key, &other_key),
    ];
    for (cert, key, named) in cases {
        let config = syncroom::Config::try_parse_from([
            "syncroom".as_ref(),
            "--tls-cert".as_ref(),
            cert.as_os_str(),
            "--tls-key".as_ref(),
            key.as_os_str(),
        ])
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let shutdown = tokio_util::sync::CancellationToken::new();
        let result = tokio::time::timeout(
            Duration::from_secs(10),
            syncroom::run(listener, config, shutdown.clone()),
        )
        .await
        .expect("a bad TLS file fails start-up at once");
        let error = result.expect_err("refused").to_string();
        assert!(
            error.contains(&named.display().to_string()),
            "the error names {}: {error}",
            named.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_stream_gets_keepalive_comments() {
    let certs = TestCerts::new();
    let app = spawn_tls_app(&certs, &["--keepalive", "0.2"]).await;
    let (room, _) = app.video_room().await;
    let mut stream = h2_events(&app, &events_path(&room), &[]).await;
    stream.expect_snapshot().await;
    let deadline = Instant::now() + WAIT;
    loop {
        match stream.next_item_until(deadline).await {
            Ok(Some(SseItem::Comment(comment))) => {
                assert_eq!(comment, "keepalive");
                break;
            }
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream ended instead of keeping alive"),
            Err(()) => panic!("no keepalive within {WAIT:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_stream_ends_at_its_maximum_age_and_resuming_loses_nothing() {
    let certs = TestCerts::new();
    let app = spawn_tls_app(&certs, &["--max-stream-age", "1"]).await;
    let (room, token) = app.video_room().await;
    let mut stream = h2_events(&app, &events_path(&room), &[]).await;
    stream.expect_snapshot().await;
    stream.expect_end().await;
    assert_eq!(stream.error, None, "the stream ends cleanly at its age");
    app.command_ok(&room, Some(&token), json!({"type": "play"}))
        .await;
    let mut again = h2_events(&app, &events_path(&room), &[("last-event-id", "1")]).await;
    let event = again.expect_versioned().await;
    assert_eq!(event.event, "state", "the missed event, not a snapshot");
    assert_eq!(event.id_num(), 2);
}
