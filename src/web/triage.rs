//! The triage board: the hub's annotation queue, worked with one click or one key per decision.
//!
//! Regions (each a fragment on its own URL, for the live stream): the queue
//! (`/hubs/{hub}/triage/queue`) and the counts panel (`/hubs/{hub}/triage/counts`), both taking
//! the board's filters from the query string. Actions answer with the changed rows (the first
//! in place, others out of band inside `<template>`), the counts out of band and a toast whose
//! Undo carries a signed token of the previous state.

mod undo;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use askama::Template;
use serde::Deserialize;

pub use undo::{UNDO_MS, UndoError, UndoToken};

use crate::AppState;
use crate::auth::Viewer;
use crate::auth::policy::HubAccess;
use crate::db::annotations::{Cursor, STATUSES};
use crate::db::categories::{self, Category};
use crate::db::hubs::Hub;
use crate::db::triage::{
    self, Applied, Change, HistoryEntry, OpenCandidate, Promotion, QueueFilter, Target, TriageError, TriageRow,
};
use crate::db::widgets::{self, Widget};
use crate::db::{StoreError, now_ms};
use crate::error::AppError;
use crate::live::{self, Region};
use crate::web::chrome::Chrome;
use crate::web::errors::urlencode;
use crate::web::render::{self, Htmx};
use crate::web::{access, region};

/// Rows per page of the queue.
pub const QUEUE_PAGE: i64 = 50;
/// Rows the duplicate picker offers.
const PICKER_ROWS: i64 = 10;

/// The board's filters as they appear in the URL (every field optional).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FilterParams {
    pub status: Option<String>,
    pub widget: Option<String>,
    pub category: Option<String>,
    pub q: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// The filters, checked: what the form shows and what the store filters by.
#[derive(Debug, Clone)]
pub struct Filter {
    /// A status, or `all`.
    pub status: String,
    pub widget: String,
    pub category: String,
    pub q: String,
    pub from: String,
    pub to: String,
    pub store: QueueFilter,
}

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Midnight UTC of a `YYYY-MM-DD` date, in epoch milliseconds.
fn day_start_ms(date: &str) -> Option<i64> {
    let mut parts = date.splitn(3, '-');
    let year: i32 = parts.next()?.parse().ok()?;
    let month: u8 = parts.next()?.parse().ok()?;
    let day: u8 = parts.next()?.parse().ok()?;
    let date = time::Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()?;
    Some(date.midnight().assume_utc().unix_timestamp() * 1000)
}

impl Filter {
    /// Checks the URL's filters: the status defaults to `new`; unknown values are a 400.
    pub fn parse(params: FilterParams) -> Result<Self, AppError> {
        let clean = |v: Option<String>| v.map(|v| v.trim().to_owned()).unwrap_or_default();
        let status = match clean(params.status) {
            s if s.is_empty() => "new".to_owned(),
            s if s == "all" || STATUSES.contains(&s.as_str()) => s,
            _ => return Err(AppError::BadRequest("unknown status".into())),
        };
        let (from, to) = (clean(params.from), clean(params.to));
        let day = |d: &str| {
            if d.is_empty() {
                Ok(None)
            } else {
                day_start_ms(d).map(Some).ok_or_else(|| AppError::BadRequest("dates are written YYYY-MM-DD".into()))
            }
        };
        let (from_ms, until_ms) = (day(&from)?, day(&to)?.map(|t| t + DAY_MS));
        let (widget, category, q) = (clean(params.widget), clean(params.category), clean(params.q));
        let some = |v: &str| (!v.is_empty()).then(|| v.to_owned());
        let store = QueueFilter {
            status: (status != "all").then(|| status.clone()),
            widget: some(&widget),
            category: some(&category),
            text: some(&q),
            from_ms,
            until_ms,
        };
        Ok(Self { status, widget, category, q, from, to, store })
    }

    fn query_with(&self, status: &str, category: &str) -> String {
        let mut out = format!("status={}", urlencode(status));
        for (name, value) in [
            ("widget", &self.widget),
            ("category", &category.to_owned()),
            ("q", &self.q),
            ("from", &self.from),
            ("to", &self.to),
        ] {
            if !value.is_empty() {
                out.push_str(&format!("&{name}={}", urlencode(value)));
            }
        }
        out
    }

    /// The query string of these filters.
    pub fn query(&self) -> String {
        self.query_with(&self.status, &self.category)
    }
}

/// A category as a one-click pill; the first nine live ones have a number key.
#[derive(Debug, Clone)]
pub struct Pill {
    pub id: i64,
    pub slug: String,
    pub label: String,
    pub colour: String,
    pub key: Option<usize>,
    pub archived: bool,
}

