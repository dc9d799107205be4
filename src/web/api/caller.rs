//! Who is calling the data API: a hub API key, an embed token, a signed-in session, or nobody.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::{Method, header};
use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, web};

use super::error::ApiError;
use crate::AppState;
use crate::access::HubAccess;
use crate::auth::embed::{Refusal, Visitor};
use crate::auth::{Session, Viewer};
use crate::crypto;
use crate::db::api::RlsScope;
use crate::db::api_keys::{self, KeyHolder};
use crate::db::widgets::Widget;
use crate::db::{Backend, StoreError, actors, now_ms, sessions};

/// How a caller proved who they are.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A hub API key: the API acts as the operator who made it, confined to the hub.
    ApiKey { key: KeyHolder, viewer: Viewer },
    /// An embed token (IHF's visitor token or the host's sign-in token): one widget only.
    Visitor(Box<Visitor>),
    /// A signed-in person's session cookie; writes also need the `X-CSRF-Token` header.
    Session(Session),
}

/// The caller of an API request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub credential: Option<Credential>,
    /// The test hook (`TestHooks::rls_only`, PostgreSQL only): leave every access check of
    /// the application out, so only Row Level Security stands between the caller and the rows.
    pub rls_only: bool,
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { Self::resolve(&req).await })
    }
}

impl Caller {
    async fn resolve(req: &HttpRequest) -> Result<Self, ApiError> {
        let state = req
            .app_data::<web::Data<AppState>>()
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no application state")))?;
        let rls_only = state.test_hooks.rls_only && state.db.backend() == Backend::Postgres;
        let credential = match bearer(req) {
            Some(token) if token.starts_with(api_keys::PREFIX) => {
                let key = api_keys::authenticate(&state.db, &token)
                    .await?
                    .ok_or_else(|| ApiError::Unauthorized("this API key is not valid: unknown or revoked".into()))?;
                let actor = actors::by_id(&state.db, key.created_by).await?;
                let viewer = Viewer {
                    actor_id: Some(actor.id),
                    handle: actor.handle,
                    display_name: actor.display_name,
                    is_admin: actor.is_admin == 1,
                };
                Some(Credential::ApiKey { key, viewer })
            }
            Some(token) => match Visitor::from_token(state, &token, None).await {
                Ok(visitor) => Some(Credential::Visitor(Box::new(visitor))),
                Err(Refusal::Store(e)) => return Err(e.into()),
                Err(refusal) => return Err(ApiError::Unauthorized(format!("embed token refused: {refusal}"))),
            },
            None => req.extensions().get::<Session>().cloned().map(Credential::Session),
        };
        let caller = Self { credential, rls_only };
        if !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
            caller.check_csrf(req)?;
        }
        Ok(caller)
    }

    /// The credential, or 401.
    pub fn require(&self) -> Result<&Credential, ApiError> {
        self.credential.as_ref().ok_or_else(ApiError::unauthenticated)
    }

    /// Who the access policy sees.
    pub fn viewer(&self) -> Viewer {
        match &self.credential {
            Some(Credential::ApiKey { viewer, .. }) => viewer.clone(),
            Some(Credential::Visitor(visitor)) => visitor.viewer(),
            Some(Credential::Session(session)) => session.viewer.clone(),
            None => Viewer::anonymous(),
        }
    }

    /// The caller's actor, if any.
    pub fn actor_id(&self) -> Option<i64> {
        self.viewer().actor_id
    }

    /// What PostgreSQL's policies confine the caller to. Derived from the credential only,
    /// never from what the request asks for.
    pub fn scope(&self) -> RlsScope {
        match &self.credential {
            Some(Credential::ApiKey { key, .. }) => {
                RlsScope { actor_id: Some(key.created_by), embed_widget_id: None, api_hub_id: Some(key.hub_id) }
            }
            Some(Credential::Visitor(visitor)) => visitor.scope(),
            Some(Credential::Session(session)) => RlsScope { actor_id: session.viewer.actor_id, ..RlsScope::default() },
            None => RlsScope::default(),
        }
    }

    /// The credential may address `widget`: an embed token its own widget, an API key its own
    /// hub's widgets.
    pub fn confine(&self, widget: &Widget) -> Result<(), ApiError> {
        if self.rls_only {
            return Ok(());
        }
        match &self.credential {
            Some(Credential::Visitor(visitor)) if visitor.widget.id != widget.id => {
                Err(ApiError::Forbidden("this embed token is for another widget".into()))
            }
            Some(Credential::ApiKey { key, .. }) if key.hub_id != widget.hub_id => Err(ApiError::NotFound("widget")),
            _ => Ok(()),
        }
    }

    /// The policy predicate for annotation reads (`None` under the test hook).
    pub fn annotation_filter(&self) -> Option<Viewer> {
        (!self.rls_only).then(|| self.viewer())
    }

    /// The policy predicate for widget reads: an embed token already confines its visitor to
    /// the widget they may read, whatever its scope.
    pub fn widget_filter(&self) -> Option<Viewer> {
        match &self.credential {
            _ if self.rls_only => None,
            Some(Credential::Visitor(_)) => None,
            _ => Some(self.viewer()),
        }
    }

    /// What the caller may do in a hub. Visitors hold no hub role.
    pub async fn access(&self, state: &AppState, hub_id: i64) -> Result<HubAccess, StoreError> {
        match &self.credential {
            Some(Credential::Visitor(visitor)) => {
                Ok(HubAccess { actor_id: visitor.actor_id, is_admin: false, role: None })
            }
            _ => HubAccess::load(&state.db, &self.viewer(), hub_id).await,
        }
    }

    /// Whether the credential still holds (a stream re-checks it: a revoked key or session, or an
    /// expired token, ends the stream).
    pub async fn still_valid(&self, state: &AppState, token: Option<&str>) -> Result<bool, StoreError> {
        Ok(match &self.credential {
            Some(Credential::ApiKey { .. }) => match token {
                Some(token) => api_keys::authenticate(&state.db, token).await?.is_some(),
                None => false,
            },
            Some(Credential::Visitor(visitor)) => visitor.is_live(),
            Some(Credential::Session(session)) => {
                sessions::find_live(&state.db, &session.token_hash, now_ms()).await?.is_some()
            }
            None => true,
        })
    }

    /// Writes on a session need the session's CSRF token in `X-CSRF-Token` (the cookie alone
    /// would let any page the person visits write for them).
    fn check_csrf(&self, req: &HttpRequest) -> Result<(), ApiError> {
        let Some(Credential::Session(session)) = &self.credential else { return Ok(()) };
        let provided = req.headers().get("X-CSRF-Token").map(|v| v.as_bytes()).unwrap_or_default();
        if crypto::constant_time_eq(provided, session.csrf_token.as_bytes()) {
            Ok(())
        } else {
            Err(ApiError::Forbidden("a session needs the X-CSRF-Token header for writes".into()))
        }
    }
}

/// The bearer token of a request: the `Authorization` header, or for event streams (EventSource
/// cannot send headers) the `access_token` query parameter.
pub fn bearer(req: &HttpRequest) -> Option<String> {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned());
    header.or_else(|| {
        if !req.path().ends_with("/stream") {
            return None;
        }
        web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
            .ok()
            .and_then(|q| q.get("access_token").cloned())
    })
}
