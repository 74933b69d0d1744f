//! The platform interfaces a module imports, one submodule per interface, all of one shape:
//! the interface's capability name, a `Host` impl that reads only [`PlatformState`], and a
//! line in [`add_to_linker`]. Enforcement (grants, scoping, size caps) happens here and
//! nowhere else: a module reaches platform data only through these functions.

mod changes;
mod config;
mod context;
mod events;
mod identity;
mod kv;
mod log;
mod notices;
pub mod provided;
mod receipts;
mod registry;
mod tax;
mod wasi_config;
mod wasi_keyvalue;

use crate::linkage::audit::AuditBuffer;
use crate::store::Db;
use crate::store::kv::KvScope;
use crate::store::municipalities::Municipality;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker};

pub use changes::to_wit as change_to_wit;
pub use identity::Caller;
pub use kv::KvWrites;
pub use notices::Outgoing as OutgoingNotice;

/// Host-side bindings generated from `wit/platform.wit`, world `business-unit` (a superset
/// of `linked-module` and `module`). Requests use `wasi:http`'s `ProxyPre`; the optional
/// exports (handlers, provided interfaces) are looked up per version.
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "nukisashi:platform/business-unit",
        imports: { default: async },
        exports: { default: async },
        with: {
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
        },
    });
}

use bindings::nukisashi::platform as wit;

/// Host-side bindings of the standard WASI interfaces Spin 3 modules import for storage and
/// settings (`wit/deps/keyvalue.wit`, `wit/deps/config.wit`), answered from the same kv and
/// config as the platform's own interfaces.
pub mod standard {
    wasmtime::component::bindgen!({
        path: "../wit",
        inline: "
            package nukisashi:standard-interfaces;
            world standard {
                import wasi:keyvalue/store@0.2.0-draft2;
                import wasi:keyvalue/atomics@0.2.0-draft2;
                import wasi:keyvalue/batch@0.2.0-draft2;
                import wasi:config/store@0.2.0-draft-2024-09-27;
            }
        ",
        world: "nukisashi:standard-interfaces/standard",
        imports: { default: async },
        with: {
            "wasi:keyvalue/store.bucket": super::wasi_keyvalue::Bucket,
            "wasi:keyvalue/atomics.cas": super::wasi_keyvalue::Cas,
        },
    });
}

/// A capability a municipality can grant a module. Interfaces that expose nothing about
/// anyone (context, identity of the current caller, the module's own config, logging) are
/// always available; the rest need a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// `kv`: key-value storage scoped to (municipality, module).
    Kv,
    /// `resident-registry`: the basic four items (name, address, birth date, sex) and the
    /// household of the municipality's residents.
    ResidentRegistry,
    /// `identity-numbers`: マイナンバー and 住民票コード.
    IdentityNumbers,
    /// `tax`: 個人住民税 summaries.
    Tax,
    /// `change-feed`: the change feed, pulled and pushed.
    ChangeFeed,
    /// `events`: publish events to, and receive events from, the municipality's other
    /// modules.
    Events,
    /// `receipts`: 収納 and 滞納 per resident, from the module the municipality chose to
    /// provide them.
    Receipts,
    /// `notices`: send notices to other municipalities (taking them needs the
    /// administrator's acceptance, not a grant).
    Notices,
}

