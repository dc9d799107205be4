//! Notifications and the mail queue.
//!
//! Notifications are written by database triggers (migration 0021) inside the transaction that
//! made the change: an annotation triaged, dismissed, marked duplicate or promoted notifies its
//! author; a candidate decided notifies the authors of its evidence; new feedback notifies the
//! widget's owner. Each recipient is one the access policy lets read the item at that moment
//! (authors read their own annotations, owners their widget's inbox), and whoever caused the
//! event is never notified of it. The same triggers queue an immediate mail for people who
//! want one; [`gather_digests`] queues the daily digests.
//!
//! The mail queue (`email_outbox`) is claimed like webhook deliveries: [`claim_due`] pushes the
//! claimed rows' `next_attempt_at` past a lease in the statement that selects them, with
//! `FOR UPDATE SKIP LOCKED` on PostgreSQL and inside `BEGIN IMMEDIATE` on SQLite, so two
//! instances never claim one mail; a mail whose instance dies is due again after the lease.

use sqlx::{Any, Transaction};

use super::{Backend, Db, Dialect, StoreError, now_ms};

/// How people get mail: at once, as a daily digest, or not at all.
pub const EMAIL_MODES: [&str; 3] = ["immediate", "daily", "off"];

/// A notification with what its text and link need.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Notification {
    pub id: i64,
    pub recipient_id: i64,
    pub kind: String,
    pub hub_id: i64,
    pub hub_slug: String,
    pub hub_name: String,
    pub widget_slug: Option<String>,
    pub widget_name: Option<String>,
    pub annotation_id: Option<i64>,
    pub candidate_id: Option<i64>,
    pub reply_id: Option<i64>,
    pub candidate_title: Option<String>,
    pub actor_name: Option<String>,
    pub excerpt: Option<String>,
    pub detail: String,
    pub created_at: i64,
    pub read_at: Option<i64>,
}

impl Notification {
    /// One line saying what happened, in the product's words.
    pub fn headline(&self) -> String {
        let who = self.actor_name.as_deref().unwrap_or("Someone");
        let widget = self.widget_name.as_deref().unwrap_or("a widget");
        let candidate = self.candidate_title.as_deref().unwrap_or("a requirement candidate");
        match self.kind.as_str() {
            "new_feedback" => format!("{who} left feedback on {widget}"),
            "triaged" => format!("{who} triaged your feedback on {widget}"),
            "dismissed" => {
                format!("{who} dismissed your feedback on {widget}: {}", super::triage::reason_label(&self.detail))
            }
            "duplicate" => format!("{who} marked your feedback on {widget} as a duplicate of #{}", self.detail),
            "promoted" => format!("{who} promoted your feedback to “{candidate}”"),
            "candidate_accepted" => format!("“{candidate}”, which you asked for, was accepted"),
            "candidate_rejected" => format!("“{candidate}”, which you asked for, was rejected"),
            "candidate_deferred" => format!("“{candidate}”, which you asked for, was deferred"),
            "candidate_implemented" => format!("“{candidate}”, which you asked for, was implemented"),
            "replied" => format!("{who} replied to your feedback on {widget}"),
            "mentioned" => format!("{who} mentioned you in a reply on {widget}"),
            other => format!("{who}: {other}"),
        }
    }

    /// The rationale of a decision, shown under the headline.
    pub fn rationale(&self) -> Option<&str> {
        self.kind.starts_with("candidate_").then_some(self.detail.as_str()).filter(|r| !r.is_empty())
    }

    /// The start of the reply, for reply and mention notifications.
    pub fn reply_text(&self) -> Option<&str> {
        matches!(self.kind.as_str(), "replied" | "mentioned").then_some(self.detail.as_str()).filter(|r| !r.is_empty())
    }

    /// The path of the item (the annotation, at the reply when there is one; for decisions the
    /// candidate), from the site root.
    pub fn path(&self) -> String {
        let annotation = match (&self.widget_slug, self.annotation_id) {
            (Some(widget), Some(id)) => Some(format!("/hubs/{}/widgets/{widget}/annotations/{id}", self.hub_slug)),
            _ => None,
        };
        let candidate = self.candidate_id.map(|id| format!("/hubs/{}/candidates/{id}", self.hub_slug));
        match (self.kind.starts_with("candidate_"), annotation, candidate, self.reply_id) {
            (true, _, Some(candidate), _) => candidate,
            (_, Some(annotation), _, Some(reply)) => format!("{annotation}#reply-{reply}"),
            (_, Some(annotation), ..) => annotation,
            (_, None, Some(candidate), _) => candidate,
            _ => format!("/hubs/{}", self.hub_slug),
        }
    }
}

