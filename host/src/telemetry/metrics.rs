//! The platform's metrics, per municipality and module: requests, latency, errors by kind,
//! instances in use, swaps, admission refusals and linkage reads. One OpenTelemetry meter
//! provider feeds both the Prometheus text at `/metrics` and, when configured, OTLP.

use super::TelemetrySettings;
use anyhow::{Context, Result};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, MeterProvider as _, UpDownCounter};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use prometheus::{Encoder, TextEncoder};
use std::time::Duration;

/// Latency buckets (seconds): a cached module answers in about a millisecond; the
/// default deadline is ten seconds.
const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Why a request did not end with the module's successful answer, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Past its deadline (504).
    Deadline,
    /// Past its memory limit (507).
    Memory,
    /// A trap, panic or stack overflow.
    Trap,
    /// The module answered 5xx, or broke the response contract.
    Module5xx,
    /// The host could not run it.
    Host,
}

impl ErrorKind {
    fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Deadline => "deadline",
            ErrorKind::Memory => "memory",
            ErrorKind::Trap => "trap",
            ErrorKind::Module5xx => "module_5xx",
            ErrorKind::Host => "host",
        }
    }
}

pub struct Metrics {
    provider: SdkMeterProvider,
    registry: prometheus::Registry,
    requests: Counter<u64>,
    latency: Histogram<f64>,
    errors: Counter<u64>,
    instances: UpDownCounter<i64>,
    swaps: Counter<u64>,
    admission_refusals: Counter<u64>,
    linkage_reads: Counter<u64>,
    connections: UpDownCounter<i64>,
    /// Observed instruments (the governor's occupancy and configured limits) live as long
    /// as these handles.
    observed: std::sync::Mutex<Vec<Box<dyn std::any::Any + Send + Sync>>>,
}

impl Metrics {
    /// Metrics served at `/metrics`, and pushed over OTLP if `settings` export.
    pub fn new(settings: &TelemetrySettings) -> Result<Self> {
        let registry = prometheus::Registry::new();
        let prometheus = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .scope_info_enabled(false)
            .without_target_info()
            .build()
            .context("cannot set up the Prometheus exporter")?;
        let mut builder = SdkMeterProvider::builder().with_reader(prometheus).with_resource(settings.resource());
        if settings.exports() {
            let interval = settings.metrics_interval_ms.map(Duration::from_millis);
            let mut reader = PeriodicReader::builder(settings.metric_exporter()?);
            if let (Some(interval), false) = (interval, super::env_set("OTEL_METRIC_EXPORT_INTERVAL")) {
                reader = reader.with_interval(interval);
            }
            builder = builder.with_reader(reader.build());
        }
        let provider = builder.build();
        let meter = provider.meter("nukisashi");
        Ok(Self {
            requests: meter.u64_counter("nukisashi.requests").with_description("Requests routed to a module").build(),
            latency: meter
                .f64_histogram("nukisashi.request.duration")
                .with_unit("s")
                .with_description("Time from routing to the module's response")
                .with_boundaries(LATENCY_BUCKETS.to_vec())
                .build(),
            errors: meter.u64_counter("nukisashi.errors").with_description("Requests that failed, by kind").build(),
            instances: meter.i64_up_down_counter("nukisashi.instances.in_use").with_description("Module instances serving a request now").build(),
            swaps: meter.u64_counter("nukisashi.swaps").with_description("Route changes: swaps, rollbacks, rollouts, suspensions").build(),
            admission_refusals: meter.u64_counter("nukisashi.admission.refusals").with_description("Uploads refused by admission, by reason").build(),
            linkage_reads: meter.u64_counter("nukisashi.linkage.reads").with_description("Personal-data reads by modules, by interface").build(),
            connections: meter.i64_up_down_counter("nukisashi.governor.connections").with_description("Open client connections").build(),
            observed: Default::default(),
            provider,
            registry,
        })
    }

    /// One request into a module has ended (`status` is what the caller got).
    pub fn request(&self, lg_code: &str, module: &str, version: &str, status: u16, elapsed: Duration, error: Option<ErrorKind>) {
        let class = match status / 100 {
            1 => "1xx",
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            _ => "5xx",
        };
        let attrs = [
            KeyValue::new("lg_code", lg_code.to_string()),
            KeyValue::new("module", module.to_string()),
            KeyValue::new("version", version.to_string()),
        ];
        let mut with_status = attrs.to_vec();
        with_status.push(KeyValue::new("status_class", class));
        self.requests.add(1, &with_status);
        self.latency.record(elapsed.as_secs_f64(), &attrs);
        if let Some(kind) = error {
            let mut with_kind = attrs.to_vec();
            with_kind.push(KeyValue::new("kind", kind.as_str()));
            self.errors.add(1, &with_kind);
        }
    }

