//! The person (or anonymous visitor) a request acts for.

/// Who is looking: a signed-in person, or nobody.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Viewer {
    /// The actor's id; `None` for an anonymous visitor.
    pub actor_id: Option<i64>,
    pub handle: Option<String>,
    pub display_name: String,
    /// Site administrators create hubs and see every hub.
    pub is_admin: bool,
}

impl Viewer {
    /// Nobody signed in.
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// Whether someone is signed in.
    pub fn is_signed_in(&self) -> bool {
        self.actor_id.is_some()
    }
}

/// A signed-in session, put into the request's extensions by the session middleware.
#[derive(Debug, Clone)]
pub struct Session {
    pub viewer: Viewer,
    pub csrf_token: String,
    pub token_hash: String,
    /// Unread notifications when the request began (the bell's first count).
    pub unread: i64,
}
