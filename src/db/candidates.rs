//! Requirement candidates, their evidence and their lifecycle.
//!
//! Every write here appends to the hub's ledger in the same transaction as the change it
//! records, so a candidate, its evidence and its history cannot disagree.
//!
//! The lifecycle ([`Status::next`]): `proposed` → `accepted` | `rejected` | `deferred`;
//! `accepted` → `implemented`; `accepted`, `rejected` and `deferred` can be reopened (back to
//! `proposed`) when new evidence or circumstances call for another decision. `implemented` is
//! final: a change to shipped behaviour is a new candidate, with its own history. A deferred or
//! rejected candidate is reopened before it is decided again, so every reconsideration shows in
//! the ledger as its own step with its own rationale.

use sqlx::{Any, Transaction};

use super::annotations::{AnnotationRow, ROW_SELECT};
use super::ledger::{self, NewEntry};
use super::sql::SqlBuilder;
use super::{Backend, Db, StoreError, now_ms};
use crate::auth::Viewer;
use crate::auth::policy;

/// The statuses of a candidate.
pub const STATUSES: [&str; 5] = ["proposed", "accepted", "rejected", "deferred", "implemented"];

/// The longest title the schema accepts (characters).
pub const TITLE_MAX: usize = 200;
/// The longest statement we accept (characters).
pub const STATEMENT_MAX: usize = 4000;

/// A candidate's status in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Proposed,
    Accepted,
    Rejected,
    Deferred,
    Implemented,
}

impl Status {
    /// Every status, in lifecycle order.
    pub const ALL: [Status; 5] = [Self::Proposed, Self::Accepted, Self::Rejected, Self::Deferred, Self::Implemented];

    /// Parses a stored status name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Proposed => "proposed",
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
            Self::Deferred => "deferred",
            Self::Implemented => "implemented",
        }
    }

    /// The statuses a decision may move a candidate in this status to.
    pub fn next(self) -> &'static [Status] {
        match self {
            Self::Proposed => &[Self::Accepted, Self::Rejected, Self::Deferred],
            Self::Accepted => &[Self::Implemented, Self::Proposed],
            Self::Rejected | Self::Deferred => &[Self::Proposed],
            Self::Implemented => &[],
        }
    }

    /// What the decision to move *to* this status is called (a button label).
    pub fn verb(self) -> &'static str {
        match self {
            Self::Proposed => "Reopen",
            Self::Accepted => "Accept",
            Self::Rejected => "Reject",
            Self::Deferred => "Defer",
            Self::Implemented => "Mark implemented",
        }
    }

    /// The same decision in the past tense, for the history.
    pub fn past(self) -> &'static str {
        match self {
            Self::Proposed => "Reopened",
            Self::Accepted => "Accepted",
            Self::Rejected => "Rejected",
            Self::Deferred => "Deferred",
            Self::Implemented => "Marked implemented",
        }
    }

    /// `Ok` when a decision may move a candidate from `self` to `to`; otherwise why not, in
    /// words for the person who asked.
    pub fn check(self, to: Status) -> Result<(), String> {
        if self.next().contains(&to) {
            return Ok(());
        }
        let (from, name) = (self.as_str(), to.as_str());
        Err(match (self, to) {
            _ if self == to => format!("The candidate is already {from}."),
            (Self::Implemented, _) => {
                "An implemented candidate is final; propose a new candidate for further changes.".into()
            }
            (_, Self::Implemented) => "Only an accepted candidate can be marked implemented.".into(),
            (Self::Rejected | Self::Deferred, _) => {
                format!("A {from} candidate must be reopened before it can be {name}.")
            }
            (Self::Accepted, _) => "An accepted candidate can only be marked implemented or reopened.".into(),
            _ => format!("A {from} candidate cannot become {name}."),
        })
    }
}

impl Status {
    /// Whether the title and statement may still change: an implemented candidate is final.
    pub fn editable(self) -> bool {
        self != Self::Implemented
    }
}

/// A candidate's title and statement, checked once for every way in (propose, edit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    pub title: String,
    pub statement: String,
}

/// What is wrong with a [`Draft`], per field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DraftErrors {
    pub title: Option<String>,
    pub statement: Option<String>,
}

