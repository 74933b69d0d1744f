//! `/api/v1/usage`, `/api/v1/municipalities/{code}/usage`: metered usage by municipality,
//! module and day; `/api/v1/reports/cost`: the monthly cost allocation (JSON or CSV);
//! `/api/v1/cost-policies/{month}` and `/api/v1/municipalities/{code}/cost`: the policy an
//! operator publishes and each municipality's own share under it.

use super::auth::{Caller, refused};
use super::municipalities::parse_code;
use super::openapi::{Measure, MunicipalityPath, ReportFormat};
use super::problem::Problem;
use crate::app::App;
use crate::auth::Principal;
use crate::lgcode::LgCode;
use crate::metering::cost::{self, Party, Policy, Share};
use crate::metering::policies::{self, Published};
use crate::metering::{self, UsageRow};
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Deserialize)]
pub struct MonthQuery {
    month: Option<String>,
}

fn month_or_now(month: Option<String>) -> Result<String, Problem> {
    let month = month.unwrap_or_else(|| metering::japan_day()[..7].to_string());
    metering::month_range(&month).map_err(|e| Problem::bad_request("invalid-month", e.to_string()))?;
    Ok(month)
}

#[derive(Serialize)]
pub struct UsageReport {
    month: String,
    rows: Vec<UsageRow>,
    /// Bytes each municipality holds in module storage now.
    storage_bytes: HashMap<String, i64>,
    /// For one municipality: what each module keeps now, against its quota.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    storage: Vec<ModuleStorage>,
}

/// What a module keeps at one municipality, against its `[limits.storage]` quotas: kv
/// bytes and keys, and the events it published that are still in the log.
#[derive(Serialize)]
pub struct ModuleStorage {
    module: String,
    kv_bytes: i64,
    kv_keys: i64,
    kv_bytes_limit: u64,
    kv_keys_limit: u64,
    events: i64,
    events_limit: u64,
    events_per_minute_limit: u32,
}

// Every municipality's usage (operators).
/// Usage per municipality, module and day, and storage bytes
///
/// Who: operators.
#[utoipa::path(
    get,
    path = "/usage",
    tag = "usage",
    security(("bearer" = [])),
    params(("month" = Option<String>, Query, pattern = "^[0-9]{4}-(0[1-9]|1[0-2])$", description = "YYYY-MM (default: this month, Japan time)")),
    responses((status = 200, description = "{month, rows: [{lg_code, module_id, day, requests, errors, cpu_ms, peak_memory_bytes, storage_bytes}], storage_bytes}")),
)]
pub async fn all(State(app): State<Arc<App>>, Caller(who): Caller, Query(q): Query<MonthQuery>) -> Result<Json<UsageReport>, Problem> {
    who.require_operator().map_err(|e| refused(&who, e))?;
    let month = month_or_now(q.month)?;
    app.meter.flush(&app.db).await?;
    metering::sample_storage(&app.db).await?;
    Ok(Json(UsageReport { rows: metering::usage(&app.db, &month, None).await?, storage_bytes: metering::storage_bytes(&app.db).await?, month, storage: Vec::new() }))
}

/// The municipality in the path, which the caller must administer and this host must have.
async fn administered(app: &App, who: &Principal, code: &str) -> Result<LgCode, Problem> {
    let code = parse_code(code)?;
    who.require_admin_of(&code).map_err(|e| refused(who, e))?;
    app.require_municipality(&code).await?;
    Ok(code)
}

// One municipality's usage (its admins, operators).
/// One municipality's usage
///
/// Who: the municipality's admin or an operator.
#[utoipa::path(
    get,
    path = "/municipalities/{lg_code}/usage",
    tag = "usage",
    security(("bearer" = [])),
    params(MunicipalityPath, ("month" = Option<String>, Query, pattern = "^[0-9]{4}-(0[1-9]|1[0-2])$", description = "YYYY-MM (default: this month, Japan time)")),
    responses((status = 200, description = "as /usage, for one municipality")),
)]
pub async fn of_municipality(
    State(app): State<Arc<App>>,
    Caller(who): Caller,
    Path(MunicipalityPath { lg_code: code }): Path<MunicipalityPath>,
    Query(q): Query<MonthQuery>,
) -> Result<Json<UsageReport>, Problem> {
    let code = administered(&app, &who, &code).await?;
    let month = month_or_now(q.month)?;
    app.meter.flush(&app.db).await?;
    metering::sample_storage(&app.db).await?;
    let mut storage_bytes = metering::storage_bytes(&app.db).await?;
    storage_bytes.retain(|lg, _| lg == code.as_str());
    let quota = &app.governor.limits.storage;
    let events: HashMap<String, i64> = app.db.events_kept(code.as_str()).await?.into_iter().collect();
    let mut storage: Vec<ModuleStorage> = app
        .db
        .kv_usage_of(code.as_str())
        .await?
        .into_iter()
        .map(|(module, usage)| ModuleStorage {
            events: events.get(&module).copied().unwrap_or(0),
            module,
            kv_bytes: usage.bytes,
            kv_keys: usage.keys,
            kv_bytes_limit: quota.kv_bytes,
            kv_keys_limit: quota.kv_keys,
            events_limit: quota.events_kept,
            events_per_minute_limit: quota.events_per_minute,
        })
        .collect();
    for (module, n) in &events {
        if !storage.iter().any(|s| &s.module == module) {
            storage.push(ModuleStorage {
                module: module.clone(),
                kv_bytes: 0,
                kv_keys: 0,
                kv_bytes_limit: quota.kv_bytes,
                kv_keys_limit: quota.kv_keys,
                events: *n,
                events_limit: quota.events_kept,
                events_per_minute_limit: quota.events_per_minute,
            });
        }
    }
    Ok(Json(UsageReport { rows: metering::usage(&app.db, &month, Some(code.as_str())).await?, storage_bytes, month, storage }))
}

