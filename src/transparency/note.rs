//! Signed notes, checkpoints and cosignatures as C2SP specifies them (`signed-note`,
//! `tlog-checkpoint`, `tlog-cosignature`), with Ed25519 keys.
//!
//! A checkpoint is the note text `origin\nsize\nbase64(root)\n`, a blank line, and one line per
//! signature, `— <key name> base64(key id || signature)`. The key id is the first four bytes of
//! `SHA-256(key name || 0x0A || type || public key)`, type `0x01` for a log's Ed25519 signature
//! and `0x04` for a witness's timestamped Ed25519 cosignature. A verifier key ("vkey") is written
//! `<name>+<hex key id>+base64(type || public key)`, as Go's `golang.org/x/mod/sumdb/note` reads it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use super::merkle::Hash;

/// The signature type of a log's Ed25519 note signature.
pub const TYPE_ED25519: u8 = 0x01;
/// The signature type of a witness's timestamped Ed25519 cosignature.
pub const TYPE_COSIGNATURE: u8 = 0x04;

/// What is wrong with a note, a key or a signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    #[error("malformed verifier key: {0}")]
    MalformedKey(&'static str),
    #[error("no signature by {0} on the note")]
    NotSigned(String),
    #[error("the signature by {0} does not verify")]
    BadSignature(String),
    #[error("malformed checkpoint: {0}")]
    MalformedCheckpoint(&'static str),
}

/// `SHA-256(name || "\n" || type || public key)[:4]`.
pub fn key_id(name: &str, kind: u8, public: &[u8; 32]) -> [u8; 4] {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update([b'\n', kind]);
    hasher.update(public);
    let digest = hasher.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// Whether `name` may name a key: non-empty, no spaces, no `+`.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

/// A log's signing key under one name (the name is part of the key id).
#[derive(Clone)]
pub struct NoteSigner {
    name: String,
    key: SigningKey,
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoteSigner").field("name", &self.name).field("key", &"[redacted]").finish()
    }
}

impl NoteSigner {
    /// The key with this 32-byte Ed25519 seed, under `name`.
    pub fn new(name: &str, seed: &[u8; 32]) -> Result<Self, NoteError> {
        if !valid_name(name) {
            return Err(NoteError::MalformedKey("a key name is non-empty, without spaces or '+'"));
        }
        Ok(Self { name: name.to_owned(), key: SigningKey::from_bytes(seed) })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// The verifier key to publish: `<name>+<hex id>+base64(0x01 || public key)`.
    pub fn vkey(&self) -> String {
        vkey(&self.name, TYPE_ED25519, &self.public_key())
    }

    /// The signature line for `text` (which ends in a newline), with its newline.
    pub fn signature_line(&self, text: &str) -> String {
        let id = key_id(&self.name, TYPE_ED25519, &self.public_key());
        let signature = self.key.sign(text.as_bytes());
        let mut blob = id.to_vec();
        blob.extend_from_slice(&signature.to_bytes());
        format!("— {} {}\n", self.name, BASE64.encode(blob))
    }

    /// The signed note: `text`, a blank line, the signature line.
    pub fn sign(&self, text: &str) -> String {
        format!("{text}\n{}", self.signature_line(text))
    }
}

/// `<name>+<hex key id>+base64(type || public key)`.
pub fn vkey(name: &str, kind: u8, public: &[u8; 32]) -> String {
    let mut material = vec![kind];
    material.extend_from_slice(public);
    format!("{name}+{}+{}", hex::encode(key_id(name, kind, public)), BASE64.encode(material))
}

/// A parsed verifier key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    pub name: String,
    pub id: [u8; 4],
    pub kind: u8,
    pub public: [u8; 32],
}

impl std::str::FromStr for VerifierKey {
    type Err = NoteError;

    fn from_str(text: &str) -> Result<Self, NoteError> {
        let text = text.trim();
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id), Some(material)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::MalformedKey("expected name+id+key"));
        };
        if !valid_name(name) {
            return Err(NoteError::MalformedKey("bad key name"));
        }
        let id: [u8; 4] = hex::decode(id)
            .ok()
            .filter(|_| id.len() == 8 && id.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)))
            .and_then(|b| b.try_into().ok())
            .ok_or(NoteError::MalformedKey("the key id is 8 lowercase hex digits"))?;
        let material = BASE64.decode(material).map_err(|_| NoteError::MalformedKey("the key is not base64"))?;
        let (&kind, public) = material.split_first().ok_or(NoteError::MalformedKey("empty key"))?;
        if kind != TYPE_ED25519 && kind != TYPE_COSIGNATURE {
            return Err(NoteError::MalformedKey("not an Ed25519 key"));
        }
        let public: [u8; 32] = public.try_into().map_err(|_| NoteError::MalformedKey("an Ed25519 key is 32 bytes"))?;
        VerifyingKey::from_bytes(&public).map_err(|_| NoteError::MalformedKey("not a valid Ed25519 point"))?;
        if key_id(name, kind, &public) != id {
            return Err(NoteError::MalformedKey("the key id does not match the key"));
        }
        Ok(Self { name: name.to_owned(), id, kind, public })
    }
}

