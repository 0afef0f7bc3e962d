//! The schemas of what the server reads and streams that no serde derive can
//! describe: the request bodies, built from the field tables the decoder checks
//! them against (`room::command`), and the event stream's messages. Kept apart
//! from [`super::openapi`] so handlers can name these schemas in their
//! `#[utoipa::path]` without importing the document that lists the handlers.

use std::borrow::Cow;

use utoipa::openapi::schema::{
    AdditionalProperties, AllOfBuilder, AnyOfBuilder, ArrayBuilder, Discriminator, ObjectBuilder,
    OneOfBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use crate::registry::CREATE_SHAPE;
use crate::room::command::{
    JsonType, Presence, Shape, COMMANDS, EXPECTED_VERSION, MAX_ITEMS_PER_ADD, MAX_JSON_INTEGER,
    MAX_RATE, MAX_TITLE_CHARS, MIN_RATE, QUEUE_ITEM,
};
use crate::room::permissions::{Group, Who};
use crate::room::source::MAX_MEDIA_URL_BYTES;
use crate::room::state::{
    MAX_CHAT_NAME_CHARS, MAX_CHAT_TEXT_CHARS, MAX_GATE_DEADLINE_MS, MAX_GATE_QUORUM, MAX_POSITION,
    MAX_ROOM_NAME_CHARS,
};
use crate::room::sync::MAX_DRIFT_MS;
use crate::room::votes::MAX_MIN_VOTES;

/// Text with no control characters (`char::is_control`: U+0000-U+001F, U+007F-U+009F).
const TEXT_MAY_BE_BLANK: &str = r"^[^\u0000-\u001f\u007f-\u009f]*$";
/// The same, with something besides white space (chat names and messages).
const TEXT_NOT_BLANK: &str = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$";

/// The value rules of a field (ranges, lengths, id formats), from the constants the
/// server checks them with. Documentation only: a value outside them is
/// `400 invalid_value`, and some rules (no control characters, not blank after
/// trimming) no schema states.
fn value_rules(shape: &Shape, field: &str, object: ObjectBuilder) -> ObjectBuilder {
    match (shape.name, field) {
        (_, "video_id") => object.pattern(Some("^[A-Za-z0-9_-]{11}$")),
        (_, "media_url") => object
            .max_length(Some(MAX_MEDIA_URL_BYTES))
            .pattern(Some("^(https?://|/media/)")),
        (_, "room_id") => object.pattern(Some("^[A-Za-z0-9_-]{1,64}$")),
        (_, "drift_p50_ms" | "drift_p95_ms") => {
            object.minimum(Some(0.0)).maximum(Some(MAX_DRIFT_MS))
        }
        (_, "position") => object.minimum(Some(0.0)).maximum(Some(MAX_POSITION)),
        (_, "duration") => object
            .exclusive_minimum(Some(0.0))
            .maximum(Some(MAX_POSITION)),
        (_, "rate") => object.minimum(Some(MIN_RATE)).maximum(Some(MAX_RATE)),
        (_, "quorum") => object.maximum(Some(MAX_GATE_QUORUM)),
        (_, "deadline_ms") => object.maximum(Some(MAX_GATE_DEADLINE_MS)),
        (_, "ratio") => object.minimum(Some(0.0)).maximum(Some(1.0)),
        (_, "min_votes") => object.minimum(Some(1)).maximum(Some(MAX_MIN_VOTES)),
        (_, "title" | "artist") => object
            .max_length(Some(MAX_TITLE_CHARS))
            .pattern(Some(TEXT_MAY_BE_BLANK)),
        (_, "text") => object
            .max_length(Some(MAX_CHAT_TEXT_CHARS))
            .pattern(Some(TEXT_NOT_BLANK)),
        (name, "name") if name == CREATE_SHAPE.name => object
            .max_length(Some(MAX_ROOM_NAME_CHARS))
            .pattern(Some(TEXT_MAY_BE_BLANK)),
        (_, "name") => object
            .max_length(Some(MAX_CHAT_NAME_CHARS))
            .pattern(Some(TEXT_NOT_BLANK)),
        _ => object,
    }
}

/// The JSON Schema type of a field's values (besides `null`).
fn schema_type(json_type: JsonType) -> Type {
    match json_type {
        JsonType::Number => Type::Number,
        JsonType::NonNegativeInteger => Type::Integer,
        JsonType::String | JsonType::OneOf(_) => Type::String,
        JsonType::Boolean => Type::Boolean,
        JsonType::Array => Type::Array,
        JsonType::Object => Type::Object,
    }
}

/// The schema of one field of a body table.
fn field_schema(shape: &Shape, field: &str, json_type: JsonType, presence: Presence) -> Schema {
    if json_type == JsonType::Array {
        return items_schema();
    }
    if json_type == JsonType::Object && field == "permissions" {
        return permissions_patch_schema();
    }
    let mut types = vec![schema_type(json_type)];
    // An optional field may also be `null`, which means absent.
    if presence == Presence::Optional {
        types.push(Type::Null);
    }
    let mut object = ObjectBuilder::new().schema_type(if types.len() == 1 {
        SchemaType::Type(types[0].clone())
    } else {
        SchemaType::from_iter(types)
    });
    match json_type {
        // JSON Schema counts `6461.0` an integer, and so does the server.
        JsonType::NonNegativeInteger => {
            object = object.minimum(Some(0)).maximum(Some(MAX_JSON_INTEGER))
        }
        JsonType::OneOf(names) => {
            let mut values: Vec<serde_json::Value> = names.iter().map(|&n| n.into()).collect();
            if presence == Presence::Optional {
                values.push(serde_json::Value::Null);
            }
            object = object.enum_values(Some(values));
        }
        _ => {}
    }
    Schema::Object(value_rules(shape, field, object).build())
}

/// `queue_add`'s `items`: 1 to [`MAX_ITEMS_PER_ADD`] queue items, or `null`.
fn items_schema() -> Schema {
    Schema::Array(
        ArrayBuilder::new()
            .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
            // Each item names exactly one source, as a single `queue_add` does.
            .items(RefOr::T(body_schema(
                &QUEUE_ITEM,
                shape_schema(&QUEUE_ITEM, &[]),
            )))
            .min_items(Some(1))
            .max_items(Some(MAX_ITEMS_PER_ADD))
            .build(),
    )
}

/// The `permissions` command's `permissions`: any subset of the groups, each
/// given to one of [`Who::NAMES`]; `moderate` never to anyone.
fn permissions_patch_schema() -> Schema {
    let mut object = ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)));
    for group in Group::ALL {
        let names: &[&str] = match group {
            Group::Moderate => &Who::NAMES[..2],
            _ => &Who::NAMES,
        };
        let values: Vec<serde_json::Value> = names.iter().map(|&n| n.into()).collect();
        object = object.property(
            group.name(),
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(values)),
        );
    }
    Schema::Object(object.build())
}

