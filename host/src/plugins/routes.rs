//! The route controller: the only writer of the live table. See "The route controller" in
//! docs/ARCHITECTURE.md.
//!
//! Every change of routing is a database write stamped with the next routing generation
//! (`store::routing`) followed by [`App::converge`], which brings the table up to the
//! database's current generation: one at a time (a lock), reading what was stamped after
//! the generation it applied last, applying it in one atomic swap, and never going back
//! (a view older than what was applied is refused). Every host converges the same way, so
//! each one's table is the database's as of some generation. [`App::rebuild_routes`] builds
//! the whole table afresh (at start-up, and periodically on replicas).
//!
//! A version that cannot be loaded is quarantined: its municipalities are not routed to it
//! (they get 503 `module-unavailable`), the reason is kept and shown, and everything else
//! is served.

use super::live::{Change, Routed};
use crate::app::App;
use crate::lgcode::LgCode;
use crate::store::catalog::Subscription;
use anyhow::Result;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

/// The route controller's state on this host.
#[derive(Default)]
pub struct Routes {
    /// The generation the live table reflects; held while converging.
    applied: tokio::sync::Mutex<Option<i64>>,
    /// Versions this host could not load, with why.
    quarantined: Mutex<BTreeMap<(String, String), String>>,
}

impl Routes {
    /// Versions this host could not load: ((module, version), reason).
    pub fn quarantined(&self) -> Vec<((String, String), String)> {
        self.quarantined.lock().expect("quarantine").iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Whether `module` has a quarantined version here (its requests get 503).
    pub fn is_quarantined(&self, module: &str) -> bool {
        self.quarantined.lock().expect("quarantine").keys().any(|(m, _)| m == module)
    }

    /// The generation the live table reflects (none before the first build).
    pub async fn applied(&self) -> Option<i64> {
        *self.applied.lock().await
    }
}

impl App {
    /// Brings the live table up to the database's current routing generation.
    pub async fn converge(&self) -> Result<()> {
        let mut applied = self.routes.applied.lock().await;
        let Some(since) = *applied else {
            drop(applied);
            return self.rebuild_routes().await;
        };
        let view = self.db.routing_since(Some(since)).await?;
        if view.generation <= since {
            return Ok(());
        }
        let suspended: HashSet<&str> = view.suspended.iter().map(String::as_str).collect();
        let mut changes = Vec::new();
        for (module, now_suspended) in &view.modules {
            if *now_suspended {
                changes.push(Change::RemoveModule(module.clone()));
                continue;
            }
            // Resumed: its file route and every subscription come back.
            if let Some(file_route) = self.file_routes.lock().expect("file routes").get(module) {
                changes.push(Change::SetDefault(file_route.clone()));
            }
            for s in self.db.subscriptions(None, Some(module)).await? {
                changes.extend(self.route_for(&s).await);
            }
        }
        for s in &view.subscriptions {
            if !suspended.contains(s.module_id.as_str()) {
                changes.extend(self.route_for(s).await);
            }
        }
        changes.extend(provider_changes(&view));
        self.live.apply(changes);
        *applied = Some(view.generation);
        self.forget_unused_quarantines().await
    }

    /// Builds the whole table afresh from the database (and the modules loaded from
    /// files), and applies it in one swap.
    pub async fn rebuild_routes(&self) -> Result<()> {
        let mut applied = self.routes.applied.lock().await;
        let view = self.db.routing_since(None).await?;
        if applied.is_some_and(|g| view.generation < g) {
            // Another converge got further meanwhile; this view is stale.
            return Ok(());
        }
        let suspended: HashSet<&str> = view.suspended.iter().map(String::as_str).collect();
        let mut changes = Vec::new();
        let file_routes: Vec<Arc<Routed>> = self.file_routes.lock().expect("file routes").values().cloned().collect();
        for file_route in file_routes {
            if !suspended.contains(file_route.version.identity.id.as_str()) {
                changes.push(Change::SetDefault(file_route));
            }
        }
        for s in &view.subscriptions {
            if !suspended.contains(s.module_id.as_str()) {
                changes.extend(self.route_for(s).await);
            }
        }
        changes.extend(provider_changes(&view));
        self.live.replace(changes);
        *applied = Some(view.generation);
        self.forget_unused_quarantines().await
    }

    /// Drops the quarantine of versions no active subscription uses any more (their
    /// municipalities were swapped or rolled back away): the module's other
    /// municipalities then get 404 again, and the operator's listing is current.
    async fn forget_unused_quarantines(&self) -> Result<()> {
        let modules: std::collections::BTreeSet<String> = self.routes.quarantined.lock().expect("quarantine").keys().map(|(m, _)| m.clone()).collect();
        for module in modules {
            let in_use: HashSet<String> = self.db.subscriptions(None, Some(&module)).await?.into_iter().filter(|s| s.active).map(|s| s.version).collect();
            self.routes.quarantined.lock().expect("quarantine").retain(|(m, v), _| m != &module || in_use.contains(v));
        }
        Ok(())
    }

    /// The route a subscription asks for: its version for its municipality, or none
    /// (unplugged, or the version is quarantined on this host).
    async fn route_for(&self, subscription: &Subscription) -> Option<Change> {
        let code = LgCode::parse(&subscription.lg_code).ok()?;
        if !subscription.active {
            return Some(Change::Unset(subscription.module_id.clone(), code));
        }
        let key = (subscription.module_id.clone(), subscription.version.clone());
        match self.loaded_version(&subscription.module_id, &subscription.version).await {
            Ok(version) => {
                self.routes.quarantined.lock().expect("quarantine").remove(&key);
                let capabilities = super::lifecycle::effective_capabilities(&version.manifest, &subscription.grants);
                Some(Change::Set(code, Arc::new(Routed { version, capabilities })))
            }
            Err(e) => {
                let reason = format!("{e:#}");
                tracing::error!(module = %key.0, version = %key.1, lg_code = %code, reason, "version quarantined: it cannot be loaded on this host");
                self.routes.quarantined.lock().expect("quarantine").insert(key, reason);
                Some(Change::Unset(subscription.module_id.clone(), code))
            }
        }
    }
}

/// The provider choices of a routing view, as table changes.
fn provider_changes(view: &crate::store::routing::RoutingView) -> impl Iterator<Item = Change> + '_ {
    view.providers.iter().filter_map(|c| Some(Change::Provider(LgCode::parse(&c.lg_code).ok()?, c.interface, c.module_id.clone())))
}
