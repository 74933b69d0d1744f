//! The same guestbook in Rust, Python (componentize-py) and JavaScript (componentize-js),
//! side by side in one host (run by `cargo xtask bench languages`): component size,
//! admission time (compile with a cold artifact cache, check, health-check instantiation),
//! compiled artifact size, and for the same request — `GET /`, the page with ten entries
//! read from kv — the module's CPU time and peak memory per request (from the host's own
//! metering) and p50/p99 over the full HTTP path, the three interleaved round by round.
//! Results go into docs/BENCHMARKS.md between the `bench:languages` markers.

mod common;

use common::load::{Samples, ms};
use common::{module_file, write_into_benchmarks_md};
use nukisashi::catalog::manifest::Manifest;
use nukisashi::plugins::live::Routed;
use nukisashi::settings::Settings;
use nukisashi::store::kv::{KvScope, Quota};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

const CHIYODA: &str = "131016";
const ENTRIES: u64 = 10;
const ROUNDS: usize = 5;
const PER_ROUND: usize = 200;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run())
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn polyglot(name: &str) -> PathBuf {
    let path = root().join("target/polyglot").join(format!("{name}.wasm"));
    assert!(path.exists(), "{} missing: run `cargo xtask bench languages` (it builds the Python and JavaScript examples)", path.display());
    path
}

struct Language {
    label: &'static str,
    module: String,
    component_bytes: usize,
    admission_ms: f64,
    artifact_bytes: u64,
    samples: Samples,
}

/// The compiled artifact the host cached for `digest`.
fn artifact_size(dir: &Path, digest: &str) -> u64 {
    let mut found = 0;
    for entry in walk(dir) {
        let name = entry.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        if name.starts_with(digest) && name.ends_with(".cwasm") {
            found = std::fs::metadata(&entry).map(|m| m.len()).unwrap_or(0);
        }
    }
    found
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() { out.extend(walk(&path)) } else { out.push(path) }
    }
    out
}

