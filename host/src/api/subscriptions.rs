//! Municipalities subscribe, grant, configure, pin, unplug and export; operators swap,
//! roll back and suspend.

use super::auth::{Caller, refused};
use super::module_config::check_settings;
use super::municipalities::parse_code;
use super::openapi::{ModulePath, MunicipalityModulePath, MunicipalityPath};
use super::problem::Problem;
use crate::lgcode::LgCode;
use crate::app::App;
use crate::capabilities::Capability;
use crate::catalog::manifest::Manifest;
use crate::plugins::lifecycle::latest_approved;
use crate::store::catalog::{SubscribeRefused, Subscription, Transition, VersionStatus};
use crate::store::kv::KvScope;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use base64::Engine as _;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// A subscription with the address its module is served at.
#[derive(serde::Serialize)]
pub struct Listed {
    #[serde(flatten)]
    subscription: Subscription,
    /// The module's own origin for this municipality, e.g.
    /// `http://guestbook--131016.localhost:8080/`.
    url: String,
}

/// Subscriptions
///
/// Each with `url`, the module's own origin for this municipality (modules are served on an origin of their own: `{module}--{lg_code}.{modules domain}`).
///
/// Who: its admin or an operator.
#[utoipa::path(
    get,
    path = "/municipalities/{lg_code}/subscriptions",
    tag = "subscriptions",
    security(("bearer" = [])),
    params(MunicipalityPath),
    responses((status = 200, description = "the subscriptions")),
)]
pub async fn list(State(app): State<Arc<App>>, Caller(who): Caller, Path(MunicipalityPath { lg_code: code }): Path<MunicipalityPath>) -> Result<Json<Vec<Listed>>, Problem> {
    let code = parse_code(&code)?;
    who.require_admin_of(&code).map_err(|e| refused(&who, e))?;
    let subscriptions = app.db.subscriptions(Some(code.as_str()), None).await?;
    Ok(Json(subscriptions.into_iter().map(|s| Listed { url: format!("{}/", app.edge.origins.origin(&code, &s.module_id)), subscription: s }).collect()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscribeRequest {
    /// Capabilities granted, each one the module requests. Absent keeps an existing
    /// subscription's grants; a new subscription to a module that requests any must say.
    #[serde(default)]
    grants: Option<Vec<String>>,
    /// A version pins it; `null` follows the latest released version; absent keeps what an
    /// existing subscription does (its pin, or following), and follows for a new one.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    version: Option<Option<String>>,
    /// Replaces the municipality's config for the module when given.
    #[serde(default)]
    config: Option<BTreeMap<String, String>>,
}

/// A field that may be absent (`None`), `null` (`Some(None)`) or a value.
pub(super) fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

// `PUT /municipalities/{code}/subscriptions/{module}` (its admin): subscribe, or change
// grants, pin and config. Re-subscribing after an unplug finds the data as it was.
/// Subscribe, or change grants, pin and config
///
/// The module gets (requested ∩ granted) capabilities. `grants` may name only capabilities the module requests; absent, an existing subscription keeps its grants (a new subscription to a module that requests any must give them). `version` pins; null follows the latest released version; absent, an existing subscription keeps its pin (or keeps following) and a new one follows. `config` keys must be declared by the manifest.
///
/// Who: its admin or an operator.
#[utoipa::path(
    put,
    path = "/municipalities/{lg_code}/subscriptions/{module}",
    tag = "subscriptions",
    security(("bearer" = [])),
    params(MunicipalityModulePath),
    request_body = SubscribeRequest,
    responses((status = 200, description = "the subscription")),
)]
pub async fn subscribe(
    State(app): State<Arc<App>>,
    Caller(who): Caller,
    Path(MunicipalityModulePath { lg_code: code, module }): Path<MunicipalityModulePath>,
    body: Result<Json<SubscribeRequest>, JsonRejection>,
) -> Result<Json<Subscription>, Problem> {
    let code = parse_code(&code)?;
    who.require_admin_of(&code).map_err(|e| refused(&who, e))?;
    app.require_municipality(&code).await?;
    let Json(request) = body?;
    if let Some(reason) = app.db.module_suspension(&module).await? {
        return Err(Problem::conflict("module-suspended", format!("module `{module}` is suspended by the operator: {reason}")));
    }
    let versions = app.db.versions(Some(&module)).await?;
    let existing = app.db.subscription(code.as_str(), &module).await?;
    let pin = match &request.version {
        Some(asked) => asked.clone(),
        None => existing.as_ref().filter(|e| e.pinned && e.active).map(|e| e.version.clone()),
    };
    let version = match &pin {
        Some(pin) => match versions.iter().find(|v| &v.version == pin) {
            Some(v) if v.status == VersionStatus::Approved => pin.clone(),
            Some(_) if request.version.is_none() => {
                return Err(Problem::unprocessable(
                    "version-not-approved",
                    format!("{code} is pinned to {module} {pin}, which is no longer approved: pin another (`version`) or follow the latest (`version: null`)"),
                ));
            }
            Some(_) => return Err(Problem::unprocessable("version-not-approved", format!("{module} {pin} is not approved"))),
            None => return Err(Problem::not_found("unknown-version", format!("no version {module} {pin}"))),
        },
        None => latest_approved(&versions)
            .ok_or_else(|| Problem::not_found("unknown-module", format!("module `{module}` has no approved version in the catalog")))?,
    };
    let manifest = &versions.iter().find(|v| v.version == version).expect("chosen from the list").manifest;
    let settings = match &request.config {
        Some(config) => config.clone(),
        None => app.db.module_config(&code, &module).await?,
    };
    check_settings(Some(manifest), &settings, request.config.is_some())?;
    let grants = resolve_grants(&module, manifest, request.grants, existing.as_ref())?;
    let previous_version = match &existing {
        Some(e) if e.version != version => Some(e.version.clone()),
        Some(e) => e.previous_version.clone(),
        None => None,
    };
    // Load (or find in the artifact cache) before anything changes.
    app.loaded_version(&module, &version).await?;
    if let Some(config) = request.config {
        app.set_module_config(&code, &module, config).await?;
    }
    let subscription = Subscription {
        lg_code: code.to_string(),
        module_id: module.clone(),
        grants,
        pinned: pin.is_some(),
        version,
        previous_version,
        active: true,
    };
    match app.db.upsert_subscription(&subscription).await? {
        Ok(()) => {}
        Err(SubscribeRefused::NotApproved) => {
            return Err(Problem::conflict("version-not-approved", format!("{module} {} is no longer approved; subscribe again", subscription.version)));
        }
        Err(SubscribeRefused::StopsProviding(interface)) => {
            return Err(Problem::conflict(
                "module-provides",
                format!("`{module}` provides {interface} for {code}, and {} does not declare it: choose another provider first", subscription.version),
            ));
        }
        Err(SubscribeRefused::StopsReceiving(kind)) => {
            return Err(Problem::conflict(
                "module-receives",
                format!("{code} takes `{kind}` notices into `{module}`, and {} does not receive them: stop accepting the kind first", subscription.version),
            ));
        }
        Err(SubscribeRefused::ProviderCycle(path)) => {
            return Err(Problem::conflict("provider-cycle", format!("these grants would make the providers call each other in a loop: {path}; grant less or choose another provider first")));
        }
    }
    app.converge().await?;
    app.announce(crate::replicas::Announcement::Routes { module: module.clone() }).await;
    tracing::info!(lg_code = %code, module, version = %subscription.version, grants = ?subscription.grants, by = %who.subject, "subscribed");
    Ok(Json(subscription))
}

/// The grants a subscribe stores: those asked for, each one the module requests; when none
/// are asked for, the existing subscription's, or none for a module that requests none.
fn resolve_grants(module: &str, manifest: &Manifest, asked: Option<Vec<String>>, existing: Option<&Subscription>) -> Result<Vec<String>, Problem> {
    let requested: Vec<&str> = manifest.capabilities.iter().map(|c| c.name()).collect();
    let listed = if requested.is_empty() { "none".to_string() } else { requested.join(", ") };
    let Some(asked) = asked else {
        return match existing {
            Some(existing) => Ok(existing.grants.clone()),
            None if requested.is_empty() => Ok(Vec::new()),
            None => Err(Problem::unprocessable(
                "grants-required",
                format!("`{module}` requests {listed}: say which of them this municipality grants (`grants`, or `--grant` on the CLI; an empty list grants none)"),
            )),
        };
    };
    if let Some(unknown) = asked.iter().find(|g| Capability::parse(g).is_none()) {
        return Err(Problem::unprocessable("unknown-capability", format!("`{unknown}` is not a capability this platform grants; `{module}` requests {listed}")));
    }
    if let Some(unrequested) = asked.iter().find(|g| !requested.contains(&g.as_str())) {
        return Err(Problem::unprocessable("grant-not-requested", format!("`{module}` does not request `{unrequested}`; it requests {listed}")));
    }
    Ok(asked)
}

// `DELETE /municipalities/{code}/subscriptions/{module}` (its admin): unplug. Requests in
// flight finish; later ones get 404; the module's data stays and can be exported.
/// Unplug (data kept, exportable)
///
/// Who: its admin or an operator.
#[utoipa::path(
    delete,
    path = "/municipalities/{lg_code}/subscriptions/{module}",
    tag = "subscriptions",
    security(("bearer" = [])),
    params(MunicipalityModulePath),
    responses((status = 200, description = "unplugged")),
)]
pub async fn unplug(State(app): State<Arc<App>>, Caller(who): Caller, Path(MunicipalityModulePath { lg_code: code, module }): Path<MunicipalityModulePath>) -> Result<Json<serde_json::Value>, Problem> {
    let code = parse_code(&code)?;
    who.require_admin_of(&code).map_err(|e| refused(&who, e))?;
    match app.db.unplug(code.as_str(), &module).await? {
        Ok(true) => {}
        Ok(false) => return Err(Problem::not_found("unknown-subscription", format!("{code} has no active subscription to `{module}`"))),
        Err(provides) => {
            return Err(Problem::conflict(
                "module-provides",
                format!("`{module}` provides {} for {code}: choose another provider (or none) first, so its consumers are not left without one", provides.join(", ")),
            ));
        }
    }
    app.converge().await?;
    app.announce(crate::replicas::Announcement::Routes { module: module.clone() }).await;
    tracing::info!(lg_code = %code, module, by = %who.subject, "unplugged");
    Ok(Json(serde_json::json!({ "lg_code": code, "module": module, "active": false })))
}

