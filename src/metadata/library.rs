//! The operator's media directory (`--media-dir`): which request paths name a
//! file that may be served, and the listing of every audio and video file in it
//! with what each file says about itself ([`super::tags`]).
//!
//! The directory is the only thing served and only audio and video are served
//! from it: a path is refused when a segment is empty, starts with a dot (`.`,
//! `..`, dotfiles) or holds a backslash, when it leads (through symlinks)
//! outside the directory or through a dot-named entry, and when the file is not
//! audio or video by its extension.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde::Serialize;

use super::tags::{Artwork, FileTags, TagCache};

/// Longest request path below `/media/` that is looked at (bytes).
const MAX_PATH_BYTES: usize = 4096;
/// Most files `GET /api/media` lists; a larger library is listed in part.
pub const MAX_LISTED_FILES: usize = 10_000;
/// Files whose tags are kept: every file one listing shows and some more, so
/// listing a full library again reads nothing. An entry holds a path and two
/// texts of at most 200 characters: under 1 KiB.
pub const CACHED_FILES: usize = MAX_LISTED_FILES + 1_000;
/// Deepest folder nesting `GET /api/media` walks into.
const MAX_LIST_DEPTH: usize = 16;
/// How long one listing is reused: many pages opening at once walk the disk once.
const LIST_CACHE_FOR: Duration = Duration::from_secs(2);

/// What is escaped in a listed path: everything but unreserved characters and `/`.
const PATH_SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'[')
    .add(b']')
    .add(b'\\')
    .add(b'^')
    .add(b'|')
    .add(b'&')
    .add(b'+')
    .add(b';')
    .add(b'=')
    .add(b'\'');

/// One file of the library, as `GET /api/media` lists it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MediaFile {
    /// The URL path to use as a `media_url`: `/media/` and the percent-encoded path.
    pub path: String,
    /// The file's name, as on disk.
    pub name: String,
    pub size: u64,
    pub content_type: String,
    /// Seconds, from the file's audio properties; `null` when it could not be read.
    pub duration: Option<f64>,
    /// From the file's tags; `null` when it has none.
    pub title: Option<String>,
    /// From the file's tags; `null` when it has none.
    pub artist: Option<String>,
}

/// The directory given with `--media-dir`, resolved once at start.
pub struct MediaLibrary {
    root: PathBuf,
    /// The last listing and when it was made; the lock also makes concurrent
    /// listings wait for one walk instead of each walking the disk.
    listing: tokio::sync::Mutex<Option<(Instant, Arc<Vec<MediaFile>>)>>,
    tags: Arc<TagCache>,
}

impl MediaLibrary {
    /// Opens `dir`, which must be an existing directory; the error names it.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        let root = std::fs::canonicalize(dir).map_err(|error| {
            std::io::Error::new(
                error.kind(),
                format!(
                    "--media-dir {}: {error} (expected an existing, readable directory)",
                    dir.display()
                ),
            )
        })?;
        if !root.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                format!(
                    "--media-dir {}: not a directory (expected an existing, readable directory)",
                    dir.display()
                ),
            ));
        }
        Ok(Self {
            root,
            listing: tokio::sync::Mutex::new(None),
            tags: Arc::new(TagCache::new(CACHED_FILES)),
        })
    }

    /// The file a request path (below `/media/`, decoded) names, if it may be
    /// served: see the module docs.
    pub async fn resolve(&self, path: &str) -> Option<(PathBuf, std::fs::Metadata)> {
        let relative = safe_relative(path)?;
        let real = tokio::fs::canonicalize(self.root.join(relative))
            .await
            .ok()?;
        let inside = real.strip_prefix(&self.root).ok()?;
        if inside.components().any(|part| !is_visible(part)) || media_type(&real).is_none() {
            return None;
        }
        let meta = tokio::fs::metadata(&real).await.ok()?;
        meta.is_file().then_some((real, meta))
    }

    /// What the file a request path names says about itself, if it may be served.
    pub async fn tags(&self, path: &str) -> Option<Arc<FileTags>> {
        let (real, meta) = self.resolve(path).await?;
        self.tags.get(real, &meta).await
    }

    /// The cover art of a resolved file (from [`Self::resolve`]), if it has any.
    pub async fn artwork(&self, real: PathBuf) -> Option<Artwork> {
        self.tags.artwork(real).await
    }

    /// Every audio and video file under the directory, sorted by path, with its tags.
    pub async fn list(&self) -> Arc<Vec<MediaFile>> {
        let mut cached = self.listing.lock().await;
        if let Some((made, files)) = cached.as_ref() {
            if made.elapsed() < LIST_CACHE_FOR {
                return files.clone();
            }
        }
        let root = self.root.clone();
        let tags = self.tags.clone();
        let files = tokio::task::spawn_blocking(move || walk(&root, &tags))
            .await
            .unwrap_or_else(|error| {
                tracing::error!(%error, "listing the media directory failed");
                Vec::new()
            });
        let files = Arc::new(files);
        *cached = Some((Instant::now(), files.clone()));
        files
    }
}

