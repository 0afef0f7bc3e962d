//! `GET /api/openapi.json`: the description a real server answers is OpenAPI 3.1,
//! self-contained, and names every route the router has, so a route added
//! without its `#[utoipa::path]` fails here.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::spawn_app;
use serde_json::Value;

/// Where the router is assembled: every `.route(...)` call in these files counts.
const ROUTER_SOURCES: &[&str] = &["src/http/mod.rs", "src/http/pages.rs"];
/// The HTTP methods a route call may name (`get(handler)`, `.post(handler)`, ...).
const METHODS: &[&str] = &["get", "post", "put", "patch", "delete", "head", "options"];

async fn fetch_spec() -> Value {
    let app = spawn_app(&[]).await;
    let response = app.get("/api/openapi.json").await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    response.json().await.expect("the description is JSON")
}

/// The text of the balanced parentheses that open at `text[open]`.
fn balanced(text: &str, open: usize) -> &str {
    let mut depth = 0;
    for (i, c) in text[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &text[open + 1..open + i];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced parentheses in the router source")
}

/// Every `const NAME: &str = "...";` of the router's modules, to resolve route constants.
fn string_constants() -> BTreeMap<String, String> {
    let mut constants = BTreeMap::new();
    for entry in std::fs::read_dir("src/http").unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines() {
            let line = line.trim_start().trim_start_matches("pub ");
            let Some(rest) = line.strip_prefix("const ") else {
                continue;
            };
            let Some((name, value)) = rest.split_once(": &str = \"") else {
                continue;
            };
            if let Some(value) = value.strip_suffix("\";") {
                constants.insert(name.to_string(), value.to_string());
            }
        }
    }
    constants
}

/// `(method, path)` of every route the router sources declare, paths written the
/// OpenAPI way (`{*path}` becomes `{path}`).
fn router_routes() -> BTreeSet<(String, String)> {
    let constants = string_constants();
    let mut routes = BTreeSet::new();
    for source in ROUTER_SOURCES {
        let text = std::fs::read_to_string(source).unwrap();
        for (at, _) in text.match_indices(".route(") {
            let args = balanced(&text, at + ".route".len());
            let (path, handlers) = args.split_once(',').expect("route(path, handlers)");
            let path = path.trim();
            let path = match path.strip_prefix('"') {
                Some(literal) => literal.trim_end_matches('"').to_string(),
                None => {
                    let name = path.rsplit("::").next().unwrap();
                    constants
                        .get(name)
                        .unwrap_or_else(|| panic!("route constant {path} not found"))
                        .clone()
                }
            };
            let path = path.replace("{*", "{");
            let mut methods = 0;
            for method in METHODS {
                let call = format!("{method}(");
                for (i, _) in handlers.match_indices(&call) {
                    let before = handlers[..i].chars().last();
                    if before.is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':')) {
                        routes.insert((method.to_string(), path.clone()));
                        methods += 1;
                    }
                }
            }
            assert!(methods > 0, "no method found for route {path}: {handlers}");
        }
    }
    routes
}

/// Follows a local `$ref` (`#/components/schemas/Name`) in `spec`.
fn resolve<'a>(spec: &'a Value, reference: &str) -> Option<&'a Value> {
    spec.pointer(reference.strip_prefix('#')?)
}

/// The object part of a body schema: the schema itself, or the first part of the
/// `allOf` that puts a rule between fields (`video_id` or `media_url`) beside it.
fn object_part(schema: &Value) -> &Value {
    schema
        .get("allOf")
        .and_then(|parts| parts.get(0))
        .unwrap_or(schema)
}

/// Every `$ref` anywhere under `value`.
fn refs(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                if key == "$ref" {
                    found.push(item.as_str().expect("$ref is a string").to_string());
                } else {
                    refs(item, found);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| refs(item, found)),
        _ => {}
    }
}

