//! The NDJSON format shared by the whole-platform backup and the per-municipality export:
//! a header line, then per table a `{"table","columns"}` line followed by its rows, then an
//! end line with the row count and the SHA-256 of every line before it.
//!
//! ```text
//! {"format":"nukisashi-backup","version":1,...}          header
//! {"table":"vendors","columns":["id",...]}                 a table
//! ["acme","ACME 株式会社",...]                             its rows: text, integer, {"b64":…}, null
//! {"end":true,"rows":1234,"sha256":"…"}                    digest of every line before this one
//! ```

use super::Backend;
use super::placeholders::{positional, value_rows};
use anyhow::{Context, Result, bail};
use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::any::AnyArguments;
use sqlx::{AnyConnection, Row};
use std::io::{BufRead, Write};

/// Tables other tables refer to come first; the rest follow by name.
const FIRST: &[&str] = &["municipalities", "vendors", "modules", "components", "module_versions"];

/// Every table, in restore order. Browser sessions (`sign_in_*`) are left out: they are
/// not data to keep, and after a restore people sign in again.
pub(super) async fn tables(conn: &mut AnyConnection, backend: Backend) -> Result<Vec<String>> {
    let sql = match backend {
        Backend::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%' AND name NOT LIKE 'sign_in_%' ORDER BY name",
        Backend::Postgres => "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() AND tablename NOT LIKE '_sqlx%' AND tablename NOT LIKE 'sign_in_%' ORDER BY tablename",
    };
    let mut names: Vec<String> = sqlx::query(sql).fetch_all(&mut *conn).await?.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>()?;
    names.sort_by_key(|n| (FIRST.iter().position(|f| f == n).unwrap_or(FIRST.len()), n.clone()));
    Ok(names)
}

