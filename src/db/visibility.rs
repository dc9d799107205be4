//! The read rules of the access policy (`crate::access`) as SQL predicates, for the store's
//! queries, and loading a viewer's [`HubAccess`]. PostgreSQL enforces the same rules a second
//! time with Row Level Security (`migrations/postgres/0002_access_policy.sql`).

use super::sql::SqlBuilder;
use super::{Db, StoreError, actors};
use crate::access::{HubAccess, Role, Viewer};

impl HubAccess {
    /// Looks up the viewer's role in a hub.
    pub async fn load(db: &Db, viewer: &Viewer, hub_id: i64) -> Result<Self, StoreError> {
        let role = match viewer.actor_id {
            Some(actor_id) => actors::role_in(db, hub_id, actor_id).await?.as_deref().and_then(Role::parse),
            None => None,
        };
        Ok(Self { actor_id: viewer.actor_id, is_admin: viewer.is_admin, role })
    }
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

    fn access(actor: Option<i64>, role: Option<Role>, admin: bool) -> HubAccess {
        HubAccess { actor_id: actor, is_admin: admin, role }
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
}
