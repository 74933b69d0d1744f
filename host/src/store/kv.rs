//! Key-value rows scoped to (municipality, module). Every query names both columns; there
//! is no function here that takes a key without its scope.

use super::{Db, now_iso};
use anyhow::Result;
use sqlx::{Any, AnyConnection, Executor, Row};
use std::collections::BTreeMap;

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

    pub async fn kv_set(&self, scope: &KvScope, key: &str, value: &[u8]) -> Result<()> {
        set(self.pool(), scope, key, value).await
    }

    pub async fn kv_delete(&self, scope: &KvScope, key: &str) -> Result<bool> {
        delete(self.pool(), scope, key).await
    }

    /// Adds `delta` to the decimal integer under `key` (missing: 0) in one transaction whose
    /// first statement takes the row's write lock (SQLite: the database's), so concurrent
    /// increments serialise. `Err` if the stored value is not an integer.
    pub async fn kv_increment(&self, scope: &KvScope, key: &str, delta: i64) -> Result<std::result::Result<i64, String>> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO kv_entries (lg_code, module_id, key, value, updated_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (lg_code, module_id, key) DO UPDATE SET updated_at = excluded.updated_at",
        )
        .bind(&scope.lg_code)
        .bind(&scope.module_id)
        .bind(key)
        .bind(b"0".to_vec())
        .bind(now_iso())
        .execute(&mut *tx)
        .await?;
        let current: Vec<u8> = sqlx::query("SELECT value FROM kv_entries WHERE lg_code = $1 AND module_id = $2 AND key = $3")
            .bind(&scope.lg_code)
            .bind(&scope.module_id)
            .bind(key)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        let next = match parse_counter(&current).and_then(|n| n.checked_add(delta)) {
            Some(next) => next,
            None => return Ok(Err(format!("the value under `{key}` is not an integer that can take {delta} more"))),
        };
        set(&mut *tx, scope, key, next.to_string().as_bytes()).await?;
        tx.commit().await?;
        Ok(Ok(next))
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

async fn set<'c, E: Executor<'c, Database = Any>>(on: E, scope: &KvScope, key: &str, value: &[u8]) -> Result<()> {
    sqlx::query(
        "INSERT INTO kv_entries (lg_code, module_id, key, value, updated_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (lg_code, module_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    )
    .bind(&scope.lg_code)
    .bind(&scope.module_id)
    .bind(key)
    .bind(value.to_vec())
    .bind(now_iso())
    .execute(on)
    .await?;
    Ok(())
}

async fn delete<'c, E: Executor<'c, Database = Any>>(on: E, scope: &KvScope, key: &str) -> Result<bool> {
    let r = sqlx::query("DELETE FROM kv_entries WHERE lg_code = $1 AND module_id = $2 AND key = $3")
        .bind(&scope.lg_code)
        .bind(&scope.module_id)
        .bind(key)
        .execute(on)
        .await?;
    Ok(r.rows_affected() > 0)
}

/// Applies buffered writes (`None`: delete) inside the caller's transaction.
pub async fn apply(conn: &mut AnyConnection, scope: &KvScope, writes: &BTreeMap<String, Option<Vec<u8>>>) -> Result<()> {
    for (key, value) in writes {
        match value {
            Some(value) => set(&mut *conn, scope, key, value).await?,
            None => {
                delete(&mut *conn, scope, key).await?;
            }
        }
    }
    Ok(())
}
