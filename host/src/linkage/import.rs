//! Bulk import of the standard layouts, streamed: a blocking thread decodes (UTF-8 or
//! Shift_JIS/CP932) and parses the CSV while the async side writes batches into **one**
//! transaction. Bad rows are reported with their line number and skipped; a broken stream
//! or a database error rolls everything back, so an import is all or nothing. Re-importing
//! the same data writes nothing and adds nothing to the change feed.

use super::layout::{Layout, ResidentRow, parse_resident, parse_tax};
use super::{ChangeKind, IdentityNumbers, TaxSummary};
use crate::store::Db;
use crate::store::linkage::{LinkageWriter, NewChange};
use serde::Serialize;
use std::collections::HashMap;
use std::io::Read;
use tokio::sync::mpsc;

/// Rows written per statement batch.
const BATCH_ROWS: usize = 250;
/// Rejected rows listed in a report (all are counted).
const MAX_LISTED_REJECTIONS: usize = 1000;

/// The character encoding of an import file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    /// Shift_JIS as Windows writes it (CP932), user-defined characters (外字, F040–F9FC)
    /// mapped to the private-use area U+E000–U+E757.
    ShiftJis,
}

impl Encoding {
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().replace('_', "-").as_str() {
            "utf-8" | "utf8" => Some(Encoding::Utf8),
            "shift-jis" | "sjis" | "cp932" | "windows-31j" | "ms932" => Some(Encoding::ShiftJis),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf-8",
            Encoding::ShiftJis => "shift_jis",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Rejected {
    pub line: u64,
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ImportReport {
    pub rows: u64,
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub rejected_count: u64,
    /// The first rejected rows (up to 1000), by line number.
    pub rejected: Vec<Rejected>,
    /// Entries added to the change feed.
    pub changes: u64,
}

impl ImportReport {
    fn reject(&mut self, line: u64, reason: String) {
        self.rejected_count += 1;
        if self.rejected.len() < MAX_LISTED_REJECTIONS {
            self.rejected.push(Rejected { line, reason });
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file is not in the layout (header), nothing was imported.
    #[error("{0}")]
    Layout(String),
    /// The upload broke off or could not be read; nothing was imported.
    #[error("the file could not be read to the end ({0}); nothing was imported")]
    Interrupted(String),
    #[error("the database failed during the import; nothing was imported: {0:#}")]
    Database(anyhow::Error),
}

impl From<sqlx::Error> for ImportError {
    fn from(e: sqlx::Error) -> Self {
        ImportError::Database(e.into())
    }
}

impl From<anyhow::Error> for ImportError {
    fn from(e: anyhow::Error) -> Self {
        ImportError::Database(e)
    }
}

enum Parsed {
    Resident(ResidentRow),
    Tax(TaxSummary),
}

enum Batch {
    Rows(Vec<(u64, Result<Parsed, String>)>),
    Failed(ImportError),
}

/// Imports one file of `layout` for `lg_code` from `reader` (read on a blocking thread).
pub async fn import<R: Read + Send + 'static>(
    db: &Db,
    lg_code: &str,
    layout: Layout,
    encoding: Encoding,
    reader: R,
) -> Result<ImportReport, ImportError> {
    let (sender, mut batches) = mpsc::channel::<Batch>(4);
    let parser = tokio::task::spawn_blocking(move || parse_file(reader, layout, encoding, sender));

    let mut tx = db.pool().begin().await?;
    let mut writer = LinkageWriter { conn: &mut *tx, lg_code, sqlite: db.backend() == crate::store::Backend::Sqlite };
    writer.begin().await?;
    let mut report = ImportReport::default();
    let mut seen: HashMap<String, u64> = HashMap::new();
    let today = chrono::Local::now().date_naive().format("%Y-%m-%d").to_string();
    while let Some(batch) = batches.recv().await {
        let rows = match batch {
            Batch::Rows(rows) => rows,
            Batch::Failed(e) => return Err(e),
        };
        report.rows += rows.len() as u64;
        let mut good = Vec::with_capacity(rows.len());
        for (line, parsed) in rows {
            match parsed {
                Err(reason) => report.reject(line, reason),
                Ok(row) => {
                    let key = match &row {
                        Parsed::Resident(r) => r.resident.addressee_number.clone(),
                        Parsed::Tax(t) => format!("{}/{}", t.addressee_number, t.fiscal_year),
                    };
                    match seen.get(&key) {
                        Some(first) => report.reject(line, format!("the same record ({key}) is already on line {first} of this file")),
                        None => {
                            seen.insert(key, line);
                            good.push((line, row));
                        }
                    }
                }
            }
        }
        match layout {
            Layout::Residents => write_residents(&mut writer, good, &today, &mut report).await?,
            Layout::Tax => write_tax(&mut writer, good, &today, &mut report).await?,
        }
    }
    // The parser ended: normally, or with a failure it already sent.
    parser.await.map_err(|e| ImportError::Interrupted(format!("the parser stopped: {e}")))?;
    report.rejected.sort_by_key(|r| r.line);
    tx.commit().await?;
    Ok(report)
}

async fn write_residents(
    writer: &mut LinkageWriter<'_>,
    rows: Vec<(u64, Parsed)>,
    today: &str,
    report: &mut ImportReport,
) -> Result<(), ImportError> {
    let rows: Vec<ResidentRow> = rows.into_iter().filter_map(|(_, p)| if let Parsed::Resident(r) = p { Some(r) } else { None }).collect();
    let keys: Vec<&str> = rows.iter().map(|r| r.resident.addressee_number.as_str()).collect();
    let existing = writer.existing_residents(&keys).await?;
    let mut residents = Vec::new();
    let mut numbers: Vec<(&str, &IdentityNumbers)> = Vec::new();
    let mut changes = Vec::new();
    for row in &rows {
        let key = row.resident.addressee_number.as_str();
        let before = existing.get(key);
        let kind = ChangeKind::between(before.map(|(r, _)| r), &row.resident);
        let numbers_changed = before.map(|(_, n)| n) != Some(&row.numbers) && (before.is_some() || row.numbers != IdentityNumbers::default());
        match (before, kind) {
            (None, _) => report.inserted += 1,
            (Some(_), Some(_)) => report.updated += 1,
            (Some(_), None) if numbers_changed => report.updated += 1,
            (Some(_), None) => report.unchanged += 1,
        }
        if numbers_changed {
            numbers.push((key, &row.numbers));
        }
        if let Some(kind) = kind {
            residents.push(&row.resident);
            let r = &row.resident;
            let effective_date = match kind {
                ChangeKind::Registered => r.resident_since.clone(),
                _ => r.status_changed_on.clone().unwrap_or_else(|| today.to_string()),
            };
            let reason = r.status_reason.clone().unwrap_or_else(|| default_reason(kind).to_string());
            changes.push(NewChange {
                kind,
                addressee_number: r.addressee_number.clone(),
                household_number: r.household_number.clone(),
                effective_date,
                reason,
            });
        }
    }
    writer.upsert_residents(&residents).await?;
    writer.upsert_identity_numbers(&numbers).await?;
    writer.append_changes(&changes).await?;
    report.changes += changes.len() as u64;
    Ok(())
}

async fn write_tax(
    writer: &mut LinkageWriter<'_>,
    rows: Vec<(u64, Parsed)>,
    today: &str,
    report: &mut ImportReport,
) -> Result<(), ImportError> {
    let rows: Vec<(u64, TaxSummary)> = rows.into_iter().filter_map(|(l, p)| if let Parsed::Tax(t) = p { Some((l, t)) } else { None }).collect();
    let mut keys: Vec<&str> = rows.iter().map(|(_, t)| t.addressee_number.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    let known = writer.known_residents(&keys).await?;
    let existing = writer.existing_tax(&keys).await?;
    let mut changed = Vec::new();
    let mut changes = Vec::new();
    for (line, t) in &rows {
        let Some(household) = known.get(&t.addressee_number) else {
            report.reject(*line, format!("宛名番号 {} is not in the resident registry; import the residents first", t.addressee_number));
            continue;
        };
        match existing.get(&(t.addressee_number.clone(), t.fiscal_year)) {
            Some(old) if old == t => {
                report.unchanged += 1;
                continue;
            }
            Some(_) => report.updated += 1,
            None => report.inserted += 1,
        }
        changed.push(t);
        changes.push(NewChange {
            kind: ChangeKind::TaxAssessed,
            addressee_number: t.addressee_number.clone(),
            household_number: household.clone(),
            effective_date: today.to_string(),
            reason: format!("{}年度 個人住民税", t.fiscal_year),
        });
    }
    writer.upsert_tax(&changed).await?;
    writer.append_changes(&changes).await?;
    report.changes += changes.len() as u64;
    Ok(())
}

fn default_reason(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Registered => "登録",
        ChangeKind::Updated => "記載事項変更",
        ChangeKind::MovedOut => "転出",
        ChangeKind::Deceased => "死亡",
        ChangeKind::Reinstated => "回復",
        ChangeKind::TaxAssessed => "課税",
    }
}

/// Drops `\r`, so CRLF files count lines like LF files (the csv crate numbers lines by
/// `\n` and, with CRLF, reports each record one line early). A field cannot lose anything
/// it may hold: control characters, CR included, are refused in every field.
struct WithoutCarriageReturns<R>(R);

impl<R: Read> Read for WithoutCarriageReturns<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let n = self.0.read(buf)?;
            if n == 0 {
                return Ok(0);
            }
            let mut kept = 0;
            for i in 0..n {
                if buf[i] != b'\r' {
                    buf[kept] = buf[i];
                    kept += 1;
                }
            }
            if kept > 0 {
                return Ok(kept);
            }
        }
    }
}

/// The blocking half: decode, parse, send batches. Stops at the first failure it cannot
/// attribute to one row (a bad header, a broken stream), which aborts the import.
fn parse_file<R: Read>(reader: R, layout: Layout, encoding: Encoding, sender: mpsc::Sender<Batch>) {
    let decoded: Box<dyn Read> = match encoding {
        // UTF-8 is read as bytes: a field that is not valid UTF-8 rejects its row instead
        // of being silently replaced.
        Encoding::Utf8 => Box::new(reader),
        Encoding::ShiftJis => Box::new(
            encoding_rs_io::DecodeReaderBytesBuilder::new().encoding(Some(encoding_rs::SHIFT_JIS)).build(reader),
        ),
    };
    let mut csv = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(WithoutCarriageReturns(decoded));
    let mut record = csv::ByteRecord::new();
    let mut header_seen = false;
    let mut batch = Vec::with_capacity(BATCH_ROWS);
    loop {
        // Where the next record starts (1-based): the line number reported for it.
        let line = csv.position().line();
        match csv.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let failure = match e.kind() {
                    csv::ErrorKind::Io(io) => ImportError::Interrupted(io.to_string()),
                    _ => ImportError::Layout(format!("the file is not valid CSV: {e}")),
                };
                let _ = sender.blocking_send(Batch::Failed(failure));
                return;
            }
        }
        let fields: Result<Vec<&str>, _> = record.iter().map(std::str::from_utf8).collect();
        if !header_seen {
            header_seen = true;
            let checked = match &fields {
                Ok(fields) => layout.check_header(fields),
                Err(_) => Err(format!("the header is not valid {}; pass the file's encoding (utf-8 or shift_jis)", encoding.name())),
            };
            if let Err(e) = checked {
                let _ = sender.blocking_send(Batch::Failed(ImportError::Layout(e)));
                return;
            }
            continue;
        }
        let parsed = match fields {
            Err(_) => Err("the row is not valid UTF-8 (is the file Shift_JIS? pass encoding shift_jis)".to_string()),
            Ok(fields) => match layout {
                Layout::Residents => parse_resident(&fields).map(Parsed::Resident),
                Layout::Tax => parse_tax(&fields).map(Parsed::Tax),
            },
        };
        batch.push((line, parsed));
        if batch.len() == BATCH_ROWS && sender.blocking_send(Batch::Rows(std::mem::take(&mut batch))).is_err() {
            return;
        }
    }
    if !header_seen {
        let _ = sender.blocking_send(Batch::Failed(ImportError::Layout(format!(
            "the file is empty; it needs the header row {}",
            layout.columns().join(",")
        ))));
        return;
    }
    if !batch.is_empty() {
        let _ = sender.blocking_send(Batch::Rows(batch));
    }
}
