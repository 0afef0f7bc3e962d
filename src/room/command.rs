//! The commands a host (or anyone, in an `open` room) sends to a room, and their
//! decoding from untrusted JSON.
//!
//! Decoding is two-step so that each kind of mistake gets the error code
//! docs/API.md promises: a body that is not a JSON object is `invalid_json`, an
//! unknown `type` or a missing field is `invalid_command`, a field of the wrong JSON
//! type is `invalid_json`, and a value out of range is `invalid_value`.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::state::Control;
use super::{is_video_id, state::MAX_POSITION};

/// Longest queue item title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Slowest and fastest playback rates, as the YouTube player allows.
pub const MIN_RATE: f64 = 0.25;
pub const MAX_RATE: f64 = 2.0;

/// One playback or queue command, tagged by `"type"` on the wire.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    Play {
        #[serde(default)]
        position: Option<f64>,
    },
    Pause {
        #[serde(default)]
        position: Option<f64>,
    },
    Seek {
        position: f64,
    },
    Load {
        video_id: String,
        #[serde(default)]
        position: Option<f64>,
        #[serde(default)]
        paused: Option<bool>,
        #[serde(default)]
        duration: Option<f64>,
    },
    Rate {
        rate: f64,
    },
    Duration {
        duration: f64,
    },
    QueueAdd {
        video_id: String,
        #[serde(default)]
        title: Option<String>,
    },
    QueueRemove {
        item_id: String,
    },
    QueueMove {
        item_id: String,
        index: u64,
    },
    Next {},
    Control {
        control: Control,
    },
}

/// The `type` names, for error messages and metric labels.
pub const COMMAND_TYPES: &[&str] = &[
    "play",
    "pause",
    "seek",
    "load",
    "rate",
    "duration",
    "queue_add",
    "queue_remove",
    "queue_move",
    "next",
    "control",
];

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
    #[error("this action needs the room's host token: send `Authorization: Bearer <host_token>`")]
    Unauthorized,
    #[error("the host token does not match this room")]
    Forbidden,
    #[error("the room is at version {actual}, not the expected {expected}")]
    VersionConflict { expected: u64, actual: u64 },
}

/// A decoded command with the optional compare-and-set guard that may come with it.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandRequest {
    pub command: Command,
    pub expected_version: Option<u64>,
}

impl Command {
    /// The wire name of this command's type.
    pub fn type_name(&self) -> &'static str {
        match self {
            Command::Play { .. } => "play",
            Command::Pause { .. } => "pause",
            Command::Seek { .. } => "seek",
            Command::Load { .. } => "load",
            Command::Rate { .. } => "rate",
            Command::Duration { .. } => "duration",
            Command::QueueAdd { .. } => "queue_add",
            Command::QueueRemove { .. } => "queue_remove",
            Command::QueueMove { .. } => "queue_move",
            Command::Next {} => "next",
            Command::Control { .. } => "control",
        }
    }

    /// Decodes one command from a request body that has already parsed as JSON.
    pub fn decode(body: Value) -> Result<CommandRequest, CommandError> {
        let Value::Object(mut fields) = body else {
            return Err(CommandError::InvalidJson(
                "the body must be a JSON object such as {\"type\": \"play\"}".into(),
            ));
        };
        let expected_version = take_expected_version(&mut fields)?;
        let type_name = match fields.get("type") {
            None => return Err(CommandError::InvalidCommand("missing field `type`".into())),
            Some(Value::String(name)) => name.as_str(),
            Some(_) => {
                return Err(CommandError::InvalidCommand(
                    "`type` must be a string naming a command".into(),
                ))
            }
        };
        if !COMMAND_TYPES.contains(&type_name) {
            return Err(CommandError::InvalidCommand(format!(
                "unknown command type `{}`; expected one of {}",
                truncate(type_name, 40),
                COMMAND_TYPES.join(", ")
            )));
        }
        let command: Command = serde_json::from_value(Value::Object(fields)).map_err(|err| {
            let message = err.to_string();
            // serde reports a missing field as "missing field `x`"; everything else
            // left at this point is a field of the wrong JSON type.
            if message.starts_with("missing field") {
                CommandError::InvalidCommand(message)
            } else {
                CommandError::InvalidJson(message)
            }
        })?;
        command.validate()?;
        Ok(CommandRequest {
            command,
            expected_version,
        })
    }

    /// Checks every value against its range. Pure, and also run by
    /// [`Room::apply`](super::Room::apply) so the state machine is safe on its own.
    pub fn validate(&self) -> Result<(), CommandError> {
        match self {
            Command::Play { position } | Command::Pause { position } => {
                position.map_or(Ok(()), check_position)
            }
            Command::Seek { position } => check_position(*position),
            Command::Load {
                video_id,
                position,
                duration,
                ..
            } => {
                check_video_id(video_id)?;
                position.map_or(Ok(()), check_position)?;
                duration.map_or(Ok(()), check_duration)
            }
            Command::Rate { rate } => {
                if rate.is_finite() && (MIN_RATE..=MAX_RATE).contains(rate) {
                    Ok(())
                } else {
                    Err(CommandError::InvalidValue(format!(
                        "`rate` must be between {MIN_RATE} and {MAX_RATE}"
                    )))
                }
            }
            Command::Duration { duration } => check_duration(*duration),
            Command::QueueAdd { video_id, title } => {
                check_video_id(video_id)?;
                match title {
                    Some(title) => check_text("title", title, MAX_TITLE_CHARS, true).map(|_| ()),
                    None => Ok(()),
                }
            }
            Command::QueueRemove { .. }
            | Command::QueueMove { .. }
            | Command::Next {}
            | Command::Control { .. } => Ok(()),
        }
    }
}