#[derive(Deserialize)]
pub struct CostQuery {
    month: Option<String>,
    #[serde(flatten)]
    policy: PolicyInput,
    /// `json` (default) or `csv`.
    format: Option<String>,
}

/// The operator's split policy as given in a query string or a JSON body.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct PolicyInput {
    /// The month's platform cost, in yen.
    #[serde(deserialize_with = "number")]
    #[schema(minimum = 0)]
    total: i64,
    #[serde(default, deserialize_with = "number")]
    #[schema(maximum = 4294967295_u64)]
    fixed: u32,
    #[serde(default, deserialize_with = "number")]
    #[schema(maximum = 4294967295_u64)]
    population: u32,
    #[serde(default, deserialize_with = "number")]
    #[schema(maximum = 4294967295_u64)]
    usage: u32,
    /// `requests` (default) or `cpu-time`.
    #[schema(value_type = Option<Measure>)]
    measure: Option<String>,
}

/// A number given either as a JSON number or as text (query strings under `flatten` arrive
/// as text).
fn number<'de, D: serde::Deserializer<'de>, N: std::str::FromStr + serde::Deserialize<'de>>(d: D) -> Result<N, D::Error>
where
    N::Err: std::fmt::Display,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Given<N> {
        Number(N),
        Text(String),
    }
    match Given::<N>::deserialize(d)? {
        Given::Number(n) => Ok(n),
        Given::Text(t) => t.trim().parse().map_err(|e| serde::de::Error::custom(format!("`{t}` is not a whole number 0 or more: {e}"))),
    }
}

impl PolicyInput {
    /// The policy and its usage measure, or what is wrong with them.
    fn check(self) -> Result<(Policy, String), Problem> {
        if self.total < 0 {
            return Err(Problem::unprocessable("invalid-total", "the month's cost must be 0 yen or more"));
        }
        if [self.fixed, self.population, self.usage].iter().all(|w| *w == 0) {
            return Err(Problem::unprocessable("no-weights", "give at least one of the weights fixed, population, usage"));
        }
        let measure = self.measure.unwrap_or_else(|| "requests".into());
        if measure != "requests" && measure != "cpu-time" {
            return Err(Problem::bad_request("invalid-measure", "measure is requests or cpu-time"));
        }
        Ok((Policy { total: self.total, fixed_weight: self.fixed, population_weight: self.population, usage_weight: self.usage }, measure))
    }
}

/// Every registered municipality's share of `month` under `policy`.
async fn allocate_month(app: &App, month: &str, policy: Policy, measure: &str) -> Result<Vec<Share>, Problem> {
    app.meter.flush(&app.db).await?;
    let mut used: HashMap<String, i64> = HashMap::new();
    for row in metering::usage(&app.db, month, None).await? {
        *used.entry(row.lg_code).or_default() += if measure == "requests" { row.requests } else { row.cpu_ms };
    }
    let parties: Vec<Party> = app
        .db
        .list_municipalities()
        .await?
        .into_iter()
        .map(|m| Party { usage: used.get(m.lg_code.as_str()).copied().unwrap_or(0), lg_code: m.lg_code.to_string(), name: m.name, population: m.population })
        .collect();
    Ok(cost::allocate(policy, &parties))
}

#[derive(Serialize)]
pub struct CostReport {
    month: String,
    policy: Policy,
    measure: String,
    shares: Vec<Share>,
    total: i64,
}