fn pills(categories: &[Category]) -> Vec<Pill> {
    let mut key = 0;
    categories
        .iter()
        .map(|c| {
            let archived = c.archived_at.is_some();
            let key = (!archived && key < 9).then(|| {
                key += 1;
                key
            });
            Pill { id: c.id, slug: c.slug.clone(), label: c.label.clone(), colour: c.colour.clone(), key, archived }
        })
        .collect()
}

/// One queue row, with a note (why a change was refused) and whether it goes out of band.
#[derive(Debug, Clone)]
pub struct RowView {
    pub row: TriageRow,
    pub note: Option<String>,
    pub oob: bool,
}

impl RowView {
    fn plain(row: TriageRow) -> Self {
        Self { row, note: None, oob: false }
    }
}

/// A short age: `just now`, `12 min`, `5 h`, `3 d`.
pub fn age(now: &i64, then: &i64) -> String {
    let minutes = (now - then).max(0) / 60_000;
    match minutes {
        0 => "just now".into(),
        m if m < 60 => format!("{m} min"),
        m if m < 48 * 60 => format!("{} h", m / 60),
        m => format!("{} d", m / (24 * 60)),
    }
}

/// The first `max` characters of a body, with an ellipsis when cut.
pub fn excerpt(body: &str, max: usize) -> String {
    match body.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", body[..cut].trim_end()),
        None => body.to_owned(),
    }
}

/// `1 duplicate`, `3 duplicates`.
pub fn duplicates_label(n: &i64) -> String {
    format!("{n} {}", crate::web::format::plural(*n, "duplicate"))
}

/// The label of a dismiss reason.
pub fn reason_label(slug: &str) -> &str {
    triage::reason_label(slug)
}

/// One page of queue rows, and the "load more" row to the next.
#[derive(Template)]
#[template(path = "fragments/triage_page.html")]
pub struct QueuePage {
    pub hub_slug: String,
    pub rows: Vec<RowView>,
    pub pills: Vec<Pill>,
    pub now: i64,
    /// The query string of the next page.
    pub next: Option<String>,
    pub first: bool,
}

/// The queue region: the table and its first page.
#[derive(Template)]
#[template(path = "fragments/triage_queue.html")]
pub struct TriageQueue {
    pub hub_slug: String,
    pub page: QueuePage,
}

/// A count that filters the board when chosen.
#[derive(Debug, Clone)]
pub struct CountLink {
    pub label: String,
    pub count: i64,
    pub query: String,
    pub current: bool,
    pub colour: Option<String>,
}

/// The counts panel region: per status and per category, for the current filters.
#[derive(Template)]
#[template(path = "fragments/triage_counts.html")]
pub struct TriageCounts {
    pub hub_slug: String,
    pub statuses: Vec<CountLink>,
    pub categories: Vec<CountLink>,
    pub oob: bool,
}

/// The toast after an action, with Undo while the token lasts.
#[derive(Template)]
#[template(path = "fragments/triage_toast.html")]
pub struct Toast {
    pub hub_slug: String,
    pub message: String,
    pub undo: Option<String>,
}

/// What an action answers, all out of band (a `<tr>` at the top of a response would make the
/// parser drop the toast's form): the rows it changed, the counts and the toast.
#[derive(Template)]
#[template(path = "fragments/triage_result.html")]
struct ActionResult {
    hub_slug: String,
    pills: Vec<Pill>,
    now: i64,
    rows: Vec<RowView>,
    counts: TriageCounts,
    toast: Toast,
}

#[derive(Template)]
#[template(path = "pages/triage.html", blocks = ["content"])]
struct TriagePage {
    chrome: Chrome,
    hub: Hub,
    filter: Filter,
    widgets: Vec<Widget>,
    pills: Vec<Pill>,
    queue: TriageQueue,
    counts: TriageCounts,
    can_manage: bool,
}

/// The hub, for viewers who may triage it (others: 401/403).
async fn triage_hub(state: &AppState, slug: &str, viewer: &Viewer) -> Result<(Hub, HubAccess), AppError> {
    let (hub, access) = access::hub(state, slug, viewer).await?;
    access::require(access.can_triage(), viewer)?;
    Ok((hub, access))
}

