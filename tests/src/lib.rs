//! Helpers for end-to-end tests: start the real `nukisashi` binary on a free port with a
//! fresh data directory (and, for PostgreSQL, a fresh database), and talk to it over HTTP.
//!
//! `cargo xtask test` builds the binary and the modules first and provides a PostgreSQL
//! server through `NUKISASHI_TEST_DATABASE_URL`.

pub mod browser;
pub mod idp;
pub mod web;

use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Which database a test host uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is in the workspace").to_path_buf()
}

/// The `nukisashi` binary built by `cargo xtask test`.
pub fn binary() -> PathBuf {
    let path = workspace_root().join("target/release/nukisashi");
    assert!(path.exists(), "{} is missing: run the suite with `cargo xtask test`", path.display());
    path
}

/// A module component built by `cargo xtask test`, e.g. `module("guestbook")`.
pub fn module(name: &str) -> PathBuf {
    let path = workspace_root().join("target/wasm32-wasip2/guest").join(format!("{}.wasm", name.replace('-', "_")));
    assert!(path.exists(), "{} is missing: run the suite with `cargo xtask test`", path.display());
    path
}

/// A new, empty PostgreSQL database on the test server; its URL.
pub async fn fresh_postgres_database() -> Result<String> {
    let admin = std::env::var("NUKISASHI_TEST_DATABASE_URL").context(
        "NUKISASHI_TEST_DATABASE_URL is not set: run the suite with `cargo xtask test`, which starts a PostgreSQL server",
    )?;
    let name = format!("nk_{}", uuid::Uuid::new_v4().simple());
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&admin).await?;
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&pool).await?;
    pool.close().await;
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    Ok(format!("{base}/{name}"))
}

/// How to start a test host.
#[derive(Clone)]
pub struct HostSpec {
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub plugins: Vec<PathBuf>,
    /// Extra TOML for the settings file (e.g. a `[limits]` table).
    pub settings: String,
    pub demo: bool,
    /// Extra environment variables for the host process.
    pub env: Vec<(String, String)>,
    /// The CA that signed the host's certificate, when it serves HTTPS.
    pub ca: Option<PathBuf>,
}

impl HostSpec {
    /// A host with demo municipalities and the given modules, on `backend`, in `dir`.
    pub async fn new(backend: Backend, dir: &Path, modules: &[&str]) -> Result<Self> {
        let database_url = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(fresh_postgres_database().await?),
        };
        Ok(Self {
            data_dir: dir.to_path_buf(),
            database_url,
            plugins: modules.iter().map(|m| module(m)).collect(),
            settings: String::new(),
            demo: true,
            env: Vec::new(),
            ca: None,
        })
    }

    /// Another host on the same database (a replica) in `dir`, once this one has run (it
    /// shares the token secret): same modules and settings, no demo seeding of its own.
    pub fn replica(&self, dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::copy(self.data_dir.join("jwt-secret"), dir.join("jwt-secret")).expect("start the first host before its replica");
        Self { data_dir: dir.to_path_buf(), demo: false, ..self.clone() }
    }

    pub fn settings(mut self, toml: &str) -> Self {
        self.settings = toml.to_string();
        self
    }

    /// Serves HTTPS with `tls`'s certificate; the test client trusts its CA.
    pub fn tls(mut self, tls: &Tls) -> Self {
        self.settings.push_str(&format!("\n[tls]\ncert = {:?}\nkey = {:?}\n", tls.cert, tls.key));
        self.ca = Some(tls.ca.clone());
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    /// Starts the host and waits until it listens.
    pub fn start(&self) -> Result<Host> {
        std::fs::create_dir_all(&self.data_dir)?;
        let settings_path = self.data_dir.join("settings.toml");
        std::fs::write(&settings_path, &self.settings)?;
        let mut command = Command::new(binary());
        command
            .arg("serve")
            .arg("--config")
            .arg(&settings_path)
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&self.data_dir);
        if let Some(url) = &self.database_url {
            command.args(["--database-url", url]);
        }
        for plugin in &self.plugins {
            command.arg("--plugin").arg(plugin);
        }
        if self.demo {
            command.arg("--demo");
        }
        let log = std::fs::File::create(self.data_dir.join("host.log"))?;
        command.stdout(Stdio::piped()).stderr(log).env("RUST_BACKTRACE", "0").env("NUKISASHI_LOG", "info");
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        let mut child = command.spawn().context("cannot start nukisashi")?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("nukisashi listening on ") {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(base) => {
                let host = Host { child, base, data_dir: self.data_dir.clone(), client: client(self.ca.as_deref()), ca: self.ca.clone() };
                host.wait_ready()?;
                Ok(host)
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(self.data_dir.join("host.log")).unwrap_or_default();
                bail!("nukisashi did not start listening; its log:\n{log}")
            }
        }
    }
}

