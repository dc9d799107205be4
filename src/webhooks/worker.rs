//! The delivery worker: a tokio task per instance that claims due deliveries from the queue,
//! POSTs them, and records what happened.
//!
//! Delivery is at least once: a claim is a lease ([`LEASE_MS`], longer than the request
//! timeout), so if an instance dies mid-send another one sends again after the lease; within
//! the lease no other instance touches the row. On shutdown the worker stops claiming,
//! finishes the batch in flight and records it, then returns.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;

use super::guard::{self, PublicResolver};
use crate::db::webhooks::{self, ClaimedDelivery, Outcome};
use crate::db::{Db, now_ms};
use crate::lifecycle::ShutdownSignal;
use crate::metrics::Metrics;

/// How long a claimed delivery stays with its worker.
pub const LEASE_MS: i64 = 60_000;
/// Longest wait for a receiver's answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest sleep between looks at the queue (triggers enqueue without telling us).
const POLL: Duration = Duration::from_millis(250);
/// Deliveries sent concurrently per batch.
const BATCH: i64 = 16;

/// What the worker needs.
pub struct Worker {
    db: Db,
    client: reqwest::Client,
    allow_private: bool,
    retry_base_ms: u64,
    metrics: Arc<Metrics>,
}

impl Worker {
    /// A worker with its HTTP client: no redirects (a 3xx is a failure, not a way around the
    /// address check), no proxies from the environment, names resolved by [`PublicResolver`].
    pub fn new(db: Db, allow_private: bool, retry_base_ms: u64, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(PublicResolver { allow_private }))
            .user_agent(concat!("IHF-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { db, client, allow_private, retry_base_ms, metrics })
    }

    /// Starts the worker as a task that runs until `shutdown` fires.
    pub fn spawn(self, shutdown: ShutdownSignal) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run(shutdown))
    }

    async fn run(self, mut shutdown: ShutdownSignal) {
        loop {
            if shutdown.is_triggered() {
                break;
            }
            let sleep = match self.tick().await {
                Ok(true) => continue, // a full batch: there may be more
                Ok(false) => self.until_next_due().await,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook worker: cannot read the queue");
                    Duration::from_secs(2)
                }
            };
            tokio::select! {
                () = tokio::time::sleep(sleep) => {}
                () = shutdown.wait() => break,
            }
        }
        tracing::debug!("webhook worker stopped");
    }

    async fn until_next_due(&self) -> Duration {
        match webhooks::next_due_at(&self.db).await {
            Ok(Some(at)) => Duration::from_millis((at - now_ms()).clamp(0, POLL.as_millis() as i64) as u64),
            _ => POLL,
        }
    }

    /// Sends one batch of due deliveries; `Ok(true)` when the batch was full.
    pub async fn tick(&self) -> Result<bool, crate::db::StoreError> {
        if !matches!(webhooks::next_due_at(&self.db).await?, Some(at) if at <= now_ms()) {
            return Ok(false);
        }
        let claimed = webhooks::claim_due(&self.db, now_ms(), LEASE_MS, BATCH).await?;
        let full = claimed.len() as i64 == BATCH;
        join_all(claimed.into_iter().map(|delivery| self.deliver(delivery))).await;
        Ok(full)
    }

    async fn deliver(&self, delivery: ClaimedDelivery) {
        let outcome = self.attempt(&delivery).await;
        match &outcome {
            Outcome::Delivered { .. } => self.metrics.webhook_delivered.inc(),
            Outcome::Retry { .. } => self.metrics.webhook_retried.inc(),
            Outcome::Failed { .. } => self.metrics.webhook_failed.inc(),
        }
        if let Outcome::Retry { error, .. } | Outcome::Failed { error, .. } = &outcome {
            tracing::info!(
                delivery = delivery.id,
                webhook = delivery.webhook_id,
                attempts = delivery.attempts,
                error,
                "webhook delivery failed"
            );
        }
        if let Err(e) = webhooks::record(&self.db, delivery.id, &outcome).await {
            // The lease runs out and the delivery is sent again: at least once.
            tracing::warn!(error = %e, delivery = delivery.id, "could not record a webhook delivery");
        }
    }

    async fn attempt(&self, delivery: &ClaimedDelivery) -> Outcome {
        // IP literals never reach the resolver: check them here (the URL was checked when it
        // was saved, but the configuration may have changed since).
        if !self.allow_private
            && let Ok(url) = reqwest::Url::parse(&delivery.url)
            && let Some(ip) = url.host_str().and_then(guard::literal_ip)
            && !guard::is_public(ip)
        {
            return Outcome::Failed { status: None, error: format!("refused: {ip} is not a public address") };
        }
        let timestamp = now_ms() / 1000;
        let response = self
            .client
            .post(&delivery.url)
            .header("Content-Type", "application/json")
            .header("IHF-Event", &delivery.event)
            .header("IHF-Delivery", delivery.id.to_string())
            .header("IHF-Signature", super::signature(&delivery.secret, timestamp, &delivery.payload))
            .body(delivery.payload.clone())
            .send()
            .await;
        let (status, error) = match response {
            Ok(response) if response.status().is_success() => {
                return Outcome::Delivered { status: i64::from(response.status().as_u16()) };
            }
            Ok(response) => (Some(i64::from(response.status().as_u16())), format!("answered {}", response.status())),
            Err(e) => (None, describe(&e)),
        };
        let retry_at = now_ms() + super::backoff_ms(self.retry_base_ms, delivery.attempts);
        if retry_at > delivery.created_at + super::RETRY_FOR_MS {
            Outcome::Failed { status, error: format!("{error}; gave up after {} attempts", delivery.attempts) }
        } else {
            Outcome::Retry { status, error, retry_at }
        }
    }
}

/// A short, operator-readable reason for a transport error, with its cause chain.
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text.chars().take(500).collect()
}