// `GET /municipalities/{code}/modules/{module}/export` (its admin): the module's stored
// data for this municipality as JSON lines: `{"key": …, "value": …}` with the value as
// UTF-8 text when it is, otherwise `{"key": …, "value_base64": …}`.
/// Export the module's stored data as JSON lines
///
/// Who: its admin or an operator.
#[utoipa::path(
    get,
    path = "/municipalities/{lg_code}/modules/{module}/export",
    tag = "subscriptions",
    security(("bearer" = [])),
    params(MunicipalityModulePath),
    responses((status = 200, description = "JSON lines", content_type = "application/x-ndjson")),
)]
pub async fn export(State(app): State<Arc<App>>, Caller(who): Caller, Path(MunicipalityModulePath { lg_code: code, module }): Path<MunicipalityModulePath>) -> Result<axum::response::Response, Problem> {
    use axum::response::IntoResponse;
    let code = parse_code(&code)?;
    who.require_admin_of(&code).map_err(|e| refused(&who, e))?;
    let scope = KvScope { lg_code: code.to_string(), module_id: module.clone() };
    let db = app.db.clone();
    let stream = futures::stream::try_unfold(Some(String::new()), move |after| {
        let db = db.clone();
        let scope = scope.clone();
        async move {
            let Some(after) = after else { return Ok::<_, anyhow::Error>(None) };
            let page = db.kv_page(&scope, Some(&after), 500).await?;
            if page.is_empty() {
                return Ok(None);
            }
            let next = (page.len() == 500).then(|| page.last().expect("non-empty").0.clone());
            let mut chunk = String::new();
            for (key, value) in page {
                let line = match String::from_utf8(value) {
                    Ok(text) => serde_json::json!({ "key": key, "value": text }),
                    Err(e) => serde_json::json!({ "key": key, "value_base64": base64::engine::general_purpose::STANDARD.encode(e.as_bytes()) }),
                };
                chunk.push_str(&line.to_string());
                chunk.push('\n');
            }
            Ok(Some((chunk, next)))
        }
    });
    tracing::info!(lg_code = %code, module, by = %who.subject, "module data exported");
    Ok(([(axum::http::header::CONTENT_TYPE, "application/x-ndjson")], axum::body::Body::from_stream(stream)).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SwapRequest {
    version: String,
    /// Municipalities to move; absent moves every active subscriber that is not pinned.
    #[serde(default)]
    #[schema(value_type = Option<Vec<LgCode>>)]
    lg_codes: Option<Vec<String>>,
}

/// Move municipalities to an approved version atomically
///
/// Without lg_codes: every active subscriber that is not pinned.
///
/// Who: operator.
#[utoipa::path(
    post,
    path = "/modules/{id}/swap",
    tag = "lifecycle",
    security(("bearer" = [])),
    params(ModulePath),
    request_body = SwapRequest,
    responses((status = 200, description = "the municipalities moved")),
)]
pub async fn swap(
    State(app): State<Arc<App>>,
    Caller(who): Caller,
    Path(ModulePath { id: module }): Path<ModulePath>,
    body: Result<Json<SwapRequest>, JsonRejection>,
) -> Result<Json<serde_json::Value>, Problem> {
    who.require_operator().map_err(|e| refused(&who, e))?;
    let Json(request) = body?;
    match app.db.version(&module, &request.version).await? {
        Some(v) if v.status == VersionStatus::Approved => {}
        Some(_) => return Err(Problem::unprocessable("version-not-approved", format!("{module} {} is not approved", request.version))),
        None => return Err(Problem::not_found("unknown-version", format!("no version {module} {}", request.version))),
    }
    let targets = targets(&app, &module, request.lg_codes).await?;
    let started = Instant::now();
    let moved = app.swap(&module, &request.version, &targets).await?;
    Ok(Json(serde_json::json!({
        "module": module, "version": request.version, "municipalities": targets, "moved": moved,
        "elapsed_us": started.elapsed().as_micros() as u64,
    })))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    #[serde(default)]
    #[schema(value_type = Option<Vec<LgCode>>)]
    lg_codes: Option<Vec<String>>,
}

