//! The access policy: the one place that says who may read or do what. Pure: no database,
//! no web; the SQL form of the same read rules sits beside the store (`db/visibility.rs`), and
//! PostgreSQL enforces them a third time with Row Level Security
//! (`migrations/postgres/0002_access_policy.sql`). `tests/access.rs` checks the three against
//! each other on one table of cases.
//!
//! The seed's two rules, kept exactly: an actor can always read their own annotations; anyone,
//! signed in or not, can read the annotations on a widget whose scope is `public`.
//! Around them: hub members read their hub's `members` widgets; `private` widgets are read by
//! their owner and the hub's triagers and operators; triagers and operators read and triage all
//! of their hub's annotations; operators decide on candidates and manage the hub; only the
//! author edits or deletes an annotation's body; site administrators act as operators
//! everywhere.

use std::fmt;

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

/// A hub role. Ordered: an operator can do all a triager can, a triager all an annotator can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Annotator,
    Triager,
    Operator,
}

impl Role {
    /// Every role, weakest first.
    pub const ALL: [Role; 3] = [Role::Annotator, Role::Triager, Role::Operator];

    /// Parses a stored role name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.as_str() == name)
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Annotator => "annotator",
            Self::Triager => "triager",
            Self::Operator => "operator",
        }
    }

    /// The stored names of every role, weakest first (for forms and messages).
    pub fn names() -> [&'static str; 3] {
        Self::ALL.map(Self::as_str)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who may read a widget's annotations beyond their authors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WidgetScope {
    /// Everyone, signed in or not.
    Public,
    /// The hub's members.
    Members,
    /// The widget's owner and the hub's triagers and operators.
    Private,
}

impl WidgetScope {
    /// Every scope, widest first.
    pub const ALL: [WidgetScope; 3] = [WidgetScope::Public, WidgetScope::Members, WidgetScope::Private];

    /// Parses a stored scope name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == name)
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Members => "members",
            Self::Private => "private",
        }
    }

    /// The stored names of every scope, widest first (for forms).
    pub fn names() -> [&'static str; 3] {
        Self::ALL.map(Self::as_str)
    }

    /// Whether every member of the hub reads the annotations (`public` and `members`).
    pub fn every_member_reads(self) -> bool {
        matches!(self, Self::Public | Self::Members)
    }
}

impl fmt::Display for WidgetScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Compares with a stored name (`scope == "public"`).
impl PartialEq<&str> for WidgetScope {
    fn eq(&self, name: &&str) -> bool {
        self.as_str() == *name
    }
}

impl TryFrom<String> for WidgetScope {
    type Error = String;

    /// For decoding the stored column; the schema's CHECK admits only the three names.
    fn try_from(name: String) -> Result<Self, Self::Error> {
        Self::parse(&name).ok_or_else(|| format!("unknown widget scope {name:?}"))
    }
}

/// What the policy needs to know about a widget (implemented by the stored widget).
pub trait Guarded {
    fn scope(&self) -> WidgetScope;
    fn owner_id(&self) -> Option<i64>;
    /// Not archived.
    fn is_live(&self) -> bool;
}

impl<T: Guarded + ?Sized> Guarded for &T {
    fn scope(&self) -> WidgetScope {
        (**self).scope()
    }
    fn owner_id(&self) -> Option<i64> {
        (**self).owner_id()
    }
    fn is_live(&self) -> bool {
        (**self).is_live()
    }
}

/// What a viewer may do in one hub. Loaded with `HubAccess::load` (`db/visibility.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubAccess {
    pub actor_id: Option<i64>,
    pub is_admin: bool,
    pub role: Option<Role>,
}

impl HubAccess {
    /// The viewer's access given the role they hold in the hub (a stored role name).
    pub fn with_role(viewer: &Viewer, role: Option<&str>) -> Self {
        Self { actor_id: viewer.actor_id, is_admin: viewer.is_admin, role: role.and_then(Role::parse) }
    }

    /// The role that counts: administrators act as operators.
    pub fn effective_role(&self) -> Option<Role> {
        if self.is_admin { Some(Role::Operator) } else { self.role }
    }

    /// Members (any role) and administrators see the hub's dashboard.
    pub fn can_view_hub(&self) -> bool {
        self.effective_role().is_some()
    }

    /// Triagers and operators work the triage board.
    pub fn can_triage(&self) -> bool {
        self.effective_role() >= Some(Role::Triager)
    }

    /// Triagers propose requirement candidates and attach evidence.
    pub fn can_propose(&self) -> bool {
        self.can_triage()
    }

    /// Operators decide on candidates.
    pub fn can_decide(&self) -> bool {
        self.effective_role() == Some(Role::Operator)
    }

    /// Operators manage widgets, members, categories, keys and webhooks.
    pub fn can_manage(&self) -> bool {
        self.effective_role() == Some(Role::Operator)
    }

    /// Triagers and operators export the hub's annotations (CSV, JSON Lines).
    pub fn can_export(&self) -> bool {
        self.can_triage()
    }

    fn owns(&self, widget: &impl Guarded) -> bool {
        self.actor_id.is_some() && widget.owner_id() == self.actor_id
    }

    /// Whether the viewer may read the widget and the annotations others wrote on it.
    pub fn can_read_widget(&self, widget: &impl Guarded) -> bool {
        match widget.scope() {
            WidgetScope::Public => true,
            WidgetScope::Members => self.can_view_hub(),
            WidgetScope::Private => self.can_triage() || self.owns(widget),
        }
    }

