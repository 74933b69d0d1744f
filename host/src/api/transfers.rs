//! Moving a municipality between hosts, over HTTPS, resumably:
//!
//! - `POST /municipalities/{code}/exports` prepares its export; `GET /exports/{id}` serves
//!   it with `Range` support and a `Repr-Digest`, so a broken download resumes;
//! - `POST /transfers` starts an upload of a declared length and SHA-256; `PATCH
//!   /transfers/{id}` appends at `Upload-Offset`; `HEAD /transfers/{id}` says where it
//!   stands after a break; `POST /transfers/{id}/import` imports the verified file.

use super::auth::{Caller, refused};
use super::municipalities::parse_code;
use super::openapi::{File, MunicipalityPath, TransferPath};
use super::problem::Problem;
use crate::app::App;
use crate::transfers::{AppendError, Export, Upload};
use axum::Json;
use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// Prepare a municipality's archive for another host
///
/// Everything keyed by its code plus the catalog entries its subscriptions need, from one snapshot, in the backup's NDJSON format. Who: its admins, operators.
#[utoipa::path(
    post,
    path = "/municipalities/{lg_code}/exports",
    tag = "transfers",
    security(("bearer" = [])),
    params(MunicipalityPath),
    responses((status = 201, description = "{id, lg_code, length, sha256, rows, created_at}")),
)]
pub async fn create_export(State(app): State<Arc<App>>, Caller(who): Caller, Path(MunicipalityPath { lg_code: code }): Path<MunicipalityPath>) -> Result<(StatusCode, Json<Export>), Problem> {
    let code = parse_code(&code)?;
    who.require_admin_of(&code).map_err(|e| refused(&who, e))?;
    app.require_municipality(&code).await?;
    let span = tracing::info_span!("export", lg_code = %code, subject = %who.subject);
    let export = tracing::Instrument::instrument(app.transfers.create_export(&app.db, code.as_str()), span.clone()).await?;
    tracing::info!(parent: &span, id = %export.id, bytes = export.length, rows = export.rows, "municipality exported");
    Ok((StatusCode::CREATED, Json(export)))
}

fn repr_digest(sha256_hex: &str) -> HeaderValue {
    let bytes = hex::decode(sha256_hex).unwrap_or_default();
    let value = format!("sha-256=:{}:", base64::engine::general_purpose::STANDARD.encode(bytes));
    HeaderValue::from_str(&value).expect("base64 is a valid header value")
}

/// The first byte a `Range: bytes=N-` (or `N-M`, served to the end) asks for.
fn range_start(headers: &HeaderMap, length: u64) -> Result<u64, Problem> {
    let Some(range) = headers.get(header::RANGE) else { return Ok(0) };
    let start = range
        .to_str()
        .ok()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split('-').next())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .ok_or_else(|| Problem::bad_request("invalid-range", "only `Range: bytes=N-` is supported"))?;
    if start > length {
        return Err(Problem::new(StatusCode::RANGE_NOT_SATISFIABLE, "range-not-satisfiable", "Range not satisfiable", format!("the export has {length} bytes")));
    }
    Ok(start)
}

// `GET /exports/{id}` (admins of the municipality, operators): the file, from the
// requested byte on.
/// Download a prepared archive
///
/// Supports `Range: bytes=N-` (206 with Content-Range) so a broken download resumes; `Repr-Digest` carries the SHA-256. Kept 7 days. Who: the municipality's admins, operators.
#[utoipa::path(
    get,
    path = "/exports/{id}",
    tag = "transfers",
    security(("bearer" = [])),
    params(TransferPath, ("Range" = Option<String>, Header, pattern = "^bytes=[0-9]{1,18}-$", description = "`bytes=N-`: the rest of the archive from byte N")),
    responses((status = 200, description = "the archive", content_type = "application/x-ndjson"), (status = 206, description = "the archive from the requested byte", content_type = "application/x-ndjson")),
)]
pub async fn download_export(State(app): State<Arc<App>>, Caller(who): Caller, Path(TransferPath { id }): Path<TransferPath>, headers: HeaderMap) -> Result<Response, Problem> {
    let (export, path) = app.transfers.export(&id)?.ok_or_else(|| Problem::not_found("unknown-export", format!("no export {id} on this host (exports are kept for 7 days)")))?;
    who.require_admin_of(&parse_code(&export.lg_code)?).map_err(|e| refused(&who, e))?;
    let start = range_start(&headers, export.length)?;
    let mut file = tokio::fs::File::open(&path).await.map_err(|e| Problem::internal(e.into()))?;
    file.seek(std::io::SeekFrom::Start(start)).await.map_err(|e| Problem::internal(e.into()))?;
    let remaining = export.length - start;
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file.take(remaining), 256 * 1024));
    let mut response = Response::new(body);
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(remaining));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert("repr-digest", repr_digest(&export.sha256));
    if headers.contains_key(header::RANGE) {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        let range = format!("bytes {start}-{}/{}", export.length.saturating_sub(1), export.length);
        response.headers_mut().insert(header::CONTENT_RANGE, HeaderValue::from_str(&range).expect("ascii"));
    }
    Ok(response)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUpload {
    /// the archive's size in bytes
    #[schema(minimum = 1, maximum = 68719476736_u64)]
    length: u64,
    /// the archive's SHA-256, hex
    #[schema(pattern = "^[0-9a-f]{64}$")]
    sha256: String,
}

