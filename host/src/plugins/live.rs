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
use crate::catalog::manifest::ProvidedInterface;
use crate::lgcode::LgCode;
use arc_swap::ArcSwap;
use std::collections::{BTreeMap, BTreeSet, HashMap};
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

/// The whole table: what serves each module, and which module each municipality chose to
/// provide each interface. One snapshot holds both, so a request that calls a provider
/// sees the choice and the provider's version of the same moment.
#[derive(Default, Clone)]
struct Table {
    modules: HashMap<String, ModuleRoutes>,
    providers: HashMap<LgCode, BTreeMap<ProvidedInterface, String>>,
}

#[derive(Default)]
pub struct LiveTable {
    current: ArcSwap<Table>,
    writer: Mutex<()>,
}

/// Who answers a provided interface at a municipality right now.
#[derive(Debug, Clone)]
pub enum Provider {
    /// No module is chosen (the platform's own data, where it has some).
    NoneChosen,
    /// This module is chosen; `None` if nothing routes it there right now (suspended,
    /// quarantined).
    Chosen(String, Option<Arc<Routed>>),
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
    /// The module a municipality chose to provide an interface (none: no module).
    Provider(LgCode, ProvidedInterface, Option<String>),
}

impl LiveTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// What serves `module` for `lg_code` right now.
    pub fn resolve(&self, module: &str, lg_code: &LgCode) -> Option<Arc<Routed>> {
        Self::resolve_in(&self.current.load(), module, lg_code)
    }

    fn resolve_in(table: &Table, module: &str, lg_code: &LgCode) -> Option<Arc<Routed>> {
        let routes = table.modules.get(module)?;
        routes.per_municipality.get(lg_code).or(routes.default.as_ref()).cloned()
    }

    /// Who provides `interface` at `lg_code`, and the version serving it there, from one
    /// snapshot.
    pub fn provider(&self, lg_code: &LgCode, interface: ProvidedInterface) -> Provider {
        let table = self.current.load();
        match table.providers.get(lg_code).and_then(|chosen| chosen.get(&interface)) {
            None => Provider::NoneChosen,
            Some(module) => Provider::Chosen(module.clone(), Self::resolve_in(&table, module, lg_code)),
        }
    }

    /// Every interface `lg_code` chose a module for, with the module.
    pub fn providers_for(&self, lg_code: &LgCode) -> BTreeMap<ProvidedInterface, String> {
        self.current.load().providers.get(lg_code).cloned().unwrap_or_default()
    }

    /// Everything that serves `lg_code` right now, one entry per module.
    pub fn routes_for(&self, lg_code: &LgCode) -> Vec<Arc<Routed>> {
        let table = self.current.load();
        let mut routes: Vec<Arc<Routed>> =
            table.modules.values().filter_map(|r| r.per_municipality.get(lg_code).or(r.default.as_ref()).cloned()).collect();
        routes.sort_by(|a, b| a.version.identity.id.cmp(&b.version.identity.id));
        routes
    }

    /// Module ids with at least one route.
    pub fn module_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.current.load().modules.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// What serves where: per module, the default version and each municipality's.
    pub fn snapshot(&self) -> Vec<(String, Option<String>, Vec<(String, String)>)> {
        let table = self.current.load();
        let mut out: Vec<_> = table
            .modules
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
        let next = Self::with(Table::clone(&self.current.load()), changes);
        self.current.store(Arc::new(next));
    }

    /// Replaces the whole table with the one `changes` build from nothing, in one swap.
    pub fn replace(&self, changes: Vec<Change>) {
        let _one_writer = self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.current.store(Arc::new(Self::with(Table::default(), changes)));
    }

    fn with(mut table: Table, changes: Vec<Change>) -> Table {
        let next = &mut table.modules;
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
                Change::Provider(code, interface, Some(module)) => {
                    table.providers.entry(code).or_default().insert(interface, module);
                }
                Change::Provider(code, interface, None) => {
                    if let Some(chosen) = table.providers.get_mut(&code) {
                        chosen.remove(&interface);
                    }
                }
            }
        }
        table
    }
}
