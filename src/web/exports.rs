//! Exports: a hub's annotations (or one widget's) as CSV or JSON Lines, for members with
//! triage rights, with the triage board's filters as query parameters:
//! `widget` (slug), `category` (slug), `status`, `q` (text), `from` and `to` (`YYYY-MM-DD`,
//! UTC, both inclusive).
//!
//! Streamed with constant memory whatever the size: the body is produced a keyset page
//! ([`PAGE`] rows) at a time, each page one chunk, the next page read only when the client
//! has taken the previous one (the stream is polled as the socket drains).

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpResponse, get, web};
use askama::Template;
use futures_util::stream;
use serde::Deserialize;

use crate::AppState;
use crate::auth::Viewer;
use crate::clock::{DAY_MS, day_start_ms};
use crate::db::exports::{self, AnnotationFilter, ExportRow};
use crate::db::hubs::Hub;
use crate::db::{StoreError, annotations, categories, widgets};
use crate::error::AppError;
use crate::web::access::{Export, InHub};
use crate::web::chrome::Chrome;
use crate::web::format::iso;
use crate::web::input;
use crate::web::render::{self, Htmx};

/// Rows per page, and so per chunk of the body.
pub const PAGE: i64 = 500;

/// The filters as they come in the query string.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ExportQuery {
    pub widget: Option<String>,
    pub category: Option<String>,
    pub status: Option<String>,
    pub q: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    JsonLines,
}

const CSV_HEADER: &str =
    "id,created_at,updated_at,widget,author_id,author,category,status,duplicate_of,version,body\r\n";

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// Turns the query into store filters; unknown widgets, categories or statuses and malformed
/// dates are a 400 that says which.
async fn resolve(state: &AppState, hub: &Hub, query: &ExportQuery) -> Result<AnnotationFilter, AppError> {
    let mut filter = AnnotationFilter::default();
    input::slug_filter("widget", query.widget.as_deref())?;
    input::slug_filter("category", query.category.as_deref())?;
    if let Some(slug) = non_empty(&query.widget) {
        filter.widget_id = match widgets::by_slug(&state.db, hub.id, slug).await {
            Ok(widget) => Some(widget.id),
            Err(StoreError::NotFound) => return Err(AppError::BadRequest(format!("no widget {slug} in this hub"))),
            Err(e) => return Err(e.into()),
        };
    }
    if let Some(slug) = non_empty(&query.category) {
        let all = categories::list(&state.db, hub.id, true).await?;
        let category = all.iter().find(|c| c.slug == slug);
        filter.category_id =
            Some(category.ok_or_else(|| AppError::BadRequest(format!("no category {slug} in this hub")))?.id);
    }
    if let Some(status) = non_empty(&query.status) {
        if !annotations::STATUSES.contains(&status) {
            return Err(AppError::BadRequest(format!("status must be one of {}", annotations::STATUSES.join(", "))));
        }
        filter.status = Some(status.to_owned());
    }
    filter.text = Some(input::search(query.q.as_deref())?).filter(|q| !q.is_empty());
    let date =
        |raw: &str| day_start_ms(raw).ok_or_else(|| AppError::BadRequest(format!("{raw} is not a date (YYYY-MM-DD)")));
    if let Some(from) = non_empty(&query.from) {
        filter.from_ms = Some(date(from)?);
    }
    if let Some(to) = non_empty(&query.to) {
        filter.until_ms = Some(date(to)? + DAY_MS);
    }
    Ok(filter)
}

