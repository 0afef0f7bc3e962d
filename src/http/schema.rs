//! The schemas of what the server reads and streams that no serde derive can
//! describe: the request bodies, built from the field tables the decoder checks
//! them against (`room::command`), and the event stream's messages. Kept apart
//! from [`super::openapi`] so handlers can name these schemas in their
//! `#[utoipa::path]` without importing the document that lists the handlers.

use std::borrow::Cow;

use utoipa::openapi::schema::{
    AdditionalProperties, Discriminator, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use crate::registry::CREATE_SHAPE;
use crate::room::command::{
    JsonType, Presence, Shape, COMMANDS, EXPECTED_VERSION, MAX_RATE, MAX_TITLE_CHARS, MIN_RATE,
};
use crate::room::source::MAX_MEDIA_URL_BYTES;
use crate::room::state::{
    MAX_CHAT_NAME_CHARS, MAX_CHAT_TEXT_CHARS, MAX_POSITION, MAX_ROOM_NAME_CHARS,
};
use crate::room::sync::MAX_DRIFT_MS;

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
        (_, "title") => object
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

/// The schema of one field of a body table.
fn field_schema(shape: &Shape, field: &str, json_type: JsonType, presence: Presence) -> Schema {
    let mut types = vec![match json_type {
        JsonType::Number => Type::Number,
        JsonType::NonNegativeInteger => Type::Integer,
        JsonType::String | JsonType::OneOf(_) => Type::String,
        JsonType::Boolean => Type::Boolean,
        JsonType::Object => Type::Object,
    }];
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
        JsonType::NonNegativeInteger => object = object.minimum(Some(0)),
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
    Schema::Object(object.build())
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
                utoipa::openapi::schema::Schema::Object(
                    $crate::http::schema::shape_schema(&$shape, &[]).build(),
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
/// (absent on `hello`, `presence`, `sync` and `gate`) and its JSON `data:`. The stream itself is text; this is
/// what each message carries (what OpenAPI 3.2 calls the item schema).
pub struct SseMessage;

/// Every event a stream carries: its name and the schema of its `data`.
fn sse_events() -> [(&'static str, String, bool); 18] {
    use crate::room::event as e;
    [
        (
            "snapshot",
            <crate::room::RoomView as ToSchema>::name().into_owned(),
            true,
        ),
        (
            "state",
            <e::StateData as ToSchema>::name().into_owned(),
            true,
        ),
        (
            "queue",
            <e::QueueData as ToSchema>::name().into_owned(),
            true,
        ),
        ("chat", <e::ChatData as ToSchema>::name().into_owned(), true),
        (
            "control",
            <e::ControlData as ToSchema>::name().into_owned(),
            true,
        ),
        (
            "ready_gate",
            <e::ReadyGateData as ToSchema>::name().into_owned(),
            true,
        ),
        (
            "gate",
            <e::GateData as ToSchema>::name().into_owned(),
            false,
        ),
        (
            "hello",
            <super::stream_token::IssuedToken as ToSchema>::name().into_owned(),
            false,
        ),
        (
            "visibility",
            <e::VisibilityData as ToSchema>::name().into_owned(),
            true,
        ),
        (
            "chat_enabled",
            <e::ChatEnabledData as ToSchema>::name().into_owned(),
            true,
        ),
        (
            "chat_cleared",
            <e::VersionData as ToSchema>::name().into_owned(),
            true,
        ),
        (
            "host_token",
            <e::VersionData as ToSchema>::name().into_owned(),
            true,
        ),
        (
            "presence",
            <e::PresenceData as ToSchema>::name().into_owned(),
            false,
        ),
        (
            "sync",
            <crate::room::sync::SyncSummary as ToSchema>::name().into_owned(),
            false,
        ),
        (
            "closed",
            <e::ClosedData as ToSchema>::name().into_owned(),
            true,
        ),
        (
            "permissions",
            <e::PermissionsData as ToSchema>::name().into_owned(),
            true,
        ),
        (
            "cohosts",
            <e::CohostsData as ToSchema>::name().into_owned(),
            true,
        ),
        (
            "chat_deleted",
            <e::ChatDeletedData as ToSchema>::name().into_owned(),
            true,
        ),
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
        add::<e::PermissionsData>(schemas);
        add::<e::CohostsData>(schemas);
        add::<e::ChatDeletedData>(schemas);
    }
}
