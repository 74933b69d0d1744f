//! The municipality's linkage data: residents, identity numbers, tax summaries and the
//! change feed. Every query names `lg_code`; the functions that write take an open
//! transaction, so an import commits whole or not at all.

use super::placeholders::{in_list, positional, value_rows};
use super::{Db, now_iso};
use crate::linkage::{Change, ChangeKind, IdentityNumbers, Resident, Sex, Status, TaxSummary};
use anyhow::{Context, Result};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use std::collections::HashMap;

const RESIDENT_COLUMNS: &str = "addressee_number, integrated_number, household_number, name, name_kana, birth_date, sex, \
     relationship, postal_code, address, resident_since, status, status_changed_on, status_reason";

fn resident_from(row: &AnyRow) -> Result<Resident> {
    let sex: String = row.try_get("sex")?;
    let status: String = row.try_get("status")?;
    Ok(Resident {
        addressee_number: row.try_get("addressee_number")?,
        integrated_number: row.try_get("integrated_number")?,
        household_number: row.try_get("household_number")?,
        name: row.try_get("name")?,
        name_kana: row.try_get("name_kana")?,
        birth_date: row.try_get("birth_date")?,
        sex: Sex::parse(&sex).with_context(|| format!("unknown sex `{sex}` in the database"))?,
        relationship: row.try_get("relationship")?,
        postal_code: row.try_get("postal_code")?,
        address: row.try_get("address")?,
        resident_since: row.try_get("resident_since")?,
        status: Status::parse(&status).with_context(|| format!("unknown status `{status}` in the database"))?,
        status_changed_on: row.try_get("status_changed_on")?,
        status_reason: row.try_get("status_reason")?,
    })
}

fn numbers_from(row: &AnyRow) -> Result<IdentityNumbers> {
    Ok(IdentityNumbers { individual_number: row.try_get("individual_number")?, resident_record_code: row.try_get("resident_record_code")? })
}

fn tax_from(row: &AnyRow) -> Result<TaxSummary> {
    Ok(TaxSummary {
        addressee_number: row.try_get("addressee_number")?,
        fiscal_year: row.try_get("fiscal_year")?,
        total_income: row.try_get("total_income")?,
        income_based_tax: row.try_get("income_based_tax")?,
    })
}

fn change_from(row: &AnyRow) -> Result<Change> {
    let kind: String = row.try_get("kind")?;
    Ok(Change {
        cursor: row.try_get("cursor")?,
        kind: ChangeKind::parse(&kind).with_context(|| format!("unknown change kind `{kind}` in the database"))?.as_str(),
        addressee_number: row.try_get("addressee_number")?,
        household_number: row.try_get("household_number")?,
        effective_date: row.try_get("effective_date")?,
        reason: row.try_get("reason")?,
    })
}

