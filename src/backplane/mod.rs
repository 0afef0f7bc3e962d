//! How rooms are shared between nodes.
//!
//! In the default in-memory mode there is nothing to share: each room's actor is
//! the room (see [`crate::registry`]). With `--redis` the room lives in Redis and
//! every node that serves it runs a *mirror* actor, fed by one subscription per
//! room per node; [`redis::RedisBackplane`] is that whole protocol. Either way the
//! HTTP handlers talk to the same [`crate::room::RoomHandle`] and the same pure
//! state machine decides every change.

pub mod redis;

pub use self::redis::RedisBackplane;

/// Redis did not answer in time or could not be reached: the caller answers
/// `503 unavailable` and nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the shared room store (Redis) is unavailable")]
pub struct Unavailable;
