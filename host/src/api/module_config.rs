//! `/api/v1/municipalities/{code}/modules/{module}/config`: a municipality's settings for a
//! module; `/api/v1/modules`: what is loaded.

use super::municipalities::parse_code;
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
    Path((code, module)): Path<(String, String)>,
) -> Result<Json<BTreeMap<String, String>>, Problem> {
    let code = parse_code(&code)?;
    app.require_municipality(&code)?;
    Ok(Json(app.db.module_config(&code, &module).await?))
}

pub async fn replace(
    State(app): State<Arc<App>>,
    Path((code, module)): Path<(String, String)>,
    body: Result<Json<BTreeMap<String, String>>, JsonRejection>,
) -> Result<StatusCode, Problem> {
    let code = parse_code(&code)?;
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
pub struct LoadedModule {
    id: String,
    version: String,
    digest: String,
}

pub async fn list_modules(State(app): State<Arc<App>>) -> Json<Vec<LoadedModule>> {
    let modules = app
        .live
        .module_ids()
        .into_iter()
        .filter_map(|id| {
            let v = app.live.resolve_default(&id)?;
            Some(LoadedModule { id, version: v.identity.version.clone(), digest: v.identity.digest.clone() })
        })
        .collect();
    Json(modules)
}
