//! Implementations of the room core's port for sharing rooms between nodes
//! ([`crate::actor::port::SharedRooms`]).
//!
//! In the default in-memory mode there is nothing to share: each room's local
//! driver is the room (see [`crate::registry`]). With `--redis` the room lives in
//! Redis and every node that serves it runs a mirror, fed by one subscription per
//! room per node; [`redis::RedisBackplane`] is that whole protocol, over one
//! Redis or a Redis Cluster (`--redis-cluster`, see `connection`). This module
//! depends on `room/`, never the reverse: a new backplane is a new module here
//! with one `impl SharedRooms`.

mod connection;
pub mod redis;

pub use self::redis::RedisBackplane;
pub use crate::actor::port::Unavailable;
