//! The one connection type the Redis backplane talks through, whether rooms
//! live on one Redis (`--redis`) or on a Redis Cluster (`--redis-cluster`).
//!
//! Every call of the backplane is written once, against [`Conn`]: a command or
//! a script names its keys, and the cluster connection routes it to the shard
//! of its first key (a pipeline to the shard of all its keys, which must share
//! a slot). What differs between the two is said here and nowhere else:
//! - the feed: classic pub/sub on one Redis, sharded pub/sub (`SPUBLISH`,
//!   `SSUBSCRIBE`) on a cluster, where a classic `PUBLISH` would be broadcast to
//!   every node of every shard;
//! - how the keys that span rooms are spread ([`Layout`]): one key each on one
//!   Redis (the names every version used), several buckets on a cluster so that
//!   no single key is hit by the whole service.

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use std::time::Duration;

use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

/// A connection to one Redis or to a cluster.
#[derive(Clone)]
pub enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(conn) => conn.req_packed_command(cmd),
            Conn::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(conn) => conn.get_db(),
            Conn::Cluster(conn) => conn.get_db(),
        }
    }
}

impl Conn {
    /// Subscribes to a room's feed channel (sharded on a cluster: only the
    /// room's shard delivers it, to the nodes that asked).
    pub async fn subscribe_feed(&mut self, channel: &str) -> RedisResult<()> {
        match self {
            Conn::Single(conn) => conn.subscribe(channel).await,
            Conn::Cluster(conn) => conn.ssubscribe(channel).await,
        }
    }

    pub async fn unsubscribe_feed(&mut self, channel: &str) -> RedisResult<()> {
        match self {
            Conn::Single(conn) => conn.unsubscribe(channel).await,
            Conn::Cluster(conn) => conn.sunsubscribe(channel).await,
        }
    }

    /// Pings the node that serves `key` (on one Redis, the Redis): once it
    /// answers, that node's connection is up, with its subscriptions.
    pub async fn ping_node_of(&mut self, key: &str) -> RedisResult<()> {
        match self {
            Conn::Single(conn) => redis::cmd("PING").query_async(conn).await,
            Conn::Cluster(conn) => {
                let route = Route::with_key(key, SlotAddr::Master);
                conn.route_command(
                    redis::cmd("PING"),
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                )
                .await
                .map(drop)
            }
        }
    }

    /// `WAIT replicas timeout_ms` on the node that serves `key`, through the
    /// connection its writes went through: how many replicas have them.
    pub async fn wait_replicas(
        &mut self,
        key: &str,
        replicas: usize,
        timeout_ms: u64,
    ) -> RedisResult<i64> {
        let mut wait = redis::cmd("WAIT");
        wait.arg(replicas).arg(timeout_ms);
        match self {
            Conn::Single(conn) => wait.query_async(conn).await,
            // A plain WAIT would go to every primary: this one asks the room's.
            Conn::Cluster(conn) => {
                let route = Route::with_key(key, SlotAddr::Master);
                let answer = conn
                    .route_command(
                        wait,
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                    )
                    .await?;
                Ok(redis::from_redis_value(answer)?)
            }
        }
    }

    /// Pings every primary, each within `bound`: each shard's name and whether
    /// it answered. One Redis is one shard, named `label`; a cluster's shards
    /// are named `host:port (slots a-b)` after its slot map (`CLUSTER SLOTS`,
    /// asked of any node: a dead primary stays in it until replaced).
    pub async fn probe_shards(&mut self, label: &str, bound: Duration) -> Vec<(String, bool)> {
        let answered = |ping: RedisResult<Value>| ping.is_ok();
        match self {
            Conn::Single(conn) => {
                let ping = redis::cmd("PING");
                let ping = tokio::time::timeout(bound, ping.query_async(conn));
                vec![(label.to_owned(), ping.await.is_ok_and(answered))]
            }
            Conn::Cluster(conn) => {
                let mut ask = redis::cmd("CLUSTER");
                ask.arg("SLOTS");
                let slots = tokio::time::timeout(bound, ask.query_async::<Value>(conn));
                let Ok(Ok(slots)) = slots.await else {
                    return vec![(label.to_owned(), false)];
                };
                let mut shards = Vec::new();
                for (host, port, name) in primaries(&slots) {
                    let ping = conn.route_command(
                        redis::cmd("PING"),
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port }),
                    );
                    let up = tokio::time::timeout(bound, ping).await.is_ok_and(answered);
                    shards.push((name, up));
                }
                shards
            }
        }
    }

    pub fn layout(&self) -> Layout {
        match self {
            Conn::Single(_) => Layout::Single,
            Conn::Cluster(_) => Layout::Cluster,
        }
    }
}

