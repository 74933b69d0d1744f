//! One municipality's whole footprint, to move it to another host (a municipality
//! changing platforms, or a backup site): every row keyed by its `lg_code` (registration,
//! subscriptions, config, module storage, linkage data, events, deliveries, audit, usage),
//! plus the catalog entries its subscriptions need (vendor, module, versions with their
//! components and reviews), in the `dump` format.
//!
//! Import is all or nothing, into a host where the municipality is not registered. Catalog
//! entries the target already has are kept as they are (a version must have the same
//! component digest there); audit rows get new ids in the same order. A version the target
//! does not have is checked as admission would: its component must hash to its digest and
//! carry the vendor's signature over it and the manifest as signed, by the key of a vendor
//! this host has registered itself (an archive cannot bring a vendor, nor a key).

use super::dump::{self, Column, Item, Reader, Writer};
use super::{Backend, Db};
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use sqlx::Row;
use std::io::{BufRead, Write};

pub const FORMAT: &str = "nukisashi-municipality";
pub const VERSION: u64 = 1;

const SUBSCRIBED: &str = "SELECT module_id FROM subscriptions WHERE lg_code = $1";

/// The catalog rows a municipality's subscriptions need, and the columns that identify a
/// row (an existing row with the same key is kept on import).
fn catalog_filter(table: &str) -> Option<(String, &'static [&'static str])> {
    Some(match table {
        "vendors" => (format!("WHERE id IN (SELECT vendor_id FROM modules WHERE id IN ({SUBSCRIBED}))"), &["id"]),
        "modules" => (format!("WHERE id IN ({SUBSCRIBED})"), &["id"]),
        "components" => (format!("WHERE digest IN (SELECT digest FROM module_versions WHERE module_id IN ({SUBSCRIBED}))"), &["digest"]),
        "module_versions" => (format!("WHERE module_id IN ({SUBSCRIBED})"), &["module_id", "version"]),
        "reviews" => (format!("WHERE module_id IN ({SUBSCRIBED})"), &["module_id", "version", "decision", "decided_at"]),
        _ => return None,
    })
}

/// Columns the target assigns itself.
fn assigned_by_target(table: &str, column: &str) -> bool {
    table == "audit_log" && column == "id"
}

/// Writes everything that belongs to `lg_code`, from one consistent snapshot; returns the
/// number of rows.
pub async fn export(db: &Db, lg_code: &str, out: &mut (impl Write + Send)) -> Result<u64> {
    let mut tx = super::backup::snapshot(db).await?;
    let registered: i64 = sqlx::query("SELECT COUNT(*) FROM municipalities WHERE lg_code = $1").bind(lg_code).fetch_one(&mut *tx).await?.try_get(0)?;
    if registered == 0 {
        bail!("municipality {lg_code} is not registered on this host");
    }
    let mut writer = Writer::new(out);
    writer.line(&json!({ "format": FORMAT, "version": VERSION, "lg_code": lg_code, "created_at": super::now_iso() }))?;
    for table in dump::tables(&mut tx, db.backend()).await? {
        let filter = match catalog_filter(&table) {
            Some((filter, _)) => filter,
            None if dump::columns(&mut tx, db.backend(), &table).await?.iter().any(|(c, _)| c == "lg_code") => "WHERE lg_code = $1".to_string(),
            // Platform-wide tables (the operator's cost policies) stay behind.
            None => continue,
        };
        writer.table(&mut tx, db.backend(), &table, &filter, Some(lg_code)).await?;
    }
    tx.commit().await?;
    writer.finish()
}

/// What an import did.
#[derive(Debug, serde::Serialize)]
pub struct Imported {
    pub lg_code: String,
    /// Rows written (catalog rows the host already had are not counted).
    pub rows: u64,
    /// Catalog rows the host already had.
    pub kept: u64,
}

struct Target {
    table: String,
    /// Where each file column goes (`None`: assigned by the target).
    columns: Vec<Option<Column>>,
    /// The imported columns' rows, written many per statement.
    rows: dump::BatchInsert,
    /// For catalog tables: the key columns, by index into the file's row.
    key: Option<Vec<usize>>,
}

