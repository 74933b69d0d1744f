//! Telemetry: a host configured with the standard `OTEL_*` variables exports its spans and
//! metrics over OTLP to a collector (here, one inside the test process), with municipality,
//! module, version and route on the request span, the module's log line attached to it,
//! linkage calls as child spans; and `/metrics` serves the same metrics to Prometheus.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use nukisashi_e2e::{Backend, HostSpec, linkage_plugin, module};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CHIYODA: &str = "131016";

#[derive(Clone, Default)]
struct Collector {
    traces: Arc<Mutex<Vec<Value>>>,
    metrics: Arc<Mutex<Vec<Value>>>,
}

/// An OTLP/HTTP (JSON) collector on a loopback port.
async fn start_collector() -> (String, Collector) {
    let collector = Collector::default();
    async fn traces(State(c): State<Collector>, body: Bytes) -> &'static str {
        c.traces.lock().unwrap().push(serde_json::from_slice(&body).expect("OTLP JSON"));
        "{}"
    }
    async fn metrics(State(c): State<Collector>, body: Bytes) -> &'static str {
        c.metrics.lock().unwrap().push(serde_json::from_slice(&body).expect("OTLP JSON"));
        "{}"
    }
    let app = Router::new().route("/v1/traces", post(traces)).route("/v1/metrics", post(metrics)).with_state(collector.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, collector)
}

/// An OTLP attribute list as `key → value` strings.
fn attributes(list: &Value) -> std::collections::BTreeMap<String, String> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            let v = &a["value"];
            let text = v["stringValue"].as_str().map(str::to_string).or_else(|| v["intValue"].as_str().map(str::to_string)).or_else(|| v["intValue"].as_i64().map(|i| i.to_string())).unwrap_or_else(|| v.to_string());
            (a["key"].as_str().unwrap_or("").to_string(), text)
        })
        .collect()
}

