//! Signed tokens of embeds: HS256 JSON Web Tokens (RFC 7519), signed and verified by hand with
//! `hmac` + `sha2`, because IHF needs exactly one algorithm and no key discovery.
//!
//! Two kinds travel. The host site's server signs a short-lived token with a widget's embed
//! secret to identify its user (`sub`, `name`, `aud` = the embed key, `exp` at most ten minutes
//! ahead), as Hypothesis and Canny do. IHF signs its own *visitor tokens* with a key derived from
//! the server secret: they keep an embed visitor, anonymous or identified, recognised by the
//! iframe (in a cookie, or carried by the iframe where third-party cookies are blocked) and
//! authenticate the data API as that visitor.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::crypto;

/// The issuer written into IHF's own visitor tokens.
pub const ISSUER: &str = "ihf";
/// How far ahead a host-signed token may expire.
pub const HOST_MAX_LIFETIME_S: i64 = 10 * 60;
/// Clock skew tolerated between the host's server and IHF.
pub const LEEWAY_S: i64 = 30;
/// Longer tokens are refused before any work is done on them.
const MAX_TOKEN_LEN: usize = 4096;

/// The audience claim: one string or a list (RFC 7519 allows both).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    /// Whether `expected` is among the audiences.
    pub fn contains(&self, expected: &str) -> bool {
        match self {
            Self::One(aud) => aud == expected,
            Self::Many(auds) => auds.iter().any(|aud| aud == expected),
        }
    }

    /// The first audience (the embed key a token names).
    pub fn first(&self) -> Option<&str> {
        match self {
            Self::One(aud) => Some(aud),
            Self::Many(auds) => auds.first().map(String::as_str),
        }
    }
}

/// The claims IHF reads and writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Who: the host's user id, or for visitor tokens the actor's external reference.
    pub sub: String,
    /// The display name the host gives its user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The embed key of the one widget the token is for.
    pub aud: Audience,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
}

/// Why a token was refused; the message is shown to the visitor as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the sign-in token is malformed")]
    Malformed,
    #[error("the sign-in token must be signed with HS256")]
    Algorithm,
    #[error("the sign-in token's signature does not match this widget's secret")]
    Signature,
    #[error("the sign-in token was made for another widget")]
    Audience,
    #[error("the sign-in token has expired; reload the page to get a new one")]
    Expired,
    #[error("the sign-in token expires too far ahead (at most 10 minutes)")]
    TooLong,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
}

/// Signs `claims` with HS256 under `key`.
pub fn sign(claims: &Claims, key: &[u8]) -> String {
    let header = Header { alg: "HS256".into(), typ: Some("JWT".into()) };
    // Serializing these plain structs cannot fail.
    let header = serde_json::to_vec(&header).unwrap_or_default();
    let payload = serde_json::to_vec(claims).unwrap_or_default();
    let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload));
    let mac = crypto::hmac_sha256(key, signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(mac))
}

/// The claims of `token` WITHOUT checking its signature: only to find which widget's secret
/// to verify it with.
pub fn peek(token: &str) -> Result<Claims, TokenError> {
    let (_, payload, _) = parts(token)?;
    decode_json(payload)
}

/// The host's optional `email` claim of a token (read only after [`verify`] accepted it): the
/// address of its user, kept for notification mail they opt in to inside the embed.
pub fn email_claim(token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Email {
        email: Option<String>,
    }
    let (_, payload, _) = parts(token).ok()?;
    decode_json::<Email>(payload).ok()?.email
}

/// Verifies an HS256 token: algorithm, signature (constant time), audience, expiry and, with
/// `max_lifetime_s`, that it does not expire further ahead than that. `now_s` is the current
/// time in seconds.
pub fn verify(
    token: &str,
    key: &[u8],
    audience: &str,
    now_s: i64,
    max_lifetime_s: Option<i64>,
) -> Result<Claims, TokenError> {
    let (header, payload, signature) = parts(token)?;
    let header: Header = decode_json(header)?;
    if header.alg != "HS256" {
        return Err(TokenError::Algorithm);
    }
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Malformed)?;
    let signing_input = &token[..token.rfind('.').unwrap_or(0)];
    if !crypto::constant_time_eq(&crypto::hmac_sha256(key, signing_input.as_bytes()), &signature) {
        return Err(TokenError::Signature);
    }
    let claims: Claims = decode_json(payload)?;
    if claims.sub.trim().is_empty() || claims.sub.len() > 200 {
        return Err(TokenError::Malformed);
    }
    if !claims.aud.contains(audience) {
        return Err(TokenError::Audience);
    }
    if now_s > claims.exp + LEEWAY_S {
        return Err(TokenError::Expired);
    }
    if let Some(max) = max_lifetime_s
        && claims.exp > now_s + max + LEEWAY_S
    {
        return Err(TokenError::TooLong);
    }
    Ok(claims)
}

