//! Vendors publish, operators review, municipalities browse the catalog.

use super::auth::{Caller, refused};
use super::openapi::{ModulePath, ModuleVersionPath, VendorPath};
use super::problem::Problem;
use crate::app::App;
use crate::plugins::admission::{AdmissionError, Upload, admit};
use crate::plugins::signing;
use crate::store::catalog::{Review, Vendor, VersionRecord, VersionStatus};
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tracing::Instrument;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVendor {
    /// lower-case letters, digits and hyphens (not `xn--…`)
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,54}$")]
    id: String,
    name: String,
    /// the Ed25519 public key, 32 bytes in base64 (`nukisashi vendor keygen` prints it)
    #[schema(pattern = "^[A-Za-z0-9+/]{43}=$")]
    public_key: String,
    #[serde(default)]
    auto_approve: bool,
}

/// The JSON Schema of a module manifest
///
/// Who: anyone. Every field of the manifest a vendor publishes, with its description and its
/// valid values (capabilities, route auth levels); `nukisashi module schema` prints the same.
#[utoipa::path(get, path = "/schemas/manifest.json", tag = "modules", responses((status = 200, description = "a JSON Schema (draft 2020-12)", content_type = "application/schema+json")))]
pub async fn manifest_schema() -> axum::response::Response {
    use axum::response::IntoResponse;
    static JSON: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| crate::catalog::manifest::Manifest::json_schema().to_string());
    ([(axum::http::header::CONTENT_TYPE, "application/schema+json")], JSON.as_str()).into_response()
}

/// Register a vendor and its Ed25519 public key
///
/// Who: operator.
#[utoipa::path(
    post,
    path = "/vendors",
    tag = "modules",
    security(("bearer" = [])),
    request_body = NewVendor,
    responses((status = 201, description = "the vendor")),
)]
pub async fn register_vendor(
    State(app): State<Arc<App>>,
    Caller(who): Caller,
    body: Result<Json<NewVendor>, JsonRejection>,
) -> Result<(StatusCode, Json<Vendor>), Problem> {
    who.require_operator().map_err(|e| refused(&who, e))?;
    let Json(new) = body?;
    if !crate::is_valid_module_id(&new.id) {
        return Err(Problem::unprocessable("invalid-vendor", "vendor ids are lower-case letters, digits and hyphens"));
    }
    signing::parse_public_key(&new.public_key).map_err(|e| Problem::unprocessable("invalid-public-key", e))?;
    let vendor = Vendor { id: new.id, name: new.name, public_key: new.public_key.trim().to_string(), auto_approve: new.auto_approve };
    if !app.db.insert_vendor(&vendor).await? {
        return Err(Problem::conflict("vendor-exists", format!("vendor `{}` is already registered", vendor.id)));
    }
    tracing::info!(vendor = %vendor.id, by = %who.subject, "vendor registered");
    Ok((StatusCode::CREATED, Json(vendor)))
}

/// Publish a signed version
///
/// Admission: size, manifest, vendor, signature, ownership, duplicate, component type-check and imports, health check; a refusal records nothing.
///
/// Who: vendor (for the manifest's vendor).
#[utoipa::path(
    post,
    path = "/modules",
    tag = "modules",
    security(("bearer" = [])),
    request_body(content = PublishForm, content_type = "multipart/form-data"),
    responses((status = 201, description = "the version as recorded")),
)]
pub async fn publish(State(app): State<Arc<App>>, Caller(who): Caller, mut form: Multipart) -> Result<(StatusCode, Json<VersionRecord>), Problem> {
    let mut upload = Upload { manifest: Vec::new(), component: Vec::new(), signature: None };
    while let Some(field) = form.next_field().await.map_err(|e| Problem::bad_request("invalid-upload", format!("the upload is not valid multipart: {e}")))? {
        let name = field.name().unwrap_or_default().to_string();
        let bytes = field.bytes().await.map_err(|e| {
            Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "upload-too-large", "Upload too large", format!("reading `{name}` failed: {e}"))
        })?;
        match name.as_str() {
            "manifest" => upload.manifest = bytes.to_vec(),
            "component" => upload.component = bytes.to_vec(),
            "signature" => upload.signature = Some(String::from_utf8_lossy(&bytes).into_owned()),
            other => return Err(Problem::bad_request("invalid-upload", format!("unexpected field `{other}`; send manifest, component and signature"))),
        }
    }
    if upload.manifest.is_empty() || upload.component.is_empty() {
        return Err(Problem::bad_request("invalid-upload", "both `manifest` and `component` are required"));
    }
    let span = tracing::info_span!("admission", publisher = %who.subject);
    match admit(&app, &who, upload).instrument(span.clone()).await {
        Ok((record, _)) => Ok((StatusCode::CREATED, Json(record))),
        Err(e) => {
            tracing::warn!(parent: &span, reason = %e, "admission refused");
            Err(admission_problem(e))
        }
    }
}

