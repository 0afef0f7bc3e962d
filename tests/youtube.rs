//! The YouTube Data API v3 client (`--youtube-api-key`), against a stand-in
//! that answers on 127.0.0.1 in the API's own format: `videos` with parts
//! `snippet,contentDetails`, `playlistItems` page by page (`maxResults`,
//! `pageToken`, `nextPageToken`), and its error bodies (`403 quotaExceeded`,
//! `400 keyInvalid`, `404 playlistNotFound`).

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use syncroom::config::ApiKey;
use syncroom::metadata::{ItemInfo, ItemSource, Metadata, PlaylistError, YouTube, YouTubeError};

const KEY: &str = "test-key-0123";
/// A key the stand-in says has spent its quota.
const SPENT_KEY: &str = "spent-key-4567";
/// The playlist the stand-in holds: [`PLAYLIST_LEN`] videos, one of them deleted.
const PLAYLIST: &str = "PLstandin";
const PLAYLIST_LEN: usize = 120;
/// The deleted video's place in the playlist; `videos` does not know it.
const GONE_AT: usize = 7;
const GONE: &str = "gone0000000";

/// Every request the stand-in took: its method and query.
type Log = Arc<Mutex<Vec<(String, HashMap<String, String>)>>>;

struct StandIn {
    api: url::Url,
    log: Log,
    _server: tokio::task::JoinHandle<()>,
}

impl StandIn {
    fn requests(&self, method: &str) -> Vec<HashMap<String, String>> {
        self.log
            .lock()
            .expect("log")
            .iter()
            .filter(|(name, _)| name == method)
            .map(|(_, query)| query.clone())
            .collect()
    }

    fn client(&self, key: &str) -> YouTube {
        YouTube::new(self.api.clone(), ApiKey::new(key.to_owned())).expect("client")
    }
}

fn playlist_video(index: usize) -> String {
    if index == GONE_AT {
        GONE.to_owned()
    } else {
        format!("vid{index:08}")
    }
}

/// The API's error body.
fn api_error(status: StatusCode, reason: &str, message: &str) -> Response {
    let body = json!({"error": {
        "code": status.as_u16(),
        "message": message,
        "errors": [{"message": message, "domain": "youtube.test", "reason": reason}],
    }});
    (status, Json(body)).into_response()
}

/// What every request must carry: the API's refusal when it does not carry a
/// usable key, `None` when it does.
fn refuse_key(query: &HashMap<String, String>) -> Option<Response> {
    match query.get("key").map(String::as_str) {
        Some(KEY) => None,
        Some(SPENT_KEY) => Some(api_error(
            StatusCode::FORBIDDEN,
            "quotaExceeded",
            "The request cannot be completed because you have exceeded your <a href=\"/youtube/v3/getting-started#quota\">quota</a>.",
        )),
        _ => Some(api_error(
            StatusCode::BAD_REQUEST,
            "keyInvalid",
            "API key not valid. Please pass a valid API key.",
        )),
    }
}

async fn videos(State(log): State<Log>, Query(query): Query<HashMap<String, String>>) -> Response {
    log.lock()
        .expect("log")
        .push(("videos".into(), query.clone()));
    if let Some(answer) = refuse_key(&query) {
        return answer;
    }
    assert_eq!(
        query.get("part").map(String::as_str),
        Some("snippet,contentDetails")
    );
    let ids: Vec<&str> = query
        .get("id")
        .map_or(vec![], |ids| ids.split(',').collect());
    assert!(ids.len() <= 50, "{} ids in one request", ids.len());
    let items: Vec<Value> = ids
        .iter()
        .filter_map(|id| match *id {
            "aaaaaaaaaaa" => Some(json!({
                "kind": "youtube#video", "etag": "x", "id": id,
                "snippet": {"title": "  First Song\n", "channelTitle": "Channel A",
                            "description": "long text", "thumbnails": {}},
                "contentDetails": {"duration": "PT1H2M3S", "dimension": "2d"},
            })),
            "liveliveliv" => Some(json!({
                "kind": "youtube#video", "id": id,
                "snippet": {"title": "Live now", "channelTitle": "Channel L"},
                "contentDetails": {"duration": "P0D"},
            })),
            id if id.starts_with("vid") => Some(json!({
                "kind": "youtube#video", "id": id,
                "snippet": {"title": format!("Song {id}"), "channelTitle": "Channel P"},
                "contentDetails": {"duration": "PT3M30S"},
            })),
            _ => None,
        })
        .collect();
    Json(
        json!({"kind": "youtube#videoListResponse", "etag": "x", "items": items,
                "pageInfo": {"totalResults": items.len(), "resultsPerPage": items.len()}}),
    )
    .into_response()
}

