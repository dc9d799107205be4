//! `GET /api/v1/openapi.json`: the data API described in OpenAPI 3.1. Written by hand next to
//! the handlers, and held to them three ways: `tests/api.rs` walks every path and method and
//! calls it; unrouted methods answer 405 with `Allow` read from this document
//! ([`allowed_methods`]); and `.ci/run` runs schemathesis against it on both databases.
//!
//! Read with a hub API key, the document names that hub's live widgets (`embed_key`) and
//! categories (`category`) as enums, so every value it allows is one the API accepts.

use actix_web::{HttpRequest, HttpResponse, get, web};
use serde_json::{Value, json};

use super::caller;
use crate::AppState;
use crate::db::annotations::STATUSES;
use crate::db::events::KINDS;
use crate::db::{api_keys, categories, widgets};

/// Text the input layer accepts: no NUL (`web::input`).
const NO_NUL: &str = r"^[^\x00]*$";
/// An annotation body: no NUL, and something besides whitespace (Rust's `White_Space`, which the
/// server trims).
const BODY: &str = r"^[^\x00]*[^\x00\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00]*$";
/// A page cursor, or empty for the first page.
const CURSOR: &str = r"^([0-9]{1,18}-[0-9]{1,18})?$";

/// What the document can say of the caller's hub.
#[derive(Debug, Default)]
pub struct Tailor {
    /// The embed keys of the hub's live widgets.
    pub widget_keys: Vec<String>,
    /// The slugs of the hub's live categories (what a write may name).
    pub categories: Vec<String>,
    /// The slugs of all the hub's categories, archived ones too (what a filter may name).
    pub all_categories: Vec<String>,
}

fn int64() -> Value {
    json!({"type": "integer", "minimum": i64::MIN, "maximum": i64::MAX})
}

fn text(max: Option<usize>) -> Value {
    let mut schema = json!({"type": "string", "pattern": NO_NUL});
    if let Some(max) = max {
        schema["maxLength"] = json!(max);
    }
    schema
}

/// `schema`, or `null`.
fn nullable(mut schema: Value) -> Value {
    if let Some(values) = schema.get_mut("enum").and_then(Value::as_array_mut) {
        values.push(Value::Null);
    }
    if let Some(kind) = schema.get("type").and_then(Value::as_str).map(str::to_owned) {
        schema["type"] = json!([kind, "null"]);
    }
    schema
}

fn error(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

fn ok(description: &str, schema: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } } })
}

fn body(schema: &str, example: Value) -> Value {
    json!({ "required": true, "content": { "application/json": {
        "schema": { "$ref": format!("#/components/schemas/{schema}") }, "example": example } } })
}

fn param(name: &str, location: &str, schema: Value, description: &str) -> Value {
    json!({ "name": name, "in": location, "required": location == "path", "schema": schema, "description": description })
}

/// Adds the answers every operation can give: 503 always; 400 and 401 where it takes
/// parameters or a credential; 413, 415 and 422 where it takes a body.
fn with_common(mut operation: Value) -> Value {
    let has_body = operation.get("requestBody").is_some();
    let secured = operation.get("security").and_then(Value::as_array).is_none_or(|s| !s.is_empty());
    let responses = &mut operation["responses"];
    let mut add = |status: &str, description: &str| {
        if responses.get(status).is_none() {
            responses[status] = error(description);
        }
    };
    add("400", "Malformed parameters: a value of the wrong type, NUL or invalid UTF-8 in the address or query.");
    if secured {
        add("401", "No or invalid credential.");
    }
    if has_body {
        add("413", "Body too large.");
        add("415", "A Content-Type other than JSON (none is read as JSON).");
        add("422", "A body of the wrong shape, or text with NUL or a lone surrogate.");
    }
    add("503", "The database is unavailable, or too many streams; see Retry-After.");
    operation
}

