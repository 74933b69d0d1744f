//! Nukisashi (抜き差し): a WebAssembly plugin host for pluggable municipal services.
//!
//! See `docs/ARCHITECTURE.md` for the map. In short: [`api`] takes HTTP, the gateway
//! resolves municipality and module through [`app`] and [`plugins::live`], and
//! [`runtime`] runs the request in a fresh, limited instance whose only way out is
//! [`capabilities`]. [`store`] holds everything durable.

pub mod api;
pub mod app;
pub mod auth;
pub mod capabilities;
pub mod catalog;
pub mod client;
pub mod demo;
pub mod dev;
pub mod edge;
pub mod engine;
pub mod governor;
pub mod lgcode;
pub mod linkage;
pub mod metering;
pub mod plugins;
pub mod replicas;
pub mod runtime;
pub mod scaffold;
pub mod server;
pub mod settings;
pub mod signin;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod transfer_client;
pub mod transfers;
pub mod wit;

/// Module ids are what appears in URLs and host names: 1–55 of `a-z`, `0-9` and `-`,
/// starting with a letter or digit, not `xn--…` (an internationalised-name prefix). 55 keeps
/// `{module}--{lg_code}` within a DNS label's 63 bytes.
pub fn is_valid_module_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 55
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
        && !id.starts_with("xn--")
}
