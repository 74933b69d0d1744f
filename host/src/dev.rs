//! `nukisashi dev [DIR]`: a vendor's module served from its folder on a local host, with
//! the demo municipalities, the demo sign-in for every role, the folder's config, and a hot
//! swap to the new build whenever the component (or its manifest, or `dev.toml`) changes.
//! The module's log lines and each request's status and time are printed as they happen.
//!
//! A module folder has `dev.toml`:
//!
//! ```toml
//! component = "target/wasm32-wasip2/release/hello.wasm"  # what the build writes
//! manifest = "manifest.toml"                              # the default
//! [config]                                                # every municipality's settings
//! greeting = "こんにちは"
//! ```

use crate::app::App;
use crate::catalog::manifest::Manifest;
use crate::plugins::admission;
use crate::plugins::live::Routed;
use crate::settings::Settings;
use anyhow::{Context, Result, anyhow};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// How often the folder's files are looked at.
const POLL: Duration = Duration::from_millis(250);

/// A module's folder as `dev.toml` describes it; paths are resolved against the folder.
#[derive(Debug, Clone)]
pub struct ModuleFolder {
    pub dir: PathBuf,
    pub manifest: PathBuf,
    pub component: PathBuf,
    /// The settings every demo municipality gives the module.
    pub config: BTreeMap<String, String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DevFile {
    component: PathBuf,
    #[serde(default)]
    manifest: Option<PathBuf>,
    #[serde(default)]
    config: BTreeMap<String, String>,
}

impl ModuleFolder {
    /// Reads `dir/dev.toml`.
    pub fn open(dir: &Path) -> Result<Self> {
        let path = dir.join("dev.toml");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!("cannot read {}: a module folder has a dev.toml naming its component (`nukisashi module new` writes one)", path.display())
        })?;
        let file: DevFile = toml::from_str(&text).map_err(|e| anyhow!("{}: {} (dev.toml has `component`, an optional `manifest`, and a [config] table of strings)", path.display(), e.message()))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest: dir.join(file.manifest.unwrap_or_else(|| PathBuf::from("manifest.toml"))),
            component: dir.join(file.component),
            config: file.config,
        })
    }

    fn dev_file(&self) -> PathBuf {
        self.dir.join("dev.toml")
    }

    /// What changes when any of the three files is rewritten.
    fn fingerprint(&self) -> Vec<Option<(SystemTime, u64)>> {
        [self.dev_file(), self.manifest.clone(), self.component.clone()]
            .iter()
            .map(|p| std::fs::metadata(p).ok().and_then(|m| Some((m.modified().ok()?, m.len()))))
            .collect()
    }
}