/// The relative path of a request, or `None` when any segment is empty, starts
/// with a dot, or holds a backslash or NUL. The router has percent-decoded it, so
/// `%2e%2e` arrives here as `..` and is refused like it.
fn safe_relative(path: &str) -> Option<PathBuf> {
    if path.is_empty() || path.len() > MAX_PATH_BYTES {
        return None;
    }
    let mut relative = PathBuf::new();
    for segment in path.split('/') {
        if segment.is_empty() || segment.starts_with('.') || segment.contains(['\\', '\0']) {
            return None;
        }
        relative.push(segment);
    }
    Some(relative)
}

/// A resolved path component that may be served: a name not starting with a dot.
fn is_visible(part: Component<'_>) -> bool {
    match part {
        Component::Normal(name) => !name.as_encoded_bytes().starts_with(b"."),
        _ => false,
    }
}

/// The content type of an audio or video file, by its extension; `None` for anything else.
pub fn media_type(path: &Path) -> Option<mime_guess::Mime> {
    let mime = mime_guess::from_path(path).first()?;
    matches!(
        mime.type_(),
        mime_guess::mime::AUDIO | mime_guess::mime::VIDEO
    )
    .then_some(mime)
}

/// Walks `root` depth-first for audio and video files, skipping dot-named
/// entries, symlinks that lead outside `root` or to folders (no loops), and
/// names that are not UTF-8; stops at [`MAX_LISTED_FILES`]. Each file's tags
/// come from `tags` (read now when this version of the file is new).
fn walk(root: &Path, tags: &TagCache) -> Vec<MediaFile> {
    let mut files = Vec::new();
    let mut folders = vec![(root.to_path_buf(), 0usize)];
    while let Some((folder, depth)) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_dir() {
                if depth + 1 < MAX_LIST_DEPTH {
                    folders.push((path, depth + 1));
                }
                continue;
            }
            if let Some(file) = listed_file(root, &path, name, tags) {
                files.push(file);
            }
            if files.len() == MAX_LISTED_FILES {
                tracing::warn!(
                    limit = MAX_LISTED_FILES,
                    "the media directory holds more files than are listed"
                );
                files.sort_by(|a, b| a.path.cmp(&b.path));
                return files;
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

/// The listing entry of the file at `path` (named `name`), if it may be served.
fn listed_file(root: &Path, path: &Path, name: String, tags: &TagCache) -> Option<MediaFile> {
    let real = std::fs::canonicalize(path).ok()?;
    let inside = real.strip_prefix(root).ok()?;
    if !inside.components().all(is_visible) {
        return None;
    }
    let mime = media_type(&real)?;
    let meta = std::fs::metadata(&real).ok()?;
    if !meta.is_file() {
        return None;
    }
    let url = url_path(root, path)?;
    let read = tags.get_blocking(&real, &meta);
    Some(MediaFile {
        path: url,
        name,
        size: meta.len(),
        content_type: mime.to_string(),
        duration: read.duration,
        title: read.title.clone(),
        artist: read.artist.clone(),
    })
}

/// `/media/` and the percent-encoded path of `path` below `root` (as listed, not
/// resolved: a symlink is served under its own name).
fn url_path(root: &Path, path: &Path) -> Option<String> {
    let relative = path.strip_prefix(root).ok()?;
    let mut url = String::from("/media");
    for part in relative.components() {
        let Component::Normal(name) = part else {
            return None;
        };
        url.push('/');
        url.extend(utf8_percent_encode(name.to_str()?, PATH_SEGMENT));
    }
    Some(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_paths_with_dot_empty_or_backslash_segments_are_refused() {
        for bad in [
            "",
            "..",
            "../etc/passwd",
            "a/../b.mp3",
            "./a.mp3",
            ".hidden.mp3",
            "dir/.secret/a.mp3",
            "a//b.mp3",
            "a/",
            "a\\..\\b.mp3",
            "a\0.mp3",
        ] {
            assert_eq!(safe_relative(bad), None, "{bad:?}");
        }
        assert_eq!(
            safe_relative("albums/one two.mp3"),
            Some(PathBuf::from("albums/one two.mp3"))
        );
        assert_eq!(safe_relative(&"a".repeat(MAX_PATH_BYTES + 1)), None);
    }

    #[test]
    fn only_audio_and_video_have_a_media_type() {
        for (name, expected) in [
            ("a.mp3", Some("audio/mpeg")),
            ("a.wav", Some("audio/wav")),
            ("a.flac", Some("audio/flac")),
            ("a.ogg", Some("audio/ogg")),
            ("a.opus", Some("audio/ogg")),
            ("a.mp4", Some("video/mp4")),
            ("a.webm", Some("video/webm")),
            ("a.html", None),
            ("a.txt", None),
            ("a", None),
        ] {
            assert_eq!(
                media_type(Path::new(name)).map(|m| m.essence_str().to_owned()),
                expected.map(str::to_owned),
                "{name}"
            );
        }
    }

    #[test]
    fn listed_paths_are_percent_encoded_per_segment() {
        let root = Path::new("/srv/music");
        assert_eq!(
            url_path(root, Path::new("/srv/music/Live at #1/a b?.mp3")).as_deref(),
            Some("/media/Live%20at%20%231/a%20b%3F.mp3")
        );
    }
}
