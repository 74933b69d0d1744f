//! Gateway overhead: the same work served by a module through the full host path and by a
//! plain axum handler, side by side in one process (run by `cargo xtask bench`).
//!
//! 1. instantiate + call latency (no HTTP): `Runtime::invoke` on a trivial route and on
//!    the guestbook's `GET /entries`;
//! 2. the full HTTP path at several concurrencies, module vs native, interleaved rounds;
//!
//! Results are printed and written into docs/BENCHMARKS.md between the `bench:gateway`
//! markers.

mod common;

use axum::extract::State;
use common::load::{Run, Samples, best_interleaved, load, us};
use common::{module_file, write_into_benchmarks_md};
use nukisashi::capabilities::Caller;
use nukisashi::lgcode::LgCode;
use nukisashi::settings::Settings;
use nukisashi::store::kv::KvScope;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

const ROUND: Duration = Duration::from_secs(2);
const ROUNDS: usize = 3;
const CONCURRENCY: &[usize] = &[1, 4, 16];
/// `cargo xtask bench gateway quick`: only the no-HTTP section.
fn quick() -> bool {
    std::env::args().any(|a| a == "quick")
}
const ENTRIES: u64 = 10;
/// Swaps made while serving, and how long the load around them runs (longer than the swaps take).
const SWAPS: usize = 100;
const STORM: Duration = Duration::from_secs(3);
const CHIYODA: &str = "131016";

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut settings = Settings {
        data_dir: dir.path().to_path_buf(),
        plugins: vec![module_file("guestbook"), module_file("fault_fixture")],
        ..Settings::default()
    };
    // One municipality takes all the load: its request rate is not limited here.
    settings.limits.admission.requests_per_second = 0;
    let app = nukisashi::server::build(&settings).await?;
    nukisashi::demo::seed(&app).await?;
    let code = LgCode::parse(CHIYODA)?;
    let scope = KvScope { lg_code: CHIYODA.into(), module_id: "guestbook".into() };
    for id in 1..=ENTRIES {
        let entry = serde_json::json!({"id": id, "name": "山田太郎", "message": "ベンチマーク用の記帳です"});
        let quota = nukisashi::store::kv::Quota { bytes: u64::MAX, keys: u64::MAX };
        app.db.kv_set(&scope, &format!("entry/{id:012}"), &serde_json::to_vec(&entry)?, quota).await?.map_err(|e| anyhow::anyhow!(e))?;
    }

    let mut report = String::new();
    writeln!(report, "Machine: {} cores, {}; wasmtime 48.0.8, release build, SQLite in a temp dir; {ENTRIES} guestbook entries.", num_cpus(), std::env::consts::ARCH)?;
    writeln!(report, "Method: `cargo xtask bench` (host/benches/gateway.rs), one process; module and native runs interleaved, {ROUNDS} rounds of {}s each, best round kept.\n", ROUND.as_secs())?;

    // 1. instantiate + call, no HTTP.
    writeln!(report, "### Instantiate + call (no HTTP), sequential\n")?;
    writeln!(report, "| route | p50 µs | p99 µs | calls/s |")?;
    writeln!(report, "| --- | ---: | ---: | ---: |")?;
    for (module, path) in [
        ("fault-fixture", "(instantiate only)"),
        ("fault-fixture", "/ok"),
        ("guestbook", "/entries"),
        // A 64 KiB request body, in 16 KiB pieces as a client's arrive: streamed into the
        // instance as it comes, or read whole first (what the governor does).
        ("fault-fixture", "POST /echo-body, 64 KiB streamed into the instance"),
        ("fault-fixture", "POST /echo-body, 64 KiB read first, then passed in"),
    ] {
        let routed = app.live.resolve(module, &code).expect("loaded");
        let version = &routed.version;
        let mut samples = Samples::default();
        let started = Instant::now();
        while started.elapsed() < ROUND {
            let audit_context = std::sync::Arc::new(nukisashi::linkage::audit::AuditContext {
                lg_code: CHIYODA.into(),
                module_id: module.into(),
                module_version: version.identity.version.clone(),
                request_id: "bench".into(),
                caller_subject: None,
                caller_role: "anonymous".into(),
            });
            let platform = app.platform_state(app.tenants.get(&code).unwrap(), &routed, Caller::default(), audit_context, Default::default()).await?;
            let t = Instant::now();
            if path.starts_with('(') {
                app.runtime.instantiate_only(version, platform).await?;
                samples.0.push(t.elapsed());
                continue;
            }
            let response = if let Some(how) = path.strip_prefix("POST /echo-body, 64 KiB ") {
                let pieces = || futures::stream::iter((0..4).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'x'; 16 << 10]))));
                let body = if how.starts_with("streamed") {
                    axum::body::Body::from_stream(pieces())
                } else {
                    let (bytes, held) = app.governor.bodies.read(&code, axum::body::Body::from_stream(pieces()), None, 1 << 20, Duration::from_secs(1)).await.map_err(|p| anyhow::anyhow!(p.detail))?;
                    axum::body::Body::new(nukisashi::governor::body::HeldBody::new(bytes, held))
                };
                let request = http::Request::post("http://localhost/echo-body").body(body)?;
                app.runtime.invoke(version, platform, request).await?
            } else {
                let request = http::Request::get(format!("http://localhost{path}")).body(http_body_util::Empty::<bytes::Bytes>::new())?;
                app.runtime.invoke(version, platform, request).await?
            };
            samples.0.push(t.elapsed());
            assert_eq!(response.status(), 200);
        }
        let rate = samples.0.len() as f64 / ROUND.as_secs_f64();
        writeln!(report, "| {module} `{path}` | {} | {} | {rate:.0} |", us(samples.percentile(0.5)), us(samples.percentile(0.99)))?;
    }

    if quick() {
        println!("{report}");
        return Ok(());
    }

    // 2. Full HTTP path: host vs a plain axum handler doing the same work.
    let host = serve(nukisashi::api::router(app.clone())).await?;
    let host_url = host.clone();
    let native = serve(native_router(app.db.clone(), scope.clone())).await?;
    nukisashi::tls::install_crypto_provider();
    let client = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
    let pairs = [
        ("trivial response", format!("{host}/{CHIYODA}/fault-fixture/ok"), format!("{native}/ok")),
        ("guestbook GET /entries", format!("{host}/{CHIYODA}/guestbook/entries"), format!("{native}/entries")),
    ];
    writeln!(report, "\n### Full HTTP path (reqwest client in the same process)\n")?;
    writeln!(report, "| work | concurrency | module req/s | native req/s | module p50 µs | native p50 µs | added p50 µs | module p99 µs | native p99 µs |")?;
    writeln!(report, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")?;
    let only_trivial = std::env::args().any(|a| a == "trivial");
    for (work, module_url, native_url) in pairs.iter().take(if only_trivial { 1 } else { 2 }) {
        // Both sides must answer the same thing.
        let a = client.get(module_url).send().await?.text().await?;
        let b = client.get(native_url).send().await?.text().await?;
        let parse = |t: &str| serde_json::from_str::<serde_json::Value>(t).unwrap_or(serde_json::Value::String(t.into()));
        assert_eq!(parse(&a), parse(&b), "module and native answers differ");
        for &c in CONCURRENCY.iter().take(if only_trivial { 1 } else { 3 }) {
            let best = best_interleaved(&client, &[vec![module_url.clone()], vec![native_url.clone()]], c, ROUNDS, ROUND).await;
            let [module, native] = &best[..] else { unreachable!("two targets") };
            anyhow::ensure!(module.errors + native.errors == 0, "{work}: requests failed under load");
            let (mr, ms, nr, ns) = (module.rate, &module.samples, native.rate, &native.samples);
            let added = ms.percentile(0.5).saturating_sub(ns.percentile(0.5));
            writeln!(
                report,
                "| {work} | {c} | {mr:.0} | {nr:.0} | {} | {} | {} | {} | {} |",
                us(ms.percentile(0.5)),
                us(ns.percentile(0.5)),
                us(added),
                us(ms.percentile(0.99)),
                us(ns.percentile(0.99))
            )?;
        }
    }
    if !only_trivial {
        lifecycle(&app, &host_url, &client, &mut report).await?;
    }
    println!("{report}");
    // Partial runs (`quick`, `trivial`) are for investigation; only a full run is recorded.
    if !only_trivial {
        write_into_benchmarks_md("gateway", "Gateway", &report)?;
    }
    Ok(())
}

