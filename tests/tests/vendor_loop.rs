//! The vendor's loop on the `nukisashi` binary, driven as a vendor drives it: `module new`
//! → `cargo test` and `cargo build` → `module check` → `dev` → edit → rebuild → the same dev
//! host serves the new code; and the manifest schema and the vendor's own module logs over
//! HTTP.

use nukisashi_e2e::{Backend, HostSpec, binary, cli, manifest, module, ok, publish, subscribe, vendor, workspace_root};
use reqwest::Method;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

const CHIYODA: &str = "131016";
const SAPPORO: &str = "011002";

/// Where the scaffolded module's builds go: kept between runs, so only the first run
/// compiles its dependencies.
fn scaffold_target() -> PathBuf {
    workspace_root().join("target/vendor-loop")
}

fn cargo(dir: &Path, args: &[&str]) {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())).args(args).current_dir(dir).env("CARGO_TARGET_DIR", scaffold_target()).output().expect("cargo runs");
    assert!(out.status.success(), "cargo {args:?} failed in {}:\n{}", dir.display(), String::from_utf8_lossy(&out.stderr));
}

/// Builds the module and puts the component where its dev.toml says, in one rename (as a
/// build tool writes its output; the dev host must never load it half-written).
fn build_into_folder(dir: &Path) {
    cargo(dir, &["build", "--target", "wasm32-wasip2", "--release"]);
    let built = scaffold_target().join("wasm32-wasip2/release/hello_town.wasm");
    let partial = dir.join("hello-town.wasm.partial");
    std::fs::copy(&built, &partial).unwrap();
    std::fs::rename(&partial, dir.join("hello-town.wasm")).unwrap();
}

/// `nukisashi dev` running, with its stdout lines arriving on a channel.
struct DevHost {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    port: u16,
    client: reqwest::Client,
}

impl DevHost {
    fn start(dir: &Path) -> Self {
        let mut child = Command::new(binary())
            .args(["dev", "--listen", "127.0.0.1:0"])
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("nukisashi dev starts");
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut dev = DevHost { child, lines, seen: Vec::new(), port: 0, client: nukisashi_e2e::client_without_redirects() };
        let listening = dev.wait_for("nukisashi listening on http://");
        dev.port = listening.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a port");
        dev
    }

    /// Waits for the next line containing `text` (the dev host prints it when it happens).
    fn wait_for(&mut self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => panic!("`nukisashi dev` never printed {text:?}; it printed:\n{}", self.seen.join("\n")),
            }
        }
    }

    fn url(&self, code: &str, path: &str) -> String {
        format!("http://hello-town--{code}.localhost:{}{path}", self.port)
    }

    async fn get(&self, code: &str, path: &str) -> (u16, String) {
        let r = self.client.get(self.url(code, path)).send().await.expect("the dev host answers");
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn post(&self, code: &str, text: &str) -> (u16, Value) {
        let r = self.client.post(self.url(code, "/entries")).json(&json!({ "text": text })).send().await.expect("the dev host answers");
        (r.status().as_u16(), r.json().await.unwrap())
    }
}

impl Drop for DevHost {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_module_builds_checks_runs_and_reloads_without_a_restart() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("hello-town");
    let created = Command::new(binary()).args(["module", "new", "hello-town", "--dir"]).arg(&dir).output().unwrap();
    assert!(ok(created).contains("created"));
    // Served from the folder, wherever the build puts its output.
    let dev_toml = std::fs::read_to_string(dir.join("dev.toml")).unwrap();
    let dev_toml = dev_toml.lines().map(|l| if l.starts_with("component =") { "component = \"hello-town.wasm\"" } else { l }).collect::<Vec<_>>().join("\n");
    std::fs::write(dir.join("dev.toml"), dev_toml).unwrap();

    // Its own tests pass natively, through the SDK's test platform.
    cargo(&dir, &["test", "--quiet"]);
    build_into_folder(&dir);

    let checked = Command::new(binary()).args(["module", "check"]).current_dir(&dir).output().unwrap();
    let report = ok(checked);
    assert!(report.contains("ok       manifest: module `hello-town` 0.1.0") && report.contains("ready to sign"), "{report}");

    let mut dev = DevHost::start(&dir);
    dev.wait_for("loaded hello-town");
    dev.wait_for(&format!("hello-town--{SAPPORO}.localhost"));
    let pid = dev.child.id();

    // dev.toml's config is every demo municipality's, kv is each municipality's own.
    let (status, page) = dev.get(CHIYODA, "/").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<h1>こんにちは</h1>") && page.contains("千代田区"), "{page}");
    let (status, entry) = dev.post(CHIYODA, "最初の投稿").await;
    assert_eq!((status, &entry["id"]), (201, &json!(1)), "{entry}");
    assert_eq!(dev.get(SAPPORO, "/entries").await, (200, "[]".to_string()));
    // Its log line and the request, as they happen.
    dev.wait_for(&format!("{CHIYODA} hello-town@0.1.0 info  message 1 added"));
    dev.wait_for(&format!("{CHIYODA} hello-town@0.1.0 POST /entries → 201 in"));

