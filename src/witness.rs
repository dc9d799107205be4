//! Witnessing: each hub's newest checkpoint is sent to the hub's witnesses, and the
//! cosignatures they return are verified and kept.
//!
//! The protocol is C2SP `tlog-witness`: `POST <witness URL>/add-checkpoint` with the body
//! `old <size the witness last cosigned>`, the RFC 9162 consistency proof from that size (one
//! base64 hash a line), an empty line and the signed checkpoint. The request is authenticated
//! the way the protocol says, by the log's signature on the checkpoint, which the witness checks
//! against the log key it pinned (`/hubs/{hub}/ledger/key`). The witness answers `200` with its
//! cosignature lines (C2SP `tlog-cosignature`: Ed25519 over `cosignature/v1`, `time <t>` and
//! the checkpoint text), which are checked against the witness key the operator entered and
//! stored only if they verify; or `409` with the size it has cosigned, and the next request
//! starts from there.
//!
//! The queue is the witness rows themselves (see [`crate::db::witnesses`]): one task per
//! instance claims due witnesses with a lease, so one witness gets one request at a time across
//! every instance, and only the newest checkpoint is sent (a burst of appends becomes one
//! request). Each attempt is its own task with its own timeout: a witness that hangs delays
//! nobody else. A failed attempt waits `IHF_WEBHOOK_RETRY_BASE_MS`, doubling, at most an hour.
//! Witness URLs pass the webhooks' address checks ([`crate::webhooks::guard`]).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use tokio::task::JoinSet;

use crate::db::witnesses::{self, Attempt, ClaimedWitness};
use crate::db::{Db, StoreError, ledger_tree, now_ms};
use crate::lifecycle::ShutdownSignal;
use crate::transparency::merkle::Hash;
use crate::transparency::note::{self, Note, VerifierKey};
use crate::webhooks::guard::{self, PublicResolver};

/// How long a claimed witness stays with its sender (longer than the request timeout).
pub const LEASE_MS: i64 = 60_000;
/// Longest wait for a witness's answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the queue is looked at (appends do not tell the worker).
const POLL: Duration = Duration::from_millis(250);
/// Requests in flight at once, all witnesses together.
const MAX_IN_FLIGHT: usize = 32;

/// The `add-checkpoint` request body: `old N`, the proof lines, an empty line, the note.
pub fn request_body(old: u64, proof: &[Hash], note: &str) -> String {
    let mut body = format!("old {old}\n");
    for hash in proof {
        body.push_str(&BASE64.encode(hash));
        body.push('\n');
    }
    body.push('\n');
    body.push_str(note);
    body
}

/// The first line of a witness's answer that is a valid cosignature of `body` (the checkpoint
/// text) by `key`, with its timestamp; lines from other keys are ignored, as the protocol says.
pub fn accepted_cosignature(body: &str, answer: &str, key: &VerifierKey) -> Result<(String, u64), String> {
    let mut seen = None;
    for line in answer.lines().filter(|l| l.starts_with("— ")) {
        match note::verify_cosignature(body, line, key) {
            Ok(cosignature) => return Ok((format!("{line}\n"), cosignature.timestamp)),
            Err(e) => seen = Some(e.to_string()),
        }
    }
    Err(match seen {
        Some(e) => format!("rejected the cosignature: {e}"),
        None => "the answer holds no cosignature line".into(),
    })
}

/// The shortest wait before a witness whose cosignature was rejected is asked again (10 min).
const REJECTED_RETRY_MS: i64 = 10 * 60 * 1000;

/// The witness worker of one instance.
pub struct Worker {
    db: Db,
    client: reqwest::Client,
    allow_private: bool,
    retry_base_ms: u64,
}

