//! The live table: which version serves each (module, municipality), with the capabilities
//! that municipality granted.
//!
//! Readers take one atomic snapshot per request (`resolve`) and keep the `Arc` they got for
//! the whole request, so a request that started on version N finishes on N even if the
//! table changes meanwhile; new requests see the new table. Writers build a new table and
//! swap it in atomically, one writer at a time, so a change that moves many municipalities
//! at once is seen by every request either entirely or not at all.

use super::LoadedVersion;
use crate::capabilities::Capability;
use crate::lgcode::LgCode;
use arc_swap::ArcSwap;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

/// A version as routed for one municipality.
#[derive(Debug)]
pub struct Routed {
    pub version: Arc<LoadedVersion>,
    /// Requested by the module ∩ granted by the municipality.
    pub capabilities: BTreeSet<Capability>,
}

#[derive(Default, Clone)]
struct ModuleRoutes {
    /// Serves every municipality without an entry of its own (modules loaded from files
    /// at start-up, outside the catalog).
    default: Option<Arc<Routed>>,
    /// Subscribed municipalities.
    per_municipality: HashMap<LgCode, Arc<Routed>>,
}

#[derive(Default)]
pub struct LiveTable {
    current: ArcSwap<HashMap<String, ModuleRoutes>>,
    writer: Mutex<()>,
}

/// One change to the table; a batch of them is applied atomically.
pub enum Change {
    /// Route `module` for every municipality without its own route.
    SetDefault(Arc<Routed>),
    /// Route the module of `routed` for one municipality.
    Set(LgCode, Arc<Routed>),
    /// Stop routing `module` for one municipality.
    Unset(String, LgCode),
    /// Stop routing `module` anywhere.
    RemoveModule(String),
}

impl LiveTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// What serves `module` for `lg_code` right now.
    pub fn resolve(&self, module: &str, lg_code: &LgCode) -> Option<Arc<Routed>> {
        let table = self.current.load();
        let routes = table.get(module)?;
        routes.per_municipality.get(lg_code).or(routes.default.as_ref()).cloned()
    }

    /// Everything that serves `lg_code` right now, one entry per module.
    pub fn routes_for(&self, lg_code: &LgCode) -> Vec<Arc<Routed>> {
        let table = self.current.load();
        let mut routes: Vec<Arc<Routed>> =
            table.values().filter_map(|r| r.per_municipality.get(lg_code).or(r.default.as_ref()).cloned()).collect();
        routes.sort_by(|a, b| a.version.identity.id.cmp(&b.version.identity.id));
        routes
    }

    /// Module ids with at least one route.
    pub fn module_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.current.load().keys().cloned().collect();
        ids.sort();
        ids
    }

    /// What serves where: per module, the default version and each municipality's.
    pub fn snapshot(&self) -> Vec<(String, Option<String>, Vec<(String, String)>)> {
        let table = self.current.load();
        let mut out: Vec<_> = table
            .iter()
            .map(|(module, routes)| {
                let mut per: Vec<(String, String)> = routes
                    .per_municipality
                    .iter()
                    .map(|(code, r)| (code.to_string(), r.version.identity.version.clone()))
                    .collect();
                per.sort();
                (module.clone(), routes.default.as_ref().map(|r| r.version.identity.version.clone()), per)
            })
            .collect();
        out.sort();
        out
    }

    /// Applies every change in one atomic swap. The host's only caller is the route
    /// controller (`plugins::routes`); benchmarks build tables with it directly.
    pub fn apply(&self, changes: Vec<Change>) {
        let _one_writer = self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let next = Self::with(HashMap::clone(&self.current.load()), changes);
        self.current.store(Arc::new(next));
    }

    /// Replaces the whole table with the one `changes` build from nothing, in one swap.
    pub fn replace(&self, changes: Vec<Change>) {
        let _one_writer = self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.current.store(Arc::new(Self::with(HashMap::new(), changes)));
    }

    fn with(mut next: HashMap<String, ModuleRoutes>, changes: Vec<Change>) -> HashMap<String, ModuleRoutes> {
        for change in changes {
            match change {
                Change::SetDefault(routed) => {
                    let module = routed.version.identity.id.clone();
                    next.entry(module).or_default().default = Some(routed);
                }
                Change::Set(code, routed) => {
                    let module = routed.version.identity.id.clone();
                    next.entry(module).or_default().per_municipality.insert(code, routed);
                }
                Change::Unset(module, code) => {
                    if let Some(routes) = next.get_mut(&module) {
                        routes.per_municipality.remove(&code);
                        if routes.per_municipality.is_empty() && routes.default.is_none() {
                            next.remove(&module);
                        }
                    }
                }
                Change::RemoveModule(module) => {
                    next.remove(&module);
                }
            }
        }
        next
    }
}