impl Draft {
    /// Trims both fields and checks them: a title of 1 to 200 characters, a statement of 1 to
    /// 4,000 (what is required and why cannot be empty).
    pub fn parse(title: &str, statement: &str) -> Result<Self, DraftErrors> {
        let (title, statement) = (title.trim(), statement.trim());
        let mut errors = DraftErrors::default();
        if title.is_empty() {
            errors.title = Some("Give the candidate a title.".into());
        } else if title.chars().count() > TITLE_MAX {
            errors.title = Some(format!("Keep the title under {TITLE_MAX} characters."));
        }
        if statement.is_empty() {
            errors.statement = Some("Say what is required and why.".into());
        } else if statement.chars().count() > STATEMENT_MAX {
            errors.statement = Some(format!("Keep the statement under {STATEMENT_MAX} characters."));
        }
        if errors == DraftErrors::default() {
            Ok(Self { title: title.to_owned(), statement: statement.to_owned() })
        } else {
            Err(errors)
        }
    }
}

/// A candidate as its page shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Candidate {
    pub id: i64,
    pub hub_id: i64,
    pub title: String,
    pub statement: String,
    pub status: String,
    pub created_by: i64,
    pub creator_name: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub version: i64,
}

impl Candidate {
    /// The parsed status (`Proposed` for a value the schema would not allow anyway).
    pub fn lifecycle(&self) -> Status {
        Status::parse(&self.status).unwrap_or(Status::Proposed)
    }
}

/// A candidate in the ledger list, with its evidence count and its last decision.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CandidateRow {
    pub id: i64,
    pub title: String,
    pub status: String,
    pub updated_at: i64,
    pub evidence_count: i64,
    /// "Me too"s summed over the live evidence on widgets every member reads.
    pub support_count: i64,
    pub decision_detail: Option<String>,
    pub decision_rationale: Option<String>,
    pub decision_at: Option<i64>,
    pub decision_by: Option<String>,
}

impl CandidateRow {
    /// The last decision in words ("Accepted"), when there was one.
    pub fn decision(&self) -> Option<&'static str> {
        self.decision_detail.as_deref().and_then(|detail| status_change(detail).map(|(_, to)| to.past()))
    }
}

/// An evidence link with the annotation it points to.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Evidence {
    pub annotation_id: i64,
    pub body: String,
    pub annotation_status: String,
    pub deleted: i64,
    pub created_at: i64,
    pub widget_slug: String,
    pub widget_name: String,
    pub author_name: String,
    pub category_label: String,
    pub category_colour: String,
    pub added_by_name: String,
    pub added_at: i64,
    pub removed_at: Option<i64>,
    pub removed_reason: Option<String>,
}

/// A candidate's evidence that the viewer may read, and how many active links they may not.
#[derive(Debug, Clone)]
pub struct EvidenceList {
    pub items: Vec<Evidence>,
    pub hidden: i64,
}

/// A ledger entry about a candidate, as its history shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HistoryEntry {
    pub seq: i64,
    pub action: String,
    pub rationale: String,
    pub detail: String,
    pub created_at: i64,
    pub hash: String,
    pub actor_name: String,
}

impl HistoryEntry {
    /// What happened, in words.
    pub fn headline(&self) -> String {
        let detail: serde_json::Value = serde_json::from_str(&self.detail).unwrap_or_default();
        let annotation = || detail.get("annotation_id").and_then(serde_json::Value::as_i64).unwrap_or_default();
        match self.action.as_str() {
            "proposed" => "Proposed".into(),
            "edited" => {
                let fields: Vec<&str> =
                    ["title", "statement"].into_iter().filter(|f| detail.get(*f).is_some()).collect();
                format!("Edited the {}", if fields.is_empty() { "candidate".into() } else { fields.join(" and ") })
            }
            "evidence_added" => format!("Added evidence #{}", annotation()),
            "evidence_removed" => format!("Removed evidence #{}", annotation()),
            "status_changed" => match status_change(&self.detail) {
                Some((from, to)) => format!("{} ({} → {})", to.past(), from.as_str(), to.as_str()),
                None => "Changed the status".into(),
            },
            other => other.replace('_', " "),
        }
    }

    /// The first characters of the hash, enough to compare with an export by eye.
    pub fn short_hash(&self) -> &str {
        self.hash.get(..12).unwrap_or(&self.hash)
    }
}