impl VerifierKey {
    /// The key in its published form.
    pub fn encode(&self) -> String {
        vkey(&self.name, self.kind, &self.public)
    }

    fn verifying_key(&self) -> Result<VerifyingKey, NoteError> {
        VerifyingKey::from_bytes(&self.public).map_err(|_| NoteError::MalformedKey("not a valid Ed25519 point"))
    }
}

/// A note split into its text and its signature lines (nothing verified yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The text, with its final newline.
    pub text: String,
    /// `(key name, base64-decoded key id || signature)`, in order.
    pub signatures: Vec<(String, Vec<u8>)>,
}

impl Note {
    /// Splits a signed note at its last blank line.
    pub fn parse(note: &str) -> Result<Self, NoteError> {
        if note.chars().any(|c| c.is_control() && c != '\n') {
            return Err(NoteError::Malformed("control characters"));
        }
        if !note.ends_with('\n') {
            return Err(NoteError::Malformed("a note ends with a newline"));
        }
        let split = note.rfind("\n\n").ok_or(NoteError::Malformed("no blank line before the signatures"))?;
        let (text, lines) = (&note[..=split], &note[split + 2..]);
        let mut signatures = Vec::new();
        for line in lines.lines() {
            let rest = line.strip_prefix("— ").ok_or(NoteError::Malformed("a signature line starts with '— '"))?;
            let (name, blob) = rest.split_once(' ').ok_or(NoteError::Malformed("a signature line has a name"))?;
            if !valid_name(name) {
                return Err(NoteError::Malformed("bad key name in a signature line"));
            }
            let blob = BASE64.decode(blob).map_err(|_| NoteError::Malformed("a signature is base64"))?;
            if blob.len() < 5 {
                return Err(NoteError::Malformed("a signature is a key id and at least one byte"));
            }
            signatures.push((name.to_owned(), blob));
        }
        if signatures.is_empty() {
            return Err(NoteError::Malformed("no signature lines"));
        }
        Ok(Self { text: text.to_owned(), signatures })
    }

    /// The text, once the signature by `key` (a log key, type `0x01`) verifies. Signatures by
    /// other keys are ignored, as the specification asks.
    pub fn verify(&self, key: &VerifierKey) -> Result<&str, NoteError> {
        let verifying = key.verifying_key()?;
        let mut found = false;
        for (name, blob) in &self.signatures {
            if name != &key.name || blob[..4] != key.id {
                continue;
            }
            found = true;
            let signature: [u8; 64] = blob[4..].try_into().map_err(|_| NoteError::BadSignature(key.name.clone()))?;
            verifying
                .verify_strict(self.text.as_bytes(), &Signature::from_bytes(&signature))
                .map_err(|_| NoteError::BadSignature(key.name.clone()))?;
        }
        if found { Ok(&self.text) } else { Err(NoteError::NotSigned(key.name.clone())) }
    }
}

