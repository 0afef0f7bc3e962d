//! A client of the YouTube Data API v3 (`--youtube-api-key`): a video's title,
//! channel and duration (`videos`, parts `snippet,contentDetails`), and the
//! videos of a playlist (`playlistItems`, page after page).
//!
//! Every video's details are cached, found or not ([`CACHED_VIDEOS`]): a room
//! that loads the same song again costs no quota. The API key travels in the
//! query string, as the API documents it, so a request URL is never logged
//! and every HTTP error is stripped of its URL before it becomes a value.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use super::iso8601::parse_duration;
use super::{clean_text, ItemInfo};
use crate::config::ApiKey;

/// Videos whose details are kept (a video the API does not know counts too).
/// An entry is an id and two texts of at most 200 characters: under 1 KiB.
pub const CACHED_VIDEOS: usize = 10_000;
/// Longest wait for one answer of the API.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for a connection to the API.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest answer read; a `videos` answer for a full page with long
/// descriptions stays well below it.
pub const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;
/// Most ids one `videos` request names, and most items one `playlistItems`
/// page holds: the API's own limit (`maxResults` 50).
const PAGE_SIZE: usize = 50;
/// Longest YouTube playlist id looked up (real ones are 13 to 34 characters).
const MAX_PLAYLIST_ID_CHARS: usize = 64;
/// How much of the API's error message goes into our error (and the log).
const MAX_API_MESSAGE_CHARS: usize = 200;

/// What the API says about one video.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    pub video_id: String,
    pub title: Option<String>,
    /// The channel's title: the nearest thing a video has to an artist.
    pub artist: Option<String>,
    /// Seconds; `None` for a live stream (`P0D`) or a duration not understood.
    pub duration: Option<f64>,
}

impl VideoInfo {
    pub fn info(&self) -> ItemInfo {
        ItemInfo {
            duration: self.duration,
            title: self.title.clone(),
            artist: self.artist.clone(),
        }
    }
}

