//! Rates: token buckets per key, on this host (each replica keeps its own, so a client of
//! n replicas may get up to n times the rate). Used for the event publishing rate per
//! (municipality, module) and the request rate per municipality.

use super::limits::StorageLimits;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Token buckets: `per_second` tokens a second, at most `burst` saved up, per key.
pub struct Buckets {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<(String, String), (f64, Instant)>>,
}

impl Buckets {
    pub fn new(per_second: f64, burst: u32) -> Self {
        Self { per_second, burst: burst.max(1) as f64, buckets: Mutex::default() }
    }

    /// Takes a token for `key`; `false` when its bucket is empty.
    pub fn take(&self, first: &str, second: &str) -> bool {
        self.take_n(first, second, 1.0)
    }

    /// Takes `n` tokens for `key` (bytes, for a byte rate); `false`, taking none, when the
    /// bucket has fewer.
    pub fn take_n(&self, first: &str, second: &str, n: f64) -> bool {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("rate lock");
        if buckets.len() > 100_000 {
            // Keys that have refilled to the full burst carry no state worth keeping.
            let (per_second, burst) = (self.per_second, self.burst);
            buckets.retain(|_, (tokens, at)| *tokens + now.duration_since(*at).as_secs_f64() * per_second < burst);
        }
        let (tokens, at) = buckets.entry((first.to_string(), second.to_string())).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.per_second).min(self.burst);
        *at = now;
        if *tokens < n {
            return false;
        }
        *tokens -= n;
        true
    }
}

/// How fast a module may publish events (or, in a bucket of their own, send notices), per
/// (municipality, module).
pub struct EventRate {
    buckets: Buckets,
    per_minute: u32,
    burst: u32,
    what: &'static str,
}

impl EventRate {
    /// The rate of events.
    pub fn new(limits: &StorageLimits) -> Self {
        Self::of("events", limits)
    }

    /// The same rate for `what` (`notices`), kept apart: one cannot use up the other.
    pub fn of(what: &'static str, limits: &StorageLimits) -> Self {
        Self { buckets: Buckets::new(limits.events_per_minute as f64 / 60.0, limits.event_burst), per_minute: limits.events_per_minute, burst: limits.event_burst, what }
    }

    /// Takes one event's worth from the bucket, or says why not.
    pub fn take(&self, lg_code: &str, module: &str) -> Result<(), String> {
        if self.buckets.take(lg_code, module) {
            return Ok(());
        }
        Err(format!(
            "module `{module}` at {lg_code} sends more than {} {} a minute (bursts of {}); the limit is [limits.storage] events_per_minute",
            self.per_minute, self.what, self.burst
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refill_at_their_rate() {
        let b = Buckets::new(1000.0, 2);
        assert!(b.take("a", "") && b.take("a", "") && !b.take("a", ""));
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(b.take("a", ""), "a few milliseconds at 1000/s bring a token back");
    }

    #[test]
    fn bursts_pass_and_floods_do_not() {
        let rate = EventRate::new(&StorageLimits { events_per_minute: 60, event_burst: 3, ..StorageLimits::default() });
        for _ in 0..3 {
            rate.take("131016", "m").unwrap();
        }
        assert!(rate.take("131016", "m").unwrap_err().contains("events_per_minute"));
        rate.take("011002", "m").expect("another municipality has its own bucket");
    }
}