/// `(from, to)` of a `status_changed` entry's detail.
fn status_change(detail: &str) -> Option<(Status, Status)> {
    let value: serde_json::Value = serde_json::from_str(detail).ok()?;
    let get = |key: &str| value.get(key).and_then(serde_json::Value::as_str).and_then(Status::parse);
    Some((get("from")?, get("to")?))
}

/// Which candidates the ledger list shows.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<Status>,
    /// Words to find in the title or statement (case-insensitive).
    pub query: String,
}

/// `%text%` with `\`, `%` and `_` escaped, lower-cased, for `LIKE … ESCAPE '\'`.
fn like_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.trim().to_lowercase().chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

fn push_search(qb: &mut SqlBuilder, query: &str) {
    if !query.trim().is_empty() {
        let pattern = like_pattern(query);
        qb.push(" AND (LOWER(c.title) LIKE ").push_bind(pattern.clone());
        qb.push(" ESCAPE '\\' OR LOWER(c.statement) LIKE ").push_bind(pattern).push(" ESCAPE '\\')");
    }
}

/// The candidates of a hub matching `filter`, most recently changed first (at most `limit`).
pub async fn list(
    db: &Db,
    viewer: &Viewer,
    hub_id: i64,
    filter: &ListFilter,
    limit: i64,
) -> Result<Vec<CandidateRow>, StoreError> {
    let mut qb = SqlBuilder::new(
        "SELECT c.id, c.title, c.status, c.updated_at,
            (SELECT COUNT(*) FROM candidate_evidence e WHERE e.candidate_id = c.id AND e.removed_at IS NULL) AS evidence_count,
            (SELECT COUNT(*) FROM candidate_evidence e JOIN annotations ea ON ea.id = e.annotation_id
               JOIN widgets ew ON ew.id = ea.widget_id JOIN annotation_supports s ON s.annotation_id = e.annotation_id
              WHERE e.candidate_id = c.id AND e.removed_at IS NULL AND ew.policy_scope IN ('public', 'members')) AS support_count,
            d.detail AS decision_detail, d.rationale AS decision_rationale, d.created_at AS decision_at,
            p.display_name AS decision_by
         FROM requirement_candidates c
         LEFT JOIN ledger_entries d ON d.hub_id = c.hub_id AND d.seq = (
             SELECT MAX(l.seq) FROM ledger_entries l WHERE l.candidate_id = c.id AND l.action = 'status_changed')
         LEFT JOIN actors p ON p.id = d.actor_id
         WHERE c.hub_id = ",
    );
    qb.push_bind(hub_id);
    if let Some(status) = filter.status {
        qb.push(" AND c.status = ").push_bind(status.as_str().to_owned());
    }
    push_search(&mut qb, &filter.query);
    qb.push(" ORDER BY c.updated_at DESC, c.id DESC LIMIT ").push_bind(limit);
    db.fetch_all_as(viewer.actor_id, qb).await
}

/// How many candidates of a hub matching the search are in each status, in lifecycle order.
pub async fn status_counts(
    db: &Db,
    viewer: &Viewer,
    hub_id: i64,
    query: &str,
) -> Result<Vec<(Status, i64)>, StoreError> {
    let mut qb = SqlBuilder::new("SELECT c.status, COUNT(*) FROM requirement_candidates c WHERE c.hub_id = ");
    qb.push_bind(hub_id);
    push_search(&mut qb, query);
    qb.push(" GROUP BY c.status");
    let rows: Vec<(String, i64)> = db.fetch_all_as(viewer.actor_id, qb).await?;
    Ok(Status::ALL
        .into_iter()
        .map(|s| (s, rows.iter().find(|(name, _)| name == s.as_str()).map_or(0, |(_, n)| *n)))
        .collect())
}

/// A candidate of a hub, read as `viewer`; [`StoreError::NotFound`] when there is none.
pub async fn get(db: &Db, viewer: &Viewer, hub_id: i64, id: i64) -> Result<Candidate, StoreError> {
    let mut tx = db.begin_as(viewer.actor_id).await?;
    let candidate = sqlx::query_as(
        "SELECT c.id, c.hub_id, c.title, c.statement, c.status, c.created_by, p.display_name AS creator_name,
                c.created_at, c.updated_at, c.version
         FROM requirement_candidates c JOIN actors p ON p.id = c.created_by
         WHERE c.id = $1 AND c.hub_id = $2",
    )
    .bind(id)
    .bind(hub_id)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(candidate)
}