/// Back to the previous version, no recompile
///
/// Nothing to roll back is 409.
///
/// Who: operator.
#[utoipa::path(
    post,
    path = "/modules/{id}/rollback",
    tag = "lifecycle",
    security(("bearer" = [])),
    params(ModulePath),
    request_body(content = Option<RollbackRequest>, content_type = "application/json"),
    responses((status = 200, description = "the municipalities moved back")),
)]
pub async fn rollback(
    State(app): State<Arc<App>>,
    Caller(who): Caller,
    Path(ModulePath { id: module }): Path<ModulePath>,
    body: Option<Json<RollbackRequest>>,
) -> Result<Json<serde_json::Value>, Problem> {
    who.require_operator().map_err(|e| refused(&who, e))?;
    let request = body.map(|Json(r)| r).unwrap_or_default();
    let targets = targets(&app, &module, request.lg_codes).await?;
    let started = Instant::now();
    let rolled = app.rollback(&module, &targets).await?;
    if rolled.is_empty() {
        return Err(Problem::conflict(
            "nothing-to-roll-back",
            format!("none of {} has an approved previous version of `{module}` to go back to", if targets.is_empty() { "its subscribers".to_string() } else { targets.join(", ") }),
        ));
    }
    Ok(Json(serde_json::json!({ "module": module, "rolled_back": rolled, "elapsed_us": started.elapsed().as_micros() as u64 })))
}

