//! Interaction events of a widget: batch ingestion (`POST`, the widget's embed key is its public
//! write key) and reads for hub members (`GET`).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use super::body;
use super::caller::{Caller, Credential};
use super::error::ApiError;
use super::paths::{parse_cursor, parse_limit, path_widget, readable_widget};
use crate::AppState;
use crate::access as policy;
use crate::db::annotations::Cursor;
use crate::db::api;
use crate::db::events::{KINDS, NewEvent};
use crate::db::now_ms;
use crate::web::client_addr::ClientAddr;
use crate::web::input;

/// Most events in one batch.
pub const MAX_BATCH: usize = 500;
/// Largest request body of a batch.
pub const MAX_BODY: usize = 1024 * 1024;
/// Largest payload of one event, serialized.
pub const MAX_PAYLOAD: usize = 1024;
/// How old an event may be.
pub const MAX_AGE_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// How far ahead of the server's clock an event may be (client clocks drift).
pub const MAX_AHEAD_MS: i64 = 5 * 60 * 1000;

#[derive(Serialize)]
struct Rejected {
    index: usize,
    reason: String,
}

#[derive(Serialize)]
struct IngestReport {
    accepted: u64,
    rejected: Vec<Rejected>,
}

/// One event as sent; the payload stays the JSON text it arrived as.
#[derive(Deserialize)]
struct Item<'a> {
    #[serde(default)]
    kind: Option<Value>,
    #[serde(default)]
    occurred_at: Option<Value>,
    #[serde(default, borrow)]
    payload: Option<&'a RawValue>,
}

/// Checks one item of a batch; `now` is the server's time. Returns the kind, the time and the
/// payload's JSON text.
fn check_item(item: &RawValue, now: i64) -> Result<(&'static str, i64, String), String> {
    // NUL and lone surrogates in any key or value (PostgreSQL's jsonb refuses both) reject the
    // event, named by its path, e.g. `payload.label`.
    input::check_json(item.get().as_bytes()).map_err(|refusal| refusal.to_string())?;
    let item: Item = serde_json::from_str(item.get()).map_err(|e| {
        if item.get().starts_with('{') {
            format!("not a valid event: {e}")
        } else {
            "an event must be a JSON object".into()
        }
    })?;
    let kind = match &item.kind {
        Some(Value::String(kind)) => match KINDS.iter().find(|k| *k == kind) {
            Some(known) => *known,
            None => return Err(format!("unknown kind {kind:?}; use one of {}", KINDS.join(", "))),
        },
        _ => return Err("kind is required (a string)".into()),
    };
    let occurred_at = match &item.occurred_at {
        None | Some(Value::Null) => now,
        Some(value) => value.as_i64().ok_or("occurred_at must be an integer (epoch milliseconds)")?,
    };
    if occurred_at < now - MAX_AGE_MS {
        return Err("occurred_at is more than 7 days ago".into());
    }
    if occurred_at > now + MAX_AHEAD_MS {
        return Err("occurred_at is more than 5 minutes in the future".into());
    }
    let payload = match item.payload {
        None => "{}",
        Some(payload) if payload.get().starts_with('{') => payload.get(),
        Some(_) => return Err("payload must be a JSON object".into()),
    };
    if payload.len() > MAX_PAYLOAD {
        return Err(format!("payload is larger than {MAX_PAYLOAD} bytes"));
    }
    Ok((kind, occurred_at, payload.to_owned()))
}

#[derive(Deserialize)]
struct Batch<'a> {
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
}

