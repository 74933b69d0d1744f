//! Pushing feeds to modules, exactly once and in order per (municipality, module):
//!
//! - the **change feed** to every routed module that exports `change-handler` and was
//!   granted `change-feed`: every change of its municipality;
//! - the **event log** to every routed module that exports `event-handler`, was granted
//!   `events` and lists the event's `<source>/<topic>` under `subscribes` in its manifest
//!   (other events are passed over).
//!
//! Exactly once: the module's kv writes (and the notices it sends) during the call are
//! buffered, then committed in one transaction with the audit rows and the advance of its
//! delivery position (a
//! compare-and-set on the previous position). A failure (an `err`, a trap, a crash before
//! the commit) leaves the position where it was and the item is offered again, with
//! back-off; a committed item is never offered again, across restarts too. A module sees
//! nothing later until the item in front of it succeeds.
//!
//! Isolated: each (feed, municipality, module) queue runs in a task of its own, in an
//! instance kept for platform work, under the module's deadline, so a stuck handler delays
//! only its own queue and backs off alone. With several hosts on one database each queue
//! is worked by one host at a time (a lease in `delivery_leases`, renewed as it goes and
//! taken over by another host once it lapses); the compare-and-set on the position keeps
//! deliveries exactly once even when two hosts overlap.

use super::audit::{self, AuditBuffer, AuditContext};
use crate::app::App;
use crate::capabilities::bindings::nukisashi::platform::events::Event as WitEvent;
use crate::capabilities::bindings::nukisashi::platform::notices::Notice as WitNotice;
use crate::capabilities::{Capability, Caller, change_to_wit};
use crate::lgcode::LgCode;
use crate::plugins::live::Routed;
use crate::runtime::Delivery;
use crate::store::deliveries::{Feed, advance};
use crate::store::events::Event;
use crate::store::notices::Notice;
use crate::store::kv::{KvScope, apply as apply_kv};
use anyhow::Result;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How often pending deliveries are looked at without a wake-up (retries, missed wakes).
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// Items read per page while catching up.
const PAGE: u32 = 200;
/// Longest wait before retrying a module that failed.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long a host holds a queue without renewing; another host takes it over after.
const LEASE: Duration = Duration::from_secs(30);

/// Wakes the delivery loop when a feed moved (an import committed, an event was published).
#[derive(Default)]
pub struct Deliveries {
    wake: Notify,
}

impl Deliveries {
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// One delivery queue: a feed of a municipality to one module.
type Key = (Feed, String, String);

/// The queues this host is working, how far each is known to be, and which wait after a
/// failure. Every queue runs in a task of its own, so one stuck or slow module delays
/// only its own queue.
#[derive(Default)]
struct Queues {
    running: HashSet<Key>,
    position: HashMap<Key, i64>,
    backoff: HashMap<Key, (Instant, Duration)>,
}

/// Runs deliveries until the process ends.
pub fn spawn(app: Arc<App>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let queues = Arc::new(Mutex::new(Queues::default()));
        loop {
            for feed in [Feed::Changes, Feed::Events, Feed::Notices] {
                if let Err(e) = start_pending(&app, feed, &queues).await {
                    tracing::error!(error = %format!("{e:#}"), ?feed, "delivery sweep failed");
                }
            }
            tokio::select! {
                _ = app.deliveries.wake.notified() => {}
                _ = tokio::time::sleep(SWEEP_INTERVAL) => {}
            }
        }
    })
}

/// Whether `routed` takes `feed` at all.
fn takes(routed: &Routed, feed: Feed) -> bool {
    match feed {
        Feed::Changes => routed.capabilities.contains(&Capability::ChangeFeed) && routed.version.change_handler.is_some(),
        Feed::Events => {
            routed.capabilities.contains(&Capability::Events)
                && routed.version.event_handler.is_some()
                && !routed.version.manifest.subscribes.is_empty()
        }
        Feed::Notices => routed.version.notice_handler.is_some() && !routed.version.manifest.notices.receives.is_empty(),
    }
}

