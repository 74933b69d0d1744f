//! The audit trail of personal-data reads. A capability writes the row for a read
//! ([`record`]) before it hands the data to the module, and hands nothing over if the row
//! cannot be written: whatever the module does next (answers, traps, loops, or its client
//! goes away), every read that returned data is on record. A change delivery's handing
//! over of the change itself is written in the transaction that records the delivery.
//! Rows are only ever inserted; each takes the next gap-free position of its municipality
//! (`audit_heads`) in the same transaction, and readers page by that position, so a row
//! that commits late is never skipped by anyone tailing the trail. The request's
//! [`AuditBuffer`] counts what it read (the `audit_records` limit, metrics).

use crate::store::{Db, now_iso};
use anyhow::Result;
use serde::Serialize;
use sqlx::{AnyConnection, Row};
use std::sync::{Arc, Mutex};

/// One read by a module.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub interface: &'static str,
    pub query: String,
    /// 宛名番号 of the records handed over.
    pub records: Vec<String>,
    /// The other party, when the read crossed modules or municipalities: the module that
    /// served a provided interface (`receipts-a@1.0.0`) on the consumer's row, the consumer
    /// on the provider's, the sending or receiving municipality and module of a notice.
    pub counterpart: Option<String>,
}

impl AuditEntry {
    /// A read of the platform's own data (no other party).
    pub fn new(interface: &'static str, query: String, records: Vec<String>) -> Self {
        AuditEntry { interface, query, records, counterpart: None }
    }
}

/// Who read, for every entry of one request or delivery.
#[derive(Debug, Clone)]
pub struct AuditContext {
    pub lg_code: String,
    pub module_id: String,
    pub module_version: String,
    pub request_id: String,
    pub caller_subject: Option<String>,
    pub caller_role: String,
}

/// The reads of one request, shared between the capabilities (which push) and the
/// gateway (which writes them out), with their weight (entries plus the records they
/// name: what the buffer holds in memory).
#[derive(Clone, Default)]
pub struct AuditBuffer(Arc<Mutex<(Vec<AuditEntry>, usize)>>);

impl AuditBuffer {
    pub fn push(&self, entry: AuditEntry) {
        let mut inner = self.0.lock().expect("audit buffer lock");
        inner.1 += 1 + entry.records.len();
        inner.0.push(entry);
    }

    pub fn take(&self) -> Vec<AuditEntry> {
        let mut inner = self.0.lock().expect("audit buffer lock");
        inner.1 = 0;
        std::mem::take(&mut inner.0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.lock().expect("audit buffer lock").0.is_empty()
    }

    /// Entries and the records they name, together, pushed since the last `take`.
    pub fn weight(&self) -> usize {
        self.0.lock().expect("audit buffer lock").1
    }
}

/// Appends `entries` on `conn`, inside the caller's transaction, each at the next position
/// of its municipality.
pub async fn write(conn: &mut AnyConnection, context: &AuditContext, entries: &[AuditEntry]) -> Result<()> {
    let at = now_iso();
    for e in entries {
        let position: i64 = sqlx::query(
            "INSERT INTO audit_heads (lg_code, seq) VALUES ($1, 1) ON CONFLICT (lg_code) DO UPDATE SET seq = audit_heads.seq + 1 RETURNING seq",
        )
        .bind(&context.lg_code)
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
        sqlx::query(
            "INSERT INTO audit_log (at, lg_code, module_id, module_version, request_id, caller_subject, caller_role, interface, query, records, seq, counterpart)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&at)
        .bind(&context.lg_code)
        .bind(&context.module_id)
        .bind(&context.module_version)
        .bind(&context.request_id)
        .bind(&context.caller_subject)
        .bind(&context.caller_role)
        .bind(e.interface)
        .bind(&e.query)
        .bind(serde_json::to_string(&e.records)?)
        .bind(position)
        .bind(&e.counterpart)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Writes one read, in a transaction of its own, before its data is handed over.
pub async fn record(db: &Db, context: &AuditContext, entry: &AuditEntry) -> Result<()> {
    record_all(db, &[(context, std::slice::from_ref(entry))]).await
}

/// Writes several parties' rows in one transaction: a provided call's read by the consumer
/// and service by the provider are on record together or not at all.
pub async fn record_all(db: &Db, rows: &[(&AuditContext, &[AuditEntry])]) -> Result<()> {
    let mut tx = db.pool().begin().await?;
    for (context, entries) in rows {
        write(&mut tx, context, entries).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// One row of the audit trail as the API shows it.
#[derive(Debug, Serialize)]
pub struct AuditRow {
    pub id: i64,
    /// The row's gap-free position in its municipality's trail (page with `after`).
    pub position: i64,
    pub at: String,
    pub module_id: String,
    pub module_version: String,
    pub request_id: String,
    pub caller_subject: Option<String>,
    pub caller_role: String,
    pub interface: String,
    pub query: String,
    pub records: Vec<String>,
    /// The other party of a linked read or a notice (see [`AuditEntry::counterpart`]).
    pub counterpart: Option<String>,
}

/// Filters for reading a municipality's audit trail.
#[derive(Debug, Default, serde::Deserialize)]
pub struct AuditFilter {
    pub module: Option<String>,
    /// Only reads that handed over this 宛名番号.
    pub addressee_number: Option<String>,
    /// Rows after this position (paging: the last row's `position`).
    pub after: Option<i64>,
    pub limit: Option<u32>,
}

/// The municipality's audit rows, oldest first.
pub async fn query(db: &Db, lg_code: &str, filter: &AuditFilter) -> Result<Vec<AuditRow>> {
    let limit = filter.limit.unwrap_or(100).clamp(1, 1000);
    let mut sql = String::from(
        "SELECT id, seq, at, module_id, module_version, request_id, caller_subject, caller_role, interface, query, records, counterpart
         FROM audit_log WHERE lg_code = $1 AND seq > $2",
    );
    let mut n = 2;
    if filter.module.is_some() {
        n += 1;
        sql.push_str(&format!(" AND module_id = ${n}"));
    }
    if filter.addressee_number.is_some() {
        n += 1;
        // Records are a JSON array of strings: match the quoted number exactly.
        sql.push_str(&format!(" AND records LIKE ${n}"));
    }
    sql.push_str(&format!(" ORDER BY seq LIMIT {limit}"));
    let mut q = sqlx::query(&sql).bind(lg_code).bind(filter.after.unwrap_or(0));
    if let Some(m) = &filter.module {
        q = q.bind(m);
    }
    if let Some(a) = &filter.addressee_number {
        // 宛名番号 are digits only (checked by the caller), so LIKE has nothing to escape.
        q = q.bind(format!("%\"{a}\"%"));
    }
    let rows = q.fetch_all(db.pool()).await?;
    rows.iter()
        .map(|r| {
            let records: String = r.try_get("records")?;
            Ok(AuditRow {
                id: r.try_get("id")?,
                position: r.try_get("seq")?,
                at: r.try_get("at")?,
                module_id: r.try_get("module_id")?,
                module_version: r.try_get("module_version")?,
                request_id: r.try_get("request_id")?,
                caller_subject: r.try_get("caller_subject")?,
                caller_role: r.try_get("caller_role")?,
                interface: r.try_get("interface")?,
                query: r.try_get("query")?,
                records: serde_json::from_str(&records)?,
                counterpart: r.try_get("counterpart")?,
            })
        })
        .collect()
}