impl Worker {
    /// A worker with its HTTP client: no redirects, no proxies from the environment, names
    /// resolved by [`PublicResolver`] (unless private addresses are allowed).
    pub fn new(db: Db, allow_private: bool, retry_base_ms: u64) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(PublicResolver { allow_private }))
            .user_agent(concat!("IHF-Witnessing/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { db, client, allow_private, retry_base_ms })
    }

    /// Starts the worker as a task that runs until `shutdown` fires.
    pub fn spawn(self, shutdown: ShutdownSignal) -> tokio::task::JoinHandle<()> {
        tokio::spawn(Arc::new(self).run(shutdown))
    }

    async fn run(self: Arc<Self>, mut shutdown: ShutdownSignal) {
        let mut in_flight: JoinSet<()> = JoinSet::new();
        loop {
            if shutdown.is_triggered() {
                break;
            }
            while in_flight.try_join_next().is_some() {}
            let room = MAX_IN_FLIGHT - in_flight.len();
            if room > 0 {
                match witnesses::claim_due(&self.db, now_ms(), LEASE_MS, room as i64).await {
                    Ok(claimed) => {
                        for claim in claimed {
                            let worker = Arc::clone(&self);
                            in_flight.spawn(async move { worker.send(claim).await });
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "witness worker: cannot read the queue"),
                }
            }
            tokio::select! {
                () = tokio::time::sleep(POLL) => {}
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
                () = shutdown.wait() => break,
            }
        }
        while in_flight.join_next().await.is_some() {}
        tracing::debug!("witness worker stopped");
    }

    async fn send(&self, claim: ClaimedWitness) {
        let attempt = match self.attempt(&claim).await {
            Ok(attempt) => attempt,
            Err(error) => Attempt::Retry {
                error,
                // The claim counted this attempt already.
                retry_at: now_ms() + crate::webhooks::backoff_ms(self.retry_base_ms, claim.witness.attempts),
            },
        };
        match &attempt {
            Attempt::Cosigned { size, .. } => {
                tracing::debug!(witness = claim.witness.id, size, "checkpoint cosigned");
            }
            Attempt::SizeIs { error, .. } | Attempt::Retry { error, .. } => {
                tracing::info!(witness = claim.witness.id, url = claim.witness.url, error, "witness did not cosign");
            }
        }
        let mut wait = Duration::from_millis(250);
        for _ in 0..4 {
            match witnesses::record(&self.db, &claim.witness, &attempt).await {
                Ok(()) => return,
                Err(e) if e.outage().is_some() => {
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                Err(e) => {
                    tracing::warn!(error = %e, witness = claim.witness.id, "could not record a witness's answer");
                    return;
                }
            }
        }
    }

    /// One request; `Err` is why it should be retried later.
    async fn attempt(&self, claim: &ClaimedWitness) -> Result<Attempt, String> {
        let witness = &claim.witness;
        let key: VerifierKey = witness.vkey.parse().map_err(|e| format!("the witness key is unusable: {e}"))?;
        let url = witness_endpoint(&witness.url)?;
        if !self.allow_private
            && let Some(ip) = url.host_str().and_then(guard::literal_ip)
            && !guard::is_public(ip)
        {
            return Err(format!("refused: {ip} is not a public address"));
        }
        let (size, old) = (claim.size as u64, witness.cosigned_size.max(0) as u64);
        let (checkpoint, proof) = self.material(witness.hub_id, old, size).await.map_err(|e| e.to_string())?;
        let text =
            Note::parse(&checkpoint.note).map_err(|e| format!("the checkpoint of {size} is unreadable: {e}"))?.text;
        let body = request_body(old, &proof, &checkpoint.note);
        let response = self.client.post(url).body(body).send().await.map_err(|e| describe(&e))?;
        let status = response.status();
        let is_size = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/x.tlog.size"));
        let answer = response.text().await.map_err(|e| describe(&e))?;
        if status.is_success() {
            return Ok(match accepted_cosignature(&text, &answer, &key) {
                Ok((line, timestamp)) => Attempt::Cosigned { size: size as i64, line, signed_at: timestamp as i64 },
                // A cosignature that does not verify is a wrong key in the settings (or a witness
                // that lies): asking again soon will not change it. Operators see the reason
                // until the key is fixed (which makes it due at once) or the slow retry.
                Err(error) => Attempt::Retry {
                    error,
                    retry_at: now_ms()
                        + crate::webhooks::backoff_ms(self.retry_base_ms, witness.attempts).max(REJECTED_RETRY_MS),
                },
            });
        }
        if status == reqwest::StatusCode::CONFLICT && is_size {
            return match answer.trim().parse::<u64>() {
                Ok(theirs) if theirs != old && theirs <= size => Ok(Attempt::SizeIs {
                    size: theirs as i64,
                    error: format!("the witness has cosigned {theirs} entries, not {old}; sending from there"),
                }),
                Ok(theirs) => Err(format!(
                    "the witness has cosigned {theirs} entries, which this log ({size} entries) cannot prove consistent"
                )),
                Err(_) => Err("answered 409 with an unreadable size".into()),
            };
        }
        let detail: String = answer.trim().chars().take(200).collect();
        Err(format!("answered {status}{}{detail}", if detail.is_empty() { "" } else { ": " }))
    }

    /// The checkpoint of `size` entries and the consistency proof to it from `old`.
    async fn material(
        &self,
        hub_id: i64,
        old: u64,
        size: u64,
    ) -> Result<(ledger_tree::StoredCheckpoint, Vec<Hash>), StoreError> {
        let checkpoint =
            ledger_tree::checkpoint_at(self.db.reader(), hub_id, size).await?.ok_or(StoreError::NotFound)?;
        let proof = if old == 0 {
            Vec::new()
        } else {
            ledger_tree::consistency_proof(self.db.reader(), hub_id, old, size)
                .await?
                .map(|p| p.proof)
                .ok_or(StoreError::NotFound)?
        };
        Ok((checkpoint, proof))
    }
}

/// `<witness URL>/add-checkpoint`.
fn witness_endpoint(prefix: &str) -> Result<reqwest::Url, String> {
    reqwest::Url::parse(&format!("{}/add-checkpoint", prefix.trim_end_matches('/')))
        .map_err(|_| "the witness URL is not a URL".to_owned())
}

/// A short reason for a transport error, with its cause chain.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transparency::note::Cosigner;

    #[test]
    fn the_request_body_is_old_size_proof_blank_line_note() {
        let note = "example.com/log\n2\nAAAA\n\n— example.com/log sig\n";
        assert_eq!(request_body(0, &[], note), format!("old 0\n\n{note}"));
        let body = request_body(1, &[[0; 32]], note);
        assert_eq!(body, format!("old 1\n{}\n\n{note}", BASE64.encode([0u8; 32])));
    }

    #[test]
    fn only_a_cosignature_by_the_witness_key_is_accepted() {
        let witness = Cosigner::new("witness.example/w1", &[7; 32]).expect("cosigner");
        let impostor = Cosigner::new("witness.example/w1", &[8; 32]).expect("cosigner");
        let key: VerifierKey = witness.vkey().parse().expect("vkey");
        let body = "example.com/log\n2\nAAAA\n";
        let good = witness.cosign(body, 1_700_000_000);
        let (line, at) = accepted_cosignature(body, &format!("— other.example x\n{good}"), &key).expect("accepted");
        assert_eq!((line, at), (good.clone(), 1_700_000_000));
        assert!(accepted_cosignature(body, &impostor.cosign(body, 1), &key).is_err());
        assert!(accepted_cosignature("example.com/log\n3\nAAAA\n", &good, &key).is_err());
        assert!(accepted_cosignature(body, "", &key).is_err());
    }
}