const SELECT: &str = "SELECT n.id, n.recipient_id, n.kind, n.hub_id, h.slug AS hub_slug, h.name AS hub_name,
        w.slug AS widget_slug, w.name AS widget_name, n.annotation_id, n.candidate_id, n.reply_id,
        c.title AS candidate_title, ac.display_name AS actor_name, SUBSTR(a.body, 1, 140) AS excerpt,
        n.detail, n.created_at, n.read_at
   FROM notifications n
   JOIN hubs h ON h.id = n.hub_id
   LEFT JOIN widgets w ON w.id = n.widget_id
   LEFT JOIN annotations a ON a.id = n.annotation_id AND a.deleted_at IS NULL
   LEFT JOIN requirement_candidates c ON c.id = n.candidate_id
   LEFT JOIN actors ac ON ac.id = n.actor_id";

/// The newest notifications of `recipient_id`, newest first.
pub async fn list(db: &Db, recipient_id: i64, limit: i64) -> Result<Vec<Notification>, StoreError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} WHERE n.recipient_id = $1 ORDER BY n.id DESC LIMIT $2")))
        .bind(recipient_id)
        .bind(limit)
        .fetch_all(db.reader())
        .await?)
}

/// How many notifications of `recipient_id` are unread (the bell).
pub async fn unread_count(db: &Db, recipient_id: i64) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM notifications WHERE recipient_id = $1 AND read_at IS NULL")
        .bind(recipient_id)
        .fetch_one(db.reader())
        .await?)
}

/// Marks one notification of `recipient_id` read; [`StoreError::NotFound`] when it is not theirs.
pub async fn mark_read(db: &Db, recipient_id: i64, id: i64) -> Result<(), StoreError> {
    let done =
        sqlx::query("UPDATE notifications SET read_at = COALESCE(read_at, $1) WHERE id = $2 AND recipient_id = $3")
            .bind(now_ms())
            .bind(id)
            .bind(recipient_id)
            .execute(db.writer())
            .await?;
    if done.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}

/// Marks every unread notification of `recipient_id` read; returns how many.
pub async fn mark_all_read(db: &Db, recipient_id: i64) -> Result<u64, StoreError> {
    Ok(sqlx::query("UPDATE notifications SET read_at = $1 WHERE recipient_id = $2 AND read_at IS NULL")
        .bind(now_ms())
        .bind(recipient_id)
        .execute(db.writer())
        .await?
        .rows_affected())
}

/// The notifications of a reply just written, inside its transaction: the annotation's author
/// (unless they wrote the reply; for an internal reply only when they are the hub's staff, who
/// alone read it), and the hub's staff among the people it `mentions` by handle (who read every
/// annotation of their hub and its internal replies), each once and never the reply's author.
///
/// On PostgreSQL the reply is written as the restricted role, which cannot touch the
/// notification tables: the same statements run inside the SECURITY DEFINER function
/// `ihf_notify_reply` (migration 0021).
pub async fn on_reply(
    tx: &mut Transaction<'static, Any>,
    reply_id: i64,
    mentions: &[String],
) -> Result<(), StoreError> {
    let handles = serde_json::to_string(mentions).unwrap_or_else(|_| "[]".into());
    match tx.backend() {
        Backend::Postgres => {
            sqlx::query("SELECT ihf_notify_reply($1, $2)").bind(reply_id).bind(handles).execute(&mut **tx).await?;
        }
        Backend::Sqlite => {
            sqlx::query(REPLIED).bind(reply_id).execute(&mut **tx).await?;
            sqlx::query(MENTIONED).bind(reply_id).bind(handles).execute(&mut **tx).await?;
        }
    }
    Ok(())
}