/// A column's name and how its values travel: `integer`, `blob` or `text`.
pub(super) type Column = (String, &'static str);

pub(super) async fn columns(conn: &mut AnyConnection, backend: Backend, table: &str) -> Result<Vec<Column>> {
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

pub(super) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Writes lines, hashing each.
pub(super) struct Writer<'w, W: Write> {
    out: &'w mut W,
    hasher: Sha256,
    rows: u64,
}

impl<'w, W: Write> Writer<'w, W> {
    pub fn new(out: &'w mut W) -> Self {
        Self { out, hasher: Sha256::new(), rows: 0 }
    }

    pub fn line(&mut self, value: &Value) -> Result<()> {
        let text = serde_json::to_string(value)?;
        self.hasher.update(text.as_bytes());
        self.hasher.update(b"\n");
        writeln!(self.out, "{text}")?;
        Ok(())
    }

    /// Writes `table` with the rows `filter` selects (a `WHERE …` using `$1` = `arg`, or
    /// nothing for every row).
    pub async fn table(&mut self, conn: &mut AnyConnection, backend: Backend, table: &str, filter: &str, arg: Option<&str>) -> Result<()> {
        let cols = columns(conn, backend, table).await?;
        self.line(&json!({ "table": table, "columns": cols.iter().map(|c| &c.0).collect::<Vec<_>>() }))?;
        let list = cols.iter().map(|c| quote(&c.0)).collect::<Vec<_>>().join(", ");
        let order = cols.iter().map(|c| quote(&c.0)).take(3).collect::<Vec<_>>().join(", ");
        let sql = format!("SELECT {list} FROM {} {filter} ORDER BY {order}", quote(table));
        let mut query = sqlx::query(&sql);
        if let Some(arg) = arg {
            query = query.bind(arg);
        }
        for r in query.fetch_all(&mut *conn).await? {
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
            self.line(&Value::Array(values))?;
            self.rows += 1;
        }
        Ok(())
    }

    /// Writes the end line; returns the number of rows.
    pub fn finish(self) -> Result<u64> {
        let digest = hex::encode(self.hasher.finalize());
        writeln!(self.out, "{}", json!({ "end": true, "rows": self.rows, "sha256": digest }))?;
        self.out.flush()?;
        Ok(self.rows)
    }
}

/// One line of a dump after the header.
pub(super) enum Item {
    Table { name: String, columns: Vec<String> },
    Row(Vec<Value>),
}

/// Reads lines, hashing each, and checks the end line.
pub(super) struct Reader<R: BufRead> {
    lines: std::io::Lines<R>,
    hasher: Sha256,
    rows: u64,
}

impl<R: BufRead> Reader<R> {
    /// Opens a dump and returns its header, which must name `format` at `version`.
    pub fn open(input: R, format: &str, version: u64) -> Result<(Self, Value)> {
        let mut reader = Self { lines: input.lines(), hasher: Sha256::new(), rows: 0 };
        let Some(header) = reader.raw()? else { bail!("the file is empty") };
        if header["format"] != format || header["version"] != version {
            bail!("this is not a {format} file of format version {version}");
        }
        Ok((reader, header))
    }

    fn raw(&mut self) -> Result<Option<Value>> {
        let Some(line) = self.lines.next() else { return Ok(None) };
        let line = line.context("the file could not be read")?;
        let value: Value = serde_json::from_str(&line).context("the file has a line that is not JSON")?;
        if value.get("end").is_none() {
            self.hasher.update(line.as_bytes());
            self.hasher.update(b"\n");
        }
        Ok(Some(value))
    }

    /// The next table or row; `None` once the end line has been read and verified.
    pub fn next(&mut self) -> Result<Option<Item>> {
        let Some(value) = self.raw()? else { bail!("the file ends early (no end line): it is incomplete") };
        if value.get("end").is_some() {
            let digest = hex::encode(std::mem::take(&mut self.hasher).finalize());
            if value["sha256"] != Value::String(digest) || value["rows"] != self.rows {
                bail!("the file's digest or row count does not match its content: it was altered or damaged");
            }
            return Ok(None);
        }
        if let Some(name) = value.get("table").and_then(Value::as_str) {
            let columns: Vec<String> = serde_json::from_value(value["columns"].clone()).context("a table line has no column list")?;
            return Ok(Some(Item::Table { name: name.to_string(), columns }));
        }
        let Value::Array(values) = value else { bail!("the file has a malformed row") };
        self.rows += 1;
        Ok(Some(Item::Row(values)))
    }
}

/// Binds one row's values, typed by `cols`, to `query`.
pub(super) fn bind_row<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, AnyArguments<'q>>,
    table: &str,
    cols: &[Column],
    values: &[Value],
) -> Result<sqlx::query::Query<'q, sqlx::Any, AnyArguments<'q>>> {
    if values.len() != cols.len() {
        bail!("a row of {table} has {} values for {} columns", values.len(), cols.len());
    }
    for (v, (_, kind)) in values.iter().zip(cols) {
        query = match (*kind, v) {
            ("integer", Value::Null) => query.bind(None::<i64>),
            ("blob", Value::Null) => query.bind(None::<Vec<u8>>),
            (_, Value::Null) => query.bind(None::<String>),
            ("integer", v) => query.bind(v.as_i64().with_context(|| format!("{table}: expected an integer, got {v}"))?),
            ("blob", v) => query.bind(base64::engine::general_purpose::STANDARD.decode(v["b64"].as_str().unwrap_or("")).context("a blob is not base64")?),
            (_, Value::String(s)) => query.bind(s.clone()),
            (_, v) => bail!("{table}: expected text, got {v}"),
        };
    }
    Ok(query)
}

/// The columns of `names` in this host's schema of `table`, in the file's order.
pub(super) async fn schema_columns(conn: &mut AnyConnection, backend: Backend, table: &str, names: &[String]) -> Result<Vec<Column>> {
    let schema = columns(conn, backend, table).await?;
    names
        .iter()
        .map(|n| schema.iter().find(|(s, _)| s == n).cloned().with_context(|| format!("column {table}.{n} is not in this host's schema")))
        .collect()
}

/// `INSERT INTO table (cols) VALUES (…), (…), …` for `rows` rows, with the backend's
/// placeholders (SQLite's numbered ones would make binding a large statement quadratic).
fn insert_rows_sql(backend: Backend, table: &str, cols: &[Column], rows: usize) -> String {
    let names = cols.iter().map(|c| quote(&c.0)).collect::<Vec<_>>().join(", ");
    positional(backend == Backend::Sqlite, format!("INSERT INTO {} ({names}) VALUES {}", quote(table), value_rows(1, rows, cols.len())))
}

/// Bound parameters per statement: under SQLite's limit (32,766) and PostgreSQL's (65,535).
const MAX_PARAMETERS: usize = 30_000;
/// Rows per statement at most: beyond this a statement gets larger without getting faster.
const MAX_ROWS_PER_STATEMENT: usize = 500;

/// Rows of one table gathered and written many per `INSERT`: a restore or an import of a
/// large municipality is one statement per few hundred rows, not one per row.
pub(super) struct BatchInsert {
    backend: Backend,
    table: String,
    cols: Vec<Column>,
    per_statement: usize,
    full_sql: String,
    rows: Vec<Vec<Value>>,
}

