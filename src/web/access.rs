//! Resolving a hub from the URL together with what the viewer may do in it.

use crate::AppState;
use crate::access::HubAccess;
use crate::auth::Viewer;
use crate::db::StoreError;
use crate::db::hubs::{self, Hub, HubKey};
use crate::error::AppError;

/// The live hub `slug` and the viewer's access to it; unknown or archived hubs are 404.
pub async fn hub(state: &AppState, slug: &str, viewer: &Viewer) -> Result<(Hub, HubAccess), AppError> {
    hub_by(state, HubKey::Slug(slug), viewer).await
}

/// [`hub`] by id (live regions name their hub by id).
pub async fn hub_by_id(state: &AppState, id: i64, viewer: &Viewer) -> Result<(Hub, HubAccess), AppError> {
    hub_by(state, HubKey::Id(id), viewer).await
}

/// The hub and the viewer's role in it come from one query.
async fn hub_by(state: &AppState, key: HubKey<'_>, viewer: &Viewer) -> Result<(Hub, HubAccess), AppError> {
    match hubs::with_role(&state.db, key, viewer.actor_id).await {
        Ok(found) if found.hub.archived_at.is_none() => {
            let access = HubAccess::with_role(viewer, found.role.as_deref());
            Ok((found.hub, access))
        }
        Ok(_) | Err(StoreError::NotFound) => Err(AppError::NotFound("hub")),
        Err(e) => Err(e.into()),
    }
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

/// [`member_hub`] by id.
pub async fn member_hub_by_id(state: &AppState, id: i64, viewer: &Viewer) -> Result<(Hub, HubAccess), AppError> {
    let (hub, access) = hub_by_id(state, id, viewer).await?;
    require(access.can_view_hub(), viewer)?;
    Ok((hub, access))
}