/// Why the API gave no answer. None of these holds the API key.
#[derive(Debug, thiserror::Error)]
pub enum YouTubeError {
    /// No connection, a timeout, an answer cut off. Built by [`http_error`],
    /// which removes the request URL (it holds the key).
    #[error("the YouTube API could not be reached: {0}")]
    Http(#[source] reqwest::Error),
    /// The API refused: an invalid key (`400 keyInvalid`), a spent quota
    /// (`403 quotaExceeded`), an unknown playlist (`404 playlistNotFound`)...
    #[error("the YouTube API answered {status} ({reason}): {message}")]
    Api {
        status: u16,
        /// The first of the answer's `errors[].reason`, or `unknown`.
        reason: String,
        message: String,
    },
    #[error("the YouTube API's answer is not what it documents: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("the YouTube API's answer is larger than {MAX_ANSWER_BYTES} bytes")]
    TooLarge,
    #[error("the YouTube API's URL cannot take a method name: it is no base URL")]
    BadApiUrl,
    #[error("this is not a YouTube playlist id (letters, digits, `-` and `_`, at most {MAX_PLAYLIST_ID_CHARS})")]
    InvalidPlaylistId,
}

impl YouTubeError {
    /// Whether the API said the key's quota is spent (`quotaExceeded`,
    /// `dailyLimitExceeded`, `rateLimitExceeded`): asking again soon is useless.
    pub fn is_quota(&self) -> bool {
        matches!(self, YouTubeError::Api { reason, .. }
            if matches!(reason.as_str(), "quotaExceeded" | "dailyLimitExceeded" | "rateLimitExceeded"))
    }
}

/// A reqwest error without the URL it carries (which holds the key).
fn http_error(error: reqwest::Error) -> YouTubeError {
    YouTubeError::Http(error.without_url())
}

/// The client: one connection pool, the key, and the cache of videos.
pub struct YouTube {
    http: reqwest::Client,
    api: Url,
    key: ApiKey,
    videos: quick_cache::sync::Cache<String, Option<Arc<VideoInfo>>>,
}

impl YouTube {
    /// A client of the API at `api` (`https://www.googleapis.com/youtube/v3`, or
    /// a stand-in) with `key`.
    pub fn new(api: Url, key: ApiKey) -> Result<Self, YouTubeError> {
        if api.cannot_be_a_base() {
            return Err(YouTubeError::BadApiUrl);
        }
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("syncroom/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(http_error)?;
        Ok(Self {
            http,
            api,
            key,
            videos: quick_cache::sync::Cache::new(CACHED_VIDEOS),
        })
    }

    /// One video's details; `Ok(None)` when the API does not know it (deleted,
    /// private) or `video_id` cannot be a video id (then nothing is asked).
    pub async fn video(&self, video_id: &str) -> Result<Option<Arc<VideoInfo>>, YouTubeError> {
        if !is_video_id(video_id) {
            return Ok(None);
        }
        if let Some(cached) = self.videos.get(video_id) {
            return Ok(cached);
        }
        let found = self.videos(&[video_id.to_owned()]).await?;
        Ok(found.into_iter().next())
    }

    /// The details of `ids`, in their order, leaving out what the API does not
    /// know; asks only for ids not cached, [`PAGE_SIZE`] per request.
    pub async fn videos(&self, ids: &[String]) -> Result<Vec<Arc<VideoInfo>>, YouTubeError> {
        let mut missing: Vec<&str> = ids
            .iter()
            .map(String::as_str)
            .filter(|id| is_video_id(id) && self.videos.get(*id).is_none())
            .collect();
        missing.sort_unstable();
        missing.dedup();
        for batch in missing.chunks(PAGE_SIZE) {
            let batch_ids = batch.join(",");
            let answer: VideoList = self
                .get(
                    "videos",
                    &[
                        ("part", "snippet,contentDetails"),
                        ("id", batch_ids.as_str()),
                    ],
                )
                .await?;
            for item in answer.items {
                let video = Arc::new(item.into_info());
                self.videos.insert(video.video_id.clone(), Some(video));
            }
            // What the API left out does not exist for it: remember that too.
            for id in batch {
                if self.videos.get(*id).is_none() {
                    self.videos.insert((*id).to_owned(), None);
                }
            }
        }
        Ok(ids
            .iter()
            .filter_map(|id| self.videos.get(id.as_str()).flatten())
            .collect())
    }

    /// The first `max` items of a playlist, in its order, with their details;
    /// items the API no longer shows (deleted or private videos) are left out,
    /// so fewer may come back.
    pub async fn playlist(
        &self,
        playlist_id: &str,
        max: usize,
    ) -> Result<Vec<Arc<VideoInfo>>, YouTubeError> {
        if !is_playlist_id(playlist_id) {
            return Err(YouTubeError::InvalidPlaylistId);
        }
        let mut ids = Vec::new();
        let mut page_token: Option<String> = None;
        while ids.len() < max {
            let page_size = (max - ids.len()).min(PAGE_SIZE).to_string();
            let mut query = vec![
                ("part", "contentDetails"),
                ("playlistId", playlist_id),
                ("maxResults", page_size.as_str()),
            ];
            if let Some(token) = &page_token {
                query.push(("pageToken", token.as_str()));
            }
            let page: PlaylistPage = self.get("playlistItems", &query).await?;
            let before = ids.len();
            ids.extend(
                page.items
                    .into_iter()
                    .filter_map(|item| item.content_details.video_id)
                    .take(max - before),
            );
            match page.next_page_token {
                // An empty page that offers another would loop for ever.
                Some(token) if ids.len() > before => page_token = Some(token),
                _ => break,
            }
        }
        self.videos(&ids).await
    }

    /// `GET {api}/{method}?{query}&key=…`, decoded from JSON; an error answer
    /// becomes [`YouTubeError::Api`].
    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        query: &[(&str, &str)],
    ) -> Result<T, YouTubeError> {
        let mut url = self.api.clone();
        url.path_segments_mut()
            .map_err(|()| YouTubeError::BadApiUrl)?
            .pop_if_empty()
            .push(method);
        url.query_pairs_mut()
            .extend_pairs(query)
            .append_pair("key", self.key.expose());
        let mut response = self.http.get(url).send().await.map_err(http_error)?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(http_error)? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(YouTubeError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            return Err(api_error(status.as_u16(), &body));
        }
        Ok(serde_json::from_slice(&body)?)
    }
}

/// The API's error answer, `{"error": {"code", "message", "errors": [{"reason"}]}}`,
/// as a value; a body in another shape still gives its status.
fn api_error(status: u16, body: &[u8]) -> YouTubeError {
    let detail = serde_json::from_slice::<ErrorAnswer>(body)
        .map(|answer| answer.error)
        .unwrap_or_default();
    let reason = detail
        .errors
        .into_iter()
        .find_map(|error| error.reason)
        .unwrap_or_else(|| "unknown".to_owned());
    let message = detail
        .message
        .and_then(|text| clean_text(&text))
        .map(|text| text.chars().take(MAX_API_MESSAGE_CHARS).collect())
        .unwrap_or_default();
    YouTubeError::Api {
        status,
        reason,
        message,
    }
}

/// An 11-character YouTube video id.
fn is_video_id(id: &str) -> bool {
    id.len() == 11 && id.bytes().all(is_id_byte)
}

fn is_playlist_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_PLAYLIST_ID_CHARS && id.bytes().all(is_id_byte)
}