/// The hub and filters of a live triage region, for viewers who may still triage it.
pub async fn live_scope(
    state: &AppState,
    hub_id: i64,
    query: &str,
    viewer: &Viewer,
) -> Result<(Hub, Filter), AppError> {
    let hub = crate::db::hubs::by_id(&state.db, hub_id).await?;
    let (hub, _) = triage_hub(state, &hub.slug, viewer).await?;
    let params = web::Query::<FilterParams>::from_query(query)
        .map_err(|e| AppError::BadRequest(format!("live triage filter: {e}")))?;
    Ok((hub, Filter::parse(params.into_inner())?))
}

/// The live regions of a board showing `filter`.
pub fn live_regions(hub: &Hub, filter: &Filter) -> [Region; 2] {
    [
        Region::TriageQueue { hub_id: hub.id, filter: filter.query() },
        Region::TriageCounts { hub_id: hub.id, filter: filter.query() },
    ]
}

/// Loads one page of the queue.
pub async fn load_queue_page(
    state: &AppState,
    hub: &Hub,
    viewer: &Viewer,
    filter: &Filter,
    after: Option<Cursor>,
) -> Result<QueuePage, AppError> {
    let (rows, categories) = tokio::try_join!(
        triage::queue(&state.db, viewer, hub.id, &filter.store, after, QUEUE_PAGE + 1),
        categories::list(&state.db, hub.id, true),
    )?;
    let mut rows: Vec<RowView> = rows.into_iter().map(RowView::plain).collect();
    let next = if rows.len() as i64 > QUEUE_PAGE {
        rows.truncate(QUEUE_PAGE as usize);
        rows.last().map(|last| {
            let cursor = Cursor { created_at: last.row.created_at, id: last.row.id };
            format!("{}&after={}", filter.query(), cursor.to_param())
        })
    } else {
        None
    };
    Ok(QueuePage {
        hub_slug: hub.slug.clone(),
        rows,
        pills: pills(&categories),
        now: now_ms(),
        next,
        first: after.is_none(),
    })
}

/// Loads the queue region (its first page).
pub async fn load_queue(
    state: &AppState,
    hub: &Hub,
    viewer: &Viewer,
    filter: &Filter,
) -> Result<TriageQueue, AppError> {
    Ok(TriageQueue { hub_slug: hub.slug.clone(), page: load_queue_page(state, hub, viewer, filter, None).await? })
}

/// Loads the counts region.
pub async fn load_counts(
    state: &AppState,
    hub: &Hub,
    viewer: &Viewer,
    filter: &Filter,
) -> Result<TriageCounts, AppError> {
    let (counts, categories) = tokio::try_join!(
        triage::counts(&state.db, viewer, hub.id, &filter.store),
        categories::list(&state.db, hub.id, true),
    )?;
    let total = counts.by_status.iter().map(|(_, n)| n).sum();
    let mut statuses = vec![CountLink {
        label: "All".into(),
        count: total,
        query: filter.query_with("all", &filter.category),
        current: filter.status == "all",
        colour: None,
    }];
    statuses.extend(STATUSES.iter().map(|s| CountLink {
        label: (*s).to_owned(),
        count: counts.status(s),
        query: filter.query_with(s, &filter.category),
        current: filter.status == *s,
        colour: None,
    }));
    let categories = categories
        .iter()
        // Archived categories are listed only while annotations still carry them.
        .filter(|c| c.archived_at.is_none() || counts.category(c.id) > 0)
        .map(|c| CountLink {
            label: c.label.clone(),
            count: counts.category(c.id),
            query: filter.query_with(&filter.status, if filter.category == c.slug { "" } else { &c.slug }),
            current: filter.category == c.slug,
            colour: Some(c.colour.clone()),
        })
        .collect();
    Ok(TriageCounts { hub_slug: hub.slug.clone(), statuses, categories, oob: false })
}

#[get("/hubs/{hub_slug}/triage")]
async fn board(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<FilterParams>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    // Filter changes target the whole live frame (`#live`, in the layout) so that its stream
    // reconnects with the regions of the new filters: they need the full page.
    let htmx = if req.headers().get("HX-Target").is_some_and(|t| t.as_bytes() == b"live") {
        Htmx { partial: false }
    } else {
        htmx
    };
    let (hub, access) = triage_hub(&state, &path, &chrome.viewer).await?;
    let filter = Filter::parse(query.into_inner())?;
    // Before loading: a change made while the page renders is then sent when the stream opens.
    let since = state.feed.current_seq();
    let (queue, counts, widgets, categories) = tokio::try_join!(
        load_queue(&state, &hub, &chrome.viewer, &filter),
        load_counts(&state, &hub, &chrome.viewer, &filter),
        async { Ok(widgets::list_for_hub(&state.db, hub.id).await?) },
        async { Ok::<_, AppError>(categories::list(&state.db, hub.id, true).await?) },
    )?;
    let live_url = live::region::stream_url(&live_regions(&hub, &filter), since);
    let chrome = chrome.titled(format!("Triage · {}", hub.name)).live(live_url);
    let page = TriagePage {
        chrome,
        can_manage: access.can_manage(),
        hub,
        filter,
        widgets,
        pills: pills(&categories),
        queue,
        counts,
    };
    let mut response = render::page(htmx, &page, |p| p.as_content().render())?;
    response.headers_mut().insert(header::VARY, header::HeaderValue::from_static("HX-Request, HX-Target"));
    Ok(response)
}

