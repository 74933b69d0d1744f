//! The platform's WIT as vendors' toolchains need it (`nukisashi wit`): the package in
//! `wit/` with its WASI dependencies, optionally restated at an earlier WASI 0.2 release.
//!
//! Toolchains pin the WASI version they were built with (componentize-js 0.23 exports
//! `wasi:http/incoming-handler@0.2.10`), and a world that names a newer one does not
//! resolve for them. Every 0.2.x is the same interface family and the host satisfies any of
//! them, so the files are rewritten to name the version the toolchain knows; what that
//! version did not have yet (`@since` a later release) is left out of it.

use anyhow::{Context, Result, bail};
use std::path::Path;

/// The WASI release the published WIT names.
pub const WASI_VERSION: &str = "0.2.12";

/// The WIT files, as `wit/` has them (path under the output directory, text).
const FILES: &[(&str, &str)] = &[
    ("platform.wit", include_str!("../../wit/platform.wit")),
    ("deps/cli.wit", include_str!("../../wit/deps/cli.wit")),
    ("deps/clocks.wit", include_str!("../../wit/deps/clocks.wit")),
    ("deps/filesystem.wit", include_str!("../../wit/deps/filesystem.wit")),
    ("deps/http.wit", include_str!("../../wit/deps/http.wit")),
    ("deps/io.wit", include_str!("../../wit/deps/io.wit")),
    ("deps/random.wit", include_str!("../../wit/deps/random.wit")),
    ("deps/sockets.wit", include_str!("../../wit/deps/sockets.wit")),
    ("deps/keyvalue.wit", include_str!("../../wit/deps/keyvalue.wit")),
    ("deps/config.wit", include_str!("../../wit/deps/config.wit")),
];

/// The minor-patch number of a `0.2.N` version the host can satisfy.
fn patch_of(version: &str) -> Result<u32> {
    let published: u32 = WASI_VERSION.rsplit('.').next().and_then(|p| p.parse().ok()).expect("0.2.N");
    match version.strip_prefix("0.2.").and_then(|p| p.parse::<u32>().ok()) {
        Some(patch) if patch <= published => Ok(patch),
        _ => bail!("--wasi takes a WASI 0.2 release from 0.2.0 to {WASI_VERSION} (the host runs modules built against any of them), not `{version}`"),
    }
}

/// One file restated at WASI `0.2.{patch}`.
fn restate(text: &str, patch: u32) -> String {
    let target = format!("0.2.{patch}");
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let trimmed = line.trim_start();
        let gate_version = ["@since(version = ", "@deprecated(version = "]
            .iter()
            .find_map(|gate| trimmed.strip_prefix(gate).map(|rest| (*gate, rest.trim_end_matches(')'))));
        let line = match gate_version {
            Some((gate, version)) if version.strip_prefix("0.2.").and_then(|p| p.parse::<u32>().ok()).is_some_and(|p| p > patch) => {
                let indent = &line[..line.len() - trimmed.len()];
                if gate.starts_with("@since") {
                    // Not in that release: behind a feature no toolchain turns on.
                    format!("{indent}@unstable(feature = wasi-since-{})", version.replace('.', "-"))
                } else {
                    // Not yet deprecated in that release.
                    continue;
                }
            }
            _ => line.replace(&format!("@{WASI_VERSION}"), &format!("@{target}")),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Writes the WIT into `out` (`platform.wit` and `deps/`), at WASI `wasi` if given.
pub fn write(out: &Path, wasi: Option<&str>) -> Result<Vec<String>> {
    let patch = wasi.map(patch_of).transpose()?;
    let mut written = Vec::new();
    for (name, text) in FILES {
        let path = out.join(name);
        std::fs::create_dir_all(path.parent().expect("a file in a directory")).with_context(|| format!("cannot create {}", out.display()))?;
        let text = match patch {
            Some(patch) => restate(text, patch),
            None => text.to_string(),
        };
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path.display().to_string());
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restates_every_version_and_leaves_out_what_came_later() {
        let http = FILES.iter().find(|(n, _)| *n == "deps/http.wit").unwrap().1;
        let older = restate(http, 10);
        assert!(older.contains("package wasi:http@0.2.10;") && !older.contains("0.2.12"), "{}", &older[..200]);
        let cli = restate(FILES.iter().find(|(n, _)| *n == "deps/cli.wit").unwrap().1, 10);
        assert!(cli.contains("@unstable(feature = wasi-since-0-2-12)") && !cli.contains("@since(version = 0.2.12)"));
        assert!(cli.contains("@since(version = 0.2.0)"), "what 0.2.10 had stays");
        let platform = restate(FILES[0].1, 10);
        assert!(platform.contains("export wasi:http/incoming-handler@0.2.10;"));
        assert!(!restate(http, 1).contains("@deprecated(version = 0.2.2)"), "not yet deprecated in 0.2.1");
    }

    #[test]
    fn only_releases_the_host_can_satisfy() {
        assert_eq!(patch_of("0.2.10").unwrap(), 10);
        for bad in ["0.3.0", "0.2.13", "0.2", "latest", "0.2.x"] {
            assert!(patch_of(bad).is_err(), "{bad}");
        }
    }
}
