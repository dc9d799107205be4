//! What the dispatcher asks of the surfaces that draw live regions: whether a viewer may have a
//! region and in which audience, and the region's HTML for that audience. The web layer
//! implements it (`web::live_regions`) and the app puts it in its state at start-up, so `live`
//! knows the regions' keys, dependencies and audiences but imports no page.

use futures_util::future::BoxFuture;

use super::region::{Audience, Region};
use crate::AppState;
use crate::auth::Viewer;
use crate::error::AppError;

/// The surfaces behind the live regions.
pub trait Surfaces: Send + Sync {
    /// Applies the access policy to `viewer` for `region` and says which audience they join:
    /// everyone in an audience is sent the same render, made for any one of them. An error
    /// (no access, hub gone) keeps them off the region.
    fn admit<'a>(
        &'a self,
        state: &'a AppState,
        region: &'a Region,
        viewer: &'a Viewer,
    ) -> BoxFuture<'a, Result<Audience, AppError>>;

    /// Renders `region` for `audience` as `viewer` (one of them), applying the access policy.
    fn render<'a>(
        &'a self,
        state: &'a AppState,
        region: &'a Region,
        viewer: &'a Viewer,
        audience: &'a Audience,
    ) -> BoxFuture<'a, Result<String, AppError>>;
}
