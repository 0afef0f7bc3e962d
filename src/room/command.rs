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
use super::view::{
    Control, QueueMode, Visibility, MAX_GATE_DEADLINE_MS, MAX_GATE_QUORUM, MAX_POSITION,
};

pub use super::limits::{MAX_CHAT_NAME_CHARS, MAX_RATE, MAX_TITLE_CHARS, MIN_RATE};

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
        #[serde(default)]
        title: Option<String>,
        #[serde(default)]
        artist: Option<String>,
    },
    Rate {
        rate: f64,
    },
    Duration {
        duration: f64,
    },
    /// One item or many (`items`), all or nothing: decoded by
    /// [`Command::decode`] itself, since its two forms share one `type`.
    #[serde(skip)]
    QueueAdd {
        items: Vec<NewItem>,
    },
    /// `queue_add` with `playlist_id`: only a server with a YouTube API key can
    /// expand it into items (before the room sees it); a room refuses it.
    #[serde(skip)]
    QueuePlaylist {
        playlist_id: String,
        name: Option<String>,
    },
    QueueRemove {
        item_id: String,
    },
    QueueMove {
        item_id: String,
        index: u64,
    },
    Next {},
    QueueMode {
        queue_mode: QueueMode,
    },
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
    /// Metadata that arrived after an item was added (a file's tags, the
    /// YouTube API): never sent by clients, only by the server itself.
    /// `item_id: None` names the loaded item. Fills only what is unknown.
    #[serde(skip)]
    ItemInfo {
        item_id: Option<String>,
        info: ItemInfo,
    },
    /// Whether the room is exempt from `--room-ttl` (host token always needed).
    Persistent {
        persistent: bool,
    },
    /// Who may do what: any subset of the groups (see `room::permissions`).
    Permissions {
        permissions: Map<String, Value>,
    },
    /// Removes one kept chat message, by the version it was sent as.
    DeleteChat {
        chat_version: u64,
    },
    /// The room's vote skip setting (host token always needed).
    VoteSkip {
        ratio: f64,
        min_votes: u64,
    },
    /// Ends one listener's event stream (its id from its `hello`) and refuses
    /// its stream token from then on; changes nothing others see.
    Kick {
        stream: String,
    },
}

/// Metadata about an item, any of it possibly unknown.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemInfo {
    pub title: Option<String>,
    pub artist: Option<String>,
    pub duration: Option<f64>,
}

/// One item of a `queue_add`: where it is and what its adder said of it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NewItem {
    #[serde(flatten)]
    pub source: Source,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub artist: Option<String>,
    #[serde(default)]
    pub duration: Option<f64>,
    /// The adder's name, chat-name rules.
    #[serde(default)]
    pub name: Option<String>,
}

impl Command {
    /// `queue_add` of one item with nothing known of it but its title.
    pub fn add(source: Source, title: Option<String>) -> Command {
        Command::QueueAdd {
            items: vec![NewItem {
                source,
                title,
                artist: None,
                duration: None,
                name: None,
            }],
        }
    }
}

/// A client's text, trimmed and checked; empty counts as none given.
fn optional_text(
    field: &str,
    value: Option<String>,
    max_chars: usize,
) -> Result<Option<String>, CommandError> {
    match value {
        Some(value) => check_text(field, &value, max_chars, Empty::Allowed)
            .map(|text| Some(text.to_owned()).filter(|text| !text.is_empty())),
        None => Ok(None),
    }
}

impl ItemInfo {
    /// Checks every field against its rule, trimming the texts.
    pub fn checked(self) -> Result<ItemInfo, CommandError> {
        self.duration.map_or(Ok(()), check_duration)?;
        Ok(ItemInfo {
            title: optional_text("title", self.title, MAX_TITLE_CHARS)?,
            artist: optional_text("artist", self.artist, MAX_TITLE_CHARS)?,
            duration: self.duration,
        })
    }
}

