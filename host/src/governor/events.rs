//! How fast a module may publish events: a token bucket per (municipality, module), on
//! this host (each replica keeps its own, so a module on n replicas may publish up to n
//! times the rate). How many are kept is `store::events`' part.

use super::limits::StorageLimits;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

pub struct EventRate {
    per_minute: f64,
    burst: f64,
    buckets: Mutex<HashMap<(String, String), (f64, Instant)>>,
}

impl EventRate {
    pub fn new(limits: &StorageLimits) -> Self {
        Self { per_minute: limits.events_per_minute as f64, burst: limits.event_burst.max(1) as f64, buckets: Mutex::default() }
    }

    /// Takes one event's worth from the bucket, or says why not.
    pub fn take(&self, lg_code: &str, module: &str) -> Result<(), String> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("event rate lock");
        let (tokens, at) = buckets.entry((lg_code.to_string(), module.to_string())).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.per_minute / 60.0).min(self.burst);
        *at = now;
        if *tokens < 1.0 {
            return Err(format!(
                "module `{module}` at {lg_code} publishes more than {} events a minute (bursts of {}); the limit is [limits.storage] events_per_minute",
                self.per_minute, self.burst
            ));
        }
        *tokens -= 1.0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
