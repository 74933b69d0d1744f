//! Notices between municipalities: which kinds each municipality accepts (into which of its
//! modules, from which sending modules), and a log per receiving municipality with gap-free
//! sequences, pushed to the receiving module by `linkage::delivery` (feed `Notices`).

use super::{Db, now_iso};
use anyhow::Result;
use sqlx::{AnyConnection, Row};

/// One notice of a receiving municipality's log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Notice {
    pub sequence: i64,
    /// The receiving module.
    pub module_id: String,
    pub from_lg_code: String,
    pub from_module: String,
    pub kind: String,
    pub subject: Option<String>,
    pub payload: String,
    pub sent_at: String,
}

/// A notice on its way: what the sender gave, and where the host sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sending {
    pub to_lg_code: String,
    pub to_module: String,
    pub from_lg_code: String,
    pub from_module: String,
    pub kind: String,
    pub subject: Option<String>,
    pub payload: String,
}

/// A kind a municipality accepts, into which module, and from which sending modules.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Acceptance {
    pub kind: String,
    pub module_id: String,
    /// Module ids (at any municipality) whose notices of this kind are taken.
    pub senders: Vec<String>,
    pub accepted_at: String,
    pub accepted_by: Option<String>,
}

fn acceptance_row(r: &sqlx::any::AnyRow) -> Result<Acceptance> {
    Ok(Acceptance {
        kind: r.try_get("kind")?,
        module_id: r.try_get("module_id")?,
        senders: serde_json::from_str(&r.try_get::<String, _>("senders")?)?,
        accepted_at: r.try_get("accepted_at")?,
        accepted_by: r.try_get("accepted_by")?,
    })
}

