//! Regions requested on their own URL: the fragment for htmx, or the fragment inside the
//! layout for a plain request (so every region URL is also a readable page without JavaScript).

use actix_web::HttpResponse;
use askama::Template;

use crate::error::AppError;
use crate::web::chrome::Chrome;
use crate::web::render::{self, Htmx};

#[derive(Template)]
#[template(path = "pages/region.html", blocks = ["content"])]
struct RegionPage<'a, T: Template> {
    chrome: Chrome,
    region: &'a T,
}

/// Answers a region request with the fragment or the fragment-in-layout page.
pub fn respond<T: Template>(htmx: Htmx, chrome: Chrome, region: &T) -> Result<HttpResponse, AppError> {
    if htmx.partial {
        return render::fragment(region);
    }
    let page = RegionPage { chrome, region };
    render::page(htmx, &page, |p| p.as_content().render())
}
