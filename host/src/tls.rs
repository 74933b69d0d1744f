//! TLS: one crypto provider (ring) for the whole process, the server's certificate, and
//! the rule that transfers between sites go over HTTPS.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// Installs ring as the process's rustls provider; every HTTPS client and server in the
/// process uses it. Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// `[tls]` in the settings file: serve HTTPS with this certificate chain and key (PEM).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsSettings {
    pub async fn server_config(&self) -> Result<axum_server::tls_rustls::RustlsConfig> {
        install_crypto_provider();
        axum_server::tls_rustls::RustlsConfig::from_pem_file(&self.cert, &self.key)
            .await
            .with_context(|| format!("cannot load the TLS certificate {} and key {}", self.cert.display(), self.key.display()))
    }
}

/// Refuses a URL that would carry a municipality's data in clear text: only `https://`,
/// or `http://` to this machine's loopback for local tools.
pub fn require_https(url: &str) -> Result<()> {
    let parsed = url::Url::parse(url).with_context(|| format!("`{url}` is not a URL"))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")) => Ok(()),
        _ => bail!("transfers between sites go over HTTPS only; `{url}` is not an https:// URL"),
    }
}

/// A client that also trusts `ca` (a PEM file), for sites with a private CA.
pub fn client_with_ca(ca: Option<&Path>) -> Result<reqwest::Client> {
    install_crypto_provider();
    let mut builder = reqwest::Client::builder();
    if let Some(ca) = ca {
        let pem = std::fs::read(ca).with_context(|| format!("cannot read CA certificate {}", ca.display()))?;
        let cert = reqwest::Certificate::from_pem(&pem).with_context(|| format!("{} is not a PEM certificate", ca.display()))?;
        builder = builder.add_root_certificate(cert);
    }
    Ok(builder.build()?)
}