    /// Counts an instance in use until the guard drops.
    pub fn instance_in_use(&self, module: &str) -> InstanceGuard<'_> {
        let attrs = [KeyValue::new("module", module.to_string())];
        self.instances.add(1, &attrs);
        InstanceGuard { metrics: self, attrs }
    }

    /// A route change took effect (`action`: swap, rollback, rollout, suspend, …).
    pub fn swap(&self, module: &str, action: &str) {
        self.swaps.add(1, &[KeyValue::new("module", module.to_string()), KeyValue::new("action", action.to_string())]);
    }

    pub fn admission_refused(&self, reason: &str) {
        self.admission_refusals.add(1, &[KeyValue::new("reason", reason.to_string())]);
    }

    pub fn linkage_reads(&self, lg_code: &str, module: &str, interface: &str, count: u64) {
        self.linkage_reads.add(
            count,
            &[KeyValue::new("lg_code", lg_code.to_string()), KeyValue::new("module", module.to_string()), KeyValue::new("interface", interface.to_string())],
        );
    }

    /// Counts the personal-data reads of one request or delivery, by interface.
    pub fn audited_reads(&self, lg_code: &str, module: &str, entries: &[crate::linkage::audit::AuditEntry]) {
        let mut by_interface: std::collections::BTreeMap<&str, u64> = Default::default();
        for e in entries {
            *by_interface.entry(e.interface).or_default() += 1;
        }
        for (interface, n) in by_interface {
            self.linkage_reads(lg_code, module, interface, n);
        }
    }

    /// Counts an open client connection until the guard drops.
    pub fn connection_open(&self) -> ConnectionGuard<'_> {
        self.connections.add(1, &[]);
        ConnectionGuard(self)
    }

    /// Exposes the governor's queue and instances, and every configured limit by its
    /// setting name (`nukisashi_governor_limit{limit="limits.admission.instances"}`).
    pub fn observe_governor(&self, governor: &std::sync::Arc<crate::governor::Governor>) {
        let meter = self.provider.meter("nukisashi");
        let admission = governor.admission.clone();
        let occupancy = meter
            .u64_observable_gauge("nukisashi.governor.occupancy")
            .with_description("Requests in instances, waiting for one, and platform work in instances")
            .with_callback(move |observer| {
                let now = admission.occupancy();
                observer.observe(now.in_use as u64, &[KeyValue::new("state", "in_use")]);
                observer.observe(now.queued as u64, &[KeyValue::new("state", "queued")]);
                observer.observe(now.platform_in_use as u64, &[KeyValue::new("state", "platform_in_use")]);
                observer.observe(now.linked_in_use as u64, &[KeyValue::new("state", "linked_in_use")]);
            })
            .build();
        let limits = governor.limits.named();
        let configured = meter
            .u64_observable_gauge("nukisashi.governor.limit")
            .with_description("Configured limits, by setting")
            .with_callback(move |observer| {
                for (name, value) in &limits {
                    observer.observe(*value, &[KeyValue::new("limit", *name)]);
                }
            })
            .build();
        let counting = governor.clone();
        let refusals = meter
            .u64_observable_counter("nukisashi.governor.refusals")
            .with_description("Requests, connections and module calls the governor refused, by limit")
            .with_callback(move |observer| {
                for (limit, n) in counting.refusal_counts() {
                    observer.observe(n, &[KeyValue::new("limit", limit)]);
                }
            })
            .build();
        let mut observed = self.observed.lock().expect("observed instruments");
        observed.push(Box::new(occupancy));
        observed.push(Box::new(configured));
        observed.push(Box::new(refusals));
    }

    /// The Prometheus text exposition of every metric.
    pub fn prometheus_text(&self) -> Result<String> {
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        Ok(String::from_utf8(buffer)?)
    }

    /// Pushes what is pending over OTLP (at shutdown).
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "flushing metrics at shutdown failed");
        }
    }
}

pub struct ConnectionGuard<'a>(&'a Metrics);

impl Drop for ConnectionGuard<'_> {
    fn drop(&mut self) {
        self.0.connections.add(-1, &[]);
    }
}

pub struct InstanceGuard<'a> {
    metrics: &'a Metrics,
    attrs: [KeyValue; 1],
}

impl Drop for InstanceGuard<'_> {
    fn drop(&mut self) {
        self.metrics.instances.add(-1, &self.attrs);
    }
}
