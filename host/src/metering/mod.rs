//! Metering: usage per municipality, module and day (requests, errors, CPU time in the
//! module, peak memory), gathered in memory on the request path and written to the database
//! every few seconds; module storage sampled every minute (the day's largest is kept); and
//! the monthly cost allocation built on it (`cost`).
//!
//! A crash loses at most the last flush interval of counts (documented trade-off: no
//! database write per request).

pub mod cost;
pub mod policies;

use crate::store::Db;
use anyhow::Result;
use serde::Serialize;
use sqlx::Row;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// How often gathered usage is written.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(5);
/// Module storage is sampled every this many flushes (a minute).
const STORAGE_SAMPLE_EVERY: u32 = 12;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Usage {
    requests: i64,
    errors: i64,
    module_us: i64,
    peak_memory: i64,
}

/// Usage gathered since the last flush, by (municipality, module, day in Japan).
#[derive(Default)]
pub struct Meter {
    pending: Mutex<HashMap<(String, String, String), Usage>>,
}

/// Today in Japan (UTC+9), `YYYY-MM-DD`. Called on every module request, so the text is
/// formatted once a day per thread and reused.
pub fn japan_day() -> String {
    thread_local! {
        static FORMATTED: std::cell::RefCell<(i64, String)> = const { std::cell::RefCell::new((i64::MIN, String::new())) };
    }
    let now = chrono::Utc::now() + chrono::Duration::hours(9);
    let day = now.timestamp().div_euclid(86_400);
    FORMATTED.with_borrow_mut(|(cached_day, text)| {
        if *cached_day != day {
            *text = now.format("%Y-%m-%d").to_string();
            *cached_day = day;
        }
        text.clone()
    })
}

impl Meter {
    /// Counts one request into a module (`cpu`: CPU time spent running it).
    pub fn record(&self, lg_code: &str, module: &str, failed: bool, cpu: Duration, peak_memory: usize) {
        let mut pending = self.pending.lock().expect("meter lock");
        let u = pending.entry((lg_code.to_string(), module.to_string(), japan_day())).or_default();
        u.requests += 1;
        u.errors += i64::from(failed);
        u.module_us += cpu.as_micros() as i64;
        u.peak_memory = u.peak_memory.max(peak_memory as i64);
    }

    /// Writes what was gathered (adding to what the database has); on failure the counts
    /// are kept for the next attempt.
    pub async fn flush(&self, db: &Db) -> Result<()> {
        let batch: Vec<_> = std::mem::take(&mut *self.pending.lock().expect("meter lock")).into_iter().collect();
        if batch.is_empty() {
            return Ok(());
        }
        let written = async {
            let mut tx = db.pool().begin().await?;
            for ((lg, module, day), u) in &batch {
                sqlx::query(
                    "INSERT INTO usage_daily (lg_code, module_id, day, requests, errors, module_us, peak_memory) VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (lg_code, module_id, day) DO UPDATE SET
                       requests = usage_daily.requests + excluded.requests,
                       errors = usage_daily.errors + excluded.errors,
                       module_us = usage_daily.module_us + excluded.module_us,
                       peak_memory = CASE WHEN excluded.peak_memory > usage_daily.peak_memory THEN excluded.peak_memory ELSE usage_daily.peak_memory END",
                )
                .bind(lg)
                .bind(module)
                .bind(day)
                .bind(u.requests)
                .bind(u.errors)
                .bind(u.module_us)
                .bind(u.peak_memory)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            anyhow::Ok(())
        }
        .await;
        if let Err(e) = written {
            let mut pending = self.pending.lock().expect("meter lock");
            for (key, u) in batch {
                let p = pending.entry(key).or_default();
                p.requests += u.requests;
                p.errors += u.errors;
                p.module_us += u.module_us;
                p.peak_memory = p.peak_memory.max(u.peak_memory);
            }
            return Err(e);
        }
        Ok(())
    }
}

/// One day of one module in one municipality.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UsageRow {
    pub lg_code: String,
    pub module_id: String,
    pub day: String,
    pub requests: i64,
    pub errors: i64,
    /// CPU time spent in the module.
    pub cpu_ms: i64,
    pub peak_memory_bytes: i64,
    /// The largest module storage sampled that day.
    pub storage_bytes: i64,
}

