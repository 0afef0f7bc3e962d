//! `GET /api/openapi.json`: the API described as OpenAPI 3.1, generated from the code.
//!
//! Every handler carries a `#[utoipa::path]` next to its code, and every object it
//! answers derives `ToSchema` from the same serde attributes that write it, so the
//! description moves with the handlers. The request bodies are the exception that
//! proves the rule: the server reads them against the field tables of
//! `room::command`, and their schemas are built from those same tables
//! ([`super::schema`]), so what the spec admits is what the decoder admits
//! (including `additionalProperties: false`: an unknown field is
//! `400 invalid_command`).
//!
//! The pages (`/`, `/r/{room_id}`, `/static/*`, `/client/*`) are documented briefly:
//! they answer HTML, JavaScript and CSS for browsers, not API objects.

use std::sync::LazyLock;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::Required;
use utoipa::{Modify, OpenApi};

use super::error::{ErrorBody, ErrorCode, ErrorDetail};
use super::rooms::ChatMessageBody;
use super::schema::{CommandBody, CreateRoomBody, SseMessage};
use super::sync::SyncReportBody;

/// The route of the description itself.
pub const OPENAPI_ROUTE: &str = "/api/openapi.json";

/// The description as the server answers it, serialized once.
static DOCUMENT: LazyLock<Bytes> = LazyLock::new(|| {
    // Serializing a utoipa document cannot fail: it holds only strings, numbers and maps.
    Bytes::from(ApiDoc::openapi().to_pretty_json().unwrap_or_default())
});

/// The whole document, for tests and tools that want it without a server.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "syncroom",
        description = "Synchronized media rooms: a host controls playback with small POSTs, \
listeners follow one Server-Sent Events stream. docs/API.md in the repository is the reference; \
this description is generated from the code.\n\n\
Every error answers `{\"error\": {\"code\", \"message\"}}` (the `Error` object). Any route \
answers `405 method_not_allowed` to a method it does not take, and any path no route \
matches is `404 not_found`. A request whose headers do not arrive within `--header-timeout` \
is closed."
    ),
    paths(
        super::rooms::create,
        super::rooms::list,
        super::rooms::get_room,
        super::rooms::delete,
        super::rooms::command,
        super::rooms::chat,
        super::ready::ready,
        super::rooms::reset_host_token,
        super::sync::report,
        super::cohosts::add,
        super::cohosts::list,
        super::cohosts::revoke,
        super::events::events,
        super::media::list,
        super::media::file,
        super::media::art,
        super::time,
        super::healthz,
        super::readyz,
        super::metrics,
        openapi,
        super::pages::index,
        super::pages::room_page,
        super::pages::asset,
        super::pages::client_asset,
        super::vote::vote,
    ),
    components(schemas(
        ErrorBody,
        ErrorDetail,
        ErrorCode,
        CommandBody,
        CreateRoomBody,
        ChatMessageBody,
        SyncReportBody,
        super::ready::ReadyReportBody,
        super::cohosts::NewCohostBody,
        SseMessage,
        super::vote::VoteBody,
    )),
    modifiers(&HostToken, &OptionalCreateBody),
    tags(
        (name = "rooms", description = "Rooms, their commands and chat"),
        (name = "events", description = "A room's Server-Sent Events stream"),
        (name = "media", description = "The operator's media files (--media-dir)"),
        (name = "server", description = "Clock, health, metrics and this description"),
        (name = "pages", description = "The demo page and its assets, for browsers"),
    )
)]
struct ApiDoc;

/// The host token, sent as `Authorization: Bearer <host_token>`.
struct HostToken;

impl Modify for HostToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "host_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The `host_token` a room's creation answered (shown only then), or a \
                         co-host's `cohost_token` where the room's permissions give the action \
                         to co-hosts.",
                    ))
                    .build(),
            ),
        );
    }
}

/// `POST /api/rooms` takes no body at all, or an object: the body is optional, but
/// `null` is no object (`400 invalid_json`), so the schema itself is not nullable
/// (utoipa's `Option<T>` body would say both).
struct OptionalCreateBody;

impl Modify for OptionalCreateBody {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let body = openapi
            .paths
            .paths
            .get_mut("/api/rooms")
            .and_then(|item| item.post.as_mut())
            .and_then(|operation| operation.request_body.as_mut());
        if let Some(body) = body {
            body.required = Some(Required::False);
        }
    }
}

/// `GET /api/openapi.json`.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "server",
    responses(
        (status = 200, description = "This description, OpenAPI 3.1", content_type = "application/json", body = Object),
    )
)]
pub async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        DOCUMENT.clone(),
    )
        .into_response()
}