/// Starts a task for every queue of `feed` with something to deliver that is not already
/// running, waiting after a failure, or worked by another host (its lease).
async fn start_pending(app: &Arc<App>, feed: Feed, queues: &Arc<Mutex<Queues>>) -> Result<()> {
    let heads = match feed {
        Feed::Changes => app.db.linkage_heads().await?,
        Feed::Events => app.db.event_heads().await?,
        Feed::Notices => app.db.notice_heads().await?,
    };
    for (lg, head) in heads {
        let Ok(code) = lg.parse::<LgCode>() else { continue };
        if app.tenants.get(&code).is_none() {
            continue;
        }
        for routed in app.live.routes_for(&code) {
            if !takes(&routed, feed) {
                continue;
            }
            let key: Key = (feed, lg.clone(), routed.version.identity.id.clone());
            {
                let q = queues.lock().expect("delivery queues");
                let caught_up = q.position.get(&key).is_some_and(|&p| p >= head);
                let waiting = q.backoff.get(&key).is_some_and(|(until, _)| Instant::now() < *until);
                if caught_up || waiting || q.running.contains(&key) {
                    continue;
                }
            }
            if !app.db.take_delivery_lease(feed, &lg, &key.2, &app.replica_id, LEASE).await? {
                continue;
            }
            queues.lock().expect("delivery queues").running.insert(key.clone());
            tracing::debug!(lg_code = %key.1, module = %key.2, ?feed, head, "delivery queue started");
            let (app, queues, code) = (app.clone(), queues.clone(), code.clone());
            tokio::spawn(async move {
                let outcome = catch_up(&app, feed, &code, &routed, head).await;
                let failed = {
                    let mut q = queues.lock().expect("delivery queues");
                    q.running.remove(&key);
                    match outcome {
                        Ok(position) => {
                            q.backoff.remove(&key);
                            q.position.insert(key.clone(), position);
                            None
                        }
                        Err(e) => {
                            // The lease is kept while this host waits, so no other host
                            // retries at once either; it lapses if this one goes away.
                            let wait = q.backoff.get(&key).map(|(_, d)| (*d * 2).min(MAX_BACKOFF)).unwrap_or(Duration::from_secs(1));
                            q.backoff.insert(key.clone(), (Instant::now() + wait, wait));
                            q.position.remove(&key);
                            Some((e, wait))
                        }
                    }
                };
                match failed {
                    None => {
                        let _ = app.db.release_delivery_lease(feed, &key.1, &key.2, &app.replica_id).await;
                    }
                    Some((e, wait)) => {
                        tracing::warn!(lg_code = %key.1, module = %key.2, ?feed, error = %e, retry_in_s = wait.as_secs(), "delivery failed");
                        let _ = app.db.record_delivery_failure(feed, &key.1, &key.2, &e).await;
                    }
                }
            });
        }
    }
    Ok(())
}

/// One item of a feed.
enum Item {
    Change(super::Change),
    Event(Event),
    Notice(Notice),
}

impl Item {
    fn position(&self) -> i64 {
        match self {
            Item::Change(c) => c.cursor,
            Item::Event(e) => e.sequence,
            Item::Notice(n) => n.sequence,
        }
    }
}

/// Delivers `code`'s feed to one module up to `head`; stops at the first failure, and when
/// the module is no longer routed to this version (suspended, unplugged, swapped: the new
/// route's queue starts afresh). Returns the position reached.
async fn catch_up(app: &App, feed: Feed, code: &LgCode, routed: &Arc<Routed>, head: i64) -> Result<i64, String> {
    let lg = code.to_string();
    let module = routed.version.identity.id.clone();
    let text = |e: anyhow::Error| format!("{e:#}");
    let mut committed = app.db.delivery_position(feed, &lg, &module).await.map_err(text)?;
    let mut seen = committed;
    while seen < head {
        let items: Vec<Item> = match feed {
            Feed::Changes => app.db.changes_since(&lg, seen, PAGE).await.map_err(text)?.into_iter().map(Item::Change).collect(),
            Feed::Events => app.db.events_since(&lg, seen, PAGE).await.map_err(text)?.into_iter().map(Item::Event).collect(),
            Feed::Notices => app.db.notices_since(&lg, seen, PAGE).await.map_err(text)?.into_iter().map(Item::Notice).collect(),
        };
        if items.is_empty() {
            break;
        }
        for item in items {
            let still_routed = app.live.resolve(&module, code).is_some_and(|now| Arc::ptr_eq(&now, routed));
            if !still_routed {
                return Ok(committed);
            }
            let wanted = match &item {
                Item::Change(_) => true,
                Item::Event(e) => routed.version.manifest.subscribes.iter().any(|s| *s == format!("{}/{}", e.source, e.topic)),
                // Sent to the module that was accepted for its kind when it was sent.
                Item::Notice(n) => n.module_id == module,
            };
            if wanted {
                deliver_one(app, feed, code, routed, committed, &item).await?;
                committed = item.position();
                app.db.take_delivery_lease(feed, &lg, &module, &app.replica_id, LEASE).await.map_err(text)?;
            }
            seen = item.position();
        }
    }
    // Events this module does not subscribe to (notices for other modules) are passed over
    // in one step.
    if seen > committed {
        let mut conn = app.db.pool().acquire().await.map_err(|e| e.to_string())?;
        advance(&mut conn, feed, &lg, &module, committed, seen).await.map_err(text)?;
    }
    Ok(seen)
}

