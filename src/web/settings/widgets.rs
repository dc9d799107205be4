//! `/hubs/{hub}/settings/widgets`: operators create, edit and archive widgets, rotate the
//! embed secret (shown once) and copy the embed snippet.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use askama::Template;
use serde::Deserialize;

use super::forms::{self, FieldErrors};
use crate::AppState;
use crate::access::WidgetScope;
use crate::db::StoreError;
use crate::db::hubs::Hub;
use crate::db::settings::{self, Member, WidgetFields, WidgetListing};
use crate::db::widgets::{self, NewWidget, Widget};
use crate::error::AppError;
use crate::web::access::{InHub, Manage};
use crate::web::chrome::Chrome;
use crate::web::login::redirect;
use crate::web::render::{self, Htmx};

/// The widget form as typed.
#[derive(Debug, Clone, Deserialize)]
pub struct WidgetForm {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub slug: String,
    #[serde(default)]
    pub description: String,
    /// An actor id, or empty for no owner.
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub policy_scope: String,
    #[serde(default)]
    pub allowed_origins: String,
}

impl Default for WidgetForm {
    fn default() -> Self {
        Self {
            name: String::new(),
            slug: String::new(),
            description: String::new(),
            owner: String::new(),
            policy_scope: "members".into(),
            allowed_origins: String::new(),
        }
    }
}

impl WidgetForm {
    fn from_widget(w: &Widget) -> Self {
        Self {
            name: w.name.clone(),
            slug: w.slug.clone(),
            description: w.description.clone(),
            owner: w.owner_id.map(|id| id.to_string()).unwrap_or_default(),
            policy_scope: w.policy_scope.as_str().to_owned(),
            allowed_origins: w.allowed_origins.split_whitespace().collect::<Vec<_>>().join("\n"),
        }
    }
}

/// A valid widget form.
struct ValidWidget {
    name: String,
    slug: String,
    description: String,
    owner_id: Option<i64>,
    policy_scope: String,
    allowed_origins: String,
}

/// Checks every field; the owner must be a member of the hub.
fn validate(form: &WidgetForm, members: &[Member]) -> Result<ValidWidget, FieldErrors> {
    let mut errors = FieldErrors::default();
    let name = errors.check("name", forms::name(&form.name, 100));
    let slug = errors.check("slug", forms::slug(&form.slug));
    let description = errors.check("description", forms::description(&form.description, 2000));
    let owner_id = match form.owner.trim() {
        "" => Some(None),
        raw => match raw.parse::<i64>() {
            Ok(id) if members.iter().any(|m| m.actor_id == id) => Some(Some(id)),
            _ => {
                errors.add("owner", "Choose a member of this hub, or nobody.");
                None
            }
        },
    };
    let policy_scope = if WidgetScope::parse(&form.policy_scope).is_some() {
        Some(form.policy_scope.clone())
    } else {
        errors.add("policy_scope", "Choose public, members or private.");
        None
    };
    let allowed_origins = errors.check("allowed_origins", forms::origins(&form.allowed_origins));
    match (name, slug, description, owner_id, policy_scope, allowed_origins) {
        (Some(name), Some(slug), Some(description), Some(owner_id), Some(policy_scope), Some(allowed_origins))
            if errors.is_empty() =>
        {
            Ok(ValidWidget { name, slug, description, owner_id, policy_scope, allowed_origins })
        }
        _ => Err(errors),
    }
}

#[derive(Template)]
#[template(path = "pages/settings/widgets.html", blocks = ["content"])]
struct ListPage {
    chrome: Chrome,
    hub: Hub,
    widgets: Vec<WidgetListing>,
}

