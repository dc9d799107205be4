//! Embed visitors: who is writing inside a widget's iframe on a third-party page.
//!
//! A visitor is anonymous (a fresh pseudonym per browser, `anon:<random>`) or identified by the
//! host site, whose server signs a short-lived HS256 token with the widget's embed secret
//! (`host:<widget id>:<sub>`). Either way IHF then hands the iframe its own *visitor token*
//! (`auth::tokens`, `iss = "ihf"`, `aud` = the embed key), kept in a partitioned cookie where the
//! browser allows it and carried by the iframe where it does not. A visitor token reaches its one
//! widget and nothing else: the routes check the audience, and on PostgreSQL every query of the
//! visitor runs confined to the widget (`ihf.embed_widget_id`).

use crate::AppState;
use crate::auth::Viewer;
use crate::auth::tokens::{self, Audience, Claims, TokenError};
use crate::db::api::RlsScope;
use crate::db::widgets::{self, Widget};
use crate::db::{StoreError, visitors};

/// How long an anonymous visitor stays recognised.
pub const ANONYMOUS_LIFETIME_S: i64 = 365 * 24 * 60 * 60;
/// How long an identified visitor stays signed in after the host's token was checked.
pub const IDENTIFIED_LIFETIME_S: i64 = 12 * 60 * 60;
/// The longest display name a host may give its user.
const NAME_MAX: usize = 80;

/// A visitor of one widget's embed.
#[derive(Debug, Clone)]
pub struct Visitor {
    /// The widget the visitor is confined to.
    pub widget: Widget,
    /// `anon:<random>` or `host:<widget id>:<sub>`.
    pub external_ref: String,
    /// The actor row, once there is one (anonymous visitors get theirs on their first write).
    pub actor_id: Option<i64>,
    pub name: String,
    /// Whether the host site vouched for the visitor.
    pub identified: bool,
    /// IHF's visitor token for the iframe to keep.
    pub token: String,
    /// When the visitor token expires, seconds since the epoch.
    pub expires_at: i64,
}

