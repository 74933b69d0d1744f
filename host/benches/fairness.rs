//! Fairness between municipalities, and what the governor costs (run by
//! `cargo xtask bench fairness`).
//!
//! 1. One municipality floods its own module at concurrency 64 while another runs a steady
//!    load at concurrency 4: the steady tenant's req/s and p99, alone and under the flood,
//!    on two hosts side by side in one run: one with per-municipality and per-module shares
//!    off (one pool for everyone, as before the governor) and one with the default shares.
//! 2. The governor's own work per request (read the body, admit, release) at concurrency 16,
//!    in process, against the CPU a whole request costs.
//!
//! Each host is its own process; the load generators (steady tenant and flood) run in this
//! process on runtimes of their own. Results go into docs/BENCHMARKS.md between the
//! `bench:fairness` markers.

mod common;

use common::load::{Run, load, us};
use common::process::{Server, free_port};
use common::{module_file, write_into_benchmarks_md};
use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

const LENGTH: Duration = Duration::from_secs(4);
const STEADY: usize = 4;
const FLOOD: usize = 64;
const VICTIM: &str = "011002";
const ATTACKER: &str = "131016";

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run())
}

/// Runs `load` on a runtime and OS thread of its own.
fn load_apart(client: &reqwest::Client, url: &str, concurrency: usize, length: Duration) -> std::thread::JoinHandle<Run> {
    let (client, url) = (client.clone(), url.to_string());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        runtime.block_on(async move { load(&client, &[url], concurrency, length).await })
    })
}

/// Like `load`, but counting refusals (503) apart from failures.
fn flood(client: &reqwest::Client, url: &str, concurrency: usize, length: Duration) -> std::thread::JoinHandle<(u64, u64)> {
    let (client, url) = (client.clone(), url.to_string());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        runtime.block_on(async move {
            let until = Instant::now() + length;
            let workers: Vec<_> = (0..concurrency)
                .map(|_| {
                    let (client, url) = (client.clone(), url.clone());
                    tokio::spawn(async move {
                        let (mut ok, mut refused) = (0u64, 0u64);
                        while Instant::now() < until {
                            match client.get(&url).send().await {
                                Ok(r) if r.status() == 200 => {
                                    let _ = r.bytes().await;
                                    ok += 1
                                }
                                Ok(r) if r.status() == 503 => {
                                    let _ = r.bytes().await;
                                    refused += 1
                                }
                                _ => {}
                            }
                        }
                        (ok, refused)
                    })
                })
                .collect();
            let mut total = (0, 0);
            for w in workers {
                let (ok, refused) = w.await.expect("flood worker");
                total = (total.0 + ok, total.1 + refused);
            }
            total
        })
    })
}

