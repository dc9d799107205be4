//! The delivery worker: a tokio task per instance that claims due deliveries from the queue,
//! POSTs them, and records what happened.
//!
//! Delivery is at least once: a claim is a lease ([`LEASE_MS`], longer than the request
//! timeout), so if an instance dies mid-send another one sends again after the lease; within
//! the lease no other instance touches the row.
//!
//! Each delivery is its own task, and one receiver never holds up another: at most
//! [`PER_ENDPOINT`] deliveries per webhook are in flight, a webhook at that limit is left out
//! of the next claims, and the worker claims again as soon as any delivery finishes (not when a
//! whole batch has). A receiver that hangs costs its own deliveries the request timeout, nobody
//! else's. On shutdown the worker stops claiming, lets the deliveries in flight finish and
//! record their outcome, then returns.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use super::guard::{self, PublicResolver};
use crate::db::webhooks::{self, ClaimedDelivery, Outcome};
use crate::db::{Db, StoreError, now_ms};
use crate::lifecycle::ShutdownSignal;
use crate::metrics::Metrics;

/// How long a claimed delivery stays with its worker.
pub const LEASE_MS: i64 = 60_000;
/// Longest wait for a receiver's answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest sleep between looks at the queue (triggers enqueue without telling us).
const POLL: Duration = Duration::from_millis(250);
/// Deliveries in flight at once, all webhooks together.
const MAX_IN_FLIGHT: usize = 32;
/// Deliveries in flight at once to one webhook.
pub const PER_ENDPOINT: usize = 2;
/// Attempts at recording an outcome before the worker gives up on it (the database may be
/// restarting; the update is idempotent).
const RECORD_ATTEMPTS: u32 = 4;

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
        tokio::spawn(Arc::new(self).run(shutdown))
    }

    async fn run(self: Arc<Self>, mut shutdown: ShutdownSignal) {
        let mut in_flight: JoinSet<i64> = JoinSet::new();
        // Deliveries in flight per webhook.
        let mut per_endpoint: HashMap<i64, usize> = HashMap::new();
        loop {
            if shutdown.is_triggered() {
                break;
            }
            while let Some(done) = in_flight.try_join_next() {
                finished(&mut per_endpoint, done);
            }
            let room = MAX_IN_FLIGHT - in_flight.len();
            let sleep = if room == 0 {
                POLL
            } else {
                match self.claim(room, &per_endpoint).await {
                    Ok(claimed) if !claimed.is_empty() => {
                        for delivery in claimed {
                            *per_endpoint.entry(delivery.webhook_id).or_default() += 1;
                            let worker = Arc::clone(&self);
                            in_flight.spawn(async move {
                                let webhook = delivery.webhook_id;
                                worker.deliver(delivery).await;
                                webhook
                            });
                        }
                        continue;
                    }
                    Ok(_) => self.until_next_due().await,
                    Err(e) => {
                        tracing::warn!(error = %e, "webhook worker: cannot read the queue");
                        Duration::from_secs(2)
                    }
                }
            };
            tokio::select! {
                () = tokio::time::sleep(sleep) => {}
                Some(done) = in_flight.join_next(), if !in_flight.is_empty() => finished(&mut per_endpoint, done),
                () = shutdown.wait() => break,
            }
        }
        // Stopping: no new claims; what is in flight finishes and records its outcome.
        while in_flight.join_next().await.is_some() {}
        tracing::debug!("webhook worker stopped");
    }

    async fn until_next_due(&self) -> Duration {
        match webhooks::next_due_at(&self.db).await {
            Ok(Some(at)) => Duration::from_millis((at - now_ms()).clamp(0, POLL.as_millis() as i64) as u64),
            _ => POLL,
        }
    }

    /// Claims up to `room` due deliveries, none to a webhook at [`PER_ENDPOINT`] in flight.
    async fn claim(&self, room: usize, per_endpoint: &HashMap<i64, usize>) -> Result<Vec<ClaimedDelivery>, StoreError> {
        if !matches!(webhooks::next_due_at(&self.db).await?, Some(at) if at <= now_ms()) {
            return Ok(Vec::new());
        }
        let busy: Vec<i64> = per_endpoint.iter().filter(|(_, n)| **n >= PER_ENDPOINT).map(|(id, _)| *id).collect();
        let mut claimed = webhooks::claim_due(&self.db, now_ms(), LEASE_MS, room as i64, &busy).await?;
        // One claim may hold many deliveries to one webhook: beyond its share they go back to
        // the queue at once (due now, attempt not counted) instead of waiting in memory.
        let mut taken: HashMap<i64, usize> = HashMap::new();
        let mut kept = Vec::with_capacity(claimed.len());
        let mut returned = Vec::new();
        for delivery in claimed.drain(..) {
            let n = taken.entry(delivery.webhook_id).or_default();
            if per_endpoint.get(&delivery.webhook_id).copied().unwrap_or(0) + *n < PER_ENDPOINT {
                *n += 1;
                kept.push(delivery);
            } else {
                returned.push(delivery.id);
            }
        }
        if !returned.is_empty() {
            webhooks::unclaim(&self.db, &returned).await?;
        }
        Ok(kept)
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
        self.record(&delivery, &outcome).await;
    }

    /// Records an outcome, retrying a few times while the database is unavailable (the update
    /// is idempotent; an error after the commit, as when PostgreSQL stops, is retried too and
    /// then succeeds, so it is not reported as lost).
    async fn record(&self, delivery: &ClaimedDelivery, outcome: &Outcome) {
        let mut wait = Duration::from_millis(250);
        for attempt in 1..=RECORD_ATTEMPTS {
            match webhooks::record(&self.db, delivery.id, outcome).await {
                Ok(()) => {
                    if attempt > 1 {
                        tracing::debug!(delivery = delivery.id, attempt, "recorded a webhook delivery after retrying");
                    }
                    return;
                }
                Err(e) if attempt < RECORD_ATTEMPTS && e.outage().is_some() => {
                    tracing::debug!(error = %e, delivery = delivery.id, "recording a webhook delivery: retrying");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                Err(e) => {
                    // The lease runs out and the delivery is sent again: at least once.
                    tracing::warn!(
                        error = %e,
                        delivery = delivery.id,
                        "could not record the outcome of a webhook delivery; it will be sent again after its lease"
                    );
                    return;
                }
            }
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

/// Counts a finished delivery off its webhook.
fn finished(per_endpoint: &mut HashMap<i64, usize>, done: Result<i64, tokio::task::JoinError>) {
    match done {
        Ok(webhook) => {
            if let Some(n) = per_endpoint.get_mut(&webhook) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    per_endpoint.remove(&webhook);
                }
            }
        }
        Err(e) => tracing::error!(error = %e, "a webhook delivery task failed"),
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