#[derive(Deserialize)]
struct QueueQuery {
    after: Option<String>,
    #[serde(flatten)]
    filter: FilterParams,
}

#[get("/hubs/{hub_slug}/triage/queue")]
async fn queue_region(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<QueueQuery>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (hub, _) = triage_hub(&state, &path, &chrome.viewer).await?;
    let query = query.into_inner();
    let filter = Filter::parse(query.filter)?;
    let chrome = chrome.titled(format!("{} · triage queue", hub.name));
    match query.after.as_deref() {
        None => {
            let queue = load_queue(&state, &hub, &chrome.viewer, &filter).await?;
            region::respond(htmx, chrome, &queue)
        }
        Some(param) => {
            let cursor = Cursor::parse(param).ok_or_else(|| AppError::BadRequest("invalid queue cursor".into()))?;
            let page = load_queue_page(&state, &hub, &chrome.viewer, &filter, Some(cursor)).await?;
            if htmx.partial {
                render::fragment(&page)
            } else {
                region::respond(htmx, chrome, &TriageQueue { hub_slug: hub.slug.clone(), page })
            }
        }
    }
}

#[get("/hubs/{hub_slug}/triage/counts")]
async fn counts_region(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<FilterParams>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (hub, _) = triage_hub(&state, &path, &chrome.viewer).await?;
    let filter = Filter::parse(query.into_inner())?;
    let counts = load_counts(&state, &hub, &chrome.viewer, &filter).await?;
    region::respond(htmx, chrome.titled(format!("{} · triage counts", hub.name)), &counts)
}

/// What the person asked for, for the toast.
fn describe(change: &Change, count: usize, id: i64, pills: &[Pill]) -> String {
    let what = if count == 1 { format!("#{id}") } else { format!("{count} annotations") };
    match change {
        Change::Recategorize { category_id } => {
            let label = pills.iter().find(|p| p.id == *category_id).map_or("another category", |p| p.label.as_str());
            format!("{what}: category {label}.")
        }
        Change::Triage => format!("{what} marked triaged."),
        Change::Dismiss { reason } => format!("{what} dismissed ({}).", reason_label(reason).to_lowercase()),
        Change::Duplicate { of } => format!("{what} marked duplicate of #{of}."),
        Change::Reopen => format!("{what} reopened."),
        Change::Restore { .. } => format!("Undone: {what} restored."),
    }
}

/// Why the change was refused, shown on the row: who changed it last.
async fn stale_note(state: &AppState, row: &TriageRow) -> Result<String, AppError> {
    let last = triage::last_change(&state.db, row.id).await?;
    let now = now_ms();
    Ok(match last {
        // The last audited change is the one that moved the version on.
        Some((who, at)) if at + 1_000 >= row.updated_at => {
            format!(
                "{who} changed this {} ago; your change was not applied.",
                age(&now, &at).replace("just now", "a moment")
            )
        }
        _ => "Someone changed this meanwhile; your change was not applied.".into(),
    })
}

/// Everything an action answers with, for any outcome.
struct Answer<'a> {
    state: &'a AppState,
    hub: &'a Hub,
    viewer: &'a Viewer,
    filter: &'a Filter,
    /// The row the request came from (a refusal is noted on it); `None` for bulk and undo.
    primary: Option<i64>,
}