/// A candidate's evidence (active first, then removed) that `viewer` may read.
pub async fn evidence(db: &Db, viewer: &Viewer, candidate_id: i64) -> Result<EvidenceList, StoreError> {
    let mut qb = SqlBuilder::new(
        "SELECT a.id AS annotation_id, a.body, a.status AS annotation_status,
            CASE WHEN a.deleted_at IS NULL THEN 0 ELSE 1 END AS deleted, a.created_at,
            w.slug AS widget_slug, w.name AS widget_name, p.display_name AS author_name,
            c.label AS category_label, c.colour AS category_colour,
            ab.display_name AS added_by_name, e.added_at, e.removed_at, e.removed_reason
         FROM candidate_evidence e
         JOIN annotations a ON a.id = e.annotation_id
         JOIN widgets w ON w.id = a.widget_id
         JOIN actors p ON p.id = a.actor_id
         JOIN categories c ON c.id = a.category_id
         JOIN actors ab ON ab.id = e.added_by
         WHERE e.candidate_id = ",
    );
    qb.push_bind(candidate_id).push(" AND ");
    policy::push_annotation_visible(&mut qb, viewer);
    qb.push(" ORDER BY CASE WHEN e.removed_at IS NULL THEN 0 ELSE 1 END, e.added_at, a.id");
    let mut tx = db.begin_as(viewer.actor_id).await?;
    let items: Vec<Evidence> = qb.build_query_as()?.fetch_all(&mut *tx).await?;
    let active: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM candidate_evidence WHERE candidate_id = $1 AND removed_at IS NULL")
            .bind(candidate_id)
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    let visible = items.iter().filter(|e| e.removed_at.is_none()).count() as i64;
    Ok(EvidenceList { items, hidden: (active - visible).max(0) })
}

/// Annotations of the hub that `viewer` may read and that are not yet evidence of the
/// candidate, matching `query` (words in the body, or `#id`), newest first.
pub async fn evidence_candidates(
    db: &Db,
    viewer: &Viewer,
    hub_id: i64,
    candidate_id: i64,
    query: &str,
    limit: i64,
) -> Result<Vec<AnnotationRow>, StoreError> {
    let mut qb = SqlBuilder::new(ROW_SELECT);
    qb.push(" WHERE a.hub_id = ").push_bind(hub_id);
    qb.push(" AND a.deleted_at IS NULL AND NOT EXISTS (SELECT 1 FROM candidate_evidence e WHERE e.candidate_id = ")
        .push_bind(candidate_id)
        .push(" AND e.annotation_id = a.id AND e.removed_at IS NULL)");
    let query = query.trim();
    if let Some(id) = query.trim_start_matches('#').parse::<i64>().ok().filter(|_| !query.is_empty()) {
        qb.push(" AND (a.id = ").push_bind(id);
        qb.push(" OR LOWER(a.body) LIKE ").push_bind(like_pattern(query)).push(" ESCAPE '\\')");
    } else if !query.is_empty() {
        qb.push(" AND LOWER(a.body) LIKE ").push_bind(like_pattern(query)).push(" ESCAPE '\\'");
    }
    qb.push(" AND ");
    policy::push_annotation_visible(&mut qb, viewer);
    qb.push(" ORDER BY a.created_at DESC, a.id DESC LIMIT ").push_bind(limit);
    db.fetch_all_as(viewer.actor_id, qb).await
}

/// The ledger entries about a candidate, in chain order.
pub async fn history(
    db: &Db,
    viewer: &Viewer,
    hub_id: i64,
    candidate_id: i64,
) -> Result<Vec<HistoryEntry>, StoreError> {
    let mut tx = db.begin_as(viewer.actor_id).await?;
    let rows = sqlx::query_as(
        "SELECT l.seq, l.action, l.rationale, l.detail, l.created_at, l.hash, p.display_name AS actor_name
         FROM ledger_entries l JOIN actors p ON p.id = l.actor_id
         WHERE l.hub_id = $1 AND l.candidate_id = $2 ORDER BY l.seq",
    )
    .bind(hub_id)
    .bind(candidate_id)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows)
}

