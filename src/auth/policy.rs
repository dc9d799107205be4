//! The access policy: the one place that says who may read or do what.
//!
//! The seed's two rules, kept exactly: an actor can always read their own annotations; anyone,
//! signed in or not, can read the annotations on a widget whose `policy_scope` is `public`.
//! Around them: hub members read their hub's `members` widgets; `private` widgets are read by
//! their owner and the hub's triagers and operators; triagers and operators read and triage all
//! of their hub's annotations; operators decide on candidates and manage the hub; only the
//! author edits or deletes an annotation's body; site administrators act as operators
//! everywhere. PostgreSQL enforces the same read rules a second time with Row Level Security
//! (`migrations/postgres/0002_access_policy.sql`).

use crate::db::sql::SqlBuilder;

use super::Viewer;
use crate::db::widgets::Widget;
use crate::db::{Db, StoreError, actors};

/// The roles a hub member can hold, weakest first.
pub const ROLES: [&str; 3] = ["annotator", "triager", "operator"];

/// A hub role. Ordered: an operator can do all a triager can, a triager all an annotator can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Annotator,
    Triager,
    Operator,
}

impl Role {
    /// Parses a stored role name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "annotator" => Some(Self::Annotator),
            "triager" => Some(Self::Triager),
            "operator" => Some(Self::Operator),
            _ => None,
        }
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Annotator => "annotator",
            Self::Triager => "triager",
            Self::Operator => "operator",
        }
    }
}

/// What a viewer may do in one hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubAccess {
    pub actor_id: Option<i64>,
    pub is_admin: bool,
    pub role: Option<Role>,
}

impl HubAccess {
    /// Looks up the viewer's role in a hub.
    pub async fn load(db: &Db, viewer: &Viewer, hub_id: i64) -> Result<Self, StoreError> {
        let role = match viewer.actor_id {
            Some(actor_id) => actors::role_in(db, hub_id, actor_id).await?.as_deref().and_then(Role::parse),
            None => None,
        };
        Ok(Self { actor_id: viewer.actor_id, is_admin: viewer.is_admin, role })
    }

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

    /// Whether the viewer may read the widget and the annotations others wrote on it.
    pub fn can_read_widget(&self, widget: &Widget) -> bool {
        match widget.policy_scope.as_str() {
            "public" => true,
            "members" => self.can_view_hub(),
            _ => self.can_triage() || (self.actor_id.is_some() && widget.owner_id == self.actor_id),
        }
    }

    /// Signed-in people who may read a live widget may annotate it.
    pub fn can_annotate(&self, widget: &Widget) -> bool {
        self.actor_id.is_some() && widget.archived_at.is_none() && self.can_read_widget(widget)
    }