/// The subscribers an operator action applies to: the codes given (each must be
/// subscribed), or every active subscriber that is not pinned.
async fn targets(app: &App, module: &str, lg_codes: Option<Vec<String>>) -> Result<Vec<String>, Problem> {
    let subscriptions = app.db.subscriptions(None, Some(module)).await?;
    match lg_codes {
        Some(codes) => {
            for code in &codes {
                if !subscriptions.iter().any(|s| &s.lg_code == code) {
                    return Err(Problem::unprocessable("unknown-subscription", format!("{code} does not subscribe to `{module}`")));
                }
            }
            Ok(codes)
        }
        None => Ok(subscriptions.into_iter().filter(|s| s.active && !s.pinned).map(|s| s.lg_code).collect()),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuspendRequest {
    /// why, for the vendor and the municipalities
    #[schema(min_length = 1, pattern = "\\S")]
    reason: String,
}

/// Kill switch: stop the module everywhere
///
/// Who: operator.
#[utoipa::path(
    post,
    path = "/modules/{id}/suspend",
    tag = "lifecycle",
    security(("bearer" = [])),
    params(ModulePath),
    request_body = SuspendRequest,
    responses((status = 200, description = "suspended")),
)]
pub async fn suspend(
    State(app): State<Arc<App>>,
    Caller(who): Caller,
    Path(ModulePath { id: module }): Path<ModulePath>,
    body: Result<Json<SuspendRequest>, JsonRejection>,
) -> Result<Json<serde_json::Value>, Problem> {
    who.require_operator().map_err(|e| refused(&who, e))?;
    let Json(request) = body?;
    if request.reason.trim().is_empty() {
        return Err(Problem::unprocessable("reason-required", "say why the module is suspended"));
    }
    match app.suspend(&module, Some(&request.reason)).await? {
        Transition::Done => Ok(Json(serde_json::json!({ "module": module, "suspended": request.reason }))),
        Transition::AlreadyThere => Err(Problem::conflict("already-suspended", format!("`{module}` is suspended already; resume it first to change the reason"))),
        Transition::Unknown => Err(Problem::not_found("unknown-module", format!("no module `{module}`"))),
    }
}

/// Lift a suspension
///
/// Who: operator.
#[utoipa::path(
    post,
    path = "/modules/{id}/resume",
    tag = "lifecycle",
    security(("bearer" = [])),
    params(ModulePath),
    responses((status = 200, description = "resumed")),
)]
pub async fn resume(State(app): State<Arc<App>>, Caller(who): Caller, Path(ModulePath { id: module }): Path<ModulePath>) -> Result<Json<serde_json::Value>, Problem> {
    who.require_operator().map_err(|e| refused(&who, e))?;
    match app.suspend(&module, None).await? {
        Transition::Done => Ok(Json(serde_json::json!({ "module": module, "suspended": null }))),
        Transition::AlreadyThere => Err(Problem::conflict("not-suspended", format!("`{module}` is not suspended"))),
        Transition::Unknown => Err(Problem::not_found("unknown-module", format!("no module `{module}`"))),
    }
}
