//! Resolving a hub from the URL together with what the viewer may do in it.

use crate::AppState;
use crate::auth::Viewer;
use crate::auth::policy::HubAccess;
use crate::db::StoreError;
use crate::db::hubs::{self, Hub};
use crate::error::AppError;

/// The live hub `slug` and the viewer's access to it; unknown or archived hubs are 404.
pub async fn hub(state: &AppState, slug: &str, viewer: &Viewer) -> Result<(Hub, HubAccess), AppError> {
    let hub = match hubs::by_slug(&state.db, slug).await {
        Ok(hub) if hub.archived_at.is_none() => hub,
        Ok(_) | Err(StoreError::NotFound) => return Err(AppError::NotFound("hub")),
        Err(e) => return Err(e.into()),
    };
    let access = HubAccess::load(&state.db, viewer, hub.id).await?;
    Ok((hub, access))
}

/// `Ok` when `allowed`; otherwise 401 (sign in) for anonymous viewers and 403 for others.
pub fn require(allowed: bool, viewer: &Viewer) -> Result<(), AppError> {
    match (allowed, viewer.is_signed_in()) {
        (true, _) => Ok(()),
        (false, false) => Err(AppError::Unauthorized),
        (false, true) => Err(AppError::Forbidden),
    }
}

/// The hub, for viewers who may see its dashboard.
pub async fn member_hub(state: &AppState, slug: &str, viewer: &Viewer) -> Result<(Hub, HubAccess), AppError> {
    let (hub, access) = hub(state, slug, viewer).await?;
    require(access.can_view_hub(), viewer)?;
    Ok((hub, access))
}
