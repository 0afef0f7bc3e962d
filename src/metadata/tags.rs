//! A media file's own account of itself, read with `lofty`: its duration (from
//! the audio properties), its title and artist (from whichever tag it carries:
//! ID3v2, ID3v1, Vorbis comments, MP4 atoms, RIFF INFO, APE) and its cover art.
//!
//! Reading opens and parses the file, so it runs on tokio's blocking pool,
//! a few files at a time ([`READS_AT_ONCE`]), and what it found is kept per
//! file version (path, size, modification time) in a cache of a bounded
//! number of files: a file replaced in place is read again, an unchanged one
//! never. Cover art is not cached (it may be large); its answers carry a
//! validator instead, so a browser asks again only when the file changed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use lofty::config::ParseOptions;
use lofty::file::{AudioFile, TaggedFile, TaggedFileExt};
use lofty::picture::{MimeType, PictureType};
use lofty::probe::Probe;
use lofty::tag::Accessor;
use tokio::sync::Semaphore;

use super::{clean_text, ItemInfo};

/// Files read at once on the blocking pool by lookups (not by a listing,
/// which reads one file after the other): many rooms loading at once cannot
/// take every blocking thread.
pub const READS_AT_ONCE: usize = 4;
/// The largest cover art answered; a file with a larger picture has none as far
/// as the API goes (it would be held whole in memory while answered).
pub const MAX_ARTWORK_BYTES: usize = 16 * 1024 * 1024;

/// What a file says about itself; `None` where it says nothing (or could not be read).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileTags {
    /// Seconds, to the millisecond.
    pub duration: Option<f64>,
    pub title: Option<String>,
    pub artist: Option<String>,
}

impl FileTags {
    pub fn info(&self) -> ItemInfo {
        ItemInfo {
            duration: self.duration,
            title: self.title.clone(),
            artist: self.artist.clone(),
        }
    }
}

/// A cover picture, ready to answer.
#[derive(Debug, Clone)]
pub struct Artwork {
    pub content_type: &'static str,
    pub data: Bytes,
}

/// Which version of a file a cache entry describes: a change of either
/// (a rewrite, a replaced file) means the file must be read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileVersion {
    size: u64,
    modified_ns: u128,
}

impl FileVersion {
    pub fn of(meta: &std::fs::Metadata) -> Self {
        let modified_ns = meta
            .modified()
            .ok()
            .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |since| since.as_nanos());
        Self {
            size: meta.len(),
            modified_ns,
        }
    }

    /// A strong HTTP validator for anything derived from this version of the file.
    pub fn etag(&self) -> String {
        format!("\"{:x}-{:x}\"", self.size, self.modified_ns)
    }

    /// The modification time, for `Last-Modified`.
    pub fn modified(&self) -> Option<SystemTime> {
        let nanos = u64::try_from(self.modified_ns).ok()?;
        (nanos > 0).then(|| UNIX_EPOCH + std::time::Duration::from_nanos(nanos))
    }
}

/// The bounded cache of files' tags, keyed by resolved path and checked
/// against the file's version.
pub struct TagCache {
    entries: quick_cache::sync::Cache<PathBuf, (FileVersion, Arc<FileTags>)>,
    reads: Arc<Semaphore>,
}

impl TagCache {
    /// A cache that keeps the tags of up to `files` files.
    pub fn new(files: usize) -> Self {
        Self {
            entries: quick_cache::sync::Cache::new(files),
            reads: Arc::new(Semaphore::new(READS_AT_ONCE)),
        }
    }

    /// The tags of the file at `real` (resolved) whose metadata is `meta`, read
    /// now on the calling thread unless this version is cached. For code that
    /// already runs on the blocking pool (the listing's walk).
    pub fn get_blocking(&self, real: &Path, meta: &std::fs::Metadata) -> Arc<FileTags> {
        let version = FileVersion::of(meta);
        if let Some(tags) = self.cached(real, version) {
            return tags;
        }
        let tags = Arc::new(read_tags(real));
        self.entries
            .insert(real.to_path_buf(), (version, tags.clone()));
        tags
    }

    /// Like [`Self::get_blocking`], reading on the blocking pool; `None` only if
    /// the read could not run (the runtime is shutting down).
    pub async fn get(&self, real: PathBuf, meta: &std::fs::Metadata) -> Option<Arc<FileTags>> {
        let version = FileVersion::of(meta);
        if let Some(tags) = self.cached(&real, version) {
            return Some(tags);
        }
        let permit = self.reads.clone().acquire_owned().await.ok()?;
        let path = real.clone();
        let tags = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            read_tags(&path)
        })
        .await
        .ok()?;
        let tags = Arc::new(tags);
        self.entries.insert(real, (version, tags.clone()));
        Some(tags)
    }

    /// The cover art of the file at `real`, read on the blocking pool.
    pub async fn artwork(&self, real: PathBuf) -> Option<Artwork> {
        let permit = self.reads.clone().acquire_owned().await.ok()?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            read_artwork(&real)
        })
        .await
        .ok()
        .flatten()
    }

    fn cached(&self, real: &Path, version: FileVersion) -> Option<Arc<FileTags>> {
        self.entries
            .get(real)
            .and_then(|(cached, tags)| (cached == version).then_some(tags))
    }
}

