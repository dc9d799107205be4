//! `GET /api/v1/openapi.json`: the data API described in OpenAPI 3.1. Written by hand next to
//! the handlers; `tests/api.rs` walks every path and method and calls it, so the two agree.

use actix_web::{HttpResponse, get, web};
use serde_json::{Value, json};

use crate::db::annotations::STATUSES;
use crate::db::events::KINDS;

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

/// The document.
pub fn document() -> Value {
    let key = param("embed_key", "path", json!({"type": "string"}), "The widget's embed key.");
    let id = param("id", "path", json!({"type": "integer"}), "The annotation's id.");
    let limit =
        param("limit", "query", json!({"type": "integer", "minimum": 1, "maximum": 200, "default": 50}), "Page size.");
    let cursor = param("cursor", "query", json!({"type": "string"}), "`next_cursor` of the previous page.");
    let filters = vec![
        param("category", "query", json!({"type": "string"}), "A category slug of the widget's hub."),
        param("status", "query", json!({"type": "string", "enum": STATUSES}), "Triage status."),
        param("author", "query", json!({"type": "string", "enum": ["me"]}), "Only the caller's own."),
        param("created_after", "query", json!({"type": "integer"}), "Created at or after (epoch ms)."),
        param("created_before", "query", json!({"type": "integer"}), "Created before (epoch ms)."),
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
        json!({"type": "string"}),
        "The bearer token, for EventSource (which cannot send headers).",
    ));
    stream_params.push(param("Last-Event-ID", "header", json!({"type": "string"}), "Resume after this event."));

    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "IHF data API",
            "version": "1.0.0",
            "description": "Annotations, widgets and interaction events of IHF. Authenticate with a hub API key or an embed token (`Authorization: Bearer …`), or a signed-in session (writes then need `X-CSRF-Token`). Times are epoch milliseconds. Errors are `{\"error\", \"message\"}`."
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
                "summary": "Server-sent events: `snapshot` first, then `insert`, `update` and `delete` of rows the caller may read; `end` when the credential lapses. Resumable with Last-Event-ID.",
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
                        "404": error("No such widget."), "413": error("Body over 1 MiB or more than 500 events."),
                        "422": error("No events, or not a batch."), "429": error("Rate limited per key or per IP; see Retry-After.") }
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
                    "error": { "type": "string", "enum": ["bad_request", "unauthorized", "forbidden", "not_found", "conflict", "payload_too_large", "invalid", "rate_limited", "unavailable", "internal"] },
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
                    "version": { "type": "integer" } } },
                "AnnotationPage": { "type": "object", "required": ["items", "next_cursor"], "properties": {
                    "items": { "type": "array", "items": { "$ref": "#/components/schemas/Annotation" } }, "next_cursor": { "type": ["string", "null"] } } },
                "NewAnnotation": { "type": "object", "required": ["body"], "additionalProperties": false, "properties": {
                    "body": { "type": "string", "minLength": 1, "maxLength": 4000 }, "category": { "type": "string", "default": "friction" },
                    "idempotency_key": { "type": "string", "maxLength": 100 } } },
                "AnnotationPatch": { "type": "object", "additionalProperties": false, "properties": {
                    "body": { "type": "string", "minLength": 1, "maxLength": 4000 }, "category": { "type": "string" },
                    "status": { "type": "string", "enum": STATUSES }, "version": { "type": "integer" } } },
                "Event": { "type": "object", "required": ["id", "kind", "occurred_at", "payload"], "properties": {
                    "id": { "type": "integer" }, "kind": { "type": "string", "enum": KINDS }, "actor_id": { "type": ["integer", "null"] },
                    "occurred_at": { "type": "integer" }, "payload": { "type": "object" } } },
                "EventPage": { "type": "object", "required": ["items", "next_cursor"], "properties": {
                    "items": { "type": "array", "items": { "$ref": "#/components/schemas/Event" } }, "next_cursor": { "type": ["string", "null"] } } },
                "EventBatch": { "type": "object", "required": ["events"], "properties": { "events": { "type": "array", "maxItems": 500, "items": {
                    "type": "object", "required": ["kind"], "properties": {
                        "kind": { "type": "string", "enum": KINDS },
                        "occurred_at": { "type": "integer", "description": "Epoch ms; within the last 7 days and at most 5 minutes ahead. Now when left out." },
                        "payload": { "type": "object", "description": "At most 1024 bytes as JSON." } } } } } },
                "IngestReport": { "type": "object", "required": ["accepted", "rejected"], "properties": {
                    "accepted": { "type": "integer" },
                    "rejected": { "type": "array", "items": { "type": "object", "required": ["index", "reason"], "properties": {
                        "index": { "type": "integer" }, "reason": { "type": "string" } } } } } }
            }
        }
    })
}

#[get("/openapi.json")]
async fn openapi() -> HttpResponse {
    HttpResponse::Ok().insert_header(("Cache-Control", "public, max-age=300")).json(document())
}

/// Mounts the document.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(openapi);
}
