//! `/api/v1/municipalities/{code}/…`: the municipality's linkage data: bulk import and
//! export of the standard layouts, the change feed and its deliveries, and the audit trail
//! (read-only: there is no route that changes or deletes audit rows).

use super::auth::{Caller, refused};
use super::municipalities::parse_code;
use super::openapi::{EncodingName, File, LayoutName, MunicipalityPath};
use super::problem::Problem;
use crate::app::App;
use crate::linkage::audit::{self, AuditFilter, AuditRow};
use crate::linkage::import::{Encoding, ImportError, ImportReport, import};
use crate::linkage::layout::Layout;
use crate::linkage::{Change, export};
use crate::store::deliveries::Feed;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Deserialize)]
pub struct EncodingQuery {
    encoding: Option<String>,
}

fn encoding(q: &EncodingQuery) -> Result<Encoding, Problem> {
    match &q.encoding {
        None => Ok(Encoding::Utf8),
        Some(name) => Encoding::parse(name)
            .ok_or_else(|| Problem::bad_request("unknown-encoding", format!("encoding `{name}` is not supported: use utf-8 or shift_jis"))),
    }
}

fn layout(name: &str) -> Result<Layout, Problem> {
    match name {
        "residents" => Ok(Layout::Residents),
        "tax" => Ok(Layout::Tax),
        other => Err(Problem::not_found("unknown-layout", format!("there is no `{other}` layout: use residents or tax"))),
    }
}

// `POST …/linkage/{layout}/import?encoding=`: the CSV file is the request body. It is
// spooled to disk first (the caller's authorization and the declared size are checked
// before a byte is read), then imported in one transaction: all good rows or nothing are
// written; the report lists rejected rows.
/// Import a CSV file of the layout (streamed; all good rows or nothing)
///
/// The body is the file (text/csv). Bad rows are skipped and listed with line numbers; an equal row writes nothing; a header that is not the layout refuses the file (422); a broken upload rolls back.
///
/// Who: the municipality's admin or an operator.
#[utoipa::path(
    post,
    path = "/municipalities/{lg_code}/linkage/{layout}/import",
    tag = "linkage",
    security(("bearer" = [])),
    params(("lg_code" = String, Path, pattern = "^[0-9]{6}$", description = "全国地方公共団体コード with its check digit", example = "131016"), ("layout" = LayoutName, Path, description = "Which CSV layout (docs/LINKAGE.md)"), ("encoding" = Option<EncodingName>, Query, description = "utf-8 (default) or shift_jis")),
    request_body(content = File, content_type = "text/csv"),
    responses((status = 200, description = "the import report: rows, inserted, updated, unchanged, rejected_count, rejected[{line, reason}], changes")),
)]
pub async fn import_file(
    State(app): State<Arc<App>>,
    Caller(who): Caller,
    Path((code, layout_name)): Path<(String, String)>,
    Query(q): Query<EncodingQuery>,
    headers: axum::http::HeaderMap,
    body: Body,
) -> Result<Json<ImportReport>, Problem> {
    let code = parse_code(&code)?;
    who.require_admin_of(&code).map_err(|e| refused(&who, e))?;
    app.require_municipality(&code).await?;
    let layout = layout(&layout_name)?;
    let encoding = encoding(&q)?;
    let limits = &app.governor.limits;
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let idle = std::time::Duration::from_millis(limits.connections.body_read_ms);
    let spooled = crate::governor::body::spool(body, declared, &app.data_dir.join("spool"), limits.storage.import_bytes, idle).await?;
    let file = std::fs::File::open(spooled.path()).map_err(|e| Problem::internal(e.into()))?;
    let reader = crate::governor::body::BoundedLines::new(std::io::BufReader::new(file), limits.storage.csv_line_bytes);
    let started = std::time::Instant::now();
    match import(&app.db, code.as_str(), layout, encoding, reader).await {
        Ok(report) => {
            tracing::info!(
                lg_code = %code, layout = layout.name(), subject = %who.subject, rows = report.rows, inserted = report.inserted,
                updated = report.updated, rejected = report.rejected_count, changes = report.changes,
                ms = started.elapsed().as_millis() as u64, "linkage import committed"
            );
            if report.changes > 0 {
                app.deliveries.wake();
            }
            Ok(Json(report))
        }
        Err(e) => {
            tracing::warn!(lg_code = %code, layout = layout.name(), subject = %who.subject, error = %e, "linkage import refused");
            Err(match e {
                ImportError::Layout(detail) => Problem::unprocessable("import-layout", detail),
                ImportError::Interrupted(_) => Problem::bad_request("import-interrupted", e.to_string()),
                ImportError::Database(_) => Problem::new(StatusCode::SERVICE_UNAVAILABLE, "import-failed", "Import failed", e.to_string()),
            })
        }
    }
}

