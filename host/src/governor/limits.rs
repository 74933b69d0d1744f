//! Every limit the host enforces, in one settings section: `[limits]` with its tables
//! `[limits.admission]`, `[limits.connections]` and `[limits.storage]`. Each default works on
//! a laptop and keeps one municipality, module or client from hurting the others; each
//! refusal names the setting that caused it, so an operator knows what to raise.

use serde::Deserialize;
use std::time::Duration;

/// `[limits]`: what one request (or delivery) may use inside its instance, and the tables
/// for admission, connections and storage.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock time a request may spend in the module (→ 504).
    pub deadline_ms: u64,
    /// Linear memory one instance may grow to, all its memories together (→ 507).
    pub memory_bytes: u64,
    /// Elements per table.
    pub table_elements: usize,
    /// Core instances, tables and memories one request's component may create.
    pub instances: usize,
    pub tables: usize,
    pub memories: usize,
    /// Host resources (wasi:http headers, bodies, streams, pollables…) one instance may
    /// hold at once; the next one fails in the module.
    pub resources: usize,
    /// Largest headers object (`wasi:http` fields) a module may build, in bytes of the
    /// host's representation.
    pub header_bytes: usize,
    /// Largest value a module may pass in one host call (a kv value, a log line).
    pub host_call_bytes: usize,
    /// Largest request body the host reads for a module (→ 413).
    pub request_body_bytes: usize,
    /// Largest response body the host accepts from a module (→ 502).
    pub response_body_bytes: usize,
    /// Log lines one request may write; further lines are dropped.
    pub log_lines: u32,
    /// Log bytes one request may write in all; further lines are dropped.
    pub log_bytes: usize,
    /// Log bytes one (municipality, module) may write per second over time (bursts of
    /// `log_bytes`); further lines are dropped, so a module cannot fill the host's disk.
    pub log_bytes_per_second: u32,
    /// Personal-data records one request may read through the linkage interfaces; the read
    /// past it fails with `too-large` (what was read is audited).
    pub audit_records: usize,
    /// kv bytes a change or event delivery may write (they are held until its commit).
    pub delivery_write_bytes: usize,
    pub admission: AdmissionLimits,
    pub connections: ConnectionLimits,
    pub storage: StorageLimits,
}

/// `[limits.admission]`: who gets an instance. Requests that cannot start at once wait in a
/// fair queue (round robin between municipalities) for at most `queue_ms`, then get 503
/// with `Retry-After`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdmissionLimits {
    /// Requests inside modules at once on this host (default: 16 per core).
    pub instances: u32,
    /// Requests one municipality may send to this host per second (bursts of twice that);
    /// 0 (the default): no limit. Instance shares bound what a municipality runs at once;
    /// this bounds what a flood of cheap requests costs the host around them (parsing,
    /// routing, answering), which no instance share sees. Off by default because it also
    /// caps a busy municipality's legitimate peak; docs/BENCHMARKS.md (fairness) shows what
    /// it buys on a host shared by many.
    pub requests_per_second: u32,
    /// Instances kept for the platform's own work (change and event deliveries, admission
    /// health checks), which traffic cannot take.
    pub platform_instances: u32,
    /// Instances for calls into the module a municipality chose to provide an interface
    /// (`receipts`, a vendor's `resident-registry`), taken while the consumer holds its own
    /// and waited for at most until the consumer's deadline.
    pub linked_instances: u32,
    /// Of those, what one municipality's calls may hold at once (more wait, within the
    /// consumer's deadline): one municipality's slow providers cannot hold them all.
    pub linked_per_municipality: u32,
    /// Requests of one municipality inside modules at once.
    pub per_municipality: u32,
    /// Requests of one (municipality, module) inside the module at once.
    pub per_module: u32,
    /// Requests of one module inside it at once, all municipalities together: a module
    /// that is slow for everyone (a vendor's bug) cannot take every instance.
    pub per_module_everywhere: u32,
    /// Longest a request waits for an instance.
    pub queue_ms: u64,
    /// Requests waiting on this host, and of one municipality; more are refused at once.
    pub queue_length: u32,
    pub queue_per_municipality: u32,
}

