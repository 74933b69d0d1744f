//! The host's shared state: database, runtime, live table, and the in-memory views of
//! municipalities and module config that keep the request path free of database reads.

use crate::api::problem::Problem;
use crate::lgcode::LgCode;
use crate::auth::Authenticator;
use crate::plugins::lifecycle::VersionCache;
use crate::plugins::live::LiveTable;
use crate::runtime::Runtime;
use crate::store::Db;
use crate::store::municipalities::{Inserted, Municipality};
use anyhow::Result;
use arc_swap::ArcSwap;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

pub struct App {
    pub db: Db,
    /// Where this host keeps its secret, compiled artifacts and backups being written.
    pub data_dir: std::path::PathBuf,
    pub runtime: Runtime,
    pub live: LiveTable,
    pub tenants: Tenants,
    pub versions: VersionCache,
    /// The route controller's state: applied generation, quarantined versions.
    pub routes: crate::plugins::routes::Routes,
    pub auth: Authenticator,
    /// Browser sign-in: the identity providers and the session lifetimes.
    pub sign_in: crate::signin::SignIn,
    /// The host's addresses: the platform origin and every module's own origin.
    pub edge: crate::edge::Edge,
    /// Every limit and queue (`governor`).
    pub governor: Arc<crate::governor::Governor>,
    /// Modules loaded from files at start-up (outside the catalog), by id.
    pub file_routes: std::sync::Mutex<HashMap<String, Arc<crate::plugins::live::Routed>>>,
    /// Usage gathered on the request path, flushed to the database by `metering`.
    pub meter: crate::metering::Meter,
    /// Wakes the push of the change feed to modules (`linkage::delivery`).
    pub deliveries: crate::linkage::delivery::Deliveries,
    /// Counters and histograms for `/metrics` and OTLP.
    pub metrics: crate::telemetry::Metrics,
    /// Each module's recent log lines and requests, redacted, for its vendor.
    pub module_logs: Arc<crate::telemetry::module_logs::ModuleLogs>,
    /// This process, among the hosts sharing a database (`replicas`).
    pub replica_id: String,
    /// Set once every admitted version is compiled and the routes are built (`/readyz`).
    ready: std::sync::atomic::AtomicBool,
    /// This host itself, for what a module's instance reaches through it (calls into
    /// providing modules, notices).
    me: std::sync::Weak<App>,
    /// Municipality exports and resumable uploads between sites.
    pub transfers: crate::transfers::Transfers,
    configs: ConfigCache,
}

impl App {
    pub async fn new(
        db: Db,
        runtime: Runtime,
        auth: Authenticator,
        sign_in: crate::signin::SignIn,
        edge: crate::edge::Edge,
        governor: Arc<crate::governor::Governor>,
        data_dir: std::path::PathBuf,
        metrics: crate::telemetry::Metrics,
    ) -> Result<Arc<Self>> {
        let tenants = Tenants::default();
        tenants.replace(db.list_municipalities().await?);
        let replica_id = crate::replicas::replica_id(&data_dir)?;
        Ok(Arc::new_cyclic(|me| Self {
            me: me.clone(),
            replica_id,
            ready: Default::default(),
            transfers: crate::transfers::Transfers::new(&data_dir),
            db,
            data_dir,
            runtime,
            live: LiveTable::new(),
            tenants,
            versions: VersionCache::default(),
            routes: Default::default(),
            auth,
            sign_in,
            edge,
            governor,
            file_routes: Default::default(),
            deliveries: Default::default(),
            meter: Default::default(),
            metrics,
            module_logs: Default::default(),
            configs: ConfigCache::default(),
        }))
    }

