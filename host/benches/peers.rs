//! Per-request overhead against what an operator would otherwise pick: the very same
//! wasi:http component (tests/fixtures/plain-http, answers `ok`) served by nukisashi and by
//! `wasmtime serve` of the same wasmtime version with the pooling allocator, and the same
//! answer from a native axum handler. Each server is its own process; this process only
//! generates load, over loopback, the three targets' rounds interleaved.
//!
//! `cargo xtask bench` installs wasmtime-cli 48.0.8 into target/tools first (or set
//! NUKISASHI_WASMTIME to a `wasmtime` binary). Results go to docs/BENCHMARKS.md between
//! the `bench:peers` markers, with a chart in docs/bench/peers.svg.

mod common;

use common::chart::{self, Bars};
use common::load::{best_interleaved_measured, us};
use common::process::{Server, free_port};
use common::{module_file, write_into_benchmarks_md};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const ROUND: Duration = Duration::from_secs(2);
const ROUNDS: usize = 3;
const CONCURRENCY: &[usize] = &[1, 4, 16, 64];
const CHIYODA: &str = "131016";
const NATIVE_FLAG: &str = "--native-server";

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    // `cargo xtask bench peers 16 64` runs only those concurrencies (and leaves the docs).
    // This same executable, started with `--native-server PORT`, is the native peer.
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == NATIVE_FLAG) {
        let port: u16 = args.get(i + 1).and_then(|p| p.parse().ok()).expect("--native-server PORT");
        return runtime.block_on(native_server(port));
    }
    let chosen: Vec<usize> = args.iter().skip(1).filter_map(|a| a.parse().ok()).collect();
    runtime.block_on(run(if chosen.is_empty() { CONCURRENCY.to_vec() } else { chosen }))
}

/// What the component does, as a plain axum handler.
async fn native_server(port: u16) -> anyhow::Result<()> {
    async fn ok() -> ([(axum::http::HeaderName, &'static str); 1], &'static str) {
        ([(axum::http::header::CONTENT_TYPE, "text/plain; charset=utf-8")], "ok")
    }
    let router = axum::Router::new().fallback(ok);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, router).await?;
    Ok(())
}

fn wasmtime_binary() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("NUKISASHI_WASMTIME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/tools/bin/wasmtime"));
    anyhow::ensure!(path.exists(), "{} missing: run `cargo xtask bench`, which installs wasmtime-cli 48.0.8 there, or set NUKISASHI_WASMTIME", path.display());
    Ok(path)
}