// The month's cost split among every registered municipality (operators).
/// The month's platform cost split among the municipalities
///
/// A fixed share evenly, a share by population and a share by usage, with the given weights; integer yen adding up exactly to total (largest remainder). Who: operators.
#[utoipa::path(
    get,
    path = "/reports/cost",
    tag = "usage",
    security(("bearer" = [])),
    params(("month" = Option<String>, Query, pattern = "^[0-9]{4}-(0[1-9]|1[0-2])$", description = "YYYY-MM (default: this month, Japan time)"), ("total" = i64, Query, minimum = 0, maximum = 9223372036854775807_i64, description = "the month's cost in yen"), ("fixed" = Option<u32>, Query, minimum = 0, maximum = 4294967295_u64, description = "weight of the even share"), ("population" = Option<u32>, Query, minimum = 0, maximum = 4294967295_u64, description = "weight of the population share"), ("usage" = Option<u32>, Query, minimum = 0, maximum = 4294967295_u64, description = "weight of the usage share"), ("measure" = Option<Measure>, Query), ("format" = Option<ReportFormat>, Query)),
    responses((status = 200, description = "{month, policy, measure, shares: [{lg_code, name, population, usage, fixed, by_population, by_usage, amount}], total}, or CSV")),
)]
pub async fn cost_report(State(app): State<Arc<App>>, Caller(who): Caller, Query(q): Query<CostQuery>) -> Result<Response, Problem> {
    who.require_operator().map_err(|e| refused(&who, e))?;
    let month = month_or_now(q.month)?;
    let (policy, measure) = q.policy.check()?;
    let shares = allocate_month(&app, &month, policy, &measure).await?;
    if q.format.as_deref() == Some("csv") {
        return Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()), (header::CONTENT_DISPOSITION, format!("attachment; filename=\"cost-{month}.csv\""))], cost::to_csv(&shares)).into_response());
    }
    let total = shares.iter().map(|s| s.amount).sum();
    Ok(Json(CostReport { month, policy, measure, shares, total }).into_response())
}

// Publishes the month's policy so every municipality sees its own share (operators).
/// Publish the month's cost policy to the municipalities
///
/// Stores the month's total and weights (the same as the cost report's) so each municipality can read its own share at /municipalities/{lg_code}/cost. Publishing again replaces the policy. Who: operators.
#[utoipa::path(
    put,
    path = "/cost-policies/{month}",
    tag = "usage",
    security(("bearer" = [])),
    params(("month" = String, Path, pattern = "^[0-9]{4}-(0[1-9]|1[0-2])$")),
    request_body = PolicyInput,
    responses((status = 200, description = "{month, total, fixed_weight, population_weight, usage_weight, measure, published_at}")),
)]
pub async fn publish_policy(
    State(app): State<Arc<App>>,
    Caller(who): Caller,
    Path(month): Path<String>,
    body: Result<Json<PolicyInput>, JsonRejection>,
) -> Result<Json<Published>, Problem> {
    who.require_operator().map_err(|e| refused(&who, e))?;
    let month = month_or_now(Some(month))?;
    let Json(input) = body?;
    let (policy, measure) = input.check()?;
    Ok(Json(policies::publish(&app.db, &month, policy, &measure).await?))
}

#[derive(Serialize)]
pub struct MunicipalityCost {
    policy: Published,
    /// This municipality's share so far this month: it follows the month's usage until the
    /// month ends.
    share: Share,
    municipalities: usize,
}

// One municipality's share under the month's published policy (its admins, operators).
/// The municipality's own share under the month's published policy
///
/// Its fixed, population and usage shares, computed from the published policy and the month's usage so far (the usage share changes until the month ends). 404 no-cost-policy when nothing is published for the month. Who: the municipality's admins, operators.
#[utoipa::path(
    get,
    path = "/municipalities/{lg_code}/cost",
    tag = "usage",
    security(("bearer" = [])),
    params(MunicipalityPath, ("month" = Option<String>, Query, pattern = "^[0-9]{4}-(0[1-9]|1[0-2])$", description = "YYYY-MM (default: this month, Japan time)")),
    responses((status = 200, description = "{policy, share: {lg_code, name, population, usage, fixed, by_population, by_usage, amount}, municipalities}")),
)]
pub async fn of_municipality_cost(
    State(app): State<Arc<App>>,
    Caller(who): Caller,
    Path(MunicipalityPath { lg_code: code }): Path<MunicipalityPath>,
    Query(q): Query<MonthQuery>,
) -> Result<Json<MunicipalityCost>, Problem> {
    let code = administered(&app, &who, &code).await?;
    let month = month_or_now(q.month)?;
    let Some(policy) = policies::published(&app.db, &month).await? else {
        return Err(Problem::not_found("no-cost-policy", format!("the operator has not published a cost policy for {month} yet")));
    };
    let shares = allocate_month(&app, &month, policy.policy, &policy.measure).await?;
    let municipalities = shares.len();
    let share = shares.into_iter().find(|s| s.lg_code == code.as_str()).ok_or_else(|| Problem::internal(anyhow::anyhow!("{code} missing from its own allocation")))?;
    Ok(Json(MunicipalityCost { policy, share, municipalities }))
}