/// The author of the annotation replied to (SQLite; PostgreSQL: `ihf_notify_reply`).
const REPLIED: &str = "INSERT INTO notifications (recipient_id, hub_id, kind, widget_id, annotation_id, reply_id, actor_id, detail, created_at)
    SELECT a.actor_id, r.hub_id, 'replied', r.widget_id, r.annotation_id, r.id, r.actor_id, SUBSTR(r.body, 1, 280), r.created_at
      FROM annotation_replies r JOIN annotations a ON a.id = r.annotation_id JOIN actors au ON au.id = a.actor_id
     WHERE r.id = $1 AND a.deleted_at IS NULL AND a.actor_id <> r.actor_id
       AND (r.internal = 0 OR au.is_admin = 1 OR EXISTS (SELECT 1 FROM hub_members m
             WHERE m.hub_id = r.hub_id AND m.actor_id = a.actor_id AND m.role IN ('triager', 'operator')))";

/// The staff a reply mentions (`$2`: a JSON array of handles).
const MENTIONED: &str = "INSERT INTO notifications (recipient_id, hub_id, kind, widget_id, annotation_id, reply_id, actor_id, detail, created_at)
    SELECT p.id, r.hub_id, 'mentioned', r.widget_id, r.annotation_id, r.id, r.actor_id, SUBSTR(r.body, 1, 280), r.created_at
      FROM annotation_replies r JOIN annotations a ON a.id = r.annotation_id
      JOIN actors p ON p.handle IN (SELECT value FROM json_each($2))
     WHERE r.id = $1 AND a.deleted_at IS NULL AND p.id <> r.actor_id AND p.id <> a.actor_id
       AND (p.is_admin = 1 OR EXISTS (SELECT 1 FROM hub_members m
             WHERE m.hub_id = r.hub_id AND m.actor_id = p.id AND m.role IN ('triager', 'operator')))";

/// A person's mail settings.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct EmailSettings {
    pub email: Option<String>,
    pub email_mode: String,
}

/// The mail settings of `actor_id`.
pub async fn email_settings(db: &Db, actor_id: i64) -> Result<EmailSettings, StoreError> {
    Ok(sqlx::query_as("SELECT email, email_mode FROM actors WHERE id = $1")
        .bind(actor_id)
        .fetch_one(db.reader())
        .await?)
}

/// Why an address or a mode was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("enter an email address like name@example.com")]
    Address,
    #[error("choose immediate, daily or off")]
    Mode,
}

/// Checks an address (trimmed; empty means none): one `@`, something either side, no spaces or
/// angle brackets, at most 254 characters. Returns it lowercased in the domain.
pub fn parse_email(raw: &str) -> Result<Option<String>, EmailError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let (local, domain) = raw.split_once('@').ok_or(EmailError::Address)?;
    let bad = |c: char| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';' | '"' | '@');
    if raw.chars().count() > 254
        || local.is_empty()
        || local.chars().any(bad)
        || domain.is_empty()
        || domain.chars().any(bad)
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
    {
        return Err(EmailError::Address);
    }
    Ok(Some(format!("{local}@{}", domain.to_ascii_lowercase())))
}

/// Checks a mail mode name.
pub fn parse_mode(raw: &str) -> Result<&'static str, EmailError> {
    EMAIL_MODES.iter().find(|m| **m == raw.trim()).copied().ok_or(EmailError::Mode)
}

/// Sets the address (`None`: none) and mode of `actor_id`.
pub async fn set_email(db: &Db, actor_id: i64, email: Option<&str>, mode: &str) -> Result<(), StoreError> {
    let done = sqlx::query("UPDATE actors SET email = $1, email_mode = $2 WHERE id = $3")
        .bind(email)
        .bind(mode)
        .bind(actor_id)
        .execute(db.writer())
        .await?;
    if done.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}

/// Keeps the address a host site gives for its visitor `actor_id` (read first: no write when it
/// is the same). A changed address turns mail off until the visitor opts in again.
pub async fn keep_visitor_email(db: &Db, actor_id: i64, email: &str) -> Result<(), StoreError> {
    let current: Option<Option<String>> =
        sqlx::query_scalar("SELECT email FROM actors WHERE id = $1 AND kind = 'visitor'")
            .bind(actor_id)
            .fetch_optional(db.reader())
            .await?;
    if matches!(&current, Some(Some(kept)) if kept == email) || current.is_none() {
        return Ok(());
    }
    sqlx::query("UPDATE actors SET email = $1, email_mode = 'off' WHERE id = $2 AND kind = 'visitor'")
        .bind(email)
        .bind(actor_id)
        .execute(db.writer())
        .await?;
    Ok(())
}