/// Resolves every `*.localhost` name to loopback, as browsers do (module origins are
/// `{module}--{lg_code}.localhost` in tests); other names through the system.
struct LoopbackNames;

impl reqwest::dns::Resolve for LoopbackNames {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let name = name.as_str().to_string();
        Box::pin(async move {
            if name == "localhost" || name.ends_with(".localhost") {
                let loopback: reqwest::dns::Addrs = Box::new(std::iter::once(std::net::SocketAddr::from(([127, 0, 0, 1], 0))));
                return Ok(loopback);
            }
            let found: Vec<std::net::SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let addrs: reqwest::dns::Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

/// How long the test clients keep an idle connection for reuse: well under the host's
/// `[limits.connections] header_read_ms` (10 s), after which the host closes a kept-alive
/// connection that has not started its next request. Reusing one at that moment races the
/// close, and a POST that loses the race fails (`IncompleteMessage`).
const KEPT_ALIVE: Duration = Duration::from_secs(4);

/// An HTTP client that resolves `*.localhost` to loopback and follows no redirects.
pub fn client_without_redirects() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_idle_timeout(KEPT_ALIVE)
        .dns_resolver(std::sync::Arc::new(LoopbackNames))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

fn client(ca: Option<&Path>) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(60)).pool_idle_timeout(KEPT_ALIVE).dns_resolver(std::sync::Arc::new(LoopbackNames));
    if let Some(ca) = ca {
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(ca).expect("CA file")).expect("CA PEM"));
    }
    builder.build().expect("http client")
}

/// A test CA and a certificate it signed for `localhost` and `127.0.0.1`, as PEM files.
pub struct Tls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn tls_files(dir: &Path) -> Tls {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "nukisashi test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
    params.use_authority_key_identifier_extension = true;
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let tls = Tls { ca: dir.join("ca.pem"), cert: dir.join("cert.pem"), key: dir.join("key.pem") };
    std::fs::write(&tls.ca, ca_cert.pem()).unwrap();
    std::fs::write(&tls.cert, cert.pem()).unwrap();
    std::fs::write(&tls.key, key.serialize_pem()).unwrap();
    tls
}

/// A running host process; killed when dropped.
pub struct Host {
    child: Child,
    pub base: String,
    pub data_dir: PathBuf,
    pub client: reqwest::Client,
    /// The CA the client trusts, when the host serves HTTPS.
    pub ca: Option<PathBuf>,
}

impl Host {
    /// Waits until `/readyz` answers 200: the host listens at once and compiles its modules
    /// after (`/healthz` answers meanwhile).
    fn wait_ready(&self) -> Result<()> {
        let url = self.url("/readyz");
        let client = self.client.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let deadline = std::time::Instant::now() + Duration::from_secs(180);
                loop {
                    if let Ok(r) = client.get(&url).send().await {
                        if r.status() == 200 {
                            return Ok(());
                        }
                    }
                    if std::time::Instant::now() > deadline {
                        bail!("the host never became ready ({url})");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        })
        .join()
        .map_err(|_| anyhow::anyhow!("waiting for the host panicked"))?
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The port the host listens on.
    pub fn port(&self) -> u16 {
        self.base.rsplit(':').next().and_then(|p| p.parse().ok()).expect("the base URL has a port")
    }

    /// The own origin of `module` at municipality `lg_code`, e.g.
    /// `http://guestbook--131016.localhost:PORT`.
    pub fn origin(&self, lg_code: &str, module: &str) -> String {
        let scheme = self.base.split("://").next().unwrap_or("http");
        format!("{scheme}://{module}--{lg_code}.localhost:{}", self.port())
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request reaches the host")
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.client.post(self.url(path)).json(body).send().await.expect("request reaches the host")
    }

    pub async fn put_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.client.put(self.url(path)).json(body).send().await.expect("request reaches the host")
    }