/// Export the layout as CSV (streamed)
///
/// 422 `unencodable` names the record Shift_JIS cannot carry (IVS).
///
/// Who: the municipality's admin or an operator.
#[utoipa::path(
    get,
    path = "/municipalities/{lg_code}/linkage/{layout}/export",
    tag = "linkage",
    security(("bearer" = [])),
    params(("lg_code" = String, Path, pattern = "^[0-9]{6}$", description = "全国地方公共団体コード with its check digit", example = "131016"), ("layout" = LayoutName, Path, description = "Which CSV layout (docs/LINKAGE.md)"), ("encoding" = Option<EncodingName>, Query, description = "utf-8 (default) or shift_jis")),
    responses((status = 200, description = "the file", content_type = "text/csv")),
)]
pub async fn export_file(
    State(app): State<Arc<App>>,
    Caller(who): Caller,
    Path((code, layout_name)): Path<(String, String)>,
    Query(q): Query<EncodingQuery>,
) -> Result<Response, Problem> {
    let code = parse_code(&code)?;
    who.require_admin_of(&code).map_err(|e| refused(&who, e))?;
    app.require_municipality(&code).await?;
    let layout = layout(&layout_name)?;
    let encoding = encoding(&q)?;
    if let Err(unencodable) = export::check_encodable(&app.db, code.as_str(), layout, encoding).await? {
        return Err(Problem::unprocessable("unencodable", unencodable.to_string()));
    }
    tracing::info!(lg_code = %code, layout = layout.name(), subject = %who.subject, "linkage export");
    let charset = match encoding {
        Encoding::Utf8 => "utf-8",
        Encoding::ShiftJis => "shift_jis",
    };
    let body = Body::from_stream(export::stream(app.db.clone(), code.to_string(), layout, encoding));
    Ok((
        [
            (header::CONTENT_TYPE, format!("text/csv; charset={charset}")),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{code}-{}.csv\"", layout.name())),
        ],
        body,
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct ChangesQuery {
    after: Option<i64>,
    limit: Option<u32>,
}

#[derive(Serialize)]
pub struct ChangePage {
    changes: Vec<Change>,
    next: i64,
}

/// The change feed after a cursor
///
/// Who: the municipality's admin or an operator.
#[utoipa::path(
    get,
    path = "/municipalities/{lg_code}/linkage/changes",
    tag = "linkage",
    security(("bearer" = [])),
    params(MunicipalityPath, ("after" = Option<i64>, Query, minimum = -9223372036854775808_i64, maximum = 9223372036854775807_i64, description = "changes after this cursor (the last one read)"), ("limit" = Option<u32>, Query, minimum = 0, maximum = 4294967295_u64, description = "rows per page: at most 1000 are returned (a larger limit means 1000, 0 means 1)")),
    responses((status = 200, description = "{changes: [{cursor, kind, addressee_number, household_number, effective_date, reason}], next}")),
)]
pub async fn changes(
    State(app): State<Arc<App>>,
    Caller(who): Caller,
    Path(MunicipalityPath { lg_code: code }): Path<MunicipalityPath>,
    Query(q): Query<ChangesQuery>,
) -> Result<Json<ChangePage>, Problem> {
    let code = parse_code(&code)?;
    who.require_admin_of(&code).map_err(|e| refused(&who, e))?;
    app.require_municipality(&code).await?;
    let after = q.after.unwrap_or(0).max(0);
    let changes = app.db.changes_since(code.as_str(), after, q.limit.unwrap_or(100).clamp(1, 1000)).await?;
    let next = changes.last().map(|c| c.cursor).unwrap_or(after);
    Ok(Json(ChangePage { changes, next }))
}