fn spans(collector: &Collector) -> Vec<Value> {
    let batches = collector.traces.lock().unwrap();
    batches
        .iter()
        .flat_map(|b| b["resourceSpans"].as_array().cloned().unwrap_or_default())
        .flat_map(|r| r["scopeSpans"].as_array().cloned().unwrap_or_default())
        .flat_map(|s| s["spans"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// Data points of metric `name` across every export so far.
fn points(collector: &Collector, name: &str) -> Vec<Value> {
    let batches = collector.metrics.lock().unwrap();
    batches
        .iter()
        .flat_map(|b| b["resourceMetrics"].as_array().cloned().unwrap_or_default())
        .flat_map(|r| r["scopeMetrics"].as_array().cloned().unwrap_or_default())
        .flat_map(|s| s["metrics"].as_array().cloned().unwrap_or_default())
        .filter(|m| m["name"] == name)
        .flat_map(|m| {
            let data = if m["sum"].is_object() { &m["sum"] } else { &m["histogram"] };
            data["dataPoints"].as_array().cloned().unwrap_or_default()
        })
        .collect()
}

async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn spans_and_metrics_reach_an_otlp_collector_and_prometheus() {
    let (endpoint, collector) = start_collector().await;
    let dir = tempfile::tempdir().unwrap();
    let mut spec = HostSpec::new(Backend::Sqlite, dir.path(), &["guestbook", "fault-fixture"])
        .await
        .unwrap()
        .settings("[limits]\ndeadline_ms = 300\n")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("OTEL_METRIC_EXPORT_INTERVAL", "300")
        .env("OTEL_SERVICE_NAME", "nukisashi-under-test");
    spec.plugins.push(linkage_plugin(dir.path(), "linkage", &["kv", "resident-registry"]));
    let host = spec.start().unwrap();

    // A request whose module logs a line.
    let response = host.post_json(&format!("/{CHIYODA}/guestbook/entries"), &json!({ "name": "山田", "message": "こんにちは" })).await;
    assert!(response.status().is_success(), "{}", host.log());
    let request_id = response.headers()["x-request-id"].to_str().unwrap().to_string();
    // A personal-data read, and a request past its deadline.
    let read = host.get(&format!("/{CHIYODA}/linkage/resident/000000000001")).await;
    assert!(read.status().is_success(), "{}", host.log());
    let read_id = read.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(host.get(&format!("/{CHIYODA}/fault-fixture/loop")).await.status(), 504);

    // The request span: municipality, module, version, route, status.
    let request_span = eventually("the guestbook request span", || {
        spans(&collector).into_iter().find(|s| s["name"] == "module_request" && attributes(&s["attributes"]).get("request_id") == Some(&request_id))
    })
    .await;
    let attrs = attributes(&request_span["attributes"]);
    assert_eq!(attrs["lg_code"], CHIYODA, "{attrs:?}");
    assert_eq!(attrs["module"], "guestbook");
    assert_eq!(attrs["version"], "0.0.0", "file plugins without a manifest are version 0.0.0");
    assert_eq!(attrs["route"], "/");
    assert_eq!(attrs["http.method"], "POST");
    assert!(attrs["http.status_code"].starts_with('2'), "{attrs:?}");
    // The module's log line is an event of that span, carrying the module's identity.
    let events = request_span["events"].as_array().cloned().unwrap_or_default();
    let logged = events.iter().find(|e| e["name"].as_str().is_some_and(|n| n.starts_with("guestbook entry") && n.ends_with("added")));
    let logged = logged.unwrap_or_else(|| panic!("no module log line on the request span: {events:?}"));
    assert_eq!(attributes(&logged["attributes"]).get("module").map(String::as_str), Some("guestbook"), "{logged}");

    // The linkage call is a child span of its request.
    let read_span = eventually("the linkage request span", || {
        spans(&collector).into_iter().find(|s| s["name"] == "module_request" && attributes(&s["attributes"]).get("request_id") == Some(&read_id))
    })
    .await;
    let call = eventually("the linkage call span", || {
        spans(&collector).into_iter().find(|s| s["name"] == "linkage_call" && s["parentSpanId"] == read_span["spanId"])
    })
    .await;
    assert_eq!(attributes(&call["attributes"])["interface"], "resident-registry.get");
    assert_eq!(call["traceId"], read_span["traceId"]);

    // Metrics over OTLP: requests per municipality and module, errors by kind, reads.
    eventually("request and error metrics", || {
        let requests = points(&collector, "nukisashi.requests");
        let errors = points(&collector, "nukisashi.errors");
        let reads = points(&collector, "nukisashi.linkage.reads");
        let guestbook = requests.iter().any(|p| {
            let a = attributes(&p["attributes"]);
            a.get("lg_code").map(String::as_str) == Some(CHIYODA) && a.get("module").map(String::as_str) == Some("guestbook")
        });
        let deadline = errors.iter().any(|p| {
            let a = attributes(&p["attributes"]);
            a.get("kind").map(String::as_str) == Some("deadline") && a.get("module").map(String::as_str) == Some("fault-fixture")
        });
        let read = reads.iter().any(|p| attributes(&p["attributes"]).get("interface").map(String::as_str) == Some("resident-registry.get"));
        (guestbook && deadline && read).then_some(())
    })
    .await;

    // The same, scraped as Prometheus text.
    let text = host.get("/metrics").await.text().await.unwrap();
    let line = |prefix: &str, parts: &[&str]| {
        text.lines().find(|l| l.starts_with(prefix) && parts.iter().all(|p| l.contains(p))).map(str::to_string)
    };
    let requests = line("nukisashi_requests_total{", &[&format!("lg_code=\"{CHIYODA}\""), "module=\"guestbook\"", "status_class=\"2xx\""]);
    assert!(requests.is_some_and(|l| l.ends_with(" 1")), "{text}");
    assert!(line("nukisashi_errors_total{", &["kind=\"deadline\"", "module=\"fault-fixture\""]).is_some(), "{text}");
    assert!(line("nukisashi_request_duration_seconds_bucket{", &["module=\"guestbook\"", "le=\"0.005\""]).is_some(), "{text}");
    assert!(line("nukisashi_linkage_reads_total{", &["interface=\"resident-registry.get\"", "module=\"linkage\""]).is_some(), "{text}");
    assert!(line("nukisashi_instances_in_use{", &["module=\"guestbook\""]).is_some_and(|l| l.ends_with(" 0")), "{text}");

    // Admission refusals are counted by reason.
    let vendor = host.token("vendor", Some("nukisashi"));
    let form = reqwest::multipart::Form::new()
        .part("manifest", reqwest::multipart::Part::bytes(b"id = \"x\"".to_vec()).file_name("manifest.toml"))
        .part("component", reqwest::multipart::Part::bytes(std::fs::read(module("guestbook")).unwrap()).file_name("c.wasm"));
    let refused = host.client.post(host.url("/api/v1/modules")).bearer_auth(&vendor).multipart(form).send().await.unwrap();
    assert_eq!(refused.status(), 422, "{}", refused.text().await.unwrap());
    let text = host.get("/metrics").await.text().await.unwrap();
    assert!(text.lines().any(|l| l.starts_with("nukisashi_admission_refusals_total{") && l.contains("reason=\"manifest\"")), "{text}");
}
