//! Key-value rows scoped to (municipality, module). Every query names both columns; there
//! is no function here that takes a key without its scope.
//!
//! Every write also moves the scope's row in `kv_usage` (bytes of keys and values, number
//! of keys) in the same transaction, and a write that would take it past its quota is
//! refused before anything is written. The usage row is touched first, so concurrent
//! writes of one scope take turns on it (a row lock on PostgreSQL, the database lock on
//! SQLite) and cannot both slip under the quota.

use super::{Db, now_iso};
use anyhow::Result;
use sqlx::{AnyConnection, Row};
use std::collections::BTreeMap;

/// How much one (municipality, module) may keep (`[limits.storage]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub bytes: u64,
    pub keys: u64,
}

/// A write refused because it would exceed the quota; the message names the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct OverQuota(pub String);

/// Why an increment did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotIncremented {
    NotAnInteger(String),
    OverQuota(OverQuota),
}

/// What a scope keeps now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    pub bytes: i64,
    pub keys: i64,
}

/// The (municipality, module) a key-value store belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvScope {
    pub lg_code: String,
    pub module_id: String,
}

impl Db {
    pub async fn kv_get(&self, scope: &KvScope, key: &str) -> Result<Option<Vec<u8>>> {
        let row = sqlx::query("SELECT value FROM kv_entries WHERE lg_code = $1 AND module_id = $2 AND key = $3")
            .bind(&scope.lg_code)
            .bind(&scope.module_id)
            .bind(key)
            .fetch_optional(self.pool())
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get(0)?),
            None => None,
        })
    }

    pub async fn kv_set(&self, scope: &KvScope, key: &str, value: &[u8], quota: Quota) -> Result<std::result::Result<(), OverQuota>> {
        let mut tx = self.pool().begin().await?;
        let put = set(&mut tx, scope, key, value, quota).await?;
        if put.is_ok() {
            tx.commit().await?;
        }
        Ok(put)
    }

    pub async fn kv_delete(&self, scope: &KvScope, key: &str) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let existed = delete(&mut tx, scope, key).await?;
        tx.commit().await?;
        Ok(existed)
    }

    /// Adds `delta` to the decimal integer under `key` (missing: 0) in one transaction that
    /// first takes the scope's usage row, so concurrent increments serialise. The inner
    /// `Err` says why not: the stored value is not an integer, or the quota is full.
    pub async fn kv_increment(&self, scope: &KvScope, key: &str, delta: i64, quota: Quota) -> Result<std::result::Result<i64, NotIncremented>> {
        let mut tx = self.pool().begin().await?;
        lock_usage(&mut tx, scope).await?;
        let current = value_in(&mut tx, scope, key).await?;
        let next = match current.as_deref().map(parse_counter).unwrap_or(Some(0)).and_then(|n| n.checked_add(delta)) {
            Some(next) => next,
            None => return Ok(Err(NotIncremented::NotAnInteger(format!("the value under `{key}` is not an integer that can take {delta} more")))),
        };
        if let Err(over) = set(&mut tx, scope, key, next.to_string().as_bytes(), quota).await? {
            return Ok(Err(NotIncremented::OverQuota(over)));
        }
        tx.commit().await?;
        Ok(Ok(next))
    }

    /// Stores `value` under `key` only if the key still holds `seen` (`None`: absent), in
    /// one transaction that first takes the scope's usage row, so it serialises with every
    /// other write of the scope. `Ok(Ok(false))`: the value had changed, nothing written.
    pub async fn kv_swap(&self, scope: &KvScope, key: &str, seen: Option<&[u8]>, value: &[u8], quota: Quota) -> Result<std::result::Result<bool, OverQuota>> {
        let mut tx = self.pool().begin().await?;
        lock_usage(&mut tx, scope).await?;
        let current = value_in(&mut tx, scope, key).await?;
        if current.as_deref() != seen {
            return Ok(Ok(false));
        }
        if let Err(over) = set(&mut tx, scope, key, value, quota).await? {
            return Ok(Err(over));
        }
        tx.commit().await?;
        Ok(Ok(true))
    }

    /// What `scope` keeps now.
    pub async fn kv_usage(&self, scope: &KvScope) -> Result<Usage> {
        let row = sqlx::query("SELECT bytes, keys FROM kv_usage WHERE lg_code = $1 AND module_id = $2")
            .bind(&scope.lg_code)
            .bind(&scope.module_id)
            .fetch_optional(self.pool())
            .await?;
        Ok(match row {
            Some(r) => Usage { bytes: r.try_get(0)?, keys: r.try_get(1)? },
            None => Usage::default(),
        })
    }

    /// What each module of `lg_code` keeps now.
    pub async fn kv_usage_of(&self, lg_code: &str) -> Result<Vec<(String, Usage)>> {
        let rows = sqlx::query("SELECT module_id, bytes, keys FROM kv_usage WHERE lg_code = $1 ORDER BY module_id")
            .bind(lg_code)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, Usage { bytes: r.try_get(1)?, keys: r.try_get(2)? }))).collect()
    }

    /// Keys with `prefix`, strictly after `after`, in byte order, at most `limit`.
    pub async fn kv_list_keys(&self, scope: &KvScope, prefix: &str, after: Option<&str>, limit: u32) -> Result<Vec<String>> {
        // A range scan on the primary key instead of LIKE, so `%` and `_` in keys stay
        // literal: keys with a prefix are one contiguous run in byte order.
        let (op, bound) = match after {
            Some(after) if after >= prefix => (">", after),
            _ => (">=", prefix),
        };
        let sql = format!(
            "SELECT key FROM kv_entries WHERE lg_code = $1 AND module_id = $2 AND key {op} $3 ORDER BY key LIMIT $4"
        );
        let rows = sqlx::query(&sql)
            .bind(&scope.lg_code)
            .bind(&scope.module_id)
            .bind(bound)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        let mut keys = Vec::with_capacity(rows.len());
        for r in rows {
            let key: String = r.try_get(0)?;
            if !key.starts_with(prefix) {
                break;
            }
            keys.push(key);
        }
        Ok(keys)
    }

    /// Every (key, value) of a scope in key order, one page at a time.
    pub async fn kv_page(&self, scope: &KvScope, after: Option<&str>, limit: u32) -> Result<Vec<(String, Vec<u8>)>> {
        let rows = sqlx::query(
            "SELECT key, value FROM kv_entries WHERE lg_code = $1 AND module_id = $2 AND key > $3 ORDER BY key LIMIT $4",
        )
        .bind(&scope.lg_code)
        .bind(&scope.module_id)
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }
}