impl Answer<'_> {
    async fn render(
        &self,
        status: StatusCode,
        ids: &[i64],
        notes: Vec<(i64, String)>,
        message: String,
        undo: Option<String>,
    ) -> Result<HttpResponse, AppError> {
        let (rows, counts, categories) = tokio::try_join!(
            async { Ok::<_, AppError>(triage::rows(&self.state.db, self.viewer, self.hub.id, ids).await?) },
            load_counts(self.state, self.hub, self.viewer, self.filter),
            async { Ok::<_, AppError>(categories::list(&self.state.db, self.hub.id, true).await?) },
        )?;
        let rows = rows
            .into_iter()
            .map(|row| {
                let note = notes.iter().find(|(id, _)| *id == row.id).map(|(_, n)| n.clone());
                RowView { row, note, oob: true }
            })
            .collect();
        let result = ActionResult {
            hub_slug: self.hub.slug.clone(),
            pills: pills(&categories),
            now: now_ms(),
            rows,
            counts: TriageCounts { oob: true, ..counts },
            toast: Toast { hub_slug: self.hub.slug.clone(), message, undo },
        };
        Ok(render::html(status, result.render()?))
    }

    /// Answers the outcome of `changes` (`undoing`: an undo, which offers no further undo).
    async fn outcome(
        &self,
        changes: &[(Target, Change)],
        outcome: Result<Vec<Applied>, TriageError>,
        undoing: bool,
    ) -> Result<HttpResponse, AppError> {
        let Some((first, change)) = changes.first() else {
            return Err(AppError::BadRequest("select at least one annotation".into()));
        };
        match outcome {
            Ok(applied) => {
                let mut ids: Vec<i64> = Vec::new();
                for a in &applied {
                    ids.extend([Some(a.id), a.before.duplicate_of, a.after.duplicate_of].into_iter().flatten());
                }
                ids.sort_unstable();
                ids.dedup();
                let categories = categories::list(&self.state.db, self.hub.id, true).await?;
                let message = describe(change, changes.len(), first.id, &pills(&categories));
                let undo = match (undoing, self.viewer.actor_id) {
                    (false, Some(actor)) => {
                        Some(UndoToken::new(self.hub.id, actor, now_ms(), applied).sign(&self.state.secret))
                    }
                    _ => None,
                };
                self.render(StatusCode::OK, &ids, Vec::new(), message, undo).await
            }
            Err(TriageError::Store(StoreError::Stale)) => {
                let ids: Vec<i64> = changes.iter().map(|(t, _)| t.id).collect();
                let current = triage::rows(&self.state.db, self.viewer, self.hub.id, &ids).await?;
                let mut notes = Vec::new();
                for row in &current {
                    if changes.iter().any(|(t, _)| t.id == row.id && t.version != row.version) {
                        notes.push((row.id, stale_note(self.state, row).await?));
                    }
                }
                let message = if undoing {
                    "Nothing was undone: it has changed since.".to_owned()
                } else {
                    "Nothing changed: someone else changed it first. Check and try again.".to_owned()
                };
                self.render(StatusCode::CONFLICT, &ids, notes, message, None).await
            }
            Err(TriageError::Store(StoreError::NotFound)) => Err(AppError::NotFound("annotation")),
            Err(TriageError::Store(e)) => Err(e.into()),
            Err(TriageError::Refused(reason)) => {
                let ids: Vec<i64> = changes.iter().map(|(t, _)| t.id).collect();
                let notes = self.primary.map(|id| (id, reason.clone())).into_iter().collect();
                self.render(StatusCode::UNPROCESSABLE_ENTITY, &ids, notes, format!("Nothing changed: {reason}."), None)
                    .await
            }
        }
    }
}

/// Parses an action name and its arguments into a change.
fn parse_change(
    action: &str,
    category_id: Option<i64>,
    reason: Option<&str>,
    of: Option<i64>,
) -> Result<Change, AppError> {
    let missing = |what: &str| AppError::BadRequest(format!("{what} is missing"));
    Ok(match action {
        "category" => Change::Recategorize { category_id: category_id.ok_or_else(|| missing("category_id"))? },
        "triage" => Change::Triage,
        "dismiss" => {
            Change::Dismiss { reason: reason.filter(|r| !r.is_empty()).ok_or_else(|| missing("reason"))?.to_owned() }
        }
        "duplicate" => Change::Duplicate { of: of.ok_or_else(|| missing("of"))? },
        "reopen" => Change::Reopen,
        _ => return Err(AppError::BadRequest("unknown action".into())),
    })
}

#[derive(Deserialize)]
struct ActionForm {
    action: String,
    version: i64,
    category_id: Option<i64>,
    reason: Option<String>,
    of: Option<i64>,
    #[serde(flatten)]
    filter: FilterParams,
}

fn actor(viewer: &Viewer) -> Result<i64, AppError> {
    viewer.actor_id.ok_or(AppError::Unauthorized)
}