/// A log's tree head: its origin, size and root hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    /// The note text: `origin\nsize\nbase64(root)\n`.
    pub fn body(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, BASE64.encode(self.root))
    }

    /// Reads the note text of a checkpoint (extension lines are allowed and ignored).
    pub fn parse_body(text: &str) -> Result<Self, NoteError> {
        let mut lines = text.split('\n');
        let origin = lines.next().filter(|o| !o.is_empty()).ok_or(NoteError::MalformedCheckpoint("no origin"))?;
        let size = lines.next().ok_or(NoteError::MalformedCheckpoint("no size"))?;
        if size.is_empty() || (size.len() > 1 && size.starts_with('0')) || !size.chars().all(|c| c.is_ascii_digit()) {
            return Err(NoteError::MalformedCheckpoint("the size is a decimal number without leading zeros"));
        }
        let size = size.parse().map_err(|_| NoteError::MalformedCheckpoint("the size is too large"))?;
        let root = lines.next().ok_or(NoteError::MalformedCheckpoint("no root hash"))?;
        let root: Hash = BASE64
            .decode(root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or(NoteError::MalformedCheckpoint("the root hash is 32 bytes in base64"))?;
        Ok(Self { origin: origin.to_owned(), size, root })
    }

    /// Parses a signed checkpoint and checks the log's signature (and that the key is the log's:
    /// the key name should be the origin).
    pub fn open(note: &str, key: &VerifierKey) -> Result<Self, NoteError> {
        let note = Note::parse(note)?;
        let checkpoint = Self::parse_body(note.verify(key)?)?;
        Ok(checkpoint)
    }

    /// The root hash in base64, as the note carries it.
    pub fn root_base64(&self) -> String {
        BASE64.encode(self.root)
    }
}

/// A witness's Ed25519 cosigning key (type `0x04`), for tests and small witnesses.
#[derive(Clone)]
pub struct Cosigner {
    name: String,
    key: SigningKey,
}

impl std::fmt::Debug for Cosigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cosigner").field("name", &self.name).finish_non_exhaustive()
    }
}

/// The message a v1 Ed25519 cosignature signs.
fn cosigned_message(body: &str, timestamp: u64) -> String {
    format!("cosignature/v1\ntime {timestamp}\n{body}")
}

impl Cosigner {
    /// The cosigner with this seed, under `name`.
    pub fn new(name: &str, seed: &[u8; 32]) -> Result<Self, NoteError> {
        if !valid_name(name) {
            return Err(NoteError::MalformedKey("a key name is non-empty, without spaces or '+'"));
        }
        Ok(Self { name: name.to_owned(), key: SigningKey::from_bytes(seed) })
    }

    /// The verifier key: `<name>+<hex id>+base64(0x04 || public key)`.
    pub fn vkey(&self) -> String {
        vkey(&self.name, TYPE_COSIGNATURE, &self.key.verifying_key().to_bytes())
    }

    /// The cosignature line over a checkpoint's note text at `timestamp` (seconds).
    pub fn cosign(&self, body: &str, timestamp: u64) -> String {
        let public = self.key.verifying_key().to_bytes();
        let signature = self.key.sign(cosigned_message(body, timestamp).as_bytes());
        let mut blob = key_id(&self.name, TYPE_COSIGNATURE, &public).to_vec();
        blob.extend_from_slice(&timestamp.to_be_bytes());
        blob.extend_from_slice(&signature.to_bytes());
        format!("— {} {}\n", self.name, BASE64.encode(blob))
    }
}

/// A verified cosignature: who and when (seconds since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosignature {
    pub name: String,
    pub timestamp: u64,
}