fn admission_problem(e: AdmissionError) -> Problem {
    let detail = e.to_string();
    let (status, slug) = match &e {
        AdmissionError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "upload-too-large"),
        AdmissionError::Manifest(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid-manifest"),
        AdmissionError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
        AdmissionError::UnknownVendor(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unknown-vendor"),
        AdmissionError::MissingSignature => (StatusCode::UNPROCESSABLE_ENTITY, "missing-signature"),
        AdmissionError::BadSignature(_) => (StatusCode::UNPROCESSABLE_ENTITY, "bad-signature"),
        AdmissionError::Duplicate { .. } => (StatusCode::CONFLICT, "duplicate-version"),
        AdmissionError::Load(crate::plugins::load::LoadError::NotWasm) => (StatusCode::UNPROCESSABLE_ENTITY, "not-wasm"),
        AdmissionError::Load(crate::plugins::load::LoadError::CoreModule) => (StatusCode::UNPROCESSABLE_ENTITY, "not-a-component"),
        AdmissionError::Load(crate::plugins::load::LoadError::ForbiddenImport(_)) => (StatusCode::UNPROCESSABLE_ENTITY, "forbidden-import"),
        AdmissionError::Load(crate::plugins::load::LoadError::WrongWorld(_)) => (StatusCode::UNPROCESSABLE_ENTITY, "wrong-world"),
        AdmissionError::Load(crate::plugins::load::LoadError::Invalid(_)) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid-component"),
        AdmissionError::Load(crate::plugins::load::LoadError::OverLimit(_)) => (StatusCode::UNPROCESSABLE_ENTITY, "over-host-limit"),
        AdmissionError::HealthCheck(_) => (StatusCode::UNPROCESSABLE_ENTITY, "health-check-failed"),
        AdmissionError::Internal(e) => return Problem::internal(anyhow::anyhow!("{e:#}")),
    };
    Problem::new(status, slug, "Module version refused", detail)
}

#[derive(Serialize)]
pub struct VersionsView {
    versions: Vec<VersionRecord>,
    reviews: Vec<Review>,
    suspended: Option<String>,
    /// Versions this host could not load, by version, with why (they are not served here).
    quarantined: std::collections::BTreeMap<String, String>,
}

/// The versions of `module` this host quarantined, with why.
fn quarantined(app: &App, module: &str) -> std::collections::BTreeMap<String, String> {
    app.routes.quarantined().into_iter().filter(|((m, _), _)| m == module).map(|((_, v), why)| (v, why)).collect()
}

/// Versions, reviews and suspension of a module
///
/// Who: its vendor or an operator.
#[utoipa::path(
    get,
    path = "/modules/{id}/versions",
    tag = "modules",
    security(("bearer" = [])),
    params(ModulePath),
    responses((status = 200, description = "{versions, reviews, suspended, quarantined}")),
)]
pub async fn versions(State(app): State<Arc<App>>, Caller(who): Caller, Path(ModulePath { id }): Path<ModulePath>) -> Result<Json<VersionsView>, Problem> {
    let owner = app.db.module_owner(&id).await?.ok_or_else(|| Problem::not_found("unknown-module", format!("no module `{id}`")))?;
    who.require_vendor(&owner).map_err(|e| refused(&who, e))?;
    Ok(Json(VersionsView {
        versions: app.db.versions(Some(&id)).await?,
        reviews: app.db.reviews(&id).await?,
        suspended: app.db.module_suspension(&id).await?,
        quarantined: quarantined(&app, &id),
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// How many of the newest entries (default and most: 500).
    limit: Option<usize>,
}

/// A module's recent log lines and requests on this host
///
/// Who: its vendor or an operator. The newest entries (at most 500) this host kept in
/// memory: each log line the module wrote and each request it answered, with status, time
/// and the module's error. Redacted when written: runs of four or more digits and e-mail
/// addresses are masked, and no entry names the caller. Lost on restart; each replica
/// keeps its own.
#[utoipa::path(
    get,
    path = "/modules/{id}/logs",
    tag = "modules",
    security(("bearer" = [])),
    params(ModulePath, LogsQuery),
    responses((status = 200, description = "entries, oldest first")),
)]
pub async fn logs(State(app): State<Arc<App>>, Caller(who): Caller, Path(ModulePath { id }): Path<ModulePath>, Query(query): Query<LogsQuery>) -> Result<Json<Vec<crate::telemetry::module_logs::Entry>>, Problem> {
    let loaded_from_file = app.file_routes.lock().expect("file routes").contains_key(&id);
    match app.db.module_owner(&id).await? {
        // Loaded from a file (outside the catalog) it is the operator's, even if a vendor
        // has published a module of the same id: its entries are keyed by id.
        _ if loaded_from_file => who.require_operator().map_err(|e| refused(&who, e))?,
        Some(owner) => who.require_vendor(&owner).map_err(|e| refused(&who, e))?,
        None => return Err(Problem::not_found("unknown-module", format!("no module `{id}`"))),
    }
    let limit = query.limit.unwrap_or(crate::telemetry::module_logs::KEPT_PER_MODULE);
    Ok(Json(app.module_logs.recent(&id, limit)))
}

/// Versions waiting for review
///
/// Who: operator.
#[utoipa::path(
    get,
    path = "/reviews",
    tag = "modules",
    security(("bearer" = [])),
    responses((status = 200, description = "the pending versions")),
)]
pub async fn pending(State(app): State<Arc<App>>, Caller(who): Caller) -> Result<Json<Vec<VersionRecord>>, Problem> {
    who.require_operator().map_err(|e| refused(&who, e))?;
    let all = app.db.versions(None).await?;
    Ok(Json(all.into_iter().filter(|v| v.status == VersionStatus::Pending).collect()))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    #[serde(default)]
    reason: String,
    /// On approval: move subscribers that follow the latest version (default true).
    /// False keeps them where they are, for a staged rollout through `swap`.
    #[serde(default)]
    release: Option<bool>,
}