impl Capability {
    pub const ALL: [Capability; 8] = [
        Capability::Kv,
        Capability::ResidentRegistry,
        Capability::IdentityNumbers,
        Capability::Tax,
        Capability::ChangeFeed,
        Capability::Events,
        Capability::Receipts,
        Capability::Notices,
    ];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Capability::Kv => "kv",
            Capability::ResidentRegistry => "resident-registry",
            Capability::IdentityNumbers => "identity-numbers",
            Capability::Tax => "tax",
            Capability::ChangeFeed => "change-feed",
            Capability::Events => "events",
            Capability::Receipts => "receipts",
            Capability::Notices => "notices",
        }
    }

    /// What granting this capability lets a module do, in plain words (catalog, console).
    pub fn explain(self) -> &'static str {
        match self {
            Capability::Kv => "このサービス専用のデータ保存領域を使う (store its own data)",
            Capability::ResidentRegistry => "住民の基本4情報と世帯を照会する (read residents' name, address, birth date, sex and household)",
            Capability::IdentityNumbers => "マイナンバーと住民票コードを照会する (read individual numbers and resident record codes)",
            Capability::Tax => "個人住民税の課税情報を照会する (read resident tax assessments)",
            Capability::ChangeFeed => "住民異動と課税の変更通知を受け取る (receive moves, deaths and tax changes)",
            Capability::Events => "他のサービスと連携する通知を送受信する (exchange events with the municipality's other services)",
            Capability::Receipts => "住民の収納・滞納の情報を照会する (read residents' payments and arrears, from the chosen 収納 unit)",
            Capability::Notices => "他の自治体へ通知を送る (send notices to other municipalities)",
        }
    }

}

/// The module version a request runs on.
#[derive(Debug, Clone)]
pub struct ModuleIdentity {
    pub id: String,
    pub version: String,
    pub digest: String,
}

/// Everything the platform interfaces may see for one request. Built by the gateway before
/// the module runs; the module cannot change any of it.
pub struct PlatformState {
    pub municipality: Arc<Municipality>,
    pub module: Arc<ModuleIdentity>,
    pub caller: Caller,
    pub request_id: String,
    pub config: Arc<BTreeMap<String, String>>,
    pub granted: BTreeSet<Capability>,
    pub db: Db,
    /// Every limit, and the governor's shared counters (event rate).
    pub governor: Arc<crate::governor::Governor>,
    /// Where the module's log lines are kept for its vendor.
    pub module_logs: Arc<crate::telemetry::module_logs::ModuleLogs>,
    /// Largest value one host call may carry.
    pub host_call_bytes: usize,
    /// Log lines and bytes this request may still write.
    pub log_lines_left: u32,
    pub log_bytes_left: usize,
    /// Who reads, for the audit rows written at each read.
    pub audit_context: Arc<crate::linkage::audit::AuditContext>,
    /// Personal-data reads of this request, counted (their rows are written at the read).
    pub audit: AuditBuffer,
    /// `Some` while a change is delivered: kv writes wait here and are committed with the
    /// delivery record.
    pub kv_writes: Option<KvWrites>,
    /// The largest linear memory the instance grew to, set by the runtime when it ends
    /// (shared so the gateway can meter it).
    pub peak_memory: Arc<std::sync::atomic::AtomicUsize>,
    /// The wasi:keyvalue buckets and `cas` handles the module holds.
    pub kv_handles: wasi_keyvalue::Handles,
    /// The manifest of the version running (what it declares it sends, provides …).
    pub manifest: Arc<crate::catalog::manifest::Manifest>,
    /// How this module reaches other modules: providers, and the deadline they share.
    pub links: provided::Links,
    /// `Some` while a pushed item is delivered: notices sent wait here and are committed
    /// with the delivery record.
    pub outbox: Option<Vec<notices::Outgoing>>,
}

impl PlatformState {
    /// `Ok` if `capability` was granted, otherwise the error the module sees.
    fn require(&self, capability: Capability) -> Result<(), wit::types::Error> {
        if self.granted.contains(&capability) {
            Ok(())
        } else {
            Err(wit::types::Error::NotGranted(capability.name().to_string()))
        }
    }

    /// `Ok` while this request may still read personal data: the records it read so far are
    /// held (for the audit trail) in host memory.
    fn read_room(&self) -> Result<(), wit::types::Error> {
        let limit = self.governor.limits.audit_records;
        if self.audit.weight() >= limit {
            self.governor.refused("audit-records");
            return Err(wit::types::Error::TooLarge(format!(
                "this request has read {limit} records, the most one request may read (the limit is [limits] audit_records); read fewer per request"
            )));
        }
        Ok(())
    }

