//! The budgets that span rooms, kept beside the room's own script rather than
//! inside it: on a cluster a script may touch one slot only, and a room's keys
//! share its slot while a creator's rooms, the persistent rooms and the room
//! count do not. One code path serves one Redis and a cluster (on one Redis the
//! buckets are one key each, under the names older nodes use).
//!
//! What each check guarantees (docs/API.md says it to operators):
//! - `--max-rooms-per-client` and `--max-persistent-rooms`: exact. Each is one
//!   set, and its check-and-add is one script ([`RESERVE`](super::RESERVE)), so
//!   two nodes creating at once cannot both take the last place. A reservation
//!   whose room never came (its node died between the steps) counts until the
//!   set looks full, when members whose room is gone are removed.
//! - `--max-rooms`: the count is read over all buckets, then the room's id is
//!   added to its own: creations that pass the check at the same moment can
//!   overshoot it by their number; once it is seen full no creation passes
//!   until rooms go. Expired rooms are removed from the buckets when the count
//!   looks full, not the moment they expire.
//! - The listing: a room is in its bucket from creation (public) and gets its
//!   score from each presence report; a write lost with a node (or a failover)
//!   is restored by the next report of any node serving the room.

use std::sync::Arc;

use futures_util::stream::{self, StreamExt};
use redis::AsyncCommands;

use super::{keys, unavailable, RedisBackplane};
use crate::actor::port::{CreateLimits, CreateOutcome, Unavailable};
use crate::room::Room;

/// Rooms checked at once while a full budget is cleaned (bounds the commands
/// in flight, not the work).
const CLEANUP_CONCURRENCY: usize = 32;

/// Which budget set a reservation is in; each knows what makes a member stale.
#[derive(Clone, Copy)]
pub(super) enum Budget {
    /// A creator's rooms: a member counts while its room names this set.
    Creator,
    /// The persistent rooms: a member counts while its room is persistent.
    Persistent,
}

/// What a creation reserved, so that a creation that did not happen can give
/// back exactly what it took (not a reservation an existing room holds).
#[derive(Default)]
pub(super) struct Reserved {
    creator: Option<String>,
    persistent: bool,
    counted: bool,
}

impl RedisBackplane {
    /// Takes the room's places in the budgets, or says which one is full.
    pub(super) async fn reserve_creation(
        &self,
        room: &Room,
        limits: &CreateLimits,
    ) -> Result<Result<Reserved, CreateOutcome>, Unavailable> {
        let id = &room.room_id;
        let mut reserved = Reserved::default();
        if self.room_count().await? >= limits.max_rooms as u64 {
            self.sweep_room_count().await?;
            if self.room_count().await? >= limits.max_rooms as u64 {
                return Ok(Err(CreateOutcome::Full));
            }
        }
        if let Some(address) = &room.creator {
            let key = keys::creator(address);
            let expiry = self.creator_expiry(room.persistent);
            let max = limits.max_rooms_per_client;
            match self.reserve(&key, id, max, expiry, Budget::Creator).await? {
                Some(new) => reserved.creator = new.then_some(key),
                None => return Ok(Err(CreateOutcome::TooManyForClient)),
            }
        }
        if room.persistent {
            let max = limits.max_persistent_rooms;
            match self.reserve_persistent(id, max).await {
                Ok(Some(new)) => reserved.persistent = new,
                outcome => {
                    self.give_back(id, reserved).await;
                    return outcome.map(|_| Err(CreateOutcome::TooManyPersistent));
                }
            }
        }
        let mut conn = self.commands.clone();
        let count_key = self.layout.count_key(id);
        let added: Result<i64, Unavailable> = self
            .bounded(async {
                redis::cmd("ZADD")
                    .arg(&count_key)
                    .arg("NX")
                    .arg(0)
                    .arg(id.as_str())
                    .query_async(&mut conn)
                    .await
                    .map_err(unavailable)
            })
            .await;
        match added {
            Ok(added) => reserved.counted = added > 0,
            Err(error) => {
                self.give_back(id, reserved).await;
                return Err(error);
            }
        }
        Ok(Ok(reserved))
    }

