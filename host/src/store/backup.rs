//! Online backup and restore of the whole platform database (catalog with component bytes,
//! municipalities, config, linkage data, module storage, events, audit, usage), for SQLite
//! and PostgreSQL alike, in one portable format: NDJSON lines.
//!
//! ```text
//! {"format":"nukisashi-backup","version":1,...}          header
//! {"table":"vendors","columns":["id",...]}                 a table
//! ["acme","ACME 株式会社",...]                             its rows: text, integer, {"b64":…}, null
//! {"end":true,"rows":1234,"sha256":"…"}                    digest of every line before this one
//! ```
//!
//! The backup reads every table inside one transaction (SQLite: one read snapshot;
//! PostgreSQL: REPEATABLE READ), so it is consistent while traffic goes on: it holds every
//! write acknowledged before it began. A restore checks the digest and row count before it
//! commits, into an empty database of either backend.

use super::{Backend, Db};
use anyhow::{Context, Result, bail};
use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};
use std::io::{BufRead, Write};

pub const FORMAT: &str = "nukisashi-backup";
pub const VERSION: u64 = 1;

/// Tables other tables refer to come first; the rest follow by name.
const FIRST: &[&str] = &["municipalities", "vendors", "modules", "components", "module_versions"];

async fn tables(conn: &mut AnyConnection, backend: Backend) -> Result<Vec<String>> {
    let sql = match backend {
        Backend::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%' ORDER BY name",
        Backend::Postgres => "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() AND tablename NOT LIKE '_sqlx%' ORDER BY tablename",
    };
    let mut names: Vec<String> = sqlx::query(sql).fetch_all(&mut *conn).await?.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>()?;
    names.sort_by_key(|n| (FIRST.iter().position(|f| f == n).unwrap_or(FIRST.len()), n.clone()));
    Ok(names)
}