#[post("/hubs/{hub_slug}/triage/annotations/{id}")]
async fn act(
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    form: web::Form<ActionForm>,
    chrome: Chrome,
) -> Result<HttpResponse, AppError> {
    let (slug, id) = path.into_inner();
    let (hub, _) = triage_hub(&state, &slug, &chrome.viewer).await?;
    let form = form.into_inner();
    let filter = Filter::parse(form.filter)?;
    let change = parse_change(&form.action, form.category_id, form.reason.as_deref(), form.of)?;
    let changes = [(Target { id, version: form.version }, change)];
    let outcome = triage::apply(&state.db, hub.id, actor(&chrome.viewer)?, &changes).await;
    let answer = Answer { state: &state, hub: &hub, viewer: &chrome.viewer, filter: &filter, primary: Some(id) };
    answer.outcome(&changes, outcome, false).await
}

/// The value of `key` in a form's pairs.
fn field<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

#[post("/hubs/{hub_slug}/triage/bulk")]
async fn bulk(
    state: web::Data<AppState>,
    path: web::Path<String>,
    // Pairs, because the selection repeats `sel`.
    form: web::Form<Vec<(String, String)>>,
    chrome: Chrome,
) -> Result<HttpResponse, AppError> {
    let (hub, _) = triage_hub(&state, &path, &chrome.viewer).await?;
    let pairs = form.into_inner();
    let text = |key: &str| field(&pairs, key).map(str::to_owned);
    let number = |key: &str| -> Result<Option<i64>, AppError> {
        field(&pairs, key)
            .filter(|v| !v.is_empty())
            .map(|v| v.parse().map_err(|_| AppError::BadRequest(format!("{key} is not a number"))))
            .transpose()
    };
    let filter = Filter::parse(FilterParams {
        status: text("status"),
        widget: text("widget"),
        category: text("category"),
        q: text("q"),
        from: text("from"),
        to: text("to"),
    })?;
    let action = field(&pairs, "action").unwrap_or_default();
    if !matches!(action, "category" | "triage" | "dismiss") {
        return Err(AppError::BadRequest("bulk actions are category, triage and dismiss".into()));
    }
    let change = parse_change(action, number("category_id")?, field(&pairs, "reason"), None)?;
    let mut changes = Vec::new();
    for (_, value) in pairs.iter().filter(|(k, _)| k == "sel") {
        let target = value
            .split_once(':')
            .and_then(|(id, version)| Some(Target { id: id.parse().ok()?, version: version.parse().ok()? }))
            .ok_or_else(|| AppError::BadRequest("a selection is written id:version".into()))?;
        changes.push((target, change.clone()));
    }
    if changes.is_empty() {
        return Err(AppError::BadRequest("select at least one annotation".into()));
    }
    let outcome = triage::apply(&state.db, hub.id, actor(&chrome.viewer)?, &changes).await;
    let answer = Answer { state: &state, hub: &hub, viewer: &chrome.viewer, filter: &filter, primary: None };
    answer.outcome(&changes, outcome, false).await
}

#[derive(Deserialize)]
struct UndoForm {
    token: String,
    #[serde(flatten)]
    filter: FilterParams,
}

#[post("/hubs/{hub_slug}/triage/undo")]
async fn undo_action(
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<UndoForm>,
    chrome: Chrome,
) -> Result<HttpResponse, AppError> {
    let (hub, _) = triage_hub(&state, &path, &chrome.viewer).await?;
    let form = form.into_inner();
    let filter = Filter::parse(form.filter)?;
    let actor = actor(&chrome.viewer)?;
    let token = match UndoToken::verify(&form.token, &state.secret, hub.id, actor, now_ms()) {
        Ok(token) => token,
        Err(UndoError::Invalid) => return Err(AppError::BadRequest("this undo token is not valid".into())),
        Err(UndoError::Expired) => return Err(AppError::Conflict("the time to undo has passed".into())),
    };
    let changes = token.changes();
    let outcome = triage::apply(&state.db, hub.id, actor, &changes).await;
    let answer = Answer { state: &state, hub: &hub, viewer: &chrome.viewer, filter: &filter, primary: None };
    answer.outcome(&changes, outcome, true).await
}

#[derive(Deserialize)]
struct DialogQuery {
    version: i64,
    q: Option<String>,
}

#[derive(Template)]
#[template(path = "fragments/triage_dismiss.html")]
struct DismissDialog {
    hub_slug: String,
    row: TriageRow,
    version: i64,
}

#[get("/hubs/{hub_slug}/triage/annotations/{id}/dismiss")]
async fn dismiss_dialog(
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    query: web::Query<DialogQuery>,
    chrome: Chrome,
) -> Result<HttpResponse, AppError> {
    let (slug, id) = path.into_inner();
    let (hub, _) = triage_hub(&state, &slug, &chrome.viewer).await?;
    let row = triage::row(&state.db, &chrome.viewer, hub.id, id).await?;
    render::fragment(&DismissDialog { hub_slug: hub.slug, row, version: query.version })
}

