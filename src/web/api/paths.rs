//! What the API's routes read from their path and query alike: the widget an embed key names
//! (for the caller's credential, then as the caller reads it), a page's cursor and its size.

use super::caller::Caller;
use super::error::ApiError;
use crate::AppState;
use crate::db::api::{self, Tx, WidgetInfo};
use crate::db::widgets::{self as widget_store, Widget};
use crate::db::{StoreError, annotations::Cursor};

/// The widget the embed key in the path names, if the caller's credential may address it.
/// Looked up as the server: this decides authentication and CORS, not what is read.
pub async fn path_widget(state: &AppState, caller: &Caller, embed_key: &str) -> Result<Widget, ApiError> {
    let widget = match widget_store::by_embed_key(&state.db, embed_key).await {
        Ok(widget) => widget,
        Err(StoreError::NotFound) => return Err(ApiError::NotFound("widget")),
        Err(e) => return Err(e.into()),
    };
    caller.confine(&widget)?;
    Ok(widget)
}

/// The widget as the caller may read it, inside the caller's transaction; 404 when they may not.
pub async fn readable_widget(tx: &mut Tx, caller: &Caller, embed_key: &str) -> Result<WidgetInfo, ApiError> {
    api::widget_by_key(tx, embed_key, caller.widget_filter().as_ref()).await?.ok_or(ApiError::NotFound("widget"))
}

/// Parses a pagination cursor (`<ms>-<id>`).
pub fn parse_cursor(param: Option<&str>) -> Result<Option<Cursor>, ApiError> {
    // An empty cursor is the first page (as a client that sends back a null `next_cursor` does).
    param
        .filter(|p| !p.is_empty())
        .map(|p| Cursor::parse(p).ok_or_else(|| ApiError::BadRequest("invalid cursor".into())))
        .transpose()
}

/// A page size: 1 to 200, 50 when not given.
pub fn parse_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(50),
        Some(n) if (1..=200).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::BadRequest("limit must be between 1 and 200".into())),
    }
}