    /// A token for this host, minted by the CLI with the host's own secret.
    /// `role` is operator, vendor, admin, staff or resident; `scope` the vendor id (vendor)
    /// or municipality code (admin, staff).
    pub fn token(&self, role: &str, scope: Option<&str>) -> String {
        mint(&self.data_dir, role, scope, 1)
    }

    pub async fn send_as(&self, token: &str, method: reqwest::Method, path: &str, body: Option<&serde_json::Value>) -> reqwest::Response {
        let mut request = self.client.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.expect("request reaches the host")
    }

    /// The host process's resident memory now, in bytes (Linux `/proc`).
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok()).unwrap_or(0) * 1024
    }

    /// The host's log so far (for assertions and for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("host.log")).unwrap_or_default()
    }

    /// Kills the process (no graceful shutdown: what was acknowledged must already be durable).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads a problem+json response, checking the content type.
pub async fn problem(response: reqwest::Response) -> serde_json::Value {
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert_eq!(content_type, "application/problem+json", "expected a problem+json response");
    response.json().await.expect("problem body is JSON")
}

/// Mints a token with the secret in `data_dir` through the CLI; `ttl_hours` may be negative
/// (an expired token).
pub fn mint(data_dir: &Path, role: &str, scope: Option<&str>, ttl_hours: i64) -> String {
    let mut command = Command::new(binary());
    command.args(["token", "mint", "--role", role, "--sub", &format!("test-{role}"), &format!("--ttl-hours={ttl_hours}"), "--data-dir"]);
    command.arg(data_dir);
    match (role, scope) {
        ("vendor", Some(vendor)) => {
            command.args(["--vendor", vendor]);
        }
        (_, Some(code)) => {
            command.args(["--lg-code", code]);
        }
        _ => {}
    }
    let output = command.output().expect("nukisashi token mint runs");
    assert!(output.status.success(), "token mint failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("token is text").trim().to_string()
}

/// Publishes `plugins/{name}` as vendor `nukisashi` (registered on first use) with the
/// module's own manifest, signed through the CLI, and approves it as the operator.
pub async fn publish_plugin(host: &Host, dir: &Path, name: &str) {
    let key = dir.join("nukisashi-vendor.key");
    let operator = host.token("operator", None);
    if !key.exists() {
        let out = Command::new(binary()).args(["vendor", "keygen", "--out"]).arg(&key).output().expect("keygen runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let public = String::from_utf8(out.stdout).expect("text");
        // Kept beside the key so that another host can register the same vendor.
        std::fs::write(key.with_extension("pub"), public.trim()).unwrap();
        let body = serde_json::json!({"id": "nukisashi", "name": "抜き差し", "public_key": public.trim()});
        let r = host.send_as(&operator, reqwest::Method::POST, "/api/v1/vendors", Some(&body)).await;
        assert_eq!(r.status(), 201);
    }
    let plugin = workspace_root().join("plugins").join(name);
    let out = Command::new(binary())
        .args(["module", "publish", "--key"])
        .arg(&key)
        .arg("--manifest")
        .arg(plugin.join("manifest.toml"))
        .arg("--component")
        .arg(module(name))
        .args(["--server", &host.base])
        .envs(host.ca.iter().map(|ca| ("NUKISASHI_CA_CERT", ca)))
        .env("NUKISASHI_TOKEN", host.token("vendor", Some("nukisashi")))
        .output()
        .expect("publish runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains(": pending"), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let version = stdout.split_whitespace().nth(2).expect("published <id> <version>: pending").trim_end_matches(':').to_string();
    let path = format!("/api/v1/modules/{name}/versions/{version}/approve");
    let r = host.send_as(&operator, reqwest::Method::POST, &path, Some(&serde_json::json!({"reason": "審査済み"}))).await;
    assert_eq!(r.status(), 200);
}

/// Subscribes `code` to `module` as its admin, with grants and config.
pub async fn subscribe(host: &Host, code: &str, module: &str, grants: &[&str], config: serde_json::Value) -> reqwest::Response {
    let admin = host.token("admin", Some(code));
    let body = serde_json::json!({"grants": grants, "config": config});
    host.send_as(&admin, reqwest::Method::PUT, &format!("/api/v1/municipalities/{code}/subscriptions/{module}"), Some(&body)).await
}

impl Host {
    /// Sends a request (with an optional bearer token and JSON body) and returns the status
    /// and the body as JSON (or as a JSON string when it is not JSON).
    pub async fn call(&self, token: Option<&str>, method: reqwest::Method, path: &str, body: Option<serde_json::Value>) -> (u16, serde_json::Value) {
        let mut request = self.client.request(method, self.url(path));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        if let Some(b) = body {
            request = request.json(&b);
        }
        let response = request.send().await.expect("request reaches the host");
        let status = response.status().as_u16();
        let text = response.text().await.expect("a body");
        (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
    }
}

/// The linkage test fixture installed as file plugin `id` (with a manifest requesting
/// `capabilities`) under `dir/plugins`; returns the component's path.
pub fn linkage_plugin(dir: &Path, id: &str, capabilities: &[&str]) -> PathBuf {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let wasm = plugins.join(format!("{}.wasm", id.replace('-', "_")));
    std::fs::copy(module("linkage-fixture"), &wasm).unwrap();
    let caps: Vec<String> = capabilities.iter().map(|c| format!("\"{c}\"")).collect();
    std::fs::write(
        wasm.with_extension("toml"),
        format!(
            "id = \"{id}\"\nversion = \"0.1.0\"\nvendor = \"local\"\ncategory = \"test\"\nname = {{ ja = \"連携\", en = \"Linkage\" }}\n\
             description = \"linkage fixture\"\ncapabilities = [{}]\nwit_major = 1\nroutes = [{{ path = \"/\", auth = \"public\" }}]\n",
            caps.join(", ")
        ),
    )
    .unwrap();
    wasm
}

/// Copies a component built by `cargo xtask test` to `dir/plugins/{id}.wasm` with `manifest`
/// (TOML) beside it, for loading as a file plugin; returns the component's new path.
pub fn staged_plugin(dir: &Path, component: &str, id: &str, manifest: &str) -> PathBuf {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let wasm = plugins.join(format!("{id}.wasm"));
    std::fs::copy(module(component), &wasm).unwrap();
    std::fs::write(wasm.with_extension("toml"), manifest).unwrap();
    wasm
}

/// A business module from `plugins/{name}` with its own manifest, staged as a file plugin.
pub fn business_plugin(dir: &Path, name: &str) -> PathBuf {
    let manifest = std::fs::read_to_string(workspace_root().join("plugins").join(name).join("manifest.toml")).unwrap();
    staged_plugin(dir, name, name, &manifest)
}

/// Runs the CLI against `host` with `token`.
pub fn cli(host: &Host, token: &str, args: &[&str]) -> std::process::Output {
    Command::new(binary()).args(args).args(["--server", &host.base]).env("NUKISASHI_TOKEN", token).output().unwrap()
}

/// The CLI's output, which must be a success.
pub fn ok(output: std::process::Output) -> String {
    assert!(output.status.success(), "CLI failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// A guestbook manifest for module `id` at `version` of `vendor` (`extra` TOML appended).
pub fn manifest(dir: &Path, vendor: &str, id: &str, version: &str, extra: &str) -> PathBuf {
    let path = dir.join(format!("{id}-{version}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"id = "{id}"
version = "{version}"
vendor = "{vendor}"
category = "電子申請"
name = {{ ja = "ゲストブック", en = "Guestbook" }}
description = "住民の声を集める記帳ページ"
capabilities = ["kv"]
wit_major = 1
routes = [{{ path = "/", auth = "public" }}, {{ path = "/entries", auth = "resident" }}]
{extra}
[config.title]
description = "ページの題名"
default = "ゲストブック"
"#
        ),
    )
    .unwrap();
    path
}

/// A registered vendor with its key file; returns the key path.
pub async fn vendor(host: &Host, dir: &Path, id: &str, auto_approve: bool) -> PathBuf {
    let key = dir.join(format!("{id}.key"));
    let public = ok(Command::new(binary()).args(["vendor", "keygen", "--out"]).arg(&key).output().unwrap());
    let operator = host.token("operator", None);
    let r = host
        .send_as(&operator, reqwest::Method::POST, "/api/v1/vendors", Some(&serde_json::json!({"id": id, "name": format!("{id} 株式会社"), "public_key": public.trim(), "auto_approve": auto_approve})))
        .await;
    assert_eq!(r.status(), 201);
    key
}

/// Publishes a signed version through the CLI.
pub fn publish(host: &Host, vendor: &str, key: &Path, manifest: &Path, component: &Path) -> std::process::Output {
    let token = host.token("vendor", Some(vendor));
    let mut args = vec!["module".to_string(), "publish".into(), "--key".into(), key.display().to_string()];
    args.extend(["--manifest".into(), manifest.display().to_string(), "--component".into(), component.display().to_string()]);
    cli(host, &token, &args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// A response read off the wire by [`raw_request`].
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Header names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Sends one HTTP/1.1 request with exactly this request target and `Host`, byte for byte
/// (an HTTP client library would normalise `.`, `..` and some escapes away before sending),
/// and reads the whole response.
pub async fn raw_request(port: u16, method: &str, target: &str, host: &str, headers: &[(&str, &str)], body: &[u8]) -> RawResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("the host accepts connections");
    let mut head = format!("{method} {target} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\ncontent-length: {}\r\n", body.len());
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    // The host may answer (and close) before it has read the whole body.
    let _ = stream.write_all(body).await;
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut bytes)).await.expect("the host answers").unwrap();
    let split = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(bytes.len());
    let head = String::from_utf8_lossy(&bytes[..split]).into_owned();
    let body = bytes.get(split + 4..).unwrap_or_default();
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers: Vec<(String, String)> = lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string())).collect();
    let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked { dechunk(body) } else { body.to_vec() };
    RawResponse { status, headers, body: String::from_utf8_lossy(&body).into_owned() }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = body.windows(2).position(|w| w == b"\r\n") {
        let Ok(size) = usize::from_str_radix(String::from_utf8_lossy(&body[..end]).trim(), 16) else { break };
        let rest = &body[end + 2..];
        if size == 0 || rest.len() < size {
            break;
        }
        out.extend_from_slice(&rest[..size]);
        body = rest[size..].strip_prefix(b"\r\n").unwrap_or(&rest[size..]);
    }
    out
}

/// Checks a sandbox probe's report (`tests/fixtures/probe`, `tests/fixtures/probe-python`:
/// one `name: outcome` line per authority tried): every one was tried and denied, outbound
/// HTTP by the host's policy.
pub fn assert_every_attempt_denied(report: &str) {
    let attempts: std::collections::BTreeMap<&str, &str> = report.lines().filter_map(|l| l.split_once(": ")).collect();
    assert_eq!(attempts.keys().copied().collect::<Vec<_>>(), ["dir", "dns", "env", "file", "http", "tcp", "udp"], "{report}");
    for (name, outcome) in &attempts {
        assert!(outcome.starts_with("denied"), "{name} must be denied: {report}");
    }
    assert!(attempts["http"].contains("HttpRequestDenied"), "outbound HTTP is refused by policy: {report}");
}