fn offset_headers(upload: &Upload) -> [(&'static str, String); 2] {
    [("upload-offset", upload.offset.to_string()), ("upload-length", upload.length.to_string())]
}

/// Start a resumable upload
///
/// Answers with the upload, `Location`, `Upload-Offset` 0. Who: operators.
#[utoipa::path(
    post,
    path = "/transfers",
    tag = "transfers",
    security(("bearer" = [])),
    request_body = NewUpload,
    responses((status = 201, description = "{id, length, sha256, offset}")),
)]
pub async fn create_upload(State(app): State<Arc<App>>, Caller(who): Caller, body: Result<Json<NewUpload>, JsonRejection>) -> Result<Response, Problem> {
    who.require_operator().map_err(|e| refused(&who, e))?;
    let Json(body) = body?;
    let upload = app.transfers.create_upload(body.length, &body.sha256, &who.subject).map_err(|e| Problem::bad_request("invalid-upload", e.to_string()))?;
    let location = format!("/api/v1/transfers/{}", upload.id);
    Ok((StatusCode::CREATED, [(header::LOCATION.as_str(), location)], offset_headers(&upload), Json(upload)).into_response())
}

fn unknown(id: &str) -> Problem {
    Problem::not_found("unknown-transfer", format!("no upload {id} on this host (unfinished uploads are kept for 7 days)"))
}

/// Where an upload stands
///
/// `Upload-Offset` and `Upload-Length` headers and the upload as JSON (HEAD gives the headers). Who: operators.
#[utoipa::path(
    get,
    path = "/transfers/{id}",
    tag = "transfers",
    security(("bearer" = [])),
    params(TransferPath),
    responses((status = 200, description = "{id, length, sha256, offset}")),
)]
pub async fn show_upload(State(app): State<Arc<App>>, Caller(who): Caller, Path(TransferPath { id }): Path<TransferPath>) -> Result<Response, Problem> {
    who.require_operator().map_err(|e| refused(&who, e))?;
    let upload = app.transfers.upload(&id)?.ok_or_else(|| unknown(&id))?;
    Ok((offset_headers(&upload), Json(upload)).into_response())
}

fn append_problem(id: &str, e: AppendError) -> Problem {
    match e {
        AppendError::Unknown => unknown(id),
        AppendError::Offset(at) => Problem::conflict("offset-mismatch", format!("the upload stands at byte {at}; send from there")),
        AppendError::TooLong(_) | AppendError::Incomplete(..) | AppendError::Digest { .. } => Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-upload", "Invalid upload", e.to_string()),
        AppendError::Broken(..) => Problem::bad_request("upload-interrupted", e.to_string()),
        AppendError::Internal(e) => Problem::internal(e),
    }
}

/// Append a chunk
///
/// `Upload-Offset` must be where the upload stands (409 otherwise); every byte that arrives is kept, so a broken chunk moves the upload on. Who: operators.
#[utoipa::path(
    patch,
    path = "/transfers/{id}",
    tag = "transfers",
    security(("bearer" = [])),
    params(TransferPath, ("Upload-Offset" = u64, Header, minimum = 0, maximum = 9223372036854775807_i64, description = "the byte position this chunk starts at: where the upload stands")),
    request_body(content = File, content_type = "application/octet-stream"),
    responses((status = 204, description = "new `Upload-Offset`")),
)]
pub async fn append(State(app): State<Arc<App>>, Caller(who): Caller, Path(TransferPath { id }): Path<TransferPath>, request: Request) -> Result<Response, Problem> {
    who.require_operator().map_err(|e| refused(&who, e))?;
    let offset = request
        .headers()
        .get("upload-offset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| Problem::bad_request("missing-offset", "send the byte position this chunk starts at in `Upload-Offset`"))?;
    let body = request.into_body().into_data_stream();
    let at = app.transfers.append(&id, offset, body).await.map_err(|e| append_problem(&id, e))?;
    Ok((StatusCode::NO_CONTENT, [("upload-offset", at.to_string())]).into_response())
}

// `POST /transfers/{id}/import` (operators): imports a complete, verified municipality
// export and starts serving it.
/// Import a complete upload as a municipality
///
/// Only if the file's SHA-256 matches the declared one and the archive is intact; one transaction; refused if the municipality is registered here. Who: operators.
#[utoipa::path(
    post,
    path = "/transfers/{id}/import",
    tag = "transfers",
    security(("bearer" = [])),
    params(TransferPath),
    responses((status = 201, description = "{lg_code, rows, kept}")),
)]
pub async fn import(State(app): State<Arc<App>>, Caller(who): Caller, Path(TransferPath { id }): Path<TransferPath>) -> Result<Response, Problem> {
    who.require_operator().map_err(|e| refused(&who, e))?;
    let span = tracing::info_span!("import", transfer = %id, subject = %who.subject);
    // Hashing the file and parsing it run on a blocking thread.
    let (worker, transfer, db) = (app.clone(), id.clone(), app.db.clone());
    let path = crate::governor::on_blocking_thread(async move { worker.transfers.verified(&transfer) }).await.map_err(|e| append_problem(&id, e))?;
    let file = std::fs::File::open(&path).map_err(|e| Problem::internal(e.into()))?;
    let import = tracing::Instrument::instrument(async move { crate::store::municipality_archive::import(&db, std::io::BufReader::new(file)).await }, span.clone());
    let imported = crate::governor::on_blocking_thread(import)
        .await
        .map_err(|e| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "import-refused", "Import refused", format!("{e:#}")))?;
    app.transfers.remove_upload(&id);
    app.reconcile().await?;
    app.announce(crate::replicas::Announcement::Municipalities).await;
    tracing::info!(parent: &span, lg_code = %imported.lg_code, rows = imported.rows, kept = imported.kept, "municipality imported");
    Ok((StatusCode::CREATED, Json(imported)).into_response())
}
