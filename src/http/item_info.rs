//! What the server adds to an item it knows more about than its adder said:
//! a `/media/…` file's duration, title and artist, filled in before the
//! command reaches the room (the lookup is cached per file version and reads
//! on the blocking pool), and a YouTube video's, asked of the Data API after
//! the command is answered and sent to the room as an `ItemInfo` input. A
//! `playlist_id` becomes `queue_add`s of the playlist's videos here, since
//! only this side can ask the API.

use std::time::Instant;

use futures_util::future::join_all;
use tokio::sync::Semaphore;

use super::error::ApiError;
use crate::actor::handle::{CommandReply, HostToken, RoomError};
use crate::actor::RoomHandle;
use crate::metadata::{ItemSource, Metadata, PlaylistError, YouTubeError};
use crate::room::command::{CommandRequest, ItemInfo, NewItem, MAX_ITEMS_PER_ADD};
use crate::room::view::RoomView;
use crate::room::{Command, CommandError, Source};

/// Background YouTube lookups running at once, across all rooms; a command
/// that finds none free is answered as usual and its items stay as given.
static LOOKUPS: Semaphore = Semaphore::const_new(32);

/// Fills what the adder left unknown of every `/media/…` item of a `load` or
/// `queue_add` from the file itself. Items the library does not have stay as
/// they are: the room checks their URL as for any other.
pub async fn fill_from_files(metadata: &Metadata, command: &mut Command) {
    if metadata.library().is_none() {
        return;
    }
    match command {
        Command::Load {
            source: Source::Media(url),
            duration,
            title,
            artist,
            ..
        } => {
            if let Some(info) = media_info(metadata, Some(url), *duration, title, artist).await {
                fill(duration, title, artist, info);
            }
        }
        Command::QueueAdd { items } => {
            let lookups = items.iter().map(|item| {
                let url = match &item.source {
                    Source::Media(url) => Some(url.as_str()),
                    Source::Video(_) => None,
                };
                media_info(metadata, url, item.duration, &item.title, &item.artist)
            });
            let infos = join_all(lookups).await;
            for (item, info) in items.iter_mut().zip(infos) {
                if let Some(info) = info {
                    fill(&mut item.duration, &mut item.title, &mut item.artist, info);
                }
            }
        }
        _ => {}
    }
}

/// The file's metadata, asked only for a `/media/…` item whose adder left
/// something unknown.
async fn media_info(
    metadata: &Metadata,
    url: Option<&str>,
    duration: Option<f64>,
    title: &Option<String>,
    artist: &Option<String>,
) -> Option<ItemInfo> {
    if duration.is_some() && title.is_some() && artist.is_some() {
        return None;
    }
    let info = metadata.item_info(ItemSource::Media(url?)).await?;
    Some(ItemInfo {
        title: info.title,
        artist: info.artist,
        duration: info.duration,
    })
}

/// What the adder gave wins; the server fills only what is missing.
fn fill(
    duration: &mut Option<f64>,
    title: &mut Option<String>,
    artist: &mut Option<String>,
    info: ItemInfo,
) {
    *duration = duration.or(info.duration);
    if title.is_none() {
        *title = info.title;
    }
    if artist.is_none() {
        *artist = info.artist;
    }
}

/// The `queue_add`s a `playlist_id` stands for: the playlist's videos, up to
/// what the room's queue has room for, in commands of at most
/// [`MAX_ITEMS_PER_ADD`] items. With no room left, one item, so the room
/// answers that its queue is full. `None` when the command is no playlist or
/// the server has no API key (the room then refuses it, saying why).
pub async fn expand_playlist(
    metadata: &Metadata,
    handle: &RoomHandle,
    max_queue: usize,
    request: &CommandRequest,
) -> Result<Option<Vec<CommandRequest>>, ApiError> {
    let Command::QueuePlaylist { playlist_id, name } = &request.command else {
        return Ok(None);
    };
    if metadata.youtube().is_none() {
        return Ok(None);
    }
    let queued = handle.view().await?.queue.len();
    let room_left = max_queue.saturating_sub(queued).max(1);
    let videos = match metadata.playlist(playlist_id, room_left).await {
        Ok(videos) => videos,
        Err(PlaylistError::NoApiKey) => return Ok(None),
        Err(PlaylistError::YouTube(error)) => return Err(playlist_error(playlist_id, error)),
    };
    if videos.is_empty() {
        return Err(CommandError::InvalidValue(format!(
            "playlist_id: the playlist {playlist_id} has no video that can be played"
        ))
        .into());
    }
    let items: Vec<NewItem> = videos
        .iter()
        .map(|video| NewItem {
            source: Source::Video(video.video_id.clone()),
            title: video.title.clone(),
            artist: video.artist.clone(),
            duration: video.duration,
            name: name.clone(),
        })
        .collect();
    let commands = items
        .chunks(MAX_ITEMS_PER_ADD)
        .enumerate()
        .map(|(index, chunk)| CommandRequest {
            command: Command::QueueAdd {
                items: chunk.to_vec(),
            },
            // The guard holds for the first add; the rest follow from it.
            expected_version: request.expected_version.filter(|_| index == 0),
        })
        .collect();
    Ok(Some(commands))
}