fn take_expected_version(fields: &mut Map<String, Value>) -> Result<Option<u64>, CommandError> {
    match fields.remove("expected_version") {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value.as_u64().map(Some).ok_or_else(|| {
            CommandError::InvalidJson("`expected_version` must be a non-negative integer".into())
        }),
    }
}

fn check_position(position: f64) -> Result<(), CommandError> {
    if position.is_finite() && (0.0..=MAX_POSITION).contains(&position) {
        Ok(())
    } else {
        Err(CommandError::InvalidValue(format!(
            "`position` must be a number of seconds from 0 to {MAX_POSITION}"
        )))
    }
}

fn check_duration(duration: f64) -> Result<(), CommandError> {
    if duration.is_finite() && duration > 0.0 && duration <= MAX_POSITION {
        Ok(())
    } else {
        Err(CommandError::InvalidValue(format!(
            "`duration` must be a number of seconds above 0 and at most {MAX_POSITION}"
        )))
    }
}

fn check_video_id(video_id: &str) -> Result<(), CommandError> {
    if is_video_id(video_id) {
        Ok(())
    } else {
        Err(CommandError::InvalidValue(
            "`video_id` must be an 11-character YouTube id ([A-Za-z0-9_-])".into(),
        ))
    }
}

/// Trims `text` and checks it is 1..=`max_chars` characters with no control
/// characters. Returns the trimmed text. `allow_empty` accepts an empty result.
pub fn check_text<'a>(
    field: &str,
    text: &'a str,
    max_chars: usize,
    allow_empty: bool,
) -> Result<&'a str, CommandError> {
    let trimmed = text.trim();
    let chars = trimmed.chars().count();
    if chars == 0 && !allow_empty {
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

/// Cuts client text that is echoed in an error message to a readable length.
fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decode(value: Value) -> Result<CommandRequest, CommandError> {
        Command::decode(value)
    }

    #[test]
    fn decodes_each_command_type() {
        let cases = [
            (json!({"type": "play"}), Command::Play { position: None }),
            (
                json!({"type": "pause", "position": 3.5}),
                Command::Pause {
                    position: Some(3.5),
                },
            ),
            (
                json!({"type": "seek", "position": 10}),
                Command::Seek { position: 10.0 },
            ),
            (
                json!({"type": "load", "video_id": "dQw4w9WgXcQ"}),
                Command::Load {
                    video_id: "dQw4w9WgXcQ".into(),
                    position: None,
                    paused: None,
                    duration: None,
                },
            ),
            (
                json!({"type": "rate", "rate": 1.5}),
                Command::Rate { rate: 1.5 },
            ),
            (
                json!({"type": "duration", "duration": 212}),
                Command::Duration { duration: 212.0 },
            ),
            (
                json!({"type": "queue_add", "video_id": "dQw4w9WgXcQ", "title": "x"}),
                Command::QueueAdd {
                    video_id: "dQw4w9WgXcQ".into(),
                    title: Some("x".into()),
                },
            ),
            (
                json!({"type": "queue_remove", "item_id": "a"}),
                Command::QueueRemove {
                    item_id: "a".into(),
                },
            ),
            (
                json!({"type": "queue_move", "item_id": "a", "index": 0}),
                Command::QueueMove {
                    item_id: "a".into(),
                    index: 0,
                },
            ),
            (json!({"type": "next"}), Command::Next {}),
            (
                json!({"type": "control", "control": "open"}),
                Command::Control {
                    control: Control::Open,
                },
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(
                decode(body.clone()).map(|r| r.command),
                Ok(expected),
                "{body}"
            );
        }
    }

    #[test]
    fn expected_version_is_taken_from_any_command() {
        let request = decode(json!({"type": "play", "expected_version": 7})).unwrap();
        assert_eq!(request.expected_version, Some(7));
        assert!(matches!(
            decode(json!({"type": "play", "expected_version": -1})),
            Err(CommandError::InvalidJson(_))
        ));
    }

    #[test]
    fn shape_errors_are_invalid_json() {
        for body in [
            json!([1, 2]),
            json!("play"),
            json!({"type": "seek", "position": "ten"}),
            json!({"type": "load", "video_id": 5}),
            json!({"type": "queue_move", "item_id": "a", "index": -1}),
        ] {
            assert!(
                matches!(decode(body.clone()), Err(CommandError::InvalidJson(_))),
                "{body}"
            );
        }
    }

    #[test]
    fn unknown_types_and_missing_fields_are_invalid_command() {
        for body in [
            json!({}),
            json!({"type": "explode"}),
            json!({"type": 3}),
            json!({"type": "seek"}),
            json!({"type": "load"}),
            json!({"type": "rate"}),
            json!({"type": "queue_remove"}),
        ] {
            assert!(
                matches!(decode(body.clone()), Err(CommandError::InvalidCommand(_))),
                "{body}"
            );
        }
    }

    #[test]
    fn out_of_range_values_are_invalid_value() {
        for body in [
            json!({"type": "seek", "position": -1}),
            json!({"type": "seek", "position": 1e300}),
            json!({"type": "play", "position": -0.5}),
            json!({"type": "rate", "rate": 0.2}),
            json!({"type": "rate", "rate": 2.01}),
            json!({"type": "duration", "duration": 0}),
            json!({"type": "load", "video_id": "short"}),
            json!({"type": "load", "video_id": "dQw4w9WgXc!"}),
            json!({"type": "load", "video_id": "dQw4w9WgXcQ", "duration": -3}),
            json!({"type": "queue_add", "video_id": "dQw4w9WgXcQ", "title": "x".repeat(201)}),
            json!({"type": "queue_add", "video_id": "dQw4w9WgXcQ", "title": "a\u{7}b"}),
        ] {
            assert!(
                matches!(decode(body.clone()), Err(CommandError::InvalidValue(_))),
                "{body}"
            );
        }
    }

    #[test]
    fn rates_at_the_bounds_are_accepted() {
        assert!(decode(json!({"type": "rate", "rate": 0.25})).is_ok());
        assert!(decode(json!({"type": "rate", "rate": 2.0})).is_ok());
    }

    #[test]
    fn text_is_trimmed_and_counted_in_characters() {
        assert_eq!(check_text("name", "  Ann ", 64, false), Ok("Ann"));
        assert!(check_text("name", "   ", 64, false).is_err());
        assert!(check_text("name", &"é".repeat(64), 64, false).is_ok());
        assert!(check_text("name", &"é".repeat(65), 64, false).is_err());
        assert!(check_text("text", "line\nbreak", 500, false).is_err());
    }
}
