//! Data linkage: bulk import of a generated 100,000-resident municipality through the REST
//! API (streamed CSV, one transaction), the idempotent re-import, and reads from inside a
//! module through the full HTTP path (query by 宛名番号, household, a change-feed page),
//! each read audited. Run by `cargo xtask bench`; writes docs/BENCHMARKS.md between the
//! `bench:linkage` markers.

mod common;

use common::load::{ms, percentile};
use common::{module_file, write_into_benchmarks_md};
use nukisashi::linkage::generate::{Spec, generate, write_residents, write_tax};
use nukisashi::linkage::import::Encoding;
use nukisashi::settings::Settings;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

const RESIDENTS: usize = 100_000;
const CHIYODA: &str = "131016";
const READS: usize = 2000;

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run())
}

/// The linkage fixture with a manifest requesting every linkage capability.
fn linkage_module(dir: &Path) -> anyhow::Result<PathBuf> {
    let wasm = dir.join("linkage.wasm");
    std::fs::copy(module_file("linkage_fixture"), &wasm)?;
    std::fs::write(
        dir.join("linkage.toml"),
        "id = \"linkage\"\nversion = \"0.1.0\"\nvendor = \"local\"\ncategory = \"bench\"\nname = { ja = \"連携\", en = \"Linkage\" }\n\
         description = \"\"\ncapabilities = [\"kv\", \"resident-registry\", \"identity-numbers\", \"tax\", \"change-feed\"]\nwit_major = 1\n\
         routes = [{ path = \"/\", auth = \"public\" }]\n",
    )?;
    Ok(wasm)
}

async fn run() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let settings = Settings { data_dir: dir.path().join("data"), plugins: vec![linkage_module(dir.path())?], ..Settings::default() };
    let app = nukisashi::server::build(&settings).await?;
    let code = nukisashi::lgcode::LgCode::parse(CHIYODA)?;
    app.add_municipality(&nukisashi::store::municipalities::Municipality {
        lg_code: code.clone(),
        name: "千代田区".into(),
        prefecture: code.prefecture().into(),
        population: 68_000,
    })
    .await?;

    let t = Instant::now();
    let generated = generate(&Spec {
        lg_code: CHIYODA.into(),
        place: "東京都千代田区".into(),
        residents: RESIDENTS,
        seed: 1,
        as_of: chrono::NaiveDate::from_ymd_opt(2026, 11, 1).expect("date"),
        shift_jis_safe: false,
    });
    let residents_csv = dir.path().join("residents.csv");
    let tax_csv = dir.path().join("tax.csv");
    write_residents(&mut std::io::BufWriter::new(std::fs::File::create(&residents_csv)?), &generated.residents, Encoding::Utf8)?;
    write_tax(&mut std::io::BufWriter::new(std::fs::File::create(&tax_csv)?), &generated.tax, Encoding::Utf8)?;
    let generate_time = t.elapsed();
    let residents_bytes = std::fs::metadata(&residents_csv)?.len();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(axum::serve(listener, nukisashi::api::router(app.clone())).into_future());
    let token = nukisashi::auth::mint(
        &settings.data_dir,
        nukisashi::auth::Claims {
            sub: "bench".into(),
            role: nukisashi::auth::Role::Operator,
            vendor_id: None,
            lg_code: None,
            name: None,
            addressee_number: None,
            iss: nukisashi::auth::LOCAL_ISSUER.into(),
            aud: nukisashi::auth::LOCAL_AUDIENCE.into(),
            exp: 0,
            iat: 0,
        },
        3600,
    )?;
    let client = nukisashi::client::Client::new(&base, Some(token));

    let mut report = String::new();
    writeln!(report, "Machine: {} cores, {}; release build, SQLite (WAL) in a temp dir, host and client in one process.", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1), std::env::consts::ARCH)?;
    writeln!(report, "Method: `cargo xtask bench` (host/benches/linkage.rs): `nukisashi dev generate` data, imported through `POST …/linkage/{{layout}}/import` (the CLI's upload path).\n")?;
    writeln!(report, "### Import of a {RESIDENTS}-resident municipality (target: under 10 s)\n")?;
    writeln!(report, "| step | rows | seconds | rows/s |")?;
    writeln!(report, "| --- | ---: | ---: | ---: |")?;
    writeln!(report, "| generate residents + tax CSV ({:.1} MB residents) | {} | {:.2} | |", residents_bytes as f64 / 1e6, generated.residents.len() + generated.tax.len(), generate_time.as_secs_f64())?;
    for (label, layout, file) in [
        ("import residents (new)", "residents", &residents_csv),
        ("import tax summaries (new)", "tax", &tax_csv),
        ("re-import residents (unchanged: nothing written)", "residents", &residents_csv),
    ] {
        let t = Instant::now();
        let r = client.upload(&format!("/municipalities/{CHIYODA}/linkage/{layout}/import"), file).await?;
        let elapsed = t.elapsed();
        assert_eq!(r["rejected_count"], 0, "{r}");
        let rows = r["rows"].as_u64().unwrap_or(0);
        writeln!(report, "| {label} | {rows} | {:.2} | {:.0} |", elapsed.as_secs_f64(), rows as f64 / elapsed.as_secs_f64())?;
    }

    // Reads from inside the module, over HTTP, each audited before the response leaves.
    nukisashi::tls::install_crypto_provider();
    let http = reqwest::Client::new();
    let head = app.db.changes_since(CHIYODA, 0, 1).await?.len();
    assert_eq!(head, 1);
    writeln!(report, "\n### Reads from inside a module (full HTTP path, sequential, audit row written per request)\n")?;
    writeln!(report, "| read | requests | p50 ms | p99 ms |")?;
    writeln!(report, "| --- | ---: | ---: | ---: |")?;
    let kinds: [(&str, Box<dyn Fn(usize) -> String>); 3] = [
        ("resident by 宛名番号", Box::new(|i| format!("/resident/{:010}", 1_000_000_001 + (i * 7919) % RESIDENTS))),
        ("household by 世帯番号", Box::new(|i| format!("/household/{:08}", 10_000_001 + (i * 104_729) % 40_000))),
        ("change-feed page (1,000 changes)", Box::new(|i| format!("/changes?after={}", (i * 977) % 100_000))),
    ];
    for (label, path) in kinds {
        let mut samples = Vec::with_capacity(READS);
        for i in 0..READS {
            let url = format!("{base}/{CHIYODA}/linkage{}", path(i));
            let t = Instant::now();
            let response = http.get(&url).send().await?;
            assert!(response.status().is_success(), "{url}: {}", response.status());
            response.bytes().await?;
            samples.push(t.elapsed());
        }
        writeln!(report, "| {label} | {READS} | {} | {} |", ms(percentile(&mut samples, 0.5)), ms(percentile(&mut samples, 0.99)))?;
    }
    println!("{report}");
    write_into_benchmarks_md("linkage", "Data linkage", &report)?;
    Ok(())
}
