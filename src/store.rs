//! Durable single-node rooms (`--data-dir`): each room is kept as one JSON file,
//! `DIR/rooms/{room_id}.json`, so a restart of the in-memory mode keeps rooms,
//! their versions, queues and host token hashes.
//!
//! Rooms never wait for the disk. An actor hands its latest [`Room`] to the
//! store after every change ([`RoomStore::save`] is a map insert); one writer
//! task drains the map in the background, so a room changing a hundred times a
//! second costs one write per sweep, and memory is bounded by the number of
//! rooms. Each file is written to a temporary name, synced and renamed over the
//! old one: a crash leaves the old file or the new one, never half of either.
//! At shutdown [`RoomStore::flush`] writes whatever is still pending.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::Notify;

use crate::room::{is_room_id, Room};

/// How long the writer lets changes gather before writing them.
const WRITE_DELAY: Duration = Duration::from_millis(100);

/// The pending change of one room: its latest state, or `None` once closed.
type Pending = Option<Room>;

/// Where rooms are kept. Cheap to share; every method is non-blocking but
/// [`RoomStore::load`] and [`RoomStore::flush`].
pub struct RoomStore {
    rooms_dir: PathBuf,
    pending: DashMap<String, Pending>,
    changed: Notify,
    /// Held while a batch is written (see [`RoomStore::flush`]).
    writing: tokio::sync::Mutex<()>,
}

impl RoomStore {
    /// Opens the store under `data_dir`, which must be an existing directory
    /// this process can write in: a mistyped path fails start-up, naming the
    /// path, rather than starting an empty store somewhere else. `rooms/` in it
    /// is created when missing.
    pub fn open(data_dir: &Path) -> std::io::Result<Arc<Self>> {
        use std::io::{Error, ErrorKind};
        let bad = |kind: ErrorKind, what: String| {
            Error::new(
                kind,
                format!(
                    "--data-dir {}: {what} (expected an existing, writable directory)",
                    data_dir.display()
                ),
            )
        };
        match std::fs::metadata(data_dir) {
            Ok(metadata) if metadata.is_dir() => {}
            Ok(_) => return Err(bad(ErrorKind::NotADirectory, "not a directory".into())),
            Err(error) if error.kind() == ErrorKind::NotFound => {
                return Err(bad(ErrorKind::NotFound, "no such directory".into()))
            }
            Err(error) => return Err(bad(error.kind(), error.to_string())),
        }
        let rooms_dir = data_dir.join("rooms");
        std::fs::create_dir_all(&rooms_dir)
            .map_err(|error| bad(error.kind(), format!("cannot create rooms/ in it: {error}")))?;
        // Rooms are written in the background: find out now, not at the first change.
        let probe = rooms_dir.join(".syncroom-write-test");
        std::fs::write(&probe, b"")
            .and_then(|()| std::fs::remove_file(&probe))
            .map_err(|error| bad(error.kind(), format!("cannot write in it: {error}")))?;
        Ok(Arc::new(Self {
            rooms_dir,
            pending: DashMap::new(),
            changed: Notify::new(),
            writing: tokio::sync::Mutex::new(()),
        }))
    }

    /// Every room kept. A file that cannot be read or parsed is logged and
    /// skipped: one damaged room must not keep the others from coming back.
    pub fn load(&self) -> std::io::Result<Vec<Room>> {
        let mut rooms = Vec::new();
        for entry in std::fs::read_dir(&self.rooms_dir)? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let room = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| {
                    serde_json::from_slice::<Room>(&bytes).map_err(|e| e.to_string())
                });
            match room {
                Ok(room) if is_room_id(&room.room_id) => rooms.push(room),
                Ok(_) => {
                    tracing::warn!(path = %path.display(), "skipping a kept room with a bad id")
                }
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "skipping an unreadable kept room")
                }
            }
        }
        Ok(rooms)
    }

    /// Records the room's latest state, to be written soon.
    pub fn save(&self, room: &Room) {
        self.pending
            .insert(room.room_id.clone(), Some(room.clone()));
        self.changed.notify_one();
    }

    /// Records that the room is gone: its file will be removed.
    pub fn forget(&self, room_id: &str) {
        self.pending.insert(room_id.to_owned(), None);
        self.changed.notify_one();
    }

    /// Writes pending changes until `shutdown`, then returns (call
    /// [`RoomStore::flush`] after the last room has stopped changing).
    pub async fn run_writer(self: Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.changed.notified() => {}
            }
            tokio::time::sleep(WRITE_DELAY).await;
            self.flush().await;
        }
    }

    /// Writes everything pending now.
    pub async fn flush(self: &Arc<Self>) {
        // One batch at a time, taken and written under the lock: the final flush
        // at shutdown must not remove a deleted room's file while the writer
        // task's earlier batch is still writing it back.
        let _one_writer = self.writing.lock().await;
        let batch: HashMap<String, Pending> = {
            let keys: Vec<String> = self.pending.iter().map(|e| e.key().clone()).collect();
            keys.into_iter()
                .filter_map(|key| self.pending.remove(&key))
                .collect()
        };
        if batch.is_empty() {
            return;
        }
        let store = self.clone();
        let written = tokio::task::spawn_blocking(move || store.write_batch(batch)).await;
        if let Err(error) = written {
            tracing::error!(%error, "the room writer task failed");
        }
    }

    fn write_batch(&self, batch: HashMap<String, Pending>) {
        for (room_id, pending) in batch {
            let path = self.rooms_dir.join(format!("{room_id}.json"));
            let result = match pending {
                Some(room) => write_atomically(&path, &room),
                None => match std::fs::remove_file(&path) {
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    other => other,
                },
            };
            if let Err(error) = result {
                tracing::error!(%room_id, %error, "cannot keep room on disk");
            }
        }
        // Make the renames themselves durable.
        if let Ok(dir) = std::fs::File::open(&self.rooms_dir) {
            let _ = dir.sync_all(); // best effort: not every filesystem syncs directories
        }
    }
}

/// Write to a temporary file, sync it, rename it over `path`.
fn write_atomically(path: &Path, room: &Room) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(room).map_err(std::io::Error::other)?;
    let temporary = path.with_extension("json.tmp");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::room::{Command, Control, Inputs};

    fn room(id: &str) -> Room {
        Room::new(
            id.into(),
            "n".into(),
            Control::Host,
            None,
            "token",
            10,
            1_000,
        )
    }

    #[tokio::test]
    async fn rooms_survive_a_reopen_and_forgotten_ones_do_not() {
        let dir = std::env::temp_dir().join(format!("syncroom-store-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir(&dir).unwrap();
        let store = RoomStore::open(&dir).unwrap();
        let mut kept = room("kept");
        kept.apply(Command::Seek { position: 42.0 }, &Inputs::at(2_000))
            .unwrap();
        store.save(&kept);
        store.save(&room("gone"));
        store.flush().await;
        store.forget("gone");
        store.flush().await;

        let reopened = RoomStore::open(&dir).unwrap();
        let rooms = reopened.load().unwrap();
        assert_eq!(rooms, vec![kept]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_damaged_file_is_skipped() {
        let dir = std::env::temp_dir().join(format!("syncroom-store-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir(&dir).unwrap();
        let store = RoomStore::open(&dir).unwrap();
        store.save(&room("good"));
        store.flush().await;
        std::fs::write(dir.join("rooms").join("bad.json"), b"{\"room_id\":").unwrap();
        let rooms = store.load().unwrap();
        assert_eq!(rooms.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
