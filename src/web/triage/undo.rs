//! Undo tokens: the previous state of every annotation an action changed, signed with the
//! server secret and valid for [`UNDO_MS`]. The token travels in the toast's Undo form, so any
//! instance can undo, and nothing has to be kept on the server.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::crypto;
use crate::triage::{Applied, Change, Target};

/// How long the toast offers Undo.
pub const UNDO_MS: i64 = 10_000;
/// Slack for the round trip of a click made at the last moment.
const GRACE_MS: i64 = 2_000;

/// What an Undo puts back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndoToken {
    pub hub_id: i64,
    pub actor_id: i64,
    pub expires_at: i64,
    pub items: Vec<Applied>,
}

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UndoError {
    /// Not a token we made (or made for another hub or person).
    Invalid,
    /// Made by us, but the undo window has passed.
    Expired,
}

impl UndoToken {
    /// The token for `items` changed now by `actor_id`.
    pub fn new(hub_id: i64, actor_id: i64, now: i64, items: Vec<Applied>) -> Self {
        Self { hub_id, actor_id, expires_at: now + UNDO_MS, items }
    }

    /// The changes that restore every item, each as of the version the action left.
    pub fn changes(&self) -> Vec<(Target, Change)> {
        self.items
            .iter()
            .map(|item| {
                (
                    Target { id: item.id, version: item.version },
                    Change::Restore { to: item.before.clone(), unlink: item.candidate },
                )
            })
            .collect()
    }

    /// `payload.signature`, URL-safe.
    pub fn sign(&self, secret: &[u8]) -> String {
        // Serializing integers and strings cannot fail.
        let json = serde_json::to_vec(self).unwrap_or_default();
        let payload = URL_SAFE_NO_PAD.encode(json);
        let mac = crypto::hmac_sha256(&key(secret), payload.as_bytes());
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode(mac))
    }

    /// Checks the signature, the hub, the person and the time.
    pub fn verify(token: &str, secret: &[u8], hub_id: i64, actor_id: i64, now: i64) -> Result<Self, UndoError> {
        let (payload, signature) = token.split_once('.').ok_or(UndoError::Invalid)?;
        let expected = URL_SAFE_NO_PAD.encode(crypto::hmac_sha256(&key(secret), payload.as_bytes()));
        if !crypto::constant_time_eq(expected.as_bytes(), signature.as_bytes()) {
            return Err(UndoError::Invalid);
        }
        let json = URL_SAFE_NO_PAD.decode(payload).map_err(|_| UndoError::Invalid)?;
        let token: Self = serde_json::from_slice(&json).map_err(|_| UndoError::Invalid)?;
        if token.hub_id != hub_id || token.actor_id != actor_id || token.items.is_empty() {
            return Err(UndoError::Invalid);
        }
        if now > token.expires_at + GRACE_MS {
            return Err(UndoError::Expired);
        }
        Ok(token)
    }
}

fn key(secret: &[u8]) -> [u8; 32] {
    crypto::derive_key(secret, "triage-undo")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::triage::{AnnotationStatus, TriageState};

    fn token() -> UndoToken {
        let state =
            |status: AnnotationStatus| TriageState { category_id: 1, status, dismiss_reason: None, duplicate_of: None };
        UndoToken::new(
            7,
            3,
            1_000,
            vec![Applied {
                id: 5,
                before: state(AnnotationStatus::New),
                after: state(AnnotationStatus::Triaged),
                version: 2,
                candidate: None,
            }],
        )
    }

    #[test]
    fn round_trips_and_refuses_tampering() {
        let signed = token().sign(b"secret");
        assert_eq!(UndoToken::verify(&signed, b"secret", 7, 3, 2_000), Ok(token()));
        assert_eq!(UndoToken::verify(&signed, b"other", 7, 3, 2_000), Err(UndoError::Invalid));
        assert_eq!(UndoToken::verify(&signed, b"secret", 8, 3, 2_000), Err(UndoError::Invalid));
        assert_eq!(UndoToken::verify(&signed, b"secret", 7, 4, 2_000), Err(UndoError::Invalid));
        let mut forged = signed.clone();
        forged.replace_range(0..1, if signed.starts_with('e') { "f" } else { "e" });
        assert_eq!(UndoToken::verify(&forged, b"secret", 7, 3, 2_000), Err(UndoError::Invalid));
    }

    #[test]
    fn expires() {
        let signed = token().sign(b"secret");
        assert!(UndoToken::verify(&signed, b"secret", 7, 3, 1_000 + UNDO_MS).is_ok());
        assert_eq!(
            UndoToken::verify(&signed, b"secret", 7, 3, 1_000 + UNDO_MS + GRACE_MS + 1),
            Err(UndoError::Expired)
        );
    }
}