/// Proposes a candidate with its first evidence, marks the evidence promoted and writes the
/// `proposed` ledger entry, all inside the caller's transaction. Returns the candidate's id.
pub async fn propose(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    hub_id: i64,
    actor_id: i64,
    title: &str,
    statement: &str,
    evidence: &[i64],
) -> Result<i64, StoreError> {
    let now = now_ms();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO requirement_candidates (hub_id, title, statement, created_by, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
    )
    .bind(hub_id)
    .bind(title)
    .bind(statement)
    .bind(actor_id)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    let detail = serde_json::json!({ "title": title, "statement": statement }).to_string();
    ledger::append(
        tx,
        backend,
        &NewEntry { hub_id, candidate_id: Some(id), actor_id, action: "proposed", rationale: statement, detail },
    )
    .await?;
    for annotation_id in evidence {
        add_evidence(tx, backend, hub_id, id, *annotation_id, actor_id, "promoted from triage").await?;
    }
    Ok(id)
}

/// Links an annotation to a candidate as evidence, marks it promoted and writes the ledger entry.
/// [`StoreError::NotFound`] (and the caller's transaction should roll back) when the
/// annotation is not a live annotation of the hub.
pub async fn add_evidence(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    hub_id: i64,
    candidate_id: i64,
    annotation_id: i64,
    actor_id: i64,
    rationale: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO candidate_evidence (candidate_id, annotation_id, added_by, added_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(candidate_id)
    .bind(annotation_id)
    .bind(actor_id)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    promote_and_record(tx, backend, hub_id, candidate_id, annotation_id, actor_id, rationale).await
}

/// [`add_evidence`] from the candidate page: an annotation whose link was removed earlier is
/// linked again (the ledger keeps both events). [`StoreError::Conflict`] on
/// `candidate_evidence_active` when it is evidence already.
pub async fn attach_evidence(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    hub_id: i64,
    candidate_id: i64,
    annotation_id: i64,
    actor_id: i64,
    rationale: &str,
) -> Result<(), StoreError> {
    let existing: Option<Option<i64>> =
        sqlx::query_scalar("SELECT removed_at FROM candidate_evidence WHERE candidate_id = $1 AND annotation_id = $2")
            .bind(candidate_id)
            .bind(annotation_id)
            .fetch_optional(&mut **tx)
            .await?;
    match existing {
        None => add_evidence(tx, backend, hub_id, candidate_id, annotation_id, actor_id, rationale).await,
        Some(None) => Err(StoreError::Conflict { constraint: "candidate_evidence_active".into() }),
        Some(Some(_)) => {
            sqlx::query(
                "UPDATE candidate_evidence SET removed_at = NULL, removed_reason = NULL, added_by = $1, added_at = $2
                 WHERE candidate_id = $3 AND annotation_id = $4",
            )
            .bind(actor_id)
            .bind(now_ms())
            .bind(candidate_id)
            .bind(annotation_id)
            .execute(&mut **tx)
            .await?;
            promote_and_record(tx, backend, hub_id, candidate_id, annotation_id, actor_id, rationale).await
        }
    }
}

async fn promote_and_record(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    hub_id: i64,
    candidate_id: i64,
    annotation_id: i64,
    actor_id: i64,
    rationale: &str,
) -> Result<(), StoreError> {
    // The hub check keeps an annotation of another hub from becoming evidence here.
    let promoted = sqlx::query(
        "UPDATE annotations SET status = 'promoted', updated_at = $1, version = version + 1
         WHERE id = $2 AND hub_id = $3 AND deleted_at IS NULL",
    )
    .bind(now_ms())
    .bind(annotation_id)
    .bind(hub_id)
    .execute(&mut **tx)
    .await?;
    if promoted.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    touch(tx, hub_id, candidate_id).await?;
    ledger::append(
        tx,
        backend,
        &NewEntry {
            hub_id,
            candidate_id: Some(candidate_id),
            actor_id,
            action: "evidence_added",
            rationale,
            detail: serde_json::json!({ "annotation_id": annotation_id }).to_string(),
        },
    )
    .await?;
    Ok(())
}

/// Marks a candidate changed (the list sorts by it); [`StoreError::NotFound`] when the
/// candidate is not in the hub.
async fn touch(tx: &mut Transaction<'static, Any>, hub_id: i64, candidate_id: i64) -> Result<(), StoreError> {
    let done = sqlx::query("UPDATE requirement_candidates SET updated_at = $1 WHERE id = $2 AND hub_id = $3")
        .bind(now_ms())
        .bind(candidate_id)
        .bind(hub_id)
        .execute(&mut **tx)
        .await?;
    if done.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}

/// Removes an annotation from a candidate's evidence, keeping the link with when and why, and
/// writes `evidence_removed` to the ledger. An annotation that is no longer evidence of any
/// candidate goes back to `triaged` (recorded in its triage history), so it is not lost.
/// [`StoreError::NotFound`] when it is not active evidence of the candidate.
pub async fn remove_evidence(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    hub_id: i64,
    candidate_id: i64,
    annotation_id: i64,
    actor_id: i64,
    reason: &str,
) -> Result<(), StoreError> {
    let now = now_ms();
    let removed = sqlx::query(
        "UPDATE candidate_evidence SET removed_at = $1, removed_reason = $2
         WHERE candidate_id = $3 AND annotation_id = $4 AND removed_at IS NULL",
    )
    .bind(now)
    .bind(reason)
    .bind(candidate_id)
    .bind(annotation_id)
    .execute(&mut **tx)
    .await?;
    if removed.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    touch(tx, hub_id, candidate_id).await?;
    let reverted = sqlx::query(
        "UPDATE annotations SET status = 'triaged', updated_at = $1, version = version + 1
         WHERE id = $2 AND hub_id = $3 AND status = 'promoted' AND NOT EXISTS (
             SELECT 1 FROM candidate_evidence e WHERE e.annotation_id = $2 AND e.removed_at IS NULL)",
    )
    .bind(now)
    .bind(annotation_id)
    .bind(hub_id)
    .execute(&mut **tx)
    .await?;
    if reverted.rows_affected() > 0 {
        sqlx::query(
            "INSERT INTO annotation_changes (annotation_id, hub_id, actor_id, field, old_value, new_value, created_at)
             VALUES ($1, $2, $3, 'status', 'promoted', 'triaged', $4)",
        )
        .bind(annotation_id)
        .bind(hub_id)
        .bind(actor_id)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    ledger::append(
        tx,
        backend,
        &NewEntry {
            hub_id,
            candidate_id: Some(candidate_id),
            actor_id,
            action: "evidence_removed",
            rationale: reason,
            detail: serde_json::json!({ "annotation_id": annotation_id }).to_string(),
        },
    )
    .await?;
    Ok(())
}

/// A change of a candidate's title and statement.
#[derive(Debug, Clone)]
pub struct Edit<'a> {
    pub hub_id: i64,
    pub candidate_id: i64,
    pub actor_id: i64,
    pub title: &'a str,
    pub statement: &'a str,
    /// Why it changed (may be empty).
    pub reason: &'a str,
}

/// Changes a candidate's title and statement and writes `edited` to the ledger with what
/// changed (`{"title": {"from": …, "to": …}}`, the same for the statement). Returns whether
/// anything changed; nothing is written when nothing did.
pub async fn edit(tx: &mut Transaction<'static, Any>, backend: Backend, e: &Edit<'_>) -> Result<bool, StoreError> {
    let (title, statement): (String, String) =
        sqlx::query_as("SELECT title, statement FROM requirement_candidates WHERE id = $1 AND hub_id = $2")
            .bind(e.candidate_id)
            .bind(e.hub_id)
            .fetch_one(&mut **tx)
            .await?;
    let mut changes = serde_json::Map::new();
    if title != e.title {
        changes.insert("title".into(), serde_json::json!({ "from": title, "to": e.title }));
    }
    if statement != e.statement {
        changes.insert("statement".into(), serde_json::json!({ "from": statement, "to": e.statement }));
    }
    if changes.is_empty() {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE requirement_candidates SET title = $1, statement = $2, updated_at = $3, version = version + 1
         WHERE id = $4 AND hub_id = $5",
    )
    .bind(e.title)
    .bind(e.statement)
    .bind(now_ms())
    .bind(e.candidate_id)
    .bind(e.hub_id)
    .execute(&mut **tx)
    .await?;
    ledger::append(
        tx,
        backend,
        &NewEntry {
            hub_id: e.hub_id,
            candidate_id: Some(e.candidate_id),
            actor_id: e.actor_id,
            action: "edited",
            rationale: e.reason,
            detail: serde_json::Value::Object(changes).to_string(),
        },
    )
    .await?;
    Ok(true)
}

/// A status change of a candidate, with its reason.
#[derive(Debug, Clone)]
pub struct Decision<'a> {
    pub hub_id: i64,
    pub candidate_id: i64,
    pub actor_id: i64,
    pub from: &'a str,
    pub to: &'a str,
    pub rationale: &'a str,
}