/// A CSV field: quoted when needed; a leading `=`, `+`, `-` or `@` is prefixed with `'` so a
/// spreadsheet shows the text instead of running it as a formula.
fn csv_field(out: &mut String, value: &str) {
    let guarded = value.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if guarded || value.contains([',', '"', '\n', '\r']) {
        out.push('"');
        if guarded {
            out.push('\'');
        }
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

fn write_csv(out: &mut String, row: &ExportRow) {
    use std::fmt::Write as _;
    let _ = write!(out, "{},{},{},", row.id, iso(row.created_at), iso(row.updated_at));
    csv_field(out, &row.widget_slug);
    let _ = write!(out, ",{},", row.author_id);
    csv_field(out, &row.author_name);
    out.push(',');
    csv_field(out, &row.category);
    out.push(',');
    csv_field(out, row.status.as_str());
    out.push(',');
    if let Some(original) = row.duplicate_of {
        let _ = write!(out, "{original}");
    }
    let _ = write!(out, ",{},", row.version);
    csv_field(out, &row.body);
    out.push_str("\r\n");
}

fn write_json_line(out: &mut String, row: &ExportRow) {
    let line = serde_json::json!({
        "id": row.id,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
        "widget": { "slug": row.widget_slug, "name": row.widget_name },
        "author": { "id": row.author_id, "display_name": row.author_name },
        "category": row.category,
        "status": row.status,
        "duplicate_of": row.duplicate_of,
        "version": row.version,
        "body": row.body,
    });
    out.push_str(&line.to_string());
    out.push('\n');
}

/// Where the stream is.
struct Cursor {
    state: web::Data<AppState>,
    viewer: Viewer,
    hub_id: i64,
    filter: AnnotationFilter,
    format: Format,
    after: Option<(i64, i64)>,
    started: bool,
    done: bool,
}

/// The next chunk: the CSV header with the first page, then one page per chunk.
async fn next_chunk(mut cursor: Cursor) -> Option<(Result<Bytes, AppError>, Cursor)> {
    if cursor.done {
        return None;
    }
    let rows = match exports::page(&cursor.state.db, &cursor.viewer, cursor.hub_id, &cursor.filter, cursor.after, PAGE)
        .await
    {
        Ok(rows) => rows,
        Err(e) => {
            // The status line is gone already: the client sees a cut body, the log says why.
            tracing::error!(error = %e, "export interrupted");
            cursor.done = true;
            return Some((Err(e.into()), cursor));
        }
    };
    let mut out = String::with_capacity(rows.len() * 256 + CSV_HEADER.len());
    if !cursor.started && cursor.format == Format::Csv {
        out.push_str(CSV_HEADER);
    }
    cursor.started = true;
    for row in &rows {
        match cursor.format {
            Format::Csv => write_csv(&mut out, row),
            Format::JsonLines => write_json_line(&mut out, row),
        }
    }
    cursor.done = (rows.len() as i64) < PAGE;
    cursor.after = rows.last().map(|r| (r.created_at, r.id)).or(cursor.after);
    if out.is_empty() {
        return None;
    }
    Some((Ok(Bytes::from(out)), cursor))
}

#[get("/hubs/{hub_slug}/annotations.{format}")]
async fn export(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<ExportQuery>,
    chrome: Chrome,
) -> Result<HttpResponse, AppError> {
    let (hub_slug, format) = path.into_inner();
    let (format, content_type) = match format.as_str() {
        "csv" => (Format::Csv, "text/csv; charset=utf-8"),
        "jsonl" => (Format::JsonLines, "application/x-ndjson; charset=utf-8"),
        _ => return Err(AppError::NotFound("export format")),
    };
    // The format first: an unknown one is 404 for everybody.
    let InHub { hub, .. } = InHub::<Export>::resolve(&state, &hub_slug, &chrome.viewer).await?;
    let filter = resolve(&state, &hub, &query).await?;
    let widget_part = non_empty(&query.widget).map(|w| format!("-{w}")).unwrap_or_default();
    let extension = if format == Format::Csv { "csv" } else { "jsonl" };
    let date = iso(crate::db::now_ms());
    let filename = format!("{}{widget_part}-annotations-{}.{extension}", hub.slug, &date[..10]);
    tracing::info!(hub = hub.slug, actor = chrome.viewer.actor_id, ?filter, "export started");
    let cursor = Cursor {
        state: state.clone(),
        viewer: chrome.viewer,
        hub_id: hub.id,
        filter,
        format,
        after: None,
        started: false,
        done: false,
    };
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{filename}\"")))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(stream::unfold(cursor, next_chunk)))
}

#[derive(Template)]
#[template(path = "pages/export.html", blocks = ["content"])]
struct ExportPage {
    chrome: Chrome,
    hub: Hub,
    widgets: Vec<crate::db::widgets::Widget>,
    categories: Vec<categories::Category>,
    statuses: [&'static str; 5],
    can_manage: bool,
}

/// The export form: the filters, and one button per format.
#[get("/hubs/{hub_slug}/export")]
async fn export_form(
    state: web::Data<AppState>,
    InHub { hub, access, .. }: InHub<Export>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let widgets = widgets::list_for_hub(&state.db, hub.id).await?;
    let categories = categories::list(&state.db, hub.id, true).await?;
    let chrome = chrome.titled(format!("Export · {}", hub.name)).in_hub(&access);
    let page = ExportPage {
        chrome,
        hub,
        widgets,
        categories,
        statuses: annotations::STATUSES,
        can_manage: access.can_manage(),
    };
    render::page(htmx, &page, |p| p.as_content().render())
}

/// Mounts the exports.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(export).service(export_form);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_guarded() {
        let mut out = String::new();
        csv_field(&mut out, "plain");
        out.push('|');
        csv_field(&mut out, "a, \"b\"\nc");
        out.push('|');
        csv_field(&mut out, "=SUM(A1)");
        assert_eq!(out, "plain|\"a, \"\"b\"\"\nc\"|\"'=SUM(A1)\"");
    }

    #[test]
    fn dates_are_utc_midnights() {
        assert_eq!(day_start_ms("1970-01-02"), Some(86_400_000));
        assert_eq!(day_start_ms("2024-02-30"), None);
        assert_eq!(day_start_ms("yesterday"), None);
    }
}
