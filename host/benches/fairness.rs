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
/// The steady tenant: 4 clients, together this many requests a second.
const STEADY: usize = 4;
const STEADY_RATE: u64 = 1000;
const FLOOD: usize = 64;
const VICTIM: &str = "011002";
/// Rounds per host, interleaved; the median is reported.
const ROUNDS: usize = 3;
const ATTACKER: &str = "131016";

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run())
}

/// The steady tenant: `STEADY` clients sending `STEADY_RATE` requests a second between
/// them (open loop: what a busy municipality's residents send, whatever the host does), on
/// a runtime and OS thread of their own; each request's latency, and the failures.
fn steady(client: &reqwest::Client, url: &str, length: Duration) -> std::thread::JoinHandle<Run> {
    let (client, url) = (client.clone(), url.to_string());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        runtime.block_on(async move {
            let started = Instant::now();
            let every = Duration::from_micros(1_000_000 * STEADY as u64 / STEADY_RATE);
            let workers: Vec<_> = (0..STEADY)
                .map(|w| {
                    let (client, url) = (client.clone(), url.clone());
                    tokio::spawn(async move {
                        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every * w as u32 / STEADY as u32, every);
                        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                        let (mut samples, mut errors) = (Vec::new(), 0u64);
                        while started.elapsed() < length {
                            let due = tick.tick().await;
                            let ok = match client.get(&url).send().await {
                                Ok(r) => r.status() == 200 && r.bytes().await.is_ok(),
                                Err(_) => false,
                            };
                            // From when it was due: a late start is latency too.
                            if ok {
                                samples.push(due.elapsed())
                            } else {
                                errors += 1
                            }
                        }
                        (samples, errors)
                    })
                })
                .collect();
            let (mut samples, mut errors) = (common::load::Samples::default(), 0);
            for w in workers {
                let (s, e) = w.await.expect("steady worker");
                samples.0.extend(s);
                errors += e;
            }
            Run { rate: samples.0.len() as f64 / started.elapsed().as_secs_f64(), samples, errors }
        })
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
    let n_cores = cores();
    let tight = format!("[limits.admission]\ninstances = {n_cores}\nper_municipality = 1\nper_module = 1\n");
    let hosts = [
        // As before the governor: 128 instances for everyone, first come first served.
        ("no shares, 128 instances (as before)", host(dir.path(), "before", "[limits.admission]\ninstances = 128\nper_municipality = 128\nper_module = 128\n").await?),
        ("default governor", host(dir.path(), "governor", "").await?),
        ("tight shares: one instance per core, one per municipality", host(dir.path(), "tight", &tight).await?),
        ("default governor and 2,000 requests/s per municipality", host(dir.path(), "rate", "[limits.admission]\nrequests_per_second = 2000\n").await?),
    ];
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;

    let mut report = String::new();
    writeln!(report, "Machine: {} cores, {}; release build. Method: `cargo xtask bench fairness` (host/benches/fairness.rs). Four host processes side by side, all serving tests/fixtures/plain-http for the demo municipalities; the load generator is this process (the steady tenant and the flood each on a thread and runtime of their own), on the same cores. Steady tenant {VICTIM}: {STEADY} clients sending {STEADY_RATE} requests/s between them (open loop; latency counted from when each request was due), flood from {ATTACKER} at concurrency {FLOOD} (closed loop, ignoring `Retry-After`), {}s each, {ROUNDS} rounds interleaved between the hosts, median p99 of the rounds. The default shares here: {} instances, {} per municipality and per module.\n", n_cores, std::env::consts::ARCH, LENGTH.as_secs(), defaults.instances, defaults.per_municipality)?;
    writeln!(report, "| host | steady alone req/s | alone p99 µs | steady under flood req/s | under flood p99 µs | p99 ratio | flood served req/s | flood refused (503) req/s |")?;
    writeln!(report, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")?;
    let mut cpu_per_request = Duration::ZERO;
    let mut table: Vec<(Vec<Duration>, Vec<Duration>, f64, f64, f64, f64)> = hosts.iter().map(|_| Default::default()).collect();
    // Rounds interleaved between the hosts, so that the machine's noise falls on them alike;
    // the median round is reported.
    for _ in 0..ROUNDS {
        for ((name, server), row) in hosts.iter().zip(table.iter_mut()) {
            let steady_url = format!("{}/{VICTIM}/plain-http-fixture/", server.base);
            let flood_url = format!("{}/{ATTACKER}/plain-http-fixture/", server.base);
            load(&client, std::slice::from_ref(&steady_url), STEADY, Duration::from_millis(300)).await;
            if *name == "default governor" && cpu_per_request.is_zero() {
                // The host's whole CPU per request when it is busy (16 clients, closed loop).
                let cpu_before = server.cpu_time();
                let busy = load(&client, std::slice::from_ref(&steady_url), 16, Duration::from_secs(2)).await;
                cpu_per_request = server.cpu_time().saturating_sub(cpu_before) / busy.samples.0.len().max(1) as u32;
            }
            let alone = steady(&client, &steady_url, LENGTH).join().expect("steady load");
            let flooding = flood(&client, &flood_url, FLOOD, LENGTH + Duration::from_millis(500));
            tokio::time::sleep(Duration::from_millis(250)).await;
            let under = steady(&client, &steady_url, LENGTH).join().expect("steady load");
            let (served, refused) = flooding.join().expect("flood");
            anyhow::ensure!(alone.errors + under.errors == 0, "{name}: the steady tenant had failed requests");
            let seconds = (LENGTH + Duration::from_millis(500)).as_secs_f64();
            row.0.push(alone.samples.percentile(0.99));
            row.1.push(under.samples.percentile(0.99));
            row.2 += alone.rate / ROUNDS as f64;
            row.3 += under.rate / ROUNDS as f64;
            row.4 += served as f64 / seconds / ROUNDS as f64;
            row.5 += refused as f64 / seconds / ROUNDS as f64;
        }
    }
    for ((name, _), (mut alone, mut under, alone_rate, under_rate, served, refused)) in hosts.iter().zip(table) {
        let (p_alone, p_under) = (median(&mut alone), median(&mut under));
        writeln!(
            report,
            "| {name} | {alone_rate:.0} | {} | {under_rate:.0} | {} | {:.1}× | {served:.0} | {refused:.0} |",
            us(p_alone),
            us(p_under),
            p_under.as_secs_f64() / p_alone.as_secs_f64().max(1e-9),
        )?;
    }
    drop(hosts);

    // 2. The governor's own work per request, at concurrency 16: the same 16 tasks with and
    // without it, the difference per request (so the scheduler's own cost is not counted).
    let governor = std::sync::Arc::new(nukisashi::governor::Governor::new(&nukisashi::governor::limits::Limits::default()));
    let lg = nukisashi::lgcode::LgCode::parse(VICTIM)?;
    let mut per_op = [Duration::ZERO; 2];
    for (with_governor, slot) in [(false, 0), (true, 1)] {
        let ops = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let started = Instant::now();
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let (governor, lg, ops) = (governor.clone(), lg.clone(), ops.clone());
                tokio::spawn(async move {
                    let module = format!("module-{}", i % 4);
                    while started.elapsed() < Duration::from_secs(2) {
                        if with_governor {
                            let (body, held) = governor.bodies.read(&lg, axum::body::Body::empty(), Some(0), 1 << 20, Duration::from_secs(1)).await.expect("an empty body");
                            let permit = governor.admit(&lg, &module).await.expect("room for 16");
                            tokio::task::yield_now().await;
                            drop((permit, held, body));
                        } else {
                            tokio::task::yield_now().await;
                        }
                        ops.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await?;
        }
        // Every core is busy with the 16 tasks: wall time × cores is CPU time.
        per_op[slot] = started.elapsed() * n_cores as u32 / ops.load(std::sync::atomic::Ordering::Relaxed).max(1) as u32;
    }
    let governor_cpu = per_op[1].saturating_sub(per_op[0]);
    writeln!(
        report,
        "\nThe governor's own work per request (read an empty body within the budget, admit through the fair queue, release; 16 tasks at once, in this process, less the same loop without it): **{} µs** of CPU, against **{} µs** of the default host's CPU per request when busy (16 clients, closed loop, from /proc): **{:.1} %** of a request's cost.",
        us(governor_cpu),
        us(cpu_per_request),
        100.0 * governor_cpu.as_secs_f64() / cpu_per_request.as_secs_f64().max(1e-9)
    )?;
    println!("{report}");
    write_into_benchmarks_md("fairness", "Fairness between municipalities", &report)?;
    Ok(())
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