async fn run(concurrencies: Vec<usize>) -> anyhow::Result<()> {
    nukisashi::tls::install_crypto_provider();
    let dir = tempfile::tempdir()?;
    let component = module_file("plain_http_fixture");
    let wasmtime = wasmtime_binary()?;
    let version = String::from_utf8(Command::new(&wasmtime).arg("--version").output()?.stdout)?.trim().to_string();

    let port = free_port();
    // One municipality takes all the load here: its request rate is not limited, so the
    // per-request cost is what is measured (the rest of the governor is as by default).
    let settings = dir.path().join("nukisashi.toml");
    std::fs::write(&settings, "[limits.admission]\nrequests_per_second = 0\n")?;
    let mut command = Command::new(env!("CARGO_BIN_EXE_nukisashi"));
    command.arg("serve").arg("--config").arg(&settings).arg("--listen").arg(format!("127.0.0.1:{port}")).arg("--data-dir").arg(dir.path().join("host")).arg("--plugin").arg(&component).arg("--demo");
    let path = format!("/{CHIYODA}/plain-http-fixture/");
    let host = Server::start("nukisashi", command, port, &path, &dir.path().join("nukisashi.log")).await?;

    // `wasmtime serve` twice: with the pooling allocator as it comes, and with the same
    // slot reset nukisashi uses on this kernel (engine.rs), so the host is compared with
    // the reference at its best too.
    let mut peers = Vec::new();
    for (name, tuning) in [("wasmtime serve", &[][..]), ("wasmtime serve, tuned", &["-O", "pooling-pagemap-scan=auto", "-O", "pooling-memory-keep-resident=1048576"][..])] {
        let port = free_port();
        let mut command = Command::new(&wasmtime);
        command.arg("serve").arg("--addr").arg(format!("127.0.0.1:{port}")).args(["-O", "pooling-allocator=y", "-S", "cli=y"]).args(tuning).arg(&component);
        peers.push(Server::start(name, command, port, "/", &dir.path().join(format!("wasmtime-{}.log", peers.len()))).await?);
    }

    let port = free_port();
    let mut command = Command::new(std::env::current_exe()?);
    command.arg(NATIVE_FLAG).arg(port.to_string());
    let native = Server::start("native axum", command, port, "/", &dir.path().join("native.log")).await?;

    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
    let servers = [&host, &peers[0], &peers[1], &native];
    let targets: Vec<Vec<String>> = servers.iter().map(|s| vec![format!("{}{}", s.base, if s.name == "nukisashi" { path.as_str() } else { "/" })]).collect();
    for urls in &targets {
        let body = client.get(&urls[0]).send().await?.text().await?;
        anyhow::ensure!(body == "ok", "{} answered {body:?}, not \"ok\"", urls[0]);
    }

    let mut report = String::new();
    writeln!(report, "Machine: {} cores, {}; nukisashi and `{version}`, both wasmtime 48.0.8, release builds; native: axum 0.8 on tokio.", num_cpus(), std::env::consts::ARCH)?;
    writeln!(report, "Method: `cargo xtask bench` (host/benches/peers.rs). Each server is its own process; the load generator (reqwest, keep-alive) is another, on the same 2 cores. Closed loop, {ROUNDS} rounds of {}s per server and concurrency, rounds interleaved, best round kept. The component is tests/fixtures/plain-http ({} KiB), identical bytes for both hosts; nukisashi serves it for a demo municipality through its full path (tenant, route, metering, telemetry). `wasmtime serve` runs with `-O pooling-allocator=y -S cli=y`; \"tuned\" adds `-O pooling-pagemap-scan=auto -O pooling-memory-keep-resident=1048576`, the slot reset nukisashi uses on this kernel.\n", ROUND.as_secs(), std::fs::metadata(&component)?.len() / 1024)?;
    let names: Vec<&str> = servers.iter().map(|s| s.name.as_str()).collect();
    writeln!(report, "| concurrency | {} req/s | nukisashi ÷ best wasmtime serve | nukisashi ÷ native |", names.join(" req/s | "))?;
    writeln!(report, "| ---: |{} ---: | ---: |", " ---: |".repeat(names.len()))?;
    let mut latency = String::new();
    writeln!(latency, "\n| concurrency | {} p50 / p99 µs |", names.join(" p50 / p99 µs | "))?;
    writeln!(latency, "| ---: |{}", " ---: |".repeat(names.len()))?;
    let mut cpu = String::new();
    writeln!(cpu, "\nServer CPU time per request (user + system, all threads, from /proc; the load generator's share is not in it):\n")?;
    writeln!(cpu, "| concurrency | {} CPU µs | nukisashi ÷ native CPU |", names.join(" CPU µs | "))?;
    writeln!(cpu, "| ---: |{} ---: |", " ---: |".repeat(names.len()))?;
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); servers.len()];
    let probes: Vec<Option<&Server>> = servers.iter().map(|s| Some(*s)).collect();
    for &c in &concurrencies {
        let measured = best_interleaved_measured(&client, &targets, &probes, c, ROUNDS, ROUND).await;
        let cpu_us: Vec<f64> = measured.iter().map(|(_, cpu)| cpu.unwrap_or_default().as_secs_f64() * 1e6).collect();
        let cells: Vec<String> = cpu_us.iter().map(|us| format!("{us:.0}")).collect();
        writeln!(cpu, "| {c} | {} | {:.2} |", cells.join(" | "), cpu_us[0] / cpu_us[3])?;
        let runs: Vec<_> = measured.into_iter().map(|(run, _)| run).collect();
        for (run, server) in runs.iter().zip(servers) {
            anyhow::ensure!(run.errors == 0, "{} failed {} requests at concurrency {c}", server.name, run.errors);
        }
        let best_peer = runs[1].rate.max(runs[2].rate);
        let cells: Vec<String> = runs.iter().map(|r| format!("{:.0}", r.rate)).collect();
        writeln!(report, "| {c} | {} | {:.2} | {:.2} |", cells.join(" | "), runs[0].rate / best_peer, runs[0].rate / runs[3].rate)?;
        let cells: Vec<String> = runs.iter().map(|r| format!("{} / {}", us(r.samples.percentile(0.5)), us(r.samples.percentile(0.99)))).collect();
        writeln!(latency, "| {c} | {} |", cells.join(" | "))?;
        for (i, run) in runs.iter().enumerate() {
            rates[i].push(run.rate);
        }
    }
    report.push_str(&latency);
    report.push_str(&cpu);
    report.push('\n');
    if concurrencies != CONCURRENCY {
        println!("{report}\n(only some concurrencies were run: docs/BENCHMARKS.md and the chart left as they were)");
        return Ok(());
    }
    report.push_str(&chart::write(
        "peers",
        &Bars {
            title: "Same wasi:http component: requests/s by concurrency",
            unit: "requests/s",
            groups: concurrencies.iter().map(|c| format!("concurrency {c}")).collect(),
            series: names.iter().map(|n| n.to_string()).zip(rates).collect(),
        },
    )?);
    println!("{report}");
    write_into_benchmarks_md("peers", "Per-request overhead against peers", &report)?;
    Ok(())
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
