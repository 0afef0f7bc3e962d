//! The commands a host (or anyone, in an `open` room) sends to a room, and their
//! decoding from untrusted JSON.
//!
//! Decoding is two-step so that each kind of mistake gets the error code
//! docs/API.md promises: a body that is not a JSON object is `invalid_json`, an
//! unknown `type` or a missing field is `invalid_command`, a field of the wrong JSON
//! type is `invalid_json`, and a value out of range is `invalid_value`.

use serde::Deserialize;
use serde_json::{Map, Value};

pub use super::check::{check_text, check_video_id, CommandError, Empty, VIDEO_ID_RULE};
use super::permissions::{Group, Permissions};
use super::source::Source;
use super::view::{Control, Visibility, MAX_GATE_DEADLINE_MS, MAX_GATE_QUORUM, MAX_POSITION};

pub use super::limits::{MAX_RATE, MAX_TITLE_CHARS, MIN_RATE};

/// One playback or queue command, tagged by `"type"` on the wire.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    Play {
        #[serde(default)]
        position: Option<f64>,
        /// Server Unix ms to start at; default: `--start-lead-ms` from now.
        #[serde(default)]
        starts_at: Option<i64>,
    },
    Pause {
        #[serde(default)]
        position: Option<f64>,
    },
    Seek {
        position: f64,
    },
    Load {
        /// `video_id` or `media_url` on the wire.
        #[serde(flatten)]
        source: Source,
        #[serde(default)]
        position: Option<f64>,
        #[serde(default)]
        paused: Option<bool>,
        #[serde(default)]
        duration: Option<f64>,
        #[serde(default)]
        starts_at: Option<i64>,
    },
    Rate {
        rate: f64,
    },
    Duration {
        duration: f64,
    },
    QueueAdd {
        #[serde(flatten)]
        source: Source,
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
    /// The room's ready gate (host token always needed).
    ReadyGate {
        quorum: u64,
        deadline_ms: u64,
    },
    Visibility {
        visibility: Visibility,
    },
    ChatEnabled {
        chat_enabled: bool,
    },
    ClearChat {},
    /// Who may do what: any subset of the groups (see `room::permissions`).
    Permissions {
        permissions: Map<String, Value>,
    },
    /// Removes one kept chat message, by the version it was sent as.
    DeleteChat {
        chat_version: u64,
    },
}

/// What JSON a field takes, in the plain words of error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonType {
    Number,
    NonNegativeInteger,
    String,
    Boolean,
    /// A string, one of these.
    OneOf(&'static [&'static str]),
    Object,
}

impl JsonType {
    fn describe(self) -> String {
        match self {
            JsonType::Number => "a number".into(),
            JsonType::NonNegativeInteger => "a non-negative integer".into(),
            JsonType::String => "a string".into(),
            JsonType::Boolean => "true or false".into(),
            JsonType::OneOf(names) => {
                let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
                quoted.join(" or ")
            }
            JsonType::Object => "an object".into(),
        }
    }

    fn admits(self, value: &Value) -> bool {
        match self {
            JsonType::Number => value.is_number(),
            JsonType::NonNegativeInteger => value.is_u64(),
            JsonType::String => value.is_string(),
            JsonType::Boolean => value.is_boolean(),
            JsonType::OneOf(names) => value.as_str().is_some_and(|v| names.contains(&v)),
            JsonType::Object => value.is_object(),
        }
    }
}

/// Whether a field must be there. An optional field may also be `null`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Required,
    Optional,
}

/// One field of a JSON object body: its name, its JSON type, whether it must be there.
pub type Field = (&'static str, JsonType, Presence);

/// The fields an object body may have, and what it is called in messages.
#[derive(Debug)]
pub struct Shape {
    /// `play`, `a room`, `a chat message`.
    pub name: &'static str,
    pub fields: &'static [Field],
    /// Fields (each listed in `fields` as optional) that exclude each other.
    pub alternatives: Option<Alternatives>,
}

/// Fields of which a body names at most one (`Optional`) or exactly one
/// (`Required`); `null` counts as not named. Naming two, or none of a required
/// set, is `invalid_value` saying which.
#[derive(Debug)]
pub struct Alternatives {
    pub fields: &'static [&'static str],
    pub presence: Presence,
}

