//! Modules: loading components into ready-to-run versions, and the live table that routes
//! each (municipality, module) to exactly one version at a time.

pub mod admission;
pub mod check;
pub mod lifecycle;
pub mod live;
pub mod load;
pub mod providers;
pub mod routes;
pub mod signing;

use crate::capabilities::ModuleIdentity;
use crate::catalog::manifest::Manifest;
use crate::capabilities::bindings::exports::nukisashi::platform::change_handler::GuestIndices as ChangeHandlerIndices;
use crate::capabilities::bindings::exports::nukisashi::platform::event_handler::GuestIndices as EventHandlerIndices;
use crate::capabilities::bindings::exports::nukisashi::platform::notice_handler::GuestIndices as NoticeHandlerIndices;
use crate::capabilities::bindings::exports::nukisashi::platform::receipts::GuestIndices as ReceiptsIndices;
use crate::capabilities::bindings::exports::nukisashi::platform::resident_registry::GuestIndices as ResidentRegistryIndices;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use crate::runtime::state::RequestState;
use std::sync::Arc;

/// A module version that passed loading: compiled, type-checked against the module world,
/// and pre-linked. Requests instantiate from `pre`; nothing is compiled or linked per request.
pub struct LoadedVersion {
    pub identity: Arc<ModuleIdentity>,
    pub manifest: Arc<Manifest>,
    pub pre: ProxyPre<RequestState>,
    /// Where the version's `change-handler` export is, if it has one.
    pub change_handler: Option<ChangeHandlerIndices>,
    /// Where its `event-handler` export is, if it has one.
    pub event_handler: Option<EventHandlerIndices>,
    /// Where its `notice-handler` export is, if it has one.
    pub notice_handler: Option<NoticeHandlerIndices>,
    /// Its `receipts` export, if its manifest declares it provides 収納 (checked at load).
    pub receipts: Option<ReceiptsIndices>,
    /// Its `resident-registry` export, if its manifest declares it provides the registry.
    pub resident_registry: Option<ResidentRegistryIndices>,
}

impl std::fmt::Debug for LoadedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedVersion").field("identity", &self.identity).finish()
    }
}
