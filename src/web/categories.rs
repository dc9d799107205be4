//! Category settings: operators add, rename, recolour, reorder and archive a hub's categories.
//! Archived categories stay on the annotations that carry them but are no longer offered.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use askama::Template;
use serde::Deserialize;

use crate::AppState;
use crate::db::StoreError;
use crate::db::categories::{self, Category, CategoryFields, PALETTE};
use crate::db::hubs::Hub;
use crate::error::AppError;
use crate::web::access::{InHub, Manage};
use crate::web::chrome::Chrome;
use crate::web::login::redirect;
use crate::web::render::{self, Htmx};

/// The longest label.
const LABEL_MAX: usize = 40;
/// The longest slug (the schema's limit).
const SLUG_MAX: usize = 32;

/// A category form as typed, with a message per field that is wrong.
#[derive(Debug, Clone, Default)]
pub struct CategoryForm {
    pub id: Option<i64>,
    pub slug: String,
    pub label: String,
    pub colour: String,
    pub position: String,
    pub archived: bool,
    pub slug_error: Option<String>,
    pub label_error: Option<String>,
    pub colour_error: Option<String>,
    pub position_error: Option<String>,
}

impl CategoryForm {
    fn from_category(c: &Category) -> Self {
        Self {
            id: Some(c.id),
            slug: c.slug.clone(),
            label: c.label.clone(),
            colour: c.colour.clone(),
            position: c.position.to_string(),
            archived: c.archived_at.is_some(),
            ..Self::default()
        }
    }

    fn has_errors(&self) -> bool {
        self.slug_error.is_some()
            || self.label_error.is_some()
            || self.colour_error.is_some()
            || self.position_error.is_some()
    }

    /// The id prefix of this form's fields (`new` or `cat-7`).
    pub fn key(&self) -> String {
        self.id.map_or_else(|| "new".to_owned(), |id| format!("cat-{id}"))
    }
}

#[derive(Deserialize)]
struct CategoryInput {
    #[serde(default)]
    slug: String,
    #[serde(default)]
    label: String,
    #[serde(default)]
    colour: String,
    #[serde(default)]
    position: String,
}

/// Checks the input; the form keeps what was typed either way.
fn validate(id: Option<i64>, archived: bool, input: CategoryInput) -> (CategoryForm, Option<i64>) {
    let mut form = CategoryForm {
        id,
        slug: input.slug.trim().to_owned(),
        label: input.label.trim().to_owned(),
        colour: input.colour.trim().to_owned(),
        position: input.position.trim().to_owned(),
        archived,
        ..CategoryForm::default()
    };
    if form.slug.is_empty() || form.slug.len() > SLUG_MAX {
        form.slug_error = Some(format!("Use 1 to {SLUG_MAX} characters."));
    } else if !form.slug.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
        form.slug_error = Some("Use lowercase letters, digits and dashes only.".into());
    }
    if form.label.is_empty() || form.label.chars().count() > LABEL_MAX {
        form.label_error = Some(format!("Use 1 to {LABEL_MAX} characters."));
    }
    if !PALETTE.contains(&form.colour.as_str()) {
        form.colour_error = Some("Choose a colour from the list.".into());
    }
    let position = match form.position.as_str() {
        "" if id.is_none() => None,
        text => match text.parse::<i64>() {
            Ok(p) if (0..=9999).contains(&p) => Some(p),
            _ => {
                form.position_error = Some("Use a whole number from 0 to 9999.".into());
                None
            }
        },
    };
    (form, position)
}

#[derive(Template)]
#[template(path = "pages/categories.html", blocks = ["content"])]
struct CategoriesPage {
    chrome: Chrome,
    hub: Hub,
    rows: Vec<CategoryForm>,
    new: CategoryForm,
}

