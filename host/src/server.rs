//! `nukisashi serve`: open the store, load modules, serve HTTP until told to stop.

use crate::app::App;
use crate::auth::Authenticator;
use crate::catalog::manifest::Manifest;
use crate::plugins::live::{Change, Routed};
use crate::runtime::Runtime;
use crate::settings::Settings;
use crate::store::Db;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Builds the whole host (store, runtime, modules) without serving; used by `serve`, tests
/// and benchmarks.
pub async fn build(settings: &Settings) -> Result<Arc<App>> {
    let db = Db::open(settings.database_url.as_deref(), &settings.data_dir).await?;
    let runtime = Runtime::new(settings)?;
    let auth = Authenticator::new(&settings.data_dir, &settings.auth)?;
    let metrics = crate::telemetry::Metrics::new(&settings.telemetry)?;
    let edge = crate::edge::Edge::new(settings)?;
    settings.limits.check()?;
    let governor = Arc::new(crate::governor::Governor::new(&settings.limits));
    metrics.observe_governor(&governor);
    let app = Arc::new(App::new(db, runtime, auth, edge, governor, settings.data_dir.clone(), metrics).await?);
    app.restore_routes().await.context("cannot restore the routes of subscribed modules")?;
    for path in plugin_files(settings)? {
        load_plugin_file(&app, &path).await?;
    }
    Ok(app)
}

/// Serves until Ctrl-C or SIGTERM, then lets requests in flight finish.
pub async fn serve(app: Arc<App>, settings: &Settings) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    app.edge.origins.listening_on(addr.port());
    let scheme = if settings.tls.is_some() { "https" } else { "http" };
    // Tests and scripts read this line to find the port.
    println!("nukisashi listening on {scheme}://{addr}");
    println!("  console: {scheme}://{addr}/console/");
    for id in app.live.module_ids() {
        for code in crate::demo::codes().filter_map(|c| c.parse().ok()).filter(|c| app.tenants.get(c).is_some()).take(1) {
            println!("  try: {}/", app.edge.origins.origin(&code, &id));
        }
    }
    crate::linkage::delivery::spawn(app.clone());
    crate::metering::spawn_flusher(app.clone());
    crate::governor::spawn_housekeeping(app.clone());
    if let Some(url) = settings.database_url.as_deref().filter(|_| app.db.backend() == crate::store::Backend::Postgres) {
        crate::replicas::spawn(app.clone(), url.to_string(), std::time::Duration::from_millis(settings.replicas.reconcile_ms.max(100)));
    }
    let router = crate::api::router(app.clone());
    let tls = match &settings.tls {
        Some(tls) => Some(tokio_rustls::TlsAcceptor::from(tls.server_config().await?.get_inner())),
        None => None,
    };
    // Requests in flight get their deadline to finish, and a little more.
    let drain = settings.limits.deadline() + std::time::Duration::from_secs(5);
    crate::governor::connections::serve(listener, router, &settings.limits.connections, tls, app.clone(), shutdown_signal(), drain).await?;
    // What was metered since the last flush is not lost on a clean stop.
    app.meter.flush(&app.db).await?;
    app.metrics.shutdown();
    Ok(())
}

fn plugin_files(settings: &Settings) -> Result<Vec<PathBuf>> {
    let mut files = settings.plugins.clone();
    if let Some(dir) = &settings.plugins_dir {
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read plugin directory {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
            .collect();
        found.sort();
        files.extend(found);
    }
    Ok(files)
}

/// Loads `name.wasm` outside the catalog, as module `name` (underscores become hyphens),
/// serving every registered municipality without a subscription of its own, with every
/// capability it requests: for development and the demo. A manifest `name.toml` beside
/// it is used if present; otherwise every path is public and `kv` is requested.
pub async fn load_plugin_file(app: &App, path: &Path) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read module file {}", path.display()))?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("module").replace('_', "-");
    if !crate::is_valid_module_id(&stem) {
        anyhow::bail!("{}: a module file name must be lower-case letters, digits, `-` or `_`", path.display());
    }
    let manifest = match std::fs::read(path.with_extension("toml")) {
        Ok(text) => Manifest::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.with_extension("toml").display()))?,
        Err(_) => Manifest::development(&stem),
    };
    let loaded = app
        .runtime
        .load(Arc::new(manifest), bytes)
        .await
        .with_context(|| format!("cannot load module {}", path.display()))?;
    let capabilities = loaded.manifest.capabilities.iter().copied().collect();
    let routed = Arc::new(Routed { version: Arc::new(loaded), capabilities });
    app.file_routes.lock().expect("file routes").insert(routed.version.identity.id.clone(), routed.clone());
    app.live.apply(vec![Change::SetDefault(routed)]);
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
    tracing::info!("shutting down: finishing requests in flight");
}
