//! Webhooks: signed JSON POSTs to other systems when feedback arrives or is decided.
//!
//! The queue is in the database (`crate::db::webhooks`, filled by triggers); [`worker`] sends
//! it. Each delivery is signed with the webhook's secret:
//! `IHF-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.

pub mod guard;
pub mod worker;

/// The signature header's value for `body` sent at `timestamp` (Unix seconds).
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let signed = format!("{timestamp}.{body}");
    format!("t={timestamp},v1={}", hex::encode(crate::crypto::hmac_sha256(secret.as_bytes(), signed.as_bytes())))
}

/// Milliseconds to wait after failed attempt number `attempts` (1-based): `base`, doubling,
/// at most an hour.
pub fn backoff_ms(base_ms: u64, attempts: i64) -> i64 {
    let doublings = attempts.clamp(1, 20) - 1;
    let delay = base_ms.saturating_mul(1 << doublings).min(HOUR_MS as u64);
    delay as i64
}

/// How long a delivery is retried before it is given up: a day.
pub const RETRY_FOR_MS: i64 = 24 * HOUR_MS;
const HOUR_MS: i64 = 60 * 60 * 1000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_timestamp_dot_body() {
        let sig = signature("s3cret", 1_700_000_000, "{}");
        let expected = hex::encode(crate::crypto::hmac_sha256(b"s3cret", b"1700000000.{}"));
        assert_eq!(sig, format!("t=1700000000,v1={expected}"));
    }

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!(backoff_ms(30_000, 1), 30_000);
        assert_eq!(backoff_ms(30_000, 2), 60_000);
        assert_eq!(backoff_ms(30_000, 4), 240_000);
        assert_eq!(backoff_ms(30_000, 30), HOUR_MS);
    }
}
