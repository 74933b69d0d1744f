//! The lifecycle operations: release, swap, rollback, suspend and resume. Each writes the
//! database in one transaction, with the conditions it depends on checked in that write
//! (approved, not pinned, no downgrade, settings present, the state it expects), then lets
//! the route controller (`plugins::routes`) bring the table up to date. Versions are
//! loaded (from the artifact cache, so no recompile) before anything moves to them and
//! kept in [`VersionCache`].

use crate::replicas::Announcement;
use tracing::Instrument;
use super::LoadedVersion;
use crate::app::App;
use crate::capabilities::Capability;
use crate::catalog::manifest::Manifest;
use crate::store::catalog::{Keeps, Transition, VersionStatus};
use anyhow::{Context, Result};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

/// Loaded versions by (module, version).
#[derive(Default)]
pub struct VersionCache(Mutex<HashMap<(String, String), Arc<LoadedVersion>>>);

impl VersionCache {
    fn get(&self, module: &str, version: &str) -> Option<Arc<LoadedVersion>> {
        self.0.lock().expect("version cache").get(&(module.to_string(), version.to_string())).cloned()
    }

    pub fn insert(&self, loaded: Arc<LoadedVersion>) {
        let key = (loaded.identity.id.clone(), loaded.identity.version.clone());
        self.0.lock().expect("version cache").insert(key, loaded);
    }
}

/// Requested ∩ granted.
pub fn effective_capabilities(manifest: &Manifest, grants: &[String]) -> BTreeSet<Capability> {
    manifest.capabilities.iter().copied().filter(|c| grants.iter().any(|g| g == c.name())).collect()
}

/// The newest approved version of a module, by semantic version.
pub fn latest_approved(versions: &[crate::store::catalog::VersionRecord]) -> Option<String> {
    versions
        .iter()
        .filter(|v| v.status == VersionStatus::Approved)
        .filter_map(|v| semver::Version::parse(&v.version).ok().map(|s| (s, v.version.clone())))
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, v)| v)
}

impl App {
    /// A version ready to route, loading it from the database on first use.
    pub async fn loaded_version(&self, module: &str, version: &str) -> Result<Arc<LoadedVersion>> {
        if let Some(found) = self.versions.get(module, version) {
            return Ok(found);
        }
        let record = self.db.version(module, version).await?.with_context(|| format!("no version {module} {version}"))?;
        let bytes = self.db.component_bytes(&record.digest).await?;
        let loaded = Arc::new(self.runtime.load(Arc::new(record.manifest), bytes).await?);
        self.versions.insert(loaded.clone());
        Ok(loaded)
    }

}

impl App {
    /// Moves the subscribers that follow the latest version (not pinned, active, on an
    /// older version, with every setting `version` requires) to `version`; returns the
    /// municipalities moved. The conditions are checked in the one statement that moves
    /// them.
    pub async fn release(&self, module: &str, version: &str) -> Result<Vec<String>> {
        let target = semver::Version::parse(version).with_context(|| format!("{module} {version} is not a semantic version"))?;
        let older: Vec<String> = self
            .db
            .versions(Some(module))
            .await?
            .into_iter()
            .filter(|v| semver::Version::parse(&v.version).is_ok_and(|s| s < target))
            .map(|v| v.version)
            .collect();
        let loaded = self.loaded_version(module, version).await?;
        let required: Vec<String> = loaded.manifest.config.iter().filter(|(_, f)| f.required && f.default.is_none()).map(|(k, _)| k.clone()).collect();
        let provides: Vec<_> = loaded.manifest.provides.keys().copied().collect();
        let moved = self.db.release_subscriptions(module, version, &older, &required, &Keeps::of(&loaded.manifest, &provides)).await?;
        self.converge().await?;
        self.metrics.swap(module, "release");
        self.announce(Announcement::Routes { module: module.to_string() }).await;
        tracing::info!(module, version, moved = moved.len(), "released");
        Ok(moved)
    }

    /// Moves the given municipalities to `version` (which must be approved when they move)
    /// in one database transaction and one atomic route change; returns those moved.
    pub async fn swap(&self, module: &str, version: &str, lg_codes: &[String]) -> Result<Vec<String>> {
        let span = tracing::info_span!("swap", module, version, municipalities = lg_codes.len());
        async {
            // Load before switching, so the switch itself never waits for a load.
            let loaded = self.loaded_version(module, version).await?;
            let provides: Vec<_> = loaded.manifest.provides.keys().copied().collect();
            let moved = self.db.move_subscriptions(module, lg_codes, version, &Keeps::of(&loaded.manifest, &provides)).await?;
            self.converge().await?;
            self.metrics.swap(module, "swap");
            self.announce(Announcement::Routes { module: module.to_string() }).await;
            tracing::info!(moved = moved.len(), "swapped");
            Ok(moved)
        }
        .instrument(span)
        .await
    }

    /// Returns the given municipalities to the version they ran before (if it is still
    /// approved); no recompile (the previous version is still loaded or in the artifact
    /// cache). Returns those rolled back.
    pub async fn rollback(&self, module: &str, lg_codes: &[String]) -> Result<Vec<String>> {
        let span = tracing::info_span!("rollback", module, municipalities = lg_codes.len());
        async {
            for s in self.db.subscriptions(None, Some(module)).await? {
                if let Some(previous) = s.previous_version.filter(|_| lg_codes.contains(&s.lg_code)) {
                    self.loaded_version(module, &previous).await?;
                }
            }
            let rolled = self.db.rollback_subscriptions(module, lg_codes).await?;
            self.converge().await?;
            self.metrics.swap(module, "rollback");
            self.announce(Announcement::Routes { module: module.to_string() }).await;
            tracing::info!(rolled = rolled.len(), "rolled back");
            Ok(rolled)
        }
        .instrument(span)
        .await
    }

    /// Operator kill switch (`Some(reason)`), or resume (`None`): only from the other
    /// state. Requests already running finish on their instance; a delivery under way stops
    /// before its next item.
    pub async fn suspend(&self, module: &str, reason: Option<&str>) -> Result<Transition> {
        let transition = self.db.set_module_suspension(module, reason).await?;
        if transition == Transition::Done {
            self.converge().await?;
            self.metrics.swap(module, if reason.is_none() { "resume" } else { "suspend" });
            self.announce(Announcement::Routes { module: module.to_string() }).await;
            if reason.is_none() {
                tracing::info!(module, "resumed");
            } else {
                tracing::warn!(module, reason, "suspended everywhere");
            }
        }
        Ok(transition)
    }
}