/// Renders the page, with `edited` replacing its row (or the new-category form) as typed.
async fn page(
    state: &AppState,
    chrome: Chrome,
    htmx: Htmx,
    hub: Hub,
    edited: Option<CategoryForm>,
) -> Result<HttpResponse, AppError> {
    let categories = categories::list(&state.db, hub.id, true).await?;
    let mut new = CategoryForm { colour: PALETTE[5].to_owned(), ..CategoryForm::default() };
    let mut rows: Vec<CategoryForm> = categories.iter().map(CategoryForm::from_category).collect();
    let status = if edited.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    match edited {
        Some(form) if form.id.is_none() => new = form,
        Some(form) => {
            if let Some(row) = rows.iter_mut().find(|r| r.id == form.id) {
                *row = form;
            }
        }
        None => {}
    }
    let chrome = chrome.titled(format!("Categories · {}", hub.name));
    let page = CategoriesPage { chrome, hub, rows, new };
    render::page_with_status(htmx, status, &page, |p| p.as_content().render())
}

fn back(htmx: Htmx, hub: &Hub) -> HttpResponse {
    redirect(htmx, &format!("/hubs/{}/settings/categories", hub.slug)).finish()
}

#[get("/hubs/{hub_slug}/settings/categories")]
async fn settings(
    state: web::Data<AppState>,
    InHub { hub, access, .. }: InHub<Manage>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let chrome = chrome.in_hub(&access);
    page(&state, chrome, htmx, hub, None).await
}

/// Saves a valid form, or answers 422 with it; a taken slug is a field error too.
async fn save(
    state: &AppState,
    chrome: Chrome,
    htmx: Htmx,
    hub: Hub,
    mut form: CategoryForm,
    position: Option<i64>,
) -> Result<HttpResponse, AppError> {
    if form.has_errors() {
        return page(state, chrome, htmx, hub, Some(form)).await;
    }
    let position = match position {
        Some(p) => p,
        None => categories::next_position(&state.db, hub.id).await?,
    };
    let fields = CategoryFields { slug: &form.slug, label: &form.label, colour: &form.colour, position };
    let saved = match form.id {
        None => categories::create(&state.db, hub.id, &fields).await.map(|_| ()),
        Some(id) => categories::update(&state.db, hub.id, id, &fields).await,
    };
    match saved {
        Ok(()) => Ok(back(htmx, &hub)),
        Err(StoreError::SlugTaken) => {
            form.slug_error = Some("Another category of this hub has this slug.".into());
            page(state, chrome, htmx, hub, Some(form)).await
        }
        Err(e) => Err(e.into()),
    }
}

#[post("/hubs/{hub_slug}/settings/categories")]
async fn create(
    state: web::Data<AppState>,
    form: web::Form<CategoryInput>,
    InHub { hub, access, .. }: InHub<Manage>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let chrome = chrome.in_hub(&access);
    let (form, position) = validate(None, false, form.into_inner());
    save(&state, chrome, htmx, hub, form, position).await
}

#[post("/hubs/{hub_slug}/settings/categories/{id}")]
async fn update(
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    form: web::Form<CategoryInput>,
    InHub { hub, access, .. }: InHub<Manage>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (_, id) = path.into_inner();
    let chrome = chrome.in_hub(&access);
    let current = categories::list(&state.db, hub.id, true)
        .await?
        .into_iter()
        .find(|c| c.id == id)
        .ok_or(AppError::NotFound("category"))?;
    let (form, position) = validate(Some(id), current.archived_at.is_some(), form.into_inner());
    save(&state, chrome, htmx, hub, form, position).await
}

#[post("/hubs/{hub_slug}/settings/categories/{id}/{action}")]
async fn archive(
    state: web::Data<AppState>,
    path: web::Path<(String, i64, String)>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (slug, id, action) = path.into_inner();
    let archived = match action.as_str() {
        "archive" => true,
        "restore" => false,
        _ => return Err(AppError::NotFound("page")),
    };
    // The action first: an unknown one is 404 for everybody.
    let InHub { hub, .. } = InHub::<Manage>::resolve(&state, &slug, &chrome.viewer).await?;
    match categories::set_archived(&state.db, hub.id, id, archived).await {
        Ok(()) => Ok(back(htmx, &hub)),
        Err(crate::db::StoreError::NotFound) => Err(AppError::NotFound("category")),
        Err(e) => Err(e.into()),
    }
}

/// Mounts the category settings.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(settings).service(create).service(archive).service(update);
}
