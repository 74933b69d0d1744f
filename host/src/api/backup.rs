//! `GET /api/v1/backup` (operators): a consistent online backup of the whole platform,
//! streamed. It is written to a file in the data directory first (the read transaction
//! lasts only as long as the database read, not as long as a slow download), then sent
//! from the unlinked file.

use super::auth::{Caller, refused};
use super::problem::Problem;
use crate::app::App;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// A consistent online backup of the whole platform (NDJSON)
///
/// Every table read in one transaction (SQLite snapshot / PostgreSQL REPEATABLE READ) while traffic continues, with the host's token secret; ends with a row count and SHA-256 that `nukisashi restore` checks. Who: operators.
#[utoipa::path(
    get,
    path = "/backup",
    tag = "operations",
    security(("bearer" = [])),
    responses((status = 200, description = "the backup", content_type = "application/x-ndjson")),
)]
pub async fn backup(State(app): State<Arc<App>>, Caller(who): Caller) -> Result<Response, Problem> {
    who.require_operator().map_err(|e| refused(&who, e))?;
    let dir = app.data_dir.join("backups");
    std::fs::create_dir_all(&dir).map_err(|e| Problem::internal(e.into()))?;
    let path = dir.join(format!("partial-{}.ndjson", uuid::Uuid::new_v4()));
    let file = std::fs::File::create(&path).map_err(|e| Problem::internal(e.into()))?;
    let secret = crate::auth::local_secret(&app.data_dir)?;
    let started = std::time::Instant::now();
    // Serialising, hashing and writing every row happen on a blocking thread.
    let db = app.db.clone();
    let written = crate::governor::on_blocking_thread(async move {
        let mut writer = std::io::BufWriter::new(file);
        crate::store::backup::backup(&db, &secret, &mut writer).await
    })
    .await;
    let rows = match written {
        Ok(rows) => rows,
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            return Err(e.into());
        }
    };
    let file = tokio::fs::File::open(&path).await.map_err(|e| Problem::internal(e.into()))?;
    // Unlinked now: the open handle keeps the content until the download ends.
    let _ = std::fs::remove_file(&path);
    tracing::info!(subject = %who.subject, rows, ms = started.elapsed().as_millis() as u64, "backup taken");
    let name = format!("nukisashi-{}.ndjson", crate::store::now_iso().replace(':', ""));
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson".to_string()), (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\""))],
        Body::from_stream(tokio_util::io::ReaderStream::new(file)),
    )
        .into_response())
}