impl BatchInsert {
    pub fn new(backend: Backend, table: &str, cols: Vec<Column>) -> Self {
        let per_statement = (MAX_PARAMETERS / cols.len().max(1)).clamp(1, MAX_ROWS_PER_STATEMENT);
        let full_sql = insert_rows_sql(backend, table, &cols, per_statement);
        Self { backend, table: table.to_string(), cols, per_statement, full_sql, rows: Vec::new() }
    }

    /// Adds a row (checked against the columns now), writing a statement when enough are
    /// gathered.
    pub async fn push(&mut self, conn: &mut AnyConnection, values: Vec<Value>) -> Result<()> {
        if values.len() != self.cols.len() {
            bail!("a row of {} has {} values for {} columns", self.table, values.len(), self.cols.len());
        }
        self.rows.push(values);
        if self.rows.len() >= self.per_statement {
            self.flush(conn).await?;
        }
        Ok(())
    }

    /// Writes the rows gathered so far.
    pub async fn flush(&mut self, conn: &mut AnyConnection) -> Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.rows);
        let partial_sql;
        let sql = if rows.len() == self.per_statement {
            &self.full_sql
        } else {
            partial_sql = insert_rows_sql(self.backend, &self.table, &self.cols, rows.len());
            &partial_sql
        };
        let mut query = sqlx::query(sql);
        for values in &rows {
            query = bind_row(query, &self.table, &self.cols, values)?;
        }
        query.execute(&mut *conn).await.with_context(|| format!("writing rows of {}", self.table))?;
        Ok(())
    }
}

/// On PostgreSQL, moves `audit_log`'s id sequence past the ids now in the table.
pub(super) async fn reset_sequences(conn: &mut AnyConnection, backend: Backend) -> Result<()> {
    if backend == Backend::Postgres {
        // Never backwards: on a live host other audit rows may have taken ids meanwhile.
        sqlx::query("SELECT setval(s, GREATEST(COALESCE((SELECT MAX(id) FROM audit_log), 0), nextval(s))) FROM pg_get_serial_sequence('audit_log', 'id') AS s")
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Connection;

    /// Writes 1,234 rows (two full statements and a partial one) into a temporary table
    /// and reads them back, on SQLite and, when the tests have one, PostgreSQL.
    #[tokio::test]
    async fn batched_rows_arrive_whole() {
        sqlx::any::install_default_drivers();
        let mut urls = vec!["sqlite::memory:".to_string()];
        urls.extend(std::env::var("NUKISASHI_TEST_DATABASE_URL"));
        for url in urls {
            let mut conn = AnyConnection::connect(&url).await.unwrap();
            // BYTEA is a blob column to SQLite too (no affinity keyword matches).
            sqlx::query("CREATE TEMP TABLE batch_probe (n BIGINT, label TEXT, data BYTEA)").execute(&mut conn).await.unwrap();
            let cols: Vec<Column> = vec![("n".into(), "integer"), ("label".into(), "text"), ("data".into(), "blob")];
            let backend = if url.starts_with("sqlite:") { Backend::Sqlite } else { Backend::Postgres };
            let mut batch = BatchInsert::new(backend, "batch_probe", cols);
            for n in 0..1234i64 {
                let label = if n % 7 == 0 { Value::Null } else { json!(format!("行{n}")) };
                batch.push(&mut conn, vec![json!(n), label, json!({ "b64": base64::engine::general_purpose::STANDARD.encode(n.to_le_bytes()) })]).await.unwrap();
            }
            let wrong = batch.push(&mut conn, vec![json!(1)]).await.unwrap_err();
            assert!(wrong.to_string().contains("a row of batch_probe has 1 values for 3 columns"), "{wrong}");
            batch.flush(&mut conn).await.unwrap();

            let rows = sqlx::query("SELECT n, label, data FROM batch_probe ORDER BY n").fetch_all(&mut conn).await.unwrap();
            assert_eq!(rows.len(), 1234, "on {url}");
            for (i, row) in rows.iter().enumerate() {
                let n: i64 = row.try_get(0).unwrap();
                let label: Option<String> = row.try_get(1).unwrap();
                let data: Vec<u8> = row.try_get(2).unwrap();
                assert_eq!(n, i as i64);
                assert_eq!(label, (n % 7 != 0).then(|| format!("行{n}")));
                assert_eq!(data, n.to_le_bytes());
            }
        }
    }
}
