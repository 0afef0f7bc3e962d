//! What the server knows about an item by itself: a media file's duration,
//! title, artist and cover art (read from the file), and a YouTube video's
//! title, channel and duration (asked of the YouTube Data API v3).
//!
//! - [`library`]: the `--media-dir` directory: which paths may be served, its listing.
//! - [`tags`]: reading a file's tags and audio properties, cached per file version.
//! - [`youtube`]: the YouTube Data API client (`--youtube-api-key`), cached per video.
//! - [`iso8601`]: the API's durations (`PT4M13S`).
//!
//! [`Metadata`] is the one face the rest of the server uses. Every lookup is
//! `async` and does its file reading on tokio's blocking pool and its HTTP on
//! the runtime, so a room never waits on a disk or on Google: a caller that
//! must not be held up at all (a room's actor) spawns the lookup and takes its
//! answer back as a message.

pub mod iso8601;
pub mod library;
pub mod tags;
pub mod youtube;

use std::sync::Arc;

use percent_encoding::percent_decode_str;
use serde::Serialize;

pub use library::{MediaFile, MediaLibrary};
pub use tags::{Artwork, FileTags};
pub use youtube::{VideoInfo, YouTube, YouTubeError};

/// What the server could learn about one item; every field is `None` when unknown.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ItemInfo {
    /// Seconds.
    pub duration: Option<f64>,
    pub title: Option<String>,
    pub artist: Option<String>,
}

impl ItemInfo {
    /// Whether anything at all is known.
    pub fn is_empty(&self) -> bool {
        self.duration.is_none() && self.title.is_none() && self.artist.is_none()
    }
}

/// An item to look up: what a room plays, in the two forms it comes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemSource<'a> {
    /// A YouTube video id.
    YouTube(&'a str),
    /// A `media_url`: only `/media/…` paths (this server's files) are looked up;
    /// other URLs are the browser's business and answer nothing.
    Media(&'a str),
}

/// Why a playlist could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PlaylistError {
    /// The server has no `--youtube-api-key`.
    #[error("this server has no YouTube API key (--youtube-api-key), so it cannot read playlists")]
    NoApiKey,
    #[error(transparent)]
    YouTube(#[from] YouTubeError),
}

/// The media library and the YouTube client, either of which may be absent.
/// Cheap to clone: a lookup can move a copy into a spawned task.
#[derive(Clone, Default)]
pub struct Metadata {
    library: Option<Arc<MediaLibrary>>,
    youtube: Option<Arc<YouTube>>,
}

impl Metadata {
    pub fn new(library: Option<MediaLibrary>, youtube: Option<YouTube>) -> Self {
        Self {
            library: library.map(Arc::new),
            youtube: youtube.map(Arc::new),
        }
    }

    /// The `--media-dir` library, if the server has one.
    pub fn library(&self) -> Option<&MediaLibrary> {
        self.library.as_deref()
    }

    /// The YouTube client, present only with `--youtube-api-key`.
    pub fn youtube(&self) -> Option<&YouTube> {
        self.youtube.as_deref()
    }

    /// What the server knows of `source`, or `None` when it knows nothing: a
    /// file outside the library or unreadable, a URL of another server, a
    /// YouTube item without an API key. A YouTube API error is logged here
    /// (with its reason, never the key) and answers `None`: the item stays as
    /// it was given.
    pub async fn item_info(&self, source: ItemSource<'_>) -> Option<ItemInfo> {
        let info = match source {
            ItemSource::Media(url) => {
                let library = self.library.as_ref()?;
                let path = media_path(url)?;
                library.tags(&path).await?.info()
            }
            ItemSource::YouTube(video_id) => {
                let youtube = self.youtube.as_ref()?;
                match youtube.video(video_id).await {
                    Ok(video) => video?.info(),
                    Err(error) => {
                        tracing::warn!(video_id, %error, "the YouTube API gave no details for a video");
                        return None;
                    }
                }
            }
        };
        (!info.is_empty()).then_some(info)
    }

    /// The first `max` playable videos of a YouTube playlist, in its order,
    /// with their details.
    pub async fn playlist(
        &self,
        playlist_id: &str,
        max: usize,
    ) -> Result<Vec<Arc<VideoInfo>>, PlaylistError> {
        let youtube = self.youtube.as_ref().ok_or(PlaylistError::NoApiKey)?;
        Ok(youtube.playlist(playlist_id, max).await?)
    }
}

/// The file path a `/media/…` URL names (percent-decoded, without query or
/// fragment), or `None` for any other URL or one that does not decode to UTF-8.
fn media_path(url: &str) -> Option<String> {
    let path = url.strip_prefix(crate::room::source::MEDIA_PATH_PREFIX)?;
    let path = path.split(['?', '#']).next().unwrap_or(path);
    percent_decode_str(path)
        .decode_utf8()
        .ok()
        .map(|decoded| decoded.into_owned())
}

/// A tag or API text fit to be an item's title or artist: trimmed, control
/// characters dropped, at most `MAX_TITLE_CHARS` characters (the queue's own
/// rule for titles), `None` when nothing is left.
pub(crate) fn clean_text(text: &str) -> Option<String> {
    let cleaned: String = text
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .chars()
        .take(crate::room::command::MAX_TITLE_CHARS)
        .collect();
    let cleaned = cleaned.trim_end().to_owned();
    (!cleaned.is_empty()).then_some(cleaned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_media_paths_name_a_file_and_they_are_decoded() {
        assert_eq!(
            media_path("/media/My%20Songs/a.mp3?x=1#t").as_deref(),
            Some("My Songs/a.mp3")
        );
        assert_eq!(media_path("/media/a.wav").as_deref(), Some("a.wav"));
        assert_eq!(media_path("https://example.com/media/a.mp3"), None);
        assert_eq!(media_path("/static/a.mp3"), None);
        assert_eq!(media_path("/media/%FF.mp3"), None);
    }

    #[test]
    fn texts_are_trimmed_cleaned_and_bounded() {
        assert_eq!(clean_text("  A song \n").as_deref(), Some("A song"));
        assert_eq!(clean_text("a\u{0}b\u{7}c").as_deref(), Some("abc"));
        assert_eq!(clean_text(" \t "), None);
        assert_eq!(clean_text(""), None);
        let long = "é".repeat(300);
        assert_eq!(
            clean_text(&long).map(|t| t.chars().count()),
            Some(crate::room::command::MAX_TITLE_CHARS)
        );
    }

    #[tokio::test]
    async fn without_a_library_or_a_key_nothing_is_known() {
        let metadata = Metadata::default();
        assert_eq!(
            metadata.item_info(ItemSource::Media("/media/a.wav")).await,
            None
        );
        assert_eq!(
            metadata.item_info(ItemSource::YouTube("dQw4w9WgXcQ")).await,
            None
        );
        assert!(matches!(
            metadata.playlist("PLx", 10).await,
            Err(PlaylistError::NoApiKey)
        ));
    }
}
