//! `nukisashi module check`: every step of admission that needs no server and no signature
//! (sizes, the manifest against its schema, the component's header, compilation, pool
//! limits, imports, world, and a health-check instantiation), run on the vendor's machine
//! before signing, with every problem reported at once.

use super::admission::{AdmissionError, load_and_health_check, size_problems};
use crate::catalog::manifest::Manifest;
use crate::settings::Settings;
use anyhow::{Context, Result};
use std::sync::Arc;

/// One line of the report: a step that passed, or a problem and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    Passed(String),
    Problem(String),
}

/// What `check` found, in the order admission would find it.
#[derive(Debug, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn problems(&self) -> impl Iterator<Item = &str> {
        self.findings.iter().filter_map(|f| match f {
            Finding::Problem(p) => Some(p.as_str()),
            Finding::Passed(_) => None,
        })
    }

    pub fn is_clean(&self) -> bool {
        self.problems().next().is_none()
    }

    fn passed(&mut self, what: impl Into<String>) {
        self.findings.push(Finding::Passed(what.into()));
    }

    fn problem(&mut self, what: impl Into<String>) {
        self.findings.push(Finding::Problem(what.into()));
    }
}

/// Checks a manifest, a component, or both, with `settings`' limits (an operator's
/// settings file gives the same answer as their host). Compiles in a throwaway data
/// directory; nothing is kept.
pub async fn check(manifest: Option<&[u8]>, component: Option<&[u8]>, settings: &Settings) -> Result<Report> {
    let mut report = Report::default();
    for too_large in size_problems(manifest.map_or(0, <[u8]>::len), component.map_or(0, <[u8]>::len)) {
        report.problem(too_large.to_string());
    }
    let parsed = match manifest {
        None => None,
        Some(bytes) => match Manifest::parse(bytes) {
            Ok(m) => {
                report.passed(format!("manifest: module `{}` {} by vendor `{}`, {} route(s), capabilities [{}]", m.id, m.version, m.vendor, m.routes.len(), capability_list(&m)));
                Some(m)
            }
            Err(e) => {
                report.problem(format!("manifest: {e} (the schema: `nukisashi module schema`)"));
                None
            }
        },
    };
    let Some(component) = component else {
        return Ok(report);
    };
    let scratch = tempfile::tempdir().context("cannot create a scratch directory for compiling")?;
    let scratch_settings = Settings { data_dir: scratch.path().to_path_buf(), database_url: None, plugins: Vec::new(), plugins_dir: None, ..settings.clone() };
    let app = crate::server::open(&scratch_settings).await?;
    let manifest = Arc::new(parsed.unwrap_or_else(|| Manifest::development("check")));
    let started = std::time::Instant::now();
    match load_and_health_check(&app, manifest, component.to_vec()).await {
        Ok(_) => report.passed(format!(
            "component: {} bytes, compiles, imports only what the host provides, fits the nukisashi:platform/module world, starts within the limits ({} ms)",
            component.len(),
            started.elapsed().as_millis()
        )),
        Err(AdmissionError::Load(e)) => report.problem(format!("component: {e}")),
        Err(e) => report.problem(format!("component: {e}")),
    }
    Ok(report)
}

fn capability_list(manifest: &Manifest) -> String {
    manifest.capabilities.iter().map(|c| c.name()).collect::<Vec<_>>().join(", ")
}