async fn host(dir: &std::path::Path, name: &str, settings: &str) -> anyhow::Result<Server> {
    let port = free_port();
    let data = dir.join(name);
    std::fs::create_dir_all(&data)?;
    std::fs::write(data.join("settings.toml"), settings)?;
    let mut command = Command::new(env!("CARGO_BIN_EXE_nukisashi"));
    command
        .arg("serve")
        .arg("--config")
        .arg(data.join("settings.toml"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(&data)
        .arg("--plugin")
        .arg(module_file("plain_http_fixture"))
        .arg("--demo")
        .env("RUST_BACKTRACE", "0");
    Server::start(name, command, port, &format!("/{VICTIM}/plain-http-fixture/"), &dir.join(format!("{name}.log"))).await
}

async fn run() -> anyhow::Result<()> {
    nukisashi::tls::install_crypto_provider();
    let dir = tempfile::tempdir()?;
    let defaults = nukisashi::governor::limits::Limits::default().admission;
    let no_shares = format!("[limits.admission]\nper_municipality = {0}\nper_module = {0}\n", defaults.instances);
    let hosts = [("no shares (one pool for everyone)", host(dir.path(), "no-shares", &no_shares).await?), ("default governor", host(dir.path(), "governor", "").await?)];
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;

    let mut report = String::new();
    writeln!(report, "Machine: {} cores, {}; release build. Method: `cargo xtask bench fairness` (host/benches/fairness.rs). Two host processes side by side, both serving tests/fixtures/plain-http for the demo municipalities; the load generator is this process (the steady tenant and the flood each on a thread and runtime of their own), on the same cores. Steady tenant {VICTIM} at concurrency {STEADY}, flood from {ATTACKER} at concurrency {FLOOD} (closed loop, ignoring `Retry-After`), {}s each. The default shares here: {} instances, {} per municipality and per module.\n", cores(), std::env::consts::ARCH, LENGTH.as_secs(), defaults.instances, defaults.per_municipality)?;
    writeln!(report, "| host | steady alone req/s | alone p99 µs | steady under flood req/s | under flood p99 µs | p99 ratio | flood served req/s | flood refused (503) req/s |")?;
    writeln!(report, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")?;
    for (name, server) in &hosts {
        let steady_url = format!("{}/{VICTIM}/plain-http-fixture/", server.base);
        let flood_url = format!("{}/{ATTACKER}/plain-http-fixture/", server.base);
        load(&client, std::slice::from_ref(&steady_url), STEADY, Duration::from_secs(1)).await;
        let alone = load_apart(&client, &steady_url, STEADY, LENGTH).join().expect("steady load");
        let flooding = flood(&client, &flood_url, FLOOD, LENGTH + Duration::from_millis(500));
        tokio::time::sleep(Duration::from_millis(250)).await;
        let under = load_apart(&client, &steady_url, STEADY, LENGTH).join().expect("steady load");
        let (served, refused) = flooding.join().expect("flood");
        anyhow::ensure!(alone.errors + under.errors == 0, "{name}: the steady tenant had failed requests");
        let (p_alone, p_under) = (alone.samples.percentile(0.99), under.samples.percentile(0.99));
        let seconds = (LENGTH + Duration::from_millis(500)).as_secs_f64();
        writeln!(
            report,
            "| {name} | {:.0} | {} | {:.0} | {} | {:.1}× | {:.0} | {:.0} |",
            alone.rate,
            us(p_alone),
            under.rate,
            us(p_under),
            p_under.as_secs_f64() / p_alone.as_secs_f64().max(1e-9),
            served as f64 / seconds,
            refused as f64 / seconds
        )?;
    }
    drop(hosts);

    // 2. The governor's own work per request, at concurrency 16.
    let governor = std::sync::Arc::new(nukisashi::governor::Governor::new(&nukisashi::governor::limits::Limits::default()));
    let lg = nukisashi::lgcode::LgCode::parse(VICTIM)?;
    let ops = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (governor, lg, ops) = (governor.clone(), lg.clone(), ops.clone());
            tokio::spawn(async move {
                let module = format!("module-{}", i % 4);
                while started.elapsed() < Duration::from_secs(2) {
                    let (body, held) = governor.bodies.read(axum::body::Body::empty(), Some(0), 1 << 20, Duration::from_secs(1)).await.expect("an empty body");
                    let permit = governor.admit(&lg, &module).await.expect("room for 16");
                    tokio::task::yield_now().await;
                    drop((permit, held, body));
                    ops.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await?;
    }
    let per_request = started.elapsed() / ops.load(std::sync::atomic::Ordering::Relaxed).max(1) as u32;
    writeln!(report, "\nThe governor's own work per request (read an empty body within the budget, admit through the fair queue, release), 16 tasks at once on this process's runtime: **{} µs** of wall time per request on {} cores, including a yield to the scheduler. Against the host's CPU time per request at concurrency 16 in the peers bench (about 120 µs), that is the share the governor costs.", us(per_request * cores() as u32), cores())?;
    println!("{report}");
    write_into_benchmarks_md("fairness", "Fairness between municipalities", &report)?;
    Ok(())
}

fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
