//! `GET /api/v1/widgets/{embed_key}/annotations/stream`: a subscription to a listing's result.
//!
//! Server-sent events with JSON data: first `snapshot` (the listing's first page for the same
//! filters), then `insert` (a row enters the result: new, or newly matching), `update` and
//! `delete` (a row leaves it: deleted, or no longer matching), only ever for rows the caller may
//! read. Each event's `id` is the change's time (epoch ms); a client that reconnects with
//! `Last-Event-ID` gets what changed since instead of a snapshot. Events are idempotent by `id`
//! and `version`: a reconnect may repeat a few.
//!
//! How changes are found: on every wake-up the stream re-reads, *as the caller* (policy
//! predicate and Row Level Security), the widget's annotations changed since its watermark, with
//! a few seconds of overlap for writes that committed late. So a row the caller may not see
//! never travels, whoever wrote it and however (another instance, psql). [`Wake`] is where the
//! change feed of `src/live/` plugs in: until it does, a wake-up is a short timer.

use std::collections::HashMap;
use std::time::Duration;

use actix_web::{HttpRequest, Responder, get, web};
use actix_web_lab::sse;
use serde::Serialize;
use tokio::sync::mpsc;

use super::annotations::ListQuery;
use super::caller::{Caller, bearer};
use super::error::ApiError;
use super::{AnnotationJson, parse_limit, path_widget, readable_widget};
use crate::AppState;
use crate::db::api::{self, ApiAnnotation, CHANGES_LIMIT, Filter, Order};
use crate::db::now_ms;

/// How far back each re-read reaches before the watermark, for writes that committed late.
pub const OVERLAP_MS: i64 = 5_000;
/// Until the change feed wakes streams, they look this often.
pub const POLL: Duration = Duration::from_millis(500);

/// What wakes a stream to look for changes of one widget.
pub struct Wake {
    interval: tokio::time::Interval,
}

impl Wake {
    /// Wake-ups for the changes of widget `_widget_id`.
    pub fn new(_state: &AppState, _widget_id: i64) -> Self {
        let mut interval = tokio::time::interval(POLL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self { interval }
    }

    /// Waits for the next wake-up.
    pub async fn wait(&mut self) {
        self.interval.tick().await;
    }
}

struct Subscription {
    state: web::Data<AppState>,
    caller: Caller,
    token: Option<String>,
    widget_id: i64,
    filter: Filter,
    limit: i64,
    resume: Option<i64>,
}

#[get("/widgets/{embed_key}/annotations/stream")]
async fn stream(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<ListQuery>,
    caller: Caller,
) -> Result<impl Responder, ApiError> {
    caller.require()?;
    let widget = path_widget(&state, &caller, &path).await?;
    let filter = query.filter(&caller)?;
    let limit = parse_limit(query.limit)?;
    if query.order.is_some() || query.cursor.is_some() {
        return Err(ApiError::BadRequest("a subscription follows the newest rows: no order or cursor".into()));
    }
    // Refuse now, with a status, rather than with an empty stream.
    let mut tx = api::begin(&state.db, caller.scope(), false).await?;
    readable_widget(&mut tx, &caller, &widget.embed_key).await?;
    tx.commit().await?;
    let resume = req.headers().get("Last-Event-ID").and_then(|v| v.to_str().ok()?.trim().parse::<i64>().ok());
    let (sender, receiver) = mpsc::channel(64);
    let subscription = Subscription { state, token: bearer(&req), caller, widget_id: widget.id, filter, limit, resume };
    actix_web::rt::spawn(async move {
        if let Err(e) = follow(&subscription, &sender).await {
            tracing::warn!(error = %e, "annotation stream ended");
            let _ = sender.send(end_event("error", &e.to_string())).await;
        }
    });
    Ok(sse::Sse::from_infallible_receiver(receiver)
        .with_keep_alive(Duration::from_secs(15))
        .with_retry_duration(Duration::from_secs(3))
        .customize()
        .insert_header(("X-Accel-Buffering", "no"))
        .insert_header(("Cache-Control", "no-store")))
}

#[derive(Serialize)]
struct Snapshot {
    items: Vec<AnnotationJson>,
}

#[derive(Serialize)]
struct Deleted {
    id: i64,
    version: i64,
}

#[derive(Serialize)]
struct Ended<'a> {
    reason: &'a str,
    message: &'a str,
}

fn end_event(reason: &str, message: &str) -> sse::Event {
    match sse::Data::new_json(Ended { reason, message }) {
        Ok(data) => data.event("end").into(),
        Err(_) => sse::Event::Comment("end".into()),
    }
}

