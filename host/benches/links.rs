//! Linked units: what a read through a module that provides an interface costs next to the
//! platform answering it itself. The 滞納整理 fixture reads a resident from the platform's
//! registry, the same resident from a vendor's 住民記録 unit (a fresh instance of the
//! provider per call, its kv, two audit rows), and payments from a 収納 unit; sequential
//! over HTTP, rounds interleaved. Run by `cargo xtask bench links`; writes
//! docs/BENCHMARKS.md between the `bench:links` markers.

mod common;

use common::load::{ms, percentile};
use common::{module_file, write_into_benchmarks_md};
use nukisashi::capabilities::Capability;
use nukisashi::catalog::manifest::{Manifest, ProvidedInterface};
use nukisashi::plugins::live::{Change, Routed};
use nukisashi::settings::Settings;
use nukisashi::store::kv::{KvScope, Quota};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

const CHIYODA: &str = "131016";
const ROUNDS: usize = 5;
const PER_ROUND: usize = 200;
/// Demo residents of 千代田区 read in turn.
const RESIDENTS: u64 = 300;

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run())
}

fn manifest(id: &str, capabilities: &str, extra: &str) -> anyhow::Result<Manifest> {
    let text = format!(
        "id = \"{id}\"\nversion = \"1.0.0\"\nvendor = \"bench\"\ncategory = \"収納\"\nname = {{ ja = \"{id}\", en = \"{id}\" }}\ndescription = \"\"\n\
         capabilities = [{capabilities}]\nwit_major = 1\nroutes = [{{ path = \"/\", auth = \"public\" }}]\n{extra}\n"
    );
    Manifest::parse(text.as_bytes()).map_err(anyhow::Error::msg)
}

async fn run() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let settings = Settings { data_dir: dir.path().to_path_buf(), ..Settings::default() };
    let app = nukisashi::server::build(&settings).await?;
    nukisashi::demo::seed(&app).await?;
    let code = nukisashi::lgcode::LgCode::parse(CHIYODA)?;

    let units = [
        ("arrears", "arrears_unit_fixture", manifest("arrears", "\"kv\", \"receipts\", \"resident-registry\"", "")?),
        ("receipts-a", "receipts_unit_fixture", manifest("receipts-a", "\"kv\"", "[provides.receipts]\n[provides.resident-registry]")?),
    ];
    for (id, file, manifest) in units {
        let capabilities = manifest.capabilities.iter().copied().collect::<std::collections::BTreeSet<Capability>>();
        let loaded = nukisashi::plugins::admission::load_and_health_check(&app, Arc::new(manifest), std::fs::read(module_file(file))?).await?;
        app.file_routes.lock().expect("file routes").insert(id.to_string(), Arc::new(Routed { version: loaded, capabilities }));
    }
    // The 住民記録 and 収納 unit's own records of the demo residents.
    let scope = KvScope { lg_code: CHIYODA.into(), module_id: "receipts-a".into() };
    let quota = Quota { bytes: u64::MAX, keys: u64::MAX };
    for n in 0..RESIDENTS {
        let number = format!("{}", 1_000_000_001 + n);
        let resident = app.db.resident(CHIYODA, &number).await?.expect("a demo resident");
        let record = serde_json::json!({
            "addressee_number": number, "integrated_addressee_number": resident.integrated_number, "household_number": resident.household_number,
            "name": resident.name, "name_kana": resident.name_kana, "birth_date": resident.birth_date, "sex": "unspecified",
            "relationship": resident.relationship, "postal_code": resident.postal_code, "address": resident.address,
            "resident_since": resident.resident_since, "status": "resident", "status_changed_on": null, "status_reason": null,
        });
        app.db.kv_set(&scope, &format!("resident/{number}/000001"), &serde_json::to_vec(&record)?, quota).await?.map_err(|e| anyhow::anyhow!(e))?;
        let payment = serde_json::json!({"addressee_number": number, "tax_item": "個人住民税", "fiscal_year": 2026, "installment": 1, "amount": 10000, "paid_on": "2026-06-30"});
        app.db.kv_set(&scope, &format!("payment/{number}/000001"), &serde_json::to_vec(&payment)?, quota).await?.map_err(|e| anyhow::anyhow!(e))?;
    }
    app.rebuild_routes().await?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let router = nukisashi::api::router(app.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    nukisashi::tls::install_crypto_provider();
    let client = reqwest::Client::builder().build()?;

    // (label, path, the registry's provider) — the table is set directly for each run (in a
    // host the administrator's choice does it, through the route controller).
    let runs: [(&str, &str, Option<&str>); 3] = [
        ("resident by 宛名番号, the platform's registry", "resident", None),
        ("resident by 宛名番号, a vendor's 住民記録 unit", "resident", Some("receipts-a")),
        ("payments of a resident, a vendor's 収納 unit", "payments", Some("receipts-a")),
    ];
    app.live.apply(vec![Change::Provider(code.clone(), ProvidedInterface::Receipts, Some("receipts-a".into()))]);
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); runs.len()];
    for _ in 0..ROUNDS {
        for (i, (_, path, registry)) in runs.iter().enumerate() {
            app.live.apply(vec![Change::Provider(code.clone(), ProvidedInterface::ResidentRegistry, registry.map(String::from))]);
            for n in 0..PER_ROUND as u64 {
                let url = format!("{base}/{CHIYODA}/arrears/{path}/{}", 1_000_000_001 + n % RESIDENTS);
                let started = Instant::now();
                let response = client.get(&url).send().await?;
                assert_eq!(response.status(), 200, "{url}");
                let body = response.bytes().await?;
                samples[i].push(started.elapsed());
                assert!(body.len() > 2, "{url} answered nothing");
            }
        }
    }

    let mut report = String::new();
    writeln!(report, "Machine: {} cores, {}; wasmtime 48.0.8, release build, SQLite in a temp dir.", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1), std::env::consts::ARCH)?;
    writeln!(
        report,
        "Method: `cargo xtask bench links` (host/benches/links.rs), one process. The 滞納整理 fixture (tests/fixtures/arrears-unit) reads one of 千代田区's 300 demo residents per request, sequentially over HTTP, {ROUNDS} rounds of {PER_ROUND} requests per row, interleaved. Through a provider, each call instantiates the provider (tests/fixtures/receipts-unit, which reads its own kv) and writes two audit rows in one transaction.\n"
    )?;
    writeln!(report, "| read | requests | p50 ms | p99 ms |")?;
    writeln!(report, "| --- | ---: | ---: | ---: |")?;
    let mut p50 = Vec::new();
    for ((label, _, _), mut s) in runs.iter().zip(samples) {
        p50.push(percentile(&mut s, 0.5));
        writeln!(report, "| {label} | {} | {} | {} |", s.len(), ms(p50[p50.len() - 1]), ms(percentile(&mut s, 0.99)))?;
    }
    writeln!(
        report,
        "\nThe same read through a vendor's unit costs {} ms more at p50 than the platform's own: a fresh instance of the provider, its kv reads, and the provider's audit row beside the consumer's.",
        ms(p50[1].saturating_sub(p50[0]))
    )?;
    println!("{report}");
    write_into_benchmarks_md("links", "Linked units: reads through a providing module", &report)?;
    Ok(())
}
