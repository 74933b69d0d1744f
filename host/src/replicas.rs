//! Several hosts on one PostgreSQL database. Everything durable is in the database
//! (catalog with component bytes, subscriptions, config, linkage data, module storage);
//! each host keeps in memory only what it derives from it: municipalities, module config
//! and the live routing table. A host that changes any of those tells the others with
//! `NOTIFY` on [`CHANNEL`]; each host listens and rebuilds its copy from the database
//! (a published version is compiled ahead, so approving it later switches at once). A
//! full rebuild also runs every `[replicas] reconcile_ms` (15 s) and after a lost
//! listener connection, so a missed notification cannot leave a host stale.
//!
//! Routes only ever come from the catalog's approved versions, so no host can route to a
//! version that was not admitted. On SQLite (one host) nothing here runs.

use crate::app::App;
use crate::store::Backend;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

pub const CHANNEL: &str = "nukisashi_changes";

/// This host's id among the hosts sharing a database: made once and kept in its data
/// directory (`replica-id`), so a host that restarts after a crash is the same replica and
/// takes its own delivery leases back at once instead of waiting for them to lapse. Each
/// replica has a data directory of its own.
pub fn replica_id(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let path = data_dir.join("replica-id");
    if let Ok(id) = std::fs::read_to_string(&path)
        && !id.trim().is_empty()
    {
        return Ok(id.trim().to_string());
    }
    let id = uuid::Uuid::new_v4().to_string();
    std::fs::write(&path, &id).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    Ok(id)
}

/// What changed, as announced to the other hosts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Announcement {
    /// Subscriptions, swaps, rollbacks, suspensions of a module.
    Routes { module: String },
    /// A version was published or reviewed (compile it ahead).
    Version { module: String, version: String },
    /// A municipality's settings for a module.
    Config { lg_code: String, module: String },
    /// Municipalities registered or imported.
    Municipalities,
}

#[derive(Serialize, Deserialize)]
struct Message {
    /// The announcing host, which has applied the change already.
    from: String,
    #[serde(flatten)]
    change: Announcement,
}

impl App {
    /// Tells the other hosts on this database what changed (PostgreSQL only). A failed
    /// notification is logged; the periodic rebuild catches the change up.
    pub async fn announce(&self, change: Announcement) {
        if self.db.backend() != Backend::Postgres {
            return;
        }
        let message = Message { from: self.replica_id.clone(), change };
        let payload = serde_json::to_string(&message).expect("serialisable");
        if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(&payload).execute(self.db.pool()).await {
            tracing::warn!(error = %e, "could not notify the other hosts; they catch up at their next reconciliation");
        }
    }

    /// Rebuilds everything derived from the database: municipalities, module config,
    /// routes (loading any version newly routed).
    pub async fn reconcile(&self) -> anyhow::Result<()> {
        self.tenants.replace(self.db.list_municipalities().await?);
        self.forget_module_configs();
        self.rebuild_routes().await?;
        self.deliveries.wake();
        Ok(())
    }
}

/// Listens for announcements and reconciles (PostgreSQL only).
pub fn spawn(app: Arc<App>, database_url: String, reconcile_every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut failures = 0u32;
        loop {
            let mut listener = match connect(&database_url).await {
                Ok(listener) => listener,
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, "cannot listen for changes from other hosts; retrying");
                    tokio::time::sleep(Duration::from_millis(500 * u64::from(failures.min(20)))).await;
                    continue;
                }
            };
            failures = 0;
            // Whatever was announced while not listening.
            rebuild(&app, "listening").await;
            loop {
                match tokio::time::timeout(reconcile_every, listener.try_recv()).await {
                    Err(_) => rebuild(&app, "periodic").await,
                    Ok(Ok(Some(notification))) => {
                        let mut relevant = handle(&app, notification.payload()).await;
                        // Coalesce a burst (a swap storm) into one rebuild.
                        while let Ok(Ok(Some(more))) = tokio::time::timeout(Duration::from_millis(20), listener.try_recv()).await {
                            relevant |= handle(&app, more.payload()).await;
                        }
                        if relevant {
                            rebuild(&app, "announced").await;
                        }
                    }
                    // The connection dropped; notifications may have been missed.
                    Ok(Ok(None)) => rebuild(&app, "reconnected").await,
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "listening for changes failed; reconnecting");
                        break;
                    }
                }
            }
        }
    })
}

async fn connect(url: &str) -> anyhow::Result<sqlx::postgres::PgListener> {
    let mut listener = sqlx::postgres::PgListener::connect(url).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Acts on one announcement; returns whether it calls for a rebuild (not our own).
async fn handle(app: &App, payload: &str) -> bool {
    let Ok(message) = serde_json::from_str::<Message>(payload) else {
        tracing::warn!(payload, "ignoring an announcement this host does not understand");
        return true;
    };
    if message.from == app.replica_id {
        return false;
    }
    if let Announcement::Version { module, version } = &message.change {
        // Compile ahead, so an approval elsewhere switches without waiting for it here.
        if let Err(e) = app.loaded_version(module, version).await {
            tracing::warn!(module, version, error = %format!("{e:#}"), "could not load an announced version ahead");
        }
    }
    true
}

async fn rebuild(app: &App, why: &'static str) {
    let started = std::time::Instant::now();
    match app.reconcile().await {
        Ok(()) => tracing::debug!(why, ms = started.elapsed().as_millis() as u64, "routes rebuilt from the database"),
        Err(e) => tracing::warn!(why, error = %format!("{e:#}"), "rebuilding routes from the database failed; the next attempt retries"),
    }
}
