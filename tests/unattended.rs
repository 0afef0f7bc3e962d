//! A room that runs itself: a host room whose queued items have durations
//! plays all of them with no page at the controls, then pauses at the end,
//! on one node and on three nodes sharing a real `redis-server`; also when the
//! queue is a YouTube playlist whose titles and durations come from the Data
//! API (a stand-in on 127.0.0.1 in the API's own format).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::Query;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use common::*;
use serde_json::{json, Value};
use tokio::time::Instant;

/// Three one-second items, added at once by "Ann".
fn three_items() -> Value {
    json!({"type": "queue_add", "name": "Ann", "items": [
        {"video_id": "aaaaaaaaaaa", "title": "One", "duration": 1},
        {"video_id": "bbbbbbbbbbb", "title": "Two", "duration": 1},
        {"media_url": "https://a.example/c.mp3", "title": "Three", "duration": 1},
    ]})
}

/// The host queues three items and presses `next` once (through the nodes in
/// turn); a plain listener on the last node, which never sends anything,
/// sees the room play them in order and pause at the end of the last.
async fn plays_through(nodes: &[TestApp], items: Value) {
    let (room, token, _) = nodes[0].create_room(json!({})).await;
    let last = &nodes[nodes.len() - 1];
    let mut stream = last.events(&room).await;
    stream.expect_snapshot().await;
    let added = nodes[1 % nodes.len()]
        .command_ok(&room, Some(&token), items)
        .await;
    assert_eq!(added["version"], 2, "one version for three items");
    let queue = stream.expect_versioned().await;
    assert_eq!(queue.event, "queue");
    let queue = queue.json();
    assert_eq!(queue["op"], "add");
    assert_eq!(queue["items"].as_array().map(Vec::len), Some(3));
    assert_eq!(queue["items"][1]["added_by"], "Ann");
    // Durations the server looks up after answering (YouTube items) arrive
    // as `queue` updates; the room plays on by itself only once it knows them.
    let deadline = Instant::now() + WAIT;
    loop {
        let seen = nodes[0].get_room(&room).await;
        let items = seen["queue"].as_array().cloned().unwrap_or_default();
        if items.iter().all(|item| item["duration"] == 1.0) {
            break;
        }
        assert!(Instant::now() < deadline, "durations never came: {seen}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    nodes[2 % nodes.len()]
        .command_ok(&room, Some(&token), json!({"type": "next"}))
        .await;
    let deadline = Instant::now() + WAIT;
    let mut played = Vec::new();
    loop {
        let event = stream.expect_versioned().await;
        let data = event.json();
        if event.event == "state" && data["cause"] == "next" {
            assert_eq!(data["state"]["duration"], 1.0, "{data}");
            played.push(data["state"]["title"].as_str().unwrap_or("?").to_owned());
        }
        if event.event == "state" && data["cause"] == "ended" {
            assert_eq!(data["state"]["paused"], true);
            assert_eq!(data["state"]["position"], 1.0);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the queue never played out: {played:?}"
        );
    }
    assert_eq!(played, ["One", "Two", "Three"]);
    stream.expect_quiet(QUIET).await;
    for node in nodes {
        let seen = node.get_room(&room).await;
        assert_eq!(seen["queue"], json!([]));
        assert_eq!(seen["state"]["title"], "Three");
        assert_eq!(seen["state"]["paused"], true);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_room_plays_its_queue_through_by_itself() {
    let app = spawn_app(&[]).await;
    plays_through(std::slice::from_ref(&app), three_items()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_room_plays_its_queue_through_by_itself_over_three_nodes() {
    let redis = Redis::start().await;
    let nodes = three_nodes(&redis, &[]).await;
    plays_through(&nodes, three_items()).await;
}

async fn three_nodes(redis: &Redis, args: &[&str]) -> Vec<TestApp> {
    let url = redis.url();
    let mut nodes = Vec::new();
    for _ in 0..3 {
        let mut argv = vec!["--redis", url.as_str()];
        argv.extend_from_slice(args);
        let node = spawn_app(&argv).await;
        let deadline = Instant::now() + WAIT;
        while node.get("/readyz").await.status() != 200 {
            assert!(Instant::now() < deadline, "node never became ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        nodes.push(node);
    }
    nodes
}

const API_KEY: &str = "stand-in-key";
/// The stand-in's one playlist: three one-second videos, titled One, Two, Three.
const PLAYLIST: &str = "PLthreeSongs";
const PLAYLIST_VIDEOS: [(&str, &str); 3] = [
    ("aaaaaaaaaaa", "One"),
    ("bbbbbbbbbbb", "Two"),
    ("ccccccccccc", "Three"),
];

/// A YouTube Data API v3 stand-in holding [`PLAYLIST`]: `playlistItems` (one
/// page) and `videos` (snippet and contentDetails), each only with the key.
/// Answers the base URL for `--youtube-api-url`.
async fn youtube_stand_in() -> String {
    fn keyed(query: &HashMap<String, String>) -> bool {
        query.get("key").map(String::as_str) == Some(API_KEY)
    }
    let playlist_items = |Query(query): Query<HashMap<String, String>>| async move {
        if !keyed(&query) || query.get("playlistId").map(String::as_str) != Some(PLAYLIST) {
            let error = json!({"error": {"code": 404, "message": "not found",
                "errors": [{"reason": "playlistNotFound"}]}});
            return (StatusCode::NOT_FOUND, Json(error));
        }
        let items: Vec<Value> = PLAYLIST_VIDEOS
            .iter()
            .map(|(id, _)| json!({"kind": "youtube#playlistItem", "contentDetails": {"videoId": id}}))
            .collect();
        let page = json!({"kind": "youtube#playlistItemListResponse", "items": items,
                          "pageInfo": {"totalResults": items.len(), "resultsPerPage": 50}});
        (StatusCode::OK, Json(page))
    };
    let videos = |Query(query): Query<HashMap<String, String>>| async move {
        let asked = if keyed(&query) {
            query.get("id").cloned().unwrap_or_default()
        } else {
            String::new()
        };
        let items: Vec<Value> = PLAYLIST_VIDEOS
            .iter()
            .filter(|(id, _)| asked.split(',').any(|a| a == *id))
            .map(|(id, title)| {
                json!({"kind": "youtube#video", "id": id,
                "snippet": {"title": title, "channelTitle": "The Band"},
                "contentDetails": {"duration": "PT1S"}})
            })
            .collect();
        Json(json!({"kind": "youtube#videoListResponse", "items": items}))
    };
    let router = Router::new()
        .route("/youtube/v3/playlistItems", get(playlist_items))
        .route("/youtube/v3/videos", get(videos));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the stand-in");
    let addr = listener.local_addr().expect("stand-in address");
    tokio::spawn(async move {
        axum::serve(listener, router)
            .await
            .expect("the stand-in serves");
    });
    format!("http://{addr}/youtube/v3")
}

/// The flags that point a server at the stand-in API at `api`.
fn api_flags(api: &str) -> [&str; 4] {
    ["--youtube-api-key", API_KEY, "--youtube-api-url", api]
}

/// Three YouTube items queued with no duration: the server asks the API
/// after answering, and the room then plays them through by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn youtube_items_play_through_with_durations_from_the_api() {
    let api = youtube_stand_in().await;
    let args = api_flags(&api);
    let app = spawn_app(&args).await;
    let items: Vec<Value> = PLAYLIST_VIDEOS
        .iter()
        .map(|(id, _)| json!({ "video_id": id }))
        .collect();
    let add = json!({"type": "queue_add", "name": "Ann", "items": items});
    plays_through(std::slice::from_ref(&app), add).await;
}

/// A room filled with a playlist plays through it with nobody at the
/// controls: titles, the channel as `artist` and durations come from the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_filled_with_a_playlist_plays_through_it_by_itself() {
    let api = youtube_stand_in().await;
    let args = api_flags(&api);
    let app = spawn_app(&args).await;
    let playlist = json!({"type": "queue_add", "name": "Ann", "playlist_id": PLAYLIST});
    plays_through(std::slice::from_ref(&app), playlist).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_filled_with_a_playlist_plays_through_it_by_itself_over_three_nodes() {
    let api = youtube_stand_in().await;
    let args = api_flags(&api);
    let redis = Redis::start().await;
    let nodes = three_nodes(&redis, &args).await;
    let playlist = json!({"type": "queue_add", "name": "Ann", "playlist_id": PLAYLIST});
    plays_through(&nodes, playlist).await;
}

/// The same with three one-second WAV files of `--media-dir`, queued with no
/// duration: the server reads each file's length itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_files_play_through_with_durations_the_server_reads() {
    let dir = wav_dir();
    let media_dir = dir.to_string_lossy().into_owned();
    let app = spawn_app(&["--media-dir", media_dir.as_str()]).await;
    let items = json!({"type": "queue_add", "name": "Ann", "items": [
        {"media_url": "/media/one.wav", "title": "One"},
        {"media_url": "/media/two.wav", "title": "Two"},
        {"media_url": "/media/three.wav", "title": "Three"},
    ]});
    plays_through(std::slice::from_ref(&app), items).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fresh folder of three one-second WAV files: one, two and three.wav.
fn wav_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "syncroom-unattended-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::create_dir_all(&dir).expect("create the media folder");
    for name in ["one", "two", "three"] {
        std::fs::write(dir.join(format!("{name}.wav")), tone_wav(1.0)).expect("write a WAV");
    }
    dir
}

/// `load` of a `/media/` file: the server reads its length before the room
/// applies the command, so the answer and the `state` event carry it; what
/// the host gave (a title) wins over the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_of_a_media_file_carries_the_length_the_server_read() {
    let dir = wav_dir();
    let media_dir = dir.to_string_lossy().into_owned();
    let app = spawn_app(&["--media-dir", media_dir.as_str()]).await;
    let (room, token, _) = app.create_room(json!({})).await;
    let mut stream = app.events(&room).await;
    stream.expect_snapshot().await;
    let load =
        json!({"type": "load", "media_url": "/media/two.wav", "paused": true, "title": "Mine"});
    let answer = app.command_ok(&room, Some(&token), load).await;
    assert_eq!(answer["room"]["state"]["duration"], 1.0, "{answer}");
    let event = stream.expect_versioned().await;
    let data = event.json();
    assert_eq!(
        (event.event.as_str(), &data["cause"]),
        ("state", &json!("load"))
    );
    assert_eq!(data["state"]["duration"], 1.0, "{data}");
    assert_eq!(data["state"]["title"], "Mine", "{data}");
    stream.expect_quiet(QUIET).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// `load` of a YouTube video with the API key: answered at once as given, then
/// one `state` event, cause `duration`, with what the API said of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_of_a_youtube_video_learns_its_details_after_the_answer() {
    let api = youtube_stand_in().await;
    let args = api_flags(&api);
    let app = spawn_app(&args).await;
    let (room, token, _) = app.create_room(json!({})).await;
    let mut stream = app.events(&room).await;
    stream.expect_snapshot().await;
    let load = json!({"type": "load", "video_id": PLAYLIST_VIDEOS[1].0, "paused": true});
    let answer = app.command_ok(&room, Some(&token), load).await;
    assert_eq!(answer["version"], 2);
    assert_eq!(stream.expect_versioned().await.json()["cause"], "load");
    let event = stream.expect_versioned().await;
    let data = event.json();
    assert_eq!(
        (event.event.as_str(), &data["cause"]),
        ("state", &json!("duration"))
    );
    assert_eq!(data["version"], 3);
    assert_eq!(data["state"]["duration"], 1.0, "{data}");
    assert_eq!(data["state"]["title"], PLAYLIST_VIDEOS[1].1, "{data}");
    assert_eq!(data["state"]["artist"], "The Band", "{data}");
    stream.expect_quiet(QUIET).await;
}

/// The bytes of a mono 16-bit PCM WAV file of `seconds` (8 kHz, silence).
fn tone_wav(seconds: f64) -> Vec<u8> {
    const RATE: u32 = 8000;
    let samples = (seconds * f64::from(RATE)).round() as u32;
    let data_len = samples * 2;
    let mut wav = Vec::with_capacity(44 + data_len as usize);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&RATE.to_le_bytes());
    wav.extend_from_slice(&(RATE * 2).to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    wav.resize(44 + data_len as usize, 0);
    wav
}

/// What `queue_add` refuses over HTTP, and how it says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_add_refusals_over_http() {
    let app = spawn_app(&[]).await;
    let (room, token, _) = app.create_room(json!({})).await;
    let cases = [
        (
            json!({"type": "queue_add", "items": [{"video_id": "aaaaaaaaaaa"}, {"video_id": "nope"}]}),
            "invalid_value",
            "items[1]: ",
        ),
        (
            json!({"type": "queue_add", "playlist_id": "PLx"}),
            "invalid_command",
            "--youtube-api-key",
        ),
        (
            json!({"type": "queue_add", "items": [{"video_id": "aaaaaaaaaaa"}], "title": "x"}),
            "invalid_value",
            "cannot be combined",
        ),
        (
            json!({"type": "queue_mode", "queue_mode": "random"}),
            "invalid_value",
            "queue_mode",
        ),
    ];
    for (body, code, message) in cases {
        let answer = app.command(&room, Some(&token), body.clone()).await;
        let status = answer.status().as_u16();
        let error: Value = answer.json().await.expect("json");
        assert_eq!(status, 400, "{body}: {error}");
        assert_eq!(error["error"]["code"], code, "{body}: {error}");
        let text = error["error"]["message"].as_str().unwrap_or_default();
        assert!(text.contains(message), "{body}: {error}");
    }
    assert_eq!(app.get_room(&room).await["version"], 1, "nothing changed");
    let mode = app
        .command_ok(
            &room,
            Some(&token),
            json!({"type": "queue_mode", "queue_mode": "shuffle"}),
        )
        .await;
    assert_eq!(mode["room"]["queue_mode"], "shuffle");
}