/// An object schema that admits exactly the fields of `shape` (and `extra`).
pub fn shape_schema(shape: &Shape, extra: &[(&str, JsonType, Presence)]) -> ObjectBuilder {
    let mut object = ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)));
    for &(name, json_type, presence) in shape.fields.iter().chain(extra) {
        object = object.property(name, field_schema(shape, name, json_type, presence));
        if presence == Presence::Required {
            object = object.required(name);
        }
    }
    object
}

/// The schema of a body of `shape`: `object`, and when the shape has
/// [`Alternatives`](crate::room::command::Alternatives), their rule beside it in
/// an `allOf` (an object schema cannot hold a `oneOf` of its own in OpenAPI's
/// object model). `null` counts as not given, so "exactly one" is a `oneOf` of
/// "this field is there and not `null`", and "at most one" says, of every two of
/// the fields, that one of them is absent or `null`.
pub fn body_schema(shape: &Shape, object: ObjectBuilder) -> Schema {
    let Some(alternatives) = &shape.alternatives else {
        return Schema::Object(object.build());
    };
    let type_of = |name: &str| {
        shape
            .fields
            .iter()
            .find(|(field, _, _)| *field == name)
            .map_or(Type::String, |&(_, json_type, _)| schema_type(json_type))
    };
    let quoted: Vec<String> = alternatives
        .fields
        .iter()
        .map(|name| format!("`{name}`"))
        .collect();
    let (rule, description): (Schema, String) = match alternatives.presence {
        Presence::Required => {
            let mut one_of = OneOfBuilder::new();
            for name in alternatives.fields {
                let mut branch = ObjectBuilder::new()
                    .property(*name, ObjectBuilder::new().schema_type(type_of(name)))
                    .required(*name);
                // The other alternatives, and what this one refuses, may be there
                // only as `null`: each branch says "this one alone", so a branch
                // that fails on a refused field cannot let another match instead.
                let others = alternatives.fields.iter().filter(|other| *other != name);
                let refused = alternatives.refuses.iter().filter(|(a, _)| a == name);
                for field in others.chain(refused.flat_map(|(_, fields)| fields.iter())) {
                    branch = branch.property(*field, ObjectBuilder::new().schema_type(Type::Null));
                }
                one_of = one_of.item(branch);
            }
            let refusals: String = alternatives
                .refuses
                .iter()
                .map(|(name, fields)| {
                    let fields: Vec<String> = fields.iter().map(|f| format!("`{f}`")).collect();
                    format!(" With `{name}`, no {}.", fields.join(", "))
                })
                .collect();
            (
                one_of.build().into(),
                format!(
                    "Exactly one of {} (`null` counts as not given).{refusals}",
                    quoted.join(" or ")
                ),
            )
        }
        Presence::Optional => {
            let absent = |name: &str| {
                ObjectBuilder::new().property(name, ObjectBuilder::new().schema_type(Type::Null))
            };
            let mut pairs: Vec<Schema> = Vec::new();
            for (i, first) in alternatives.fields.iter().enumerate() {
                for second in &alternatives.fields[i + 1..] {
                    let either = AnyOfBuilder::new().item(absent(first)).item(absent(second));
                    pairs.push(either.build().into());
                }
            }
            let rule = match <[Schema; 1]>::try_from(pairs) {
                Ok([pair]) => pair,
                Err(pairs) => {
                    let all = pairs
                        .into_iter()
                        .fold(AllOfBuilder::new(), |all, pair| all.item(pair));
                    Schema::AllOf(all.build())
                }
            };
            (
                rule,
                format!(
                    "At most one of {} (`null` counts as not given).",
                    quoted.join(" or ")
                ),
            )
        }
    };
    Schema::AllOf(
        AllOfBuilder::new()
            .item(object)
            .item(rule)
            .description(Some(description))
            .build(),
    )
}

