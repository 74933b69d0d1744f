//! The per-municipality log of events between modules, and delivery positions.

use super::{Db, now_iso};
use anyhow::Result;
use sqlx::Row;

/// One event of a municipality's log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Event {
    pub sequence: i64,
    pub source: String,
    pub topic: String,
    pub subject: Option<String>,
    pub payload: String,
}

impl Db {
    /// Appends an event with the next sequence (bumped in the same transaction), unless
    /// `source` already has `kept` events of `lg_code` in the log (the inner `Err` says so).
    pub async fn publish_event(&self, lg_code: &str, source: &str, topic: &str, subject: Option<&str>, payload: &str, kept: u64) -> Result<std::result::Result<i64, String>> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("INSERT INTO event_heads (lg_code, sequence) VALUES ($1, 0) ON CONFLICT (lg_code) DO NOTHING")
            .bind(lg_code)
            .execute(&mut *tx)
            .await?;
        // The head's row is written first, so publishers of one municipality take turns and
        // the count below cannot be slipped past.
        let sequence: i64 = sqlx::query("UPDATE event_heads SET sequence = sequence + 1 WHERE lg_code = $1 RETURNING sequence")
            .bind(lg_code)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        let held: i64 = sqlx::query("SELECT COUNT(*) FROM module_events WHERE lg_code = $1 AND source = $2")
            .bind(lg_code)
            .bind(source)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        if held as u64 >= kept {
            return Ok(Err(format!(
                "module `{source}` at {lg_code} has {held} events in the log, the most it may keep (the limit is [limits.storage] events_kept); older ones expire after event_retention_days"
            )));
        }
        sqlx::query(
            "INSERT INTO module_events (lg_code, sequence, source, topic, subject, payload, published_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(lg_code)
        .bind(sequence)
        .bind(source)
        .bind(topic)
        .bind(subject)
        .bind(payload)
        .bind(now_iso())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(sequence))
    }

    /// Events each source module of `lg_code` has in the log now.
    pub async fn events_kept(&self, lg_code: &str) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT source, COUNT(*) FROM module_events WHERE lg_code = $1 GROUP BY source ORDER BY source").bind(lg_code).fetch_all(self.pool()).await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    /// Deletes events published before `cutoff` (ISO 8601); returns how many.
    pub async fn expire_events(&self, cutoff: &str) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM module_events WHERE published_at < $1").bind(cutoff).execute(self.pool()).await?.rows_affected())
    }

    pub async fn events_since(&self, lg_code: &str, after: i64, limit: u32) -> Result<Vec<Event>> {
        let rows = sqlx::query(
            "SELECT sequence, source, topic, subject, payload FROM module_events WHERE lg_code = $1 AND sequence > $2 ORDER BY sequence LIMIT $3",
        )
        .bind(lg_code)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok(Event { sequence: r.try_get(0)?, source: r.try_get(1)?, topic: r.try_get(2)?, subject: r.try_get(3)?, payload: r.try_get(4)? }))
            .collect()
    }

    pub async fn event_heads(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT lg_code, sequence FROM event_heads").fetch_all(self.pool()).await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }
}