#[derive(Template)]
#[template(path = "fragments/triage_duplicate.html")]
struct DuplicateDialog {
    hub_slug: String,
    row: TriageRow,
    version: i64,
    q: String,
    results: Vec<TriageRow>,
    now: i64,
}

#[get("/hubs/{hub_slug}/triage/annotations/{id}/duplicate")]
async fn duplicate_dialog(
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    query: web::Query<DialogQuery>,
    chrome: Chrome,
) -> Result<HttpResponse, AppError> {
    let (slug, id) = path.into_inner();
    let (hub, _) = triage_hub(&state, &slug, &chrome.viewer).await?;
    let q = query.q.clone().unwrap_or_default();
    let (row, results) = tokio::try_join!(
        triage::row(&state.db, &chrome.viewer, hub.id, id),
        triage::search(&state.db, &chrome.viewer, hub.id, &q, id, PICKER_ROWS),
    )?;
    let dialog = DuplicateDialog { hub_slug: hub.slug, row, version: query.version, q, results, now: now_ms() };
    render::fragment(&dialog)
}

#[derive(Template)]
#[template(path = "fragments/triage_promote.html")]
struct PromoteDialog {
    hub_slug: String,
    row: TriageRow,
    version: i64,
    target: String,
    title: String,
    statement: String,
    candidate_id: Option<i64>,
    candidates: Vec<OpenCandidate>,
    title_error: Option<String>,
    candidate_error: Option<String>,
    error: Option<String>,
}

impl PromoteDialog {
    fn selected(&self, id: &i64) -> bool {
        self.candidate_id == Some(*id)
    }
}

#[get("/hubs/{hub_slug}/triage/annotations/{id}/promote")]
async fn promote_dialog(
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    query: web::Query<DialogQuery>,
    chrome: Chrome,
) -> Result<HttpResponse, AppError> {
    let (slug, id) = path.into_inner();
    let (hub, _) = triage_hub(&state, &slug, &chrome.viewer).await?;
    let (row, candidates) = tokio::try_join!(
        triage::row(&state.db, &chrome.viewer, hub.id, id),
        triage::open_candidates(&state.db, hub.id)
    )?;
    let dialog = PromoteDialog {
        hub_slug: hub.slug,
        version: query.version,
        target: "new".into(),
        title: excerpt(&row.body, 80),
        statement: row.body.clone(),
        row,
        candidate_id: None,
        candidates,
        title_error: None,
        candidate_error: None,
        error: None,
    };
    render::fragment(&dialog)
}

#[derive(Deserialize)]
struct PromoteForm {
    version: i64,
    target: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    statement: String,
    candidate_id: Option<String>,
    #[serde(flatten)]
    filter: FilterParams,
}

/// The longest candidate title (the schema's limit).
const TITLE_MAX: usize = 200;

