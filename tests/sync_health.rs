//! Sync health (docs/API.md "Sync health"): drift reports bound to a live stream
//! by its token, the room's `sync` summary, the `sync` event and the metric.

mod common;

use std::time::Duration;

use common::{assert_error, spawn_app, SseItem, SseStream, TestApp, WAIT};
use serde_json::{json, Value};
use tokio::time::Instant;

/// The stream token of `stream` (from its `hello`, which comes before the snapshot).
pub async fn stream_token(stream: &mut SseStream) -> String {
    loop {
        match stream.next_item(WAIT).await {
            Some(SseItem::Hello(hello)) => {
                return hello["stream_token"].as_str().expect("a token").to_owned()
            }
            Some(_) => continue,
            None => panic!("the stream ended before its hello"),
        }
    }
}

/// Opens a stream of `room` and gives it with its token.
async fn listen(app: &TestApp, room: &str) -> (SseStream, String) {
    let mut stream = app.events(room).await;
    let token = stream_token(&mut stream).await;
    (stream, token)
}

fn report(token: &str, p50: f64, p95: f64) -> Value {
    json!({"stream_token": token, "drift_p50_ms": p50, "drift_p95_ms": p95, "player": "media"})
}

async fn post_sync(app: &TestApp, room: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/api/rooms/{room}/sync")))
        .json(body)
        .send()
        .await
        .expect("sync request")
}

async fn sync_ok(app: &TestApp, room: &str, body: &Value) -> Value {
    let response = post_sync(app, room, body).await;
    assert_eq!(response.status(), 200, "report refused");
    response.json().await.expect("json")
}