/// A playlist the API would not give: the client's mistake when the API says
/// the playlist does not exist, the server's trouble otherwise.
fn playlist_error(playlist_id: &str, error: YouTubeError) -> ApiError {
    tracing::warn!(playlist_id, %error, "the YouTube API gave no playlist");
    match error {
        YouTubeError::InvalidPlaylistId | YouTubeError::Api { status: 404, .. } => {
            CommandError::InvalidValue(format!("playlist_id: {error}")).into()
        }
        _ => ApiError::Busy {
            message: "the YouTube API did not give the playlist; try again later",
            retry_after_secs: 30,
        },
    }
}

/// Applies `requests` in order (a playlist is several); answers the last reply.
pub async fn apply_all(
    handle: &RoomHandle,
    requests: Vec<CommandRequest>,
    token: Option<HostToken>,
    arrived: Instant,
) -> Result<CommandReply, RoomError> {
    let mut last = None;
    for request in requests {
        let reply = handle.command(request, token.clone(), arrived).await?;
        last = Some(reply);
    }
    last.ok_or(RoomError::Refused(CommandError::InvalidValue(
        "nothing to add".into(),
    )))
}

/// The YouTube videos of a command whose details the adder left unknown.
pub fn videos_to_look_up(metadata: &Metadata, command: &Command) -> Vec<String> {
    if metadata.youtube().is_none() {
        return Vec::new();
    }
    let unknown =
        |duration: &Option<f64>, title: &Option<String>| duration.is_none() || title.is_none();
    let mut videos: Vec<String> = match command {
        Command::Load {
            source: Source::Video(id),
            duration,
            title,
            ..
        } if unknown(duration, title) => vec![id.clone()],
        Command::QueueAdd { items } => items
            .iter()
            .filter(|item| unknown(&item.duration, &item.title))
            .filter_map(|item| item.source.video_id().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    videos.sort();
    videos.dedup();
    videos
}

/// After the room answered: asks the API about `videos` in the background and
/// sends the room what it learns, for every item of the room (queued or
/// loaded) that plays one of them. The room fills only what is still unknown,
/// so an item given details meanwhile keeps them.
pub fn look_up_later(
    metadata: &Metadata,
    handle: RoomHandle,
    videos: Vec<String>,
    room: &RoomView,
) {
    if videos.is_empty() {
        return;
    }
    let Ok(permit) = LOOKUPS.try_acquire() else {
        tracing::warn!(
            videos = videos.len(),
            "too many YouTube lookups under way; the items stay as given"
        );
        return;
    };
    let targets = targets(room, &videos);
    let metadata = metadata.clone();
    tokio::spawn(async move {
        send_infos(&metadata, &handle, videos, targets).await;
        drop(permit);
    });
}

/// Which items play each video: `Some(item_id)` for a queued item or the
/// loaded item, `None` for an item loaded by `load` (which has no id).
fn targets(room: &RoomView, videos: &[String]) -> Vec<(String, Option<String>)> {
    let loaded = room
        .state
        .source
        .as_ref()
        .and_then(Source::video_id)
        .map(|video| (video.to_owned(), room.state.item_id.clone()));
    let queued = room.queue.iter().filter_map(|item| {
        let video = item.source.video_id()?;
        Some((video.to_owned(), Some(item.item_id.clone())))
    });
    loaded
        .into_iter()
        .chain(queued)
        .filter(|(video, _)| videos.contains(video))
        .collect()
}

async fn send_infos(
    metadata: &Metadata,
    handle: &RoomHandle,
    videos: Vec<String>,
    targets: Vec<(String, Option<String>)>,
) {
    for video in videos {
        let Some(info) = metadata.item_info(ItemSource::YouTube(&video)).await else {
            continue;
        };
        for (_, item_id) in targets.iter().filter(|(v, _)| *v == video) {
            let info = ItemInfo {
                title: info.title.clone(),
                artist: info.artist.clone(),
                duration: info.duration,
            };
            if let Err(error) = handle.item_info(item_id.clone(), info).await {
                tracing::debug!(%error, "a room did not take a video's details");
            }
        }
    }
}
