//! The project's task runner: `cargo xtask <task>`.
//!
//! - `demo [ARGS…]`   build every module and start the host with demo data (SQLite)
//! - `test`           build every module, start a throwaway PostgreSQL, run all tests
//! - `bench [NAME]`   build everything and run every benchmark (or one), against wasmtime
//!                    serve, native axum and a throwaway PostgreSQL (writes docs/BENCHMARKS.md)
//! - `modules`        build every guest module (wasm32-wasip2) only
//! - `polyglot`       build the host and the Python and JavaScript examples
//!                    (componentize-py, componentize-js; installed into target/tools once)
//!
//! Everything host-side uses the release profile, so wasmtime compiles once for the demo,
//! the tests and the benchmarks.

mod postgres;

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Guest packages, built for wasm32-wasip2 with the `guest` profile.
const GUEST_PACKAGES: &[&str] = &["guestbook", "fault-fixture", "bad-import-fixture", "large-fixture", "linkage-fixture", "plain-http-fixture", "hostile-fixture", "probe-fixture", "standard-kv-fixture", "receipts-unit-fixture", "arrears-unit-fixture", "furusato-tax", "child-allowance", "e-application"];

/// Host-side packages whose tests make up the test suite.
const TEST_PACKAGES: &[&str] = &["nukisashi", "nukisashi-sdk", "nukisashi-e2e", "guestbook", "furusato-tax", "child-allowance", "e-application"];