/// The schema name of one command type: `play` → `PlayCommand`.
fn command_schema_name(type_name: &str) -> String {
    let mut name: String = type_name
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect::<String>(),
                None => String::new(),
            }
        })
        .collect();
    name.push_str("Command");
    name
}

/// One command's body: its `type`, its fields and `expected_version`.
fn command_schema(shape: &Shape) -> Schema {
    let object = shape_schema(shape, &[EXPECTED_VERSION])
        .property(
            "type",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some([shape.name])),
        )
        .required("type");
    body_schema(shape, object)
}

/// The body of `POST /api/rooms/{room_id}/commands`: one of the commands, by `type`.
pub struct CommandBody;

impl PartialSchema for CommandBody {
    fn schema() -> RefOr<Schema> {
        let mut discriminator = Discriminator::new("type");
        let mut one_of = OneOfBuilder::new();
        for shape in &COMMANDS {
            let name = command_schema_name(shape.name);
            discriminator.mapping.insert(
                shape.name.to_string(),
                format!("#/components/schemas/{name}"),
            );
            one_of = one_of.item(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(name)));
        }
        Schema::OneOf(
            one_of
                .description(Some(
                    "A playback or queue command, tagged by `type`. Every command may carry \
                     `expected_version`; a stale one is `409 version_conflict`. Unknown fields \
                     are `400 invalid_command`.",
                ))
                .discriminator(Some(discriminator))
                .build(),
        )
        .into()
    }
}

impl ToSchema for CommandBody {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Command")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        for shape in &COMMANDS {
            schemas.push((
                command_schema_name(shape.name),
                command_schema(shape).into(),
            ));
        }
    }
}

/// A request body described by a [`Shape`] (the decoder's table): declares the
/// type the OpenAPI document names `$name`, with the shape's schema.
macro_rules! shaped_body {
    ($(#[$doc:meta])* $body:ident, $name:literal, $shape:expr) => {
        $(#[$doc])*
        pub struct $body;

        impl utoipa::PartialSchema for $body {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                $crate::http::schema::body_schema(
                    &$shape,
                    $crate::http::schema::shape_schema(&$shape, &[]),
                )
                .into()
            }
        }

        impl utoipa::ToSchema for $body {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed($name)
            }
        }
    };
}
pub(crate) use shaped_body;

shaped_body!(
    /// The body of `POST /api/rooms`: every field optional.
    CreateRoomBody,
    "CreateRoom",
    CREATE_SHAPE
);

