//! `/api/v1/municipalities`: the tenants.

use super::auth::{Caller, refused};
use super::openapi::MunicipalityPath;
use super::problem::Problem;
use crate::app::App;
use crate::lgcode::LgCode;
use crate::store::municipalities::{Inserted, Municipality};
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMunicipality {
    /// 全国地方公共団体コード with its check digit (422 when the digit is wrong)
    #[schema(pattern = "^[0-9]{6}$", example = "131016")]
    pub lg_code: String,
    pub name: String,
    #[serde(default)]
    pub population: i64,
}

/// List municipalities
#[utoipa::path(get, path = "/municipalities", tag = "municipalities", responses((status = 200, body = Vec<Municipality>)))]
pub async fn list(State(app): State<Arc<App>>) -> Result<Json<Vec<Municipality>>, Problem> {
    Ok(Json(app.db.list_municipalities().await?))
}

/// One municipality
#[utoipa::path(get, path = "/municipalities/{lg_code}", tag = "municipalities", params(MunicipalityPath), responses((status = 200, body = Municipality)))]
pub async fn show(State(app): State<Arc<App>>, Path(MunicipalityPath { lg_code: code }): Path<MunicipalityPath>) -> Result<Json<Municipality>, Problem> {
    let code = parse_code(&code)?;
    Ok(Json(Municipality::clone(&*app.require_municipality(&code).await?)))
}

/// Register a municipality
///
/// Who: operator.
#[utoipa::path(post, path = "/municipalities", tag = "municipalities", security(("bearer" = [])), request_body = NewMunicipality, responses((status = 201, body = Municipality)))]
pub async fn create(
    State(app): State<Arc<App>>,
    Caller(who): Caller,
    body: Result<Json<NewMunicipality>, JsonRejection>,
) -> Result<(StatusCode, Json<Municipality>), Problem> {
    who.require_operator().map_err(|e| refused(&who, e))?;
    let Json(new) = body?;
    let lg_code = LgCode::parse(new.lg_code.trim()).map_err(|e| Problem::unprocessable("invalid-lg-code", e.to_string()))?;
    if new.name.trim().is_empty() {
        return Err(Problem::unprocessable("invalid-name", "the municipality's name must not be empty"));
    }
    if new.population < 0 {
        return Err(Problem::unprocessable("invalid-population", "population cannot be negative"));
    }
    let municipality = Municipality {
        prefecture: lg_code.prefecture().to_string(),
        lg_code,
        name: new.name,
        population: new.population,
    };
    match app.add_municipality(&municipality).await? {
        Inserted::Created => Ok((StatusCode::CREATED, Json(municipality))),
        Inserted::AlreadyExists => Err(Problem::conflict(
            "municipality-exists",
            format!("municipality {} is already registered", municipality.lg_code),
        )),
    }
}

/// Parses a code from a URL, as a 404 when it cannot name any municipality.
pub fn parse_code(code: &str) -> Result<LgCode, Problem> {
    LgCode::parse(code).map_err(|e| Problem::not_found("unknown-municipality", format!("no such municipality: {e}")))
}