async fn playlist_items(
    State(log): State<Log>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    log.lock()
        .expect("log")
        .push(("playlistItems".into(), query.clone()));
    if let Some(answer) = refuse_key(&query) {
        return answer;
    }
    if query.get("playlistId").map(String::as_str) != Some(PLAYLIST) {
        return api_error(
            StatusCode::NOT_FOUND,
            "playlistNotFound",
            "The playlist identified with the request's playlistId parameter cannot be found.",
        );
    }
    let per_page: usize = query
        .get("maxResults")
        .and_then(|n| n.parse().ok())
        .unwrap_or(5)
        .min(50);
    let start: usize = query
        .get("pageToken")
        .and_then(|token| token.strip_prefix("from-"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let end = (start + per_page).min(PLAYLIST_LEN);
    let items: Vec<Value> = (start..end)
        .map(|i| {
            json!({"kind": "youtube#playlistItem", "id": format!("item{i}"),
                        "contentDetails": {"videoId": playlist_video(i)}})
        })
        .collect();
    let mut answer = json!({"kind": "youtube#playlistItemListResponse", "items": items,
                            "pageInfo": {"totalResults": PLAYLIST_LEN, "resultsPerPage": per_page}});
    if end < PLAYLIST_LEN {
        answer["nextPageToken"] = json!(format!("from-{end}"));
    }
    Json(answer).into_response()
}

async fn stand_in() -> StandIn {
    let log: Log = Arc::default();
    let router = Router::new()
        .route("/youtube/v3/videos", get(videos))
        .route("/youtube/v3/playlistItems", get(playlist_items))
        .with_state(log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .await
            .expect("stand-in serves");
    });
    StandIn {
        api: format!("http://{addr}/youtube/v3").parse().expect("url"),
        log,
        _server: server,
    }
}

#[tokio::test]
async fn a_videos_title_channel_and_duration_come_from_the_api_once() {
    let api = stand_in().await;
    let youtube = api.client(KEY);
    let video = youtube
        .video("aaaaaaaaaaa")
        .await
        .expect("answer")
        .expect("known");
    assert_eq!(video.title.as_deref(), Some("First Song"));
    assert_eq!(video.artist.as_deref(), Some("Channel A"));
    assert_eq!(video.duration, Some(3723.0));
    let asked = api.requests("videos");
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0]["id"], "aaaaaaaaaaa");
    assert_eq!(asked[0]["key"], KEY);

    // Cached: asking again costs no request.
    let again = youtube
        .video("aaaaaaaaaaa")
        .await
        .expect("answer")
        .expect("known");
    assert_eq!(again, video);
    assert_eq!(api.requests("videos").len(), 1);
}

#[tokio::test]
async fn an_unknown_video_is_none_and_asked_once_and_a_live_one_has_no_duration() {
    let api = stand_in().await;
    let youtube = api.client(KEY);
    assert_eq!(youtube.video("nosuchvideo").await.expect("answer"), None);
    assert_eq!(youtube.video("nosuchvideo").await.expect("answer"), None);
    assert_eq!(api.requests("videos").len(), 1);
    // Not a video id at all: nothing is asked.
    assert_eq!(youtube.video("not an id").await.expect("answer"), None);
    assert_eq!(api.requests("videos").len(), 1);
    let live = youtube
        .video("liveliveliv")
        .await
        .expect("answer")
        .expect("known");
    assert_eq!(live.duration, None);
    assert_eq!(live.title.as_deref(), Some("Live now"));
}

#[tokio::test]
async fn a_playlist_is_read_page_by_page_up_to_the_maximum_in_its_order() {
    let api = stand_in().await;
    let youtube = api.client(KEY);
    let videos = youtube.playlist(PLAYLIST, 500).await.expect("playlist");
    // Every video but the deleted one, in the playlist's order.
    let expected: Vec<String> = (0..PLAYLIST_LEN)
        .filter(|i| *i != GONE_AT)
        .map(playlist_video)
        .collect();
    let got: Vec<String> = videos.iter().map(|v| v.video_id.clone()).collect();
    assert_eq!(got, expected);
    assert_eq!(videos[0].title.as_deref(), Some("Song vid00000000"));
    assert_eq!(videos[0].duration, Some(210.0));
    let pages = api.requests("playlistItems");
    let tokens: Vec<Option<&str>> = pages
        .iter()
        .map(|q| q.get("pageToken").map(String::as_str))
        .collect();
    assert_eq!(tokens, [None, Some("from-50"), Some("from-100")]);
    assert!(pages
        .iter()
        .all(|q| q["maxResults"] == "50" && q["part"] == "contentDetails"));
    // 120 ids, at most 50 per `videos` request.
    assert_eq!(api.requests("videos").len(), 3);

    // A smaller maximum asks for no more than it needs; known videos are not asked again.
    let first = youtube.playlist(PLAYLIST, 60).await.expect("playlist");
    assert_eq!(first.len(), 59, "60 items, one of them deleted");
    let pages = api.requests("playlistItems");
    let sizes: Vec<&str> = pages[3..]
        .iter()
        .map(|q| q["maxResults"].as_str())
        .collect();
    assert_eq!(sizes, ["50", "10"]);
    assert_eq!(api.requests("videos").len(), 3, "every video was cached");
}

