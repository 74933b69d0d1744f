//! The API keeps its contract: a bounded schemathesis run against the OpenAPI document the
//! host serves, on a demo host, finds no 5xx, no refusal that is not problem+json, and no
//! request the document calls valid refused (or invalid accepted). `cargo xtask test`
//! installs schemathesis in `target/tools` and says where (`NUKISASHI_SCHEMATHESIS`).

use nukisashi_e2e::{Backend, HostSpec, business_plugin, workspace_root};
use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_as_its_openapi_document_says() {
    let Ok(schemathesis) = std::env::var("NUKISASHI_SCHEMATHESIS") else {
        eprintln!("skipped: needs schemathesis (cargo xtask test installs it)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut spec = HostSpec::new(Backend::Sqlite, &dir.path().join("host"), &[]).await.unwrap();
    spec.plugins = vec![business_plugin(dir.path(), "furusato-tax")];
    let host = spec.start().unwrap();
    let operator = host.token("operator", None);
    let output = tokio::task::spawn_blocking({
        let (base, scratch) = (host.base.clone(), dir.path().to_path_buf());
        move || {
            Command::new(schemathesis)
                // It keeps a cache of what it found in `.schemathesis/` of its directory.
                .current_dir(scratch)
                .arg("--config-file")
                .arg(workspace_root().join("tests/schemathesis.toml"))
                .arg("run")
                .arg(format!("{base}/api/v1/openapi.json"))
                .args(["--url", &base])
                .args(["--header", &format!("Authorization: Bearer {operator}")])
                // Bounded (about a minute), and the same cases in the same order every run: one
                // worker, as the host's state changes under the run.
                .args(["--checks", "all", "--max-examples", "25", "--workers", "1", "--generation-deterministic", "--seed", "1"])
                .args(["--request-timeout", "30"])
                .env("NO_COLOR", "1")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "schemathesis found contract failures:\n{report}\n--- host log ---\n{}", host.log());
    assert!(!host.log().contains("panicked"), "{}", host.log());
}