/// Runs a subscription until the client goes away (a failed send) or its credential lapses.
async fn follow(sub: &Subscription, out: &mpsc::Sender<sse::Event>) -> Result<(), ApiError> {
    let state = &sub.state;
    let me = sub.caller.actor_id();
    let visible = sub.caller.annotation_filter();
    let mut known: HashMap<i64, i64> = HashMap::new();
    let mut resuming = sub.resume;
    let mut since = match sub.resume {
        Some(last) => last - OVERLAP_MS,
        None => {
            let started = now_ms();
            let mut tx = api::begin(&state.db, sub.caller.scope(), false).await?;
            let rows = api::list_annotations(
                &mut tx,
                sub.widget_id,
                &sub.filter,
                Order::Newest,
                None,
                sub.limit,
                visible.as_ref(),
            )
            .await?;
            tx.commit().await?;
            known.extend(rows.iter().map(|r| (r.id, r.version)));
            let items = rows.iter().map(|r| AnnotationJson::new(r, me)).collect();
            let data = sse::Data::new_json(Snapshot { items }).map_err(anyhow::Error::from)?;
            if out.send(data.event("snapshot").id(started.to_string()).into()).await.is_err() {
                return Ok(());
            }
            started - OVERLAP_MS
        }
    };
    let mut wake = Wake::new(state, sub.widget_id);
    loop {
        if resuming.is_none() {
            wake.wait().await;
        }
        if out.is_closed() {
            return Ok(());
        }
        if !sub.caller.still_valid(state, sub.token.as_deref()).await? {
            let _ = out.send(end_event("unauthorized", "the credential was revoked or expired")).await;
            return Ok(());
        }
        let started = now_ms();
        let rows = match read_changes(sub, since, visible.as_ref()).await {
            Ok(rows) => rows,
            Err(e) => {
                // A database hiccup: look again at the next wake-up.
                tracing::warn!(error = %e, "annotation stream could not read changes");
                continue;
            }
        };
        for row in &rows {
            let Some(kind) = classify(&mut known, row, resuming) else { continue };
            let data = if kind == "delete" {
                sse::Data::new_json(Deleted { id: row.id, version: row.version })
            } else {
                sse::Data::new_json(AnnotationJson::new(row, me))
            }
            .map_err(anyhow::Error::from)?;
            if out.send(data.event(kind).id(row.updated_at.to_string()).into()).await.is_err() {
                return Ok(());
            }
        }
        since = match rows.last() {
            // More than one read's worth changed: continue right after the last row read.
            Some(last) if rows.len() as i64 >= CHANGES_LIMIT => last.updated_at - 1,
            _ => started - OVERLAP_MS,
        };
        resuming = None;
    }
}

async fn read_changes(
    sub: &Subscription,
    since: i64,
    visible: Option<&crate::auth::Viewer>,
) -> Result<Vec<ApiAnnotation>, crate::db::StoreError> {
    let mut tx = api::begin(&sub.state.db, sub.caller.scope(), false).await?;
    let rows = api::changes_since(&mut tx, sub.widget_id, since, &sub.filter, visible).await?;
    tx.commit().await?;
    Ok(rows)
}

/// The event a changed row makes for a client that holds `known` (id → version); `resume` is
/// the client's `Last-Event-ID` on the first read after a reconnect, when `known` is unknown.
fn classify(known: &mut HashMap<i64, i64>, row: &ApiAnnotation, resume: Option<i64>) -> Option<&'static str> {
    if row.matches == 1 {
        match known.insert(row.id, row.version) {
            Some(version) if version == row.version => None,
            Some(_) => Some("update"),
            None if resume.is_some_and(|last| row.created_at <= last) => Some("update"),
            None => Some("insert"),
        }
    } else if known.remove(&row.id).is_some() || resume.is_some() {
        Some("delete")
    } else {
        None
    }
}

/// Mounts the stream.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(stream);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, version: i64, matches: i64, created_at: i64) -> ApiAnnotation {
        ApiAnnotation {
            id,
            hub_id: 1,
            widget_id: 1,
            widget_key: "k".into(),
            actor_id: 1,
            author_name: "a".into(),
            body: "b".into(),
            category: "bug".into(),
            category_label: "Bug".into(),
            category_colour: "red".into(),
            status: "new".into(),
            created_at,
            updated_at: created_at,
            deleted_at: None,
            version,
            matches,
        }
    }

    #[test]
    fn classifies_changes() {
        let mut known = HashMap::from([(1, 1)]);
        assert_eq!(classify(&mut known, &row(1, 1, 1, 10), None), None, "already sent");
        assert_eq!(classify(&mut known, &row(1, 2, 1, 10), None), Some("update"));
        assert_eq!(classify(&mut known, &row(2, 1, 1, 20), None), Some("insert"));
        assert_eq!(classify(&mut known, &row(2, 2, 0, 20), None), Some("delete"));
        assert_eq!(classify(&mut known, &row(3, 2, 0, 20), None), None, "never sent, nothing to delete");
        let mut fresh = HashMap::new();
        assert_eq!(classify(&mut fresh, &row(4, 2, 1, 5), Some(10)), Some("update"), "older than the resume point");
        assert_eq!(classify(&mut fresh, &row(5, 1, 1, 15), Some(10)), Some("insert"));
        assert_eq!(classify(&mut fresh, &row(6, 3, 0, 5), Some(10)), Some("delete"));
    }
}