#[tokio::test]
async fn a_quota_answer_is_an_error_that_says_why_and_never_the_key() {
    let api = stand_in().await;
    let youtube = api.client(SPENT_KEY);
    let error = youtube.video("aaaaaaaaaaa").await.expect_err("quota");
    assert!(error.is_quota(), "{error:?}");
    assert!(
        matches!(&error, YouTubeError::Api { status: 403, reason, .. } if reason == "quotaExceeded"),
        "{error:?}"
    );
    let text = format!("{error} {error:?}");
    assert!(text.contains("quota"), "{text}");
    assert!(!text.contains(SPENT_KEY), "the key leaked: {text}");

    // Through the facade: the item stays as given.
    let metadata = Metadata::new(None, Some(api.client(SPENT_KEY)));
    assert_eq!(
        metadata.item_info(ItemSource::YouTube("aaaaaaaaaaa")).await,
        None
    );
    match metadata.playlist(PLAYLIST, 10).await {
        Err(PlaylistError::YouTube(error)) => assert!(error.is_quota(), "{error}"),
        other => panic!("expected the quota error, got {other:?}"),
    }

    let invalid = api
        .client("wrong-key")
        .video("aaaaaaaaaaa")
        .await
        .expect_err("bad key");
    assert!(
        matches!(&invalid, YouTubeError::Api { status: 400, reason, .. } if reason == "keyInvalid"),
        "{invalid:?}"
    );
    assert!(!invalid.is_quota());
}

#[tokio::test]
async fn an_unknown_playlist_is_the_apis_404_and_a_bad_id_is_never_sent() {
    let api = stand_in().await;
    let youtube = api.client(KEY);
    let error = youtube.playlist("PLnothere", 10).await.expect_err("404");
    assert!(
        matches!(&error, YouTubeError::Api { status: 404, reason, .. } if reason == "playlistNotFound"),
        "{error:?}"
    );
    let before = api.requests("playlistItems").len();
    let bad = youtube.playlist("PL&key=x", 10).await.expect_err("bad id");
    assert!(matches!(bad, YouTubeError::InvalidPlaylistId), "{bad:?}");
    assert_eq!(api.requests("playlistItems").len(), before);
}

#[tokio::test]
async fn an_unreachable_api_is_an_error_without_the_key() {
    // A port that was free a moment ago and is closed now.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let url = format!("http://{closed}/youtube/v3").parse().expect("url");
    let youtube = YouTube::new(url, ApiKey::new(KEY.to_owned())).expect("client");
    let error = youtube.video("aaaaaaaaaaa").await.expect_err("unreachable");
    assert!(matches!(error, YouTubeError::Http(_)), "{error:?}");
    let mut text = format!("{error} {error:?}");
    let mut source = std::error::Error::source(&error);
    while let Some(inner) = source {
        text.push_str(&format!(" {inner} {inner:?}"));
        source = inner.source();
    }
    assert!(!text.contains(KEY), "the key leaked: {text}");
}

#[tokio::test]
async fn through_the_facade_a_video_is_an_items_details() {
    let api = stand_in().await;
    let metadata = Metadata::new(None, Some(api.client(KEY)));
    assert_eq!(
        metadata.item_info(ItemSource::YouTube("aaaaaaaaaaa")).await,
        Some(ItemInfo {
            duration: Some(3723.0),
            title: Some("First Song".into()),
            artist: Some("Channel A".into()),
        })
    );
    assert_eq!(
        metadata.item_info(ItemSource::YouTube("nosuchvideo")).await,
        None
    );
    // A media URL names no file without a library.
    assert_eq!(
        metadata.item_info(ItemSource::Media("/media/a.wav")).await,
        None
    );
}

#[tokio::test]
async fn a_server_with_a_key_starts_and_its_configuration_dump_hides_the_key() {
    use clap::Parser;
    let api = stand_in().await;
    let app = common::spawn_app(&[
        "--youtube-api-key",
        KEY,
        "--youtube-api-url",
        api.api.as_str(),
    ])
    .await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    let config = syncroom::Config::try_parse_from([
        "syncroom",
        "--youtube-api-key",
        KEY,
        "--youtube-api-url",
        "http://127.0.0.1:9/youtube/v3",
    ])
    .expect("flags parse");
    assert_eq!(
        config.youtube_api_key.as_ref().map(ApiKey::expose),
        Some(KEY)
    );
    assert!(!format!("{config:?}").contains(KEY));
    let defaults = syncroom::Config::defaults();
    assert!(defaults.youtube_api_key.is_none());
    assert_eq!(
        defaults.youtube_api_url.as_str(),
        "https://www.googleapis.com/youtube/v3"
    );
    for bad in ["ftp://example.com/v3", "not a url", "/youtube/v3"] {
        assert!(
            syncroom::Config::try_parse_from(["syncroom", "--youtube-api-url", bad]).is_err(),
            "{bad} accepted"
        );
    }
}
