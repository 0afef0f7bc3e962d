//! What every refusal of a client's value is: [`CommandError`], and the checks
//! that commands, chat, room names and item sources share. The bottom of the
//! room's domain: it names nothing else of it, so everything may use it.

use super::is_video_id;

/// The one message for a malformed `video_id`, wherever one is given.
pub const VIDEO_ID_RULE: &str = "`video_id` must be an 11-character YouTube id ([A-Za-z0-9_-])";

/// Why a command (or chat message) was refused. Each maps to one row of the error
/// table in docs/API.md.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    InvalidJson(String),
    #[error("{0}")]
    InvalidCommand(String),
    #[error("{0}")]
    InvalidValue(String),
    /// No token where one is needed: `401 unauthorized`, naming what was
    /// asked and who may.
    #[error("{0}")]
    Unauthorized(String),
    /// A token that is no one's in this room (a revoked co-host's too).
    #[error("this token is neither the room's host token nor a live co-host's")]
    Forbidden,
    #[error("the room is at version {actual}, not the expected {expected}")]
    VersionConflict { expected: u64, actual: u64 },
    /// `--max-persistent-rooms` rooms are persistent already (on this node, or
    /// across the cluster with `--redis`).
    #[error("the server holds as many persistent rooms as it may; make another room not persistent or delete it first")]
    TooManyPersistent,
    /// A valid token that may not do this: `403 forbidden`, naming the group
    /// and who may.
    #[error("{0}")]
    NotPermitted(String),
    /// Something the call names (a co-host, a chat message) is not there:
    /// `404 not_found`.
    #[error("{0}")]
    NotFound(String),
}

/// A YouTube video id, or the one message for a malformed one.
pub fn check_video_id(video_id: &str) -> Result<(), CommandError> {
    if is_video_id(video_id) {
        Ok(())
    } else {
        Err(CommandError::InvalidValue(VIDEO_ID_RULE.into()))
    }
}

/// Whether a text field may be empty (once trimmed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Empty {
    Allowed,
    Refused,
}

/// Trims `text` and checks it is at most `max_chars` characters with no control
/// characters, and not empty when `empty` refuses it. Returns the trimmed text.
pub fn check_text<'a>(
    field: &str,
    text: &'a str,
    max_chars: usize,
    empty: Empty,
) -> Result<&'a str, CommandError> {
    let trimmed = text.trim();
    let chars = trimmed.chars().count();
    if chars == 0 && empty == Empty::Refused {
        return Err(CommandError::InvalidValue(format!(
            "`{field}` must not be empty"
        )));
    }
    if chars > max_chars {
        return Err(CommandError::InvalidValue(format!(
            "`{field}` must be at most {max_chars} characters"
        )));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(CommandError::InvalidValue(format!(
            "`{field}` must not contain control characters"
        )));
    }
    Ok(trimmed)
}