/// Buckets of the room count (`--max-rooms`) and of the public listing on a
/// cluster. Each bucket is one key on some shard; a creation touches one count
/// bucket, a listener change one listing bucket, so each bucket carries
/// `1/BUCKETS` of the service's creations and listener changes, and creation
/// and listing read all of them (concurrently, one command each).
pub const CLUSTER_BUCKETS: usize = 8;

/// Where the cross-room keys live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One Redis: one key each, the names every version of the server used,
    /// so that nodes of different versions share them during a rolling upgrade.
    Single,
    /// A cluster: [`CLUSTER_BUCKETS`] keys each, with their own hash tags.
    Cluster,
}

impl Layout {
    /// The command that publishes on a room's feed (an argument of the scripts).
    pub fn publish(self) -> &'static str {
        match self {
            Layout::Single => "PUBLISH",
            Layout::Cluster => "SPUBLISH",
        }
    }

    fn buckets(self) -> usize {
        match self {
            Layout::Single => 1,
            Layout::Cluster => CLUSTER_BUCKETS,
        }
    }

    /// The bucket a room falls in: a hash of its id that every node and every
    /// version computes alike (FNV-1a).
    fn bucket_of(self, room_id: &str) -> usize {
        let mut hash: u32 = 0x811c_9dc5;
        for byte in room_id.bytes() {
            hash ^= u32::from(byte);
            hash = hash.wrapping_mul(0x0100_0193);
        }
        hash as usize % self.buckets()
    }

    /// The set of room ids that counts rooms for `--max-rooms`.
    pub fn count_key(self, room_id: &str) -> String {
        self.count_bucket(self.bucket_of(room_id))
    }

    fn count_bucket(self, bucket: usize) -> String {
        match self {
            Layout::Single => "syncroom:rooms".to_owned(),
            Layout::Cluster => format!("syncroom:{{rooms-{bucket}}}:ids"),
        }
    }

    pub fn count_keys(self) -> Vec<String> {
        (0..self.buckets()).map(|b| self.count_bucket(b)).collect()
    }

    /// The public rooms scored by listeners, where `GET /api/rooms` reads.
    pub fn public_key(self, room_id: &str) -> String {
        self.public_bucket(self.bucket_of(room_id))
    }

    fn public_bucket(self, bucket: usize) -> String {
        match self {
            Layout::Single => "syncroom:public".to_owned(),
            Layout::Cluster => format!("syncroom:{{public-{bucket}}}:ids"),
        }
    }

    pub fn public_keys(self) -> Vec<String> {
        (0..self.buckets()).map(|b| self.public_bucket(b)).collect()
    }
}

/// The primaries of a `CLUSTER SLOTS` answer: host, port, and a name that
/// says which slots each serves (`host:port (slots a-b)`).
fn primaries(slots: &Value) -> Vec<(String, u16, String)> {
    let Value::Array(ranges) = slots else {
        return Vec::new();
    };
    let mut found: Vec<(String, u16, String)> = Vec::new();
    for range in ranges {
        let Value::Array(fields) = range else {
            continue;
        };
        let (Some(first), Some(last), Some(Value::Array(primary))) =
            (fields.first(), fields.get(1), fields.get(2))
        else {
            continue;
        };
        let (Ok(first), Ok(last)) = (
            redis::from_redis_value_ref::<u16>(first),
            redis::from_redis_value_ref::<u16>(last),
        ) else {
            continue;
        };
        let (Some(host), Some(port)) = (primary.first(), primary.get(1)) else {
            continue;
        };
        let (Ok(host), Ok(port)) = (
            redis::from_redis_value_ref::<String>(host),
            redis::from_redis_value_ref::<u16>(port),
        ) else {
            continue;
        };
        match found.iter_mut().find(|(h, p, _)| *h == host && *p == port) {
            Some((_, _, name)) => name.push_str(&format!(", {first}-{last}")),
            None => {
                let name = format!("{host}:{port} (slots {first}-{last}");
                found.push((host, port, name));
            }
        }
    }
    for (_, _, name) in &mut found {
        name.push(')');
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_redis_keeps_the_names_older_nodes_use() {
        assert_eq!(Layout::Single.count_keys(), ["syncroom:rooms"]);
        assert_eq!(Layout::Single.public_key("abc"), "syncroom:public");
    }

    #[test]
    fn a_cluster_spreads_rooms_over_every_bucket() {
        let mut used = std::collections::BTreeSet::new();
        for i in 0..200 {
            used.insert(Layout::Cluster.count_key(&format!("room-{i}")));
        }
        assert_eq!(used.len(), CLUSTER_BUCKETS);
        assert_eq!(
            Layout::Cluster.count_key("abc"),
            Layout::Cluster.count_key("abc")
        );
    }
}