/// `[limits.connections]`: slow and greedy clients.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionLimits {
    /// Open connections on this host (also kept below the process's file limit).
    pub max: u32,
    /// Open connections from one client address.
    pub per_client: u32,
    /// Time a client has to send a request's headers (→ connection closed). The clock also
    /// runs while a kept-alive HTTP/1.1 connection waits for its next request, so this is
    /// how long such a connection stays open between requests.
    pub header_read_ms: u64,
    /// Time a connection may go without a byte moving either way, mid-request or with an
    /// answer its client does not read (and between requests on HTTP/2).
    pub idle_ms: u64,
    /// Time a client has to send a request body to a module (→ 408).
    pub body_read_ms: u64,
    /// Request bodies held in memory at once, all requests together (→ 503), and of one
    /// municipality's requests.
    pub body_buffer_bytes: u64,
    pub body_buffer_per_municipality: u64,
    /// Module responses held in memory until their clients read them, all together and of
    /// one municipality (→ 503; a client that does not read its answers is closed after
    /// `idle_ms`).
    pub response_buffer_bytes: u64,
    pub response_buffer_per_municipality: u64,
}

/// `[limits.storage]`: what a module may keep, per (municipality, module).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageLimits {
    /// kv bytes (keys and values) per (municipality, module).
    pub kv_bytes: u64,
    /// kv keys per (municipality, module).
    pub kv_keys: u64,
    /// Largest event payload.
    pub event_payload_bytes: usize,
    /// Events one (municipality, module) may publish per minute, with bursts up to
    /// `event_burst`.
    pub events_per_minute: u32,
    pub event_burst: u32,
    /// Events of one (municipality, source module) kept in the log; publishing past it
    /// fails until older ones expire.
    pub events_kept: u64,
    /// Notices of one sending (municipality, module) kept in one receiving municipality's
    /// log; sending past it fails until delivered ones expire.
    pub notices_kept: u64,
    /// Days an event stays in the log (a notice: once delivered).
    pub event_retention_days: u32,
    /// Largest linkage import file (spooled to disk before its transaction).
    pub import_bytes: u64,
    /// Longest line of an import file.
    pub csv_line_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            deadline_ms: 10_000,
            memory_bytes: 128 << 20,
            table_elements: 20_000,
            instances: 32,
            tables: 16,
            memories: 4,
            resources: 1_000,
            header_bytes: 64 << 10,
            host_call_bytes: 1 << 20,
            request_body_bytes: 16 << 20,
            response_body_bytes: 16 << 20,
            log_lines: 200,
            log_bytes: 256 << 10,
            log_bytes_per_second: 16 << 10,
            audit_records: 50_000,
            delivery_write_bytes: 16 << 20,
            admission: AdmissionLimits::default(),
            connections: ConnectionLimits::default(),
            storage: StorageLimits::default(),
        }
    }
}

impl Default for AdmissionLimits {
    fn default() -> Self {
        // A request holds its instance until it answers, up to its deadline, so instances
        // are not only CPU: 16 per core keep every core busy when some requests wait on
        // storage or loop to their deadline. A quarter of them for one municipality, and a
        // half for one module everywhere, keep one slow tenant, or one vendor's slow module,
        // from holding them all. When they are all taken, the fair queue hands them out in
        // turn.
        let cores = std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(2);
        let instances = (16 * cores).clamp(16, 512);
        Self {
            instances,
            requests_per_second: 0,
            platform_instances: 16,
            linked_instances: 32,
            linked_per_municipality: 8,
            per_municipality: instances / 4,
            per_module: instances / 4,
            per_module_everywhere: instances / 2,
            queue_ms: 2_000,
            queue_length: 1_024,
            queue_per_municipality: 64,
        }
    }
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max: 4_096,
            per_client: 256,
            header_read_ms: 10_000,
            idle_ms: 60_000,
            body_read_ms: 30_000,
            body_buffer_bytes: 256 << 20,
            body_buffer_per_municipality: 64 << 20,
            response_buffer_bytes: 1 << 30,
            response_buffer_per_municipality: 256 << 20,
        }
    }
}