    /// Signed-in people who may read a live widget may annotate it.
    pub fn can_annotate(&self, widget: &impl Guarded) -> bool {
        self.actor_id.is_some() && widget.is_live() && self.can_read_widget(widget)
    }

    /// The widget's feedback inbox: its owner and the hub's triagers and operators.
    pub fn can_read_inbox(&self, widget: &impl Guarded) -> bool {
        self.can_triage() || self.owns(widget)
    }

    /// Only the author edits or deletes an annotation's body.
    pub fn can_edit_annotation(&self, author_id: i64) -> bool {
        self.actor_id == Some(author_id)
    }

    /// Triagers and operators reply on any annotation they read; its author on their own.
    pub fn can_reply(&self, author_id: i64) -> bool {
        self.actor_id.is_some() && (self.can_triage() || self.actor_id == Some(author_id))
    }

    /// Only staff mark a reply internal (and read internal replies).
    pub fn can_reply_internally(&self) -> bool {
        self.can_triage()
    }

    /// "Me too": a signed-in reader of a live public or members widget supports someone
    /// else's annotation (once; a second time takes it back).
    pub fn can_support(&self, widget: &impl Guarded, author_id: i64) -> bool {
        self.actor_id.is_some_and(|me| me != author_id) && supportable(widget) && self.can_read_widget(widget)
    }

    /// Hub members read the hub's interaction events (PostgreSQL: `events_read`).
    pub fn can_read_events(&self) -> bool {
        self.can_view_hub()
    }
}

/// An embed visitor, confined by their credential to one widget, may annotate it while it is
/// live, whatever its scope; on a non-public widget they then read only their own annotations.
pub fn embed_visitor_can_annotate(widget: &impl Guarded) -> bool {
    widget.is_live()
}

/// Support ("me too") is given on live `public` and `members` widgets only: on a private widget
/// nobody but staff and the owner reads the annotations to agree with.
pub fn supportable(widget: &impl Guarded) -> bool {
    widget.is_live() && every_member_reads(widget)
}

/// An embed visitor supports an annotation they read on their widget, not their own.
pub fn embed_visitor_can_support(widget: &impl Guarded, visitor_id: Option<i64>, author_id: i64) -> bool {
    supportable(widget) && visitor_id != Some(author_id)
}

/// A widget's embed key is its public write key for interaction events (like an analytics
/// snippet's): whoever holds it may send the live widget events, from its allowed origins or
/// from a server. Rate limits per key and per IP bound the damage of a copied key.
pub fn embed_key_can_send_events(widget: &impl Guarded) -> bool {
    widget.is_live()
}

/// Whether every member of the widget's hub reads its annotations (`public` and `members`
/// widgets). Text of an annotation that is not must never be copied into what every member
/// reads: candidates, the ledger and its exports.
pub fn every_member_reads(widget: &impl Guarded) -> bool {
    widget.scope().every_member_reads()
}

/// Site administrators create and archive hubs.
pub fn can_manage_hubs(viewer: &Viewer) -> bool {
    viewer.is_signed_in() && viewer.is_admin
}

#[cfg(test)]
mod tests {
    use super::*;

    struct W(WidgetScope, Option<i64>);

    impl Guarded for W {
        fn scope(&self) -> WidgetScope {
            self.0
        }
        fn owner_id(&self) -> Option<i64> {
            self.1
        }
        fn is_live(&self) -> bool {
            true
        }
    }

    fn widget(scope: &str, owner: Option<i64>) -> W {
        W(WidgetScope::parse(scope).unwrap_or(WidgetScope::Private), owner)
    }

    fn access(actor: Option<i64>, role: Option<Role>, admin: bool) -> HubAccess {
        HubAccess { actor_id: actor, is_admin: admin, role }
    }

    #[test]
    fn widget_scopes() {
        let anonymous = access(None, None, false);
        let outsider = access(Some(9), None, false);
        let annotator = access(Some(2), Some(Role::Annotator), false);
        let triager = access(Some(3), Some(Role::Triager), false);
        let admin = access(Some(4), None, true);
        let owner = access(Some(5), None, false);
        for who in [&anonymous, &outsider, &annotator, &triager, &admin] {
            assert!(who.can_read_widget(&widget("public", None)));
        }
        assert!(!anonymous.can_read_widget(&widget("members", None)));
        assert!(!outsider.can_read_widget(&widget("members", None)));
        assert!(annotator.can_read_widget(&widget("members", None)));
        assert!(!annotator.can_read_widget(&widget("private", None)));
        assert!(triager.can_read_widget(&widget("private", None)));
        assert!(admin.can_read_widget(&widget("private", None)));
        assert!(owner.can_read_widget(&widget("private", Some(5))));
        assert!(!anonymous.can_annotate(&widget("public", None)));
        assert!(outsider.can_annotate(&widget("public", None)));
    }

    #[test]
    fn role_ladder() {
        let annotator = access(Some(2), Some(Role::Annotator), false);
        let triager = access(Some(3), Some(Role::Triager), false);
        let operator = access(Some(4), Some(Role::Operator), false);
        assert!(annotator.can_view_hub() && !annotator.can_triage());
        assert!(triager.can_triage() && !triager.can_decide());
        assert!(operator.can_decide() && operator.can_manage());
        assert!(access(Some(1), None, true).can_manage());
        assert!(!access(None, None, false).can_view_hub());
    }

    #[test]
    fn names_round_trip() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        for scope in WidgetScope::ALL {
            assert_eq!(WidgetScope::parse(scope.as_str()), Some(scope));
        }
        assert_eq!(Role::names(), ["annotator", "triager", "operator"]);
    }
}