/// The parts of `POST /modules`, read from the multipart form by `publish` (it refuses
/// other parts).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct PublishForm {
    /// TOML or JSON manifest
    #[schema(min_length = 1)]
    manifest: String,
    /// the component
    #[schema(value_type = String, format = Binary, min_length = 1)]
    component: Vec<u8>,
    /// base64 Ed25519 over `nukisashi-publish-v1\n<sha256(component)>\n<sha256(manifest)>\n`
    #[schema(min_length = 1)]
    signature: String,
}

#[derive(Serialize)]
pub struct VendorModule {
    id: String,
    versions: Vec<VersionRecord>,
    reviews: Vec<Review>,
    suspended: Option<String>,
    /// Versions this host could not load, with why.
    quarantined: std::collections::BTreeMap<String, String>,
}

// `GET /vendors/{id}/modules` (that vendor or an operator): every module the vendor
// owns, with all its versions, review decisions and suspension.
/// The vendor's modules with every version, review decision and suspension
///
/// What the console's vendor page shows.
///
/// Who: that vendor, or an operator.
#[utoipa::path(
    get,
    path = "/vendors/{id}/modules",
    tag = "modules",
    security(("bearer" = [])),
    params(VendorPath),
    responses((status = 200, description = "[{id, versions, reviews, suspended, quarantined}]")),
)]
pub async fn vendor_modules(State(app): State<Arc<App>>, Caller(who): Caller, Path(VendorPath { id: vendor }): Path<VendorPath>) -> Result<Json<Vec<VendorModule>>, Problem> {
    who.require_vendor(&vendor).map_err(|e| refused(&who, e))?;
    Ok(Json(modules_with_versions(&app, Some(&vendor)).await?))
}

