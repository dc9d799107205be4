//! The mail worker: a tokio task per instance (only when `IHF_SMTP_URL` is set) that queues the
//! daily digests that are due, claims due mails from the queue, sends them over SMTP and records
//! what happened; a failed mail is retried with doubling waits for a day.
//!
//! Sending is at least once, as for webhooks: a claim is a lease ([`LEASE_MS`]), so a mail whose
//! instance dies mid-send goes out again after the lease; within it no other instance touches
//! the row, and two instances never claim the same mail.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::{self, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::db::notifications::{self as store, ClaimedMail, MailOutcome};
use crate::db::{Db, StoreError, now_ms};
use crate::lifecycle::ShutdownSignal;

/// How long a claimed mail stays with its worker.
pub const LEASE_MS: i64 = 120_000;
/// Longest sleep between looks at the queue (triggers enqueue without telling us).
const POLL: Duration = Duration::from_millis(250);
/// Mails claimed at once.
const BATCH: i64 = 16;
/// How often due digests are gathered, at most.
const DIGEST_CHECK: Duration = Duration::from_secs(60);
/// How long a mail is retried before it is given up.
const RETRY_FOR_MS: i64 = crate::clock::DAY_MS;

/// `List-Unsubscribe: <url>` (RFC 2369).
#[derive(Debug, Clone)]
struct ListUnsubscribe(String);

impl header::Header for ListUnsubscribe {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe")
    }
    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.trim().trim_start_matches('<').trim_end_matches('>').to_owned()))
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), format!("<{}>", self.0))
    }
}

/// `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058).
#[derive(Debug, Clone)]
struct ListUnsubscribePost;

impl header::Header for ListUnsubscribePost {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe-Post")
    }
    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self)
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "List-Unsubscribe=One-Click".to_owned())
    }
}

/// What the worker needs.
pub struct Mailer {
    db: Db,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    base_url: String,
    secret: Arc<[u8]>,
    retry_base_ms: u64,
    digest_period_ms: i64,
}

impl Mailer {
    /// A worker for the SMTP server at `smtp_url` (`smtp://`, `smtps://`, `?tls=required`).
    pub fn new(
        db: Db,
        smtp_url: &str,
        from: &str,
        base_url: String,
        secret: Arc<[u8]>,
        retry_base_ms: u64,
        digest_period: Duration,
    ) -> anyhow::Result<Self> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp_url)
            .map_err(|e| anyhow::anyhow!("IHF_SMTP_URL: {e}"))?
            .timeout(Some(Duration::from_secs(20)))
            .build();
        let from = from.parse::<Mailbox>().map_err(|e| anyhow::anyhow!("IHF_MAIL_FROM: {e}"))?;
        Ok(Self {
            db,
            transport,
            from,
            base_url,
            secret,
            retry_base_ms,
            digest_period_ms: digest_period.as_millis() as i64,
        })
    }

    /// Starts the worker as a task that runs until `shutdown` fires.
    pub fn spawn(self, shutdown: ShutdownSignal) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run(shutdown))
    }

    async fn run(self, mut shutdown: ShutdownSignal) {
        let mut last_digest_check: Option<tokio::time::Instant> = None;
        loop {
            if shutdown.is_triggered() {
                break;
            }
            let digest_every = DIGEST_CHECK.min(Duration::from_millis(self.digest_period_ms.max(1) as u64));
            if last_digest_check.is_none_or(|at| at.elapsed() >= digest_every) {
                last_digest_check = Some(tokio::time::Instant::now());
                if let Err(e) = store::gather_digests(&self.db, now_ms(), self.digest_period_ms).await {
                    tracing::warn!(error = %e, "mail worker: cannot gather digests");
                }
            }
            let sleep = match self.claim().await {
                Ok(claimed) if !claimed.is_empty() => {
                    for mail in claimed {
                        let outcome = self.attempt(&mail).await;
                        if let MailOutcome::Retry { error, .. } | MailOutcome::Failed { error } = &outcome {
                            tracing::info!(mail = mail.id, attempts = mail.attempts, error, "notification mail failed");
                        }
                        if let Err(e) = store::record(&self.db, mail.id, &outcome).await {
                            tracing::warn!(error = %e, mail = mail.id, "could not record a mail; it is sent again after its lease");
                        }
                    }
                    continue;
                }
                Ok(_) => POLL,
                Err(e) => {
                    tracing::warn!(error = %e, "mail worker: cannot read the queue");
                    Duration::from_secs(2)
                }
            };
            tokio::select! {
                () = tokio::time::sleep(sleep) => {}
                () = shutdown.wait() => break,
            }
        }
        tracing::debug!("mail worker stopped");
    }

    async fn claim(&self) -> Result<Vec<ClaimedMail>, StoreError> {
        if !matches!(store::next_due_at(&self.db).await?, Some(at) if at <= now_ms()) {
            return Ok(Vec::new());
        }
        store::claim_due(&self.db, now_ms(), LEASE_MS, BATCH).await
    }

    async fn attempt(&self, mail: &ClaimedMail) -> MailOutcome {
        let to = match (&mail.email, mail.email_mode.as_str()) {
            (_, "off") => return MailOutcome::Failed { error: "unsubscribed".into() },
            (Some(email), _) if !email.is_empty() => email.clone(),
            _ => return MailOutcome::Failed { error: "no email address".into() },
        };
        let items = match store::mail_notifications(&self.db, mail).await {
            Ok(items) if items.is_empty() => return MailOutcome::Failed { error: "nothing to send".into() },
            Ok(items) => items,
            Err(e) => return self.retry(mail, format!("reading the notifications: {e}")),
        };
        let recipient = if mail.actor_kind == "visitor" { super::Recipient::Visitor } else { super::Recipient::Person };
        let content =
            super::compose_for(recipient, &self.base_url, &self.secret, mail.recipient_id, &mail.display_name, &items);
        let to = match to.parse::<Mailbox>() {
            Ok(address) => Mailbox::new(Some(mail.display_name.clone()), address.email),
            Err(e) => return MailOutcome::Failed { error: format!("bad address: {e}") },
        };
        let message = Message::builder()
            // One id per queued mail: a receiver can tell a resend (after a lost lease) apart.
            .message_id(Some(format!("<ihf-mail-{}@{}>", mail.id, self.from.email.domain())))
            .from(self.from.clone())
            .to(to)
            .subject(content.subject)
            .header(ListUnsubscribe(content.unsubscribe_url))
            .header(ListUnsubscribePost)
            .multipart(MultiPart::alternative_plain_html(content.text, content.html));
        let message = match message {
            Ok(message) => message,
            Err(e) => return MailOutcome::Failed { error: format!("cannot build the mail: {e}") },
        };
        match self.transport.send(message).await {
            Ok(_) => MailOutcome::Sent,
            Err(e) if e.is_permanent() => MailOutcome::Failed { error: format!("refused: {e}") },
            Err(e) => self.retry(mail, e.to_string()),
        }
    }

    fn retry(&self, mail: &ClaimedMail, error: String) -> MailOutcome {
        let retry_at = now_ms() + crate::webhooks::backoff_ms(self.retry_base_ms, mail.attempts);
        if retry_at > mail.created_at + RETRY_FOR_MS {
            MailOutcome::Failed { error: format!("{error}; gave up after {} attempts", mail.attempts) }
        } else {
            MailOutcome::Retry { error, retry_at }
        }
    }
}
