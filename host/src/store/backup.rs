//! Online backup and restore of the whole platform database (catalog with component bytes,
//! municipalities, config, linkage data, module storage, events, audit, usage), for SQLite
//! and PostgreSQL alike, in one portable format (`dump`).
//!
//! The backup reads every table inside one transaction (SQLite: one read snapshot;
//! PostgreSQL: REPEATABLE READ), so it is consistent while traffic goes on: it holds every
//! write acknowledged before it began. A restore checks the digest and row count before it
//! commits, into an empty database of either backend.

use super::dump::{self, Item, Reader, Writer};
use super::{Backend, Db};
use anyhow::{Context, Result, bail};
use base64::Engine;
use serde_json::json;
use sqlx::Row;
use std::io::{BufRead, Write};

pub const FORMAT: &str = "nukisashi-backup";
pub const VERSION: u64 = 1;

/// Opens a transaction that reads one consistent snapshot.
pub(super) async fn snapshot(db: &Db) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
    let mut tx = db.pool().begin().await?;
    if db.backend() == Backend::Postgres {
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
    }
    Ok(tx)
}

/// Writes a consistent backup of everything to `out`; returns the number of rows.
pub async fn backup(db: &Db, secret: &[u8], out: &mut (impl Write + Send)) -> Result<u64> {
    let mut tx = snapshot(db).await?;
    let mut writer = Writer::new(out);
    writer.line(&json!({
        "format": FORMAT,
        "version": VERSION,
        "created_at": super::now_iso(),
        "backend": format!("{:?}", db.backend()).to_lowercase(),
        "jwt_secret": base64::engine::general_purpose::STANDARD.encode(secret),
    }))?;
    for table in dump::tables(&mut tx, db.backend()).await? {
        writer.table(&mut tx, db.backend(), &table, "", None).await?;
    }
    tx.commit().await?;
    writer.finish()
}

/// What a restore did.
#[derive(Debug, serde::Serialize)]
pub struct Restored {
    pub rows: u64,
    pub tables: u64,
    pub jwt_secret: Vec<u8>,
}

/// Restores a backup into `db`, which must hold no data: all of it in one transaction, or
/// nothing if the file is incomplete, altered or does not fit the schema.
pub async fn restore(db: &Db, input: impl BufRead) -> Result<Restored> {
    let (mut reader, header) = Reader::open(input, FORMAT, VERSION)?;
    let jwt_secret = base64::engine::general_purpose::STANDARD.decode(header["jwt_secret"].as_str().unwrap_or("")).context("the backup's secret is damaged")?;

    let mut tx = db.pool().begin().await?;
    let existing = dump::tables(&mut tx, db.backend()).await?;
    for t in &existing {
        let n: i64 = sqlx::query(&format!("SELECT COUNT(*) FROM {}", dump::quote(t))).fetch_one(&mut *tx).await?.try_get(0)?;
        // A fresh database has its one routing-generation row; the backup brings its own.
        if t == "routing" && n <= 1 {
            sqlx::query("DELETE FROM routing").execute(&mut *tx).await?;
            continue;
        }
        if n > 0 {
            bail!("the target database already holds data (table {t} has {n} rows); restore into a fresh data directory or database");
        }
    }
    if db.backend() == Backend::Sqlite {
        sqlx::query("PRAGMA defer_foreign_keys = ON").execute(&mut *tx).await?;
    }
    let mut current: Option<dump::BatchInsert> = None;
    let (mut rows, mut tables) = (0u64, 0u64);
    let incomplete = "nothing was restored";
    while let Some(item) = reader.next().context(incomplete)? {
        match item {
            Item::Table { name, columns } => {
                if !existing.contains(&name) {
                    bail!("the backup has table {name}, which this host's schema does not");
                }
                if let Some(mut done) = current.take() {
                    done.flush(&mut tx).await.context(incomplete)?;
                }
                let cols = dump::schema_columns(&mut tx, db.backend(), &name, &columns).await?;
                current = Some(dump::BatchInsert::new(db.backend(), &name, cols));
                tables += 1;
            }
            Item::Row(values) => {
                let Some(batch) = &mut current else { bail!("the backup has a row before any table") };
                batch.push(&mut tx, values).await.context(incomplete)?;
                rows += 1;
            }
        }
    }
    if let Some(mut last) = current.take() {
        last.flush(&mut tx).await.context(incomplete)?;
    }
    // Explicit ids went in; the sequence continues after them.
    dump::reset_sequences(&mut tx, db.backend()).await?;
    // A backup from before storage quotas has no usage rows; count what it brought. One
    // from before the routing generation has no routing row.
    super::kv::recount(&mut tx, None).await?;
    sqlx::query("INSERT INTO routing (id, generation) VALUES (1, 0) ON CONFLICT (id) DO NOTHING").execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(Restored { rows, tables, jwt_secret })
}
