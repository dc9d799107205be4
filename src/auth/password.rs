//! Password hashing: argon2id with OWASP's parameters (19 MiB, 2 passes, 1 lane).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;

/// The shortest password IHF accepts.
pub const MIN_LENGTH: usize = 10;

fn hasher() -> Argon2<'static> {
    // The parameters are constants within argon2's bounds; `Params::new` cannot refuse them.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password into a PHC string (algorithm, parameters and salt included).
pub fn hash(password: &str) -> Result<String, argon2::password_hash::Error> {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    let salt = SaltString::encode_b64(&bytes)?;
    Ok(hasher().hash_password(password.as_bytes(), &salt)?.to_string())
}

/// Whether `password` matches the stored PHC string (false for a malformed one).
pub fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|parsed| hasher().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// A hash to verify against when the account does not exist, so timing does not reveal it.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash("not-a-real-password-0000").unwrap_or_default())
}

/// Checks a new password; the message says what is wrong.
pub fn check_strength(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_LENGTH {
        return Err(format!("the password needs at least {MIN_LENGTH} characters"));
    }
    if password.len() > 1024 {
        return Err("the password is longer than 1024 bytes".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_and_verifies() {
        let phc = hash("correct horse battery").expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify("correct horse battery", &phc));
        assert!(!verify("wrong horse battery", &phc));
        assert!(!verify("x", "not a phc string"));
    }

    #[test]
    fn strength() {
        assert!(check_strength("short").is_err());
        assert!(check_strength("long enough pass").is_ok());
    }
}
