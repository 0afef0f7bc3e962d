//! What a room plays: a YouTube video (`video_id`) or a media file the browser
//! plays itself (`media_url`), never both.
//!
//! On the wire (state, queue items, listings, the store and Redis) a source is
//! always the two fields `video_id` and `media_url`, one a string and the other
//! `null`; in the code it is [`Source`], so "exactly one" holds by construction.
//! Rooms stored before media existed have no `media_url` at all: it reads as `null`.

use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};

use super::check::{check_video_id, CommandError};

/// Longest `media_url`, in bytes (of the text as sent).
pub const MAX_MEDIA_URL_BYTES: usize = 2_048;
/// The path prefix of the files this server serves (`--media-dir`).
pub const MEDIA_PATH_PREFIX: &str = "/media/";

/// The one message for "both" and for "neither", naming which it was.
pub const BOTH_SOURCES: &str = "give either `video_id` or `media_url`, not both";
pub const NO_SOURCE: &str = "give one of `video_id` or `media_url`: neither was given";

/// The item a room plays or queues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SourceFields", into = "SourceFields")]
pub enum Source {
    /// An 11-character YouTube video id.
    Video(String),
    /// An `http(s)://` URL or a `/media/` path (see [`check_media_url`]).
    Media(String),
}

impl Source {
    pub fn video_id(&self) -> Option<&str> {
        match self {
            Source::Video(id) => Some(id),
            Source::Media(_) => None,
        }
    }

    pub fn media_url(&self) -> Option<&str> {
        match self {
            Source::Video(_) => None,
            Source::Media(url) => Some(url),
        }
    }

    /// Checks the id or URL against its rule (`invalid_value` otherwise).
    pub fn validate(&self) -> Result<(), CommandError> {
        match self {
            Source::Video(id) => check_video_id(id),
            Source::Media(url) => check_media_url(url),
        }
    }

    /// The source named by a body's two fields, if any (`None` for neither);
    /// both is refused.
    pub fn from_fields(
        video_id: Option<String>,
        media_url: Option<String>,
    ) -> Result<Option<Self>, CommandError> {
        match (video_id, media_url) {
            (Some(_), Some(_)) => Err(CommandError::InvalidValue(BOTH_SOURCES.into())),
            (Some(id), None) => Ok(Some(Source::Video(id))),
            (None, Some(url)) => Ok(Some(Source::Media(url))),
            (None, None) => Ok(None),
        }
    }
}

/// The wire form of a source, and of "no source" (both `null`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = Source)]
pub struct SourceFields {
    #[serde(default)]
    pub video_id: Option<String>,
    /// Absent in rooms stored before media items existed.
    #[serde(default)]
    pub media_url: Option<String>,
}

impl From<Source> for SourceFields {
    fn from(source: Source) -> Self {
        match source {
            Source::Video(id) => Self {
                video_id: Some(id),
                media_url: None,
            },
            Source::Media(url) => Self {
                video_id: None,
                media_url: Some(url),
            },
        }
    }
}

impl TryFrom<SourceFields> for Source {
    type Error = CommandError;

    fn try_from(fields: SourceFields) -> Result<Self, Self::Error> {
        Source::from_fields(fields.video_id, fields.media_url)?
            .ok_or_else(|| CommandError::InvalidValue(NO_SOURCE.into()))
    }
}