/// Serves the module in `dir` on `listen` until Ctrl-C. State (kv, sign-in keys) is kept in
/// `dir/.nukisashi-dev/`, so it survives restarts of `nukisashi dev`.
pub async fn run(dir: PathBuf, listen: std::net::SocketAddr) -> Result<()> {
    let folder = ModuleFolder::open(&dir)?;
    let data_dir = dir.join(".nukisashi-dev");
    std::fs::create_dir_all(&data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    let settings = Settings { listen, data_dir, demo: true, ..Settings::default() };
    let app = crate::server::open(&settings).await?;
    let starting = {
        let app = app.clone();
        async move {
            crate::demo::seed(&app).await.context("cannot add the demo municipalities")?;
            spawn_log_printer(&app);
            let mut served = None;
            match load(&app, &folder.dir, None).await {
                Ok((id, ms)) => {
                    println!("loaded {id} from {} in {ms} ms", folder.component.display());
                    served = Some(id);
                }
                Err(e) => println!("not serving yet: {e:#}\n  (fix it and save; this folder is watched)"),
            }
            tokio::spawn(watch(app, folder, served));
            Ok(())
        }
    };
    crate::server::serve_warming(app, &settings, starting).await
}

/// Reads the folder and swaps the module in: compiled, checked and health-checked as
/// admission does, configured for every demo municipality, then routed in one atomic
/// change. Anything wrong leaves the previous build serving. Returns the module id and how
/// long it took.
async fn load(app: &App, dir: &Path, previous: Option<&str>) -> Result<(String, u128)> {
    let started = Instant::now();
    let folder = ModuleFolder::open(dir)?;
    let manifest_bytes = std::fs::read(&folder.manifest).with_context(|| format!("cannot read the manifest {}", folder.manifest.display()))?;
    let component = std::fs::read(&folder.component).with_context(|| format!("cannot read the component {} (build the module first)", folder.component.display()))?;
    if let Some(too_large) = admission::size_problems(manifest_bytes.len(), component.len()).into_iter().next() {
        return Err(anyhow!("{too_large}"));
    }
    let manifest = Manifest::parse(&manifest_bytes).map_err(|e| anyhow!("{}: {e}", folder.manifest.display()))?;
    // Refused as a municipality's subscription with these settings would be.
    crate::api::module_config::check_settings(Some(&manifest), &folder.config, true).map_err(|p| anyhow!("{}: [config]: {}", folder.dev_file().display(), p.detail))?;
    let id = manifest.id.clone();
    let capabilities = manifest.capabilities.iter().copied().collect();
    let loaded = admission::load_and_health_check(app, Arc::new(manifest), component).await.map_err(|e| anyhow!("{}: {e}", folder.component.display()))?;
    for code in crate::demo::codes() {
        app.set_module_config(&code.parse()?, &id, folder.config.clone()).await?;
    }
    let replaced = {
        let mut file_routes = app.file_routes.lock().expect("file routes");
        let replaced = previous.and_then(|p| file_routes.remove(p).map(|route| (p.to_string(), route)));
        file_routes.insert(id.clone(), Arc::new(Routed { version: loaded, capabilities }));
        replaced
    };
    // One route change: every request after it gets the new build, every request before
    // it finishes on the old one.
    if let Err(e) = app.rebuild_routes().await {
        let mut file_routes = app.file_routes.lock().expect("file routes");
        file_routes.remove(&id);
        if let Some((previous, route)) = replaced {
            file_routes.insert(previous, route);
        }
        return Err(e.context("cannot route the new build"));
    }
    Ok((id, started.elapsed().as_millis()))
}

/// Reloads whenever the folder's files change and then stay unchanged for one poll (a
/// build that is still writing is not loaded half-written).
async fn watch(app: Arc<App>, folder: ModuleFolder, mut served: Option<String>) {
    announce(&app, served.as_deref());
    // dev.toml may name another component or manifest: read it again on every look.
    let fingerprint = |dir: &Path| ModuleFolder::open(dir).map(|f| f.fingerprint()).unwrap_or_else(|_| folder.fingerprint());
    let mut seen = fingerprint(&folder.dir);
    loop {
        tokio::time::sleep(POLL).await;
        let now = fingerprint(&folder.dir);
        if now == seen {
            continue;
        }
        seen = now;
        tokio::time::sleep(POLL).await;
        if fingerprint(&folder.dir) != seen {
            continue;
        }
        match load(&app, &folder.dir, served.as_deref()).await {
            Ok((id, ms)) => {
                println!("reloaded {id} in {ms} ms");
                if served.as_deref() != Some(id.as_str()) {
                    served = Some(id);
                    announce(&app, served.as_deref());
                }
            }
            Err(e) if served.is_some() => println!("not reloaded, the previous build keeps serving: {e:#}"),
            Err(e) => println!("not serving yet: {e:#}"),
        }
    }
}

/// Where to try the module, and how to sign in.
fn announce(app: &App, module: Option<&str>) {
    let Some(module) = module else { return };
    println!("serving {module} for the demo municipalities:");
    for code in crate::demo::codes().filter_map(|c| c.parse().ok()) {
        let name = app.tenants.get(&code).map(|m| m.name.clone()).unwrap_or_default();
        println!("  {name}: {}/", app.edge.origins.origin(&code, module));
    }
    println!("  sign in as a resident, clerk or administrator of any of them from a page that needs it (the demo sign-in)");
}

/// Prints every log line and request of the module as it happens.
fn spawn_log_printer(app: &App) {
    let mut entries = app.module_logs.subscribe();
    tokio::spawn(async move {
        loop {
            match entries.recv().await {
                Ok(entry) => println!("{}", entry.line()),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => println!("({missed} log lines not shown: too many at once)"),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}