/// An embed visitor's opt-in: mail at once (`true`) or none, for a visitor with an address.
/// [`StoreError::NotFound`] when the visitor has no address.
pub async fn set_visitor_opt_in(db: &Db, actor_id: i64, opt_in: bool) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE actors SET email_mode = $1 WHERE id = $2 AND kind = 'visitor' AND email IS NOT NULL AND email <> ''",
    )
    .bind(if opt_in { "immediate" } else { "off" })
    .bind(actor_id)
    .execute(db.writer())
    .await?;
    if done.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}

/// Stops all mail to `actor_id` (the unsubscribe link), and gives up their queued mail.
pub async fn unsubscribe(db: &Db, actor_id: i64) -> Result<(), StoreError> {
    let mut tx = db.begin_write().await?;
    let done =
        sqlx::query("UPDATE actors SET email_mode = 'off' WHERE id = $1").bind(actor_id).execute(&mut *tx).await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    sqlx::query(
        "UPDATE email_outbox SET state = 'failed', last_error = 'unsubscribed'
          WHERE recipient_id = $1 AND state = 'pending'",
    )
    .bind(actor_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Queues one digest mail for each person who wants daily digests, has an address, got no
/// digest within `period_ms`, and has notifications no mail carried yet; each notification goes
/// into exactly one digest (of its own recipient). Returns the digests queued.
///
/// Instances may run this at the same time: on PostgreSQL the people are locked
/// (`FOR UPDATE SKIP LOCKED`) and their `last_digest_at` checked again in the update; on
/// SQLite the write lock is held throughout.
pub async fn gather_digests(db: &Db, now: i64, period_ms: i64) -> Result<Vec<i64>, StoreError> {
    let lock = db.backend().claim_lock();
    let mut tx = db.begin_write().await?;
    let due: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT a.id FROM actors a
          WHERE a.email_mode = 'daily' AND a.email IS NOT NULL AND a.email <> ''
            AND (a.last_digest_at IS NULL OR a.last_digest_at <= $1)
            AND EXISTS (SELECT 1 FROM notifications n WHERE n.recipient_id = a.id AND n.digest_id IS NULL
                          AND NOT EXISTS (SELECT 1 FROM email_outbox o WHERE o.notification_id = n.id))
          ORDER BY a.id{lock}"
    )))
    .bind(now - period_ms)
    .fetch_all(&mut *tx)
    .await?;
    let mut queued = Vec::with_capacity(due.len());
    for actor_id in due {
        let claimed = sqlx::query(
            "UPDATE actors SET last_digest_at = $1 WHERE id = $2 AND (last_digest_at IS NULL OR last_digest_at <= $3)",
        )
        .bind(now)
        .bind(actor_id)
        .bind(now - period_ms)
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() == 0 {
            continue;
        }
        let digest: i64 = sqlx::query_scalar(
            "INSERT INTO email_outbox (recipient_id, kind, next_attempt_at, created_at)
             VALUES ($1, 'digest', $2, $2) RETURNING id",
        )
        .bind(actor_id)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE notifications SET digest_id = $1
              WHERE recipient_id = $2 AND digest_id IS NULL
                AND NOT EXISTS (SELECT 1 FROM email_outbox o WHERE o.notification_id = notifications.id)",
        )
        .bind(digest)
        .bind(actor_id)
        .execute(&mut *tx)
        .await?;
        queued.push(digest);
    }
    tx.commit().await?;
    Ok(queued)
}

/// A claimed mail with its recipient.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedMail {
    pub id: i64,
    pub recipient_id: i64,
    pub kind: String,
    pub notification_id: Option<i64>,
    /// Attempts including this one.
    pub attempts: i64,
    pub created_at: i64,
    pub email: Option<String>,
    pub email_mode: String,
    pub display_name: String,
    /// `person` or `visitor` (an embed visitor opens no IHF page: their mail links to none).
    pub actor_kind: String,
}

/// A queued mail as stored (for the tests and the CLI).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub recipient_id: i64,
    pub kind: String,
    pub notification_id: Option<i64>,
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
}

