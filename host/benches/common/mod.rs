//! What the benchmarks share: where the built modules are, and writing a section of
//! docs/BENCHMARKS.md between `<!-- bench:{name}:start -->` and `… :end -->` markers.

#![allow(dead_code)] // each bench uses part of what is shared

pub mod chart;
pub mod load;
pub mod process;

use std::path::PathBuf;

/// A guest module built by `cargo xtask bench`, e.g. `module_file("guestbook")`.
pub fn module_file(name: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let path = root.join("target/wasm32-wasip2/guest").join(format!("{name}.wasm"));
    assert!(path.exists(), "{} missing: run `cargo xtask bench`", path.display());
    path
}

/// Replaces the `name` section of docs/BENCHMARKS.md with `report` (appends it, under
/// `heading`, the first time).
pub fn write_into_benchmarks_md(name: &str, heading: &str, report: &str) -> anyhow::Result<()> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/BENCHMARKS.md");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let (start, end) = (format!("<!-- bench:{name}:start -->"), format!("<!-- bench:{name}:end -->"));
    let block = format!("{start}\n{report}\n{end}");
    let updated = match (text.find(&start), text.find(&end)) {
        (Some(s), Some(e)) => format!("{}{block}{}", &text[..s], &text[e + end.len()..]),
        _ => format!("{text}\n## {heading}\n\n{block}\n"),
    };
    std::fs::write(&path, updated)?;
    Ok(())
}