/// The two ways to name an item: exactly one for `load` and `queue_add`.
pub const ITEM_SOURCE: Alternatives = Alternatives {
    fields: &["video_id", "media_url"],
    presence: Required,
};

use JsonType::{Boolean, NonNegativeInteger, Number, OneOf, String as Text};
use Presence::{Optional, Required};

/// The control modes as their JSON names (see [`Control`]).
pub const CONTROL_NAMES: &[&str] = &["host", "open"];

/// The visibilities as their JSON names (see [`Visibility`]).
pub const VISIBILITY_NAMES: &[&str] = &["public", "unlisted"];

/// Every command's wire name and fields, written once: decoding checks bodies
/// against it, [`Command::type_name`] and [`COMMAND_TYPES`] read the names here.
/// (`expected_version` may come with any command; it is not listed.)
pub const COMMANDS: [Shape; 17] = [
    Shape {
        name: "play",
        fields: &[
            ("position", Number, Optional),
            ("starts_at", NonNegativeInteger, Optional),
        ],
        alternatives: None,
    },
    Shape {
        name: "pause",
        fields: &[("position", Number, Optional)],
        alternatives: None,
    },
    Shape {
        name: "seek",
        fields: &[("position", Number, Required)],
        alternatives: None,
    },
    Shape {
        name: "load",
        fields: &[
            ("video_id", Text, Optional),
            ("media_url", Text, Optional),
            ("position", Number, Optional),
            ("paused", Boolean, Optional),
            ("duration", Number, Optional),
            ("starts_at", NonNegativeInteger, Optional),
        ],
        alternatives: Some(ITEM_SOURCE),
    },
    Shape {
        name: "rate",
        fields: &[("rate", Number, Required)],
        alternatives: None,
    },
    Shape {
        name: "duration",
        fields: &[("duration", Number, Required)],
        alternatives: None,
    },
    Shape {
        name: "queue_add",
        fields: &[
            ("video_id", Text, Optional),
            ("media_url", Text, Optional),
            ("title", Text, Optional),
        ],
        alternatives: Some(ITEM_SOURCE),
    },
    Shape {
        name: "queue_remove",
        fields: &[("item_id", Text, Required)],
        alternatives: None,
    },
    Shape {
        name: "queue_move",
        fields: &[
            ("item_id", Text, Required),
            ("index", NonNegativeInteger, Required),
        ],
        alternatives: None,
    },
    Shape {
        name: "next",
        fields: &[],
        alternatives: None,
    },
    Shape {
        name: "control",
        fields: &[("control", OneOf(CONTROL_NAMES), Required)],
        alternatives: None,
    },
    Shape {
        name: "visibility",
        fields: &[("visibility", OneOf(VISIBILITY_NAMES), Required)],
        alternatives: None,
    },
    Shape {
        name: "chat_enabled",
        fields: &[("chat_enabled", Boolean, Required)],
        alternatives: None,
    },
    Shape {
        name: "clear_chat",
        fields: &[],
        alternatives: None,
    },
    Shape {
        name: "ready_gate",
        fields: &[
            ("quorum", NonNegativeInteger, Required),
            ("deadline_ms", NonNegativeInteger, Required),
        ],
        alternatives: None,
    },
    Shape {
        name: "permissions",
        fields: &[("permissions", JsonType::Object, Required)],
        alternatives: None,
    },
    Shape {
        name: "delete_chat",
        fields: &[("chat_version", NonNegativeInteger, Required)],
        alternatives: None,
    },
];

/// The `type` names, for error messages and metric labels (from [`COMMANDS`]).
pub const COMMAND_TYPES: &[&str] = &COMMAND_NAMES;

const COMMAND_NAMES: [&str; COMMANDS.len()] = {
    let mut names = [""; COMMANDS.len()];
    let mut i = 0;
    while i < COMMANDS.len() {
        names[i] = COMMANDS[i].name;
        i += 1;
    }
    names
};

/// The fields every command may carry besides its own.
pub const EXPECTED_VERSION: Field = ("expected_version", NonNegativeInteger, Optional);

