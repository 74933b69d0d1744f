//! Density: every municipality in Japan (1,741) on one host, each subscribed to three
//! business modules with its own config. Measures resident memory, the first response of
//! a municipality never called before, and latency under load spread over all of them.
//! Run by `cargo xtask bench`; results go to docs/BENCHMARKS.md between the
//! `bench:density` markers.

mod common;

use common::chart::{self, Bars};
use common::load::{ms, percentile};
use common::{module_file, write_into_benchmarks_md};
use nukisashi::catalog::manifest::Manifest;
use nukisashi::lgcode::{LgCode, check_digit};
use nukisashi::plugins::live::{Change, Routed};
use nukisashi::settings::Settings;
use nukisashi::store::municipalities::Municipality;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

const MUNICIPALITIES: usize = 1741;
const MODULES: &[&str] = &["furusato-tax", "e-application", "child-allowance"];
const LOAD_FOR: Duration = Duration::from_secs(5);
const CONCURRENCY: usize = 16;

fn resident_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse().ok()).unwrap_or(0.0);
    kib / 1024.0
}

/// 1,741 distinct valid codes: 37 per prefecture (47 × 37 = 1,739) plus two.
fn codes() -> Vec<LgCode> {
    let mut out = Vec::new();
    'outer: for n in 0.. {
        for prefecture in 1..=47u8 {
            if out.len() == MUNICIPALITIES {
                break 'outer;
            }
            let city = 100 + n * 10; // 3-digit city part, never 000 (the prefecture itself)
            let d = [prefecture / 10, prefecture % 10, (city / 100 % 10) as u8, (city / 10 % 10) as u8, (city % 10) as u8];
            let code = format!("{}{}{}{}{}{}", d[0], d[1], d[2], d[3], d[4], check_digit(d));
            out.push(LgCode::parse(&code).expect("generated codes are valid"));
        }
    }
    out
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    nukisashi::tls::install_crypto_provider();
    let dir = tempfile::tempdir()?;
    let settings = Settings { data_dir: dir.path().to_path_buf(), ..Settings::default() };
    let app = nukisashi::server::build(&settings).await?;
    let rss_empty = resident_mib();

    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut versions = Vec::new();
    for module in MODULES {
        let manifest = Manifest::parse(&std::fs::read(root.join("plugins").join(module).join("manifest.toml"))?).map_err(anyhow::Error::msg)?;
        let bytes = std::fs::read(module_file(&module.replace('-', "_")))?;
        versions.push(Arc::new(app.runtime.load(Arc::new(manifest), bytes).await?));
    }
    let rss_loaded = resident_mib();

    let started = Instant::now();
    let codes = codes();
    let mut routes = Vec::new();
    for (i, code) in codes.iter().enumerate() {
        let name = format!("市町村{i:04}");
        app.db.insert_municipality(&Municipality { lg_code: code.clone(), name: name.clone(), prefecture: code.prefecture().into(), population: 10_000 + i as i64 * 97 }).await?;
        let phone = format!("0{:01}-{:04}-0000", i % 9 + 1, i);
        for (module, version) in MODULES.iter().zip(&versions) {
            let settings: BTreeMap<String, String> = [("address", format!("{}{name}1-1", code.prefecture())), ("phone", phone.clone()), ("mayor", format!("{name}長"))]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            app.db.replace_module_config(code, module, &settings).await?;
            let capabilities = version.manifest.capabilities.iter().copied().collect();
            routes.push(Change::Set(code.clone(), Arc::new(Routed { version: version.clone(), capabilities })));
        }
    }
    app.tenants.replace(app.db.list_municipalities().await?);
    app.live.apply(routes);
    let registered_in = started.elapsed();
    let rss_registered = resident_mib();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, nukisashi::api::router(app.clone())).await });
    let client = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;

    // Every (municipality, module) once, never called before; then once more, warm.
    let mut passes = Vec::new();
    for _ in 0..2 {
        let mut samples = Vec::new();
        for code in &codes {
            for module in MODULES {
                let t = Instant::now();
                let r = client.get(format!("{base}/{code}/{module}/", code = code.as_str())).send().await?;
                let status = r.status();
                r.bytes().await?;
                samples.push(t.elapsed());
                anyhow::ensure!(status == 200, "{module} in {} answered {status}", code.as_str());
            }
        }
        passes.push(samples);
    }
    let rss_called = resident_mib();

    // Mixed load: random municipality and module per request.
    let stop = Instant::now() + LOAD_FOR;
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|w| {
            let (client, base, codes) = (client.clone(), base.clone(), codes.clone());
            tokio::spawn(async move {
                let mut rng = rand::rngs::SmallRng::seed_from_u64(w as u64);
                let (mut samples, mut errors) = (Vec::new(), 0u32);
                while Instant::now() < stop {
                    let code = &codes[rng.random_range(0..codes.len())];
                    let module = MODULES[rng.random_range(0..MODULES.len())];
                    let t = Instant::now();
                    match client.get(format!("{base}/{}/{module}/", code.as_str())).send().await {
                        Ok(r) if r.status() == 200 => {
                            let _ = r.bytes().await;
                            samples.push(t.elapsed());
                        }
                        _ => errors += 1,
                    }
                }
                (samples, errors)
            })
        })
        .collect();
    let (mut load, mut errors) = (Vec::new(), 0);
    for w in workers {
        let (s, e) = w.await?;
        load.extend(s);
        errors += e;
    }
    let rss_loaded_run = resident_mib();

    let mut report = String::new();
    writeln!(report, "Machine: {} cores, {}; wasmtime 48.0.8, release build, SQLite in a temp dir, pooling allocator with {} slots.", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0), std::env::consts::ARCH, nukisashi::governor::admission::Admission::pool_size(&settings.limits.admission))?;
    writeln!(report, "Method: `cargo xtask bench` (host/benches/density.rs), one process: {MUNICIPALITIES} municipalities each routed to {} ({}) with its own config; requests over HTTP on loopback to each module's public `/` page.\n", MODULES.len(), MODULES.join(", "))?;
    writeln!(report, "| state | resident MiB |")?;
    writeln!(report, "| --- | ---: |")?;
    writeln!(report, "| host started, nothing loaded | {rss_empty:.0} |")?;
    writeln!(report, "| three modules compiled and loaded | {rss_loaded:.0} |")?;
    writeln!(report, "| {MUNICIPALITIES} municipalities and {} routes registered (took {:.1} s) | {rss_registered:.0} |", MUNICIPALITIES * MODULES.len(), registered_in.as_secs_f64())?;
    writeln!(report, "| after every municipality called every module | {rss_called:.0} |")?;
    writeln!(report, "| after {}s of mixed load at concurrency {CONCURRENCY} | {rss_loaded_run:.0} |\n", LOAD_FOR.as_secs())?;
    writeln!(report, "| requests | count | p50 ms | p99 ms | req/s |")?;
    writeln!(report, "| --- | ---: | ---: | ---: | ---: |")?;
    let (mut first, mut warm) = (passes[0].clone(), passes[1].clone());
    writeln!(report, "| first call of each municipality × module (sequential) | {} | {} | {} | |", first.len(), ms(percentile(&mut first, 0.5)), ms(percentile(&mut first, 0.99)))?;
    writeln!(report, "| the same, second call (sequential) | {} | {} | {} | |", warm.len(), ms(percentile(&mut warm, 0.5)), ms(percentile(&mut warm, 0.99)))?;
    let rate = load.len() as f64 / LOAD_FOR.as_secs_f64();
    writeln!(report, "| mixed load, random municipality and module, concurrency {CONCURRENCY} ({errors} errors) | {} | {} | {} | {rate:.0} |", load.len(), ms(percentile(&mut load, 0.5)), ms(percentile(&mut load, 0.99)))?;
    report.push('\n');
    report.push_str(&chart::write(
        "density",
        &Bars {
            title: "Resident memory of one host with 1,741 municipalities × 3 modules",
            unit: "MiB",
            groups: ["started", "modules loaded", "all registered", "all called", "after load"].map(String::from).to_vec(),
            series: vec![("resident memory".into(), vec![rss_empty, rss_loaded, rss_registered, rss_called, rss_loaded_run])],
        },
    )?);
    println!("{report}");
    write_into_benchmarks_md("density", "Density: every municipality on one host", &report)?;
    Ok(())
}