#[post("/hubs/{hub_slug}/triage/annotations/{id}/promote")]
async fn promote(
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    form: web::Form<PromoteForm>,
    chrome: Chrome,
) -> Result<HttpResponse, AppError> {
    let (slug, id) = path.into_inner();
    let (hub, _) = triage_hub(&state, &slug, &chrome.viewer).await?;
    let form = form.into_inner();
    let filter = Filter::parse(form.filter)?;
    let title = form.title.trim().to_owned();
    let candidate_id = form.candidate_id.as_deref().filter(|v| !v.is_empty()).and_then(|v| v.parse::<i64>().ok());
    let mut title_error = None;
    let mut candidate_error = None;
    let promotion = match form.target.as_str() {
        "new" if title.is_empty() => {
            title_error = Some("Give the candidate a title.".to_owned());
            None
        }
        "new" if title.chars().count() > TITLE_MAX => {
            title_error = Some(format!("Keep the title under {TITLE_MAX} characters."));
            None
        }
        "new" => Some(Promotion::New { title: &title, statement: form.statement.trim() }),
        "existing" => match candidate_id {
            Some(candidate_id) => Some(Promotion::Existing { candidate_id }),
            None => {
                candidate_error = Some("Choose a candidate.".to_owned());
                None
            }
        },
        _ => return Err(AppError::BadRequest("promote to a new or an existing candidate".into())),
    };
    let target = Target { id, version: form.version };
    let outcome = match &promotion {
        Some(promotion) => Some(triage::promote(&state.db, hub.id, actor(&chrome.viewer)?, &target, promotion).await),
        None => None,
    };
    let error = match outcome {
        Some(Ok(applied)) => {
            let undo = UndoToken::new(hub.id, actor(&chrome.viewer)?, now_ms(), vec![applied.clone()]);
            let answer =
                Answer { state: &state, hub: &hub, viewer: &chrome.viewer, filter: &filter, primary: Some(id) };
            let candidate = applied.candidate.unwrap_or_default();
            let mut response = answer
                .render(
                    StatusCode::OK,
                    &[id],
                    Vec::new(),
                    format!("#{id} promoted to candidate #{candidate}."),
                    Some(undo.sign(&state.secret)),
                )
                .await?;
            // The form lives in the dialog, which keeps it on a 422; the answer goes out of band.
            response
                .headers_mut()
                .insert(header::HeaderName::from_static("hx-reswap"), header::HeaderValue::from_static("none"));
            return Ok(response);
        }
        Some(Err(TriageError::Refused(reason))) => Some(reason),
        Some(Err(TriageError::Store(StoreError::Stale))) => {
            Some("Someone changed this annotation meanwhile: close this and look again.".to_owned())
        }
        Some(Err(TriageError::Store(e))) => return Err(e.into()),
        None => None,
    };
    let (row, candidates) = tokio::try_join!(
        triage::row(&state.db, &chrome.viewer, hub.id, id),
        triage::open_candidates(&state.db, hub.id)
    )?;
    let dialog = PromoteDialog {
        hub_slug: hub.slug,
        row,
        version: form.version,
        target: form.target,
        title,
        statement: form.statement,
        candidate_id,
        candidates,
        title_error,
        candidate_error,
        error,
    };
    Ok(render::html(StatusCode::UNPROCESSABLE_ENTITY, dialog.render()?))
}

#[derive(Template)]
#[template(path = "pages/triage_history.html", blocks = ["content"])]
struct HistoryPage {
    chrome: Chrome,
    hub: Hub,
    row: TriageRow,
    entries: Vec<HistoryEntry>,
    duplicates: Vec<TriageRow>,
}

#[get("/hubs/{hub_slug}/triage/annotations/{id}")]
async fn history(
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (slug, id) = path.into_inner();
    let (hub, _) = triage_hub(&state, &slug, &chrome.viewer).await?;
    let (row, entries, duplicates) = tokio::try_join!(
        triage::row(&state.db, &chrome.viewer, hub.id, id),
        triage::history(&state.db, hub.id, id),
        triage::duplicates(&state.db, &chrome.viewer, hub.id, id),
    )?;
    let chrome = chrome.titled(format!("Annotation #{id} · {}", hub.name));
    let page = HistoryPage { chrome, hub, row, entries, duplicates };
    render::page(htmx, &page, |p| p.as_content().render())
}

/// Mounts the board, its regions and its actions.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(board)
        .service(queue_region)
        .service(counts_region)
        .service(bulk)
        .service(undo_action)
        .service(dismiss_dialog)
        .service(duplicate_dialog)
        .service(promote_dialog)
        .service(promote)
        .service(history)
        .service(act);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_default_to_new_and_round_trip() {
        let filter = Filter::parse(FilterParams::default()).expect("filter");
        assert_eq!(filter.store.status.as_deref(), Some("new"));
        assert_eq!(filter.query(), "status=new");
        let filter = Filter::parse(FilterParams {
            status: Some("all".into()),
            q: Some(" 50% off ".into()),
            from: Some("2024-02-28".into()),
            to: Some("2024-02-29".into()),
            ..FilterParams::default()
        })
        .expect("filter");
        assert_eq!(filter.store.status, None);
        assert_eq!(filter.query(), "status=all&q=50%25%20off&from=2024-02-28&to=2024-02-29");
        assert_eq!(filter.store.from_ms, Some(1_709_078_400_000));
        assert_eq!(filter.store.until_ms, Some(1_709_251_200_000));
        assert!(Filter::parse(FilterParams { status: Some("bogus".into()), ..FilterParams::default() }).is_err());
        assert!(Filter::parse(FilterParams { from: Some("2024-13-01".into()), ..FilterParams::default() }).is_err());
    }

    #[test]
    fn ages_and_excerpts() {
        assert_eq!(age(&120_000, &0), "2 min");
        assert_eq!(age(&(3 * 3_600_000), &0), "3 h");
        assert_eq!(age(&(3 * DAY_MS), &0), "3 d");
        assert_eq!(excerpt("héllo world", 5), "héllo…");
        assert_eq!(excerpt("short", 10), "short");
    }
}
