//! The project's task runner: `cargo xtask <task>`.
//!
//! - `demo [ARGS…]`   build every module and start the host with demo data (SQLite)
//! - `test`           build every module, start a throwaway PostgreSQL, run all tests
//! - `bench`          build everything and run the benchmarks (writes docs/BENCHMARKS.md)
//! - `modules`        build every guest module (wasm32-wasip2) only
//!
//! Everything host-side uses the release profile, so wasmtime compiles once for the demo,
//! the tests and the benchmarks.

mod postgres;

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Guest packages, built for wasm32-wasip2 with the `guest` profile.
const GUEST_PACKAGES: &[&str] = &["guestbook", "fault-fixture", "bad-import-fixture", "large-fixture", "linkage-fixture", "furusato-tax", "child-allowance", "e-application"];

/// Host-side packages whose tests make up the test suite.
const TEST_PACKAGES: &[&str] = &["nukisashi", "nukisashi-sdk", "nukisashi-e2e", "furusato-tax", "child-allowance", "e-application"];

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
        _ => bail!("usage: cargo xtask <demo|test|bench|modules> [args…]"),
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
    let mut c = cargo();
    c.args(["build", "--target", "wasm32-wasip2", "--profile", "guest"]);
    for p in GUEST_PACKAGES {
        c.args(["-p", p]);
    }
    status(c).context("building the modules failed (is the target installed? `rustup target add wasm32-wasip2`)")
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
    // The end-to-end tests start the real binary.
    status({
        let mut c = cargo();
        c.args(["build", "--release", "-p", "nukisashi", "--bin", "nukisashi"]);
        c
    })?;
    let _postgres = match std::env::var("NUKISASHI_TEST_DATABASE_URL") {
        Ok(_) => None,
        Err(_) => {
            let server = postgres::Throwaway::start(&root().join("target/pg-test"))?;
            // SAFETY: single-threaded at this point; children inherit the variable.
            unsafe { std::env::set_var("NUKISASHI_TEST_DATABASE_URL", server.url()) };
            Some(server)
        }
    };
    let mut c = cargo();
    c.args(["test", "--release"]);
    for p in TEST_PACKAGES {
        c.args(["-p", p]);
    }
    c.args(extra);
    // Panics in tests are expected assertions; a backtrace for each only buries the message.
    if std::env::var_os("RUST_BACKTRACE").is_none_or(|v| v == "1") {
        c.env("RUST_BACKTRACE", "0");
    }
    status(c)
}

fn bench(extra: &[String]) -> Result<()> {
    build_modules()?;
    let mut c = cargo();
    c.args(["bench", "-p", "nukisashi", "--bench", "gateway", "--"]);
    c.args(extra);
    c.env("RUST_BACKTRACE", "0");
    status(c)?;
    // Partial runs (`quick`, `trivial`) are for the gateway only.
    if extra.is_empty() {
        for bench in ["linkage", "density"] {
            let mut c = cargo();
            c.args(["bench", "-p", "nukisashi", "--bench", bench]);
            c.env("RUST_BACKTRACE", "0");
            status(c)?;
        }
    }
    Ok(())
}