/// The methods the document gives the path (e.g. `GET, PATCH, DELETE`), when it has the path.
pub fn allowed_methods(path: &str) -> Option<String> {
    let doc = document(&Tailor::default());
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let mut methods: Vec<String> = Vec::new();
    for (template, operations) in doc["paths"].as_object()? {
        let pattern: Vec<&str> = template.split('/').collect();
        let matches = pattern.len() == segments.len()
            && pattern.iter().zip(&segments).all(|(p, s)| (p.starts_with('{') && !s.is_empty()) || p == s);
        if matches {
            for method in operations.as_object()?.keys() {
                let method = method.to_uppercase();
                if !methods.contains(&method) {
                    methods.push(method);
                }
            }
        }
    }
    (!methods.is_empty()).then(|| methods.join(", "))
}

/// The document; `tailor` narrows embed keys and categories to the caller's hub.
pub fn document(tailor: &Tailor) -> Value {
    let key_schema = if tailor.widget_keys.is_empty() {
        text(Some(256))
    } else {
        json!({"type": "string", "enum": tailor.widget_keys})
    };
    let category_schema = if tailor.categories.is_empty() {
        text(Some(32))
    } else {
        json!({"type": "string", "enum": tailor.categories})
    };
    let key = param("embed_key", "path", key_schema, "The widget's embed key.");
    let id = param("id", "path", int64(), "The annotation's id.");
    let reply_id = param("reply_id", "path", int64(), "The reply's id.");
    let limit =
        param("limit", "query", json!({"type": "integer", "minimum": 1, "maximum": 200, "default": 50}), "Page size.");
    let cursor = param(
        "cursor",
        "query",
        json!({"type": "string", "pattern": CURSOR}),
        "`next_cursor` of the previous page; empty or left out for the first page.",
    );
    let filter_category = if tailor.all_categories.is_empty() {
        text(Some(32))
    } else {
        json!({"type": "string", "enum": tailor.all_categories})
    };
    let filters = vec![
        param(
            "category",
            "query",
            filter_category,
            "A category slug of the widget's hub (archived ones too); another is a 400.",
        ),
        param("status", "query", json!({"type": "string", "enum": STATUSES}), "Triage status."),
        param("author", "query", json!({"type": "string", "enum": ["me"]}), "Only the caller's own."),
        param("created_after", "query", int64(), "Created at or after (epoch ms)."),
        param("created_before", "query", int64(), "Created before (epoch ms)."),
    ];
    let mut list_params = vec![key.clone()];
    list_params.extend(filters.clone());
    list_params.push(param(
        "order",
        "query",
        json!({"type": "string", "enum": ["newest", "oldest"]}),
        "By creation time.",
    ));
    list_params.extend([limit.clone(), cursor.clone()]);
    let mut stream_params = vec![key.clone()];
    stream_params.extend(filters);
    stream_params.push(limit.clone());
    stream_params.push(param(
        "access_token",
        "query",
        text(None),
        "The bearer token, for EventSource (which cannot send headers).",
    ));
    stream_params.push(param(
        "Last-Event-ID",
        "header",
        json!({"type": "string"}),
        "Resume after this event (an integer; anything else is ignored).",
    ));

    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "IHF data API",
            "version": "1.0.0",
            "description": "Annotations (with their replies and \"me too\" support), widgets and interaction events of IHF. Authenticate with a hub API key or an embed token (`Authorization: Bearer …`), or a signed-in session (writes then need `X-CSRF-Token`). Times are epoch milliseconds. Errors are `{\"error\", \"message\"}`. Text must not contain NUL (U+0000) or lone UTF-16 surrogates: such a value is refused (400 in the address or query, 422 in a body) with a message naming it. Methods a path does not list answer 405 with `Allow`."
        },
        "servers": [{ "url": "/api/v1" }],
        "security": [{ "bearer": [] }, { "session": [] }],
        "paths": {
            "/openapi.json": { "get": {
                "operationId": "openapi", "summary": "This document.", "security": [],
                "responses": { "200": { "description": "The OpenAPI document.", "content": { "application/json": {} } } }
            }},
            "/widgets": { "get": {
                "operationId": "listWidgets", "summary": "The widgets the caller may read (an API key: its hub's; an embed token: its widget).",
                "responses": { "200": ok("Widgets.", "WidgetList"), "401": error("No or invalid credential.") }
            }},
            "/widgets/{embed_key}": { "get": {
                "operationId": "getWidget", "summary": "A widget and the counts the caller may see.",
                "parameters": [key.clone()],
                "responses": { "200": ok("The widget.", "Widget"), "401": error("No or invalid credential."),
                    "403": error("The credential is for another widget."), "404": error("No such widget, or not readable.") }
            }},
            "/widgets/{embed_key}/annotations": {
                "get": {
                    "operationId": "listAnnotations", "summary": "Annotations the caller may read, filtered, ordered, one page at a time.",
                    "parameters": list_params,
                    "responses": { "200": ok("A page.", "AnnotationPage"), "400": error("A bad filter or cursor."),
                        "401": error("No or invalid credential."), "403": error("The credential is for another widget."),
                        "404": error("No such widget, or not readable.") }
                },
                "post": {
                    "operationId": "createAnnotation", "summary": "Annotate the widget.",
                    "parameters": [key.clone()],
                    "requestBody": body("NewAnnotation", json!({"body": "The total jumps when I pick express shipping.", "category": "friction", "idempotency_key": "b7f1c2"})),
                    "responses": { "201": ok("Created.", "Annotation"), "200": ok("Already created with this idempotency key.", "Annotation"),
                        "400": error("Not JSON."), "401": error("No or invalid credential."), "403": error("May not annotate this widget."),
                        "404": error("No such widget."), "413": error("Body too large."), "422": error("Invalid body or category.") }
                }
            },
            "/widgets/{embed_key}/annotations/stream": { "get": {
                "operationId": "streamAnnotations",
                "summary": "Server-sent events: `snapshot` first, then `insert`, `update` and `delete` of rows the caller may read; `end` before the stream closes, its data `{reason, message}` with reason `unauthorized` (the credential was revoked or expired), `forbidden` (the caller may no longer read the widget: a membership or the widget's scope changed) or `error`. Resumable with Last-Event-ID.",
                "parameters": stream_params,
                "responses": { "200": { "description": "An event stream; each event's data is JSON (an Annotation, `{id, version}` for `delete`, `{items}` for `snapshot`).",
                        "content": { "text/event-stream": {} } },
                    "400": error("A bad filter."), "401": error("No or invalid credential."),
                    "403": error("The credential is for another widget."), "404": error("No such widget, or not readable."),
                    "503": error("Too many open streams; see Retry-After.") }
            }},
            "/widgets/{embed_key}/annotations/{id}": {
                "get": {
                    "operationId": "getAnnotation", "summary": "One annotation.",
                    "parameters": [key.clone(), id.clone()],
                    "responses": { "200": ok("The annotation.", "Annotation"), "401": error("No or invalid credential."),
                        "403": error("The credential is for another widget."), "404": error("No such annotation, or not readable.") }
                },
                "patch": {
                    "operationId": "updateAnnotation", "summary": "Change the body (the author) or category and status (triagers, operators).",
                    "parameters": [key.clone(), id.clone()],
                    "requestBody": body("AnnotationPatch", json!({"body": "The total jumps by 4.99 when I pick express shipping."})),
                    "responses": { "200": ok("Updated.", "Annotation"), "401": error("No or invalid credential."),
                        "403": error("Not the author, or not triage staff."), "404": error("No such annotation, or not readable."),
                        "409": error("Changed by someone else (version)."), "413": error("Body too large."), "422": error("Invalid change.") }
                },
                "delete": {
                    "operationId": "deleteAnnotation", "summary": "Delete one's own annotation.",
                    "parameters": [key.clone(), id],
                    "responses": { "204": { "description": "Deleted." }, "401": error("No or invalid credential."),
                        "403": error("Not the author."), "404": error("No such annotation, or not readable."),
                        "409": error("Changed by someone else.") }
                }
            },
            "/widgets/{embed_key}/annotations/{id}/replies": {
                "get": {
                    "operationId": "listReplies", "summary": "The replies under an annotation that the caller reads, oldest first (internal ones for the hub's staff only).",
                    "parameters": [key.clone(), id.clone()],
                    "responses": { "200": ok("The replies.", "ReplyList"), "401": error("No or invalid credential."),
                        "403": error("The credential is for another widget."), "404": error("No such annotation, or not readable.") }
                },
                "post": {
                    "operationId": "createReply", "summary": "Reply to an annotation (the hub's triagers and operators, and the annotation's author; only staff mark a reply internal). Notifies the annotation's author and the staff it mentions (`@handle`); sends the webhook event `annotation.replied`.",
                    "parameters": [key.clone(), id.clone()],
                    "requestBody": body("NewReply", json!({"body": "Thanks, fixed in the next release.", "internal": false})),
                    "responses": { "201": ok("Created.", "Reply"), "401": error("No or invalid credential."),
                        "403": error("Neither staff nor the annotation's author, an internal reply by someone else than staff, or a credential for another widget."),
                        "404": error("No such annotation, or not readable."), "413": error("Body too large."), "422": error("Invalid body.") }
                }
            },
            "/widgets/{embed_key}/annotations/{id}/replies/{reply_id}": {
                "patch": {
                    "operationId": "updateReply", "summary": "Change the body of one's own reply.",
                    "parameters": [key.clone(), id.clone(), reply_id],
                    "requestBody": body("ReplyPatch", json!({"body": "Thanks, fixed in release 2.4."})),
                    "responses": { "200": ok("Updated.", "Reply"), "401": error("No or invalid credential."),
                        "403": error("Not the reply's author, or a credential for another widget."), "404": error("No such reply, or not readable."),
                        "409": error("Changed meanwhile (version)."), "413": error("Body too large."), "422": error("Invalid body.") }
                }
            },
            "/widgets/{embed_key}/annotations/{id}/support": {
                "put": {
                    "operationId": "giveSupport", "summary": "\"Me too\": the caller supports the annotation (on live public and members widgets, not their own). Giving it twice changes nothing.",
                    "parameters": [key.clone(), id.clone()],
                    "responses": { "200": ok("The support as it is now.", "Support"), "401": error("No or invalid credential."),
                        "403": error("A private or archived widget, or a credential for another widget."),
                        "404": error("No such annotation, or not readable."), "409": error("The caller's own annotation.") }
                },
                "delete": {
                    "operationId": "takeBackSupport", "summary": "The caller takes back their support (nothing happens when they gave none).",
                    "parameters": [key.clone(), id.clone()],
                    "responses": { "200": ok("The support as it is now.", "Support"), "401": error("No or invalid credential."),
                        "403": error("A private or archived widget, or a credential for another widget."),
                        "404": error("No such annotation, or not readable."), "409": error("The caller's own annotation.") }
                }
            },
            "/widgets/{embed_key}/events": {
                "get": {
                    "operationId": "listEvents", "summary": "Interaction events, newest first (hub members).",
                    "parameters": [key.clone(), param("kind", "query", json!({"type": "string", "enum": KINDS}), "One kind."), limit, cursor],
                    "responses": { "200": ok("A page.", "EventPage"), "400": error("A bad filter or cursor."),
                        "401": error("No or invalid credential."), "403": error("Not a member of the widget's hub."),
                        "404": error("No such widget, or not readable.") }
                },
                "post": {
                    "operationId": "ingestEvents",
                    "summary": "Send up to 500 interaction events. The embed key is the widget's public write key: no other credential is needed.",
                    "security": [{}, { "bearer": [] }, { "session": [] }],
                    "parameters": [key],
                    "requestBody": body("EventBatch", json!({"events": [{"kind": "click", "payload": {"target": "pay"}}, {"kind": "teleport"}]})),
                    "responses": { "200": ok("What was accepted; each rejected item with its index and reason.", "IngestReport"),
                        "400": error("Not JSON."), "403": error("Origin not allowed, archived widget, or a token for another widget."),
                        "404": error("No such widget."), "413": error("Body over 1 MiB."),
                        "422": error("No events, more than 500, or not a batch."), "429": error("Rate limited per key or per IP; see Retry-After.") }
                }
            }
        },
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "description": "A hub API key (`ihf_…`) or an embed token (IHF's visitor token, or the host site's HS256 token with `aud` = embed key)." },
                "session": { "type": "apiKey", "in": "cookie", "name": "ihf_session", "description": "A signed-in session; writes need the X-CSRF-Token header." }
            },
            "schemas": {
                "Error": { "type": "object", "required": ["error", "message"], "properties": {
                    "error": { "type": "string", "enum": ["bad_request", "unauthorized", "forbidden", "not_found", "conflict", "payload_too_large", "unsupported_media_type", "method_not_allowed", "invalid", "rate_limited", "unavailable", "internal"] },
                    "message": { "type": "string" } } },
                "Widget": { "type": "object", "required": ["key", "hub", "slug", "name", "description", "scope", "archived"], "properties": {
                    "key": { "type": "string" }, "hub": { "type": "string" }, "slug": { "type": "string" }, "name": { "type": "string" },
                    "description": { "type": "string" }, "scope": { "type": "string", "enum": ["public", "members", "private"] },
                    "archived": { "type": "boolean" },
                    "counts": { "type": "object", "properties": { "annotations": { "type": "integer" }, "annotations_new": { "type": "integer" },
                        "events_24h": { "type": ["integer", "null"] } } } } },
                "WidgetList": { "type": "object", "required": ["items"], "properties": { "items": { "type": "array", "items": { "$ref": "#/components/schemas/Widget" } } } },
                "Annotation": { "type": "object", "required": ["id", "widget", "author", "mine", "body", "category", "status", "created_at", "updated_at", "version"], "properties": {
                    "id": { "type": "integer" }, "widget": { "type": "string", "description": "The embed key." },
                    "author": { "type": "object", "required": ["id", "name"], "properties": { "id": { "type": "integer" }, "name": { "type": "string" } } },
                    "mine": { "type": "boolean" }, "body": { "type": "string" }, "category": { "type": "string" },
                    "status": { "type": "string", "enum": STATUSES }, "created_at": { "type": "integer" }, "updated_at": { "type": "integer" },
                    "version": { "type": "integer" },
                    "support": { "$ref": "#/components/schemas/Support" },
                    "replies": { "type": "integer", "minimum": 0, "description": "How many replies the caller reads under it." } },
                    "description": "`support` and `replies` come with every answer but the stream's events (they change without a new version of the annotation)." },
                "Support": { "type": "object", "required": ["count", "mine"], "properties": {
                    "count": { "type": "integer", "minimum": 0, "description": "How many people and visitors support it." },
                    "mine": { "type": "boolean", "description": "Whether the caller does." } } },
                "Reply": { "type": "object", "required": ["id", "annotation", "author", "mine", "body", "internal", "created_at", "updated_at", "version"], "properties": {
                    "id": { "type": "integer" }, "annotation": { "type": "integer", "description": "The annotation's id." },
                    "author": { "type": "object", "required": ["id", "name"], "properties": { "id": { "type": "integer" }, "name": { "type": "string" } } },
                    "mine": { "type": "boolean" }, "body": { "type": "string" },
                    "internal": { "type": "boolean", "description": "For the hub's staff only." },
                    "created_at": { "type": "integer" }, "updated_at": { "type": "integer" }, "version": { "type": "integer" } } },
                "ReplyList": { "type": "object", "required": ["items"], "properties": {
                    "items": { "type": "array", "items": { "$ref": "#/components/schemas/Reply" } } } },
                "NewReply": { "type": "object", "required": ["body"], "additionalProperties": false, "properties": {
                    "body": { "type": "string", "minLength": 1, "maxLength": 4000, "pattern": BODY, "description": "Trimmed; line breaks kept." },
                    "internal": { "type": ["boolean", "null"], "description": "Staff only: for the hub's staff alone." } } },
                "ReplyPatch": { "type": "object", "required": ["body"], "additionalProperties": false, "properties": {
                    "body": { "type": "string", "minLength": 1, "maxLength": 4000, "pattern": BODY },
                    "version": nullable(int64()) } },
                "AnnotationPage": { "type": "object", "required": ["items", "next_cursor"], "properties": {
                    "items": { "type": "array", "items": { "$ref": "#/components/schemas/Annotation" } }, "next_cursor": { "type": ["string", "null"] } } },
                "NewAnnotation": { "type": "object", "required": ["body"], "additionalProperties": false, "properties": {
                    "body": { "type": "string", "minLength": 1, "maxLength": 4000, "pattern": BODY, "description": "Trimmed; line breaks kept." },
                    "category": nullable(category_schema.clone()),
                    "idempotency_key": { "type": ["string", "null"], "minLength": 1, "maxLength": 100, "pattern": NO_NUL,
                        "description": "A retry with the same key returns the annotation made the first time." } } },
                "AnnotationPatch": { "type": "object", "additionalProperties": false,
                    "description": "Fields left out or `null` stay as they are; `{}` changes nothing and answers the annotation.",
                    "properties": {
                    "body": { "type": ["string", "null"], "minLength": 1, "maxLength": 4000, "pattern": BODY },
                    "category": nullable(category_schema),
                    "status": nullable(json!({ "type": "string", "enum": STATUSES })),
                    "version": nullable(int64()) } },
                "Event": { "type": "object", "required": ["id", "kind", "occurred_at", "payload"], "properties": {
                    "id": { "type": "integer" }, "kind": { "type": "string", "enum": KINDS }, "actor_id": { "type": ["integer", "null"] },
                    "occurred_at": { "type": "integer" }, "payload": { "type": "object" } } },
                "EventPage": { "type": "object", "required": ["items", "next_cursor"], "properties": {
                    "items": { "type": "array", "items": { "$ref": "#/components/schemas/Event" } }, "next_cursor": { "type": ["string", "null"] } } },
                "EventBatch": { "type": "object", "required": ["events"], "properties": { "events": { "type": "array", "minItems": 1, "maxItems": 500,
                    "items": { "description": "Each item is checked on its own as an EventIn: one that is not (or whose text holds NUL or a lone surrogate) is reported in `rejected` with its index and the reason, and the others are kept." } } } },
                "EventIn": { "type": "object", "required": ["kind"], "properties": {
                        "kind": { "type": "string", "enum": KINDS },
                        "occurred_at": { "type": "integer", "description": "Epoch ms; within the last 7 days and at most 5 minutes ahead. Now when left out." },
                        "payload": { "type": "object", "description": "At most 1024 bytes as JSON." } } },
                "IngestReport": { "type": "object", "required": ["accepted", "rejected"], "properties": {
                    "accepted": { "type": "integer" },
                    "rejected": { "type": "array", "items": { "type": "object", "required": ["index", "reason"], "properties": {
                        "index": { "type": "integer" }, "reason": { "type": "string" } } } } } }
            }
        }
    });
    if let Some(paths) = doc["paths"].as_object_mut() {
        for operations in paths.values_mut().filter_map(Value::as_object_mut) {
            for operation in operations.values_mut() {
                *operation = with_common(operation.take());
            }
        }
    }
    doc
}

/// The caller's hub, when the request carries a live API key.
async fn tailor(state: &AppState, req: &HttpRequest) -> Tailor {
    let Some(token) = caller::bearer(req) else { return Tailor::default() };
    let Ok(Some(key)) = api_keys::authenticate(&state.db, &token).await else { return Tailor::default() };
    let (Ok(widgets), Ok(categories)) =
        (widgets::list_for_hub(&state.db, key.hub_id).await, categories::list(&state.db, key.hub_id, true).await)
    else {
        return Tailor::default();
    };
    Tailor {
        widget_keys: widgets.into_iter().filter(|w| w.archived_at.is_none()).map(|w| w.embed_key).collect(),
        categories: categories.iter().filter(|c| c.archived_at.is_none()).map(|c| c.slug.clone()).collect(),
        all_categories: categories.into_iter().map(|c| c.slug).collect(),
    }
}

#[get("/openapi.json")]
async fn openapi(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let tailor = tailor(&state, &req).await;
    let cache = if tailor.widget_keys.is_empty() { "public, max-age=300" } else { "private, no-store" };
    HttpResponse::Ok().insert_header(("Cache-Control", cache)).json(document(&tailor))
}

/// Mounts the document.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(openapi);
}
