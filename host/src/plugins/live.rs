//! The live table: which version serves each (module, municipality).
//!
//! Readers take one atomic snapshot per request (`resolve`) and keep the `Arc` of the version
//! they got for the whole request, so a request that started on version N finishes on N even
//! if the table changes meanwhile; new requests see the new table. Writers build a new table
//! and swap it in atomically, one writer at a time.

use super::LoadedVersion;
use crate::lgcode::LgCode;
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Default, Clone)]
struct ModuleRoutes {
    /// Serves every municipality without an entry of its own.
    default: Option<Arc<LoadedVersion>>,
    /// Municipalities on a specific version (staged rollout, pins).
    per_municipality: HashMap<LgCode, Arc<LoadedVersion>>,
}

#[derive(Default)]
pub struct LiveTable {
    current: ArcSwap<HashMap<String, ModuleRoutes>>,
    writer: Mutex<()>,
}

impl LiveTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// The version that serves `module` for `lg_code` right now.
    pub fn resolve(&self, module: &str, lg_code: &LgCode) -> Option<Arc<LoadedVersion>> {
        let table = self.current.load();
        let routes = table.get(module)?;
        routes.per_municipality.get(lg_code).or(routes.default.as_ref()).cloned()
    }

    /// The version serving municipalities that have none of their own.
    pub fn resolve_default(&self, module: &str) -> Option<Arc<LoadedVersion>> {
        self.current.load().get(module)?.default.clone()
    }

    /// Module ids with at least one route.
    pub fn module_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.current.load().keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Makes `version` serve every municipality that has no version of its own; returns
    /// the version it replaced.
    pub fn set_default(&self, version: Arc<LoadedVersion>) -> Option<Arc<LoadedVersion>> {
        let module = version.identity.id.clone();
        self.update(|table| table.entry(module).or_default().default.replace(version))
    }

    /// Makes `version` serve `lg_code`; returns the version it replaced.
    pub fn set_for(&self, lg_code: LgCode, version: Arc<LoadedVersion>) -> Option<Arc<LoadedVersion>> {
        let module = version.identity.id.clone();
        self.update(|table| table.entry(module).or_default().per_municipality.insert(lg_code, version))
    }

    /// Stops routing to `module` anywhere. Requests already running finish on their version.
    pub fn remove(&self, module: &str) -> bool {
        self.update(|table| table.remove(module).is_some())
    }

    fn update<R>(&self, change: impl FnOnce(&mut HashMap<String, ModuleRoutes>) -> R) -> R {
        let _one_writer = self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut next = HashMap::clone(&self.current.load());
        let result = change(&mut next);
        self.current.store(Arc::new(next));
        result
    }
}
