//! Throughput with 1, 2 and 3 replicas on one PostgreSQL. Each replica is a `nukisashi
//! serve` process on its own port, all on one database; the load generator spreads
//! requests over them in turn, as a round-robin load balancer would. Two kinds of work:
//! the trivial wasi:http component (host CPU) and the guestbook's `GET /entries` (ten
//! kv reads from PostgreSQL per request).
//!
//! Needs PostgreSQL: `cargo xtask bench` starts a throwaway server and passes its URL in
//! NUKISASHI_TEST_DATABASE_URL; every replica count gets a fresh database on it.
//! Results go to docs/BENCHMARKS.md between the `bench:replicas` markers, with a chart in
//! docs/bench/replicas.svg.

mod common;

use common::chart::{self, Bars};
use common::load::{best_interleaved, us};
use common::process::{Server, free_port};
use common::{module_file, write_into_benchmarks_md};
use std::fmt::Write as _;
use std::process::Command;
use std::time::Duration;

const ROUND: Duration = Duration::from_secs(2);
const ROUNDS: usize = 3;
const CONCURRENCY: usize = 32;
const MAX_REPLICAS: usize = 3;
const CHIYODA: &str = "131016";
const ENTRIES: usize = 10;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run())
}

/// A fresh, empty database on the server `admin_url` points at; returns its URL.
async fn fresh_database(admin_url: &str, name: &str) -> anyhow::Result<String> {
    use sqlx::Executor as _;
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(admin_url).await?;
    pool.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await?;
    pool.execute(format!("CREATE DATABASE {name}").as_str()).await?;
    pool.close().await;
    let (base, _) = admin_url.rsplit_once('/').ok_or_else(|| anyhow::anyhow!("{admin_url} has no database part"))?;
    Ok(format!("{base}/{name}"))
}

async fn start_replica(database_url: &str, dir: &std::path::Path, index: usize) -> anyhow::Result<Server> {
    let port = free_port();
    // One municipality takes all the load: its request rate is not limited here.
    let settings = dir.join(format!("replica-{index}.toml"));
    std::fs::write(&settings, "[limits.admission]\nrequests_per_second = 0\n")?;
    let mut command = Command::new(env!("CARGO_BIN_EXE_nukisashi"));
    command
        .arg("serve")
        .arg("--config")
        .arg(&settings)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(dir.join(format!("replica-{index}")))
        .arg("--database-url")
        .arg(database_url)
        .arg("--plugin")
        .arg(module_file("plain_http_fixture"))
        .arg("--plugin")
        .arg(module_file("guestbook"));
    if index == 1 {
        command.arg("--demo");
    }
    Server::start(&format!("replica {index}"), command, port, &format!("/{CHIYODA}/plain-http-fixture/"), &dir.join(format!("replica-{index}.log"))).await
}

async fn run() -> anyhow::Result<()> {
    nukisashi::tls::install_crypto_provider();
    let admin_url = std::env::var("NUKISASHI_TEST_DATABASE_URL").map_err(|_| anyhow::anyhow!("NUKISASHI_TEST_DATABASE_URL is not set: run `cargo xtask bench`, which starts a throwaway PostgreSQL"))?;
    let dir = tempfile::tempdir()?;
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;

    let mut report = String::new();
    writeln!(report, "Machine: {} cores, {}; wasmtime 48.0.8, release build; PostgreSQL {} on the same machine (throwaway, fsync off).", num_cpus(), std::env::consts::ARCH, postgres_version(&admin_url).await?)?;
    writeln!(report, "Method: `cargo xtask bench` (host/benches/replicas.rs). N `nukisashi serve` processes on one fresh database; the load generator (another process on the same cores) sends each request to the next replica in turn, {CONCURRENCY} concurrent clients, {ROUNDS} rounds of {}s per kind of work, best round kept. **All replicas, PostgreSQL and the load generator share 2 cores**: extra replicas cannot add CPU here, so this shows what replication costs, not how it scales on more machines.\n", ROUND.as_secs())?;
    writeln!(report, "| replicas | trivial component req/s | p50 / p99 µs | guestbook GET /entries req/s | p50 / p99 µs | errors |")?;
    writeln!(report, "| ---: | ---: | ---: | ---: | ---: | ---: |")?;
    let (mut trivial, mut guestbook) = (Vec::new(), Vec::new());
    for n in 1..=MAX_REPLICAS {
        let database_url = fresh_database(&admin_url, &format!("bench_replicas_{n}")).await?;
        let mut replicas = vec![start_replica(&database_url, dir.path(), 1).await?];
        for i in 0..ENTRIES {
            let response = client
                .post(format!("{}/{CHIYODA}/guestbook/entries", replicas[0].base))
                .json(&serde_json::json!({"name": "山田太郎", "message": format!("ベンチマーク用の記帳 {i}")}))
                .send()
                .await?;
            anyhow::ensure!(response.status().is_success(), "seeding the guestbook: {}", response.status());
        }
        for index in 2..=n {
            replicas.push(start_replica(&database_url, dir.path(), index).await?);
        }
        let urls = |path: &str| replicas.iter().map(|r| format!("{}/{CHIYODA}/{path}", r.base)).collect::<Vec<_>>();
        let entries: Vec<serde_json::Value> = client.get(&urls("guestbook/entries")[n - 1]).send().await?.json().await?;
        anyhow::ensure!(entries.len() == ENTRIES, "replica {n} sees {} guestbook entries, not {ENTRIES}", entries.len());
        let runs = best_interleaved(&client, &[urls("plain-http-fixture/"), urls("guestbook/entries")], CONCURRENCY, ROUNDS, ROUND).await;
        let latency = |i: usize| format!("{} / {}", us(runs[i].samples.percentile(0.5)), us(runs[i].samples.percentile(0.99)));
        writeln!(report, "| {n} | {:.0} | {} | {:.0} | {} | {} |", runs[0].rate, latency(0), runs[1].rate, latency(1), runs[0].errors + runs[1].errors)?;
        trivial.push(runs[0].rate);
        guestbook.push(runs[1].rate);
    }
    report.push('\n');
    report.push_str(&chart::write(
        "replicas",
        &Bars {
            title: "Replicas on one PostgreSQL (2 cores shared by all): requests/s",
            unit: "requests/s",
            groups: (1..=MAX_REPLICAS).map(|n| format!("{n} replica{}", if n == 1 { "" } else { "s" })).collect(),
            series: vec![("trivial component".into(), trivial), ("guestbook GET /entries".into(), guestbook)],
        },
    )?);
    println!("{report}");
    write_into_benchmarks_md("replicas", "Replicas on one PostgreSQL", &report)?;
    Ok(())
}

async fn postgres_version(url: &str) -> anyhow::Result<String> {
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(url).await?;
    let (version,): (String,) = sqlx::query_as("SHOW server_version").fetch_one(&pool).await?;
    pool.close().await;
    Ok(version)
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