/// Upper bound for a prefix range scan in byte order: every string starting with the
/// prefix sorts below `prefix + U+10FFFF`.
fn prefix_end(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

impl Db {
    pub async fn resident(&self, lg_code: &str, addressee_number: &str) -> Result<Option<Resident>> {
        let sql = format!("SELECT {RESIDENT_COLUMNS} FROM residents WHERE lg_code = $1 AND addressee_number = $2");
        let row = sqlx::query(&sql).bind(lg_code).bind(addressee_number).fetch_optional(self.pool()).await?;
        row.as_ref().map(resident_from).transpose()
    }

    /// Household members, head (世帯主) first, then by 宛名番号.
    pub async fn household(&self, lg_code: &str, household_number: &str) -> Result<Vec<Resident>> {
        let sql = format!(
            "SELECT {RESIDENT_COLUMNS} FROM residents WHERE lg_code = $1 AND household_number = $2
             ORDER BY CASE WHEN relationship = '世帯主' THEN 0 ELSE 1 END, addressee_number"
        );
        let rows = sqlx::query(&sql).bind(lg_code).bind(household_number).fetch_all(self.pool()).await?;
        rows.iter().map(resident_from).collect()
    }

    /// Residents whose kana key starts with `kana_key`, optionally born on `birth_date`.
    pub async fn search_residents(&self, lg_code: &str, kana_key: &str, birth_date: Option<&str>, limit: u32) -> Result<Vec<Resident>> {
        let birth = if birth_date.is_some() { "AND birth_date = $4" } else { "" };
        let sql = format!(
            "SELECT {RESIDENT_COLUMNS} FROM residents WHERE lg_code = $1 AND kana_key >= $2 AND kana_key < $3 {birth}
             ORDER BY kana_key, addressee_number LIMIT {limit}"
        );
        let mut query = sqlx::query(&sql).bind(lg_code).bind(kana_key).bind(prefix_end(kana_key));
        if let Some(b) = birth_date {
            query = query.bind(b);
        }
        let rows = query.fetch_all(self.pool()).await?;
        rows.iter().map(resident_from).collect()
    }

    /// The identity numbers of a resident; `None` if there is no such resident.
    pub async fn identity_numbers(&self, lg_code: &str, addressee_number: &str) -> Result<Option<IdentityNumbers>> {
        let row = sqlx::query(
            "SELECT n.individual_number, n.resident_record_code FROM residents r
             LEFT JOIN resident_identity_numbers n ON n.lg_code = r.lg_code AND n.addressee_number = r.addressee_number
             WHERE r.lg_code = $1 AND r.addressee_number = $2",
        )
        .bind(lg_code)
        .bind(addressee_number)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(numbers_from).transpose()
    }

    /// The 宛名番号 of `lg_code`'s resident with this 個人番号, if any.
    pub async fn addressee_by_individual_number(&self, lg_code: &str, individual_number: &str) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT n.addressee_number FROM resident_identity_numbers n JOIN residents r ON r.lg_code = n.lg_code AND r.addressee_number = n.addressee_number
             WHERE n.lg_code = $1 AND n.individual_number = $2 ORDER BY n.addressee_number LIMIT 1",
        )
        .bind(lg_code)
        .bind(individual_number)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    pub async fn tax_summary(&self, lg_code: &str, addressee_number: &str, fiscal_year: i64) -> Result<Option<TaxSummary>> {
        let row = sqlx::query(
            "SELECT addressee_number, fiscal_year, total_income, income_based_tax FROM tax_summaries
             WHERE lg_code = $1 AND addressee_number = $2 AND fiscal_year = $3",
        )
        .bind(lg_code)
        .bind(addressee_number)
        .bind(fiscal_year)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(tax_from).transpose()
    }

    /// Changes after `after`, oldest first.
    pub async fn changes_since(&self, lg_code: &str, after: i64, limit: u32) -> Result<Vec<Change>> {
        let rows = sqlx::query(
            "SELECT cursor, kind, addressee_number, household_number, effective_date, reason FROM linkage_changes
             WHERE lg_code = $1 AND cursor > $2 ORDER BY cursor LIMIT $3",
        )
        .bind(lg_code)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(change_from).collect()
    }

    /// Municipalities whose feed has moved past what some delivery saw: (lg_code, head).
    pub async fn linkage_heads(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT lg_code, cursor FROM linkage_heads").fetch_all(self.pool()).await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    /// One page of residents with their identity numbers, by 宛名番号, for export.
    pub async fn residents_page(&self, lg_code: &str, after: &str, limit: u32) -> Result<Vec<(Resident, IdentityNumbers)>> {
        let columns = RESIDENT_COLUMNS.split(", ").map(|c| format!("r.{}", c.trim())).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT {columns}, n.individual_number, n.resident_record_code FROM residents r
             LEFT JOIN resident_identity_numbers n ON n.lg_code = r.lg_code AND n.addressee_number = r.addressee_number
             WHERE r.lg_code = $1 AND r.addressee_number > $2 ORDER BY r.addressee_number LIMIT $3"
        );
        let rows = sqlx::query(&sql).bind(lg_code).bind(after).bind(i64::from(limit)).fetch_all(self.pool()).await?;
        rows.iter().map(|r| Ok((resident_from(r)?, numbers_from(r)?))).collect()
    }

    /// One page of tax summaries by (宛名番号, 年度), for export.
    pub async fn tax_page(&self, lg_code: &str, after: (&str, i64), limit: u32) -> Result<Vec<TaxSummary>> {
        let rows = sqlx::query(
            "SELECT addressee_number, fiscal_year, total_income, income_based_tax FROM tax_summaries
             WHERE lg_code = $1 AND (addressee_number > $2 OR (addressee_number = $2 AND fiscal_year > $3))
             ORDER BY addressee_number, fiscal_year LIMIT $4",
        )
        .bind(lg_code)
        .bind(after.0)
        .bind(after.1)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(tax_from).collect()
    }
}