impl NewItem {
    /// Checks every field against its rule, trimming the texts.
    pub fn checked(self) -> Result<NewItem, CommandError> {
        self.source.validate()?;
        let info = ItemInfo {
            title: self.title,
            artist: self.artist,
            duration: self.duration,
        }
        .checked()?;
        Ok(NewItem {
            source: self.source,
            title: info.title,
            artist: info.artist,
            duration: info.duration,
            name: match self.name {
                Some(name) => {
                    Some(check_text("name", &name, MAX_CHAT_NAME_CHARS, Empty::Refused)?.to_owned())
                }
                None => None,
            },
        })
    }
}

/// Most items one `queue_add` may carry in `items`.
pub const MAX_ITEMS_PER_ADD: usize = 100;

/// Why a room refuses `playlist_id`: the server has no way to read the playlist.
pub const PLAYLIST_NEEDS_KEY: &str =
    "playlist_id needs the server's YouTube API key (--youtube-api-key)";

/// What only a single item of `queue_add` says of itself: `items` (each item
/// says its own) and `playlist_id` (the API says it) refuse them.
const ONE_ITEM_ONLY: &[&str] = &["title", "artist", "duration"];

/// What JSON a field takes, in the plain words of error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonType {
    Number,
    NonNegativeInteger,
    String,
    Boolean,
    /// A JSON array (its elements are checked by the command itself).
    Array,
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
            JsonType::Array => "an array".into(),
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
            JsonType::NonNegativeInteger => json_integer(value).is_some(),
            JsonType::String => value.is_string(),
            JsonType::Boolean => value.is_boolean(),
            JsonType::Array => value.is_array(),
            JsonType::OneOf(names) => value.as_str().is_some_and(|v| names.contains(&v)),
            JsonType::Object => value.is_object(),
        }
    }
}

/// The largest integer an integer field takes: 2^53 - 1, the last one a JSON
/// number carries exactly in every client (JavaScript's `Number.MAX_SAFE_INTEGER`).
pub const MAX_JSON_INTEGER: u64 = (1 << 53) - 1;

/// A non-negative integer as JSON Schema counts one: any number with no
/// fractional part, so `6461.0` is `6461` as much as `6461` is. Whether it is in
/// range ([`MAX_JSON_INTEGER`]) is for [`check_integer_range`] to say.
fn json_integer(value: &Value) -> Option<f64> {
    let number = value.as_f64()?;
    (number.fract() == 0.0 && number >= 0.0).then_some(number)
}

/// An integer field above [`MAX_JSON_INTEGER`] is a value out of range; one in
/// range is written back as an integer, so serde reads `6461.0` into a `u64`.
fn check_integer_range(name: &str, value: &mut Value) -> Result<(), CommandError> {
    if value.is_u64() && value.as_u64().is_some_and(|n| n <= MAX_JSON_INTEGER) {
        return Ok(());
    }
    match json_integer(value) {
        // Exact: every integer up to 2^53 is a double.
        Some(number) if number <= MAX_JSON_INTEGER as f64 => {
            *value = Value::from(number as u64);
            Ok(())
        }
        _ => Err(CommandError::InvalidValue(format!(
            "`{name}` must be an integer from 0 to {MAX_JSON_INTEGER}"
        ))),
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
    /// Other fields that some alternatives refuse: `(alternative, refused)`.
    /// Naming one beside that alternative is `invalid_value` too.
    pub refuses: &'static [(&'static str, &'static [&'static str])],
}

/// The two ways to name an item: exactly one for `load` and `queue_add`.
pub const ITEM_SOURCE: Alternatives = Alternatives {
    fields: &["video_id", "media_url"],
    presence: Required,
    refuses: &[],
};

/// What `queue_add` adds: one item (by its source), `items`, or a playlist.
pub const QUEUE_ADD_SOURCE: Alternatives = Alternatives {
    fields: &["items", "playlist_id", "video_id", "media_url"],
    presence: Required,
    refuses: &[("items", ONE_ITEM_ONLY), ("playlist_id", ONE_ITEM_ONLY)],
};

use JsonType::{Array, Boolean, NonNegativeInteger, Number, OneOf, String as Text};
use Presence::{Optional, Required};

/// The control modes as their JSON names (see [`Control`]).
pub const CONTROL_NAMES: &[&str] = &["host", "open"];