/// Imports an export into `db`, in one transaction: nothing is written unless the whole
/// file is intact and fits.
pub async fn import(db: &Db, input: impl BufRead) -> Result<Imported> {
    let (mut reader, header) = Reader::open(input, FORMAT, VERSION)?;
    let lg_code = header["lg_code"].as_str().context("the export names no municipality")?.to_string();
    crate::lgcode::LgCode::parse(&lg_code).map_err(|e| anyhow::anyhow!("the export's municipality code is invalid: {e}"))?;

    let mut tx = db.pool().begin().await?;
    let existing: i64 = sqlx::query("SELECT COUNT(*) FROM municipalities WHERE lg_code = $1").bind(&lg_code).fetch_one(&mut *tx).await?.try_get(0)?;
    if existing > 0 {
        bail!("municipality {lg_code} is already registered on this host; an import only brings a municipality the host does not have");
    }
    if db.backend() == Backend::Sqlite {
        sqlx::query("PRAGMA defer_foreign_keys = ON").execute(&mut *tx).await?;
    }
    let tables = dump::tables(&mut tx, db.backend()).await?;
    let mut current: Option<Target> = None;
    let (mut rows, mut kept) = (0u64, 0u64);
    // Catalog rows this import adds: they are checked before it commits.
    let mut new_vendors: Vec<String> = Vec::new();
    let mut new_versions: Vec<(String, String)> = Vec::new();
    let nothing = "nothing was imported";
    while let Some(item) = reader.next().context(nothing)? {
        match item {
            Item::Table { name, columns } => {
                if !tables.contains(&name) {
                    bail!("the export has table {name}, which this host's schema does not; {nothing}");
                }
                let schema = dump::schema_columns(&mut tx, db.backend(), &name, &columns).await?;
                let columns: Vec<Option<Column>> = schema.into_iter().map(|c| (!assigned_by_target(&name, &c.0)).then_some(c)).collect();
                if let Some(mut done) = current.take() {
                    done.rows.flush(&mut tx).await.context(nothing)?;
                }
                let inserted: Vec<Column> = columns.iter().flatten().cloned().collect();
                let key = match catalog_filter(&name) {
                    Some((_, key)) => Some(
                        key.iter()
                            .map(|k| columns.iter().position(|c| c.as_ref().is_some_and(|c| c.0 == *k)).with_context(|| format!("the export's {name} has no {k} column")))
                            .collect::<Result<Vec<_>>>()?,
                    ),
                    None if columns.iter().flatten().any(|(c, _)| c == "lg_code") => None,
                    None => bail!("the export has rows of platform-wide table {name}; {nothing}"),
                };
                current = Some(Target { rows: dump::BatchInsert::new(db.backend(), &name, inserted), table: name, columns, key });
            }
            Item::Row(values) => {
                let Some(t) = &mut current else { bail!("the export has a row before any table") };
                if values.len() != t.columns.len() {
                    bail!("a row of {} has {} values for {} columns", t.table, values.len(), t.columns.len());
                }
                if t.key.is_none() {
                    let lg = t.columns.iter().zip(&values).find(|(c, _)| c.as_ref().is_some_and(|c| c.0 == "lg_code")).map(|(_, v)| v);
                    if lg != Some(&Value::String(lg_code.clone())) {
                        bail!("the export for {lg_code} holds a row of {} for another municipality; {nothing}", t.table);
                    }
                }
                if let Some(key) = &t.key
                    && catalog_row_exists(&mut tx, t, key, &values).await?
                {
                    kept += 1;
                    continue;
                }
                let column = |name: &str| t.columns.iter().position(|c| c.as_ref().is_some_and(|c| c.0 == name)).and_then(|i| values[i].as_str().map(str::to_string));
                match t.table.as_str() {
                    "vendors" => new_vendors.extend(column("id")),
                    "module_versions" => new_versions.extend(column("module_id").zip(column("version"))),
                    _ => {}
                }
                let imported: Vec<Value> = t.columns.iter().zip(values).filter_map(|(c, v)| c.is_some().then_some(v)).collect();
                t.rows.push(&mut tx, imported).await.with_context(|| format!("importing rows of {}; {nothing}", t.table))?;
                rows += 1;
            }
        }
    }
    if let Some(mut last) = current.take() {
        last.rows.flush(&mut tx).await.with_context(|| format!("importing rows of {}; {nothing}", last.table))?;
    }
    if let Some(vendor) = new_vendors.first() {
        bail!("the export brings vendor `{vendor}`, which this host has not registered: register the vendor with its key here first; {nothing}");
    }
    for (module, version) in &new_versions {
        verify_version(&mut tx, module, version).await.with_context(|| format!("{module} {version}: {nothing}"))?;
    }
    dump::reset_sequences(&mut tx, db.backend()).await?;
    super::kv::recount(&mut tx, Some(&lg_code)).await?;
    // Routing generations are this host's: what arrived is stamped with the next one here.
    let generation = super::routing::next_generation(&mut tx).await?;
    sqlx::query("UPDATE subscriptions SET generation = $1 WHERE lg_code = $2").bind(generation).bind(&lg_code).execute(&mut *tx).await?;
    sqlx::query("UPDATE providers SET generation = $1 WHERE lg_code = $2").bind(generation).bind(&lg_code).execute(&mut *tx).await?;
    sqlx::query("UPDATE modules SET generation = $1 WHERE generation > $1").bind(generation).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(Imported { lg_code, rows, kept })
}

