//! What the layout needs on every page: title, the signed-in person, CSRF token, asset version.

use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, web};

use crate::AppState;
use crate::auth::Viewer;
use crate::auth::middleware::AnonCsrf;

/// The layout's context, extracted from the request.
#[derive(Debug, Clone)]
pub struct Chrome {
    pub title: String,
    pub viewer: Viewer,
    pub csrf_token: String,
    pub asset_v: String,
    /// The page's live stream URL, when it has live regions.
    pub live_url: Option<String>,
    /// The viewer's role in the hub the page belongs to, shown in the header.
    pub hub_role: Option<&'static str>,
    /// The signed-in person's unread notifications (the bell); `None` for anonymous viewers.
    pub unread: Option<i64>,
}

impl Chrome {
    /// The same chrome with a page title.
    pub fn titled(mut self, title: impl Into<String>) -> Self {
        self.title = title.into();
        self
    }

    /// The same chrome with a live stream.
    pub fn live(mut self, url: impl Into<String>) -> Self {
        let mut url = url.into();
        // The bell rides on every live page's stream (its region is the person's own).
        // Last, so the page's own regions keep their place in the URL.
        if let Some(actor_id) = self.viewer.actor_id
            && let Some(at) = url.find("regions=")
        {
            let start = at + "regions=".len();
            let end = url[start..].find('&').map_or(url.len(), |i| start + i);
            let bell = crate::live::Region::Bell { actor_id }.key();
            let joined = if end > start { format!(",{bell}") } else { bell };
            url.insert_str(end, &joined);
        }
        self.live_url = Some(url);
        self
    }

    /// The same chrome showing the viewer's role in the page's hub.
    pub fn in_hub(mut self, access: &crate::access::HubAccess) -> Self {
        self.hub_role = match access.role {
            Some(role) => Some(role.as_str()),
            None if access.is_admin => Some("admin"),
            None => None,
        };
        self
    }

    /// Builds the chrome from a request (also used by the error pages).
    pub fn from_request_parts(req: &HttpRequest) -> Self {
        let asset_v =
            req.app_data::<web::Data<AppState>>().map(|state| state.assets.version.clone()).unwrap_or_default();
        let session = req.extensions().get::<crate::auth::Session>().cloned();
        let (viewer, csrf_token, unread) = match session {
            Some(session) => (session.viewer, session.csrf_token, Some(session.unread)),
            None => {
                let token = req.extensions().get::<AnonCsrf>().map(|t| t.0.clone()).unwrap_or_default();
                (Viewer::anonymous(), token, None)
            }
        };
        Self { title: String::new(), viewer, csrf_token, asset_v, live_url: None, hub_role: None, unread }
    }
}

/// The request's viewer: the session's person, or anonymous.
pub fn viewer(req: &HttpRequest) -> Viewer {
    req.extensions().get::<crate::auth::Session>().map(|session| session.viewer.clone()).unwrap_or_default()
}

impl FromRequest for Chrome {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Self::from_request_parts(req)))
    }
}