/// Publish → first response, swap latency, and serving during a swap storm.
async fn lifecycle(app: &nukisashi::app::App, host: &str, client: &reqwest::Client, report: &mut String) -> anyhow::Result<()> {
    use nukisashi::auth::{Principal, Role};
    use nukisashi::plugins::{admission, signing};
    let (private, public) = signing::generate().map_err(anyhow::Error::msg)?;
    app.db.insert_vendor(&nukisashi::store::catalog::Vendor { id: "bench".into(), name: "bench".into(), public_key: public, auto_approve: false }).await?;
    let vendor = Principal { subject: "bench-vendor".into(), role: Role::Vendor, vendor_id: Some("bench".into()), lg_code: None, name: None, addressee_number: None };
    let code = LgCode::parse(CHIYODA)?;
    writeln!(report, "\n### Plug-in: publish → first successful response (in process, cold artifact cache)\n")?;
    writeln!(report, "| module | size | admit (verify, compile, health check) ms | approve + subscribe ms | first response ms | total ms |")?;
    writeln!(report, "| --- | ---: | ---: | ---: | ---: | ---: |")?;
    for (file, id) in [("guestbook", "bench-guestbook"), ("large_fixture", "bench-large"), ("fault_fixture", "bench-faults")] {
        let component = std::fs::read(module_file(file))?;
        for version in ["1.0.0", "2.0.0"] {
            let manifest = format!(
                "id = \"{id}\"\nversion = \"{version}\"\nvendor = \"bench\"\ncategory = \"bench\"\nname = {{ ja = \"b\", en = \"b\" }}\ndescription = \"\"\ncapabilities = [\"kv\"]\nwit_major = 1\nroutes = [{{ path = \"/\", auth = \"public\" }}]\n"
            )
            .into_bytes();
            // Different bytes per version so each admission compiles from scratch.
            let mut bytes = component.clone();
            append_custom_section(&mut bytes, version);
            let signature = signing::sign(&private, &bytes, &manifest).map_err(anyhow::Error::msg)?;
            let t = Instant::now();
            admission::admit(app, &vendor, admission::Upload { manifest, component: bytes.clone(), signature: Some(signature) }).await?;
            let admitted = t.elapsed();
            app.db.decide(id, version, true, "bench", "bench").await?;
            if version == "1.0.0" {
                app.db.upsert_subscription(&nukisashi::store::catalog::Subscription {
                    lg_code: CHIYODA.into(), module_id: id.into(), grants: vec!["kv".into()], pinned: false,
                    version: version.into(), previous_version: None, active: true,
                }).await?;
                app.converge().await?;
            } else {
                continue;
            }
            let subscribed = t.elapsed();
            let path = if file == "guestbook" { "/" } else { "/ok" };
            let response = client.get(format!("{host}/{CHIYODA}/{id}{path}")).send().await?;
            assert!(response.status().is_success());
            let first = t.elapsed();
            writeln!(report, "| {file} | {} KiB | {:.1} | {:.1} | {:.1} | {:.1} |", bytes.len() / 1024,
                admitted.as_secs_f64() * 1e3, (subscribed - admitted).as_secs_f64() * 1e3, (first - subscribed).as_secs_f64() * 1e3, first.as_secs_f64() * 1e3)?;
        }
    }

    // Swap latency, and serving while swapping.
    let url = format!("{host}/{CHIYODA}/bench-faults/ok");
    let mut swaps = Samples::default();
    let Run { rate: steady_rate, samples: steady, .. } = load(client, std::slice::from_ref(&url), 4, STORM).await;
    let storm = {
        let client = client.clone();
        let url = url.clone();
        tokio::spawn(async move { load(&client, &[url], 4, STORM).await })
    };
    for n in 0..SWAPS {
        let version = if n % 2 == 0 { "2.0.0" } else { "1.0.0" };
        let t = Instant::now();
        app.swap("bench-faults", version, &[CHIYODA.to_string()]).await?;
        swaps.0.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let Run { rate: storm_rate, samples: storm_samples, errors: storm_errors } = storm.await?;
    assert!(app.live.resolve("bench-faults", &code).is_some());
    writeln!(report, "\n### Swap latency, and serving during 100 swaps (4 concurrent clients)\n")?;
    writeln!(report, "| | value |")?;
    writeln!(report, "| --- | ---: |")?;
    writeln!(report, "| swaps, 10 ms apart (database write + atomic route change) | {} |", swaps.0.len())?;
    writeln!(report, "| swap p50 / p99 µs | {} / {} |", us(swaps.percentile(0.5)), us(swaps.percentile(0.99)))?;
    writeln!(report, "| steady req/s, p99 µs | {steady_rate:.0}, {} |", us(steady.percentile(0.99)))?;
    writeln!(report, "| during swaps req/s, p99 µs | {storm_rate:.0}, {} |", us(storm_samples.percentile(0.99)))?;
    writeln!(report, "| failed requests during swaps (target 0) | {storm_errors} |")?;
    Ok(())
}

/// Appends a custom section (ignored by wasmtime) so two builds have distinct digests.
fn append_custom_section(bytes: &mut Vec<u8>, label: &str) {
    let name = b"bench-label";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend_from_slice(label.as_bytes());
    bytes.push(0); // custom section id
    bytes.push(payload.len() as u8);
    bytes.extend_from_slice(&payload);
}

async fn serve(router: axum::Router) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(format!("http://{addr}"))
}

/// The same work as the modules, written as ordinary axum handlers on the same database.
fn native_router(db: nukisashi::store::Db, scope: KvScope) -> axum::Router {
    async fn ok() -> &'static str {
        "ok"
    }
    async fn entries(State((db, scope)): State<(nukisashi::store::Db, KvScope)>) -> axum::response::Response {
        use axum::response::IntoResponse;
        let mut out = Vec::new();
        for key in db.kv_list_keys(&scope, "entry/", None, 1000).await.unwrap() {
            let bytes = db.kv_get(&scope, &key).await.unwrap().unwrap();
            out.push(serde_json::from_slice::<serde_json::Value>(&bytes).unwrap());
        }
        out.reverse();
        ([(axum::http::header::CONTENT_TYPE, "application/json")], serde_json::to_string(&out).unwrap()).into_response()
    }
    axum::Router::new()
        .route("/ok", axum::routing::get(ok))
        .route("/entries", axum::routing::get(entries))
        .with_state((db, scope))
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