/// The queue modes as their JSON names (see [`QueueMode`]).
pub const QUEUE_MODE_NAMES: &[&str] = &["normal", "loop", "shuffle"];

/// The fields of one queued item, alone or in `items`.
pub const QUEUE_ITEM: Shape = Shape {
    name: "a queue item",
    fields: &[
        ("video_id", Text, Optional),
        ("media_url", Text, Optional),
        ("title", Text, Optional),
        ("artist", Text, Optional),
        ("duration", Number, Optional),
        ("name", Text, Optional),
    ],
    alternatives: Some(ITEM_SOURCE),
};

/// The visibilities as their JSON names (see [`Visibility`]).
pub const VISIBILITY_NAMES: &[&str] = &["public", "unlisted"];

/// Every command's wire name and fields, written once: decoding checks bodies
/// against it, [`Command::type_name`] and [`COMMAND_TYPES`] read the names here.
/// (`expected_version` may come with any command; it is not listed.)
pub const COMMANDS: [Shape; 21] = [
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
            ("title", Text, Optional),
            ("artist", Text, Optional),
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
            ("artist", Text, Optional),
            ("duration", Number, Optional),
            ("name", Text, Optional),
            ("items", Array, Optional),
            ("playlist_id", Text, Optional),
        ],
        // A single item's source, many items, or a playlist: exactly one.
        alternatives: Some(QUEUE_ADD_SOURCE),
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
        name: "queue_mode",
        fields: &[("queue_mode", OneOf(QUEUE_MODE_NAMES), Required)],
        alternatives: None,
    },
    Shape {
        name: "persistent",
        fields: &[("persistent", Boolean, Required)],
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
    Shape {
        name: "vote_skip",
        fields: &[
            ("ratio", Number, Required),
            ("min_votes", NonNegativeInteger, Required),
        ],
        alternatives: None,
    },
    Shape {
        name: "kick",
        fields: &[("stream", Text, Required)],
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
    let mut fields = fields;
    check_shape(&mut fields, shape, &[], &[])?;
    serde_json::from_value(Value::Object(fields))
        .map_err(|error| CommandError::InvalidJson(format!("{}: {error}", shape.name)))
}

/// Checks an object body against `fields` (plus `extra`): an unknown field or
/// a missing one is `invalid_command`, a field of the wrong JSON type is
/// `invalid_json` naming the field and what it takes. It also puts the body in
/// the form serde reads: an integer written with a zero fraction (`6461.0`)
/// becomes the integer it is, and an optional field that is `null` is dropped.
/// After this, serde cannot fail on the body, so no serde error needs reading.
pub fn check_shape(
    fields: &mut Map<std::string::String, Value>,
    shape: &Shape,
    extra: &[Field],
    ignore: &[&str],
) -> Result<(), CommandError> {
    let known = || shape.fields.iter().chain(extra);
    for (name, value) in fields.iter() {
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
    if let Some(alternatives) = &shape.alternatives {
        check_alternatives(fields, alternatives)?;
    }
    // Ranges last, as for every other value: a shape error anywhere comes first.
    for (name, kind, _) in known() {
        if *kind != NonNegativeInteger {
            continue;
        }
        if let Some(value) = fields.get_mut(*name).filter(|value| !value.is_null()) {
            check_integer_range(name, value)?;
        }
    }
    // Every `null` left is an optional field's, and means absent: serde then
    // reads it as its default even where that is no `Option` (`buffering`).
    fields.retain(|_, value| !value.is_null());
    Ok(())
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
        let given: Vec<&str> = alternatives
            .fields
            .iter()
            .copied()
            .filter(|name| fields.get(*name).is_some_and(|value| !value.is_null()))
            .collect();
        let both_sources = given.contains(&"video_id") && given.contains(&"media_url");
        return Err(CommandError::InvalidValue(
            if alternatives.fields.len() == 2 || both_sources {
                "give either `video_id` or `media_url`, not both".to_string()
            } else {
                format!("`{}` cannot be combined with `{}`", given[0], given[1])
            },
        ));
    }
    if named == 0 && alternatives.presence == Required {
        return Err(CommandError::InvalidValue(format!(
            "give one of {}: neither was given",
            quoted.join(" or ")
        )));
    }
    let is_named = |name: &str| fields.get(name).is_some_and(|value| !value.is_null());
    for &(alternative, refused) in alternatives.refuses {
        if !is_named(alternative) {
            continue;
        }
        if let Some(field) = refused.iter().find(|&&field| is_named(field)) {
            return Err(CommandError::InvalidValue(format!(
                "`{alternative}` cannot be combined with `{field}`"
            )));
        }
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
    /// The server's own input (metadata that arrived later): never decoded
    /// from a client body, so no token is asked for.
    Server,
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
            Command::QueueAdd { .. } | Command::QueuePlaylist { .. } => {
                Access::Group(Group::QueueAdd)
            }
            Command::QueueRemove { .. } | Command::QueueMove { .. } | Command::QueueMode { .. } => {
                Access::Group(Group::QueueEdit)
            }
            Command::Next {} => Access::Group(Group::Skip),
            Command::Control { .. }
            | Command::Visibility { .. }
            | Command::ChatEnabled { .. }
            | Command::ClearChat {}
            | Command::ReadyGate { .. }
            | Command::Persistent { .. }
            | Command::Permissions { .. } => Access::HostOnly,
            Command::DeleteChat { .. } => Access::Group(Group::Moderate),
            Command::Kick { .. } => Access::Group(Group::Moderate),
            Command::ItemInfo { .. } => Access::Server,
            Command::VoteSkip { .. } => Access::HostOnly,
        }
    }

    /// The wire name of this command's type (`item_info` for the server's own).
    pub fn type_name(&self) -> &'static str {
        match self {
            Command::ItemInfo { .. } => "item_info",
            _ => self.shape().name,
        }
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
            Command::QueueAdd { .. } | Command::QueuePlaylist { .. } => 6,
            Command::QueueRemove { .. } => 7,
            Command::QueueMove { .. } => 8,
            Command::Next {} => 9,
            Command::Control { .. } => 10,
            Command::Visibility { .. } => 11,
            Command::ChatEnabled { .. } => 12,
            Command::ClearChat {} => 13,
            Command::ReadyGate { .. } => 14,
            Command::QueueMode { .. } => 15,
            // Not a client's command: counted as what it follows.
            Command::ItemInfo { .. } => 6,
            Command::Persistent { .. } => 16,
            Command::Permissions { .. } => 17,
            Command::DeleteChat { .. } => 18,
            Command::VoteSkip { .. } => 19,
            Command::Kick { .. } => 20,
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
        check_shape(&mut fields, shape, &[EXPECTED_VERSION], &["type"])?;
        let type_name = shape.name;
        let expected_version = fields.remove("expected_version").and_then(|v| v.as_u64());
        if type_name == "queue_add" {
            let command = decode_queue_add(fields)?;
            command.validate()?;
            return Ok(CommandRequest {
                command,
                expected_version,
            });
        }
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
                title,
                artist,
                ..
            } => {
                position.map_or(Ok(()), check_position)?;
                NewItem {
                    source: source.clone(),
                    title: title.clone(),
                    artist: artist.clone(),
                    duration: *duration,
                    name: None,
                }
                .checked()
                .map(|_| ())
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
            Command::QueueAdd { items } => check_items(items),
            Command::ItemInfo { info, .. } => info.clone().checked().map(|_| ()),
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
            | Command::QueuePlaylist { .. }
            | Command::QueueMode { .. }
            | Command::Next {}
            | Command::Control { .. }
            | Command::Visibility { .. }
            | Command::ChatEnabled { .. }
            | Command::ClearChat {}
            | Command::Persistent { .. } => Ok(()),
            Command::Permissions { permissions } => {
                Permissions::default().patched(permissions).map(|_| ())
            }
            Command::DeleteChat { .. } => Ok(()),
            Command::VoteSkip { ratio, min_votes } => super::votes::VoteSkip {
                ratio: *ratio,
                min_votes: *min_votes,
            }
            .check()
            .map_err(CommandError::InvalidValue),
            Command::Kick { .. } => Ok(()),
        }
    }
}