/// Polls `GET /api/rooms/{room}` until its `sync` is `wanted`.
async fn wait_sync(app: &TestApp, room: &str, wanted: &Value) {
    let deadline = Instant::now() + WAIT;
    loop {
        let sync = app.get_room(room).await["sync"].clone();
        if &sync == wanted {
            return;
        }
        assert!(Instant::now() < deadline, "sync is {sync}, wanted {wanted}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn forty_listeners_behind_one_address_are_forty_reporters() {
    let app = spawn_app(&[]).await;
    let (room, _) = app.video_room().await;
    let mut streams = Vec::new();
    for i in 0..40 {
        let (stream, token) = listen(&app, &room).await;
        // Three of them drift more than 50 ms.
        let p95 = if i < 3 {
            120.0
        } else {
            8.0 + f64::from(i) / 10.0
        };
        let answer = sync_ok(&app, &room, &report(&token, 2.0, p95)).await;
        assert_eq!(answer["report_every_ms"], 5000);
        assert_eq!(answer["sync"]["reporting"], i + 1);
        streams.push(stream);
    }
    let room_now = app.get_room(&room).await;
    // 40 reporters: the 38th smallest p95 (nearest rank) is the room's.
    assert_eq!(
        room_now["sync"],
        json!({"reporting": 40, "in_sync": 37, "drift_p95_ms": 120.0, "behind": [
            {"name": null, "drift_p95_ms": 120.0, "buffering": false},
            {"name": null, "drift_p95_ms": 120.0, "buffering": false},
            {"name": null, "drift_p95_ms": 120.0, "buffering": false},
        ]})
    );
    // A late joiner's snapshot carries it too.
    let (mut late, _) = listen(&app, &room).await;
    assert_eq!(late.expect_snapshot().await["sync"]["in_sync"], 37);
}

#[tokio::test]
async fn a_stream_has_one_report_and_a_new_one_replaces_it() {
    let app = spawn_app(&["--sync-report-interval", "1"]).await;
    let (room, _) = app.video_room().await;
    let (_stream, token) = listen(&app, &room).await;
    sync_ok(&app, &room, &report(&token, 10.0, 80.0)).await;
    // Sooner than half an interval: 429, and nothing changed.
    let headers = assert_error(
        post_sync(&app, &room, &report(&token, 1.0, 2.0)).await,
        429,
        "rate_limited",
    )
    .await;
    assert_eq!(common::retry_after_secs(&headers), 1);
    wait_sync(
        &app,
        &room,
        &json!({"reporting": 1, "in_sync": 0, "drift_p95_ms": 80.0,
            "behind": [{"name": null, "drift_p95_ms": 80.0, "buffering": false}]}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let answer = sync_ok(&app, &room, &report(&token, 1.0, 2.0)).await;
    assert_eq!(
        answer["sync"],
        json!({"reporting": 1, "in_sync": 1, "drift_p95_ms": 2.0, "behind": []})
    );
}

#[tokio::test]
async fn reports_expire_after_three_intervals_and_a_closed_stream_stops_counting() {
    let app = spawn_app(&["--sync-report-interval", "1"]).await;
    let (room, _) = app.video_room().await;
    let (stream_a, token_a) = listen(&app, &room).await;
    let (_stream_b, token_b) = listen(&app, &room).await;
    sync_ok(&app, &room, &report(&token_a, 1.0, 5.0)).await;
    sync_ok(&app, &room, &report(&token_b, 1.0, 9.0)).await;
    // Stream A closes: its report stops counting (before it would expire).
    drop(stream_a);
    wait_sync(
        &app,
        &room,
        &json!({"reporting": 1, "in_sync": 1, "drift_p95_ms": 9.0, "behind": []}),
    )
    .await;
    // B stops reporting: after three intervals nobody counts.
    wait_sync(
        &app,
        &room,
        &json!({"reporting": 0, "in_sync": 0, "drift_p95_ms": null, "behind": []}),
    )
    .await;
}

/// The host sees who is behind: by the name each page reports, stalled ones
/// first, then the largest drift; at most five.
#[tokio::test]
async fn the_summary_names_who_is_behind_buffering_first() {
    let app = spawn_app(&[]).await;
    let (room, _) = app.video_room().await;
    let mut streams = Vec::new();
    // Seven listeners: Ann in step, Bo stalled (buffering), five more drifting.
    let reports = [
        ("Ann", 4.0, false),
        ("Bo", 12.0, true),
        ("  Cy  ", 300.0, false),
        ("Di", 90.0, false),
        ("Ed", 70.0, false),
        ("Fay", 60.0, false),
        ("Gus", 55.0, false),
    ];
    for (name, p95, buffering) in reports {
        let (stream, token) = listen(&app, &room).await;
        let mut body = report(&token, 1.0, p95);
        body["name"] = json!(name);
        body["buffering"] = json!(buffering);
        sync_ok(&app, &room, &body).await;
        streams.push(stream);
    }
    // A nameless one, in step and not buffering (`buffering: false` is the default).
    let (stream, token) = listen(&app, &room).await;
    sync_ok(&app, &room, &report(&token, 1.0, 3.0)).await;
    streams.push(stream);
    assert_eq!(
        app.get_room(&room).await["sync"],
        json!({"reporting": 8, "in_sync": 2, "drift_p95_ms": 300.0, "behind": [
            {"name": "Bo", "drift_p95_ms": 12.0, "buffering": true},
            {"name": "Cy", "drift_p95_ms": 300.0, "buffering": false},
            {"name": "Di", "drift_p95_ms": 90.0, "buffering": false},
            {"name": "Ed", "drift_p95_ms": 70.0, "buffering": false},
            {"name": "Fay", "drift_p95_ms": 60.0, "buffering": false},
        ]})
    );
    // The drift histogram is of playing players: Bo's report is not in it.
    let metrics = app.get("/metrics").await.text().await.expect("text");
    assert!(
        metrics.contains("syncroom_listener_drift_seconds_count{player=\"media\"} 7"),
        "{metrics}"
    );
}

#[tokio::test]
async fn pages_hear_the_summary_as_an_id_less_sync_event() {
    let app = spawn_app(&[]).await;
    let (room, _) = app.video_room().await;
    let (mut stream, token) = listen(&app, &room).await;
    assert_eq!(
        stream.expect_snapshot().await["sync"],
        json!({"reporting": 0, "in_sync": 0, "drift_p95_ms": null, "behind": []})
    );
    sync_ok(&app, &room, &report(&token, 3.0, 7.5)).await;
    let event = loop {
        let event = stream.expect_event().await;
        if event.event == "sync" {
            break event;
        }
        assert_eq!(event.event, "presence", "unexpected {event:?}");
    };
    assert_eq!(event.id, None, "sync events carry no id");
    assert_eq!(
        event.json(),
        json!({"reporting": 1, "in_sync": 1, "drift_p95_ms": 7.5, "behind": []})
    );
}

#[tokio::test]
async fn the_drift_histogram_counts_each_report_by_player() {
    let app = spawn_app(&[]).await;
    let (room, _) = app.video_room().await;
    let metrics = app.get("/metrics").await.text().await.expect("text");
    assert!(metrics.contains("# TYPE syncroom_listener_drift_seconds histogram"));
    let (_stream, token) = listen(&app, &room).await;
    let mut body = report(&token, 3.0, 30.0);
    body["player"] = json!("youtube");
    sync_ok(&app, &room, &body).await;
    let metrics = app.get("/metrics").await.text().await.expect("text");
    assert!(
        metrics.contains("syncroom_listener_drift_seconds_count{player=\"youtube\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("syncroom_listener_drift_seconds_sum{player=\"youtube\"} 0.03"));
}

#[tokio::test]
async fn every_malformed_report_is_a_json_error_that_changes_nothing() {
    let app = spawn_app(&[]).await;
    let (room, _) = app.video_room().await;
    let (other_room, _) = app.video_room().await;
    let (_stream, token) = listen(&app, &room).await;
    let (_other_stream, other_token) = listen(&app, &other_room).await;
    let good = report(&token, 1.0, 2.0);
    let with = |field: &str, value: Value| {
        let mut body = good.clone();
        body[field] = value;
        body
    };
    let without = |field: &str| {
        let mut body = good.clone();
        body.as_object_mut().unwrap().remove(field);
        body
    };
    let forged = {
        let mut forged = token.clone();
        let last = forged.pop().unwrap();
        forged.push(if last == '0' { '1' } else { '0' });
        forged
    };
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        ("not an object", json!([1, 2]), 400, "invalid_json"),
        ("null", json!(null), 400, "invalid_json"),
        (
            "unknown field",
            with("extra", json!(1)),
            400,
            "invalid_command",
        ),
        ("no token", without("stream_token"), 400, "invalid_command"),
        ("no p95", without("drift_p95_ms"), 400, "invalid_command"),
        ("no player", without("player"), 400, "invalid_command"),
        (
            "token not a string",
            with("stream_token", json!(5)),
            400,
            "invalid_json",
        ),
        (
            "p50 a string",
            with("drift_p50_ms", json!("3")),
            400,
            "invalid_json",
        ),
        (
            "p95 null",
            with("drift_p95_ms", json!(null)),
            400,
            "invalid_json",
        ),
        (
            "unknown player",
            with("player", json!("vlc")),
            400,
            "invalid_value",
        ),
        (
            "negative drift",
            with("drift_p50_ms", json!(-1.0)),
            400,
            "invalid_value",
        ),
        (
            "drift over ten minutes",
            with("drift_p95_ms", json!(600_001.0)),
            400,
            "invalid_value",
        ),
        (
            "p50 above p95",
            with("drift_p50_ms", json!(5.0)),
            400,
            "invalid_value",
        ),
        (
            "buffering not a boolean",
            with("buffering", json!("yes")),
            400,
            "invalid_json",
        ),
        ("name a number", with("name", json!(7)), 400, "invalid_json"),
        (
            "blank name",
            with("name", json!("  ")),
            400,
            "invalid_value",
        ),
        (
            "name over 64 characters",
            with("name", json!("é".repeat(65))),
            400,
            "invalid_value",
        ),
        (
            "name with a control character",
            with("name", json!("Ann\u{7}")),
            400,
            "invalid_value",
        ),
        (
            "empty token",
            with("stream_token", json!("")),
            401,
            "unauthorized",
        ),
        (
            "garbage token",
            with("stream_token", json!("abc")),
            403,
            "forbidden",
        ),
        (
            "forged token",
            with("stream_token", json!(forged)),
            403,
            "forbidden",
        ),
        (
            "another room's token",
            with("stream_token", json!(other_token)),
            403,
            "forbidden",
        ),
        (
            "token too long",
            with("stream_token", json!("a".repeat(2000))),
            413,
            "payload_too_large",
        ),
    ];
    for (name, body, status, code) in cases {
        let response = post_sync(&app, &room, &body).await;
        assert_eq!(response.status(), status, "{name}");
        assert_error(response, status, code).await;
    }
    // Not JSON at all, and JSON without its content type.
    let raw = |body: &'static str, content_type: &'static str| {
        app.client
            .post(app.url(&format!("/api/rooms/{room}/sync")))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    assert_error(
        raw("{", "application/json").await.unwrap(),
        400,
        "invalid_json",
    )
    .await;
    assert_error(
        raw("", "application/json").await.unwrap(),
        400,
        "invalid_json",
    )
    .await;
    assert_error(
        raw("{}", "text/plain").await.unwrap(),
        415,
        "unsupported_media_type",
    )
    .await;
    assert_error(
        post_sync(&app, "no-such-room", &good).await,
        404,
        "room_not_found",
    )
    .await;
    // Nothing of that counted, anywhere.
    assert_eq!(
        app.get_room(&room).await["sync"],
        json!({"reporting": 0, "in_sync": 0, "drift_p95_ms": null, "behind": []})
    );
    let metrics = app.get("/metrics").await.text().await.expect("text");
    assert!(
        !metrics.contains("syncroom_listener_drift_seconds_count"),
        "{metrics}"
    );
    // And the good report still goes through.
    sync_ok(&app, &room, &good).await;
}