fn parts(token: &str) -> Result<(&str, &str, &str), TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let mut it = token.split('.');
    match (it.next(), it.next(), it.next(), it.next()) {
        (Some(h), Some(p), Some(s), None) if !h.is_empty() && !p.is_empty() && !s.is_empty() => Ok((h, p, s)),
        _ => Err(TokenError::Malformed),
    }
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, TokenError> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
}

/// The key IHF signs visitor tokens with, derived from the server secret.
pub fn visitor_key(server_secret: &[u8]) -> [u8; 32] {
    crypto::derive_key(server_secret, "embed-visitor")
}

/// The current time in seconds, as tokens count it.
pub fn now_s() -> i64 {
    crate::db::now_ms() / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(aud: &str, exp: i64) -> Claims {
        Claims {
            sub: "user-42".into(),
            name: Some("Jamie".into()),
            aud: Audience::One(aud.into()),
            exp,
            iss: None,
            iat: None,
        }
    }

    #[test]
    fn round_trips() {
        let token = sign(&claims("key-a", 1_000 + 300), b"secret");
        let verified = verify(&token, b"secret", "key-a", 1_000, Some(HOST_MAX_LIFETIME_S)).expect("valid");
        assert_eq!(verified, claims("key-a", 1_300));
        assert_eq!(peek(&token).expect("peek").aud.first(), Some("key-a"));
    }

    #[test]
    fn matches_a_token_made_elsewhere() {
        // Made with Python's hmac/hashlib/base64 from {"alg":"HS256","typ":"JWT"} and
        // {"sub":"1234567890","aud":"k","exp":2000000000} under the secret "secret".
        let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwiYXVkIjoiayIsImV4cCI6MjAwMDAwMDAwMH0.YwTFxdXGOthMUZczSC31cUvJ0sYT6JcHY0E9x0NMBqQ";
        let verified = verify(token, b"secret", "k", 1_999_999_000, None).expect("valid");
        assert_eq!(verified.sub, "1234567890");
    }

    #[test]
    fn refuses_what_it_should() {
        let now = 10_000;
        let good = sign(&claims("key-a", now + 60), b"secret");
        assert_eq!(verify(&good, b"other", "key-a", now, None), Err(TokenError::Signature));
        assert_eq!(verify(&good, b"secret", "key-b", now, None), Err(TokenError::Audience));
        let expired = sign(&claims("key-a", now - 3600), b"secret");
        assert_eq!(verify(&expired, b"secret", "key-a", now, None), Err(TokenError::Expired));
        let long = sign(&claims("key-a", now + 3600), b"secret");
        assert_eq!(verify(&long, b"secret", "key-a", now, Some(HOST_MAX_LIFETIME_S)), Err(TokenError::TooLong));
        assert!(verify(&long, b"secret", "key-a", now, None).is_ok());
        for bad in ["", "a.b", "a.b.c.d", "..", "!!.!!.!!", &"x".repeat(5000)] {
            assert_eq!(verify(bad, b"secret", "key-a", now, None), Err(TokenError::Malformed), "{bad}");
        }
        // A tampered payload breaks the signature.
        let (h, rest) = good.split_once('.').expect("dots");
        let (_, s) = rest.split_once('.').expect("dots");
        let forged = URL_SAFE_NO_PAD.encode(br#"{"sub":"admin","aud":"key-a","exp":99999999999}"#);
        assert_eq!(verify(&format!("{h}.{forged}.{s}"), b"secret", "key-a", now, None), Err(TokenError::Signature));
    }

    #[test]
    fn refuses_other_algorithms() {
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"x","aud":"key-a","exp":99999999999}"#);
        let token = format!("{none_header}.{payload}.c2ln");
        assert_eq!(verify(&token, b"secret", "key-a", 0, None), Err(TokenError::Algorithm));
    }

    #[test]
    fn accepts_a_list_of_audiences() {
        let mut c = claims("x", 100);
        c.aud = Audience::Many(vec!["other".into(), "key-a".into()]);
        let token = sign(&c, b"k");
        assert!(verify(&token, b"k", "key-a", 50, None).is_ok());
    }
}