    /// Takes back what [`Self::reserve_creation`] took for a room that was not
    /// created. Best effort: a place left behind is found stale when its set
    /// looks full.
    pub(super) async fn give_back(&self, room_id: &str, reserved: Reserved) {
        let mut removals = Vec::new();
        if let Some(creator) = reserved.creator {
            removals.push(creator);
        }
        if reserved.persistent {
            removals.push(keys::PERSISTENT.to_owned());
        }
        if reserved.counted {
            removals.push(self.layout.count_key(room_id));
        }
        self.remove_from(room_id, removals).await;
    }

    /// Forgets a closed room in every set that spans rooms.
    pub(super) async fn forget_room(&self, room: &Room) {
        let id = &room.room_id;
        let mut sets = vec![
            self.layout.count_key(id),
            self.layout.public_key(id),
            keys::PERSISTENT.to_owned(),
        ];
        if let Some(address) = &room.creator {
            sets.push(keys::creator(address));
        }
        self.remove_from(id, sets).await;
        self.creators_kept.remove(id.as_str());
    }

    async fn remove_from(&self, room_id: &str, sets: Vec<String>) {
        let removals = sets.into_iter().map(|set| {
            let mut conn = self.commands.clone();
            async move {
                let removed = self
                    .bounded(async {
                        conn.zrem::<_, _, ()>(&set, room_id)
                            .await
                            .map_err(unavailable)
                    })
                    .await;
                // A member left behind is removed when its set looks full.
                let _ = removed;
            }
        });
        futures_util::future::join_all(removals).await;
    }

    /// Reserves in `key` (see [`Budget`]): `Some(true)` reserved now,
    /// `Some(false)` the room held a place already, `None` full even after the
    /// members whose room is gone were removed.
    pub(super) async fn reserve(
        &self,
        key: &str,
        room_id: &str,
        max: usize,
        expiry_ms: i64,
        budget: Budget,
    ) -> Result<Option<bool>, Unavailable> {
        for attempt in 0..2 {
            let mut conn = self.commands.clone();
            let mut invocation = self.reserve.key(key);
            invocation
                .arg(room_id)
                .arg(max)
                .arg(self.now_ms())
                .arg(expiry_ms);
            let answer: i64 = self.run_script(&invocation, &mut conn).await?;
            match answer {
                0 if attempt == 0 => self.clean_budget(key, budget).await?,
                0 => return Ok(None),
                answer => return Ok(Some(answer == 2)),
            }
        }
        Ok(None)
    }

    /// Reserves a place among the persistent rooms (`--max-persistent-rooms`).
    pub(super) async fn reserve_persistent(
        &self,
        room_id: &str,
        max: usize,
    ) -> Result<Option<bool>, Unavailable> {
        self.reserve(keys::PERSISTENT, room_id, max, 0, Budget::Persistent)
            .await
    }

    /// Removes from a full budget set the members whose room no longer counts
    /// there. A reservation younger than the Redis timeout is kept: its room
    /// may be being created right now.
    async fn clean_budget(&self, key: &str, budget: Budget) -> Result<(), Unavailable> {
        let mut conn = self.commands.clone();
        let settled_before = self.now_ms() - self.timeout.as_millis() as i64;
        let members: Vec<String> = self
            .bounded(async {
                conn.zrangebyscore(key, "-inf", settled_before)
                    .await
                    .map_err(unavailable)
            })
            .await?;
        let stale = which_gone(members, |id| {
            let mut conn = self.commands.clone();
            async move {
                let field = match budget {
                    Budget::Creator => "c",
                    Budget::Persistent => "p",
                };
                let value: Option<String> = self
                    .bounded(async { conn.hget(keys::room(&id), field).await.map_err(unavailable) })
                    .await?;
                let counts = match budget {
                    Budget::Creator => value.as_deref() == Some(key),
                    Budget::Persistent => value.as_deref() == Some("1"),
                };
                Ok((!counts).then_some(id))
            }
        })
        .await?;
        self.remove_members(key, stale).await
    }

    /// Removes `members` from the sorted set `key` (nothing to do for none).
    async fn remove_members(&self, key: &str, members: Vec<String>) -> Result<(), Unavailable> {
        if members.is_empty() {
            return Ok(());
        }
        let mut conn = self.commands.clone();
        self.bounded(async { conn.zrem(key, members).await.map_err(unavailable) })
            .await
    }