    // Edit, rebuild: the same process serves the new code, with the data it had.
    let source = dir.join("src/lib.rs");
    let edited = std::fs::read_to_string(&source).unwrap().replace("<h1>{title}</h1>", "<h1>{title}（第2版）</h1>");
    std::fs::write(&source, edited).unwrap();
    build_into_folder(&dir);
    dev.wait_for("reloaded hello-town in");
    let (_, page) = dev.get(CHIYODA, "/").await;
    assert!(page.contains("<h1>こんにちは（第2版）</h1>") && page.contains("最初の投稿"), "{page}");
    assert_eq!(dev.child.id(), pid);
    assert!(dev.child.try_wait().unwrap().is_none(), "the dev host restarted");

    // A broken build is refused with the reason, and the previous one keeps serving.
    let partial = dir.join("broken.partial");
    std::fs::write(&partial, b"\0asm but not really").unwrap();
    std::fs::rename(&partial, dir.join("hello-town.wasm")).unwrap();
    let refused = dev.wait_for("not reloaded, the previous build keeps serving");
    assert!(refused.contains("hello-town.wasm"), "{refused}");
    let (status, page) = dev.get(CHIYODA, "/").await;
    assert_eq!(status, 200);
    assert!(page.contains("（第2版）"), "{page}");

    // A config change in dev.toml is a reload too.
    build_into_folder(&dir);
    dev.wait_for("reloaded hello-town in");
    let dev_toml = std::fs::read_to_string(dir.join("dev.toml")).unwrap().replace("title = \"こんにちは\"", "title = \"ようこそ那覇へ\"");
    std::fs::write(dir.join("dev.toml"), dev_toml).unwrap();
    dev.wait_for("reloaded hello-town in");
    let (_, page) = dev.get(SAPPORO, "/").await;
    assert!(page.contains("<h1>ようこそ那覇へ（第2版）</h1>"), "{page}");
}