/// Checks `items` (1 to [`MAX_ITEMS_PER_ADD`]); an error names the item's
/// index when there are several.
fn check_items(items: &[NewItem]) -> Result<(), CommandError> {
    if items.is_empty() || items.len() > MAX_ITEMS_PER_ADD {
        return Err(CommandError::InvalidValue(format!(
            "`items` takes 1 to {MAX_ITEMS_PER_ADD} items, got {}",
            items.len()
        )));
    }
    for (index, item) in items.iter().enumerate() {
        item.clone()
            .checked()
            .map_err(|error| at_index(items.len(), index, error))?;
    }
    Ok(())
}

/// An item's error, naming its index in a list of several: always
/// `invalid_value`, since the list as a whole is well formed.
fn at_index(count: usize, index: usize, error: CommandError) -> CommandError {
    if count == 1 {
        return error;
    }
    let message = match error {
        CommandError::InvalidValue(m)
        | CommandError::InvalidJson(m)
        | CommandError::InvalidCommand(m) => m,
        other => return other,
    };
    CommandError::InvalidValue(format!("items[{index}]: {message}"))
}

/// Decodes `queue_add` (its shape checked): `items`, `playlist_id`, or one
/// item; a top-level `name` is the default adder of every item.
fn decode_queue_add(mut fields: Map<String, Value>) -> Result<Command, CommandError> {
    // The shape is checked: which fields come together is settled.
    fields.remove("type");
    let name = fields
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if let Some(Value::String(playlist_id)) = fields.remove("playlist_id") {
        return Ok(Command::QueuePlaylist { playlist_id, name });
    }
    let Some(Value::Array(list)) = fields.remove("items") else {
        fields.remove("items");
        return Ok(Command::QueueAdd {
            items: vec![decode_item(Value::Object(fields), None)?],
        });
    };
    if list.is_empty() || list.len() > MAX_ITEMS_PER_ADD {
        return Err(CommandError::InvalidValue(format!(
            "`items` takes 1 to {MAX_ITEMS_PER_ADD} items, got {}",
            list.len()
        )));
    }
    let count = list.len().max(2);
    let items = list
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            decode_item(item, name.as_deref()).map_err(|error| at_index(count, index, error))
        })
        .collect::<Result<_, _>>()?;
    Ok(Command::QueueAdd { items })
}