/// Changes a candidate's status (only if it is still `from`) and writes the decision to the
/// ledger; [`StoreError::Stale`] when the status changed meanwhile, and
/// [`StoreError::Conflict`] on `candidate_lifecycle` when the lifecycle does not allow the
/// step or the rationale is empty (callers check with [`Status::check`] first to say why).
pub async fn decide(tx: &mut Transaction<'static, Any>, backend: Backend, d: &Decision<'_>) -> Result<(), StoreError> {
    let allowed =
        matches!((Status::parse(d.from), Status::parse(d.to)), (Some(from), Some(to)) if from.check(to).is_ok());
    if !allowed || d.rationale.trim().is_empty() {
        return Err(StoreError::Conflict { constraint: "candidate_lifecycle".into() });
    }
    let done = sqlx::query(
        "UPDATE requirement_candidates SET status = $1, updated_at = $2, version = version + 1
         WHERE id = $3 AND hub_id = $4 AND status = $5",
    )
    .bind(d.to)
    .bind(now_ms())
    .bind(d.candidate_id)
    .bind(d.hub_id)
    .bind(d.from)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::Stale);
    }
    ledger::append(
        tx,
        backend,
        &NewEntry {
            hub_id: d.hub_id,
            candidate_id: Some(d.candidate_id),
            actor_id: d.actor_id,
            action: "status_changed",
            rationale: d.rationale,
            detail: serde_json::json!({ "from": d.from, "to": d.to }).to_string(),
        },
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_allows_exactly_these_steps() {
        use Status::*;
        let allowed = [
            (Proposed, Accepted),
            (Proposed, Rejected),
            (Proposed, Deferred),
            (Accepted, Implemented),
            (Accepted, Proposed),
            (Rejected, Proposed),
            (Deferred, Proposed),
        ];
        for from in Status::ALL {
            for to in Status::ALL {
                assert_eq!(from.check(to).is_ok(), allowed.contains(&(from, to)), "{from:?} -> {to:?}");
            }
        }
        assert!(Implemented.next().is_empty());
    }

    #[test]
    fn refusals_say_why() {
        use Status::*;
        assert_eq!(Proposed.check(Proposed).unwrap_err(), "The candidate is already proposed.");
        assert!(Proposed.check(Implemented).unwrap_err().contains("Only an accepted candidate"));
        assert!(Rejected.check(Accepted).unwrap_err().contains("must be reopened"));
        assert!(Accepted.check(Rejected).unwrap_err().contains("implemented or reopened"));
        assert!(Implemented.check(Proposed).unwrap_err().contains("final"));
    }

    #[test]
    fn statuses_round_trip() {
        for (status, name) in Status::ALL.into_iter().zip(STATUSES) {
            assert_eq!(status.as_str(), name);
            assert_eq!(Status::parse(name), Some(status));
        }
        assert_eq!(Status::parse("done"), None);
    }

    #[test]
    fn drafts_are_trimmed_and_bounded() {
        assert_eq!(Draft::parse(" T ", " S ").expect("valid").title, "T");
        let errors = Draft::parse(" ", &"x".repeat(STATEMENT_MAX + 1)).unwrap_err();
        assert!(errors.title.is_some() && errors.statement.is_some());
        assert!(Draft::parse(&"é".repeat(TITLE_MAX), "s").is_ok());
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern(" 50%_Off\\ "), "%50\\%\\_off\\\\%");
    }

    #[test]
    fn history_headlines() {
        let entry = |action: &str, detail: &str| HistoryEntry {
            seq: 1,
            action: action.into(),
            rationale: String::new(),
            detail: detail.into(),
            created_at: 0,
            hash: "abcdef0123456789".into(),
            actor_name: "Olga".into(),
        };
        assert_eq!(
            entry("status_changed", r#"{"from":"rejected","to":"proposed"}"#).headline(),
            "Reopened (rejected → proposed)"
        );
        assert_eq!(entry("evidence_removed", r#"{"annotation_id":7}"#).headline(), "Removed evidence #7");
        assert_eq!(entry("edited", r#"{"title":{"from":"a","to":"b"}}"#).headline(), "Edited the title");
        assert_eq!(entry("proposed", "{}").short_hash(), "abcdef012345");
    }
}