/// Checks a version an import brings as admission checked it on its first host: the
/// component's bytes hash to its digest, and the signature over them and the manifest as
/// signed verifies with the key of the vendor as registered here; the manifest stored is
/// the one signed.
async fn verify_version(tx: &mut sqlx::AnyConnection, module: &str, version: &str) -> Result<()> {
    let row = sqlx::query(
        "SELECT v.digest, v.manifest, v.signature, v.signed_manifest, c.bytes, k.public_key
         FROM module_versions v JOIN components c ON c.digest = v.digest JOIN modules m ON m.id = v.module_id JOIN vendors k ON k.id = m.vendor_id
         WHERE v.module_id = $1 AND v.version = $2",
    )
    .bind(module)
    .bind(version)
    .fetch_optional(&mut *tx)
    .await?
    .context("the version, its component, module or vendor is missing")?;
    let (digest, manifest, signature, signed, bytes, key): (String, String, Option<String>, Option<String>, Vec<u8>, String) =
        (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, row.try_get(3)?, row.try_get(4)?, row.try_get(5)?);
    if crate::engine::digest(&bytes) != digest {
        bail!("its component does not hash to its digest {digest}");
    }
    let (Some(signature), Some(signed)) = (signature, signed) else {
        bail!("it carries no vendor signature (it was admitted before signatures were kept): publish it on this host instead");
    };
    crate::plugins::signing::verify(&key, &signature, &bytes, signed.as_bytes()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let as_signed = crate::catalog::manifest::Manifest::parse(signed.as_bytes()).map_err(|e| anyhow::anyhow!("its signed manifest: {e}"))?;
    let stored: crate::catalog::manifest::Manifest = serde_json::from_str(&manifest).context("its manifest")?;
    if as_signed != stored {
        bail!("its manifest differs from the one its vendor signed");
    }
    Ok(())
}

/// Whether the target has this catalog row already; a version it has must be the same
/// component.
async fn catalog_row_exists(tx: &mut sqlx::AnyConnection, t: &Target, key: &[usize], values: &[Value]) -> Result<bool> {
    let key_cols: Vec<Column> = key.iter().map(|&i| t.columns[i].clone().expect("key columns are imported")).collect();
    let key_vals: Vec<Value> = key.iter().map(|&i| values[i].clone()).collect();
    let condition = key_cols.iter().enumerate().map(|(i, c)| format!("{} = ${}", dump::quote(&c.0), i + 1)).collect::<Vec<_>>().join(" AND ");
    let digest_select = if t.table == "module_versions" { "digest" } else { "NULL" };
    let sql = format!("SELECT {digest_select} FROM {} WHERE {condition}", dump::quote(&t.table));
    let found = dump::bind_row(sqlx::query(&sql), &t.table, &key_cols, &key_vals)?.fetch_optional(&mut *tx).await?;
    let Some(found) = found else { return Ok(false) };
    if t.table == "module_versions" {
        let here: String = found.try_get(0)?;
        let digest_at = t.columns.iter().position(|c| c.as_ref().is_some_and(|c| c.0 == "digest")).context("module_versions without digest")?;
        if values[digest_at] != Value::String(here.clone()) {
            bail!(
                "module {} version {} exists on this host with a different component ({here}); nothing was imported",
                key_vals[0], key_vals[1]
            );
        }
    }
    Ok(true)
}