/// (column, kind) for a table, kind being `integer`, `blob` or `text`.
async fn columns(conn: &mut AnyConnection, backend: Backend, table: &str) -> Result<Vec<(String, &'static str)>> {
    let rows = match backend {
        Backend::Sqlite => sqlx::query(&format!("SELECT name, type FROM pragma_table_info('{table}') ORDER BY cid")).fetch_all(&mut *conn).await?,
        Backend::Postgres => {
            sqlx::query("SELECT column_name::text, data_type::text FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position")
                .bind(table)
                .fetch_all(&mut *conn)
                .await?
        }
    };
    rows.iter()
        .map(|r| {
            let name: String = r.try_get(0)?;
            let ty: String = r.try_get::<String, _>(1)?.to_ascii_lowercase();
            let kind = if ty.contains("int") || ty.contains("serial") {
                "integer"
            } else if ty.contains("blob") || ty.contains("bytea") {
                "blob"
            } else {
                "text"
            };
            Ok((name, kind))
        })
        .collect()
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Writes a consistent backup of everything to `out`; returns the number of rows.
pub async fn backup(db: &Db, secret: &[u8], out: &mut (impl Write + Send)) -> Result<u64> {
    let mut tx = db.pool().begin().await?;
    if db.backend() == Backend::Postgres {
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
    }
    let mut hasher = Sha256::new();
    let mut line = |out: &mut dyn Write, value: &Value| -> Result<()> {
        let text = serde_json::to_string(value)?;
        hasher.update(text.as_bytes());
        hasher.update(b"\n");
        writeln!(out, "{text}")?;
        Ok(())
    };
    let header = json!({
        "format": FORMAT,
        "version": VERSION,
        "created_at": super::now_iso(),
        "backend": format!("{:?}", db.backend()).to_lowercase(),
        "jwt_secret": base64::engine::general_purpose::STANDARD.encode(secret),
    });
    line(out, &header)?;
    let mut count = 0u64;
    for table in tables(&mut tx, db.backend()).await? {
        let cols = columns(&mut tx, db.backend(), &table).await?;
        line(out, &json!({ "table": table, "columns": cols.iter().map(|c| &c.0).collect::<Vec<_>>() }))?;
        let list = cols.iter().map(|c| quote(&c.0)).collect::<Vec<_>>().join(", ");
        let order = cols.iter().map(|c| quote(&c.0)).take(3).collect::<Vec<_>>().join(", ");
        let rows = sqlx::query(&format!("SELECT {list} FROM {} ORDER BY {order}", quote(&table))).fetch_all(&mut *tx).await?;
        for r in rows {
            let mut values = Vec::with_capacity(cols.len());
            for (i, (_, kind)) in cols.iter().enumerate() {
                values.push(match *kind {
                    "integer" => r.try_get::<Option<i64>, _>(i)?.map(Value::from).unwrap_or(Value::Null),
                    "blob" => r
                        .try_get::<Option<Vec<u8>>, _>(i)?
                        .map(|b| json!({ "b64": base64::engine::general_purpose::STANDARD.encode(b) }))
                        .unwrap_or(Value::Null),
                    _ => r.try_get::<Option<String>, _>(i)?.map(Value::from).unwrap_or(Value::Null),
                });
            }
            line(out, &Value::Array(values))?;
            count += 1;
        }
    }
    tx.commit().await?;
    let digest = hex::encode(hasher.finalize());
    writeln!(out, "{}", json!({ "end": true, "rows": count, "sha256": digest }))?;
    out.flush()?;
    Ok(count)
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
    let mut lines = input.lines();
    let mut hasher = Sha256::new();
    let next = |lines: &mut std::io::Lines<_>| -> Result<Option<(String, Value)>> {
        match lines.next() {
            None => Ok(None),
            Some(l) => {
                let l: String = l.context("the backup could not be read")?;
                let v: Value = serde_json::from_str(&l).context("the backup has a line that is not JSON")?;
                Ok(Some((l, v)))
            }
        }
    };
    let Some((text, header)) = next(&mut lines)? else { bail!("the backup file is empty") };
    if header["format"] != FORMAT || header["version"] != VERSION {
        bail!("this is not a nukisashi backup of format version {VERSION}");
    }
    hasher.update(text.as_bytes());
    hasher.update(b"\n");
    let jwt_secret = base64::engine::general_purpose::STANDARD.decode(header["jwt_secret"].as_str().unwrap_or("")).context("the backup's secret is damaged")?;

    let mut tx = db.pool().begin().await?;
    let existing = tables(&mut tx, db.backend()).await?;
    for t in &existing {
        let n: i64 = sqlx::query(&format!("SELECT COUNT(*) FROM {}", quote(t))).fetch_one(&mut *tx).await?.try_get(0)?;
        if n > 0 {
            bail!("the target database already holds data (table {t} has {n} rows); restore into a fresh data directory or database");
        }
    }
    if db.backend() == Backend::Sqlite {
        sqlx::query("PRAGMA defer_foreign_keys = ON").execute(&mut *tx).await?;
    }
    let mut current: Option<(String, Vec<(String, &'static str)>, String)> = None;
    let (mut rows, mut table_count) = (0u64, 0u64);
    let end = loop {
        let Some((text, value)) = next(&mut lines)? else { bail!("the backup ends early (no end line): it is incomplete, nothing was restored") };
        if value.get("end").is_some() {
            break value;
        }
        hasher.update(text.as_bytes());
        hasher.update(b"\n");
        if let Some(table) = value.get("table").and_then(Value::as_str) {
            if !existing.iter().any(|t| t == table) {
                bail!("the backup has table {table}, which this host's schema does not");
            }
            let names: Vec<String> = serde_json::from_value(value["columns"].clone())?;
            let schema = columns(&mut tx, db.backend(), table).await?;
            let cols = names
                .iter()
                .map(|n| schema.iter().find(|(s, _)| s == n).cloned().with_context(|| format!("column {table}.{n} is not in this host's schema")))
                .collect::<Result<Vec<_>>>()?;
            let placeholders = (1..=cols.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
            let sql = format!("INSERT INTO {} ({}) VALUES ({placeholders})", quote(table), cols.iter().map(|c| quote(&c.0)).collect::<Vec<_>>().join(", "));
            current = Some((table.to_string(), cols, sql));
            table_count += 1;
            continue;
        }
        let Some((table, cols, sql)) = &current else { bail!("the backup has a row before any table") };
        let Value::Array(values) = value else { bail!("the backup has a malformed row in {table}") };
        if values.len() != cols.len() {
            bail!("a row of {table} has {} values for {} columns", values.len(), cols.len());
        }
        let mut q = sqlx::query(sql);
        for (v, (_, kind)) in values.iter().zip(cols) {
            q = match (*kind, v) {
                ("integer", Value::Null) => q.bind(None::<i64>),
                ("blob", Value::Null) => q.bind(None::<Vec<u8>>),
                (_, Value::Null) => q.bind(None::<String>),
                ("integer", v) => q.bind(v.as_i64().with_context(|| format!("{table}: expected an integer, got {v}"))?),
                ("blob", v) => q.bind(base64::engine::general_purpose::STANDARD.decode(v["b64"].as_str().unwrap_or("")).context("a blob is not base64")?),
                (_, Value::String(s)) => q.bind(s.clone()),
                (_, v) => bail!("{table}: expected text, got {v}"),
            };
        }
        q.execute(&mut *tx).await.with_context(|| format!("restoring a row of {table}"))?;
        rows += 1;
    };
    let digest = hex::encode(hasher.finalize());
    if end["sha256"] != Value::String(digest) || end["rows"] != rows {
        bail!("the backup's digest or row count does not match its content: it was altered or damaged, nothing was restored");
    }
    if db.backend() == Backend::Postgres {
        // Explicit ids went in; the sequence continues after them.
        sqlx::query("SELECT setval(pg_get_serial_sequence('audit_log', 'id'), COALESCE((SELECT MAX(id) FROM audit_log), 0) + 1, false)")
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(Restored { rows, tables: table_count, jwt_secret })
}
