//! Finding what a widget page's URL names: the widget's path, the hub and widget of a URL or of
//! a live region with the viewer's access, and one annotation of the widget. The reply and
//! support actions (`web::replies`) find their annotation here too.

use crate::AppState;
use crate::auth::Viewer;
use crate::auth::policy::HubAccess;
use crate::db::StoreError;
use crate::db::annotations::{self, ThreadItem};
use crate::db::hubs::{self, Hub};
use crate::db::widgets::{self, Widget};
use crate::error::AppError;
use crate::web::access;

/// The path of a widget's page; its other URLs hang below it.
pub fn widget_path(hub_slug: &str, widget_slug: &str) -> String {
    format!("/hubs/{hub_slug}/widgets/{widget_slug}")
}

/// The hub and widget of a URL with the viewer's access to the hub: 404 for an unknown hub or
/// widget.
pub async fn hub_widget(
    state: &AppState,
    hub_slug: &str,
    widget_slug: &str,
    viewer: &Viewer,
) -> Result<(Hub, HubAccess, Option<Widget>), AppError> {
    let (hub, access) = access::hub(state, hub_slug, viewer).await?;
    let widget = match widgets::by_slug(&state.db, hub.id, widget_slug).await {
        Ok(widget) => Some(widget),
        Err(StoreError::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    Ok((hub, access, widget))
}

/// [`hub_widget`] for viewers who may read the widget: 404 when it does not exist, 401 for
/// anonymous visitors and 403 for others who may not read it.
pub async fn readable_widget(
    state: &AppState,
    hub_slug: &str,
    widget_slug: &str,
    viewer: &Viewer,
) -> Result<(Hub, HubAccess, Widget), AppError> {
    let (hub, access, widget) = hub_widget(state, hub_slug, widget_slug, viewer).await?;
    let widget = widget.ok_or(AppError::NotFound("widget"))?;
    access::require(access.can_read_widget(&widget), viewer)?;
    Ok((hub, access, widget))
}

/// The hub and widget of a live region, with the viewer's access: 404 when either is gone or
/// they do not belong together.
pub async fn widget_by_ids(
    state: &AppState,
    hub_id: i64,
    widget_id: i64,
    viewer: &Viewer,
) -> Result<(Hub, HubAccess, Widget), AppError> {
    let hub = hubs::by_id(&state.db, hub_id).await?;
    let (hub, access) = access::hub(state, &hub.slug, viewer).await?;
    let widget = widgets::by_id(&state.db, widget_id).await?;
    if widget.hub_id != hub.id {
        return Err(AppError::NotFound("widget"));
    }
    Ok((hub, access, widget))
}

/// The annotation `id` of the URL's widget, if the viewer may read it (404 otherwise).
pub(crate) async fn annotation(
    state: &AppState,
    hub_slug: &str,
    widget_slug: &str,
    id: i64,
    viewer: &Viewer,
) -> Result<(String, HubAccess, Widget, ThreadItem), AppError> {
    let (hub, access, widget) = hub_widget(state, hub_slug, widget_slug, viewer).await?;
    let widget = widget.ok_or(AppError::NotFound("widget"))?;
    let item = match annotations::visible_on_widget(&state.db, viewer, widget.id, id).await {
        Ok(item) => item,
        Err(StoreError::NotFound) => {
            // Like the widget page: 401/403 for those who may not read the widget at all.
            access::require(access.can_read_widget(&widget), viewer)?;
            return Err(AppError::NotFound("annotation"));
        }
        Err(e) => return Err(e.into()),
    };
    Ok((widget_path(&hub.slug, &widget.slug), access, widget, item))
}
