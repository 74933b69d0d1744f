//! How far each (municipality, module) has been pushed a feed: the change feed, the event
//! log or the notices from other municipalities. Positions only move by compare-and-set
//! inside a delivery's transaction.

use super::{Db, now_iso};
use anyhow::Result;
use sqlx::{AnyConnection, Row};

/// Which log is pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Feed {
    Changes,
    Events,
    /// Notices from other municipalities (positions in the receiving municipality's log).
    Notices,
}

impl Feed {
    fn table(self) -> &'static str {
        match self {
            Feed::Changes => "change_deliveries",
            Feed::Events => "event_deliveries",
            Feed::Notices => "notice_deliveries",
        }
    }
}

impl Db {
    /// How far `module` has been given `lg_code`'s feed (0 before the first).
    pub async fn delivery_position(&self, feed: Feed, lg_code: &str, module_id: &str) -> Result<i64> {
        let table = feed.table();
        sqlx::query(&format!(
            "INSERT INTO {table} (lg_code, module_id, delivered, updated_at) VALUES ($1, $2, 0, $3) ON CONFLICT (lg_code, module_id) DO NOTHING"
        ))
        .bind(lg_code)
        .bind(module_id)
        .bind(now_iso())
        .execute(self.pool())
        .await?;
        let row = sqlx::query(&format!("SELECT delivered FROM {table} WHERE lg_code = $1 AND module_id = $2"))
            .bind(lg_code)
            .bind(module_id)
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get(0)?)
    }

    pub async fn record_delivery_failure(&self, feed: Feed, lg_code: &str, module_id: &str, error: &str) -> Result<()> {
        sqlx::query(&format!(
            "UPDATE {} SET failures = failures + 1, last_error = $1, updated_at = $2 WHERE lg_code = $3 AND module_id = $4",
            feed.table()
        ))
        .bind(error)
        .bind(now_iso())
        .bind(lg_code)
        .bind(module_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Delivery state per module of a municipality: (module, delivered, failures, last error).
    pub async fn deliveries(&self, feed: Feed, lg_code: &str) -> Result<Vec<(String, i64, i64, Option<String>)>> {
        let rows = sqlx::query(&format!("SELECT module_id, delivered, failures, last_error FROM {} WHERE lg_code = $1 ORDER BY module_id", feed.table()))
            .bind(lg_code)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?))).collect()
    }
}

impl Db {
    /// Takes (or renews) the lease on one delivery queue for `holder`, for `ttl`; `false`
    /// if another holder's lease has not lapsed.
    pub async fn take_delivery_lease(&self, feed: Feed, lg_code: &str, module_id: &str, holder: &str, ttl: std::time::Duration) -> Result<bool> {
        let now = chrono::Utc::now().timestamp_millis();
        let taken = sqlx::query(
            "INSERT INTO delivery_leases (feed, lg_code, module_id, holder, expires_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (feed, lg_code, module_id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
             WHERE delivery_leases.holder = excluded.holder OR delivery_leases.expires_at < $6",
        )
        .bind(feed.table())
        .bind(lg_code)
        .bind(module_id)
        .bind(holder)
        .bind(now + ttl.as_millis() as i64)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(taken.rows_affected() == 1)
    }

    /// Gives a lease up (the queue is caught up), so any host may take it next.
    pub async fn release_delivery_lease(&self, feed: Feed, lg_code: &str, module_id: &str, holder: &str) -> Result<()> {
        sqlx::query("DELETE FROM delivery_leases WHERE feed = $1 AND lg_code = $2 AND module_id = $3 AND holder = $4")
            .bind(feed.table())
            .bind(lg_code)
            .bind(module_id)
            .bind(holder)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

/// Moves a position from `previous` to `next` on `conn` (inside the delivery's
/// transaction); `false` if someone else moved it first.
pub async fn advance(conn: &mut AnyConnection, feed: Feed, lg_code: &str, module_id: &str, previous: i64, next: i64) -> Result<bool> {
    let moved = sqlx::query(&format!(
        "UPDATE {} SET delivered = $1, failures = 0, last_error = NULL, updated_at = $2 WHERE lg_code = $3 AND module_id = $4 AND delivered = $5",
        feed.table()
    ))
    .bind(next)
    .bind(now_iso())
    .bind(lg_code)
    .bind(module_id)
    .bind(previous)
    .execute(conn)
    .await?;
    Ok(moved.rows_affected() == 1)
}