/// Appends `notice` to its receiving municipality's log with the next sequence, on `conn`
/// (inside the caller's transaction, so a notice sent while handling a delivery commits
/// with it); returns the sequence, or (inner `Err`) why not: the sending module already has
/// `kept` notices in that log (they go when delivered and past their retention).
pub async fn append(conn: &mut AnyConnection, notice: &Sending, kept: u64) -> Result<std::result::Result<i64, String>> {
    // The head's row is written first, so senders to one municipality take turns and the
    // count below cannot be slipped past.
    let sequence: i64 = sqlx::query(
        "INSERT INTO notice_heads (lg_code, sequence) VALUES ($1, 1) ON CONFLICT (lg_code) DO UPDATE SET sequence = notice_heads.sequence + 1 RETURNING sequence",
    )
    .bind(&notice.to_lg_code)
    .fetch_one(&mut *conn)
    .await?
    .try_get(0)?;
    let held: i64 = sqlx::query("SELECT COUNT(*) FROM notices WHERE lg_code = $1 AND from_lg_code = $2 AND from_module = $3")
        .bind(&notice.to_lg_code)
        .bind(&notice.from_lg_code)
        .bind(&notice.from_module)
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
    if held as u64 >= kept {
        return Ok(Err(format!(
            "module `{}` of {} has {held} notices in {}'s log, the most it may keep there (the limit is [limits.storage] notices_kept); delivered ones expire after event_retention_days",
            notice.from_module, notice.from_lg_code, notice.to_lg_code
        )));
    }
    sqlx::query(
        "INSERT INTO notices (lg_code, sequence, module_id, from_lg_code, from_module, kind, subject, payload, sent_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&notice.to_lg_code)
    .bind(sequence)
    .bind(&notice.to_module)
    .bind(&notice.from_lg_code)
    .bind(&notice.from_module)
    .bind(&notice.kind)
    .bind(&notice.subject)
    .bind(&notice.payload)
    .bind(now_iso())
    .execute(&mut *conn)
    .await?;
    Ok(Ok(sequence))
}

fn notice_row(r: &sqlx::any::AnyRow) -> Result<Notice> {
    Ok(Notice {
        sequence: r.try_get("sequence")?,
        module_id: r.try_get("module_id")?,
        from_lg_code: r.try_get("from_lg_code")?,
        from_module: r.try_get("from_module")?,
        kind: r.try_get("kind")?,
        subject: r.try_get("subject")?,
        payload: r.try_get("payload")?,
        sent_at: r.try_get("sent_at")?,
    })
}

const NOTICE_COLUMNS: &str = "sequence, module_id, from_lg_code, from_module, kind, subject, payload, sent_at";

impl Db {
    /// Accepts notices of `kind` at `lg_code` into `module_id`, from the modules `senders`
    /// (replacing an earlier acceptance of the kind).
    pub async fn accept_notices(&self, lg_code: &str, kind: &str, module_id: &str, senders: &[String], by: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO notice_acceptances (lg_code, kind, module_id, senders, accepted_at, accepted_by) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (lg_code, kind) DO UPDATE SET module_id = excluded.module_id, senders = excluded.senders,
                accepted_at = excluded.accepted_at, accepted_by = excluded.accepted_by",
        )
        .bind(lg_code)
        .bind(kind)
        .bind(module_id)
        .bind(serde_json::to_string(senders)?)
        .bind(now_iso())
        .bind(by)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Stops accepting `kind` at `lg_code`; `false` if it was not accepted. Notices already
    /// in the log are still delivered.
    pub async fn refuse_notices(&self, lg_code: &str, kind: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM notice_acceptances WHERE lg_code = $1 AND kind = $2").bind(lg_code).bind(kind).execute(self.pool()).await?;
        Ok(r.rows_affected() == 1)
    }

    /// The kinds `lg_code` accepts.
    pub async fn notice_acceptances(&self, lg_code: &str) -> Result<Vec<Acceptance>> {
        let rows = sqlx::query("SELECT kind, module_id, senders, accepted_at, accepted_by FROM notice_acceptances WHERE lg_code = $1 ORDER BY kind")
            .bind(lg_code)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(acceptance_row).collect()
    }

    /// How `lg_code` accepts `kind`, if it does.
    pub async fn notice_acceptance(&self, lg_code: &str, kind: &str) -> Result<Option<Acceptance>> {
        let row = sqlx::query("SELECT kind, module_id, senders, accepted_at, accepted_by FROM notice_acceptances WHERE lg_code = $1 AND kind = $2")
            .bind(lg_code)
            .bind(kind)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(acceptance_row).transpose()
    }

    /// Appends one notice in a transaction of its own, with `audit` rows (the sender's) in
    /// the same transaction; returns its sequence at the receiving municipality (inner
    /// `Err`: over `kept`, nothing written).
    pub async fn send_notice(&self, notice: &Sending, kept: u64, audit: &crate::linkage::audit::AuditContext, entry: &crate::linkage::audit::AuditEntry) -> Result<std::result::Result<i64, String>> {
        let mut tx = self.pool().begin().await?;
        let sequence = match append(&mut tx, notice, kept).await? {
            Ok(sequence) => sequence,
            Err(over) => return Ok(Err(over)),
        };
        crate::linkage::audit::write(&mut tx, audit, std::slice::from_ref(entry)).await?;
        tx.commit().await?;
        Ok(Ok(sequence))
    }

    /// Deletes notices sent before `cutoff` (ISO 8601) that their module has been given;
    /// returns how many. Undelivered ones stay until they are delivered.
    pub async fn expire_notices(&self, cutoff: &str) -> Result<u64> {
        let r = sqlx::query(
            "DELETE FROM notices WHERE sent_at < $1 AND sequence <= COALESCE(
                (SELECT delivered FROM notice_deliveries d WHERE d.lg_code = notices.lg_code AND d.module_id = notices.module_id), 0)",
        )
        .bind(cutoff)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected())
    }

    pub async fn notices_since(&self, lg_code: &str, after: i64, limit: u32) -> Result<Vec<Notice>> {
        let rows = sqlx::query(&format!("SELECT {NOTICE_COLUMNS} FROM notices WHERE lg_code = $1 AND sequence > $2 ORDER BY sequence LIMIT $3"))
            .bind(lg_code)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(notice_row).collect()
    }

    /// Notices `lg_code` received (newest first), and those it sent, for its administrator.
    pub async fn notices_of(&self, lg_code: &str, limit: u32) -> Result<(Vec<Notice>, Vec<(String, Notice)>)> {
        let received = sqlx::query(&format!("SELECT {NOTICE_COLUMNS} FROM notices WHERE lg_code = $1 ORDER BY sequence DESC LIMIT $2"))
            .bind(lg_code)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(notice_row)
            .collect::<Result<Vec<_>>>()?;
        let sent = sqlx::query(&format!("SELECT lg_code, {NOTICE_COLUMNS} FROM notices WHERE from_lg_code = $1 ORDER BY sent_at DESC, sequence DESC LIMIT $2"))
            .bind(lg_code)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| Ok((r.try_get::<String, _>("lg_code")?, notice_row(r)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok((received, sent))
    }

    /// Passes over the notice `sequence` of `lg_code` for `module_id` without delivering
    /// it, if it is the next one the module would be given (a notice its module refuses for
    /// ever, holding those behind it), with `audit` in the same transaction. `false` if it is
    /// not next (delivered already, or others for the module come first).
    pub async fn skip_notice(&self, lg_code: &str, module_id: &str, sequence: i64, audit: &crate::linkage::audit::AuditContext, entry: &crate::linkage::audit::AuditEntry) -> Result<bool> {
        let position = self.delivery_position(super::deliveries::Feed::Notices, lg_code, module_id).await?;
        let mut tx = self.pool().begin().await?;
        let next: Option<i64> = sqlx::query("SELECT MIN(sequence) FROM notices WHERE lg_code = $1 AND module_id = $2 AND sequence > $3")
            .bind(lg_code)
            .bind(module_id)
            .bind(position)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        if next != Some(sequence) || !super::deliveries::advance(&mut tx, super::deliveries::Feed::Notices, lg_code, module_id, position, sequence).await? {
            return Ok(false);
        }
        crate::linkage::audit::write(&mut tx, audit, std::slice::from_ref(entry)).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn notice_heads(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT lg_code, sequence FROM notice_heads").fetch_all(self.pool()).await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }
}