#[derive(Serialize)]
pub struct Delivery {
    /// `changes` (the change feed) or `events` (other modules' events).
    feed: &'static str,
    module: String,
    delivered: i64,
    failures: i64,
    last_error: Option<String>,
}

// `GET …/linkage/deliveries`: how far each module has been pushed the change feed, the
// event log and the notices from other municipalities, and why it is stuck if it is.
/// How far each module has been pushed the change feed, events and notices
///
/// Who: the municipality's admin or an operator.
#[utoipa::path(
    get,
    path = "/municipalities/{lg_code}/linkage/deliveries",
    tag = "linkage",
    security(("bearer" = [])),
    params(MunicipalityPath),
    responses((status = 200, description = "[{feed, module, delivered, failures, last_error}]")),
)]
pub async fn deliveries(State(app): State<Arc<App>>, Caller(who): Caller, Path(MunicipalityPath { lg_code: code }): Path<MunicipalityPath>) -> Result<Json<Vec<Delivery>>, Problem> {
    let code = parse_code(&code)?;
    who.require_admin_of(&code).map_err(|e| refused(&who, e))?;
    app.require_municipality(&code).await?;
    let mut out = Vec::new();
    for (feed, name) in [(Feed::Changes, "changes"), (Feed::Events, "events"), (Feed::Notices, "notices")] {
        for (module, delivered, failures, last_error) in app.db.deliveries(feed, code.as_str()).await? {
            out.push(Delivery { feed: name, module, delivered, failures, last_error });
        }
    }
    Ok(Json(out))
}

// `GET …/audit?module=&addressee_number=&after=&limit=`: the municipality's audit trail of
// personal-data reads by modules, oldest first.
/// The audit trail of personal-data reads by modules (read-only)
///
/// Oldest first; page with `after` (the last row's `position`).
///
/// Who: the municipality's admin or an operator.
#[utoipa::path(
    get,
    path = "/municipalities/{lg_code}/audit",
    tag = "linkage",
    security(("bearer" = [])),
    params(MunicipalityPath, ("module" = Option<String>, Query), ("addressee_number" = Option<String>, Query, pattern = "^[0-9]{1,15}$"), ("after" = Option<i64>, Query, minimum = -9223372036854775808_i64, maximum = 9223372036854775807_i64, description = "rows after this position: the last row's `position` (gap-free per municipality, so a reader tailing the trail misses no row)"), ("limit" = Option<u32>, Query, minimum = 0, maximum = 4294967295_u64, description = "rows per page: at most 1000 are returned (a larger limit means 1000, 0 means 1)")),
    responses((status = 200, description = "[{position, at, module_id, module_version, request_id, caller_subject, caller_role, interface, query, records, counterpart}]")),
)]
pub async fn audit_trail(
    State(app): State<Arc<App>>,
    Caller(who): Caller,
    Path(MunicipalityPath { lg_code: code }): Path<MunicipalityPath>,
    Query(filter): Query<AuditFilter>,
) -> Result<Json<Vec<AuditRow>>, Problem> {
    let code = parse_code(&code)?;
    who.require_admin_of(&code).map_err(|e| refused(&who, e))?;
    app.require_municipality(&code).await?;
    if let Some(a) = &filter.addressee_number
        && (a.is_empty() || a.len() > 15 || !a.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(Problem::bad_request("invalid-addressee-number", "addressee_number must be 1–15 digits"));
    }
    Ok(Json(audit::query(&app.db, code.as_str(), &filter).await?))
}
