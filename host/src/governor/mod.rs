//! The governor: every limit and queue, in one place, so that one municipality, one module
//! or one client cannot hurt the others. See "The governor" in docs/ARCHITECTURE.md.
//!
//! - [`limits`]: the settings, `[limits]` and its tables, each with its default and why;
//! - [`admission`]: who gets an instance (fair queue, shares per municipality and module,
//!   slots kept for platform work);
//! - [`body`]: a request body is read whole, bounded in size, time and total memory,
//!   before any instance is taken;
//! - [`connections`]: the listener (connections in all and per client, header and idle
//!   timeouts);
//! - [`rate`]: token buckets: the request rate per municipality, the event publishing rate
//!   per (municipality, module).
//!
//! What a module may use inside its instance (memory of all its memories, resources,
//! headers, log bytes, records read, buffered writes) is enforced where it is used —
//! `runtime::limits`, `runtime::state`, `capabilities` — from the same [`limits::Limits`];
//! storage quotas in `store::kv` and `store::events`. Every refusal names its setting.

pub mod admission;
pub mod body;
pub mod connections;
pub mod limits;
pub mod rate;

use crate::api::problem::Problem;
use crate::lgcode::LgCode;
use admission::{Admission, Permit, Refused};
use axum::http::{StatusCode, header};
use limits::Limits;
use std::sync::Arc;

/// The governor of one host.
pub struct Governor {
    pub limits: Limits,
    pub admission: Arc<Admission>,
    /// Request bodies being received, and module responses not yet read by their clients.
    pub bodies: body::Budget,
    pub responses: body::Budget,
    /// Refusals by limit since start (for `/metrics`): the governor's own, and those of the
    /// capabilities (storage quotas, event rate, log drops).
    refusals: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
    pub events: rate::EventRate,
    /// The notice sending rate, per (municipality, module), apart from events.
    pub notices: rate::EventRate,
    requests: rate::Buckets,
    /// Module log bytes per (municipality, module), over time.
    pub logs: rate::Buckets,
}

impl Governor {
    pub fn new(limits: &Limits) -> Self {
        Self {
            admission: Admission::new(limits.admission.clone()),
            bodies: body::Budget::new(
                "body-buffers",
                "request bodies being received",
                ("[limits.connections] body_buffer_bytes", "[limits.connections] body_buffer_per_municipality"),
                limits.connections.body_buffer_bytes,
                limits.connections.body_buffer_per_municipality,
            ),
            responses: body::Budget::new(
                "response-buffers",
                "module responses waiting for their clients to read them",
                ("[limits.connections] response_buffer_bytes", "[limits.connections] response_buffer_per_municipality"),
                limits.connections.response_buffer_bytes,
                limits.connections.response_buffer_per_municipality,
            ),
            refusals: Default::default(),
            events: rate::EventRate::new(&limits.storage),
            notices: rate::EventRate::of("notices", &limits.storage),
            requests: rate::Buckets::new(limits.admission.requests_per_second as f64, limits.admission.requests_per_second.saturating_mul(2)),
            logs: rate::Buckets::new(limits.log_bytes_per_second as f64, limits.log_bytes.max(limits.log_bytes_per_second as usize) as u32),
            limits: limits.clone(),
        }
    }

    /// An instance for a request of `module` at `lg_code`, or the 503 naming the limit.
    /// A municipality past its request rate is refused like one whose queue is full: after
    /// the queue's time, so a flood is slowed down, not answered faster.
    pub async fn admit<'a>(&'a self, lg_code: &'a LgCode, module: &'a str) -> Result<Permit<'a>, Problem> {
        let a = &self.limits.admission;
        if a.requests_per_second > 0 && !self.requests.take(lg_code.as_str(), "") {
            tokio::time::sleep(std::time::Duration::from_millis(a.queue_ms)).await;
            return Err(over_capacity(
                "municipality-rate",
                format!(
                    "municipality {lg_code} sends more than {} requests a second to this host; try again shortly (the limit is [limits.admission] requests_per_second)",
                    a.requests_per_second
                ),
            ));
        }
        self.admission.admit(lg_code, module).await.map_err(|refused| self.refusal(refused, lg_code, module))
    }

    /// Counts a refusal by `limit` (a stable name, e.g. `kv-bytes`, `client-connections`).
    pub fn refused(&self, limit: &str) {
        let mut counts = self.refusals.lock().expect("refusal counts");
        match counts.get_mut(limit) {
            Some(n) => *n += 1,
            None => {
                counts.insert(limit.to_string(), 1);
            }
        }
    }

    /// Refusals by limit since start.
    pub fn refusal_counts(&self) -> Vec<(String, u64)> {
        self.refusals.lock().expect("refusal counts").iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    fn refusal(&self, Refused { limit, waited }: Refused, lg_code: &LgCode, module: &str) -> Problem {
        use admission::Limit;
        let a = &self.limits.admission;
        let what = match limit {
            Limit::Host => format!("this host has its {} instances in use", a.instances),
            Limit::Municipality => format!("municipality {lg_code} has its {} instances in use", a.per_municipality),
            Limit::Module => format!("module `{module}` at {lg_code} has its {} instances in use", a.per_module),
            Limit::ModuleEverywhere => format!("module `{module}` has its {} instances in use across all municipalities", a.per_module_everywhere),
            Limit::Queue => "too many requests are waiting for an instance already".to_string(),
        };
        let waited = if waited && limit != Limit::Queue { format!(" after waiting {} ms", a.queue_ms) } else { String::new() };
        over_capacity(limit.name(), format!("{what}{waited}; try again shortly (the limit is {})", limit.setting()))
    }
}

/// Runs `work` on a blocking thread (driving its database calls from there): for work that
/// hashes, serialises or writes files as it goes (backups, exports, archive imports), which
/// would otherwise hold an async worker — and every request queued on it — for as long.
pub async fn on_blocking_thread<T: Send + 'static>(work: impl std::future::Future<Output = T> + Send + 'static) -> T {
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || runtime.block_on(work)).await.expect("blocking work panicked")
}

/// How often expired events are deleted.
const HOUSEKEEPING: std::time::Duration = std::time::Duration::from_secs(3600);

/// Deletes events, and delivered notices, past `[limits.storage] event_retention_days`, at
/// start and every hour.
pub fn spawn_housekeeping(app: Arc<crate::app::App>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(HOUSEKEEPING);
        loop {
            tick.tick().await;
            let days = i64::from(app.governor.limits.storage.event_retention_days);
            let cutoff = (chrono::Utc::now() - chrono::Duration::days(days)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            match app.db.expire_events(&cutoff).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(expired = n, days, "expired events past their retention"),
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "expiring events failed"),
            }
            match app.db.expire_notices(&cutoff).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(expired = n, days, "expired delivered notices past their retention"),
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "expiring notices failed"),
            }
        }
    });
}

/// 503 with `Retry-After`: the request was fine, the host is busy for it now.
pub fn over_capacity(limit: &str, detail: String) -> Problem {
    Problem::new(StatusCode::SERVICE_UNAVAILABLE, &format!("over-capacity-{limit}"), "Over capacity", detail).with_header(header::RETRY_AFTER, "1")
}
