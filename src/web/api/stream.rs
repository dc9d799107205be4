//! `GET /api/v1/widgets/{embed_key}/annotations/stream`: a subscription to a listing's result.
//!
//! Server-sent events with JSON data: first `snapshot` (the listing's first page for the same
//! filters), then `insert` (a row enters the result: new, or newly matching), `update` and
//! `delete` (a row leaves it: deleted, or no longer matching), only ever for rows the caller may
//! read. Each event's `id` is the change's time (epoch ms); a client that reconnects with
//! `Last-Event-ID` gets what changed since instead of a snapshot. Events are idempotent by `id`
//! and `version`: a reconnect may repeat a few.
//!
//! How changes are found: the subscription follows the widget in the live dispatcher
//! (`crate::live::hub::Follower`, the same change feed, coalescing and bounded queues as page
//! regions). When a committed write touches the widget's annotations the dispatcher wakes it
//! (the first change at once, a burst once per live window), and it re-reads, *as the caller*
//! (policy predicate and Row Level Security), the widget's annotations changed since its
//! watermark, with a few seconds of overlap for writes that committed late. So a row the caller
//! may not see never travels, whoever wrote it and however (another instance, psql). When the
//! hub's memberships or the widget change, the dispatcher asks it to check the caller may still
//! read the widget: if not, it ends with `end` (`forbidden`). Every few seconds without
//! changes, the stream re-checks the caller's credential (`end`, `unauthorized`).

use std::collections::HashMap;
use std::time::Duration;

use actix_web::{HttpMessage, HttpRequest, Responder, get, web};
use actix_web_lab::sse;
use serde::Serialize;
use tokio::sync::mpsc;

use super::annotations::ListQuery;
use super::caller::{Caller, Credential, bearer};
use super::error::ApiError;
use super::json::AnnotationJson;
use super::paths::{parse_limit, path_widget, readable_widget};
use crate::AppState;
use crate::auth::Session;
use crate::db::api::{self, ApiAnnotation, CHANGES_LIMIT, Filter, Order};
use crate::db::now_ms;
use crate::live::Region;
use crate::live::hub::{Follower, Woken};

/// How far back each re-read reaches before the watermark, for writes that committed late.
pub const OVERLAP_MS: i64 = 5_000;
/// How often a stream without changes re-checks its caller's credential.
pub const RECHECK: Duration = Duration::from_secs(4);

struct Subscription {
    state: web::Data<AppState>,
    caller: Caller,
    token: Option<String>,
    widget_id: i64,
    embed_key: String,
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
    super::annotations::check_category_filter(&state, widget.hub_id, &query).await?;
    let resume = req.headers().get("Last-Event-ID").and_then(|v| v.to_str().ok()?.trim().parse::<i64>().ok());
    let (sender, receiver) = mpsc::channel(64);
    // Counted with the live streams: the same limits per IP and in total; a session's stream
    // ends with its session, like its pages' streams.
    let session = match &caller.credential {
        Some(Credential::Session(_)) => req.extensions().get::<Session>().map(|s| s.token_hash.clone()),
        _ => None,
    };
    let admitted =
        state.live.admit(crate::web::client_addr::client_ip(&req), session).map_err(|_| ApiError::Overloaded(10))?;
    // Joined before the first read, so a change committed in between still wakes it.
    let region = Region::Follow { hub_id: widget.hub_id, widget_id: widget.id };
    let follower = state.live.follow(admitted, &caller.viewer(), region, RECHECK);
    let subscription = Subscription {
        state,
        token: bearer(&req),
        caller,
        widget_id: widget.id,
        embed_key: widget.embed_key.clone(),
        filter,
        limit,
        resume,
    };
    actix_web::rt::spawn(async move {
        if let Err(e) = follow(&subscription, follower, &sender).await {
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
async fn follow(sub: &Subscription, mut follower: Follower, out: &mpsc::Sender<sse::Event>) -> Result<(), ApiError> {
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
    // A read that failed is retried at the next wake-up, whatever woke it.
    let mut dirty = false;
    loop {
        if resuming.is_none() {
            match follower.wait().await {
                Woken::Ended => return Ok(()),
                Woken::Changed => dirty = true,
                Woken::Recheck => {
                    if !still_readable(sub).await? {
                        let _ = out.send(end_event("forbidden", "the caller may no longer read this widget")).await;
                        return Ok(());
                    }
                    // A new role may show rows it did not.
                    dirty = true;
                }
                Woken::Quiet => {}
            }
        } else {
            dirty = true;
        }
        if out.is_closed() {
            return Ok(());
        }
        if !sub.caller.still_valid(state, sub.token.as_deref()).await? {
            let _ = out.send(end_event("unauthorized", "the credential was revoked or expired")).await;
            return Ok(());
        }
        if !dirty {
            continue;
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
        dirty = false;
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

/// Whether the caller may still read the widget (after a membership or widget change).
async fn still_readable(sub: &Subscription) -> Result<bool, ApiError> {
    let mut tx = api::begin(&sub.state.db, sub.caller.scope(), false).await?;
    let readable = match readable_widget(&mut tx, &sub.caller, &sub.embed_key).await {
        Ok(_) => true,
        Err(ApiError::NotFound(_)) => false,
        Err(e) => return Err(e),
    };
    tx.commit().await?;
    Ok(readable)
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
            status: crate::db::annotations::AnnotationStatus::New,
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
