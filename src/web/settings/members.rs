//! `/hubs/{hub}/settings/members`: operators add people by handle with a role, change roles
//! and remove members; the last operator of a hub cannot be removed or demoted.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use askama::Template;
use serde::Deserialize;

use super::forms::FieldErrors;
use crate::AppState;
use crate::access::Role;
use crate::db::hubs::Hub;
use crate::db::settings::{self, Member, MembershipChange};
use crate::db::{StoreError, actors};
use crate::error::AppError;
use crate::web::access::{InHub, Manage};
use crate::web::chrome::Chrome;
use crate::web::login::redirect;
use crate::web::render::{self, Htmx};

/// The add form as typed.
#[derive(Debug, Clone, Deserialize)]
pub struct AddForm {
    #[serde(default)]
    pub handle: String,
    #[serde(default)]
    pub role: String,
}

impl Default for AddForm {
    fn default() -> Self {
        Self { handle: String::new(), role: "annotator".into() }
    }
}

#[derive(Deserialize)]
struct RoleForm {
    role: String,
}

#[derive(Template)]
#[template(path = "pages/settings/members.html", blocks = ["content"])]
struct MembersPage {
    chrome: Chrome,
    hub: Hub,
    members: Vec<Member>,
    roles: [&'static str; 3],
    form: AddForm,
    errors: FieldErrors,
    /// A refusal about an existing member (e.g. the last operator), shown above the list.
    notice: Option<String>,
}

/// What the page shows besides the members: the add form as typed, its mistakes, a notice.
#[derive(Default)]
struct Feedback {
    form: AddForm,
    errors: FieldErrors,
    notice: Option<String>,
}

async fn render(
    state: &AppState,
    chrome: Chrome,
    htmx: Htmx,
    status: StatusCode,
    hub: Hub,
    feedback: Feedback,
) -> Result<HttpResponse, AppError> {
    let members = settings::members(&state.db, hub.id).await?;
    let chrome = chrome.titled(format!("Members · {} · settings", hub.name));
    let Feedback { form, errors, notice } = feedback;
    let page = MembersPage { chrome, hub, members, roles: Role::names(), form, errors, notice };
    render::page_with_status(htmx, status, &page, |p| p.as_content().render())
}

fn members_url(hub: &Hub) -> String {
    format!("/hubs/{}/settings/members", hub.slug)
}

#[get("/hubs/{hub_slug}/settings/members")]
async fn list(
    state: web::Data<AppState>,
    InHub { hub, access, .. }: InHub<Manage>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let chrome = chrome.in_hub(&access);
    render(&state, chrome, htmx, StatusCode::OK, hub, Feedback::default()).await
}

#[post("/hubs/{hub_slug}/settings/members")]
async fn add(
    state: web::Data<AppState>,
    form: web::Form<AddForm>,
    InHub { hub, access, .. }: InHub<Manage>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let chrome = chrome.in_hub(&access);
    let form = form.into_inner();
    let mut errors = FieldErrors::default();
    let handle = form.handle.trim();
    let role = Role::parse(&form.role);
    if role.is_none() {
        errors.add("role", "Choose annotator, triager or operator.");
    }
    let actor = if handle.is_empty() {
        errors.add("handle", "Enter the person's handle.");
        None
    } else {
        match actors::by_handle(&state.db, handle).await {
            Ok(actor) if actor.kind == "person" => Some(actor),
            Ok(_) | Err(StoreError::NotFound) => {
                errors.add("handle", format!("Nobody has the handle {handle}. People are added with `ihf user add`."));
                None
            }
            Err(e) => return Err(e.into()),
        }
    };
    let (Some(actor), Some(role)) = (actor, role) else {
        return render(
            &state,
            chrome,
            htmx,
            StatusCode::UNPROCESSABLE_ENTITY,
            hub,
            Feedback { form, errors, notice: None },
        )
        .await;
    };
    match settings::add_member(&state.db, hub.id, actor.id, role.as_str()).await? {
        MembershipChange::Done => {
            tracing::info!(
                hub = hub.slug,
                member = actor.id,
                role = role.as_str(),
                actor = chrome.viewer.actor_id,
                "member added"
            );
            Ok(redirect(htmx, &members_url(&hub)).finish())
        }
        _ => {
            errors.add("handle", format!("{handle} is already a member; change their role in the list."));
            render(&state, chrome, htmx, StatusCode::UNPROCESSABLE_ENTITY, hub, Feedback { form, errors, notice: None })
                .await
        }
    }
}

/// Changes a role (`role: Some`) or removes the member, and answers with what happened.
async fn change(
    state: &AppState,
    chrome: Chrome,
    htmx: Htmx,
    hub_slug: &str,
    actor_id: i64,
    role: Option<Role>,
) -> Result<HttpResponse, AppError> {
    // Called after the form is read: an unknown role is 400 for everybody.
    let InHub { hub, access, .. } = InHub::<Manage>::resolve(state, hub_slug, &chrome.viewer).await?;
    let chrome = chrome.in_hub(&access);
    match settings::change_member(&state.db, hub.id, actor_id, role.map(Role::as_str)).await? {
        MembershipChange::Done => {
            tracing::info!(
                hub = hub.slug,
                member = actor_id,
                role = role.map(Role::as_str),
                actor = chrome.viewer.actor_id,
                "membership changed"
            );
            Ok(redirect(htmx, &members_url(&hub)).finish())
        }
        MembershipChange::NotMember | MembershipChange::AlreadyMember => Err(AppError::NotFound("member")),
        MembershipChange::LastOperator => {
            let notice = format!(
                "{} needs at least one operator: make someone else an operator before {} this one.",
                hub.name,
                if role.is_some() { "changing the role of" } else { "removing" }
            );
            let feedback = Feedback { notice: Some(notice), ..Feedback::default() };
            render(state, chrome, htmx, StatusCode::UNPROCESSABLE_ENTITY, hub, feedback).await
        }
    }
}

#[post("/hubs/{hub_slug}/settings/members/{actor_id}")]
async fn set_role(
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    form: web::Form<RoleForm>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (hub_slug, actor_id) = path.into_inner();
    let role = Role::parse(&form.role).ok_or_else(|| AppError::BadRequest("unknown role".into()))?;
    change(&state, chrome, htmx, &hub_slug, actor_id, Some(role)).await
}

#[post("/hubs/{hub_slug}/settings/members/{actor_id}/remove")]
async fn remove(
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (hub_slug, actor_id) = path.into_inner();
    change(&state, chrome, htmx, &hub_slug, actor_id, None).await
}

/// Mounts the member settings.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list).service(add).service(set_role).service(remove);
}
