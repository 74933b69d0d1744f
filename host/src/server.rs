//! `nukisashi serve`: open the store, listen, load and compile modules while `/healthz`
//! already answers, then serve until told to stop.

use crate::app::App;
use crate::auth::Authenticator;
use crate::catalog::manifest::Manifest;
use crate::plugins::live::Routed;
use crate::runtime::Runtime;
use crate::settings::Settings;
use crate::store::Db;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Builds the whole host (store, runtime, modules) without serving, ready to route; used
/// by tests and benchmarks.
pub async fn build(settings: &Settings) -> Result<Arc<App>> {
    let app = open(settings).await?;
    warm_up(&app, settings).await?;
    app.mark_ready();
    Ok(app)
}

/// Opens the store and builds the runtime, the edge and the governor: everything but the
/// modules (quick, so the host can answer `/healthz` while [`warm_up`] compiles).
pub async fn open(settings: &Settings) -> Result<Arc<App>> {
    let db = Db::open(settings.database_url.as_deref(), &settings.data_dir).await?;
    let runtime = Runtime::new(settings)?;
    let auth = Authenticator::new(&settings.data_dir, &settings.auth)?;
    let sign_in = crate::signin::SignIn::new(settings)?;
    let metrics = crate::telemetry::Metrics::new(&settings.telemetry)?;
    let edge = crate::edge::Edge::new(settings)?;
    settings.limits.check()?;
    let governor = Arc::new(crate::governor::Governor::new(&settings.limits));
    metrics.observe_governor(&governor);
    App::new(db, runtime, auth, sign_in, edge, governor, settings.data_dir.clone(), metrics).await
}

/// Loads the module files, compiles every admitted version in the catalog (those published
/// while this host was down too, so any later swap to one switches at once here), builds
/// the routes. A version that fails to load is quarantined and reported; everything else is
/// served.
pub async fn warm_up(app: &App, settings: &Settings) -> Result<()> {
    for path in plugin_files(settings)? {
        load_plugin_file(app, &path).await?;
    }
    let started = std::time::Instant::now();
    let admitted: Vec<_> = app.db.versions(None).await?.into_iter().filter(|v| v.status != crate::store::catalog::VersionStatus::Rejected).collect();
    for v in &admitted {
        if let Err(e) = app.loaded_version(&v.module_id, &v.version).await {
            tracing::error!(module = %v.module_id, version = %v.version, error = %format!("{e:#}"), "an admitted version cannot be loaded on this host");
        }
    }
    app.rebuild_routes().await.context("cannot read the routes of subscribed modules")?;
    tracing::info!(versions = admitted.len(), ms = started.elapsed().as_millis() as u64, "modules compiled and routed");
    Ok(())
}

/// Listens, then warms up (`before_ready` runs after the modules are routed: demo data),
/// and serves until Ctrl-C or SIGTERM, then lets requests in flight finish. `/healthz`
/// answers from the moment the port is open; `/readyz` once the host is warm.
pub async fn serve_warming(app: Arc<App>, settings: &Settings, before_ready: impl std::future::Future<Output = Result<()>> + Send + 'static) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let warming = {
        let (app, settings) = (app.clone(), settings.clone());
        tokio::spawn(async move {
            let warm = async {
                warm_up(&app, &settings).await?;
                before_ready.await?;
                app.mark_ready();
                anyhow::Ok(())
            };
            if let Err(e) = warm.await {
                tracing::error!(error = %format!("{e:#}"), "the host could not start; stopping");
                std::process::exit(1);
            }
            announce_modules(&app, &settings);
        })
    };
    let served = serve_on(app, settings, listener).await;
    warming.abort();
    served
}

/// Serves an app that is already warm.
pub async fn serve(app: Arc<App>, settings: &Settings) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    announce_modules(&app, settings);
    serve_on(app, settings, listener).await
}

/// Prints where each module can be tried (for people; tests read only the listening line).
fn announce_modules(app: &App, _settings: &Settings) {
    for id in app.live.module_ids() {
        for code in crate::demo::codes().filter_map(|c| c.parse().ok()).filter(|c| app.tenants.get(c).is_some()).take(1) {
            println!("  try: {}/", app.edge.origins.origin(&code, &id));
        }
    }
}

async fn serve_on(app: Arc<App>, settings: &Settings, listener: tokio::net::TcpListener) -> Result<()> {
    let addr = listener.local_addr()?;
    app.edge.origins.listening_on(addr.port());
    let scheme = if settings.tls.is_some() { "https" } else { "http" };
    // Tests and scripts read this line to find the port.
    println!("nukisashi listening on {scheme}://{addr}");
    println!("  console: {scheme}://{addr}/console/");
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
    // Routed by the route controller's next rebuild.
    app.file_routes.lock().expect("file routes").insert(routed.version.identity.id.clone(), routed);
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