async fn run() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut settings = Settings { data_dir: dir.path().to_path_buf(), ..Settings::default() };
    settings.limits.admission.requests_per_second = 0;
    let app = nukisashi::server::build(&settings).await?;
    nukisashi::demo::seed(&app).await?;

    let rust_manifest = std::fs::read_to_string(root().join("examples/guestbook-python/manifest.toml"))?
        .replace("id = \"guestbook-python\"", "id = \"guestbook-rust\"")
        .replace("（Python）", "（Rust）");
    let sources: [(&str, PathBuf, String); 3] = [
        ("Rust (nukisashi-sdk)", module_file("guestbook"), rust_manifest),
        ("Python (componentize-py 0.25.1)", polyglot("guestbook-python"), std::fs::read_to_string(root().join("examples/guestbook-python/manifest.toml"))?),
        ("JavaScript (componentize-js 0.23.0)", polyglot("guestbook-js"), std::fs::read_to_string(root().join("examples/guestbook-js/manifest.toml"))?),
    ];
    let mut languages = Vec::new();
    for (label, component, manifest) in sources {
        let bytes = std::fs::read(&component)?;
        let manifest = Manifest::parse(manifest.as_bytes()).map_err(anyhow::Error::msg)?;
        let module = manifest.id.clone();
        let capabilities = manifest.capabilities.iter().copied().collect();
        let component_bytes = bytes.len();
        let started = Instant::now();
        let loaded = nukisashi::plugins::admission::load_and_health_check(&app, Arc::new(manifest), bytes).await?;
        let admission_ms = started.elapsed().as_secs_f64() * 1000.0;
        let artifact_bytes = artifact_size(dir.path(), &loaded.identity.digest);
        app.file_routes.lock().expect("file routes").insert(module.clone(), Arc::new(Routed { version: loaded, capabilities }));
        let scope = KvScope { lg_code: CHIYODA.into(), module_id: module.clone() };
        for id in 1..=ENTRIES {
            let entry = serde_json::json!({"id": id, "name": "山田太郎", "message": "ベンチマーク用の記帳です"});
            let quota = Quota { bytes: u64::MAX, keys: u64::MAX };
            app.db.kv_set(&scope, &format!("entry/{id:012}"), &serde_json::to_vec(&entry)?, quota).await?.map_err(|e| anyhow::anyhow!(e))?;
        }
        languages.push(Language { label, module, component_bytes, admission_ms, artifact_bytes, samples: Samples::default() });
    }
    app.rebuild_routes().await?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let router = nukisashi::api::router(app.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    nukisashi::tls::install_crypto_provider();
    let client = reqwest::Client::builder().build()?;
    let url = |module: &str| format!("{base}/{CHIYODA}/{module}/");
    for language in &languages {
        let page = client.get(url(&language.module)).send().await?;
        assert_eq!(page.status(), 200, "{}", language.module);
        assert_eq!(page.text().await?.matches("ベンチマーク用の記帳です").count(), ENTRIES as usize, "{} shows every entry", language.module);
    }
    // What the checks above cost is not counted.
    app.meter.flush(&app.db).await?;
    let month = nukisashi::metering::japan_day()[..7].to_string();
    let before = nukisashi::metering::usage(&app.db, &month, Some(CHIYODA)).await?;

    for _ in 0..ROUNDS {
        for language in &mut languages {
            let target = url(&language.module);
            for _ in 0..PER_ROUND {
                let started = Instant::now();
                let response = client.get(&target).send().await?;
                assert_eq!(response.status(), 200);
                response.bytes().await?;
                language.samples.0.push(started.elapsed());
            }
        }
    }
    app.meter.flush(&app.db).await?;
    let after = nukisashi::metering::usage(&app.db, &month, Some(CHIYODA)).await?;
    let of = |rows: &[nukisashi::metering::UsageRow], module: &str| rows.iter().filter(|r| r.module_id == module).fold((0, 0, 0), |(n, cpu, peak), r| (n + r.requests, cpu + r.cpu_ms, peak.max(r.peak_memory_bytes)));

    let mut report = String::new();
    writeln!(report, "Machine: {} cores, {}; wasmtime 48.0.8, release build, SQLite in a temp dir.", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1), std::env::consts::ARCH)?;
    writeln!(
        report,
        "Method: `cargo xtask bench languages` (host/benches/languages.rs), one process. The three guestbooks (examples/) admitted in turn with a cold artifact cache, then `GET /` (the page with {ENTRIES} entries from kv, a fresh instance each time) sequentially over HTTP, {ROUNDS} rounds of {PER_ROUND} requests per language, interleaved. CPU and peak memory are the host's own metering of the module (instance CPU time; the largest linear memory).\n"
    )?;
    writeln!(report, "| language | component | admission | artifact | CPU / request | peak memory | p50 | p99 |")?;
    writeln!(report, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")?;
    for language in &languages {
        let (n0, cpu0, _) = of(&before, &language.module);
        let (n1, cpu1, peak) = of(&after, &language.module);
        let requests = (n1 - n0).max(1);
        let cpu_per_request_us = (cpu1 - cpu0) as f64 * 1000.0 / requests as f64;
        writeln!(
            report,
            "| {} | {:.1} MB | {:.0} ms | {:.1} MB | {:.0} µs | {:.1} MiB | {} ms | {} ms |",
            language.label,
            language.component_bytes as f64 / 1e6,
            language.admission_ms,
            language.artifact_bytes as f64 / 1e6,
            cpu_per_request_us,
            peak as f64 / (1 << 20) as f64,
            ms(language.samples.percentile(0.50)),
            ms(language.samples.percentile(0.99)),
        )?;
    }
    println!("{report}");
    write_into_benchmarks_md("languages", "One guestbook in three languages", &report)?;
    Ok(())
}
