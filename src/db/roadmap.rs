//! A hub's public roadmap (opt-in per hub): its accepted candidates as "planned" and its
//! implemented ones as "shipped", with how many annotations and people support each.
//!
//! What it shows is chosen here, once, for every reader (the page, the Atom feed, the "what's
//! new" embed): titles and statements of accepted and implemented candidates only (never a
//! rejected or deferred one, never a rationale), and counts of evidence on public widgets only:
//! nothing of a members or private widget, not even how much of it there is.

use super::{Db, StoreError, now_ms};

/// One candidate on the roadmap.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RoadmapItem {
    pub id: i64,
    pub title: String,
    pub statement: String,
    /// `accepted` (planned) or `implemented` (shipped).
    pub status: String,
    pub updated_at: i64,
    /// When it was marked implemented.
    pub shipped_at: Option<i64>,
    /// Live evidence on public widgets.
    pub annotations: i64,
    /// Distinct authors and supporters of that evidence.
    pub people: i64,
}

impl RoadmapItem {
    /// Whether it shipped.
    pub fn is_shipped(&self) -> bool {
        self.status == "implemented"
    }

    /// When it last changed on the roadmap: shipped, or last updated.
    pub fn changed_at(&self) -> i64 {
        self.shipped_at.unwrap_or(self.updated_at)
    }
}

/// Evidence of candidate `c` that the world may count: live links to live annotations of
/// public widgets (alias `a` for the annotation).
const PUBLIC_EVIDENCE: &str = "FROM candidate_evidence e JOIN annotations a ON a.id = e.annotation_id
        JOIN widgets w ON w.id = a.widget_id
       WHERE e.candidate_id = c.id AND e.removed_at IS NULL AND a.deleted_at IS NULL AND w.policy_scope = 'public'";

/// Whether the hub's roadmap is public.
pub async fn is_public(db: &Db, hub_id: i64) -> Result<bool, StoreError> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM hub_roadmaps WHERE hub_id = $1")
        .bind(hub_id)
        .fetch_one(db.reader())
        .await?;
    Ok(n > 0)
}

/// Publishes the hub's roadmap or takes it down (the caller checked the operator).
pub async fn set_public(db: &Db, hub_id: i64, public: bool) -> Result<(), StoreError> {
    if public {
        sqlx::query("INSERT INTO hub_roadmaps (hub_id, published_at) VALUES ($1, $2) ON CONFLICT (hub_id) DO NOTHING")
            .bind(hub_id)
            .bind(now_ms())
            .execute(db.writer())
            .await?;
    } else {
        sqlx::query("DELETE FROM hub_roadmaps WHERE hub_id = $1").bind(hub_id).execute(db.writer()).await?;
    }
    Ok(())
}

/// The roadmap of a hub: planned (most recently changed first), then shipped (newest first).
pub async fn items(db: &Db, hub_id: i64) -> Result<Vec<RoadmapItem>, StoreError> {
    let sql = format!(
        "SELECT c.id, c.title, c.statement, c.status, c.updated_at,
            (SELECT MAX(l.created_at) FROM ledger_entries l WHERE l.candidate_id = c.id
                AND l.action = 'status_changed' AND l.detail LIKE '%\"to\":\"implemented\"%') AS shipped_at,
            (SELECT COUNT(*) {PUBLIC_EVIDENCE}) AS annotations, CAST(0 AS BIGINT) AS people
          FROM requirement_candidates c
         WHERE c.hub_id = $1 AND c.status IN ('accepted', 'implemented')
         ORDER BY c.status, c.updated_at DESC, c.id DESC"
    );
    let mut items: Vec<RoadmapItem> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(hub_id).fetch_all(db.reader()).await?;
    // People: the authors of the public evidence and their supporters, each once per candidate.
    let people: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT e.candidate_id, a.actor_id FROM candidate_evidence e
           JOIN requirement_candidates c ON c.id = e.candidate_id
           JOIN annotations a ON a.id = e.annotation_id JOIN widgets w ON w.id = a.widget_id
          WHERE c.hub_id = $1 AND c.status IN ('accepted', 'implemented') AND e.removed_at IS NULL
            AND a.deleted_at IS NULL AND w.policy_scope = 'public'
         UNION
         SELECT e.candidate_id, s.actor_id FROM candidate_evidence e
           JOIN requirement_candidates c ON c.id = e.candidate_id
           JOIN annotations a ON a.id = e.annotation_id JOIN widgets w ON w.id = a.widget_id
           JOIN annotation_supports s ON s.annotation_id = a.id
          WHERE c.hub_id = $1 AND c.status IN ('accepted', 'implemented') AND e.removed_at IS NULL
            AND a.deleted_at IS NULL AND w.policy_scope = 'public'",
    )
    .bind(hub_id)
    .fetch_all(db.reader())
    .await?;
    for item in &mut items {
        item.people = people.iter().filter(|(candidate, _)| *candidate == item.id).count() as i64;
    }
    // Shipped newest first (by the day they shipped, not their last edit).
    items.sort_by(|a, b| {
        a.is_shipped().cmp(&b.is_shipped()).then_with(|| match a.is_shipped() {
            true => b.changed_at().cmp(&a.changed_at()),
            false => std::cmp::Ordering::Equal,
        })
    });
    Ok(items)
}
