//! The ledger's exports: the whole chain of a hub as JSON Lines or CSV, streamed page by page,
//! in a form an auditor can re-verify elsewhere.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, get, web};
use serde::Deserialize;

use crate::AppState;
use crate::auth::Viewer;
use crate::db::StoreError;
use crate::db::hubs::Hub;
use crate::db::ledger::{self, LedgerEntry};
use crate::error::AppError;
use crate::web::access::{InHub, View};
use crate::web::chrome::Chrome;

/// Ledger entries read per database round trip while exporting.
const EXPORT_PAGE: i64 = 500;

/// The columns of the exports, in the order of [`LedgerEntry`]'s fields.
pub const EXPORT_COLUMNS: [&str; 11] = [
    "id",
    "hub_id",
    "seq",
    "candidate_id",
    "actor_id",
    "action",
    "rationale",
    "detail",
    "created_at",
    "prev_hash",
    "hash",
];

#[derive(Debug, Clone, Copy)]
enum Format {
    JsonLines,
    /// `exact`: every field as stored, for re-verifying the chain; otherwise a field a
    /// spreadsheet would run as a formula is prefixed with `'`.
    Csv {
        exact: bool,
    },
}

impl Format {
    fn write(self, out: &mut String, entry: &LedgerEntry) {
        match self {
            Self::JsonLines => {
                // A struct of integers and strings always serializes.
                out.push_str(&serde_json::to_string(entry).unwrap_or_default());
                out.push('\n');
            }
            Self::Csv { exact } => {
                let csv_field = |value: &str| if exact { csv_field(value) } else { spreadsheet_field(value) };
                let fields = [
                    entry.id.to_string(),
                    entry.hub_id.to_string(),
                    entry.seq.to_string(),
                    entry.candidate_id.map(|id| id.to_string()).unwrap_or_default(),
                    entry.actor_id.to_string(),
                    csv_field(&entry.action),
                    csv_field(&entry.rationale),
                    csv_field(&entry.detail),
                    entry.created_at.to_string(),
                    entry.prev_hash.clone(),
                    entry.hash.clone(),
                ];
                out.push_str(&fields.join(","));
                out.push_str("\r\n");
            }
        }
    }
}

/// RFC 4180: a field with a comma, quote or line break is quoted, quotes doubled.
fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

/// [`csv_field`], and a field that starts with `=`, `+`, `-`, `@`, a tab or a carriage return
/// is prefixed with `'` (and quoted) so a spreadsheet shows the text instead of running it, as
/// in the annotations export. Such a field no longer hashes as stored: re-verify with
/// `?exact=1` or the JSON Lines export.
fn spreadsheet_field(value: &str) -> String {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("\"'{}\"", value.replace('"', "\"\""))
    } else {
        csv_field(value)
    }
}

/// Streams a hub's chain page by page, so memory stays flat however long the chain is.
fn export(state: &AppState, hub: &Hub, viewer: &Viewer, format: Format) -> HttpResponse {
    let (db, hub_id, actor) = (state.db.clone(), hub.id, viewer.actor_id);
    let header = match format {
        Format::JsonLines => String::new(),
        Format::Csv { .. } => format!("{}\r\n", EXPORT_COLUMNS.join(",")),
    };
    let pages = futures_util::stream::try_unfold(Some(0_i64), move |after| {
        let db = db.clone();
        async move {
            let Some(after) = after else { return Ok(None) };
            let mut tx = db.begin_as(actor).await?;
            let page = ledger::page_after(&mut *tx, hub_id, after, EXPORT_PAGE).await?;
            tx.commit().await?;
            let mut out = String::new();
            for entry in &page {
                format.write(&mut out, entry);
            }
            let next = (page.len() as i64 == EXPORT_PAGE).then(|| page.last().map_or(after, |e| e.seq));
            Ok::<_, StoreError>(Some((web::Bytes::from(out), next)))
        }
    });
    let body = futures_util::StreamExt::chain(
        futures_util::stream::once(std::future::ready(Ok(web::Bytes::from(header)))),
        futures_util::StreamExt::map(pages, |page| {
            page.inspect_err(|e| tracing::error!(error = %e, "ledger export cut short"))
        }),
    );
    let (content_type, extension) = match format {
        Format::JsonLines => ("application/jsonl; charset=utf-8", "jsonl"),
        Format::Csv { .. } => ("text/csv; charset=utf-8", "csv"),
    };
    let disposition = format!("attachment; filename=\"{}-ledger.{extension}\"", hub.slug);
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(content_type)))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((header::CONTENT_DISPOSITION, disposition))
        .streaming(body)
}

#[get("/hubs/{hub_slug}/ledger.jsonl")]
pub(super) async fn export_jsonl(
    state: web::Data<AppState>,
    InHub { hub, .. }: InHub<View>,
    chrome: Chrome,
) -> HttpResponse {
    export(&state, &hub, &chrome.viewer, Format::JsonLines)
}

#[derive(Deserialize)]
struct CsvQuery {
    /// `1` (or `true`): the fields exactly as stored, without the spreadsheet guard.
    exact: Option<String>,
}

#[get("/hubs/{hub_slug}/ledger.csv")]
pub(super) async fn export_csv(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<CsvQuery>,
    chrome: Chrome,
) -> Result<HttpResponse, AppError> {
    let exact = match query.exact.as_deref() {
        None | Some("" | "0" | "false") => false,
        Some("1" | "true") => true,
        Some(_) => return Err(AppError::BadRequest("exact is 1 or 0".into())),
    };
    // After the query: a malformed one is 400 for everybody.
    let InHub { hub, .. } = InHub::<View>::resolve(&state, &path, &chrome.viewer).await?;
    Ok(export(&state, &hub, &chrome.viewer, Format::Csv { exact }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\"\nthere"), "\"say \"\"hi\"\"\nthere\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"=HYPERLINK(\"\"x\"\")\"");
    }

    #[test]
    fn spreadsheet_fields_do_not_run_as_formulas() {
        assert_eq!(spreadsheet_field("plain"), "plain");
        assert_eq!(spreadsheet_field("a,b"), "\"a,b\"");
        assert_eq!(spreadsheet_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        for start in ["+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert!(spreadsheet_field(start).starts_with("\"'"), "{start:?}");
        }
    }
}