async fn deliver_one(app: &App, feed: Feed, code: &LgCode, routed: &Arc<Routed>, previous: i64, item: &Item) -> Result<(), String> {
    let version = &routed.version;
    let municipality = app.tenants.get(code).ok_or("the municipality is no longer registered")?;
    let (request_id, handed_over) = match item {
        Item::Change(c) => (
            format!("change-{code}-{}", c.cursor),
            audit::AuditEntry::new("change-handler.on-change", format!("cursor={} kind={}", c.cursor, c.kind), vec![c.addressee_number.clone()]),
        ),
        Item::Event(e) => (
            format!("event-{code}-{}", e.sequence),
            audit::AuditEntry {
                interface: "event-handler.on-event",
                query: format!("sequence={} topic={}/{}", e.sequence, e.source, e.topic),
                records: e.subject.iter().cloned().collect(),
                counterpart: None,
            },
        ),
        Item::Notice(n) => (
            format!("notice-{code}-{}", n.sequence),
            audit::AuditEntry {
                interface: "notice-handler.on-notice",
                query: format!("sequence={} kind={}", n.sequence, n.kind),
                records: n.subject.iter().cloned().collect(),
                counterpart: Some(format!("{}/{}", n.from_lg_code, n.from_module)),
            },
        ),
    };
    let audit_buffer = AuditBuffer::default();
    let context = Arc::new(AuditContext {
        lg_code: code.to_string(),
        module_id: version.identity.id.clone(),
        module_version: version.identity.version.clone(),
        request_id,
        caller_subject: None,
        caller_role: "platform".into(),
    });
    let platform = app
        .platform_state(municipality, routed, Caller::default(), context.clone(), audit_buffer.clone())
        .await
        .map_err(|e| format!("{e:#}"))?;
    let position = item.position();
    // In one of the instances kept for platform work: traffic cannot starve deliveries.
    let _instance = app.governor.admission.admit_platform().await;
    let outcome = match item {
        Item::Change(c) => app.runtime.deliver(version, platform, Delivery::Change(&change_to_wit(c))).await,
        Item::Event(e) => {
            let event = WitEvent { sequence: e.sequence as u64, source: e.source.clone(), topic: e.topic.clone(), subject: e.subject.clone(), payload: e.payload.clone() };
            app.runtime.deliver(version, platform, Delivery::Event(&event)).await
        }
        Item::Notice(n) => {
            let notice = WitNotice {
                sequence: n.sequence as u64,
                from_lg_code: n.from_lg_code.clone(),
                from_module: n.from_module.clone(),
                kind: n.kind.clone(),
                subject: n.subject.clone(),
                payload: n.payload.clone(),
            };
            app.runtime.deliver(version, platform, Delivery::Notice(&notice)).await
        }
    };
    let handled = match outcome {
        Ok(Ok(handled)) => handled,
        Ok(Err(reason)) => return Err(format!("the module asked to retry {position}: {reason}")),
        Err(e) => return Err(format!("{position}: {e}")),
    };
    // What the module read while handling it is on record already (written at each read,
    // whatever happened after); handing the item over is itself a read of what it names,
    // recorded with the delivery.
    app.metrics.audited_reads(&context.lg_code, &context.module_id, &audit_buffer.take());
    let scope = KvScope { lg_code: code.to_string(), module_id: version.identity.id.clone() };
    let commit = async {
        let mut tx = app.db.pool().begin().await?;
        anyhow::ensure!(
            advance(&mut tx, feed, &scope.lg_code, &scope.module_id, previous, position).await?,
            "the delivery position moved meanwhile (another host delivered it)"
        );
        let storage = &app.governor.limits.storage;
        let quota = crate::store::kv::Quota { bytes: storage.kv_bytes, keys: storage.kv_keys };
        if let Err(over) = apply_kv(&mut tx, &scope, &handled.kv_writes.0, quota).await? {
            anyhow::bail!("the module's writes do not fit its storage: {over}");
        }
        let handed = [handed_over];
        audit::write(&mut tx, &context, &handed).await?;
        // The notices it sent go out with it: exactly once, or not at all.
        for sent in &handled.notices {
            if let Err(over) = crate::store::notices::append(&mut tx, &sent.notice, app.governor.limits.storage.notices_kept).await? {
                anyhow::bail!("a notice the module sent cannot be kept: {over}");
            }
            audit::write(&mut tx, &context, std::slice::from_ref(&sent.audit)).await?;
        }
        tx.commit().await?;
        if !handled.notices.is_empty() {
            app.deliveries.wake();
        }
        app.metrics.audited_reads(&context.lg_code, &context.module_id, &handed);
        Ok(())
    };
    commit.await.map_err(|e: anyhow::Error| format!("committing {position}: {e:#}"))
}
