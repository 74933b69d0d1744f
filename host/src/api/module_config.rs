//! `/api/v1/municipalities/{code}/modules/{module}/config`: a municipality's settings for a
//! module; `/api/v1/modules`: what is loaded.

use super::municipalities::parse_code;
use super::auth::{Caller, refused};
use super::openapi::{MunicipalityModulePath};
use super::problem::Problem;
use crate::app::App;
use crate::catalog::manifest::Manifest;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Longest config value accepted, in bytes.
const MAX_VALUE_BYTES: usize = 16 * 1024;

/// A municipality's settings for a module
///
/// Who: its admin or an operator.
#[utoipa::path(
    get,
    path = "/municipalities/{lg_code}/modules/{module}/config",
    tag = "subscriptions",
    security(("bearer" = [])),
    params(MunicipalityModulePath),
    responses((status = 200, description = "the settings, key to value", body = BTreeMap<String, String>)),
)]
pub async fn show(
    State(app): State<Arc<App>>,
    Caller(who): Caller,
    Path(MunicipalityModulePath { lg_code: code, module }): Path<MunicipalityModulePath>,
) -> Result<Json<BTreeMap<String, String>>, Problem> {
    let code = parse_code(&code)?;
    who.require_admin_of(&code).map_err(|e| refused(&who, e))?;
    app.require_municipality(&code).await?;
    Ok(Json(app.db.module_config(&code, &module).await?))
}

/// Replace those settings
///
/// For a subscribed module the settings are checked against the version it runs: keys its manifest does not declare and missing required settings are refused (422, naming the valid keys).
///
/// Who: its admin or an operator.
#[utoipa::path(
    put,
    path = "/municipalities/{lg_code}/modules/{module}/config",
    tag = "subscriptions",
    security(("bearer" = [])),
    params(MunicipalityModulePath),
    request_body = BTreeMap<String, String>,
    responses((status = 204, description = "replaced")),
)]
pub async fn replace(
    State(app): State<Arc<App>>,
    Caller(who): Caller,
    Path(MunicipalityModulePath { lg_code: code, module }): Path<MunicipalityModulePath>,
    body: Result<Json<BTreeMap<String, String>>, JsonRejection>,
) -> Result<StatusCode, Problem> {
    let code = parse_code(&code)?;
    who.require_admin_of(&code).map_err(|e| refused(&who, e))?;
    app.require_municipality(&code).await?;
    let Json(settings) = body?;
    // A subscribed module's settings are checked against the version it runs; a module
    // loaded from a file for every municipality has no catalog manifest to check against.
    let manifest = match app.db.subscription(code.as_str(), &module).await? {
        Some(subscription) => app.db.version(&module, &subscription.version).await?.map(|v| v.manifest),
        None => None,
    };
    check_settings(manifest.as_ref(), &settings, true)?;
    app.set_module_config(&code, &module, settings).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Refuses empty keys and oversized values, and, against the module's manifest, settings
/// it does not declare (when they are being given) and required settings that are missing;
/// each refusal names the valid keys.
pub fn check_settings(manifest: Option<&Manifest>, settings: &BTreeMap<String, String>, given: bool) -> Result<(), Problem> {
    if let Some((key, _)) = settings.iter().find(|(k, v)| k.is_empty() || v.len() > MAX_VALUE_BYTES) {
        return Err(Problem::unprocessable(
            "invalid-config",
            format!("config keys must not be empty and values are limited to {MAX_VALUE_BYTES} bytes (key `{key}`)"),
        ));
    }
    let Some(manifest) = manifest else { return Ok(()) };
    if given && let Some(unknown) = settings.keys().find(|k| !manifest.config.contains_key(*k)) {
        let valid: Vec<&str> = manifest.config.keys().map(String::as_str).collect();
        let valid = if valid.is_empty() { "none".to_string() } else { valid.join(", ") };
        return Err(Problem::unprocessable("unknown-config", format!("`{}` {} has no setting `{unknown}`; its settings are: {valid}", manifest.id, manifest.version)));
    }
    let missing = manifest.missing_config(settings);
    if !missing.is_empty() {
        return Err(Problem::unprocessable("missing-config", format!("the module needs these settings: {}", missing.join(", "))));
    }
    Ok(())
}

#[derive(Serialize)]
pub struct LiveModule {
    id: String,
    /// Version serving every municipality without a subscription (modules loaded from files).
    default_version: Option<String>,
    /// Version serving each subscribed municipality.
    municipalities: BTreeMap<String, String>,
}

/// What is routed now, per module and municipality
#[utoipa::path(
    get,
    path = "/modules",
    tag = "modules",
    responses((status = 200, description = "the live routing table")),
)]
pub async fn list_modules(State(app): State<Arc<App>>) -> Json<Vec<LiveModule>> {
    Json(
        app.live
            .snapshot()
            .into_iter()
            .map(|(id, default_version, per)| LiveModule { id, default_version, municipalities: per.into_iter().collect() })
            .collect(),
    )
}
