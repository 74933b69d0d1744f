//! Telemetry: `tracing` spans and events, bridged to OpenTelemetry, and the platform's
//! metrics (`metrics`), served as Prometheus text at `/metrics` and pushed over OTLP.
//!
//! Nothing leaves the process unless an OTLP endpoint is configured: in the settings file
//! (`[telemetry] otlp_endpoint`) or through the standard `OTEL_EXPORTER_OTLP_*` variables
//! (which win over the file). Sampling follows `OTEL_TRACES_SAMPLER`/`_ARG`, or the file's
//! `sample_ratio`; `OTEL_SDK_DISABLED=true` turns export off.

pub mod cpu;
pub mod metrics;
pub mod module_logs;

use anyhow::{Context, Result};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use serde::Deserialize;
use std::collections::HashMap;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub use metrics::Metrics;

/// `[telemetry]` in the settings file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// Base URL of an OTLP/HTTP collector, e.g. `http://otel-collector:4318`; the signal
    /// paths `/v1/traces` and `/v1/metrics` are appended.
    pub otlp_endpoint: Option<String>,
    /// `http/protobuf` (default) or `http/json`.
    pub otlp_protocol: Option<String>,
    /// Extra headers sent to the collector (an API key, a tenant).
    pub otlp_headers: HashMap<String, String>,
    /// Share of request traces kept, 0.0–1.0 (default 1.0).
    pub sample_ratio: Option<f64>,
    /// `service.name` of this host (default `nukisashi`).
    pub service_name: Option<String>,
    /// How often metrics are pushed over OTLP, in milliseconds (default 60000).
    pub metrics_interval_ms: Option<u64>,
}

const ENDPOINT_VARS: &[&str] = &["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"];

fn env_set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.trim().is_empty())
}

impl TelemetrySettings {
    /// Whether anything is exported: an endpoint configured, and the SDK not disabled.
    pub fn exports(&self) -> bool {
        let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
        !disabled && (self.otlp_endpoint.is_some() || ENDPOINT_VARS.iter().any(|v| env_set(v)))
    }

    fn resource(&self) -> Resource {
        let name = std::env::var("OTEL_SERVICE_NAME").ok().or_else(|| self.service_name.clone()).unwrap_or_else(|| "nukisashi".into());
        Resource::builder()
            .with_service_name(name)
            .with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build()
    }

    /// The file's endpoint for one signal, unless the environment names one.
    fn file_endpoint(&self, signal: &str) -> Option<String> {
        if env_set("OTEL_EXPORTER_OTLP_ENDPOINT") || env_set(&format!("OTEL_EXPORTER_OTLP_{}_ENDPOINT", signal.to_uppercase())) {
            return None;
        }
        self.otlp_endpoint.as_ref().map(|base| format!("{}/v1/{signal}", base.trim_end_matches('/')))
    }

    fn protocol(&self) -> Option<opentelemetry_otlp::Protocol> {
        if env_set("OTEL_EXPORTER_OTLP_PROTOCOL") {
            return None;
        }
        match self.otlp_protocol.as_deref() {
            Some("http/json") => Some(opentelemetry_otlp::Protocol::HttpJson),
            Some(_) => Some(opentelemetry_otlp::Protocol::HttpBinary),
            None => None,
        }
    }

    fn http_exporter<B: WithExportConfig + WithHttpConfig>(&self, builder: B, signal: &str) -> B {
        let mut builder = builder;
        if let Some(endpoint) = self.file_endpoint(signal) {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(protocol) = self.protocol() {
            builder = builder.with_protocol(protocol);
        }
        if !self.otlp_headers.is_empty() && !env_set("OTEL_EXPORTER_OTLP_HEADERS") {
            builder = builder.with_headers(self.otlp_headers.clone());
        }
        builder
    }

    fn tracer_provider(&self) -> Result<SdkTracerProvider> {
        let exporter = self
            .http_exporter(opentelemetry_otlp::SpanExporter::builder().with_http(), "traces")
            .build()
            .context("cannot set up the OTLP trace exporter")?;
        let mut builder = SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(self.resource());
        if let (Some(ratio), false) = (self.sample_ratio, env_set("OTEL_TRACES_SAMPLER")) {
            builder = builder.with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio.clamp(0.0, 1.0)))));
        }
        Ok(builder.build())
    }

    pub(crate) fn metric_exporter(&self) -> Result<opentelemetry_otlp::MetricExporter> {
        self.http_exporter(opentelemetry_otlp::MetricExporter::builder().with_http(), "metrics")
            .build()
            .context("cannot set up the OTLP metric exporter")
    }
}

/// Keeps the trace pipeline alive; dropping it flushes the spans still queued.
pub struct TracingGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TracingGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(e) = provider.shutdown() {
                eprintln!("warning: flushing traces at shutdown failed: {e}");
            }
        }
    }
}

/// Installs the process's `tracing` subscriber: log lines to stderr (filtered by
/// `NUKISASHI_LOG`), and spans to OpenTelemetry when `settings` export.
pub fn init(settings: Option<&TelemetrySettings>) -> Result<TracingGuard> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("NUKISASHI_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,cranelift=warn,wasmtime=warn"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(filter);
    let provider = match settings {
        Some(s) if s.exports() => Some(s.tracer_provider()?),
        _ => None,
    };
    // Spans (and the events inside them, such as module log lines) go to OpenTelemetry at
    // info and above, whatever the console shows; the exporter's own HTTP stays out.
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("nukisashi"))
            .with_filter(tracing_subscriber::EnvFilter::new("info,sqlx=warn,cranelift=warn,wasmtime=warn,hyper=off,reqwest=off,h2=off,opentelemetry=off"))
    });
    tracing_subscriber::registry().with(fmt).with(otel).try_init().context("cannot install the tracing subscriber")?;
    Ok(TracingGuard { provider })
}

use tracing_subscriber::Layer as _;