    /// The host is warm: every admitted version compiled, the routes built.
    pub fn mark_ready(&self) {
        self.ready.store(true, std::sync::atomic::Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Registers a municipality and makes it routable at once.
    pub async fn add_municipality(&self, m: &Municipality) -> Result<Inserted> {
        let inserted = self.db.insert_municipality(m).await?;
        self.tenants.replace(self.db.list_municipalities().await?);
        self.announce(crate::replicas::Announcement::Municipalities).await;
        Ok(inserted)
    }

    /// The registered municipality, or 404. A code this host does not know is looked up in
    /// the database before it is refused: another host may have registered it a moment ago,
    /// before its announcement arrived here (or the announcement was lost).
    pub async fn require_municipality(&self, code: &LgCode) -> Result<Arc<Municipality>, Problem> {
        if let Some(found) = self.tenants.get(code) {
            return Ok(found);
        }
        if self.tenants.may_recheck() {
            let all = self.db.list_municipalities().await?;
            if all.iter().any(|m| &m.lg_code == code) {
                self.tenants.replace(all);
            }
        }
        self.tenants
            .get(code)
            .ok_or_else(|| Problem::not_found("unknown-municipality", format!("no municipality {code} is registered")))
    }

    /// The municipality's settings for a module, from memory after the first read.
    pub async fn module_config(&self, code: &LgCode, module: &str) -> Result<Arc<BTreeMap<String, String>>> {
        let key = (code.clone(), module.to_string());
        if let Some(found) = self.configs.0.read().expect("config cache lock").get(&key) {
            return Ok(found.clone());
        }
        let loaded = Arc::new(self.db.module_config(code, module).await?);
        // A concurrent `set_module_config` may have cached newer settings meanwhile: keep those.
        let mut cache = self.configs.0.write().expect("config cache lock");
        Ok(cache.entry(key).or_insert(loaded).clone())
    }

    /// Everything the platform interfaces may see while `routed` serves `municipality`: the
    /// caller, config (manifest defaults under the municipality's settings), grants and
    /// limits. Used for requests and for change deliveries alike.
    pub async fn platform_state(
        &self,
        municipality: Arc<Municipality>,
        routed: &crate::plugins::live::Routed,
        caller: crate::capabilities::Caller,
        audit_context: Arc<crate::linkage::audit::AuditContext>,
        audit: crate::linkage::audit::AuditBuffer,
    ) -> Result<crate::capabilities::PlatformState> {
        let version = &routed.version;
        let settings = self.module_config(&municipality.lg_code, &version.identity.id).await?;
        Ok(crate::capabilities::PlatformState {
            municipality,
            module: version.identity.clone(),
            caller,
            request_id: audit_context.request_id.clone(),
            audit_context,
            config: Arc::new(version.manifest.effective_config(&settings)),
            granted: routed.capabilities.clone(),
            db: self.db.clone(),
            governor: self.governor.clone(),
            module_logs: self.module_logs.clone(),
            host_call_bytes: self.runtime.limits().host_call_bytes,
            log_lines_left: self.runtime.limits().log_lines,
            log_bytes_left: self.runtime.limits().log_bytes,
            audit,
            kv_writes: None,
            peak_memory: Default::default(),
            kv_handles: Default::default(),
            manifest: version.manifest.clone(),
            links: crate::capabilities::provided::Links {
                app: self.me.clone(),
                chain: Vec::new(),
                deadline: Some(std::time::Instant::now() + self.runtime.limits().deadline()),
                pinned: Default::default(),
            },
            outbox: None,
        })
    }

    /// Replaces a module's settings; requests that start afterwards see the new ones.
    pub async fn set_module_config(&self, code: &LgCode, module: &str, settings: BTreeMap<String, String>) -> Result<()> {
        let writing = self.configs.1.lock().await;
        self.db.replace_module_config(code, module, &settings).await?;
        self.configs.0.write().expect("config cache lock").insert((code.clone(), module.to_string()), Arc::new(settings));
        drop(writing);
        self.announce(crate::replicas::Announcement::Config { lg_code: code.to_string(), module: module.to_string() }).await;
        Ok(())
    }

    /// Drops cached module config (another host may have changed it).
    pub fn forget_module_configs(&self) {
        self.configs.0.write().expect("config cache lock").clear();
    }
}

/// Registered municipalities, swapped whole on every change; and when the database was
/// last asked about a code missing here.
#[derive(Default)]
pub struct Tenants(ArcSwap<HashMap<LgCode, Arc<Municipality>>>, std::sync::Mutex<Option<std::time::Instant>>);

/// How often requests for unknown codes may send this host to the database: they cannot
/// turn a flood of made-up codes into a flood of queries.
const TENANT_RECHECK_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

impl Tenants {
    /// Whether a miss may be checked against the database now (at most once per
    /// [`TENANT_RECHECK_EVERY`], across all codes).
    fn may_recheck(&self) -> bool {
        let mut last = self.1.lock().expect("tenant recheck");
        let now = std::time::Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < TENANT_RECHECK_EVERY) {
            return false;
        }
        *last = Some(now);
        true
    }

    pub fn get(&self, code: &LgCode) -> Option<Arc<Municipality>> {
        self.0.load().get(code).cloned()
    }

    /// Every registered municipality.
    pub fn all(&self) -> Vec<Arc<Municipality>> {
        self.0.load().values().cloned().collect()
    }

    pub fn replace(&self, all: Vec<Municipality>) {
        self.0.store(Arc::new(all.into_iter().map(|m| (m.lg_code.clone(), Arc::new(m))).collect()));
    }
}

/// Module settings by (municipality, module), and the lock that orders this host's
/// replacements: the cache ends up with the settings the database committed last.
#[derive(Default)]
struct ConfigCache(RwLock<HashMap<(LgCode, String), Arc<BTreeMap<String, String>>>>, tokio::sync::Mutex<()>);
