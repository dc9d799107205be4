//! Rate limits of event ingestion: fixed one-minute windows per embed key and per client IP,
//! in memory (per instance).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);
/// Forget windows beyond this many keys (they are over anyway after a minute).
const MAX_TRACKED: usize = 100_000;

/// Request counters per embed key and per IP.
#[derive(Debug)]
pub struct RateLimits {
    per_key: u32,
    per_ip: u32,
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimits {
    /// Limits of `per_key` and `per_ip` requests a minute.
    pub fn new(per_key: u32, per_ip: u32) -> Self {
        Self { per_key, per_ip, windows: Mutex::new(HashMap::new()) }
    }

    /// Counts a request of `key` from `ip`, or says in how many seconds one may be made again.
    /// A refused request counts against neither limit.
    pub fn check(&self, key: &str, ip: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if windows.len() > MAX_TRACKED {
            windows.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let keys = [(format!("k:{key}"), self.per_key), (format!("i:{ip}"), self.per_ip)];
        let mut wait = None;
        for (name, limit) in &keys {
            if let Some((start, count)) = windows.get(name) {
                let elapsed = now.duration_since(*start);
                if elapsed < WINDOW && *count >= *limit {
                    let secs = (WINDOW - elapsed).as_secs().max(1);
                    wait = Some(wait.map_or(secs, |w: u64| w.max(secs)));
                }
            }
        }
        if let Some(wait) = wait {
            return Err(wait);
        }
        for (name, _) in keys {
            let window = windows.entry(name).or_insert((now, 0));
            if now.duration_since(window.0) >= WINDOW {
                *window = (now, 0);
            }
            window.1 += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_key_and_per_ip() {
        let limits = RateLimits::new(3, 5);
        for _ in 0..3 {
            assert!(limits.check("a", "1.1.1.1").is_ok());
        }
        let wait = limits.check("a", "2.2.2.2").expect_err("key a is spent");
        assert!((1..=60).contains(&wait));
        assert!(limits.check("b", "1.1.1.1").is_ok());
        assert!(limits.check("c", "1.1.1.1").is_ok());
        assert!(limits.check("d", "1.1.1.1").is_err(), "ip 1.1.1.1 is spent");
        assert!(limits.check("d", "3.3.3.3").is_ok());
    }
}
