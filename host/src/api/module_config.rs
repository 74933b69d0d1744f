//! `/api/v1/municipalities/{code}/modules/{module}/config`: a municipality's settings for a
//! module; `/api/v1/modules`: what is loaded.

use super::municipalities::parse_code;
use super::auth::{Caller, refused};
use super::problem::Problem;
use crate::app::App;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Longest config value accepted, in bytes.
const MAX_VALUE_BYTES: usize = 16 * 1024;

pub async fn show(
    State(app): State<Arc<App>>,
    Caller(who): Caller,
    Path((code, module)): Path<(String, String)>,
) -> Result<Json<BTreeMap<String, String>>, Problem> {
    let code = parse_code(&code)?;
    who.require_admin_of(&code).map_err(|e| refused(&who, e))?;
    app.require_municipality(&code)?;
    Ok(Json(app.db.module_config(&code, &module).await?))
}

pub async fn replace(
    State(app): State<Arc<App>>,
    Caller(who): Caller,
    Path((code, module)): Path<(String, String)>,
    body: Result<Json<BTreeMap<String, String>>, JsonRejection>,
) -> Result<StatusCode, Problem> {
    let code = parse_code(&code)?;
    who.require_admin_of(&code).map_err(|e| refused(&who, e))?;
    app.require_municipality(&code)?;
    let Json(settings) = body?;
    if let Some((key, _)) = settings.iter().find(|(k, v)| k.is_empty() || v.len() > MAX_VALUE_BYTES) {
        return Err(Problem::unprocessable(
            "invalid-config",
            format!("config keys must not be empty and values are limited to {MAX_VALUE_BYTES} bytes (key `{key}`)"),
        ));
    }
    app.set_module_config(&code, &module, settings).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize)]
pub struct LiveModule {
    id: String,
    /// Version serving every municipality without a subscription (modules loaded from files).
    default_version: Option<String>,
    /// Version serving each subscribed municipality.
    municipalities: BTreeMap<String, String>,
}

/// `GET /modules`: what is routed right now.
pub async fn list_modules(State(app): State<Arc<App>>) -> Json<Vec<LiveModule>> {
    Json(
        app.live
            .snapshot()
            .into_iter()
            .map(|(id, default_version, per)| LiveModule { id, default_version, municipalities: per.into_iter().collect() })
            .collect(),
    )
}