/// One item of `queue_add`, its adder `name` unless it names its own.
fn decode_item(item: Value, name: Option<&str>) -> Result<NewItem, CommandError> {
    let mut item: NewItem = decode_shaped(item, &QUEUE_ITEM)?;
    if item.name.is_none() {
        item.name = name.map(str::to_owned);
    }
    item.checked()
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

    /// Who may send each client command: the table of groups, and
    /// the settings that stay the host's whatever the permissions say.
    #[test]
    fn each_command_belongs_to_its_group_or_is_the_hosts() {
        use Access::{Group as G, HostOnly};
        let cases = [
            (json!({"type": "play"}), G(Group::Playback)),
            (json!({"type": "pause"}), G(Group::Playback)),
            (json!({"type": "seek", "position": 1}), G(Group::Playback)),
            (
                json!({"type": "load", "video_id": "dQw4w9WgXcQ"}),
                G(Group::Playback),
            ),
            (json!({"type": "rate", "rate": 1.5}), G(Group::Playback)),
            (
                json!({"type": "duration", "duration": 60}),
                G(Group::Playback),
            ),
            (
                json!({"type": "queue_add", "video_id": "dQw4w9WgXcQ"}),
                G(Group::QueueAdd),
            ),
            (
                json!({"type": "queue_add", "playlist_id": "PLx1234567"}),
                G(Group::QueueAdd),
            ),
            (
                json!({"type": "queue_remove", "item_id": "q1"}),
                G(Group::QueueEdit),
            ),
            (
                json!({"type": "queue_move", "item_id": "q1", "index": 0}),
                G(Group::QueueEdit),
            ),
            (
                json!({"type": "queue_mode", "queue_mode": "loop"}),
                G(Group::QueueEdit),
            ),
            (json!({"type": "next"}), G(Group::Skip)),
            (
                json!({"type": "delete_chat", "chat_version": 3}),
                G(Group::Moderate),
            ),
            (json!({"type": "kick", "stream": "s"}), G(Group::Moderate)),
            (json!({"type": "control", "control": "open"}), HostOnly),
            (json!({"type": "permissions", "permissions": {}}), HostOnly),
            (
                json!({"type": "visibility", "visibility": "public"}),
                HostOnly,
            ),
            (
                json!({"type": "chat_enabled", "chat_enabled": false}),
                HostOnly,
            ),
            (json!({"type": "clear_chat"}), HostOnly),
            (
                json!({"type": "ready_gate", "quorum": 50, "deadline_ms": 1000}),
                HostOnly,
            ),
            (json!({"type": "persistent", "persistent": true}), HostOnly),
        ];
        for (body, access) in cases {
            let decoded = decode(body.clone()).unwrap_or_else(|e| panic!("{body}: {e}"));
            assert_eq!(decoded.command.access(), access, "{body}");
        }
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
                    title: None,
                    artist: None,
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
                Command::add(Source::Video("dQw4w9WgXcQ".into()), Some("x".into())),
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
    fn integers_may_be_written_with_a_zero_fraction_up_to_2_pow_53_minus_1() {
        let moved = decode(json!({
            "type": "queue_move", "item_id": "a", "index": 6461.0, "expected_version": 7.0
        }))
        .unwrap();
        assert_eq!(
            moved.command,
            Command::QueueMove {
                item_id: "a".into(),
                index: 6461
            }
        );
        assert_eq!(moved.expected_version, Some(7));
        let gate = decode(json!({"type": "ready_gate", "quorum": 50.0, "deadline_ms": -0.0}));
        assert_eq!(
            gate.map(|r| r.command),
            Ok(Command::ReadyGate {
                quorum: 50,
                deadline_ms: 0
            })
        );
        let play = decode(json!({"type": "play", "starts_at": 1.7e12}));
        assert_eq!(
            play.map(|r| r.command),
            Ok(Command::Play {
                position: None,
                starts_at: Some(1_700_000_000_000)
            })
        );
        let largest = decode(json!({"type": "play", "expected_version": 9_007_199_254_740_991.0}));
        assert_eq!(
            largest.map(|r| r.expected_version),
            Ok(Some(MAX_JSON_INTEGER))
        );
        for too_large in [
            json!(9_007_199_254_740_992_u64),
            json!(9_007_199_254_740_992.0),
            json!(u64::MAX),
            json!(1e300),
        ] {
            let body = json!({"type": "play", "expected_version": too_large});
            assert!(
                matches!(decode(body.clone()), Err(CommandError::InvalidValue(_))),
                "{body}"
            );
        }
        for not_an_integer in [json!(6461.5), json!(-1.0), json!(-1), json!(0.5)] {
            let body = json!({"type": "queue_move", "item_id": "a", "index": not_an_integer});
            assert!(
                matches!(decode(body.clone()), Err(CommandError::InvalidJson(_))),
                "{body}"
            );
        }
    }

    #[test]
    fn null_is_an_absent_optional_field_even_where_serde_wants_a_value() {
        #[derive(Debug, Deserialize)]
        struct Flagged {
            #[serde(default)]
            flag: bool,
        }
        const FLAGGED: Shape = Shape {
            name: "a flagged body",
            fields: &[("flag", Boolean, Optional)],
            alternatives: None,
        };
        let flagged: Result<Flagged, _> = decode_shaped(json!({"flag": null}), &FLAGGED);
        assert!(!flagged.unwrap().flag);
        let flagged: Result<Flagged, _> = decode_shaped(json!({"flag": true}), &FLAGGED);
        assert!(flagged.unwrap().flag);
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
                title: None,
                artist: None,
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
            Ok(Command::add(
                Source::Media("https://a.example/b.mp3".into()),
                None
            ))
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
