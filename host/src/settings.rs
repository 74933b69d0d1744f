//! Host settings: defaults, then a TOML file, then `NUKISASHI_*` environment variables,
//! then command-line flags (clap reads the last two). Every default works on a laptop.

use anyhow::{Context, Result};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use crate::governor::limits::Limits;

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
    /// Every limit (`governor::limits`).
    pub limits: Limits,
    pub auth: crate::auth::AuthSettings,
    /// OpenTelemetry export (off unless an endpoint is configured).
    pub telemetry: crate::telemetry::TelemetrySettings,
    /// Serve HTTPS with this certificate (plain HTTP when absent, e.g. behind a proxy
    /// that terminates TLS).
    pub tls: Option<crate::tls::TlsSettings>,
    pub replicas: Replicas,
    /// Origins: where module pages and the platform are served (`edge`).
    pub edge: crate::edge::EdgeSettings,
    /// Browser sessions (`signin`).
    pub sign_in: crate::signin::SignInSettings,
    /// Started with `--demo`: demo data, and the demo identity provider on loopback.
    #[serde(skip)]
    pub demo: bool,
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

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("valid literal"),
            data_dir: PathBuf::from("nukisashi-data"),
            database_url: None,
            plugins: Vec::new(),
            plugins_dir: None,
            limits: Limits::default(),
            auth: Default::default(),
            telemetry: Default::default(),
            tls: None,
            replicas: Replicas::default(),
            edge: Default::default(),
            sign_in: Default::default(),
            demo: false,
        }
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
        let s: Settings = toml::from_str("[limits.admission]\nper_municipality = 3\n").unwrap();
        assert_eq!(s.limits.admission.per_municipality, 3);
        assert_eq!(s.limits.admission.instances, crate::governor::limits::AdmissionLimits::default().instances);
    }
}
