//! Failed sign-in throttling, per account and per IP, in memory (per instance).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed per account within the window.
pub const PER_ACCOUNT: usize = 5;
/// Failures allowed per IP address within the window.
pub const PER_IP: usize = 20;
/// The sliding window.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);

/// Remembers recent failures.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginThrottle {
    /// Seconds to wait before `account` or `ip` may try again, or `None` when they may now.
    pub fn retry_after(&self, account: &str, ip: &str) -> Option<u64> {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut wait = None;
        for (key, limit) in [(format!("a:{}", account.to_lowercase()), PER_ACCOUNT), (format!("i:{ip}"), PER_IP)] {
            if let Some(times) = map.get_mut(&key) {
                while times.front().is_some_and(|t| now.duration_since(*t) > WINDOW) {
                    times.pop_front();
                }
                if times.len() >= limit {
                    let oldest = times.front().copied().unwrap_or(now);
                    let secs = WINDOW.saturating_sub(now.duration_since(oldest)).as_secs().max(1);
                    wait = Some(wait.map_or(secs, |w: u64| w.max(secs)));
                }
            }
        }
        wait
    }

    /// Records a failed attempt.
    pub fn fail(&self, account: &str, ip: &str) {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if map.len() > 100_000 {
            map.retain(|_, times| times.back().is_some_and(|t| now.duration_since(*t) < WINDOW));
        }
        for key in [format!("a:{}", account.to_lowercase()), format!("i:{ip}")] {
            map.entry(key).or_default().push_back(now);
        }
    }

    /// Forgets an account's failures after a successful sign-in.
    pub fn succeed(&self, account: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        map.remove(&format!("a:{}", account.to_lowercase()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_limit() {
        let throttle = LoginThrottle::default();
        for _ in 0..PER_ACCOUNT {
            assert!(throttle.retry_after("olga", "1.1.1.1").is_none());
            throttle.fail("olga", "1.1.1.1");
        }
        assert!(throttle.retry_after("OLGA", "2.2.2.2").is_some());
        assert!(throttle.retry_after("tomas", "2.2.2.2").is_none());
        throttle.succeed("olga");
        assert!(throttle.retry_after("olga", "2.2.2.2").is_none());
    }
}