/// Usage of a month (`YYYY-MM`), optionally of one municipality.
pub async fn usage(db: &Db, month: &str, lg_code: Option<&str>) -> Result<Vec<UsageRow>> {
    let mut sql = String::from(
        "SELECT lg_code, module_id, day, requests, errors, module_us, peak_memory, storage_bytes FROM usage_daily WHERE day >= $1 AND day < $2",
    );
    if lg_code.is_some() {
        sql.push_str(" AND lg_code = $3");
    }
    sql.push_str(" ORDER BY lg_code, module_id, day");
    let (from, to) = month_range(month)?;
    let mut q = sqlx::query(&sql).bind(from).bind(to);
    if let Some(lg) = lg_code {
        q = q.bind(lg);
    }
    let rows = q.fetch_all(db.pool()).await?;
    rows.iter()
        .map(|r| {
            Ok(UsageRow {
                lg_code: r.try_get(0)?,
                module_id: r.try_get(1)?,
                day: r.try_get(2)?,
                requests: r.try_get(3)?,
                errors: r.try_get(4)?,
                cpu_ms: r.try_get::<i64, _>(5)? / 1000,
                peak_memory_bytes: r.try_get(6)?,
                storage_bytes: r.try_get(7)?,
            })
        })
        .collect()
}

/// Bytes (keys and values) each municipality holds in module storage now.
pub async fn storage_bytes(db: &Db) -> Result<HashMap<String, i64>> {
    let rows = sqlx::query("SELECT lg_code, SUM(bytes) FROM kv_usage GROUP BY lg_code").fetch_all(db.pool()).await?;
    rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get::<Option<i64>, _>(1)?.unwrap_or(0)))).collect()
}

/// Records each module's storage in each municipality for today, keeping the day's largest.
pub async fn sample_storage(db: &Db) -> Result<()> {
    sqlx::query(
        "INSERT INTO usage_daily (lg_code, module_id, day, requests, errors, module_us, peak_memory, storage_bytes)
         SELECT lg_code, module_id, $1, 0, 0, 0, 0, bytes FROM kv_usage WHERE 1 = 1
         ON CONFLICT (lg_code, module_id, day) DO UPDATE SET
           storage_bytes = CASE WHEN excluded.storage_bytes > usage_daily.storage_bytes THEN excluded.storage_bytes ELSE usage_daily.storage_bytes END",
    )
    .bind(japan_day())
    .execute(db.pool())
    .await?;
    Ok(())
}

/// `[first day, first day of the next month)` for `YYYY-MM`.
pub fn month_range(month: &str) -> Result<(String, String)> {
    // Exactly the API's pattern `^[0-9]{4}-(0[1-9]|1[0-2])$`: chrono alone would also take
    // `2026-1` or a signed year.
    let b = month.as_bytes();
    let well_formed = b.len() == 7 && b[4] == b'-' && b[..4].iter().chain(&b[5..]).all(u8::is_ascii_digit) && (1..=12).contains(&(u32::from(b[5] - b'0') * 10 + u32::from(b[6] - b'0')));
    if !well_formed {
        anyhow::bail!("month `{month}` is not YYYY-MM");
    }
    let first = chrono::NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d")
        .map_err(|_| anyhow::anyhow!("month `{month}` is not YYYY-MM"))?;
    let next = first.checked_add_months(chrono::Months::new(1)).expect("a month later exists");
    Ok((first.format("%Y-%m-%d").to_string(), next.format("%Y-%m-%d").to_string()))
}

/// Flushes every interval until the process ends.
pub fn spawn_flusher(app: std::sync::Arc<crate::app::App>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for round in 0u32.. {
            if round % STORAGE_SAMPLE_EVERY == 0 {
                if let Err(e) = sample_storage(&app.db).await {
                    tracing::warn!(error = %format!("{e:#}"), "sampling module storage failed");
                }
            }
            tokio::time::sleep(FLUSH_INTERVAL).await;
            if let Err(e) = app.meter.flush(&app.db).await {
                tracing::warn!(error = %format!("{e:#}"), "metering flush failed; kept for the next one");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::japan_day;

    #[test]
    fn japan_day_is_the_date_in_japan_and_stays_right_when_reused() {
        let formatted = || (chrono::Utc::now() + chrono::Duration::hours(9)).format("%Y-%m-%d").to_string();
        for _ in 0..3 {
            let before = formatted();
            let day = japan_day();
            let after = formatted();
            // Midnight in Japan may fall between the readings.
            assert!(day == before || day == after, "japan_day() gave {day}, the date in Japan is {before}/{after}");
        }
    }
}