impl Default for StorageLimits {
    fn default() -> Self {
        Self {
            kv_bytes: 256 << 20,
            kv_keys: 1_000_000,
            event_payload_bytes: 64 << 10,
            events_per_minute: 600,
            event_burst: 100,
            events_kept: 1_000_000,
            notices_kept: 10_000,
            event_retention_days: 90,
            import_bytes: 4 << 30,
            csv_line_bytes: 64 << 10,
        }
    }
}

impl Limits {
    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }

    /// Every limit by its setting name, for `/metrics`.
    pub fn named(&self) -> Vec<(&'static str, u64)> {
        let a = &self.admission;
        let c = &self.connections;
        let s = &self.storage;
        vec![
            ("limits.deadline_ms", self.deadline_ms),
            ("limits.memory_bytes", self.memory_bytes),
            ("limits.resources", self.resources as u64),
            ("limits.header_bytes", self.header_bytes as u64),
            ("limits.host_call_bytes", self.host_call_bytes as u64),
            ("limits.request_body_bytes", self.request_body_bytes as u64),
            ("limits.response_body_bytes", self.response_body_bytes as u64),
            ("limits.log_lines", self.log_lines as u64),
            ("limits.log_bytes", self.log_bytes as u64),
            ("limits.log_bytes_per_second", self.log_bytes_per_second as u64),
            ("limits.audit_records", self.audit_records as u64),
            ("limits.delivery_write_bytes", self.delivery_write_bytes as u64),
            ("limits.admission.instances", a.instances as u64),
            ("limits.admission.requests_per_second", a.requests_per_second as u64),
            ("limits.admission.platform_instances", a.platform_instances as u64),
            ("limits.admission.linked_instances", a.linked_instances as u64),
            ("limits.admission.linked_per_municipality", a.linked_per_municipality as u64),
            ("limits.admission.per_municipality", a.per_municipality as u64),
            ("limits.admission.per_module", a.per_module as u64),
            ("limits.admission.per_module_everywhere", a.per_module_everywhere as u64),
            ("limits.admission.queue_ms", a.queue_ms),
            ("limits.admission.queue_length", a.queue_length as u64),
            ("limits.admission.queue_per_municipality", a.queue_per_municipality as u64),
            ("limits.connections.max", c.max as u64),
            ("limits.connections.per_client", c.per_client as u64),
            ("limits.connections.header_read_ms", c.header_read_ms),
            ("limits.connections.idle_ms", c.idle_ms),
            ("limits.connections.body_read_ms", c.body_read_ms),
            ("limits.connections.body_buffer_bytes", c.body_buffer_bytes),
            ("limits.connections.body_buffer_per_municipality", c.body_buffer_per_municipality),
            ("limits.connections.response_buffer_bytes", c.response_buffer_bytes),
            ("limits.connections.response_buffer_per_municipality", c.response_buffer_per_municipality),
            ("limits.storage.kv_bytes", s.kv_bytes),
            ("limits.storage.kv_keys", s.kv_keys),
            ("limits.storage.event_payload_bytes", s.event_payload_bytes as u64),
            ("limits.storage.events_per_minute", s.events_per_minute as u64),
            ("limits.storage.event_burst", s.event_burst as u64),
            ("limits.storage.events_kept", s.events_kept),
            ("limits.storage.notices_kept", s.notices_kept),
            ("limits.storage.event_retention_days", s.event_retention_days as u64),
            ("limits.storage.import_bytes", s.import_bytes),
            ("limits.storage.csv_line_bytes", s.csv_line_bytes as u64),
        ]
    }

    /// Settings that cannot work together, as a sentence.
    pub fn check(&self) -> anyhow::Result<()> {
        let a = &self.admission;
        if a.instances == 0 || a.per_municipality == 0 || a.per_module == 0 || a.per_module_everywhere == 0 || a.platform_instances == 0 || a.linked_instances == 0 || a.linked_per_municipality == 0 {
            anyhow::bail!("[limits.admission] instances, platform_instances, linked_instances, linked_per_municipality, per_municipality, per_module and per_module_everywhere must be at least 1");
        }
        if self.memory_bytes == 0 || self.deadline_ms == 0 || self.resources < 16 {
            anyhow::bail!("[limits] memory_bytes and deadline_ms must be above 0, and resources at least 16");
        }
        Ok(())
    }
}