    /// Puts a read on record before its data is handed over: if the row cannot be written,
    /// the module gets `unavailable` and nothing of what was read.
    async fn audited(&self, entry: crate::linkage::audit::AuditEntry) -> Result<(), wit::types::Error> {
        if let Err(e) = crate::linkage::audit::record(&self.db, &self.audit_context, &entry).await {
            tracing::error!(error = %format!("{e:#}"), interface = entry.interface, "audit trail write failed; the read's data was withheld");
            return Err(wit::types::Error::Unavailable("the platform cannot record this read in the audit trail right now, so it returns nothing".into()));
        }
        self.audit.push(entry);
        Ok(())
    }

    fn kv_scope(&self) -> KvScope {
        KvScope { lg_code: self.municipality.lg_code.to_string(), module_id: self.module.id.clone() }
    }
}

impl wit::types::Host for PlatformState {}

/// Adds every platform interface of the 1.x worlds to the linker. Modules built against an
/// earlier 1.x minor link too: wasmtime resolves `…@1.0.0` imports to these `@1.2.0`
/// definitions (semver-compatible).
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut PlatformState,
) -> anyhow::Result<()> {
    wit::types::add_to_linker::<T, HasSelf<PlatformState>>(linker, get)?;
    wit::context::add_to_linker::<T, HasSelf<PlatformState>>(linker, get)?;
    wit::identity::add_to_linker::<T, HasSelf<PlatformState>>(linker, get)?;
    wit::config::add_to_linker::<T, HasSelf<PlatformState>>(linker, get)?;
    wit::kv::add_to_linker::<T, HasSelf<PlatformState>>(linker, get)?;
    wit::log::add_to_linker::<T, HasSelf<PlatformState>>(linker, get)?;
    wit::resident_registry::add_to_linker::<T, HasSelf<PlatformState>>(linker, get)?;
    wit::identity_numbers::add_to_linker::<T, HasSelf<PlatformState>>(linker, get)?;
    wit::tax::add_to_linker::<T, HasSelf<PlatformState>>(linker, get)?;
    wit::changes::add_to_linker::<T, HasSelf<PlatformState>>(linker, get)?;
    wit::events::add_to_linker::<T, HasSelf<PlatformState>>(linker, get)?;
    wit::receipts::add_to_linker::<T, HasSelf<PlatformState>>(linker, get)?;
    wit::notices::add_to_linker::<T, HasSelf<PlatformState>>(linker, get)?;
    standard::wasi::keyvalue::store::add_to_linker::<T, HasSelf<PlatformState>>(linker, get)?;
    standard::wasi::keyvalue::atomics::add_to_linker::<T, HasSelf<PlatformState>>(linker, get)?;
    standard::wasi::keyvalue::batch::add_to_linker::<T, HasSelf<PlatformState>>(linker, get)?;
    standard::wasi::config::store::add_to_linker::<T, HasSelf<PlatformState>>(linker, get)?;
    Ok(())
}

/// Interfaces (without version) that a module may import. Anything else is refused at
/// admission with its name, before the module can be routed to.
pub const ALLOWED_IMPORT_PREFIXES: &[&str] = &[
    "nukisashi:platform/",
    "wasi:http/types",
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    // The standard storage and settings interfaces, onto the module's own kv (behind the
    // `kv` grant) and config.
    "wasi:keyvalue/",
    "wasi:config/store",
    // The C libraries and runtimes of Rust, Python and JavaScript link these whether or not
    // the module uses them. They grant nothing: no preopened directories, no environment,
    // no stdio but a captured stderr, every socket address and name lookup denied, every
    // outbound HTTP request refused.
    "wasi:cli/",
    "wasi:filesystem/",
    "wasi:sockets/",
    "wasi:http/outgoing-handler",
];

/// The imports a module may have, for a refusal's message.
pub const ALLOWED_IMPORTS_SENTENCE: &str = "a module may import the nukisashi:platform interfaces, wasi:http/types, wasi:io, wasi:clocks and wasi:random, \
wasi:keyvalue@0.2.0-draft2 and wasi:config/store@0.2.0-draft-2024-09-27 (the module's own kv and config), \
and (linked without authority: no files, no environment, every socket and outbound HTTP request denied) wasi:cli, wasi:filesystem, \
wasi:sockets and wasi:http/outgoing-handler, each at any 0.2.x version";