/// Every module in the catalog with its versions, review decisions and suspension
///
/// What the console's operator page shows.
///
/// Who: operator.
#[utoipa::path(
    get,
    path = "/module-versions",
    tag = "modules",
    security(("bearer" = [])),
    responses((status = 200, description = "[{id, versions, reviews, suspended, quarantined}]")),
)]
pub async fn all_modules(State(app): State<Arc<App>>, Caller(who): Caller) -> Result<Json<Vec<VendorModule>>, Problem> {
    who.require_operator().map_err(|e| refused(&who, e))?;
    Ok(Json(modules_with_versions(&app, None).await?))
}

async fn modules_with_versions(app: &App, vendor: Option<&str>) -> Result<Vec<VendorModule>, Problem> {
    let mut by_module: std::collections::BTreeMap<String, Vec<VersionRecord>> = Default::default();
    for v in app.db.versions(None).await? {
        by_module.entry(v.module_id.clone()).or_default().push(v);
    }
    let mut out = Vec::new();
    for (id, versions) in by_module {
        if let Some(vendor) = vendor
            && app.db.module_owner(&id).await?.as_deref() != Some(vendor)
        {
            continue;
        }
        out.push(VendorModule { reviews: app.db.reviews(&id).await?, suspended: app.db.module_suspension(&id).await?, quarantined: quarantined(app, &id), id, versions });
    }
    Ok(out)
}

/// Approve
///
/// `release` (default true) moves subscribers that follow the latest version.
///
/// Who: operator.
#[utoipa::path(
    post,
    path = "/modules/{id}/versions/{version}/approve",
    tag = "modules",
    security(("bearer" = [])),
    params(ModuleVersionPath),
    request_body(content = Option<Decision>, content_type = "application/json"),
    responses((status = 200, description = "approved, with the municipalities moved")),
)]
pub async fn approve(
    State(app): State<Arc<App>>,
    Caller(who): Caller,
    Path(ModuleVersionPath { id, version }): Path<ModuleVersionPath>,
    body: Option<Json<Decision>>,
) -> Result<Json<serde_json::Value>, Problem> {
    who.require_operator().map_err(|e| refused(&who, e))?;
    let decision = body.map(|Json(d)| d).unwrap_or_default();
    let reason = if decision.reason.trim().is_empty() { "approved".to_string() } else { decision.reason };
    decide(&app, &id, &version, true, &reason, &who.subject).await?;
    let moved = if decision.release.unwrap_or(true) { app.release(&id, &version).await? } else { Vec::new() };
    app.announce(crate::replicas::Announcement::Version { module: id.clone(), version: version.clone() }).await;
    Ok(Json(serde_json::json!({ "module": id, "version": version, "status": "approved", "moved": moved })))
}

/// Reject with a reason
///
/// Who: operator.
#[utoipa::path(
    post,
    path = "/modules/{id}/versions/{version}/reject",
    tag = "modules",
    security(("bearer" = [])),
    params(ModuleVersionPath),
    request_body = Decision,
    responses((status = 200, description = "rejected")),
)]
pub async fn reject(
    State(app): State<Arc<App>>,
    Caller(who): Caller,
    Path(ModuleVersionPath { id, version }): Path<ModuleVersionPath>,
    body: Result<Json<Decision>, JsonRejection>,
) -> Result<Json<serde_json::Value>, Problem> {
    who.require_operator().map_err(|e| refused(&who, e))?;
    let Json(decision) = body?;
    if decision.reason.trim().is_empty() {
        return Err(Problem::unprocessable("reason-required", "a rejection needs a reason the vendor can act on"));
    }
    decide(&app, &id, &version, false, &decision.reason, &who.subject).await?;
    Ok(Json(serde_json::json!({ "module": id, "version": version, "status": "rejected" })))
}