/// A counter's stored form: decimal text, as `increment` writes it.
pub fn parse_counter(bytes: &[u8]) -> Option<i64> {
    std::str::from_utf8(bytes).ok()?.trim().parse().ok()
}

/// Recomputes the usage rows of `lg_code` (or of everyone) from the entries, inside the
/// caller's transaction: after a restore or an import brought entries in other than by
/// writes.
pub async fn recount(conn: &mut AnyConnection, lg_code: Option<&str>) -> Result<()> {
    const INSERT: &str = "INSERT INTO kv_usage (lg_code, module_id, bytes, keys)
         SELECT lg_code, module_id, SUM(octet_length(key) + octet_length(value)), COUNT(*) FROM kv_entries";
    match lg_code {
        Some(lg) => {
            sqlx::query("DELETE FROM kv_usage WHERE lg_code = $1").bind(lg).execute(&mut *conn).await?;
            sqlx::query(&format!("{INSERT} WHERE lg_code = $1 GROUP BY lg_code, module_id")).bind(lg).execute(&mut *conn).await?;
        }
        None => {
            sqlx::query("DELETE FROM kv_usage").execute(&mut *conn).await?;
            sqlx::query(&format!("{INSERT} GROUP BY lg_code, module_id")).execute(&mut *conn).await?;
        }
    }
    Ok(())
}

