//! The person (or anonymous visitor) a request acts for: [`Viewer`] itself is part of the pure
//! access policy (`crate::access`); the session that carries it is here.

pub use crate::access::Viewer;
/// A signed-in session, put into the request's extensions by the session middleware.
#[derive(Debug, Clone)]
pub struct Session {
    pub viewer: Viewer,
    pub csrf_token: String,
    pub token_hash: String,
    /// Unread notifications when the request began (the bell's first count).
    pub unread: i64,
}