async fn decide(app: &App, id: &str, version: &str, approve: bool, reason: &str, reviewer: &str) -> Result<(), Problem> {
    match app.db.version(id, version).await? {
        None => Err(Problem::not_found("unknown-version", format!("no version {id} {version}"))),
        Some(v) if v.status != VersionStatus::Pending => {
            Err(Problem::conflict("already-decided", format!("{id} {version} is already {}", v.status.as_str())))
        }
        Some(_) => {
            // Compare-and-set: only a version still pending is decided; a decision that lost
            // a race to another one changes nothing and says so.
            if !app.db.decide(id, version, approve, reason, reviewer).await? {
                let now = app.db.version(id, version).await?.map(|v| v.status.as_str().to_string()).unwrap_or_else(|| "gone".into());
                return Err(Problem::conflict("already-decided", format!("{id} {version} was decided meanwhile: it is {now}")));
            }
            tracing::info!(module = id, version, approve, reviewer, reason, "review decision");
            Ok(())
        }
    }
}

#[derive(Deserialize)]
pub struct CatalogQuery {
    category: Option<String>,
    q: Option<String>,
}

#[derive(Serialize)]
pub struct CatalogEntry {
    id: String,
    vendor: String,
    category: String,
    name: crate::catalog::manifest::Names,
    description: String,
    capabilities: Vec<crate::capabilities::Capability>,
    /// What each requested capability lets the module do, in plain words (for the person
    /// deciding whether to grant it).
    capability_explanations: std::collections::BTreeMap<&'static str, &'static str>,
    /// The settings each municipality gives the module (the console builds its form from it).
    config: std::collections::BTreeMap<String, crate::catalog::manifest::ConfigField>,
    latest: String,
    versions: Vec<String>,
}

/// Approved modules
///
/// Who: any signed-in user.
#[utoipa::path(
    get,
    path = "/catalog",
    tag = "modules",
    security(("bearer" = [])),
    params(("category" = Option<String>, Query), ("q" = Option<String>, Query, description = "words to look for in names and descriptions")),
    responses((status = 200, description = "the approved, unsuspended modules")),
)]
pub async fn catalog(State(app): State<Arc<App>>, Caller(_signed_in): Caller, Query(query): Query<CatalogQuery>) -> Result<Json<Vec<CatalogEntry>>, Problem> {
    let mut by_module: std::collections::BTreeMap<String, Vec<VersionRecord>> = Default::default();
    for v in app.db.versions(None).await? {
        if v.status == VersionStatus::Approved {
            by_module.entry(v.module_id.clone()).or_default().push(v);
        }
    }
    let mut out = Vec::new();
    for (id, versions) in by_module {
        if app.db.module_suspension(&id).await?.is_some() {
            continue;
        }
        let Some(latest) = crate::plugins::lifecycle::latest_approved(&versions) else { continue };
        let manifest = versions.iter().find(|v| v.version == latest).expect("latest is listed").manifest.clone();
        if query.category.as_ref().is_some_and(|c| *c != manifest.category) {
            continue;
        }
        if let Some(q) = &query.q {
            let hay = format!("{} {} {} {}", manifest.id, manifest.name.ja, manifest.name.en, manifest.description);
            if !hay.to_lowercase().contains(&q.to_lowercase()) {
                continue;
            }
        }
        out.push(CatalogEntry {
            id,
            vendor: manifest.vendor,
            category: manifest.category,
            name: manifest.name,
            description: manifest.description,
            capability_explanations: manifest.capabilities.iter().map(|c| (c.name(), c.explain())).collect(),
            capabilities: manifest.capabilities,
            config: manifest.config,
            latest,
            versions: versions.into_iter().map(|v| v.version).collect(),
        });
    }
    Ok(Json(out))
}