#[tokio::test(flavor = "multi_thread")]
async fn module_check_lists_every_problem_before_signing() {
    let base = tempfile::tempdir().unwrap();
    let bad = base.path().join("manifest.toml");
    std::fs::write(&bad, "id = \"Hello\"\nversion = \"1\"\n").unwrap();
    let out = Command::new(binary()).args(["module", "check", "--manifest"]).arg(&bad).arg("--component").arg(&bad).output().unwrap();
    assert!(!out.status.success());
    let report = String::from_utf8_lossy(&out.stdout);
    let problems: Vec<&str> = report.lines().filter(|l| l.starts_with("PROBLEM")).collect();
    assert_eq!(problems.len(), 2, "{report}");
    assert!(problems[0].contains("manifest:") && problems[1].contains("not a WebAssembly file"), "{report}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 problem(s) found"));

    // A real module with an operator's tighter limits: the limit is named.
    let settings = base.path().join("settings.toml");
    std::fs::write(&settings, "[limits]\nmemory_bytes = 65536\n").unwrap();
    let out = Command::new(binary())
        .args(["module", "check", "--manifest"])
        .arg(workspace_root().join("examples/guestbook-python/manifest.toml"))
        .arg("--component")
        .arg(module("guestbook"))
        .arg("--config")
        .arg(&settings)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success() && report.contains("ok       manifest:") && report.contains("`[limits] memory_bytes`"), "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_manifest_schema_is_served_and_the_guide_documents_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let host = HostSpec::new(Backend::Sqlite, dir.path(), &[]).await.unwrap().start().unwrap();
    let r = host.get("/api/v1/schemas/manifest.json").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/schema+json");
    let schema: Value = r.json().await.unwrap();
    let printed: Value = serde_json::from_slice(&ok(Command::new(binary()).args(["module", "schema"]).output().unwrap()).into_bytes()).unwrap();
    assert_eq!(schema, printed);
    let guide = std::fs::read_to_string(workspace_root().join("docs/VENDOR-GUIDE.md")).unwrap();
    let fields = schema["properties"].as_object().expect("properties");
    assert!(fields.len() >= 10);
    for field in fields.keys() {
        assert!(guide.contains(&format!("| `{field}` |")), "docs/VENDOR-GUIDE.md's manifest reference has no row for `{field}`");
    }
    for (definition, body) in schema["$defs"].as_object().expect("$defs") {
        for value in body["enum"].as_array().into_iter().flatten().chain(body["oneOf"].as_array().into_iter().flatten().filter_map(|v| v.get("const"))) {
            let value = value.as_str().unwrap();
            assert!(guide.contains(&format!("`{value}`")), "docs/VENDOR-GUIDE.md does not mention `{value}` ({definition})");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn vendors_read_their_own_modules_logs_redacted_and_no_one_elses() {
    let dir = tempfile::tempdir().unwrap();
    let host = HostSpec::new(Backend::Sqlite, dir.path(), &[]).await.unwrap().start().unwrap();
    let acme = vendor(&host, dir.path(), "acme", true).await;
    vendor(&host, dir.path(), "other", true).await;
    let m = manifest(dir.path(), "acme", "acme-guestbook", "1.0.0", "");
    ok(publish(&host, "acme", &acme, &m, &module("guestbook")));
    let r = subscribe(&host, CHIYODA, "acme-guestbook", &["kv"], json!({})).await;
    assert_eq!(r.status(), 200);

    let resident = host.token("resident", Some(CHIYODA));
    let entry = json!({"name": "山田 taro@example.jp", "message": "電話 090-1234-5678"});
    let r = host.client.post(format!("{}/entries", host.origin(CHIYODA, "acme-guestbook"))).bearer_auth(&resident).json(&entry).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let r = host.client.get(format!("{}/entries/77777", host.origin(CHIYODA, "acme-guestbook"))).bearer_auth(&resident).send().await.unwrap();
    assert_eq!(r.status(), 404);

    let (status, logs) = host.call(Some(&host.token("vendor", Some("acme"))), Method::GET, "/api/v1/modules/acme-guestbook/logs", None).await;
    assert_eq!(status, 200, "{logs}");
    let entries = logs.as_array().unwrap();
    let requests: Vec<(&str, &str, u64)> = entries
        .iter()
        .filter(|e| e["kind"] == "request")
        .map(|e| (e["method"].as_str().unwrap(), e["route"].as_str().unwrap(), e["status"].as_u64().unwrap()))
        .collect();
    // By the declared route: the path (here an id) is not kept.
    assert_eq!(requests, [("POST", "/entries", 201), ("GET", "/entries", 404)], "{logs}");
    assert!(entries.iter().any(|e| e["kind"] == "log" && e["message"] == "guestbook entry 1 added"), "{logs}");
    let text = logs.to_string();
    assert!(!text.contains("77777") && !text.contains("test-resident") && !text.contains("山田"), "{text}");

    // Another vendor, and a municipality's admin, see nothing.
    let (status, _) = host.call(Some(&host.token("vendor", Some("other"))), Method::GET, "/api/v1/modules/acme-guestbook/logs", None).await;
    assert_eq!(status, 403);
    let (status, _) = host.call(Some(&host.token("admin", Some(CHIYODA))), Method::GET, "/api/v1/modules/acme-guestbook/logs", None).await;
    assert_eq!(status, 403);
    let (status, _) = host.call(None, Method::GET, "/api/v1/modules/acme-guestbook/logs", None).await;
    assert_eq!(status, 401);

    // The CLI prints the same.
    let printed = ok(cli(&host, &host.token("vendor", Some("acme")), &["module", "logs", "acme-guestbook"]));
    assert!(printed.contains("131016 acme-guestbook@1.0.0 POST /entries → 201 in") && printed.contains("GET /entries → 404"), "{printed}");
}

/// The toolchains `cargo xtask test` installs for the polyglot examples, on PATH as a
/// vendor has them.
fn path_with_polyglot_toolchains() -> String {
    let tools = workspace_root().join("target/tools");
    let bins = [tools.join("componentize-py-0.25.1/bin"), tools.join("componentize-js-0.23.0/node_modules/.bin")];
    for bin in &bins {
        assert!(bin.is_dir(), "{} is missing: run the suite with `cargo xtask test` (it installs componentize-py and componentize-js)", bin.display());
    }
    let mut path: Vec<PathBuf> = bins.to_vec();
    path.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
    std::env::join_paths(path).unwrap().into_string().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn python_and_javascript_modules_from_module_new_build_and_pass_the_check() {
    let base = tempfile::tempdir().unwrap();
    let path = path_with_polyglot_toolchains();
    for lang in ["python", "js"] {
        let dir = base.path().join(format!("hello-{lang}"));
        ok(Command::new(binary()).args(["module", "new", &format!("hello-{lang}"), "--lang", lang, "--dir"]).arg(&dir).output().unwrap());
        let built = Command::new(dir.join("build.sh")).env("PATH", &path).output().unwrap();
        assert!(built.status.success(), "{lang}: ./build.sh failed:\n{}{}", String::from_utf8_lossy(&built.stdout), String::from_utf8_lossy(&built.stderr));
        let report = ok(Command::new(binary()).args(["module", "check"]).current_dir(&dir).output().unwrap());
        assert!(report.contains(&format!("ok       manifest: module `hello-{lang}` 0.1.0")) && report.contains("ready to sign"), "{lang}: {report}");
    }
}
