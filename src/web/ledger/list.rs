//! The ledger list of a hub (per status, with a search) and the propose form on its page.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use askama::Template;
use serde::Deserialize;

use crate::AppState;
use crate::access::HubAccess;
use crate::auth::Viewer;
use crate::db::StoreError;
use crate::db::candidates::{self, CandidateRow};
use crate::db::hubs::Hub;
use crate::db::ledger_tree::{self, HeadVerdict};
use crate::error::AppError;
use crate::governance::{self, Draft, DraftErrors, Status};
use crate::live::{self, Region};
use crate::web::access::{InHub, Propose, View};
use crate::web::chrome::Chrome;
use crate::web::input;
use crate::web::login::redirect;
use crate::web::region;
use crate::web::render::{self, Htmx};

/// Most candidates the list shows at once (newest changes first).
pub const LIST_LIMIT: i64 = 200;

/// One status tab of the list, with its count.
pub struct Tab {
    pub label: &'static str,
    pub href: String,
    pub count: i64,
    pub current: bool,
}

/// The candidate list with its counts per status and the chain verdict.
#[derive(Template)]
#[template(path = "fragments/ledger_list.html")]
pub struct LedgerList {
    pub hub_slug: String,
    pub status: Option<Status>,
    pub query: String,
    pub tabs: Vec<Tab>,
    pub items: Vec<CandidateRow>,
    pub truncated: bool,
    pub verdict: HeadVerdict,
    /// The hub's witnesses and the newest checkpoint each cosigned.
    pub cosigners: Vec<crate::db::witnesses::Cosigner>,
}

impl LedgerList {
    fn short_root(&self) -> &str {
        self.verdict.root.get(..12).unwrap_or(&self.verdict.root)
    }
}

/// Loads the list region of a hub as `viewer`.
pub async fn load_list(
    state: &AppState,
    hub: &Hub,
    viewer: &Viewer,
    status: Option<Status>,
    query: &str,
) -> Result<LedgerList, AppError> {
    let filter = candidates::ListFilter { status, query: query.to_owned() };
    let (mut items, counts, (verdict, cosigners)) = tokio::try_join!(
        candidates::list(&state.db, viewer, hub.id, &filter, LIST_LIMIT + 1),
        candidates::status_counts(&state.db, viewer, hub.id, query),
        verify(state, hub, viewer),
    )?;
    let truncated = items.len() as i64 > LIST_LIMIT;
    items.truncate(LIST_LIMIT as usize);
    let href = |s: Option<Status>| {
        let mut params = Vec::new();
        if let Some(s) = s {
            params.push(format!("status={}", s.as_str()));
        }
        if !query.is_empty() {
            params.push(format!("q={}", crate::web::format::urlencode(query)));
        }
        let query = if params.is_empty() { String::new() } else { format!("?{}", params.join("&")) };
        format!("/hubs/{}/ledger{query}", hub.slug)
    };
    let mut tabs = vec![Tab {
        label: "all",
        href: href(None),
        count: counts.iter().map(|(_, n)| n).sum(),
        current: status.is_none(),
    }];
    tabs.extend(counts.into_iter().map(|(s, count)| Tab {
        label: s.as_str(),
        href: href(Some(s)),
        count,
        current: status == Some(s),
    }));
    Ok(LedgerList {
        hub_slug: hub.slug.clone(),
        status,
        query: query.to_owned(),
        tabs,
        items,
        truncated,
        verdict,
        cosigners,
    })
}

/// The verdict from the newest checkpoint, in `O(log n)` (the full walk is `ihf ledger verify`),
/// and who cosigned what.
async fn verify(
    state: &AppState,
    hub: &Hub,
    viewer: &Viewer,
) -> Result<(HeadVerdict, Vec<crate::db::witnesses::Cosigner>), StoreError> {
    let identity = ledger_tree::identity(&state.db).await?;
    let mut tx = state.db.begin_as(viewer.actor_id).await?;
    let verdict = ledger_tree::head_verdict(&mut tx, &identity, hub.id, &hub.slug).await?;
    let cosigners = crate::db::witnesses::cosigners(&mut *tx, hub.id).await?;
    tx.commit().await?;
    Ok((verdict, cosigners))
}

/// The propose form: what was typed and what is wrong with it.
#[derive(Default)]
struct ProposeForm {
    title: String,
    statement: String,
    errors: DraftErrors,
    open: bool,
}

#[derive(Template)]
#[template(path = "pages/ledger.html", blocks = ["content"])]
struct LedgerPage {
    chrome: Chrome,
    hub: Hub,
    list: LedgerList,
    can_propose: bool,
    propose: ProposeForm,
}

#[derive(Deserialize)]
pub(super) struct ListQuery {
    status: Option<String>,
    q: Option<String>,
}

impl ListQuery {
    fn parse(&self) -> Result<(Option<Status>, String), AppError> {
        let status = match self.status.as_deref() {
            None | Some("") | Some("all") => None,
            Some(name) => Some(Status::parse(name).ok_or_else(|| AppError::BadRequest("unknown status".into()))?),
        };
        Ok((status, input::search(self.q.as_deref())?))
    }
}

async fn ledger_page(
    state: &AppState,
    chrome: Chrome,
    hub: Hub,
    hub_access: &HubAccess,
    status: Option<Status>,
    query: &str,
    propose: ProposeForm,
) -> Result<LedgerPage, AppError> {
    let since = state.feed.current_seq();
    let list = load_list(state, &hub, &chrome.viewer, status, query).await?;
    let regions = [Region::Ledger { hub_id: hub.id, status }];
    let chrome =
        chrome.titled(format!("{} · governance ledger", hub.name)).live(live::region::stream_url(&regions, since));
    let chrome = chrome.in_hub(hub_access);
    Ok(LedgerPage { chrome, hub, list, can_propose: hub_access.can_propose(), propose })
}

#[get("/hubs/{hub_slug}/ledger")]
pub(super) async fn ledger_index(
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
    InHub { hub, access: hub_access, .. }: InHub<View>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (status, q) = query.parse()?;
    let page = ledger_page(&state, chrome, hub, &hub_access, status, &q, ProposeForm::default()).await?;
    render::page(htmx, &page, |p| p.as_content().render())
}

#[get("/hubs/{hub_slug}/ledger/list")]
pub(super) async fn list_region(
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
    InHub { hub, .. }: InHub<View>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (status, q) = query.parse()?;
    let list = load_list(&state, &hub, &chrome.viewer, status, &q).await?;
    region::respond(htmx, chrome.titled(format!("{} · candidates", hub.name)), &list)
}

#[derive(Deserialize)]
pub(super) struct ProposeInput {
    #[serde(default)]
    title: String,
    #[serde(default)]
    statement: String,
}

#[post("/hubs/{hub_slug}/candidates")]
pub(super) async fn post_propose(
    state: web::Data<AppState>,
    form: web::Form<ProposeInput>,
    InHub { hub, access: hub_access, .. }: InHub<Propose>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let draft = match Draft::parse(&form.title, &form.statement) {
        Ok(draft) => draft,
        Err(errors) => {
            let ProposeInput { title, statement } = form.into_inner();
            let propose = ProposeForm { title, statement, errors, open: true };
            let page = ledger_page(&state, chrome, hub, &hub_access, None, "", propose).await?;
            return render::page_with_status(htmx, StatusCode::UNPROCESSABLE_ENTITY, &page, |p| {
                p.as_content().render()
            });
        }
    };
    let id = governance::propose(&state.db, &hub_access, hub.id, &draft).await?;
    Ok(redirect(htmx, &format!("/hubs/{}/candidates/{id}", hub.slug)).finish())
}