    /// The widget's feedback inbox: its owner and the hub's triagers and operators.
    pub fn can_read_inbox(&self, widget: &Widget) -> bool {
        self.can_triage() || (self.actor_id.is_some() && widget.owner_id == self.actor_id)
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
    pub fn can_support(&self, widget: &Widget, author_id: i64) -> bool {
        self.actor_id.is_some_and(|me| me != author_id) && supportable(widget) && self.can_read_widget(widget)
    }

    /// Hub members read the hub's interaction events (PostgreSQL: `events_read`).
    pub fn can_read_events(&self) -> bool {
        self.can_view_hub()
    }
}

/// An embed visitor, confined by their credential to one widget, may annotate it while it is
/// live, whatever its scope; on a non-public widget they then read only their own annotations.
pub fn embed_visitor_can_annotate(widget: &Widget) -> bool {
    widget.archived_at.is_none()
}

/// Support ("me too") is given on live `public` and `members` widgets only: on a private widget
/// nobody but staff and the owner reads the annotations to agree with.
pub fn supportable(widget: &Widget) -> bool {
    widget.archived_at.is_none() && every_member_reads(widget)
}

/// An embed visitor supports an annotation they read on their widget, not their own.
pub fn embed_visitor_can_support(widget: &Widget, visitor_id: Option<i64>, author_id: i64) -> bool {
    supportable(widget) && visitor_id != Some(author_id)
}

/// A widget's embed key is its public write key for interaction events (like an analytics
/// snippet's): whoever holds it may send the live widget events, from its allowed origins or
/// from a server. Rate limits per key and per IP bound the damage of a copied key.
pub fn embed_key_can_send_events(widget: &Widget) -> bool {
    widget.archived_at.is_none()
}

/// Whether every member of the widget's hub reads its annotations (`public` and `members`
/// widgets). Text of an annotation that is not must never be copied into what every member
/// reads: candidates, the ledger and its exports.
pub fn every_member_reads(widget: &Widget) -> bool {
    matches!(widget.policy_scope.as_str(), "public" | "members")
}

/// Site administrators create and archive hubs.
pub fn can_manage_hubs(viewer: &Viewer) -> bool {
    viewer.is_signed_in() && viewer.is_admin
}

/// The actor id used in SQL predicates: `-1` for anonymous, which matches no row.
pub fn sql_actor(viewer: &Viewer) -> i64 {
    viewer.actor_id.unwrap_or(-1)
}

/// Appends the predicate "the viewer may read annotation `a` on widget `w`" (both aliases must
/// be in scope). The seed's two rules come first.
pub fn push_annotation_visible(qb: &mut SqlBuilder, viewer: &Viewer) {
    let actor = sql_actor(viewer);
    qb.push("(a.actor_id = ").push_bind(actor);
    qb.push(" OR w.policy_scope = 'public'");
    push_widget_rest(qb, actor);
    qb.push(")");
}

/// [`push_annotation_visible`] with only `a` in scope: the same rule, its widget part as the
/// set of widgets the viewer may read (computed once per statement, not once per row), so a
/// page can be cut from the annotations alone, in index order, before anything is joined.
pub fn push_annotation_visible_alone(qb: &mut SqlBuilder, viewer: &Viewer) {
    let actor = sql_actor(viewer);
    qb.push("(a.actor_id = ").push_bind(actor);
    qb.push(" OR a.widget_id IN (SELECT w.id FROM widgets w WHERE ");
    push_widget_visible(qb, viewer);
    qb.push("))");
}

/// Appends the predicate "the viewer may read annotation `a`" for a query the caller has
/// already confined to the hub that `access` was loaded for: every annotation of the hub for
/// its triagers and operators (no per-row test), otherwise the per-row rule of
/// [`push_annotation_visible_alone`] (only `a` need be in scope).
pub fn push_hub_annotation_visible(qb: &mut SqlBuilder, access: &HubAccess) {
    if access.can_triage() {
        qb.push("1 = 1");
    } else {
        push_annotation_visible_alone(qb, &Viewer { actor_id: access.actor_id, ..Viewer::default() });
    }
}

/// Appends the predicate "the viewer may read reply `r`": they read its live annotation (the
/// annotation rule, in a subquery), and an internal reply only as staff of its hub.
pub fn push_reply_visible(qb: &mut SqlBuilder, viewer: &Viewer) {
    let actor = sql_actor(viewer);
    qb.push("(EXISTS (SELECT 1 FROM annotations a JOIN widgets w ON w.id = a.widget_id WHERE a.id = r.annotation_id");
    qb.push(" AND a.deleted_at IS NULL AND ");
    push_annotation_visible(qb, viewer);
    qb.push(") AND (r.internal = 0");
    qb.push(" OR EXISTS (SELECT 1 FROM hub_members m WHERE m.hub_id = r.hub_id AND m.actor_id = ").push_bind(actor);
    qb.push(" AND m.role IN ('triager', 'operator'))");
    qb.push(" OR EXISTS (SELECT 1 FROM actors ad WHERE ad.id = ").push_bind(actor).push(" AND ad.is_admin = 1)))");
}

/// Appends the predicate "the viewer may read widget `w`".
pub fn push_widget_visible(qb: &mut SqlBuilder, viewer: &Viewer) {
    let actor = sql_actor(viewer);
    qb.push("(w.policy_scope = 'public'");
    push_widget_rest(qb, actor);
    qb.push(")");
}

fn push_widget_rest(qb: &mut SqlBuilder, actor: i64) {
    qb.push(" OR w.owner_id = ").push_bind(actor);
    qb.push(" OR EXISTS (SELECT 1 FROM hub_members m WHERE m.hub_id = w.hub_id AND m.actor_id = ")
        .push_bind(actor)
        .push(" AND (m.role IN ('triager', 'operator') OR w.policy_scope = 'members'))");
    qb.push(" OR EXISTS (SELECT 1 FROM actors ad WHERE ad.id = ").push_bind(actor).push(" AND ad.is_admin = 1)");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn widget(scope: &str, owner: Option<i64>) -> Widget {
        Widget {
            id: 1,
            hub_id: 1,
            slug: "w".into(),
            name: "W".into(),
            description: String::new(),
            owner_id: owner,
            policy_scope: scope.into(),
            embed_key: "k".into(),
            embed_secret: "s".into(),
            allowed_origins: String::new(),
            created_at: 0,
            archived_at: None,
        }
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
    fn hub_staff_read_the_whole_hub_others_row_by_row() {
        let sql = |access: &HubAccess| {
            let mut qb = SqlBuilder::new("");
            push_hub_annotation_visible(&mut qb, access);
            qb.sql().to_owned()
        };
        assert_eq!(sql(&access(Some(3), Some(Role::Triager), false)), "1 = 1");
        assert_eq!(sql(&access(Some(1), None, true)), "1 = 1");
        assert!(sql(&access(Some(2), Some(Role::Annotator), false)).starts_with("(a.actor_id = $1"));
        assert!(sql(&access(None, None, false)).contains("w.policy_scope = 'public'"));
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
}