/// Every queued mail, oldest first.
pub async fn outbox(db: &Db) -> Result<Vec<OutboxRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, recipient_id, kind, notification_id, state, attempts, last_error FROM email_outbox ORDER BY id",
    )
    .fetch_all(db.reader())
    .await?)
}

/// When the next pending mail is due (a cheap read, so an idle worker never takes the SQLite
/// writer just to find nothing).
pub async fn next_due_at(db: &Db) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar("SELECT MIN(next_attempt_at) FROM email_outbox WHERE state = 'pending'")
        .fetch_one(db.reader())
        .await?)
}

/// Claims up to `limit` due mails for `lease_ms`: counts the attempt and moves
/// `next_attempt_at` to the end of the lease, in one statement.
pub async fn claim_due(db: &Db, now: i64, lease_ms: i64, limit: i64) -> Result<Vec<ClaimedMail>, StoreError> {
    let lock = db.backend().claim_lock();
    let mut tx = db.begin_write().await?;
    let ids: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "UPDATE email_outbox SET attempts = attempts + 1, next_attempt_at = $1
          WHERE id IN (SELECT id FROM email_outbox WHERE state = 'pending' AND next_attempt_at <= $2
                        ORDER BY next_attempt_at, id LIMIT $3{lock})
         RETURNING id"
    )))
    .bind(now + lease_ms)
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    if ids.is_empty() {
        tx.commit().await?;
        return Ok(Vec::new());
    }
    let mut qb = super::sql::SqlBuilder::new(
        "SELECT o.id, o.recipient_id, o.kind, o.notification_id, o.attempts, o.created_at, a.email, a.email_mode,
                a.display_name, a.kind AS actor_kind
           FROM email_outbox o JOIN actors a ON a.id = o.recipient_id WHERE o.id IN (",
    );
    qb.push_bind_list(ids).push(") ORDER BY o.id");
    let claimed = qb.build_query_as()?.fetch_all(&mut *tx).await?;
    tx.commit().await?;
    Ok(claimed)
}

/// What a claimed mail is about: its one notification, or the digest's, oldest first.
pub async fn mail_notifications(db: &Db, mail: &ClaimedMail) -> Result<Vec<Notification>, StoreError> {
    let (filter, id) = match mail.notification_id {
        Some(id) => ("n.id = $1", id),
        None => ("n.digest_id = $1", mail.id),
    };
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE {filter} AND n.recipient_id = $2 ORDER BY n.hub_id, n.id"
    )))
    .bind(id)
    .bind(mail.recipient_id)
    .fetch_all(db.reader())
    .await?)
}

/// What came of one attempt at a mail.
#[derive(Debug, Clone)]
pub enum MailOutcome {
    /// The SMTP server took it.
    Sent,
    /// It failed; try again at `retry_at`.
    Retry { error: String, retry_at: i64 },
    /// It failed for good (refused, out of time, nobody to send it to).
    Failed { error: String },
}

/// Records the outcome of an attempt on a claimed mail.
pub async fn record(db: &Db, mail_id: i64, outcome: &MailOutcome) -> Result<(), StoreError> {
    let query = match outcome {
        MailOutcome::Sent => {
            sqlx::query("UPDATE email_outbox SET state = 'sent', sent_at = $1, last_error = NULL WHERE id = $2")
                .bind(now_ms())
        }
        MailOutcome::Retry { error, retry_at } => {
            sqlx::query("UPDATE email_outbox SET next_attempt_at = $1, last_error = $2 WHERE id = $3")
                .bind(*retry_at)
                .bind(error.clone())
        }
        MailOutcome::Failed { error } => {
            sqlx::query("UPDATE email_outbox SET state = 'failed', last_error = $1 WHERE id = $2").bind(error.clone())
        }
    };
    query.bind(mail_id).execute(db.writer()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked() {
        assert_eq!(parse_email(" Ana@Example.COM "), Ok(Some("Ana@example.com".into())));
        assert_eq!(parse_email(""), Ok(None));
        for bad in ["ana", "ana@", "@x.org", "ana@localhost", "a b@x.org", "a@x.org>", "a@@x.org", "a@.org"] {
            assert_eq!(parse_email(bad), Err(EmailError::Address), "{bad}");
        }
        assert_eq!(parse_mode("daily"), Ok("daily"));
        assert_eq!(parse_mode("weekly"), Err(EmailError::Mode));
    }
}
