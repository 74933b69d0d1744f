//! Pushing the change feed to modules: every (municipality, module) whose routed version
//! exports `change-handler` and was granted `change-feed` gets every change of its
//! municipality, in feed order, exactly once.
//!
//! Exactly once: the module's kv writes during `on-change` are buffered, then committed in
//! one transaction with the audit rows and the advance of `change_deliveries.delivered`
//! (guarded by its previous value). A failure (an `err`, a trap, a crash before commit)
//! leaves the position where it was and the change is offered again, with back-off; a
//! committed change is never offered again, across restarts too. A module sees nothing
//! later until the change in front of it succeeds.

use super::audit::{self, AuditBuffer, AuditContext};
use crate::app::App;
use crate::capabilities::{Capability, Caller, change_to_wit};
use crate::lgcode::LgCode;
use crate::plugins::live::Routed;
use crate::store::kv::{KvScope, apply as apply_kv};
use crate::store::now_iso;
use anyhow::Result;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How often pending deliveries are looked at without a wake-up (retries, missed wakes).
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// Changes read per page while catching up.
const PAGE: u32 = 200;
/// Longest wait before retrying a module that failed.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Wakes the delivery loop when the feed moved (after an import commits).
#[derive(Default)]
pub struct Deliveries {
    wake: Notify,
}

impl Deliveries {
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// Runs deliveries until the process ends.
pub fn spawn(app: Arc<App>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff: HashMap<(String, String), (Instant, Duration)> = HashMap::new();
        loop {
            if let Err(e) = sweep(&app, &mut backoff).await {
                tracing::error!(error = %format!("{e:#}"), "change delivery sweep failed");
            }
            tokio::select! {
                _ = app.deliveries.wake.notified() => {}
                _ = tokio::time::sleep(SWEEP_INTERVAL) => {}
            }
        }
    })
}

/// Delivers everything pending once.
async fn sweep(app: &App, backoff: &mut HashMap<(String, String), (Instant, Duration)>) -> Result<()> {
    for (lg, head) in app.db.linkage_heads().await? {
        let Ok(code) = lg.parse::<LgCode>() else { continue };
        if app.tenants.get(&code).is_none() {
            continue;
        }
        for routed in app.live.routes_for(&code) {
            if !routed.capabilities.contains(&Capability::ChangeFeed) || routed.version.change_handler.is_none() {
                continue;
            }
            let key = (lg.clone(), routed.version.identity.id.clone());
            if backoff.get(&key).is_some_and(|(until, _)| Instant::now() < *until) {
                continue;
            }
            match catch_up(app, &code, &routed, head).await {
                Ok(()) => {
                    backoff.remove(&key);
                }
                Err(e) => {
                    let wait = backoff.get(&key).map(|(_, d)| (*d * 2).min(MAX_BACKOFF)).unwrap_or(Duration::from_secs(1));
                    tracing::warn!(lg_code = %lg, module = %key.1, error = %e, retry_in_s = wait.as_secs(), "change delivery failed");
                    let _ = app.db.record_delivery_failure(&lg, &key.1, &e).await;
                    backoff.insert(key, (Instant::now() + wait, wait));
                }
            }
        }
    }
    Ok(())
}

/// Delivers `code`'s changes to one module up to `head`; stops at the first failure.
async fn catch_up(app: &App, code: &LgCode, routed: &Arc<Routed>, head: i64) -> Result<(), String> {
    let lg = code.to_string();
    let module = routed.version.identity.id.clone();
    let mut delivered = app.db.delivery_position(&lg, &module).await.map_err(|e| format!("{e:#}"))?;
    while delivered < head {
        let changes = app.db.changes_since(&lg, delivered, PAGE).await.map_err(|e| format!("{e:#}"))?;
        if changes.is_empty() {
            break;
        }
        for change in changes {
            deliver_one(app, code, routed, delivered, &change).await?;
            delivered = change.cursor;
        }
    }
    Ok(())
}

async fn deliver_one(app: &App, code: &LgCode, routed: &Arc<Routed>, previous: i64, change: &super::Change) -> Result<(), String> {
    let version = &routed.version;
    let municipality = app.tenants.get(code).ok_or("the municipality is no longer registered")?;
    let request_id = format!("change-{}-{}", code, change.cursor);
    let audit_buffer = AuditBuffer::default();
    let platform = app
        .platform_state(municipality, routed, Caller::default(), request_id.clone(), audit_buffer.clone())
        .await
        .map_err(|e| format!("{e:#}"))?;
    let writes = match app.runtime.deliver_change(version, platform, &change_to_wit(change)).await {
        Ok(Ok(writes)) => writes,
        Ok(Err(reason)) => return Err(format!("the module asked to retry change {}: {reason}", change.cursor)),
        Err(e) => return Err(format!("change {}: {e}", change.cursor)),
    };
    // Handing the change over is itself a read of personal data.
    audit_buffer.push(audit::AuditEntry {
        interface: "change-handler.on-change",
        query: format!("cursor={} kind={}", change.cursor, change.kind),
        records: vec![change.addressee_number.clone()],
    });
    let context = AuditContext {
        lg_code: code.to_string(),
        module_id: version.identity.id.clone(),
        module_version: version.identity.version.clone(),
        request_id,
        caller_subject: None,
        caller_role: "platform".into(),
    };
    let scope = KvScope { lg_code: code.to_string(), module_id: version.identity.id.clone() };
    let commit = async {
        let mut tx = app.db.pool().begin().await?;
        let moved = sqlx::query(
            "UPDATE change_deliveries SET delivered = $1, failures = 0, last_error = NULL, updated_at = $2
             WHERE lg_code = $3 AND module_id = $4 AND delivered = $5",
        )
        .bind(change.cursor)
        .bind(now_iso())
        .bind(&scope.lg_code)
        .bind(&scope.module_id)
        .bind(previous)
        .execute(&mut *tx)
        .await?;
        anyhow::ensure!(moved.rows_affected() == 1, "the delivery position moved meanwhile (another host delivered it)");
        apply_kv(&mut tx, &scope, &writes.0).await?;
        audit::write(&mut tx, &context, &audit_buffer.take()).await?;
        tx.commit().await?;
        Ok(())
    };
    commit.await.map_err(|e: anyhow::Error| format!("committing change {}: {e:#}", change.cursor))
}