/// Checks one cosignature line over a checkpoint's note text against a witness key (type `0x04`).
pub fn verify_cosignature(body: &str, line: &str, key: &VerifierKey) -> Result<Cosignature, NoteError> {
    if key.kind != TYPE_COSIGNATURE {
        return Err(NoteError::MalformedKey("not a cosignature key"));
    }
    let rest = line.trim_end_matches('\n').strip_prefix("— ").ok_or(NoteError::Malformed("not a signature line"))?;
    let (name, blob) = rest.split_once(' ').ok_or(NoteError::Malformed("a signature line has a name"))?;
    let blob = BASE64.decode(blob).map_err(|_| NoteError::Malformed("a signature is base64"))?;
    if name != key.name || blob.len() != 4 + 8 + 64 || blob[..4] != key.id {
        return Err(NoteError::NotSigned(key.name.clone()));
    }
    let mut stamp = [0u8; 8];
    stamp.copy_from_slice(&blob[4..12]);
    let timestamp = u64::from_be_bytes(stamp);
    let mut signature = [0u8; 64];
    signature.copy_from_slice(&blob[12..]);
    key.verifying_key()?
        .verify_strict(cosigned_message(body, timestamp).as_bytes(), &Signature::from_bytes(&signature))
        .map_err(|_| NoteError::BadSignature(key.name.clone()))?;
    Ok(Cosignature { name: name.to_owned(), timestamp })
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example key and note of the reference implementation (golang.org/x/mod/sumdb/note,
    // note_test.go): Ed25519 is deterministic, so signing must reproduce it byte for byte.
    const VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const SKEY: &str = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const TEXT: &str =
        "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    const SIGNATURE: &str =
        "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    fn peter() -> NoteSigner {
        let material = SKEY.splitn(5, '+').nth(4).expect("key material");
        let bytes = BASE64.decode(material).expect("base64");
        assert_eq!(bytes[0], TYPE_ED25519);
        let seed: [u8; 32] = bytes[1..].try_into().expect("32 bytes");
        NoteSigner::new("PeterNeumann", &seed).expect("signer")
    }

    #[test]
    fn signs_and_encodes_like_the_reference_implementation() {
        let signer = peter();
        assert_eq!(signer.vkey(), VKEY);
        assert_eq!(signer.sign(TEXT), format!("{TEXT}\n{SIGNATURE}"));
        let key: VerifierKey = VKEY.parse().expect("vkey");
        assert_eq!(key.encode(), VKEY);
        let note = Note::parse(&format!("{TEXT}\n{SIGNATURE}")).expect("note");
        assert_eq!(note.verify(&key).expect("verifies"), TEXT);
    }

    #[test]
    fn tampered_notes_and_keys_are_refused() {
        let key: VerifierKey = VKEY.parse().expect("vkey");
        let forged = format!("{}\n{SIGNATURE}", TEXT.replace("cryptography", "cryptographY"));
        assert_eq!(
            Note::parse(&forged).expect("parses").verify(&key),
            Err(NoteError::BadSignature("PeterNeumann".into()))
        );
        // Another key with the same name is a different key id: its signature is ignored.
        let other = NoteSigner::new("PeterNeumann", &[7; 32]).expect("signer");
        let note = Note::parse(&other.sign(TEXT)).expect("parses");
        assert_eq!(note.verify(&key), Err(NoteError::NotSigned("PeterNeumann".into())));
        // Manglings of the key (the reference test's idea): a changed id, a changed key.
        assert!("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW".parse::<VerifierKey>().is_err());
        assert!("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TX".parse::<VerifierKey>().is_err());
        assert!("PeterNeumann+c74f20a3".parse::<VerifierKey>().is_err());
        for bad in ["no blank line\n— a AAAAAAAA\n", "text\n\n", "text\n\n— a !!!\n", "text\n\nx a AAAAAAAA\n"] {
            assert!(Note::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn checkpoints_round_trip() {
        let signer = NoteSigner::new("example.com/log", &[1; 32]).expect("signer");
        let checkpoint = Checkpoint { origin: "example.com/log".into(), size: 20852163, root: [9; 32] };
        let note = signer.sign(&checkpoint.body());
        assert!(note.starts_with(
            "example.com/log\n20852163\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\n\n— example.com/log "
        ));
        let key: VerifierKey = signer.vkey().parse().expect("vkey");
        assert_eq!(Checkpoint::open(&note, &key).expect("opens"), checkpoint);
        for bad in ["o\n01\nAA==\n", "o\n1\nAA==\n", "\n1\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\n"] {
            assert!(Checkpoint::parse_body(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cosignatures_verify_and_bind_the_time() {
        let witness = Cosigner::new("witness.example/w1", &[3; 32]).expect("cosigner");
        let key: VerifierKey = witness.vkey().parse().expect("vkey");
        assert_eq!(key.kind, TYPE_COSIGNATURE);
        let body = "example.com/log\n3\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\n";
        let line = witness.cosign(body, 1679315147);
        assert_eq!(
            verify_cosignature(body, &line, &key),
            Ok(Cosignature { name: "witness.example/w1".into(), timestamp: 1679315147 })
        );
        assert!(verify_cosignature(&body.replace('3', "4"), &line, &key).is_err());
        // A log key is not a cosigning key, even with the same name and public key.
        let log = NoteSigner::new("witness.example/w1", &[3; 32]).expect("signer");
        assert!(verify_cosignature(body, &line, &log.vkey().parse().expect("vkey")).is_err());
    }
}