#[tokio::test]
async fn openapi_json_is_openapi_3_1_naming_every_route_the_router_has() {
    let spec = fetch_spec().await;
    assert!(
        spec["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        spec["openapi"]
    );
    assert_eq!(spec["info"]["title"], "syncroom");
    assert_eq!(spec["info"]["version"], env!("CARGO_PKG_VERSION"));

    let routes = router_routes();
    // The scan itself must see the router, or this test could not fail.
    assert!(routes.len() >= 15, "router scan found only {routes:?}");
    assert!(routes.contains(&("get".into(), "/api/rooms/{room_id}/events".into())));
    assert!(routes.contains(&("get".into(), "/api/openapi.json".into())));

    let paths = spec["paths"].as_object().expect("paths");
    let mut missing = Vec::new();
    for (method, path) in &routes {
        if paths.get(path).and_then(|item| item.get(method)).is_none() {
            missing.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    assert!(
        missing.is_empty(),
        "routes without OpenAPI docs: {missing:?}"
    );
    // And nothing documented that the router does not serve.
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            assert!(
                routes.contains(&(method.clone(), path.clone())),
                "documented but not routed: {method} {path}"
            );
        }
    }
}

#[tokio::test]
async fn every_reference_resolves_and_every_operation_documents_its_answers() {
    let spec = fetch_spec().await;
    let mut found = Vec::new();
    refs(&spec, &mut found);
    assert!(!found.is_empty());
    for reference in &found {
        assert!(
            resolve(&spec, reference).is_some(),
            "dangling $ref {reference}"
        );
    }
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            assert!(!responses.is_empty(), "{method} {path} documents no answer");
            for (status, response) in responses {
                // Every documented error answers the one error body.
                if status.starts_with('4') || status.starts_with('5') {
                    if let Some(json) = response["content"].get("application/json") {
                        assert_eq!(
                            json["schema"]["$ref"], "#/components/schemas/Error",
                            "{method} {path} {status}"
                        );
                    }
                }
                // A 429 or 503 always says when to come back.
                if status == "429" || status == "503" {
                    assert!(
                        response["headers"].get("Retry-After").is_some(),
                        "{method} {path} {status} lacks Retry-After"
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn limited_routes_document_429_and_body_routes_document_the_body_refusals() {
    let spec = fetch_spec().await;
    let responses = |method: &str, path: &str| -> BTreeSet<String> {
        spec["paths"][path][method]["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path}"))
            .keys()
            .cloned()
            .collect()
    };
    for (method, path) in [
        ("post", "/api/rooms"),
        ("delete", "/api/rooms/{room_id}"),
        ("post", "/api/rooms/{room_id}/commands"),
        ("post", "/api/rooms/{room_id}/chat"),
        ("get", "/api/rooms/{room_id}/events"),
    ] {
        let statuses = responses(method, path);
        assert!(statuses.contains("429"), "{method} {path}: {statuses:?}");
        assert!(statuses.contains("503"), "{method} {path}: {statuses:?}");
    }
    for path in [
        "/api/rooms",
        "/api/rooms/{room_id}/commands",
        "/api/rooms/{room_id}/chat",
    ] {
        let statuses = responses("post", path);
        for status in ["400", "408", "413", "415"] {
            assert!(statuses.contains(status), "POST {path}: {statuses:?}");
        }
    }
    let command = responses("post", "/api/rooms/{room_id}/commands");
    for status in ["401", "403", "404", "409"] {
        assert!(command.contains(status), "{command:?}");
    }
    assert!(responses("post", "/api/rooms").contains("409"));
}

#[tokio::test]
async fn request_bodies_refuse_unknown_fields_and_commands_are_tagged_by_type() {
    let spec = fetch_spec().await;
    let schemas = &spec["components"]["schemas"];
    for name in ["CreateRoom", "ChatMessage"] {
        assert_eq!(
            object_part(&schemas[name])["additionalProperties"],
            false,
            "{name}"
        );
    }
    let command = &schemas["Command"];
    assert_eq!(command["discriminator"]["propertyName"], "type");
    let variants = command["oneOf"].as_array().expect("oneOf");
    let mapping = command["discriminator"]["mapping"].as_object().unwrap();
    let mut types = BTreeSet::new();
    for variant in variants {
        let schema = object_part(resolve(&spec, variant["$ref"].as_str().unwrap()).unwrap());
        assert_eq!(schema["additionalProperties"], false, "{variant}");
        let type_name = schema["properties"]["type"]["enum"][0].as_str().unwrap();
        assert_eq!(mapping[type_name], variant["$ref"]);
        assert!(schema["properties"].get("expected_version").is_some());
        types.insert(type_name.to_string());
    }
    let expected: BTreeSet<String> = syncroom::room::command::COMMAND_TYPES
        .iter()
        .map(|name| name.to_string())
        .collect();
    assert_eq!(types, expected);

    // The error codes are an enum, the same list the server answers with.
    let codes = schemas["ErrorCode"]["enum"].as_array().expect("enum");
    for code in [
        "invalid_json",
        "invalid_command",
        "rate_limited",
        "unavailable",
    ] {
        assert!(codes.iter().any(|c| c == code), "{code}");
    }
}

#[tokio::test]
async fn the_event_stream_documents_text_event_stream_and_its_events() {
    let spec = fetch_spec().await;
    let ok = &spec["paths"]["/api/rooms/{room_id}/events"]["get"]["responses"]["200"];
    let stream = &ok["content"]["text/event-stream"];
    let message = resolve(&spec, stream["schema"]["$ref"].as_str().unwrap()).unwrap();
    let events: BTreeSet<&str> = message["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|variant| variant["properties"]["event"]["enum"][0].as_str().unwrap())
        .collect();
    let expected: BTreeSet<&str> = [
        "snapshot",
        "state",
        "queue",
        "queue_mode",
        "chat",
        "control",
        "ready_gate",
        "hello",
        "presence",
        "gate",
        "visibility",
        "chat_enabled",
        "chat_cleared",
        "host_token",
        "hello",
        "presence",
        "sync",
        "closed",
        "persistent",
        "permissions",
        "cohosts",
        "chat_deleted",
        "vote_skip",
        "votes",
        "kicked",
        "members",
    ]
    .into();
    assert_eq!(events, expected);
}

#[tokio::test]
async fn the_create_body_is_optional_but_never_null_as_the_server_answers() {
    // schemathesis (ST202) sends whatever the spec admits: a `null` body must not be
    // admitted, since the server refuses it as no object.
    let app = spawn_app(&[]).await;
    let spec: Value = app.get("/api/openapi.json").await.json().await.unwrap();
    let body = &spec["paths"]["/api/rooms"]["post"]["requestBody"];
    assert_eq!(body["required"], false, "{body}");
    assert_eq!(
        body["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/CreateRoom"
    );
    let client = common::http_client();
    let no_body = client.post(app.url("/api/rooms")).send().await.unwrap();
    assert_eq!(no_body.status(), 201);
    let null = client
        .post(app.url("/api/rooms"))
        .header("content-type", "application/json")
        .body("null")
        .send()
        .await
        .unwrap();
    common::assert_error(null, 400, "invalid_json").await;
}

#[tokio::test]
async fn chat_text_rules_are_in_the_schema_and_match_what_the_server_refuses() {
    // schemathesis (ST202) sends whatever the schema admits: a blank name or text
    // must not be schema-valid, since the server refuses it.
    let app = spawn_app(&[]).await;
    let spec: Value = app.get("/api/openapi.json").await.json().await.unwrap();
    let chat = &spec["components"]["schemas"]["ChatMessage"]["properties"];
    let (room, _token, _) = app.create_room(serde_json::json!({})).await;
    for field in ["name", "text"] {
        let pattern = chat[field]["pattern"].as_str().expect("a pattern");
        // No regex engine among the dependencies: check the pattern's anchors and
        // its excluded ranges, then that the server refuses what it excludes.
        assert!(
            pattern.starts_with('^') && pattern.ends_with('$'),
            "{pattern}"
        );
        assert!(pattern.contains(r"\u0000-\u001f\u007f-\u009f"), "{pattern}");
        assert!(pattern.contains(r"[^\s"), "{pattern}");
        for refused in ["", "   ", "a\u{7}b", "a\u{85}b"] {
            let mut body = serde_json::json!({"name": "Ann", "text": "hi"});
            body[field] = refused.into();
            let response = app.chat(&room, body).await;
            common::assert_error(response, 400, "invalid_value").await;
        }
    }
}

#[tokio::test]
async fn media_url_stands_beside_video_id_in_state_queue_items_and_bodies() {
    let spec = fetch_spec().await;
    let schemas = &spec["components"]["schemas"];
    // State, queue items and listings carry the two source fields through `Source`.
    for name in ["State", "QueueItem", "RoomSummary"] {
        let parts = schemas[name]["allOf"].as_array().expect(name);
        assert!(
            parts
                .iter()
                .any(|part| part["$ref"] == "#/components/schemas/Source"),
            "{name}"
        );
    }
    for field in ["video_id", "media_url"] {
        assert_eq!(
            schemas["Source"]["properties"][field]["type"],
            serde_json::json!(["string", "null"]),
            "{field}"
        );
    }
    for name in ["LoadCommand", "QueueAddCommand", "CreateRoom"] {
        let media_url = &object_part(&schemas[name])["properties"]["media_url"];
        assert_eq!(
            media_url["type"],
            serde_json::json!(["string", "null"]),
            "{name}"
        );
    }
}

#[tokio::test]
async fn an_item_is_exactly_one_of_video_id_and_media_url_in_the_schema_as_on_the_server() {
    let app = spawn_app(&[]).await;
    let spec: Value = app.get("/api/openapi.json").await.json().await.unwrap();
    let schemas = &spec["components"]["schemas"];
    // `load` and `queue_add`: a `oneOf` of "this one is there as a string", so
    // both (two branches) and neither (none) are outside the schema; `null` is
    // no string, so it counts as not given.
    for (name, sources) in [
        ("LoadCommand", &["media_url", "video_id"][..]),
        (
            "QueueAddCommand",
            &["items", "media_url", "playlist_id", "video_id"][..],
        ),
    ] {
        let rule = &schemas[name]["allOf"][1]["oneOf"];
        let branches: BTreeSet<String> = rule
            .as_array()
            .unwrap_or_else(|| panic!("{name}: {}", schemas[name]))
            .iter()
            .map(|branch| {
                let field = branch["required"][0].as_str().unwrap();
                let expected = if field == "items" { "array" } else { "string" };
                assert_eq!(branch["properties"][field]["type"], expected, "{name}");
                // Many items take no single item's details: there only as `null`.
                let many = matches!(field, "items" | "playlist_id");
                for single in ["title", "artist", "duration"] {
                    let refused = branch["properties"][single]["type"] == "null";
                    assert_eq!(refused, many, "{name} {field}: {single}");
                }
                // "This one alone": the other sources only as `null`, so a branch that
                // fails on a refused field cannot leave another to match the body.
                for other in sources.iter().filter(|other| **other != field) {
                    assert_eq!(
                        branch["properties"][*other]["type"], "null",
                        "{name} {field}: {other}"
                    );
                }
                field.to_string()
            })
            .collect();
        let sources: BTreeSet<String> = sources.iter().map(|s| s.to_string()).collect();
        assert_eq!(branches, sources, "{name}");
    }
    // Creating a room: at most one, "one of the two is absent or null".
    let either = schemas["CreateRoom"]["allOf"][1]["anyOf"]
        .as_array()
        .expect("anyOf");
    for (branch, field) in either.iter().zip(["video_id", "media_url"]) {
        assert_eq!(branch["properties"][field]["type"], "null", "{branch}");
    }

    // And the server draws the same line.
    let (room, token, _) = app.create_room(serde_json::json!({})).await;
    let video = "dQw4w9WgXcQ";
    for (body, accepted) in [
        (
            serde_json::json!({"type": "queue_add", "video_id": video, "media_url": "/media/a.ogg"}),
            false,
        ),
        (serde_json::json!({"type": "queue_add"}), false),
        (
            serde_json::json!({"type": "queue_add", "video_id": null, "media_url": null}),
            false,
        ),
        (
            serde_json::json!({"type": "queue_add", "video_id": video, "media_url": null}),
            true,
        ),
        (
            serde_json::json!({"type": "load", "video_id": null, "media_url": "https://a.example/b.mp3"}),
            true,
        ),
        (
            serde_json::json!({"type": "load", "video_id": video, "media_url": "/media/a.ogg"}),
            false,
        ),
        (
            serde_json::json!({"type": "queue_add", "items": [{"video_id": video}], "title": "x"}),
            false,
        ),
        (
            serde_json::json!({"type": "queue_add", "playlist_id": "PLx", "duration": 3}),
            false,
        ),
        (
            serde_json::json!({"type": "queue_add", "video_id": video, "playlist_id": "PLx", "duration": 3}),
            false,
        ),
        (
            serde_json::json!({"type": "queue_add", "items": [{"video_id": video, "title": "x"}], "title": null}),
            true,
        ),
    ] {
        let response = app.command(&room, Some(&token), body.clone()).await;
        if accepted {
            assert_eq!(response.status(), 200, "{body}");
        } else {
            common::assert_error(response, 400, "invalid_value").await;
        }
    }
}
