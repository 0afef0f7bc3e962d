//! The limits the server and the page share have one source, `limits.json`:
//! `build.rs` writes them into the server's `room::limits` and into
//! `clients/js/limits.js`, the module the page and the client package import.
//! These tests read the module as the page gets it (over HTTP, from the server
//! it is embedded in) and hold the server to every value in it.

mod common;

use std::collections::BTreeMap;

use common::{assert_error, spawn_app, TestApp};
use serde_json::{json, Value};
use syncroom::room::limits;

/// `export const NAME = value;` lines of the served module, by name.
fn exported(module: &str) -> BTreeMap<String, f64> {
    module
        .lines()
        .filter_map(|line| line.strip_prefix("export const "))
        .map(|rest| {
            let (name, value) = rest
                .trim_end_matches(';')
                .split_once(" = ")
                .unwrap_or_else(|| panic!("`export const NAME = value;`: {rest}"));
            let value: f64 = value.parse().unwrap_or_else(|e| panic!("{name}: {e}"));
            (name.to_owned(), value)
        })
        .collect()
}

async fn served(app: &TestApp, path: &str) -> String {
    let response = app.get(path).await;
    assert_eq!(response.status(), 200, "{path}");
    response.text().await.expect("a text body")
}

#[tokio::test]
async fn the_page_imports_the_limits_the_server_was_built_with() {
    let app = spawn_app(&[]).await;
    let module = served(&app, "/client/limits.js").await;
    // What the server embeds is what build.rs last wrote (nobody edited it by hand).
    let on_disk =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/clients/js/limits.js"))
            .expect("clients/js/limits.js");
    assert_eq!(module, on_disk);

    let server = BTreeMap::from([
        ("MIN_RATE".to_owned(), limits::MIN_RATE),
        ("MAX_RATE".to_owned(), limits::MAX_RATE),
        ("MAX_TITLE_CHARS".to_owned(), limits::MAX_TITLE_CHARS as f64),
        (
            "MAX_ROOM_NAME_CHARS".to_owned(),
            limits::MAX_ROOM_NAME_CHARS as f64,
        ),
        (
            "MAX_ROOM_ID_CHARS".to_owned(),
            limits::MAX_ROOM_ID_CHARS as f64,
        ),
        (
            "MAX_CHAT_NAME_CHARS".to_owned(),
            limits::MAX_CHAT_NAME_CHARS as f64,
        ),
        (
            "MAX_CHAT_TEXT_CHARS".to_owned(),
            limits::MAX_CHAT_TEXT_CHARS as f64,
        ),
        (
            "MAX_ITEMS_PER_ADD".to_owned(),
            limits::MAX_ITEMS_PER_ADD as f64,
        ),
        ("IN_SYNC_MS".to_owned(), limits::IN_SYNC_MS),
        ("MAX_DRIFT_MS".to_owned(), limits::MAX_DRIFT_MS),
        (
            "MIN_SYNC_REPORT_INTERVAL_MS".to_owned(),
            limits::MIN_SYNC_REPORT_INTERVAL_MS as f64,
        ),
        (
            "MAX_SYNC_REPORT_INTERVAL_MS".to_owned(),
            limits::MAX_SYNC_REPORT_INTERVAL_MS as f64,
        ),
    ]);
    assert_eq!(exported(&module), server);

    // The rules that use them read them from there, not from copies.
    let page = served(&app, "/static/app.js").await;
    assert!(
        page.contains("from '/client/limits.js'"),
        "app.js imports the limits"
    );
    for (path, user) in [
        ("/client/sync-core.js", "MIN_RATE"),
        ("/client/sync-report.js", "MAX_DRIFT_MS"),
    ] {
        let text = served(&app, path).await;
        assert!(
            text.contains("from './limits.js'"),
            "{path} imports the limits"
        );
        assert!(
            !text.contains(&format!("const {user} =")),
            "{path} keeps no copy of {user}"
        );
    }
}

#[tokio::test]
async fn the_server_takes_what_the_page_may_send_and_refuses_one_past_it() {
    let app = spawn_app(&[]).await;
    let module = served(&app, "/client/limits.js").await;
    let limit = |name: &str| exported(&module)[name];
    let (room, token) = app.video_room().await;

    for rate in [limit("MIN_RATE"), limit("MAX_RATE")] {
        app.command_ok(&room, Some(&token), json!({"type": "rate", "rate": rate}))
            .await;
    }
    for rate in [limit("MIN_RATE") - 0.01, limit("MAX_RATE") + 0.01] {
        let response = app
            .command(&room, Some(&token), json!({"type": "rate", "rate": rate}))
            .await;
        assert_error(response, 400, "invalid_value").await;
    }

    let title = |chars: f64| "é".repeat(chars as usize);
    let add =
        |title: String| json!({"type": "queue_add", "video_id": "9bZkp7q19f0", "title": title});
    app.command_ok(&room, Some(&token), add(title(limit("MAX_TITLE_CHARS"))))
        .await;
    let response = app
        .command(
            &room,
            Some(&token),
            add(title(limit("MAX_TITLE_CHARS") + 1.0)),
        )
        .await;
    assert_error(response, 400, "invalid_value").await;

    let name = |chars: f64| Value::String("n".repeat(chars as usize));
    app.create_room(json!({"name": name(limit("MAX_ROOM_NAME_CHARS"))}))
        .await;
    let response = app
        .client
        .post(app.url("/api/rooms"))
        .json(&json!({"name": name(limit("MAX_ROOM_NAME_CHARS") + 1.0)}))
        .send()
        .await
        .expect("POST /api/rooms");
    assert_error(response, 400, "invalid_value").await;
}
