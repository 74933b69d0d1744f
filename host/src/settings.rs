//! Host settings: defaults, then a TOML file, then `NUKISASHI_*` environment variables,
//! then command-line flags (clap reads the last two). Every default works on a laptop.

use anyhow::{Context, Result};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Everything `nukisashi serve` needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address the HTTP server binds to.
    pub listen: SocketAddr,
    /// Where the embedded database and compiled artifacts live; created on first run.
    pub data_dir: PathBuf,
    /// `postgres://…` to use PostgreSQL; absent means SQLite in `data_dir`.
    pub database_url: Option<String>,
    /// Component files loaded at start-up.
    pub plugins: Vec<PathBuf>,
    /// Every `*.wasm` in this directory is loaded at start-up.
    pub plugins_dir: Option<PathBuf>,
    pub limits: Limits,
    pub pool: Pool,
    pub auth: crate::auth::AuthSettings,
    /// OpenTelemetry export (off unless an endpoint is configured).
    pub telemetry: crate::telemetry::TelemetrySettings,
    /// Serve HTTPS with this certificate (plain HTTP when absent, e.g. behind a proxy
    /// that terminates TLS).
    pub tls: Option<crate::tls::TlsSettings>,
    pub replicas: Replicas,
    /// Origins: where module pages and the platform are served (`edge`).
    pub edge: crate::edge::EdgeSettings,
}

/// Several hosts on one PostgreSQL database (`replicas`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Replicas {
    /// How often a host rebuilds its routes from the database even without notifications
    /// (the bound on staleness after a missed one).
    pub reconcile_ms: u64,
}

impl Default for Replicas {
    fn default() -> Self {
        Self { reconcile_ms: 15_000 }
    }
}

/// Per-request limits on a module. A module that exceeds one gets a clear error response
/// naming the limit; the host and every other module keep serving.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock time a request may spend in the module (→ 504).
    pub deadline_ms: u64,
    /// Linear memory one instance may grow to (→ 507).
    pub memory_bytes: u64,
    /// Elements per table.
    pub table_elements: usize,
    /// Core instances, tables and memories one request's component may create.
    pub instances: usize,
    pub tables: usize,
    pub memories: usize,
    /// Largest value a module may pass in one host call (a kv value, a log line).
    pub host_call_bytes: usize,
    /// Largest request body streamed into a module (→ 413).
    pub request_body_bytes: usize,
    /// Largest response body the host accepts from a module (→ 502).
    pub response_body_bytes: usize,
    /// Log lines one request may write; further lines are dropped.
    pub log_lines: u32,
}

/// The pooling allocator: slots are reserved once at start-up, so instantiation is a few
/// microseconds. Each slot reserves virtual address space (about 4 GiB per memory for
/// bounds-check elimination) but only what is touched becomes resident.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Pool {
    /// Requests that can be inside modules at the same time; more wait for a slot.
    pub instances: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("valid literal"),
            data_dir: PathBuf::from("nukisashi-data"),
            database_url: None,
            plugins: Vec::new(),
            plugins_dir: None,
            limits: Limits::default(),
            pool: Pool::default(),
            auth: Default::default(),
            telemetry: Default::default(),
            tls: None,
            replicas: Replicas::default(),
            edge: Default::default(),
        }
    }
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
            host_call_bytes: 1 << 20,
            request_body_bytes: 16 << 20,
            response_body_bytes: 16 << 20,
            log_lines: 200,
        }
    }
}

impl Default for Pool {
    fn default() -> Self {
        Self { instances: 128 }
    }
}

impl Limits {
    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }
}

impl Settings {
    /// Reads a TOML settings file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read settings file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("settings file {} is not valid", path.display()))
    }

    /// Path of the embedded database's directory for compiled artifacts.
    pub fn artifact_dir(&self) -> PathBuf {
        self.data_dir.join("artifacts")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_overrides_defaults_and_rejects_typos() {
        let s: Settings = toml::from_str("listen = \"0.0.0.0:9000\"\n[limits]\ndeadline_ms = 250\n").unwrap();
        assert_eq!(s.listen.port(), 9000);
        assert_eq!(s.limits.deadline_ms, 250);
        assert_eq!(s.limits.memory_bytes, Limits::default().memory_bytes);
        let err = toml::from_str::<Settings>("[limits]\ndeadline = 250\n").unwrap_err().to_string();
        assert!(err.contains("deadline"), "{err}");
    }
}
