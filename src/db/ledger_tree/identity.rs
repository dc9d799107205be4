//! The instance's log identity: its name and Ed25519 signing key, made once and kept in
//! `server_secrets`.

use sqlx::{Any, Transaction};

use super::store::damaged;
use crate::db::{Db, StoreError};
use crate::transparency::note::{NoteSigner, VerifierKey};

/// The `server_secrets` row holding the signing key's 32-byte seed (hex).
const KEY_SECRET: &str = "ledger-signing-key";
/// The `server_secrets` row holding the instance's log name.
const NAME_SECRET: &str = "ledger-name";

/// Whether `name` can name a log: non-empty, printable, without spaces or `+` (C2SP key names).
pub fn valid_log_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 200 && !name.chars().any(|c| c.is_whitespace() || c.is_control() || c == '+')
}

/// The instance's log identity: its name and its Ed25519 signing key.
#[derive(Clone)]
pub struct LogIdentity {
    name: String,
    seed: [u8; 32],
}

impl std::fmt::Debug for LogIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogIdentity").field("name", &self.name).field("seed", &"[redacted]").finish()
    }
}

impl LogIdentity {
    fn from_secrets(rows: &[(String, String)]) -> Option<Self> {
        let get = |key: &str| rows.iter().find(|(name, _)| name == key).map(|(_, value)| value.as_str());
        let seed = hex::decode(get(KEY_SECRET)?).ok()?.try_into().ok()?;
        Some(Self { name: get(NAME_SECRET)?.to_owned(), seed })
    }

    /// The instance's log name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The origin line (and key name) of a hub's checkpoints: `<instance name>/<hub slug>`.
    pub fn origin(&self, hub_slug: &str) -> String {
        format!("{}/{hub_slug}", self.name)
    }

    /// The signer of a hub's checkpoints.
    pub fn signer(&self, hub_slug: &str) -> Result<NoteSigner, StoreError> {
        NoteSigner::new(&self.origin(hub_slug), &self.seed).map_err(|e| StoreError::Config(e.to_string()))
    }

    /// The verifier key of a hub's checkpoints.
    pub fn verifier(&self, hub_slug: &str) -> Result<VerifierKey, StoreError> {
        self.signer(hub_slug)?
            .vkey()
            .parse()
            .map_err(|e: crate::transparency::note::NoteError| StoreError::Config(e.to_string()))
    }
}

const IDENTITY_SQL: &str = "SELECT name, value FROM server_secrets WHERE name IN ('ledger-signing-key', 'ledger-name')";

async fn create_identity(conn: &mut sqlx::AnyConnection, name: Option<&str>) -> Result<(), StoreError> {
    let name = match name {
        Some(name) if !valid_log_name(name) => {
            return Err(StoreError::Config(format!(
                "the ledger name {name:?} must be non-empty, without spaces or '+' (e.g. feedback.example.com)"
            )));
        }
        Some(name) => name.to_owned(),
        None => format!("ihf-{}", hex::encode(rand::random::<[u8; 4]>())),
    };
    let seed: [u8; 32] = rand::random();
    for (key, value) in [(NAME_SECRET, name), (KEY_SECRET, hex::encode(seed))] {
        sqlx::query("INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The instance's log identity, made on first use (`name`, or `ihf-` and 8 random hex digits,
/// and a fresh key). A name given later does not replace the one in use: the origin of a log
/// cannot change without breaking every checkpoint anyone kept. Concurrent first starts agree.
pub async fn ensure_identity(db: &Db, name: Option<&str>) -> Result<LogIdentity, StoreError> {
    let rows: Vec<(String, String)> = sqlx::query_as(IDENTITY_SQL).fetch_all(db.reader()).await?;
    if let Some(identity) = LogIdentity::from_secrets(&rows) {
        if let Some(wanted) = name
            && wanted != identity.name
        {
            tracing::warn!(
                configured = wanted,
                in_use = identity.name,
                "the ledger name is fixed once checkpoints are signed; keeping the one in use"
            );
        }
        return Ok(identity);
    }
    create_identity(&mut *db.writer().acquire().await?, name).await?;
    let rows: Vec<(String, String)> = sqlx::query_as(IDENTITY_SQL).fetch_all(db.writer()).await?;
    LogIdentity::from_secrets(&rows).ok_or_else(|| damaged("the ledger signing key is unreadable".into()))
}

/// The log identity, read (or made) inside a writing transaction.
pub(super) async fn identity_in(tx: &mut Transaction<'static, Any>) -> Result<LogIdentity, StoreError> {
    let rows: Vec<(String, String)> = sqlx::query_as(IDENTITY_SQL).fetch_all(&mut **tx).await?;
    if let Some(identity) = LogIdentity::from_secrets(&rows) {
        return Ok(identity);
    }
    create_identity(tx, None).await?;
    let rows: Vec<(String, String)> = sqlx::query_as(IDENTITY_SQL).fetch_all(&mut **tx).await?;
    LogIdentity::from_secrets(&rows).ok_or_else(|| damaged("the ledger signing key is unreadable".into()))
}

/// The instance's log identity for readers (made if there is none yet).
pub async fn identity(db: &Db) -> Result<LogIdentity, StoreError> {
    ensure_identity(db, None).await
}