/// The create form (`widget: None`) or the edit page of one widget.
#[derive(Template)]
#[template(path = "pages/settings/widget.html", blocks = ["content"])]
struct WidgetPage {
    chrome: Chrome,
    hub: Hub,
    widget: Option<Widget>,
    form: WidgetForm,
    errors: FieldErrors,
    members: Vec<Member>,
    scopes: [&'static str; 3],
    /// The embed secret, only right after creation or rotation.
    revealed_secret: Option<String>,
    /// The embed snippet to copy.
    snippet: String,
    /// Where the form posts: the widget, or the list to create one.
    form_action: String,
    /// The confirmation after a save (`?saved=1` on the redirect back here).
    notice: Option<&'static str>,
}

/// `?saved=1`: the page was reached by the redirect after a successful save.
#[derive(Debug, serde::Deserialize)]
struct SavedQuery {
    saved: Option<String>,
}

/// This server's origin as the browser sees it, for the snippet.
fn public_origin(req: &HttpRequest) -> String {
    let info = req.connection_info();
    format!("{}://{}", info.scheme(), info.host())
}

/// The one script tag that embeds a widget.
pub fn snippet(origin: &str, embed_key: &str) -> String {
    format!(r#"<script src="{origin}/embed.js" data-ihf-widget="{embed_key}" async></script>"#)
}

impl WidgetPage {
    /// The page of `widget` (or the create form) with the stored values in the form.
    fn new(req: &HttpRequest, chrome: Chrome, hub: Hub, widget: Option<Widget>, members: Vec<Member>) -> Self {
        let title = match &widget {
            Some(w) => format!("{} · {} · settings", w.name, hub.name),
            None => format!("New widget · {} · settings", hub.name),
        };
        let snippet = widget.as_ref().map(|w| snippet(&public_origin(req), &w.embed_key)).unwrap_or_default();
        let form_action = match &widget {
            Some(w) => format!("/hubs/{}/settings/widgets/{}", hub.slug, w.slug),
            None => format!("/hubs/{}/settings/widgets", hub.slug),
        };
        let form = widget.as_ref().map(WidgetForm::from_widget).unwrap_or_default();
        Self {
            chrome: chrome.titled(title),
            hub,
            widget,
            form,
            errors: FieldErrors::default(),
            members,
            scopes: WidgetScope::names(),
            revealed_secret: None,
            notice: None,
            snippet,
            form_action,
        }
    }

    /// The form as typed, with its mistakes.
    fn with_mistakes(mut self, form: WidgetForm, errors: FieldErrors) -> Self {
        self.form = form;
        self.errors = errors;
        self
    }

    /// Shows the embed secret (right after creation or rotation).
    fn revealing(mut self, secret: String) -> Self {
        self.revealed_secret = Some(secret);
        self
    }

    fn respond(&self, htmx: Htmx, status: StatusCode) -> Result<HttpResponse, AppError> {
        render::page_with_status(htmx, status, self, |p| p.as_content().render())
    }
}

async fn widget_of(state: &AppState, hub: &Hub, slug: &str) -> Result<Widget, AppError> {
    match widgets::by_slug(&state.db, hub.id, slug).await {
        Ok(widget) => Ok(widget),
        Err(StoreError::NotFound) => Err(AppError::NotFound("widget")),
        Err(e) => Err(e.into()),
    }
}

fn slug_taken(slug: &str) -> FieldErrors {
    let mut errors = FieldErrors::default();
    errors.add("slug", format!("Another widget of this hub already uses the slug {slug} (perhaps archived)."));
    errors
}

#[get("/hubs/{hub_slug}/settings/widgets")]
async fn list(
    state: web::Data<AppState>,
    InHub { hub, access, .. }: InHub<Manage>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let chrome = chrome.in_hub(&access);
    let widgets = settings::widgets(&state.db, hub.id).await?;
    let page = ListPage { chrome: chrome.titled(format!("Widgets · {} · settings", hub.name)), hub, widgets };
    render::page(htmx, &page, |p| p.as_content().render())
}

#[get("/hubs/{hub_slug}/settings/widgets/new")]
async fn new_form(
    req: HttpRequest,
    state: web::Data<AppState>,
    InHub { hub, access, .. }: InHub<Manage>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let chrome = chrome.in_hub(&access);
    let members = settings::members(&state.db, hub.id).await?;
    WidgetPage::new(&req, chrome, hub, None, members).respond(htmx, StatusCode::OK)
}

#[post("/hubs/{hub_slug}/settings/widgets")]
async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<WidgetForm>,
    InHub { hub, access, .. }: InHub<Manage>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let chrome = chrome.in_hub(&access);
    let members = settings::members(&state.db, hub.id).await?;
    let form = form.into_inner();
    let valid = match validate(&form, &members) {
        Ok(valid) => valid,
        Err(errors) => {
            let page = WidgetPage::new(&req, chrome, hub, None, members).with_mistakes(form, errors);
            return page.respond(htmx, StatusCode::UNPROCESSABLE_ENTITY);
        }
    };
    let new = NewWidget {
        hub_id: hub.id,
        slug: &valid.slug,
        name: &valid.name,
        description: &valid.description,
        owner_id: valid.owner_id,
        policy_scope: &valid.policy_scope,
        allowed_origins: &valid.allowed_origins,
    };
    match widgets::create(&state.db, &new).await {
        Ok(widget) => {
            tracing::info!(hub = hub.slug, widget = widget.slug, actor = chrome.viewer.actor_id, "widget created");
            let url = format!("/hubs/{}/settings/widgets/{}", hub.slug, widget.slug);
            let secret = widget.embed_secret.clone();
            let page = WidgetPage::new(&req, chrome, hub, Some(widget), members).revealing(secret);
            let mut response = page.respond(htmx, StatusCode::CREATED)?;
            super::push_url(&mut response, &url);
            Ok(response)
        }
        Err(StoreError::SlugTaken) => {
            let page = WidgetPage::new(&req, chrome, hub, None, members).with_mistakes(form, slug_taken(&valid.slug));
            page.respond(htmx, StatusCode::UNPROCESSABLE_ENTITY)
        }
        Err(e) => Err(e.into()),
    }
}

#[get("/hubs/{hub_slug}/settings/widgets/{widget_slug}")]
async fn edit_form(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<SavedQuery>,
    InHub { hub, access, .. }: InHub<Manage>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (_, widget_slug) = path.into_inner();
    let chrome = chrome.in_hub(&access);
    let widget = widget_of(&state, &hub, &widget_slug).await?;
    let members = settings::members(&state.db, hub.id).await?;
    let mut page = WidgetPage::new(&req, chrome, hub, Some(widget), members);
    page.notice = query.saved.as_ref().map(|_| "Widget settings saved.");
    page.respond(htmx, StatusCode::OK)
}

#[post("/hubs/{hub_slug}/settings/widgets/{widget_slug}")]
async fn update(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    form: web::Form<WidgetForm>,
    InHub { hub, access, .. }: InHub<Manage>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (_, widget_slug) = path.into_inner();
    let chrome = chrome.in_hub(&access);
    let widget = widget_of(&state, &hub, &widget_slug).await?;
    let members = settings::members(&state.db, hub.id).await?;
    let form = form.into_inner();
    let (hub_id, widget_id) = (hub.id, widget.id);
    let page = WidgetPage::new(&req, chrome, hub, Some(widget), members);
    let valid = match validate(&form, &page.members) {
        Ok(valid) => valid,
        Err(errors) => return page.with_mistakes(form, errors).respond(htmx, StatusCode::UNPROCESSABLE_ENTITY),
    };
    let fields = WidgetFields {
        slug: &valid.slug,
        name: &valid.name,
        description: &valid.description,
        owner_id: valid.owner_id,
        policy_scope: &valid.policy_scope,
        allowed_origins: &valid.allowed_origins,
    };
    match settings::update_widget(&state.db, hub_id, widget_id, &fields).await {
        Ok(()) => {
            tracing::info!(
                hub = page.hub.slug,
                widget = valid.slug,
                actor = page.chrome.viewer.actor_id,
                "widget updated"
            );
            Ok(redirect(htmx, &format!("/hubs/{}/settings/widgets/{}?saved=1", page.hub.slug, valid.slug)).finish())
        }
        Err(StoreError::SlugTaken) => {
            page.with_mistakes(form, slug_taken(&valid.slug)).respond(htmx, StatusCode::UNPROCESSABLE_ENTITY)
        }
        Err(e) => Err(e.into()),
    }
}

#[post("/hubs/{hub_slug}/settings/widgets/{widget_slug}/rotate-secret")]
async fn rotate_secret(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    InHub { hub, access, .. }: InHub<Manage>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (_, widget_slug) = path.into_inner();
    let chrome = chrome.in_hub(&access);
    let mut widget = widget_of(&state, &hub, &widget_slug).await?;
    let secret = settings::rotate_embed_secret(&state.db, hub.id, widget.id).await?;
    tracing::info!(hub = hub.slug, widget = widget.slug, actor = chrome.viewer.actor_id, "embed secret rotated");
    widget.embed_secret.clone_from(&secret);
    let members = settings::members(&state.db, hub.id).await?;
    WidgetPage::new(&req, chrome, hub, Some(widget), members).revealing(secret).respond(htmx, StatusCode::OK)
}

#[post("/hubs/{hub_slug}/settings/widgets/{widget_slug}/{action:archive|restore}")]
async fn archive(
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
    InHub { hub, access, .. }: InHub<Manage>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (_, widget_slug, action) = path.into_inner();
    let chrome = chrome.in_hub(&access);
    let widget = widget_of(&state, &hub, &widget_slug).await?;
    settings::set_widget_archived(&state.db, hub.id, widget.id, action == "archive").await?;
    tracing::info!(
        hub = hub.slug,
        widget = widget.slug,
        action,
        actor = chrome.viewer.actor_id,
        "widget archive state changed"
    );
    Ok(redirect(htmx, &format!("/hubs/{}/settings/widgets/{}", hub.slug, widget.slug)).finish())
}

/// Mounts the widget settings (`new` before `{widget_slug}`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list)
        .service(new_form)
        .service(create)
        .service(edit_form)
        .service(update)
        .service(rotate_secret)
        .service(archive);
}
