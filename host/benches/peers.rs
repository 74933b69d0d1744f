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
use common::load::{best_interleaved, us};
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
    // This same executable, started with `--native-server PORT`, is the native peer.
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == NATIVE_FLAG) {
        let port: u16 = args.get(i + 1).and_then(|p| p.parse().ok()).expect("--native-server PORT");
        return runtime.block_on(native_server(port));
    }
    runtime.block_on(run())
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

async fn run() -> anyhow::Result<()> {
    nukisashi::tls::install_crypto_provider();
    let dir = tempfile::tempdir()?;
    let component = module_file("plain_http_fixture");
    let wasmtime = wasmtime_binary()?;
    let version = String::from_utf8(Command::new(&wasmtime).arg("--version").output()?.stdout)?.trim().to_string();

    let port = free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_nukisashi"));
    command.arg("serve").arg("--listen").arg(format!("127.0.0.1:{port}")).arg("--data-dir").arg(dir.path().join("host")).arg("--plugin").arg(&component).arg("--demo");
    let path = format!("/{CHIYODA}/plain-http-fixture/");
    let host = Server::start("nukisashi", command, port, &path, &dir.path().join("nukisashi.log")).await?;

    let port = free_port();
    let mut command = Command::new(&wasmtime);
    command.arg("serve").arg("--addr").arg(format!("127.0.0.1:{port}")).args(["-O", "pooling-allocator=y", "-S", "cli=y"]).arg(&component);
    let peer = Server::start("wasmtime serve", command, port, "/", &dir.path().join("wasmtime.log")).await?;

    let port = free_port();
    let mut command = Command::new(std::env::current_exe()?);
    command.arg(NATIVE_FLAG).arg(port.to_string());
    let native = Server::start("native axum", command, port, "/", &dir.path().join("native.log")).await?;

    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
    let targets = [vec![format!("{}{path}", host.base)], vec![format!("{}/", peer.base)], vec![format!("{}/", native.base)]];
    for urls in &targets {
        let body = client.get(&urls[0]).send().await?.text().await?;
        anyhow::ensure!(body == "ok", "{} answered {body:?}, not \"ok\"", urls[0]);
    }

    let mut report = String::new();
    writeln!(report, "Machine: {} cores, {}; nukisashi and `{version}` (`-O pooling-allocator=y -S cli=y`), both wasmtime 48.0.8, release builds; native: axum 0.8 on tokio.", num_cpus(), std::env::consts::ARCH)?;
    writeln!(report, "Method: `cargo xtask bench` (host/benches/peers.rs). Each server is its own process; the load generator (reqwest, keep-alive) is another, on the same 2 cores. Closed loop, {ROUNDS} rounds of {}s per server and concurrency, rounds interleaved, best round kept. The component is tests/fixtures/plain-http ({} KiB), identical bytes for both hosts; nukisashi serves it for a demo municipality through its full path (tenant, route, metering, telemetry).\n", ROUND.as_secs(), std::fs::metadata(&component)?.len() / 1024)?;
    writeln!(report, "| concurrency | nukisashi req/s | wasmtime serve req/s | native req/s | nukisashi ÷ wasmtime serve | nukisashi ÷ native | nukisashi p50 / p99 µs | wasmtime serve p50 / p99 µs | native p50 / p99 µs |")?;
    writeln!(report, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")?;
    let mut rates: [Vec<f64>; 3] = Default::default();
    for &c in CONCURRENCY {
        let runs = best_interleaved(&client, &targets, c, ROUNDS, ROUND).await;
        for (run, server) in runs.iter().zip([&host, &peer, &native]) {
            anyhow::ensure!(run.errors == 0, "{} failed {} requests at concurrency {c}", server.name, run.errors);
        }
        let cell = |i: usize| format!("{} / {}", us(runs[i].samples.percentile(0.5)), us(runs[i].samples.percentile(0.99)));
        writeln!(
            report,
            "| {c} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} | {} | {} | {} |",
            runs[0].rate, runs[1].rate, runs[2].rate, runs[0].rate / runs[1].rate, runs[0].rate / runs[2].rate, cell(0), cell(1), cell(2)
        )?;
        for (i, run) in runs.iter().enumerate() {
            rates[i].push(run.rate);
        }
    }
    let [a, b, n] = rates;
    report.push('\n');
    report.push_str(&chart::write(
        "peers",
        &Bars {
            title: "Same wasi:http component: requests/s by concurrency",
            unit: "requests/s",
            groups: CONCURRENCY.iter().map(|c| format!("concurrency {c}")).collect(),
            series: vec![("nukisashi".into(), a), ("wasmtime serve".into(), b), ("native axum".into(), n)],
        },
    )?);
    println!("{report}");
    write_into_benchmarks_md("peers", "Per-request overhead against peers", &report)?;
    Ok(())
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
