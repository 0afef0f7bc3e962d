//! [`RoomError`]: why a call on a room could not be answered, whichever way the
//! room is kept (here, or shared through a backplane).

use super::check::CommandError;

/// The shared room store did not answer in time or could not be reached: the
/// caller answers `503 unavailable` and nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the shared room store is not answering; nothing changed, try again shortly")]
pub struct Unavailable;

/// A room call that could not be answered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RoomError {
    /// The room is gone: closed, expired, deleted on another node (or the server
    /// is stopping).
    #[error("the room is closed")]
    Closed,
    /// The shared room store did not answer in time; nothing changed.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    #[error(transparent)]
    Refused(#[from] CommandError),
    /// A sync report was not taken (too soon, or the room holds as many as it may).
    #[error(transparent)]
    Sync(#[from] super::sync::SyncRefusal),
}