fn is_id_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_'
}

/// `videos` (only what is read of it).
#[derive(Deserialize)]
struct VideoList {
    #[serde(default)]
    items: Vec<VideoItem>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VideoItem {
    id: String,
    #[serde(default)]
    snippet: Snippet,
    #[serde(default)]
    content_details: ContentDetails,
}

impl VideoItem {
    fn into_info(self) -> VideoInfo {
        VideoInfo {
            video_id: self.id,
            title: self.snippet.title.as_deref().and_then(clean_text),
            artist: self.snippet.channel_title.as_deref().and_then(clean_text),
            duration: self
                .content_details
                .duration
                .as_deref()
                .and_then(parse_duration)
                .filter(|seconds| *seconds > 0.0),
        }
    }
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Snippet {
    title: Option<String>,
    channel_title: Option<String>,
}

#[derive(Default, Deserialize)]
struct ContentDetails {
    duration: Option<String>,
}

/// One page of `playlistItems` (part `contentDetails`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PlaylistPage {
    #[serde(default)]
    items: Vec<PlaylistItem>,
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PlaylistItem {
    #[serde(default)]
    content_details: PlaylistItemDetails,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PlaylistItemDetails {
    video_id: Option<String>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    #[serde(default)]
    error: ErrorDetail,
}

#[derive(Default, Deserialize)]
struct ErrorDetail {
    message: Option<String>,
    #[serde(default)]
    errors: Vec<ErrorReason>,
}

#[derive(Deserialize)]
struct ErrorReason {
    reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_answer_gives_its_status_reason_and_message() {
        let body = br#"{"error": {"code": 403, "message": "The request cannot be completed because you have exceeded your <a href=\"/youtube/v3/getting-started#quota\">quota</a>.", "errors": [{"message": "x", "domain": "youtube.quota", "reason": "quotaExceeded"}]}}"#;
        let error = api_error(403, body);
        assert!(error.is_quota(), "{error}");
        let text = error.to_string();
        assert!(
            text.contains("403") && text.contains("quotaExceeded"),
            "{text}"
        );
        let other = api_error(502, b"<html>Bad Gateway</html>");
        assert!(!other.is_quota());
        assert!(other.to_string().contains("502 (unknown)"), "{other}");
    }

    #[test]
    fn ids_are_checked_before_anything_is_asked() {
        assert!(is_video_id("dQw4w9WgXcQ"));
        assert!(!is_video_id("dQw4w9WgXc"));
        assert!(!is_video_id("dQw4w9WgXc&"));
        assert!(is_playlist_id("PLrAXtmErZgOeiKm4sgNOknGvNjby9efdf"));
        assert!(!is_playlist_id(""));
        assert!(!is_playlist_id("PL x"));
        assert!(!is_playlist_id(&"a".repeat(MAX_PLAYLIST_ID_CHARS + 1)));
    }
}