/// What a JSON value is, in the words of an error message.
fn json_kind(value: &Value) -> std::string::String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(_) => "a boolean".into(),
        Value::Number(number) => format!("the number {number}"),
        Value::String(text) => {
            if text.chars().count() <= 20 {
                format!("the string \"{text}\"")
            } else {
                "a string".into()
            }
        }
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// Decodes an object body of `shape` (checked first, so serde cannot fail on
/// it but for a reason the check does not know, reported as `invalid_json`).
pub fn decode_shaped<T: serde::de::DeserializeOwned>(
    body: Value,
    shape: &Shape,
) -> Result<T, CommandError> {
    let Value::Object(fields) = body else {
        return Err(CommandError::InvalidJson(
            "the body must be a JSON object".into(),
        ));
    };
    check_shape(&fields, shape, &[], &[])?;
    serde_json::from_value(Value::Object(fields))
        .map_err(|error| CommandError::InvalidJson(format!("{}: {error}", shape.name)))
}

/// Checks an object body against `fields` (plus `extra`): an unknown field or
/// a missing one is `invalid_command`, a field of the wrong JSON type is
/// `invalid_json` naming the field and what it takes. After this, serde cannot
/// fail on the body, so no serde error needs reading.
pub fn check_shape(
    fields: &Map<std::string::String, Value>,
    shape: &Shape,
    extra: &[Field],
    ignore: &[&str],
) -> Result<(), CommandError> {
    let known = || shape.fields.iter().chain(extra);
    for (name, value) in fields {
        if ignore.contains(&name.as_str()) {
            continue;
        }
        let Some((_, kind, presence)) = known().find(|(field, _, _)| field == name) else {
            let names: Vec<&str> = known().map(|(field, _, _)| *field).collect();
            let takes = if names.is_empty() {
                "no other fields".to_owned()
            } else {
                names.join(", ")
            };
            return Err(CommandError::InvalidCommand(format!(
                "unknown field `{}`: {} takes {takes}",
                truncate(name, 40),
                shape.name
            )));
        };
        if value.is_null() && *presence == Optional {
            continue;
        }
        if !kind.admits(value) {
            let message = format!(
                "{name}: expected {}, got {}",
                kind.describe(),
                json_kind(value)
            );
            // A string that is not one of the names is a bad value, not a bad shape.
            return Err(match kind {
                OneOf(_) if value.is_string() => CommandError::InvalidValue(message),
                _ => CommandError::InvalidJson(message),
            });
        }
    }
    for (name, _, presence) in known() {
        if *presence == Required && !fields.contains_key(*name) {
            return Err(CommandError::InvalidCommand(format!(
                "missing field `{name}`"
            )));
        }
    }
    match &shape.alternatives {
        Some(alternatives) => check_alternatives(fields, alternatives),
        None => Ok(()),
    }
}

/// Refuses a body naming two of `alternatives`, or none of a required set.
fn check_alternatives(
    fields: &Map<std::string::String, Value>,
    alternatives: &Alternatives,
) -> Result<(), CommandError> {
    let named = alternatives
        .fields
        .iter()
        .filter(|name| fields.get(**name).is_some_and(|value| !value.is_null()))
        .count();
    let quoted: Vec<std::string::String> = alternatives
        .fields
        .iter()
        .map(|name| format!("`{name}`"))
        .collect();
    if named > 1 {
        return Err(CommandError::InvalidValue(format!(
            "give either {}, not both",
            quoted.join(" or ")
        )));
    }
    if named == 0 && alternatives.presence == Required {
        return Err(CommandError::InvalidValue(format!(
            "give one of {}: neither was given",
            quoted.join(" or ")
        )));
    }
    Ok(())
}

/// A decoded command with the optional compare-and-set guard that may come with it.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandRequest {
    pub command: Command,
    pub expected_version: Option<u64>,
}

/// What a caller must be to be let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Whoever the room's permissions give this group to.
    Group(Group),
    /// The room's settings, co-host management, resetting the token or
    /// closing the room: the host alone, whatever the permissions say.
    HostOnly,
}