/// `#[serde(flatten, with = "optional")]` for an `Option<Source>`: `None` is
/// written as `"video_id": null, "media_url": null`.
pub mod optional {
    use super::{Source, SourceFields};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(source: &Option<Source>, to: S) -> Result<S::Ok, S::Error> {
        source
            .clone()
            .map(SourceFields::from)
            .unwrap_or_default()
            .serialize(to)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(from: D) -> Result<Option<Source>, D::Error> {
        let fields = SourceFields::deserialize(from)?;
        Source::from_fields(fields.video_id, fields.media_url).map_err(serde::de::Error::custom)
    }
}

fn bad_media_url(why: &str) -> CommandError {
    CommandError::InvalidValue(format!(
        "`media_url` must be an http:// or https:// URL or a path under {MEDIA_PATH_PREFIX}: {why}"
    ))
}

/// A `media_url` is an absolute `http://`/`https://` URL with a host and no
/// user name or password (every listener sees it), or a path under `/media/`
/// with no `.` or `..` segment (raw or percent-encoded) and no backslash. Either
/// is at most [`MAX_MEDIA_URL_BYTES`] and holds no control character; the URL
/// holds no whitespace either. Everything else (`javascript:`, `data:`, `file:`,
/// `//host`, relative paths) is refused.
pub fn check_media_url(text: &str) -> Result<(), CommandError> {
    if text.len() > MAX_MEDIA_URL_BYTES {
        return Err(bad_media_url(&format!(
            "it is longer than {MAX_MEDIA_URL_BYTES} bytes"
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(bad_media_url("it holds a control character"));
    }
    if text.contains('\\') {
        return Err(bad_media_url("it holds a backslash"));
    }
    if text.starts_with(MEDIA_PATH_PREFIX) {
        return check_media_path(text);
    }
    check_absolute_url(text)
}

fn check_absolute_url(text: &str) -> Result<(), CommandError> {
    if text.chars().any(char::is_whitespace) {
        return Err(bad_media_url("a URL holds no whitespace"));
    }
    // The text itself must say http:// or https://: the parser would also take
    // `http:host`, which means the same but reads as something else.
    let lower = text.get(..8).unwrap_or(text).to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(bad_media_url("no other scheme is allowed"));
    }
    // `https:///a.mp3` parses with host `a.mp3`; as text it names no host.
    if text
        .split_once("://")
        .is_some_and(|(_, rest)| rest.starts_with('/'))
    {
        return Err(bad_media_url("the URL has no host"));
    }
    let url = url::Url::parse(text).map_err(|error| bad_media_url(&error.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad_media_url("no other scheme is allowed"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad_media_url("the URL has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad_media_url(
            "a user name or password in it would be shown to every listener",
        ));
    }
    Ok(())
}

fn check_media_path(text: &str) -> Result<(), CommandError> {
    // Dot segments are judged in the path, before any query or fragment.
    let path = text.split(['?', '#']).next().unwrap_or(text);
    let file = &path[MEDIA_PATH_PREFIX.len()..];
    if file.is_empty() {
        return Err(bad_media_url("it names no file"));
    }
    for segment in file.split('/') {
        let decoded = percent_decode_str(segment).decode_utf8_lossy();
        if decoded == "." || decoded == ".." {
            return Err(bad_media_url("a `.` or `..` segment is not allowed"));
        }
        if decoded.contains(['/', '\\']) || decoded.chars().any(char::is_control) {
            return Err(bad_media_url(
                "an encoded slash, backslash or control character is not allowed",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_urls_that_are_accepted() {
        for url in [
            "https://example.com/a.mp3",
            "http://example.com:8080/x/y.ogg?sig=1#t",
            "HTTPS://EXAMPLE.COM/A.MP3",
            "http://127.0.0.1/a.wav",
            "https://[::1]/a.webm",
            "/media/a.mp3",
            "/media/My%20Songs/b.flac",
            "/media/dir/file with space.mp3",
            "/media/a..b.mp3",
            "/media/.hidden-is-the-servers-business.mp3",
        ] {
            assert_eq!(check_media_url(url), Ok(()), "{url}");
        }
        let longest = format!("https://example.com/{}", "a".repeat(2_048 - 20));
        assert_eq!(longest.len(), 2_048);
        assert_eq!(check_media_url(&longest), Ok(()));
    }

    #[test]
    fn media_urls_that_are_refused() {
        let too_long = format!("https://example.com/{}", "a".repeat(2_049 - 20));
        for url in [
            "",
            "javascript:alert(1)",
            "data:audio/wav;base64,AAAA",
            "file:///etc/passwd",
            "ftp://example.com/a.mp3",
            "//example.com/a.mp3",
            "example.com/a.mp3",
            "media/a.mp3",
            "/media",
            "/media/",
            "/other/a.mp3",
            "http:example.com/a.mp3",
            "http://",
            "https:///a.mp3",
            "https://user:pw@example.com/a.mp3",
            "https://user@example.com/a.mp3",
            "https://example.com/a b.mp3",
            " https://example.com/a.mp3",
            "https://example.com/a\n.mp3",
            "https:\\\\example.com\\a.mp3",
            "/media/../secret",
            "/media/a/../../b",
            "/media/%2e%2e/secret",
            "/media/%2E./secret",
            "/media/./a.mp3",
            "/media/a%2f..%2fb",
            "/media/a\\b.mp3",
            "/media/a\u{0}.mp3",
            "/media/a%00.mp3",
            "/media/..?x=1",
            too_long.as_str(),
        ] {
            assert!(
                matches!(check_media_url(url), Err(CommandError::InvalidValue(_))),
                "{url}"
            );
        }
    }

    #[test]
    fn the_wire_form_has_both_fields_and_one_is_null() {
        let video = serde_json::to_value(Source::Video("dQw4w9WgXcQ".into())).unwrap();
        assert_eq!(
            video,
            serde_json::json!({"video_id": "dQw4w9WgXcQ", "media_url": null})
        );
        let media: Source =
            serde_json::from_value(serde_json::json!({"media_url": "/media/a.mp3"})).unwrap();
        assert_eq!(media, Source::Media("/media/a.mp3".into()));
        // Stored before media existed: no `media_url` at all.
        let old: Source =
            serde_json::from_value(serde_json::json!({"video_id": "dQw4w9WgXcQ"})).unwrap();
        assert_eq!(old, Source::Video("dQw4w9WgXcQ".into()));
        assert!(serde_json::from_value::<Source>(
            serde_json::json!({"video_id": "dQw4w9WgXcQ", "media_url": "/media/a"})
        )
        .is_err());
        assert!(serde_json::from_value::<Source>(serde_json::json!({})).is_err());
    }
}