/// Makes sure `scope` has a usage row and takes its lock for the rest of the transaction.
async fn lock_usage(conn: &mut AnyConnection, scope: &KvScope) -> Result<()> {
    sqlx::query(
        "INSERT INTO kv_usage (lg_code, module_id, bytes, keys) VALUES ($1, $2, 0, 0)
         ON CONFLICT (lg_code, module_id) DO UPDATE SET bytes = kv_usage.bytes",
    )
    .bind(&scope.lg_code)
    .bind(&scope.module_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The value under `key`, read inside the caller's transaction.
async fn value_in(conn: &mut AnyConnection, scope: &KvScope, key: &str) -> Result<Option<Vec<u8>>> {
    let row = sqlx::query("SELECT value FROM kv_entries WHERE lg_code = $1 AND module_id = $2 AND key = $3")
        .bind(&scope.lg_code)
        .bind(&scope.module_id)
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(match row {
        Some(r) => Some(r.try_get(0)?),
        None => None,
    })
}

/// Stored size of `key`'s entry (key and value), if it exists.
async fn stored_size(conn: &mut AnyConnection, scope: &KvScope, key: &str) -> Result<Option<i64>> {
    let row = sqlx::query("SELECT octet_length(key) + octet_length(value) FROM kv_entries WHERE lg_code = $1 AND module_id = $2 AND key = $3")
        .bind(&scope.lg_code)
        .bind(&scope.module_id)
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(match row {
        Some(r) => Some(r.try_get(0)?),
        None => None,
    })
}

/// Writes one entry inside the caller's transaction, unless it would exceed `quota`.
async fn set(conn: &mut AnyConnection, scope: &KvScope, key: &str, value: &[u8], quota: Quota) -> Result<std::result::Result<(), OverQuota>> {
    lock_usage(conn, scope).await?;
    let old = stored_size(conn, scope, key).await?;
    let delta_bytes = (key.len() + value.len()) as i64 - old.unwrap_or(0);
    let delta_keys = i64::from(old.is_none());
    let moved = sqlx::query(
        "UPDATE kv_usage SET bytes = bytes + $3, keys = keys + $4
         WHERE lg_code = $1 AND module_id = $2 AND ($3 <= 0 OR bytes + $3 <= $5) AND ($4 <= 0 OR keys + $4 <= $6)",
    )
    .bind(&scope.lg_code)
    .bind(&scope.module_id)
    .bind(delta_bytes)
    .bind(delta_keys)
    .bind(quota.bytes.min(i64::MAX as u64) as i64)
    .bind(quota.keys.min(i64::MAX as u64) as i64)
    .execute(&mut *conn)
    .await?;
    if moved.rows_affected() == 0 {
        let what = if delta_keys > 0 {
            format!("{} keys or {} bytes", quota.keys, quota.bytes)
        } else {
            format!("{} bytes", quota.bytes)
        };
        return Ok(Err(OverQuota(format!(
            "module `{}` at {} keeps at most {what} in kv (the limit is [limits.storage] kv_bytes and kv_keys); delete entries to make room",
            scope.module_id, scope.lg_code
        ))));
    }
    sqlx::query(
        "INSERT INTO kv_entries (lg_code, module_id, key, value, updated_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (lg_code, module_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    )
    .bind(&scope.lg_code)
    .bind(&scope.module_id)
    .bind(key)
    .bind(value.to_vec())
    .bind(now_iso())
    .execute(&mut *conn)
    .await?;
    Ok(Ok(()))
}

async fn delete(conn: &mut AnyConnection, scope: &KvScope, key: &str) -> Result<bool> {
    lock_usage(conn, scope).await?;
    let Some(size) = stored_size(conn, scope, key).await? else { return Ok(false) };
    sqlx::query("DELETE FROM kv_entries WHERE lg_code = $1 AND module_id = $2 AND key = $3")
        .bind(&scope.lg_code)
        .bind(&scope.module_id)
        .bind(key)
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE kv_usage SET bytes = bytes - $3, keys = keys - 1 WHERE lg_code = $1 AND module_id = $2")
        .bind(&scope.lg_code)
        .bind(&scope.module_id)
        .bind(size)
        .execute(&mut *conn)
        .await?;
    Ok(true)
}

/// Applies buffered writes (`None`: delete) inside the caller's transaction; the inner
/// `Err` if they would exceed `quota` (the caller then rolls back).
pub async fn apply(conn: &mut AnyConnection, scope: &KvScope, writes: &BTreeMap<String, Option<Vec<u8>>>, quota: Quota) -> Result<std::result::Result<(), OverQuota>> {
    for (key, value) in writes {
        match value {
            Some(value) => {
                if let Err(over) = set(&mut *conn, scope, key, value, quota).await? {
                    return Ok(Err(over));
                }
            }
            None => {
                delete(&mut *conn, scope, key).await?;
            }
        }
    }
    Ok(Ok(()))
}