fn main() {
    if let Err(e) = run() {
        eprintln!("xtask: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let task = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    match task.as_str() {
        "modules" => build_modules(),
        "demo" => demo(&rest),
        "test" => test(&rest),
        "bench" => bench(&rest),
        "polyglot" => {
            build_host_and_tests()?;
            build_polyglot_examples()
        }
        _ => bail!("usage: cargo xtask <demo|test|bench|modules|polyglot> [args…]"),
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn status(mut command: Command) -> Result<()> {
    let shown = format!("{command:?}");
    let status = command.status().with_context(|| format!("cannot run {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

fn build_modules() -> Result<()> {
    ensure_wasm_target()?;
    let mut c = cargo();
    c.args(["build", "--target", "wasm32-wasip2", "--profile", "guest"]);
    for p in GUEST_PACKAGES {
        c.args(["-p", p]);
    }
    status(c).context("building the modules failed")
}

/// Modules compile for wasm32-wasip2: add the target through rustup when it is missing, or
/// say what to install when the toolchain did not come from rustup.
fn ensure_wasm_target() -> Result<()> {
    let Ok(listed) = Command::new("rustup").args(["target", "list", "--installed"]).output() else {
        eprintln!("xtask: rustup not found; the wasm32-wasip2 standard library must be installed for this toolchain");
        return Ok(());
    };
    if String::from_utf8_lossy(&listed.stdout).lines().any(|t| t.trim() == "wasm32-wasip2") {
        return Ok(());
    }
    eprintln!("xtask: adding the wasm32-wasip2 target (modules compile to WebAssembly components)");
    let mut add = Command::new("rustup");
    add.args(["target", "add", "wasm32-wasip2"]);
    status(add).context("cannot add the wasm32-wasip2 target; run `rustup target add wasm32-wasip2` and try again")
}

fn module_path(name: &str) -> PathBuf {
    root().join("target/wasm32-wasip2/guest").join(format!("{name}.wasm"))
}

/// The business modules the demo serves, each with its manifest beside it.
const DEMO_PLUGINS: &[&str] = &["furusato-tax", "e-application", "child-allowance"];

fn demo(extra: &[String]) -> Result<()> {
    build_modules()?;
    let staged = root().join("target/demo-plugins");
    std::fs::create_dir_all(&staged)?;
    for name in DEMO_PLUGINS {
        std::fs::copy(module_path(&name.replace('-', "_")), staged.join(format!("{name}.wasm")))?;
        std::fs::copy(root().join("plugins").join(name).join("manifest.toml"), staged.join(format!("{name}.toml")))?;
    }
    let mut c = cargo();
    c.args(["run", "--release", "-p", "nukisashi", "--", "serve", "--demo", "--plugin"]);
    c.arg(module_path("guestbook"));
    c.arg("--plugins").arg(&staged);
    c.args(extra);
    status(c)
}

fn test(extra: &[String]) -> Result<()> {
    build_modules()?;
    // The end-to-end tests start the real binary. It is built together with the test
    // targets of the same packages so that features unify exactly as in `cargo test`:
    // building `-p nukisashi --bin nukisashi` alone resolves other features for shared
    // dependencies (serde, syn, sqlx…) and compiles wasmtime a second time on a clean machine.
    build_host_and_tests()?;
    let selected: Vec<&String> = extra.windows(2).filter(|w| w[0] == "--test").map(|w| &w[1]).collect();
    // Only the polyglot and vendor-loop tests need the Python and JavaScript toolchains
    // (and PyPI and npm).
    if selected.is_empty() || selected.iter().any(|t| *t == "polyglot" || *t == "vendor_loop") {
        build_polyglot_examples()?;
    }
    let _postgres = throwaway_postgres()?;
    // Only a run that includes the contract test needs schemathesis (and PyPI).
    let schemathesis = if selected.is_empty() || selected.iter().any(|t| *t == "contract") { Some(install_schemathesis()?) } else { None };
    // Only the page tests need axe-core (and the npm registry).
    let axe = if selected.is_empty() || selected.iter().any(|t| *t == "pages") { Some(install_axe_core()?) } else { None };
    let mut c = cargo();
    c.args(["test", "--release"]);
    select_test_packages(&mut c);
    c.args(extra);
    if let Some(program) = schemathesis {
        c.env("NUKISASHI_SCHEMATHESIS", program);
    }
    if let Some(script) = axe {
        c.env("NUKISASHI_AXE_JS", script);
    }
    // Panics in tests are expected assertions; a backtrace for each only buries the message.
    if std::env::var_os("RUST_BACKTRACE").is_none_or(|v| v == "1") {
        c.env("RUST_BACKTRACE", "0");
    }
    status(c)
}

/// The host binary and the test targets, built together so that features unify exactly as
/// in `cargo test`.
fn build_host_and_tests() -> Result<()> {
    status({
        let mut c = cargo();
        c.args(["build", "--release", "--bins", "--tests"]);
        select_test_packages(&mut c);
        c
    })
}

fn select_test_packages(c: &mut Command) {
    for p in TEST_PACKAGES {
        c.args(["-p", p]);
    }
}

/// Every benchmark, in the order `cargo xtask bench` runs them.
const BENCHES: &[&str] = &["gateway", "peers", "linkage", "density", "replicas", "fairness", "languages", "links"];

/// `bench` runs them all; `bench NAME [ARGS…]` one of them (e.g. `bench gateway quick`).
fn bench(extra: &[String]) -> Result<()> {
    let selected: Vec<&str> = match extra.first() {
        None => BENCHES.to_vec(),
        Some(name) if BENCHES.contains(&name.as_str()) => vec![name.as_str()],
        Some(name) => bail!("unknown benchmark {name:?}: choose one of {}", BENCHES.join(", ")),
    };
    build_modules()?;
    if selected.contains(&"peers") {
        install_wasmtime_cli()?;
    }
    if selected.contains(&"languages") {
        // The Python and JavaScript guestbooks; `nukisashi wit` restates the contract for JS
        // (the binary is built as the tests build it, so wasmtime compiles once).
        build_host_and_tests()?;
        build_polyglot_examples()?;
    }
    let _postgres = if selected.contains(&"replicas") { throwaway_postgres()? } else { None };
    for bench in selected {
        let mut c = cargo();
        // The same packages as the tests: their features unify the same way, so the
        // dependencies the tests compiled are reused.
        c.args(["bench", "--bench", bench]);
        select_test_packages(&mut c);
        c.arg("--");
        c.args(extra.iter().skip(1));
        c.env("RUST_BACKTRACE", "0");
        status(c)?;
    }
    Ok(())
}

/// Version of wasmtime-cli the peer benchmark compares against: the host's wasmtime.
const WASMTIME_CLI: &str = "48.0.8";

/// Installs `wasmtime` (only what `wasmtime serve` needs) into target/tools once.
fn install_wasmtime_cli() -> Result<()> {
    let tools = root().join("target/tools");
    let installed = Command::new(tools.join("bin/wasmtime")).arg("--version").output();
    if installed.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(WASMTIME_CLI)) {
        return Ok(());
    }
    eprintln!("xtask: installing wasmtime-cli {WASMTIME_CLI} into {} for the peer benchmark (once; several minutes)", tools.display());
    let mut c = cargo();
    c.args(["install", "wasmtime-cli", "--version", WASMTIME_CLI, "--locked", "--no-default-features"])
        .args(["--features", "run,serve,wasi-http,component-model,component-model-async,cranelift,pooling-allocator,parallel-compilation,cache"])
        .arg("--root")
        .arg(&tools);
    status(c)
}

/// The schemathesis the contract test runs, pinned so every run checks the same way.
const SCHEMATHESIS: &str = "4.32.5";

/// Installs schemathesis into a virtual environment under target/tools once (it needs
/// Python 3 with `venv`, as Debian's python3-venv has); returns the `st` program.
fn install_schemathesis() -> Result<PathBuf> {
    let venv = root().join("target/tools/schemathesis");
    let program = venv.join("bin/st");
    let installed = Command::new(&program).arg("--version").output();
    if installed.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(SCHEMATHESIS)) {
        return Ok(program);
    }
    eprintln!("xtask: installing schemathesis {SCHEMATHESIS} into {} for the contract test (once)", venv.display());
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let mut c = Command::new(&python);
    c.args(["-m", "venv", "--clear"]).arg(&venv);
    status(c).with_context(|| format!("the contract test needs Python 3 with venv (`{python}`; on Debian: apt-get install python3-venv)"))?;
    let mut c = Command::new(venv.join("bin/pip"));
    c.args(["install", "--quiet", "--disable-pip-version-check", &format!("schemathesis=={SCHEMATHESIS}")]);
    status(c).context("installing schemathesis from PyPI failed")?;
    Ok(program)
}

/// The toolchains the Python and JavaScript examples are built with, pinned.
const COMPONENTIZE_PY: &str = "0.25.1";
const COMPONENTIZE_JS: &str = "0.23.0";
/// The WASI release componentize-js builds against (its runtime exports
/// `wasi:http/incoming-handler` at this version).
const COMPONENTIZE_JS_WASI: &str = "0.2.10";

/// Builds `examples/guestbook-python`, `examples/guestbook-js` and the Python sandbox probe
/// into target/polyglot, as a vendor would: componentize-py against `wit/`, componentize-js
/// against the WIT that `nukisashi wit --wasi 0.2.10` writes.
fn build_polyglot_examples() -> Result<()> {
    let out = root().join("target/polyglot");
    std::fs::create_dir_all(&out)?;
    let python = install_componentize_py()?;
    // The guestbook against the platform's world; the sandbox probe against the standard
    // wasi:http proxy world, as a module written for any wasi:http host.
    for (dir, world, name) in [("examples/guestbook-python", "nukisashi:platform/module", "guestbook-python"), ("tests/fixtures/probe-python", "wasi:http/proxy@0.2.12", "probe-python")] {
        let mut c = Command::new(&python);
        c.current_dir(root().join(dir));
        c.args(["-d"]).arg(root().join("wit")).args(["-w", world, "componentize", "app", "-o"]).arg(out.join(format!("{name}.wasm")));
        status(c).with_context(|| format!("componentize-py could not build {dir}"))?;
    }

    let js = install_componentize_js()?;
    let wit = out.join(format!("wit-{COMPONENTIZE_JS_WASI}"));
    let mut c = Command::new(root().join("target/release/nukisashi"));
    c.args(["wit", "--wasi", COMPONENTIZE_JS_WASI, "--out"]).arg(&wit);
    status(c)?;
    let mut c = Command::new(&js);
    c.arg(root().join("examples/guestbook-js/app.js")).arg("--wit").arg(&wit).args(["-n", "nukisashi:platform/module", "-o"]).arg(out.join("guestbook-js.wasm"));
    status(c).context("componentize-js could not build examples/guestbook-js")?;
    Ok(())
}

/// Installs componentize-py from PyPI into a virtual environment under target/tools once;
/// returns the program.
fn install_componentize_py() -> Result<PathBuf> {
    let venv = root().join(format!("target/tools/componentize-py-{COMPONENTIZE_PY}"));
    let program = venv.join("bin/componentize-py");
    if program.exists() {
        return Ok(program);
    }
    eprintln!("xtask: installing componentize-py {COMPONENTIZE_PY} into {} for the Python example (once)", venv.display());
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let mut c = Command::new(&python);
    c.args(["-m", "venv", "--clear"]).arg(&venv);
    status(c).with_context(|| format!("the Python example needs Python 3 with venv (`{python}`; on Debian: apt-get install python3-venv)"))?;
    let mut c = Command::new(venv.join("bin/pip"));
    c.args(["install", "--quiet", "--disable-pip-version-check", &format!("componentize-py=={COMPONENTIZE_PY}")]);
    status(c).context("installing componentize-py from PyPI failed")?;
    Ok(program)
}

/// Installs componentize-js from npm under target/tools once; returns the program.
fn install_componentize_js() -> Result<PathBuf> {
    let dir = root().join(format!("target/tools/componentize-js-{COMPONENTIZE_JS}"));
    let program = dir.join("node_modules/.bin/componentize-js");
    if program.exists() {
        return Ok(program);
    }
    eprintln!("xtask: installing componentize-js {COMPONENTIZE_JS} into {} for the JavaScript example (once)", dir.display());
    std::fs::create_dir_all(&dir)?;
    let mut c = Command::new("npm");
    c.args(["install", "--prefix"]).arg(&dir).args(["--no-audit", "--no-fund", "--loglevel=error", &format!("@bytecodealliance/componentize-js@{COMPONENTIZE_JS}")]);
    status(c).context("installing componentize-js from npm failed (the JavaScript example needs Node.js and npm: on Debian, apt-get install nodejs npm)")?;
    Ok(program)
}

/// The axe-core the page tests check accessibility with, pinned with npm's integrity hash.
const AXE_CORE: &str = "4.14.1";
const AXE_CORE_SHA512: &str = "FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ==";

/// Fetches axe-core's `axe.min.js` from the npm registry into target/tools once (curl, tar
/// and openssl; no Node needed) and checks the package against its integrity hash; returns
/// the script's path.
fn install_axe_core() -> Result<PathBuf> {
    let dir = root().join(format!("target/tools/axe-core-{AXE_CORE}"));
    let script = dir.join("package/axe.min.js");
    if script.exists() {
        return Ok(script);
    }
    eprintln!("xtask: fetching axe-core {AXE_CORE} into {} for the page tests (once)", dir.display());
    std::fs::create_dir_all(&dir)?;
    let tarball = dir.join("axe-core.tgz");
    let mut c = Command::new("curl");
    c.args(["--fail", "--silent", "--show-error", "--location", "--output"]).arg(&tarball).arg(format!("https://registry.npmjs.org/axe-core/-/axe-core-{AXE_CORE}.tgz"));
    status(c).context("fetching axe-core from registry.npmjs.org failed (the page tests need it; is curl installed?)")?;
    let digest = Command::new("openssl").args(["dgst", "-sha512", "-binary"]).arg(&tarball).output().context("openssl is needed to check axe-core")?;
    let mut c = Command::new("base64");
    c.arg("-w0").stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped());
    let mut child = c.spawn()?;
    std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), &digest.stdout)?;
    let encoded = String::from_utf8(child.wait_with_output()?.stdout)?;
    if encoded.trim() != AXE_CORE_SHA512 {
        std::fs::remove_file(&tarball)?;
        bail!("the axe-core {AXE_CORE} package from the registry does not match its pinned integrity hash");
    }
    let mut c = Command::new("tar");
    c.arg("-xzf").arg(&tarball).arg("-C").arg(&dir).arg("package/axe.min.js");
    status(c)?;
    Ok(script)
}

/// A throwaway PostgreSQL for the tests and benchmarks, unless NUKISASHI_TEST_DATABASE_URL
/// already names a server; children inherit the variable. Stopped when dropped.
fn throwaway_postgres() -> Result<Option<postgres::Throwaway>> {
    if std::env::var_os("NUKISASHI_TEST_DATABASE_URL").is_some() {
        return Ok(None);
    }
    let server = postgres::Throwaway::start(&root().join("target/pg-test"))?;
    // SAFETY: single-threaded at this point.
    unsafe { std::env::set_var("NUKISASHI_TEST_DATABASE_URL", server.url()) };
    Ok(Some(server))
}