/// Parses the file, guessing its format from its content (a misnamed file is
/// still read). A file lofty cannot read has no tags: it is logged at debug
/// level, since a library may well hold files no tag reader knows. A parser
/// that panics on a hostile file costs that file its tags, not the listing.
pub fn read_tags(path: &Path) -> FileTags {
    std::panic::catch_unwind(|| read_tags_unguarded(path)).unwrap_or_else(|_| {
        tracing::warn!(path = %path.display(), "reading a media file's tags panicked");
        FileTags::default()
    })
}

fn read_tags_unguarded(path: &Path) -> FileTags {
    let options = ParseOptions::new().read_cover_art(false);
    let file = match parse(path, options) {
        Ok(file) => file,
        Err(error) => {
            tracing::debug!(path = %path.display(), %error, "no tags read from a media file");
            return FileTags::default();
        }
    };
    let duration = file.properties().duration();
    // Tag readers can only be so sure: a duration rounds to the millisecond.
    let duration =
        (!duration.is_zero()).then(|| (duration.as_secs_f64() * 1000.0).round() / 1000.0);
    let tags = file.primary_tag().into_iter().chain(file.tags());
    let mut title = None;
    let mut artist = None;
    for tag in tags {
        title = title.or_else(|| tag.title().and_then(|text| clean_text(&text)));
        artist = artist.or_else(|| tag.artist().and_then(|text| clean_text(&text)));
    }
    FileTags {
        duration,
        title,
        artist,
    }
}

/// The file's front cover, else its first picture, if it is an image type a
/// browser shows ([`image_type`]) and at most [`MAX_ARTWORK_BYTES`].
pub fn read_artwork(path: &Path) -> Option<Artwork> {
    std::panic::catch_unwind(|| read_artwork_unguarded(path)).unwrap_or_else(|_| {
        tracing::warn!(path = %path.display(), "reading a media file's cover art panicked");
        None
    })
}

fn read_artwork_unguarded(path: &Path) -> Option<Artwork> {
    let options = ParseOptions::new()
        .read_properties(false)
        .read_cover_art(true);
    let file = parse(path, options).ok()?;
    let pictures = || {
        file.primary_tag()
            .into_iter()
            .chain(file.tags())
            .flat_map(|tag| tag.pictures())
    };
    let picture = pictures()
        .find(|picture| picture.pic_type() == PictureType::CoverFront)
        .or_else(|| pictures().next())?;
    if picture.data().len() > MAX_ARTWORK_BYTES {
        return None;
    }
    Some(Artwork {
        content_type: image_type(picture.mime_type())?,
        data: Bytes::copy_from_slice(picture.data()),
    })
}

fn parse(path: &Path, options: ParseOptions) -> Result<TaggedFile, Box<dyn std::error::Error>> {
    Ok(Probe::open(path)?
        .options(options)
        .guess_file_type()?
        .read()?)
}

/// The content type a picture is answered with: only raster images. Anything
/// else (an SVG could run script on this origin, an unknown type is a guess)
/// is not answered at all.
fn image_type(mime: Option<&MimeType>) -> Option<&'static str> {
    match mime? {
        MimeType::Png => Some("image/png"),
        MimeType::Jpeg => Some("image/jpeg"),
        MimeType::Gif => Some("image/gif"),
        MimeType::Bmp => Some("image/bmp"),
        MimeType::Tiff => Some("image/tiff"),
        MimeType::Unknown(other) if other.eq_ignore_ascii_case("image/webp") => Some("image/webp"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_raster_images_have_a_content_type() {
        assert_eq!(image_type(Some(&MimeType::Png)), Some("image/png"));
        assert_eq!(image_type(Some(&MimeType::Jpeg)), Some("image/jpeg"));
        assert_eq!(
            image_type(Some(&MimeType::Unknown("image/WEBP".into()))),
            Some("image/webp")
        );
        assert_eq!(
            image_type(Some(&MimeType::Unknown("image/svg+xml".into()))),
            None
        );
        assert_eq!(
            image_type(Some(&MimeType::Unknown("text/html".into()))),
            None
        );
        assert_eq!(image_type(None), None);
    }

    #[test]
    fn a_file_that_is_no_media_has_no_tags() {
        let path = std::env::temp_dir().join(format!("syncroom-tags-{}.mp3", std::process::id()));
        std::fs::write(&path, b"not an mp3 at all, just text").expect("write");
        assert_eq!(read_tags(&path), FileTags::default());
        assert!(read_artwork(&path).is_none());
        // Best effort: a leftover temp file fails nothing.
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_version_changes_with_size_or_time_and_makes_a_strong_etag() {
        let path = std::env::temp_dir().join(format!("syncroom-version-{}", std::process::id()));
        std::fs::write(&path, b"one").expect("write");
        let first = FileVersion::of(&std::fs::metadata(&path).expect("meta"));
        std::fs::write(&path, b"three").expect("write");
        let second = FileVersion::of(&std::fs::metadata(&path).expect("meta"));
        assert_ne!(first, second);
        assert!(first.etag().starts_with("\"3-"), "{}", first.etag());
        // Best effort: a leftover temp file fails nothing.
        let _ = std::fs::remove_file(&path);
    }
}
