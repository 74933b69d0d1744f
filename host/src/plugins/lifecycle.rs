//! The lifecycle: turning catalog state (subscriptions, pins, suspensions) into routes.
//!
//! The database is the truth; the live table is derived from it. Every operation writes
//! the database first, then recomputes the routes of the municipalities it touched and
//! applies them in one atomic swap. Versions are loaded (from the artifact cache, so no
//! recompile) the first time a route needs them and kept in [`VersionCache`].

use crate::replicas::Announcement;
use tracing::Instrument;
use super::LoadedVersion;
use super::live::{Change, Routed};
use crate::app::App;
use crate::capabilities::Capability;
use crate::catalog::manifest::Manifest;
use crate::lgcode::LgCode;
use crate::store::catalog::{Subscription, VersionStatus};
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

    async fn route_for(&self, subscription: &Subscription, suspended: bool) -> Result<Change> {
        let code = LgCode::parse(&subscription.lg_code)?;
        if !subscription.active || suspended {
            return Ok(Change::Unset(subscription.module_id.clone(), code));
        }
        let version = self.loaded_version(&subscription.module_id, &subscription.version).await?;
        let capabilities = effective_capabilities(&version.manifest, &subscription.grants);
        Ok(Change::Set(code, Arc::new(Routed { version, capabilities })))
    }

    /// Recomputes the routes of `module` for the given municipalities (all its
    /// subscribers when `None`) from the database, and applies them atomically.
    pub async fn reroute(&self, module: &str, lg_codes: Option<&[String]>) -> Result<()> {
        let suspended = self.db.module_suspension(module).await?.is_some();
        let mut changes = Vec::new();
        for subscription in self.db.subscriptions(None, Some(module)).await? {
            if lg_codes.is_none_or(|codes| codes.contains(&subscription.lg_code)) {
                changes.push(self.route_for(&subscription, suspended).await?);
            }
        }
        if suspended {
            changes.push(Change::RemoveModule(module.to_string()));
        } else if let Some(file_route) = self.file_routes.lock().expect("file routes").get(module) {
            // A resumed module gets its start-up file route back too.
            changes.push(Change::SetDefault(file_route.clone()));
        }
        self.live.apply(changes);
        Ok(())
    }

    /// At start-up: routes for every subscription, from the catalog.
    pub async fn restore_routes(&self) -> Result<()> {
        let mut modules: Vec<String> = self.db.subscriptions(None, None).await?.into_iter().map(|s| s.module_id).collect();
        modules.sort();
        modules.dedup();
        for module in modules {
            self.reroute(&module, None).await?;
        }
        Ok(())
    }
}

impl App {
    /// Moves subscribers that follow the latest version (not pinned, active) to
    /// `version`; returns the municipalities moved.
    pub async fn release(&self, module: &str, version: &str) -> Result<Vec<String>> {
        let followers: Vec<String> = self
            .db
            .subscriptions(None, Some(module))
            .await?
            .into_iter()
            .filter(|s| !s.pinned && s.active && s.version != version)
            .map(|s| s.lg_code)
            .collect();
        self.swap(module, version, &followers).await?;
        Ok(followers)
    }

    /// Moves the given municipalities to `version` (which must be approved) in one
    /// database transaction and one atomic route change.
    pub async fn swap(&self, module: &str, version: &str, lg_codes: &[String]) -> Result<u64> {
        let span = tracing::info_span!("swap", module, version, municipalities = lg_codes.len());
        async {
            // Load before switching, so the switch itself never waits for a load.
            self.loaded_version(module, version).await?;
            let moved = self.db.move_subscriptions(module, lg_codes, version).await?;
            self.reroute(module, Some(lg_codes)).await?;
            self.metrics.swap(module, "swap");
            self.announce(Announcement::Routes { module: module.to_string() }).await;
            tracing::info!(moved, "swapped");
            Ok(moved)
        }
        .instrument(span)
        .await
    }

    /// Returns the given municipalities to the version they ran before; no recompile (the
    /// previous version is still loaded or in the artifact cache).
    pub async fn rollback(&self, module: &str, lg_codes: &[String]) -> Result<Vec<String>> {
        let span = tracing::info_span!("rollback", module, municipalities = lg_codes.len());
        async {
            let rolled = self.db.rollback_subscriptions(module, lg_codes).await?;
            self.reroute(module, Some(&rolled)).await?;
            self.metrics.swap(module, "rollback");
            self.announce(Announcement::Routes { module: module.to_string() }).await;
            tracing::info!(rolled = rolled.len(), "rolled back");
            Ok(rolled)
        }
        .instrument(span)
        .await
    }

    /// Operator kill switch: no municipality reaches the module until it is resumed.
    /// Requests already running finish on their instance.
    pub async fn suspend(&self, module: &str, reason: Option<&str>) -> Result<bool> {
        let found = self.db.set_module_suspension(module, reason).await?;
        if found {
            self.reroute(module, None).await?;
            self.metrics.swap(module, if reason.is_none() { "resume" } else { "suspend" });
            self.announce(Announcement::Routes { module: module.to_string() }).await;
            if reason.is_none() {
                tracing::info!(module, "resumed");
            } else {
                tracing::warn!(module, reason, "suspended everywhere");
            }
        }
        Ok(found)
    }
}
