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
//!
//! An idle worker sleeps until the next delivery is due, or until something may have enqueued
//! one: a committed change to annotations or requirement candidates (the tables whose triggers
//! enqueue, seen on the change feed, from any instance) or an in-process [`Wake`] (a replay).
//! It looks at the queue at least every [`IDLE_MAX`] all the same.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, broadcast};
use tokio::task::JoinSet;

use super::guard::{self, PublicResolver};
use crate::db::webhooks::{self, ClaimedDelivery, Outcome};
use crate::db::{Db, StoreError, now_ms};
use crate::lifecycle::ShutdownSignal;
use crate::live::FeedMessage;
use crate::metrics::Metrics;

/// How long a claimed delivery stays with its worker.
pub const LEASE_MS: i64 = 60_000;
/// Longest wait for a receiver's answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest sleep between looks at the queue when nothing says there is work.
pub const IDLE_MAX: Duration = Duration::from_secs(5);
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
    wake: Wake,
}

/// Tells the worker to look at the queue now (after enqueueing outside the triggers).
#[derive(Debug, Clone, Default)]
pub struct Wake(Arc<Notify>);

impl Wake {
    /// Wakes the worker (or makes its next sleep return at once).
    pub fn notify(&self) {
        self.0.notify_one();
    }
}

/// What a look at the queue found.
enum Claim {
    /// Deliveries to send now.
    Sent(Vec<ClaimedDelivery>),
    /// Nothing to send now: sleep this long at most.
    Idle(Duration),
}

impl Worker {
    /// A worker with its HTTP client: no redirects (a 3xx is a failure, not a way around the
    /// address check), no proxies from the environment, names resolved by [`PublicResolver`].
    pub fn new(
        db: Db,
        allow_private: bool,
        retry_base_ms: u64,
        metrics: Arc<Metrics>,
        wake: Wake,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(PublicResolver { allow_private }))
            .user_agent(concat!("IHF-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { db, client, allow_private, retry_base_ms, metrics, wake })
    }

    /// Starts the worker as a task that runs until `shutdown` fires; `changes` is the change
    /// feed (see the module).
    pub fn spawn(
        self,
        shutdown: ShutdownSignal,
        changes: broadcast::Receiver<FeedMessage>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(Arc::new(self).run(shutdown, changes))
    }

    async fn run(self: Arc<Self>, mut shutdown: ShutdownSignal, mut changes: broadcast::Receiver<FeedMessage>) {
        let mut feed_open = true;
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
                // Woken when one of them finishes.
                IDLE_MAX
            } else {
                match self.claim(room, &per_endpoint).await {
                    Ok(Claim::Sent(claimed)) => {
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
                    Ok(Claim::Idle(sleep)) => sleep,
                    Err(e) => {
                        tracing::warn!(error = %e, "webhook worker: cannot read the queue");
                        Duration::from_secs(2)
                    }
                }
            };
            let timer = tokio::time::sleep(sleep);
            tokio::pin!(timer);
            // Changes that cannot have enqueued anything (most of them) keep the same timer and
            // cost no query.
            let stop = loop {
                tokio::select! {
                    () = &mut timer => break false,
                    Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                        finished(&mut per_endpoint, done);
                        break false;
                    }
                    () = shutdown.wait() => break true,
                    () = self.wake.0.notified() => break false,
                    message = changes.recv(), if feed_open => match message {
                        Ok(FeedMessage::Change(change)) if !may_enqueue(&change.table) => {}
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => break false,
                        Err(broadcast::error::RecvError::Closed) => feed_open = false,
                    },
                }
            };
            if stop {
                break;
            }
        }
        // Stopping: no new claims; what is in flight finishes and records its outcome.
        while in_flight.join_next().await.is_some() {}
        tracing::debug!("webhook worker stopped");
    }

    /// Claims up to `room` due deliveries, none to a webhook at [`PER_ENDPOINT`] in flight; or
    /// says how long to sleep when none is due (one cheap read, so an idle worker never takes
    /// the SQLite writer just to find nothing).
    async fn claim(&self, room: usize, per_endpoint: &HashMap<i64, usize>) -> Result<Claim, StoreError> {
        let now = now_ms();
        match webhooks::next_due_at(&self.db).await? {
            None => return Ok(Claim::Idle(IDLE_MAX)),
            Some(at) if at > now => {
                return Ok(Claim::Idle(Duration::from_millis((at - now).min(IDLE_MAX.as_millis() as i64) as u64)));
            }
            Some(_) => {}
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
        if kept.is_empty() {
            // Due, but only to webhooks at their limit (or leased elsewhere): a finishing
            // delivery wakes us, not a timer.
            return Ok(Claim::Idle(IDLE_MAX));
        }
        Ok(Claim::Sent(kept))
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

/// Whether a change to `table` may have enqueued deliveries (migration 0004's triggers).
fn may_enqueue(table: &str) -> bool {
    matches!(table, "annotations" | "requirement_candidates")
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