/// One message of an event stream, as an object: its SSE `event:` name, its `id:`
/// (absent on `hello`, `presence`, `sync`, `gate`, `votes`, `kicked` and `members`) and its JSON `data:`. The stream itself is text; this is
/// what each message carries (what OpenAPI 3.2 calls the item schema).
pub struct SseMessage;

/// Every event a stream carries: its name, the schema of its `data` and
/// whether it has an `id:`.
fn sse_events() -> [(&'static str, String, bool); 24] {
    use crate::room::event as e;
    fn event<T: ToSchema>(name: &'static str, has_id: bool) -> (&'static str, String, bool) {
        (name, T::name().into_owned(), has_id)
    }
    [
        event::<crate::room::RoomView>("snapshot", true),
        event::<e::StateData>("state", true),
        event::<e::QueueData>("queue", true),
        event::<e::QueueModeData>("queue_mode", true),
        event::<e::ChatData>("chat", true),
        event::<e::ControlData>("control", true),
        event::<e::ReadyGateData>("ready_gate", true),
        event::<e::GateData>("gate", false),
        event::<super::stream_token::IssuedToken>("hello", false),
        event::<e::VisibilityData>("visibility", true),
        event::<e::ChatEnabledData>("chat_enabled", true),
        event::<e::VersionData>("chat_cleared", true),
        event::<e::VersionData>("host_token", true),
        event::<e::PresenceData>("presence", false),
        event::<crate::room::sync::SyncSummary>("sync", false),
        event::<e::ClosedData>("closed", true),
        event::<e::PersistentData>("persistent", true),
        event::<e::PermissionsData>("permissions", true),
        event::<e::CohostsData>("cohosts", true),
        event::<e::ChatDeletedData>("chat_deleted", true),
        event::<e::VoteSkipData>("vote_skip", true),
        event::<e::VotesData>("votes", false),
        event::<e::KickedData>("kicked", false),
        event::<crate::room::members::MembersChange>("members", false),
    ]
}

impl PartialSchema for SseMessage {
    fn schema() -> RefOr<Schema> {
        let mut one_of = OneOfBuilder::new();
        for (event, data, has_id) in sse_events() {
            let mut object = ObjectBuilder::new()
                .schema_type(Type::Object)
                .property(
                    "event",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some([event])),
                )
                .required("event")
                .property(
                    "data",
                    RefOr::Ref(utoipa::openapi::Ref::from_schema_name(data)),
                )
                .required("data");
            if has_id {
                object = object
                    .property(
                        "id",
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .description(Some("The room version this event made (decimal); send it back as `Last-Event-ID` to resume.")),
                    )
                    .required("id");
            }
            one_of = one_of.item(Schema::Object(object.build()));
        }
        Schema::OneOf(
            one_of
                .description(Some(
                    "One message of the stream. The stream opens with `retry:`, then `hello` \
                     (this connection's stream id and token), then a `snapshot` (or the replay of missed events after `Last-Event-ID`), then \
                     live events; comment lines (`:`) are keepalives. It ends after `closed`, \
                     at its maximum age, or at server shutdown.",
                ))
                .discriminator(Some(Discriminator::new("event")))
                .build(),
        )
        .into()
    }
}

impl ToSchema for SseMessage {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        use crate::room::event as e;
        fn add<T: ToSchema>(schemas: &mut Vec<(String, RefOr<Schema>)>) {
            schemas.push((T::name().into_owned(), T::schema()));
            T::schemas(schemas);
        }
        add::<crate::room::RoomView>(schemas);
        add::<e::StateData>(schemas);
        add::<e::QueueData>(schemas);
        add::<e::QueueModeData>(schemas);
        add::<e::ChatData>(schemas);
        add::<e::ControlData>(schemas);
        add::<e::ReadyGateData>(schemas);
        add::<e::GateData>(schemas);
        add::<super::stream_token::IssuedToken>(schemas);
        add::<e::VisibilityData>(schemas);
        add::<e::ChatEnabledData>(schemas);
        add::<e::VersionData>(schemas);
        add::<e::PresenceData>(schemas);
        add::<crate::room::sync::SyncSummary>(schemas);
        add::<e::ClosedData>(schemas);
        add::<e::PersistentData>(schemas);
        add::<e::PermissionsData>(schemas);
        add::<e::CohostsData>(schemas);
        add::<e::ChatDeletedData>(schemas);
        add::<e::VoteSkipData>(schemas);
        add::<e::VotesData>(schemas);
        add::<e::KickedData>(schemas);
        add::<crate::room::members::MembersChange>(schemas);
    }
}