impl Command {
    /// Who may send this command: the group it belongs to, or the host alone.
    pub fn access(&self) -> Access {
        match self {
            Command::Play { .. }
            | Command::Pause { .. }
            | Command::Seek { .. }
            | Command::Load { .. }
            | Command::Rate { .. }
            | Command::Duration { .. } => Access::Group(Group::Playback),
            Command::QueueAdd { .. } => Access::Group(Group::QueueAdd),
            // TODO(integrator): `queue_mode` joins this arm once it exists.
            Command::QueueRemove { .. } | Command::QueueMove { .. } => {
                Access::Group(Group::QueueEdit)
            }
            Command::Next {} => Access::Group(Group::Skip),
            // TODO(integrator): `persistent` joins this arm once it exists.
            Command::Control { .. }
            | Command::Visibility { .. }
            | Command::ChatEnabled { .. }
            | Command::ClearChat {}
            | Command::ReadyGate { .. }
            | Command::Permissions { .. } => Access::HostOnly,
            Command::DeleteChat { .. } => Access::Group(Group::Moderate),
        }
    }

    /// The wire name of this command's type.
    pub fn type_name(&self) -> &'static str {
        self.shape().name
    }

    /// This command's entry in [`COMMANDS`].
    fn shape(&self) -> &'static Shape {
        let index = match self {
            Command::Play { .. } => 0,
            Command::Pause { .. } => 1,
            Command::Seek { .. } => 2,
            Command::Load { .. } => 3,
            Command::Rate { .. } => 4,
            Command::Duration { .. } => 5,
            Command::QueueAdd { .. } => 6,
            Command::QueueRemove { .. } => 7,
            Command::QueueMove { .. } => 8,
            Command::Next {} => 9,
            Command::Control { .. } => 10,
            Command::Visibility { .. } => 11,
            Command::ChatEnabled { .. } => 12,
            Command::ClearChat {} => 13,
            Command::ReadyGate { .. } => 14,
            Command::Permissions { .. } => 15,
            Command::DeleteChat { .. } => 16,
        };
        &COMMANDS[index]
    }

    /// The known command type named by a body, if it names one: the metric
    /// label of a command refused before it was decoded.
    pub fn type_of(body: &Value) -> Option<&'static str> {
        let named = body.get("type")?.as_str()?;
        COMMAND_TYPES.iter().copied().find(|known| *known == named)
    }

    /// Decodes one command from a request body that has already parsed as JSON.
    pub fn decode(body: Value) -> Result<CommandRequest, CommandError> {
        let Value::Object(mut fields) = body else {
            return Err(CommandError::InvalidJson(
                "the body must be a JSON object such as {\"type\": \"play\"}".into(),
            ));
        };
        let type_name = match fields.get("type") {
            None => return Err(CommandError::InvalidCommand("missing field `type`".into())),
            Some(Value::String(name)) => name.as_str(),
            Some(_) => {
                return Err(CommandError::InvalidCommand(
                    "`type` must be a string naming a command".into(),
                ))
            }
        };
        let Some(shape) = COMMANDS.iter().find(|shape| shape.name == type_name) else {
            return Err(CommandError::InvalidCommand(format!(
                "unknown command type `{}`; expected one of {}",
                truncate(type_name, 40),
                COMMAND_TYPES.join(", ")
            )));
        };
        check_shape(&fields, shape, &[EXPECTED_VERSION], &["type"])?;
        let type_name = shape.name;
        let expected_version = fields.remove("expected_version").and_then(|v| v.as_u64());
        // The shape is checked: what is left cannot fail to decode.
        let command: Command = serde_json::from_value(Value::Object(fields))
            .map_err(|error| CommandError::InvalidJson(format!("{type_name}: {error}")))?;
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
            Command::Play { position, .. } | Command::Pause { position } => {
                position.map_or(Ok(()), check_position)
            }
            Command::Seek { position } => check_position(*position),
            Command::Load {
                source,
                position,
                duration,
                ..
            } => {
                source.validate()?;
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
            Command::QueueAdd { source, title } => {
                source.validate()?;
                match title {
                    Some(title) => {
                        check_text("title", title, MAX_TITLE_CHARS, Empty::Allowed).map(|_| ())
                    }
                    None => Ok(()),
                }
            }
            Command::ReadyGate {
                quorum,
                deadline_ms,
            } => {
                if *quorum > MAX_GATE_QUORUM {
                    return Err(CommandError::InvalidValue(format!(
                        "`quorum` is a percentage: 0 to {MAX_GATE_QUORUM}"
                    )));
                }
                if *deadline_ms > MAX_GATE_DEADLINE_MS {
                    return Err(CommandError::InvalidValue(format!(
                        "`deadline_ms` must be 0 (no gate) to {MAX_GATE_DEADLINE_MS}"
                    )));
                }
                Ok(())
            }
            Command::QueueRemove { .. }
            | Command::QueueMove { .. }
            | Command::Next {}
            | Command::Control { .. }
            | Command::Visibility { .. }
            | Command::ChatEnabled { .. }
            | Command::ClearChat {} => Ok(()),
            Command::Permissions { permissions } => {
                Permissions::default().patched(permissions).map(|_| ())
            }
            Command::DeleteChat { .. } => Ok(()),
        }
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
            (
                json!({"type": "play"}),
                Command::Play {
                    position: None,
                    starts_at: None,
                },
            ),
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
                    source: Source::Video("dQw4w9WgXcQ".into()),
                    position: None,
                    paused: None,
                    duration: None,
                    starts_at: None,
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
                    source: Source::Video("dQw4w9WgXcQ".into()),
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
            (
                json!({"type": "visibility", "visibility": "public"}),
                Command::Visibility {
                    visibility: Visibility::Public,
                },
            ),
            (
                json!({"type": "chat_enabled", "chat_enabled": false}),
                Command::ChatEnabled {
                    chat_enabled: false,
                },
            ),
            (json!({"type": "clear_chat"}), Command::ClearChat {}),
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
            json!({"type": "load"}),
            json!({"type": "load", "video_id": null, "media_url": null}),
            json!({"type": "load", "video_id": "dQw4w9WgXcQ", "media_url": "/media/a.ogg"}),
            json!({"type": "queue_add"}),
            json!({"type": "queue_add", "video_id": "dQw4w9WgXcQ", "media_url": "https://a.example/b.mp3"}),
            json!({"type": "load", "media_url": "javascript:alert(1)"}),
            json!({"type": "queue_add", "media_url": "/media/../x"}),
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
    fn load_and_queue_add_take_a_media_url() {
        let load = decode(json!({"type": "load", "media_url": "/media/a.ogg", "video_id": null}));
        assert_eq!(
            load.map(|r| r.command),
            Ok(Command::Load {
                source: Source::Media("/media/a.ogg".into()),
                position: None,
                paused: None,
                duration: None,
                starts_at: None,
            })
        );
        let add = decode(json!({"type": "queue_add", "media_url": "https://a.example/b.mp3"}));
        assert_eq!(
            add.map(|r| r.command),
            Ok(Command::QueueAdd {
                source: Source::Media("https://a.example/b.mp3".into()),
                title: None,
            })
        );
    }

    #[test]
    fn both_or_neither_source_says_which() {
        let both =
            decode(json!({"type": "load", "video_id": "dQw4w9WgXcQ", "media_url": "/media/a"}));
        assert!(matches!(both, Err(CommandError::InvalidValue(m)) if m.contains("not both")));
        let neither = decode(json!({"type": "queue_add", "title": "x"}));
        assert!(matches!(neither, Err(CommandError::InvalidValue(m)) if m.contains("neither")));
    }

    #[test]
    fn a_media_url_of_the_wrong_type_is_invalid_json() {
        assert!(matches!(
            decode(json!({"type": "load", "media_url": 5})),
            Err(CommandError::InvalidJson(m)) if m.starts_with("media_url: expected a string")
        ));
    }

    #[test]
    fn rates_at_the_bounds_are_accepted() {
        assert!(decode(json!({"type": "rate", "rate": 0.25})).is_ok());
        assert!(decode(json!({"type": "rate", "rate": 2.0})).is_ok());
    }

    #[test]
    fn text_is_trimmed_and_counted_in_characters() {
        let refused = Empty::Refused;
        assert_eq!(check_text("name", "  Ann ", 64, refused), Ok("Ann"));
        assert!(check_text("name", "   ", 64, refused).is_err());
        assert_eq!(check_text("name", "   ", 64, Empty::Allowed), Ok(""));
        assert!(check_text("name", &"é".repeat(64), 64, refused).is_ok());
        assert!(check_text("name", &"é".repeat(65), 64, refused).is_err());
        assert!(check_text("text", "line\nbreak", 500, refused).is_err());
    }
}
