//! Resolving a hub from the URL together with what the viewer may do in it.
//!
//! Handlers of `/hubs/{hub_slug}/…` take [`InHub<N>`]: the hub, the viewer's access, and the
//! need `N` checked (404 for an unknown or archived hub, then 401 for anonymous viewers and 403
//! for others who lack it). The functions below are the same look-up for callers that know the
//! hub by id or decide the need themselves.

use std::marker::PhantomData;

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use futures_util::future::LocalBoxFuture;
use serde::Deserialize;

use crate::AppState;
use crate::access::HubAccess;
use crate::auth::Viewer;
use crate::db::StoreError;
use crate::db::hubs::{self, Hub, HubKey};
use crate::error::AppError;
use crate::web::chrome;

/// What a handler needs the viewer to be allowed in the hub (one of [`HubAccess`]'s rules).
pub trait Need {
    /// Whether `access` meets the need.
    fn allowed(access: &HubAccess) -> bool;
}

/// Declares a marker type per need, each naming its [`HubAccess`] rule.
macro_rules! needs {
    ($($(#[$doc:meta])* $name:ident => $rule:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name;

        impl Need for $name {
            fn allowed(access: &HubAccess) -> bool {
                access.$rule()
            }
        }
    )*};
}

needs! {
    /// Members and administrators: the dashboard, the ledger, its proofs.
    View => can_view_hub;
    /// Triagers and operators: the triage board and its actions.
    Triage => can_triage;
    /// Triagers and operators: propose candidates, attach and remove evidence.
    Propose => can_propose;
    /// Operators: decide on candidates.
    Decide => can_decide;
    /// Operators: the hub's settings, categories, keys, webhooks, witnesses, roadmap switch.
    Manage => can_manage;
    /// Triagers and operators: the annotation exports.
    Export => can_export;
}

/// The hub of the request's `{hub_slug}` and the viewer's access to it, which meets `N`.
#[derive(Debug, Clone)]
pub struct InHub<N: Need> {
    pub hub: Hub,
    pub access: HubAccess,
    need: PhantomData<N>,
}

impl<N: Need> InHub<N> {
    /// The hub `slug` for `viewer`, who must meet `N`: for handlers that check something of
    /// the URL first (a format, an action) and so cannot take the extractor.
    pub async fn resolve(state: &AppState, slug: &str, viewer: &Viewer) -> Result<Self, AppError> {
        let (hub, access) = hub(state, slug, viewer).await?;
        require(N::allowed(&access), viewer)?;
        Ok(Self { hub, access, need: PhantomData })
    }
}

/// The `{hub_slug}` segment, decoded as `web::Path` decodes it.
#[derive(Deserialize)]
struct HubSlug {
    hub_slug: String,
}

impl<N: Need + 'static> FromRequest for InHub<N> {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let slug = req.match_info().load::<HubSlug>().map(|path| path.hub_slug);
        let viewer = chrome::viewer(req);
        Box::pin(async move {
            let state = state.ok_or_else(|| AppError::Unexpected(anyhow::anyhow!("no AppState for InHub")))?;
            let slug =
                slug.map_err(|e| AppError::Unexpected(anyhow::anyhow!("InHub on a route without {{hub_slug}}: {e}")))?;
            Self::resolve(&state, &slug, &viewer).await
        })
    }
}

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

/// The hub by id, for viewers who may see its dashboard (live regions).
pub async fn member_hub_by_id(state: &AppState, id: i64, viewer: &Viewer) -> Result<(Hub, HubAccess), AppError> {
    let (hub, access) = hub_by_id(state, id, viewer).await?;
    require(access.can_view_hub(), viewer)?;
    Ok((hub, access))
}