async fn ingest(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    caller: Caller,
    client: ClientAddr,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let widget = path_widget(&state, &caller, &path).await?;
    if !caller.rls_only && !policy::embed_key_can_send_events(&widget) {
        return Err(ApiError::Forbidden("this widget is archived".into()));
    }
    let ip = client.key();
    state.ingest_limits.check(&widget.embed_key, &ip).map_err(ApiError::RateLimited)?;
    body::check_content_type(&req)?;
    let body = body::read_body(&req, payload.into_inner(), MAX_BODY).await?;
    let batch: Batch = serde_json::from_slice(&body).map_err(|e| {
        if e.is_data() {
            ApiError::Invalid(format!("send {{\"events\": [ … ]}}: {e}"))
        } else {
            ApiError::BadRequest(format!("the body is not valid JSON: {e}"))
        }
    })?;
    if batch.events.len() > MAX_BATCH {
        return Err(ApiError::Invalid(format!("at most {MAX_BATCH} events per batch (got {})", batch.events.len())));
    }
    if batch.events.is_empty() {
        return Err(ApiError::Invalid("the batch has no events".into()));
    }
    // API keys send for a site, not for a person.
    let actor_id = match &caller.credential {
        Some(Credential::ApiKey { .. }) => None,
        _ => caller.actor_id(),
    };
    let now = now_ms();
    let mut accepted = Vec::with_capacity(batch.events.len());
    let mut rejected = Vec::new();
    for (index, item) in batch.events.iter().copied().enumerate() {
        match check_item(item, now) {
            Ok((kind, occurred_at, payload)) => accepted.push(NewEvent {
                hub_id: widget.hub_id,
                widget_id: widget.id,
                kind,
                actor_id,
                occurred_at,
                payload,
            }),
            Err(reason) => rejected.push(Rejected { index, reason }),
        }
    }
    // The embed key confines the write to its widget (an embed token's own widget stays).
    let mut scope = caller.scope();
    scope.embed_widget_id = scope.embed_widget_id.or(Some(widget.id));
    let inserted = state.events.insert(scope, &accepted).await?;
    Ok(HttpResponse::Ok().json(IngestReport { accepted: inserted, rejected }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventQuery {
    kind: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

#[derive(Serialize)]
struct EventJson {
    id: i64,
    kind: String,
    actor_id: Option<i64>,
    occurred_at: i64,
    payload: Value,
}

#[derive(Serialize)]
struct EventPage {
    items: Vec<EventJson>,
    next_cursor: Option<String>,
}

async fn list(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<EventQuery>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    caller.require()?;
    let widget = path_widget(&state, &caller, &path).await?;
    if let Some(kind) = &query.kind
        && !KINDS.contains(&kind.as_str())
    {
        return Err(ApiError::BadRequest(format!("kind must be one of {}", KINDS.join(", "))));
    }
    let limit = parse_limit(query.limit)?;
    let cursor = parse_cursor(query.cursor.as_deref())?;
    let mut tx = api::begin(&state.db, caller.scope(), false).await?;
    let info = readable_widget(&mut tx, &caller, &widget.embed_key).await?;
    if !caller.rls_only && !caller.access(&state, info.hub_id).await?.can_read_events() {
        return Err(ApiError::Forbidden("reading events needs membership of the widget's hub".into()));
    }
    let mut rows = api::list_events(&mut tx, widget.id, query.kind.as_deref(), cursor, limit + 1).await?;
    tx.commit().await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| Cursor { created_at: r.occurred_at, id: r.id }.to_param())
    } else {
        None
    };
    let items = rows
        .into_iter()
        .map(|r| EventJson {
            id: r.id,
            kind: r.kind,
            actor_id: r.actor_id,
            occurred_at: r.occurred_at,
            payload: serde_json::from_str(&r.payload).unwrap_or(Value::Null),
        })
        .collect();
    Ok(HttpResponse::Ok().json(EventPage { items, next_cursor }))
}

/// Mounts the event routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/widgets/{embed_key}/events")
            .route(web::post().to(ingest))
            .route(web::get().to(list))
            .default_service(web::to(super::unrouted)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(item: Value, now: i64) -> Result<(&'static str, i64, String), String> {
        check_item(&serde_json::value::to_raw_value(&item).expect("raw"), now)
    }

    #[test]
    fn checks_items() {
        let now = 1_000_000_000_000;
        assert_eq!(check(json!({"kind": "click"}), now), Ok(("click", now, "{}".to_owned())));
        assert_eq!(
            check(json!({"kind": "click", "occurred_at": now - 1000, "payload": {"x": 1}}), now),
            Ok(("click", now - 1000, r#"{"x":1}"#.to_owned()))
        );
        assert_eq!(check(json!({"kind": "view", "payload": null}), now), Ok(("view", now, "{}".to_owned())));
        assert!(check(json!({"kind": "teleport"}), now).unwrap_err().contains("unknown kind"));
        assert!(check(json!({}), now).unwrap_err().contains("kind is required"));
        assert!(check(json!({"kind": 3}), now).unwrap_err().contains("kind is required"));
        assert_eq!(check(json!("click"), now).unwrap_err(), "an event must be a JSON object");
        assert!(check(json!({"kind": "click", "occurred_at": now - MAX_AGE_MS - 1}), now).is_err());
        assert!(check(json!({"kind": "click", "occurred_at": now + MAX_AHEAD_MS + 1}), now).is_err());
        assert!(check(json!({"kind": "click", "occurred_at": "yesterday"}), now).is_err());
        assert!(check(json!({"kind": "click", "payload": [1]}), now).is_err());
        assert!(check(json!({"kind": "click", "payload": {"x": "y".repeat(MAX_PAYLOAD)}}), now).is_err());
    }

    #[test]
    fn keeps_the_payload_text_as_sent() {
        let raw =
            RawValue::from_string(r#"{"kind":"click","payload":{"b": [1, 2],"a":"\u00e9"}}"#.into()).expect("raw");
        let (_, _, payload) = check_item(&raw, 1_000_000_000_000).expect("valid");
        assert_eq!(payload, r#"{"b": [1, 2],"a":"\u00e9"}"#);
        let duplicate = RawValue::from_string(r#"{"kind":"click","kind":"view"}"#.into()).expect("raw");
        assert!(check_item(&duplicate, 1_000_000_000_000).unwrap_err().contains("duplicate field"));
    }
}