    /// The rooms counted for `--max-rooms`, over every bucket.
    async fn room_count(&self) -> Result<u64, Unavailable> {
        let counts = self.layout.count_keys().into_iter().map(|key| {
            let mut conn = self.commands.clone();
            async move {
                self.bounded(async { conn.zcard::<_, u64>(&key).await.map_err(unavailable) })
                    .await
            }
        });
        let counts = futures_util::future::try_join_all(counts).await?;
        Ok(counts.into_iter().sum())
    }

    /// Removes the rooms that expired from the count's buckets.
    async fn sweep_room_count(&self) -> Result<(), Unavailable> {
        for key in self.layout.count_keys() {
            let mut conn = self.commands.clone();
            let ids: Vec<String> = self
                .bounded(async { conn.zrange(&key, 0, -1).await.map_err(unavailable) })
                .await?;
            let gone = which_gone(ids, |id| async move {
                self.exists(&id).await.map(|yes| (!yes).then_some(id))
            })
            .await?;
            self.remove_members(&key, gone).await?;
        }
        Ok(())
    }

    /// How long a creator's set is made to live by a reservation or a refresh:
    /// twice a room's life, refreshed at most every half of it
    /// ([`Self::keep_creator`]), so that it outlives each of its rooms.
    fn creator_expiry(&self, persistent: bool) -> i64 {
        if persistent {
            -1
        } else {
            2 * self.ttl_ms() as i64
        }
    }

    /// Keeps a creator's set alive while one of its rooms is (a commit or a
    /// report with listeners extends the room's life): at most one refresh per
    /// room per half room life on this node. A persistent room's set was made
    /// to last when the room became persistent ([`Self::make_creator_last`]).
    pub(super) async fn keep_creator(&self, room_id: &str, creator: &str, persistent: bool) {
        if creator.is_empty() {
            return;
        }
        if persistent {
            return;
        }
        let now = self.now_ms();
        let every = self.ttl_ms() as i64 / 2;
        let due = self
            .creators_kept
            .get(room_id)
            .is_none_or(|kept| now - *kept >= every);
        if !due {
            return;
        }
        let mut conn = self.commands.clone();
        let refreshed = self
            .bounded(async {
                redis::cmd("PEXPIRE")
                    .arg(creator)
                    .arg(self.creator_expiry(false))
                    .arg("GT")
                    .query_async::<()>(&mut conn)
                    .await
                    .map_err(unavailable)
            })
            .await;
        if refreshed.is_ok() {
            self.creators_kept.insert(Arc::from(room_id), now);
        }
    }

    /// Makes a creator's set last (a room of it became persistent).
    pub(super) async fn make_creator_last(&self, creator: &str) {
        let mut conn = self.commands.clone();
        let made = self
            .bounded(async { conn.persist::<_, ()>(creator).await.map_err(unavailable) })
            .await;
        // Left expiring, the set would forget a room that outlives it: said in the log.
        if made.is_err() {
            tracing::warn!("a creator's set of rooms could not be made to last");
        }
    }

    /// Puts a public room into the listing with its listener total, or takes
    /// a room that is not public out of it.
    pub(super) async fn list_room(&self, room_id: &str, public: bool, listeners: u64) {
        let key = self.layout.public_key(room_id);
        let mut conn = self.commands.clone();
        let written = self
            .bounded(async {
                if public {
                    conn.zadd::<_, _, _, ()>(&key, room_id, listeners).await
                } else {
                    conn.zrem::<_, _, ()>(&key, room_id).await
                }
                .map_err(unavailable)
            })
            .await;
        // The next presence report of any node serving the room writes it again.
        let _ = written;
    }
}

/// Of `ids`, those `gone` answers with (`Some(id)`), asked `CLEANUP_CONCURRENCY`
/// at a time; the first failure fails the lot.
async fn which_gone<F, Fut>(ids: Vec<String>, gone: F) -> Result<Vec<String>, Unavailable>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<Option<String>, Unavailable>>,
{
    stream::iter(ids)
        .map(gone)
        .buffer_unordered(CLEANUP_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .filter_map(Result::transpose)
        .collect()
}