/// Why a visitor was not recognised.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The token is for no widget IHF knows, or the widget is archived.
    #[error("this feedback widget does not exist (any more)")]
    UnknownWidget,
    #[error("{0}")]
    Token(#[from] TokenError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Visitor {
    /// A new anonymous visitor of `widget` (nothing is written until they write something).
    pub fn anonymous(state: &AppState, widget: Widget) -> Self {
        let external_ref = format!("anon:{}", crate::crypto::random_token(16));
        let name = format!("Visitor {}", &external_ref[5..9]);
        Self::signed(state, widget, external_ref, None, name, false)
    }

    fn signed(
        state: &AppState,
        widget: Widget,
        external_ref: String,
        actor_id: Option<i64>,
        name: String,
        identified: bool,
    ) -> Self {
        let lifetime = if identified { IDENTIFIED_LIFETIME_S } else { ANONYMOUS_LIFETIME_S };
        let expires_at = tokens::now_s() + lifetime;
        let claims = Claims {
            sub: external_ref.clone(),
            name: Some(name.clone()),
            aud: Audience::One(widget.embed_key.clone()),
            exp: expires_at,
            iss: Some(tokens::ISSUER.into()),
            iat: Some(tokens::now_s()),
        };
        let token = tokens::sign(&claims, &tokens::visitor_key(&state.secret));
        Self { widget, external_ref, actor_id, name, identified, token, expires_at }
    }

    /// Checks a token that names one widget: IHF's visitor token, or the host site's sign-in token
    /// (then the visitor's actor is created or renamed). With `expected_key` the token must be
    /// for that widget; without, it is taken for the widget it names.
    pub async fn from_token(state: &AppState, token: &str, expected_key: Option<&str>) -> Result<Self, Refusal> {
        let peeked = tokens::peek(token)?;
        let key = match expected_key {
            // Said before the signature is checked: a token for another widget would otherwise
            // be reported as badly signed (it is signed with the other widget's secret).
            Some(key) if !peeked.aud.contains(key) => return Err(TokenError::Audience.into()),
            Some(key) => key.to_owned(),
            None => peeked.aud.first().ok_or(TokenError::Malformed)?.to_owned(),
        };
        let widget = match widgets::by_embed_key(&state.db, &key).await {
            Ok(widget) if widget.archived_at.is_none() => widget,
            Ok(_) | Err(StoreError::NotFound) => return Err(Refusal::UnknownWidget),
            Err(e) => return Err(e.into()),
        };
        let now = tokens::now_s();
        if peeked.iss.as_deref() == Some(tokens::ISSUER) {
            let claims = tokens::verify(token, &tokens::visitor_key(&state.secret), &key, now, None)?;
            let host_prefix = format!("host:{}:", widget.id);
            if !claims.sub.starts_with("anon:") && !claims.sub.starts_with(&host_prefix) {
                return Err(TokenError::Audience.into());
            }
            let actor_id = visitors::find(&state.db, &claims.sub).await?;
            Ok(Self {
                identified: claims.sub.starts_with("host:"),
                name: claims.name.unwrap_or_else(|| "Visitor".into()),
                actor_id,
                external_ref: claims.sub,
                token: token.to_owned(),
                expires_at: claims.exp,
                widget,
            })
        } else {
            let claims =
                tokens::verify(token, widget.embed_secret.as_bytes(), &key, now, Some(tokens::HOST_MAX_LIFETIME_S))?;
            let name = clean_name(claims.name.as_deref());
            let external_ref = format!("host:{}:{}", widget.id, claims.sub);
            let actor_id = visitors::upsert(&state.db, &external_ref, &name, true).await?;
            // An `email` claim is kept (mail stays off until the visitor opts in, in the embed).
            if let Some(email) =
                tokens::email_claim(token).and_then(|raw| crate::db::notifications::parse_email(&raw).ok().flatten())
            {
                crate::db::notifications::keep_visitor_email(&state.db, actor_id, &email).await?;
            }
            Ok(Self::signed(state, widget, external_ref, Some(actor_id), name, true))
        }
    }

    /// The visitor's actor, written now if this is their first write.
    pub async fn ensure_actor(&mut self, state: &AppState) -> Result<i64, StoreError> {
        if let Some(id) = self.actor_id {
            return Ok(id);
        }
        let id = visitors::upsert(&state.db, &self.external_ref, &self.name, false).await?;
        self.actor_id = Some(id);
        Ok(id)
    }

    /// The visitor as the access policy sees them: an actor with no hub role.
    pub fn viewer(&self) -> Viewer {
        Viewer { actor_id: self.actor_id, handle: None, display_name: self.name.clone(), is_admin: false }
    }

    /// What PostgreSQL's policies confine the visitor to.
    pub fn scope(&self) -> RlsScope {
        RlsScope { actor_id: self.actor_id, embed_widget_id: Some(self.widget.id), api_hub_id: None }
    }

    /// Whether the visitor token is still valid.
    pub fn is_live(&self) -> bool {
        tokens::now_s() <= self.expires_at + tokens::LEEWAY_S
    }
}

/// The host's display name for its user, trimmed and bounded; "Visitor" when it gives none.
fn clean_name(name: Option<&str>) -> String {
    let name: String = name.unwrap_or_default().chars().filter(|c| !c.is_control()).take(NAME_MAX).collect();
    let name = name.trim();
    if name.is_empty() { "Visitor".into() } else { name.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::clean_name;

    #[test]
    fn names_are_bounded() {
        assert_eq!(clean_name(None), "Visitor");
        assert_eq!(clean_name(Some("  Jamie \n")), "Jamie");
        assert_eq!(clean_name(Some(&"x".repeat(200))).len(), 80);
    }
}
