//! `nukisashi serve`: open the store, load modules, serve HTTP until told to stop.

use crate::app::App;
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
    let app = Arc::new(App::new(db, runtime).await?);
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
    // Tests and scripts read this line to find the port.
    println!("nukisashi listening on http://{addr}");
    for id in app.live.module_ids() {
        for code in crate::demo::codes().filter(|c| app.tenants.get(&c.parse().expect("demo codes are valid")).is_some()).take(1) {
            println!("  try: http://{addr}/{code}/{id}/");
        }
    }
    axum::serve(listener, crate::api::router(app)).with_graceful_shutdown(shutdown_signal()).await?;
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

/// Loads `name.wasm` as module `name` (underscores become hyphens), serving every
/// municipality. An optional `name.toml` beside it may set `id` and `version`.
pub async fn load_plugin_file(app: &App, path: &Path) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read module file {}", path.display()))?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("module").replace('_', "-");
    let sidecar: Sidecar = match std::fs::read_to_string(path.with_extension("toml")) {
        Ok(text) => toml::from_str(&text).with_context(|| format!("{} is not valid", path.with_extension("toml").display()))?,
        Err(_) => Sidecar::default(),
    };
    let id = sidecar.id.unwrap_or(stem);
    if !crate::is_valid_module_id(&id) {
        anyhow::bail!("module id `{id}` (from {}) must be lower-case letters, digits and hyphens", path.display());
    }
    let version = sidecar.version.unwrap_or_else(|| "0.0.0".to_string());
    let loaded = app
        .runtime
        .load(&id, &version, bytes)
        .await
        .with_context(|| format!("cannot load module {}", path.display()))?;
    app.live.set_default(Arc::new(loaded));
    Ok(())
}

#[derive(Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Sidecar {
    id: Option<String>,
    version: Option<String>,
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