/// Writes of one import, all inside the caller's transaction.
pub struct LinkageWriter<'a> {
    pub conn: &'a mut AnyConnection,
    pub lg_code: &'a str,
    /// Whether the connection is SQLite (placeholders are written `?` there).
    pub sqlite: bool,
}

/// A change to append to the feed (the cursor is assigned on append).
pub struct NewChange {
    pub kind: ChangeKind,
    pub addressee_number: String,
    pub household_number: String,
    pub effective_date: String,
    pub reason: String,
}

impl LinkageWriter<'_> {
    /// Makes sure the municipality's feed head exists, and locks it. As the transaction's
    /// first statement it is a write, so SQLite takes the write lock up front and the import
    /// cannot lose a race to another writer half-way; on PostgreSQL the `DO UPDATE` holds the
    /// head's row lock to the end, so two imports of one municipality run one after the other
    /// (each sees what the other wrote: no resident is "registered" twice).
    pub async fn begin(&mut self) -> Result<()> {
        sqlx::query("INSERT INTO linkage_heads (lg_code, cursor) VALUES ($1, 0) ON CONFLICT (lg_code) DO UPDATE SET cursor = linkage_heads.cursor")
            .bind(self.lg_code)
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }

    /// Current records (with identity numbers) of the residents among `keys`.
    pub async fn existing_residents(&mut self, keys: &[&str]) -> Result<HashMap<String, (Resident, IdentityNumbers)>> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let columns = RESIDENT_COLUMNS.split(", ").map(|c| format!("r.{}", c.trim())).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT {columns}, n.individual_number, n.resident_record_code FROM residents r
             LEFT JOIN resident_identity_numbers n ON n.lg_code = r.lg_code AND n.addressee_number = r.addressee_number
             WHERE r.lg_code = $1 AND r.addressee_number IN ({})",
            in_list(2, keys.len())
        );
        let sql = positional(self.sqlite, sql);
        let mut query = sqlx::query(&sql).bind(self.lg_code);
        for k in keys {
            query = query.bind(*k);
        }
        let rows = query.fetch_all(&mut *self.conn).await?;
        rows.iter()
            .map(|r| {
                let resident = resident_from(r)?;
                Ok((resident.addressee_number.clone(), (resident, numbers_from(r)?)))
            })
            .collect()
    }

    pub async fn upsert_residents(&mut self, rows: &[&Resident]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "INSERT INTO residents (lg_code, kana_key, {RESIDENT_COLUMNS}) VALUES {}
             ON CONFLICT (lg_code, addressee_number) DO UPDATE SET
               integrated_number = excluded.integrated_number, household_number = excluded.household_number,
               name = excluded.name, name_kana = excluded.name_kana, kana_key = excluded.kana_key,
               birth_date = excluded.birth_date, sex = excluded.sex, relationship = excluded.relationship,
               postal_code = excluded.postal_code, address = excluded.address, resident_since = excluded.resident_since,
               status = excluded.status, status_changed_on = excluded.status_changed_on, status_reason = excluded.status_reason",
            value_rows(1, rows.len(), 16)
        );
        let sql = positional(self.sqlite, sql);
        let mut query = sqlx::query(&sql);
        for r in rows {
            query = query
                .bind(self.lg_code)
                .bind(crate::linkage::kana_key(&r.name_kana))
                .bind(&r.addressee_number)
                .bind(&r.integrated_number)
                .bind(&r.household_number)
                .bind(&r.name)
                .bind(&r.name_kana)
                .bind(&r.birth_date)
                .bind(r.sex.as_str())
                .bind(&r.relationship)
                .bind(&r.postal_code)
                .bind(&r.address)
                .bind(&r.resident_since)
                .bind(r.status.as_str())
                .bind(&r.status_changed_on)
                .bind(&r.status_reason);
        }
        query.execute(&mut *self.conn).await?;
        Ok(())
    }

    pub async fn upsert_identity_numbers(&mut self, rows: &[(&str, &IdentityNumbers)]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "INSERT INTO resident_identity_numbers (lg_code, addressee_number, individual_number, resident_record_code) VALUES {}
             ON CONFLICT (lg_code, addressee_number) DO UPDATE SET
               individual_number = excluded.individual_number, resident_record_code = excluded.resident_record_code",
            value_rows(1, rows.len(), 4)
        );
        let sql = positional(self.sqlite, sql);
        let mut query = sqlx::query(&sql);
        for (key, n) in rows {
            query = query.bind(self.lg_code).bind(*key).bind(&n.individual_number).bind(&n.resident_record_code);
        }
        query.execute(&mut *self.conn).await?;
        Ok(())
    }

    /// Which of `keys` are residents of the municipality (with their household number).
    pub async fn known_residents(&mut self, keys: &[&str]) -> Result<HashMap<String, String>> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = format!(
            "SELECT addressee_number, household_number FROM residents WHERE lg_code = $1 AND addressee_number IN ({})",
            in_list(2, keys.len())
        );
        let sql = positional(self.sqlite, sql);
        let mut query = sqlx::query(&sql).bind(self.lg_code);
        for k in keys {
            query = query.bind(*k);
        }
        let rows = query.fetch_all(&mut *self.conn).await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    /// Current tax summaries of the residents among `keys`, every year.
    pub async fn existing_tax(&mut self, keys: &[&str]) -> Result<HashMap<(String, i64), TaxSummary>> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = format!(
            "SELECT addressee_number, fiscal_year, total_income, income_based_tax FROM tax_summaries
             WHERE lg_code = $1 AND addressee_number IN ({})",
            in_list(2, keys.len())
        );
        let sql = positional(self.sqlite, sql);
        let mut query = sqlx::query(&sql).bind(self.lg_code);
        for k in keys {
            query = query.bind(*k);
        }
        let rows = query.fetch_all(&mut *self.conn).await?;
        rows.iter()
            .map(|r| {
                let t = tax_from(r)?;
                Ok(((t.addressee_number.clone(), t.fiscal_year), t))
            })
            .collect()
    }

    pub async fn upsert_tax(&mut self, rows: &[&TaxSummary]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "INSERT INTO tax_summaries (lg_code, addressee_number, fiscal_year, total_income, income_based_tax) VALUES {}
             ON CONFLICT (lg_code, addressee_number, fiscal_year) DO UPDATE SET
               total_income = excluded.total_income, income_based_tax = excluded.income_based_tax",
            value_rows(1, rows.len(), 5)
        );
        let sql = positional(self.sqlite, sql);
        let mut query = sqlx::query(&sql);
        for t in rows {
            query = query.bind(self.lg_code).bind(&t.addressee_number).bind(t.fiscal_year).bind(t.total_income).bind(t.income_based_tax);
        }
        query.execute(&mut *self.conn).await?;
        Ok(())
    }

    /// Appends `changes` to the feed with the next cursors, in order.
    pub async fn append_changes(&mut self, changes: &[NewChange]) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let head: i64 = sqlx::query("UPDATE linkage_heads SET cursor = cursor + $1 WHERE lg_code = $2 RETURNING cursor")
            .bind(changes.len() as i64)
            .bind(self.lg_code)
            .fetch_one(&mut *self.conn)
            .await?
            .try_get(0)?;
        let first = head - changes.len() as i64 + 1;
        let sql = format!(
            "INSERT INTO linkage_changes (lg_code, cursor, kind, addressee_number, household_number, effective_date, reason, recorded_at) VALUES {}",
            value_rows(1, changes.len(), 8)
        );
        let sql = positional(self.sqlite, sql);
        let now = now_iso();
        let mut query = sqlx::query(&sql);
        for (i, c) in changes.iter().enumerate() {
            query = query
                .bind(self.lg_code)
                .bind(first + i as i64)
                .bind(c.kind.as_str())
                .bind(&c.addressee_number)
                .bind(&c.household_number)
                .bind(&c.effective_date)
                .bind(&c.reason)
                .bind(&now);
        }
        query.execute(&mut *self.conn).await?;
        Ok(())
    }
}
