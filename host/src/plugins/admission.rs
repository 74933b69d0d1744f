//! Admission: everything a published version must pass before anyone can route to it.
//!
//! In order: size → manifest → the publisher may act for the manifest's vendor → the
//! vendor is registered → signature over component and manifest → the module id belongs to
//! that vendor → the version is new → component loads (header, compile, imports, world) →
//! health check in a throwaway store → one transaction records module, bytes, version (and
//! the review, under an auto-approve policy). A refusal at any step writes nothing; the
//! compiled artifact may stay in the cache, keyed by digest, where it harms nothing.

use super::LoadedVersion;
use super::load::LoadError;
use super::signing;
use crate::app::App;
use crate::auth::Principal;
use crate::capabilities::{Caller, PlatformState};
use crate::catalog::manifest::Manifest;
use crate::store::catalog::{Inserted, NewVersion, VersionRecord};
use std::sync::Arc;
use tracing::Instrument;

/// Largest component accepted.
pub const MAX_COMPONENT_BYTES: usize = 32 << 20;
/// Largest manifest accepted.
pub const MAX_MANIFEST_BYTES: usize = 64 << 10;

/// What a vendor uploads.
pub struct Upload {
    pub manifest: Vec<u8>,
    pub component: Vec<u8>,
    pub signature: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Manifest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("vendor `{0}` is not registered with this platform; the operator registers vendors and their keys")]
    UnknownVendor(String),
    #[error("the upload carries no signature; sign it with the vendor's key (`nukisashi module sign`)")]
    MissingSignature,
    #[error("bad signature: {0}")]
    BadSignature(String),
    #[error("module `{module}` {version} is already published; versions are immutable, publish a new version number")]
    Duplicate { module: String, version: String },
    #[error("{0}")]
    Load(#[from] LoadError),
    #[error("the health check failed: {0}")]
    HealthCheck(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AdmissionError {
    /// The reason as counted in metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            AdmissionError::TooLarge(_) => "too_large",
            AdmissionError::Manifest(_) => "manifest",
            AdmissionError::Forbidden(_) => "forbidden",
            AdmissionError::UnknownVendor(_) => "unknown_vendor",
            AdmissionError::MissingSignature => "missing_signature",
            AdmissionError::BadSignature(_) => "bad_signature",
            AdmissionError::Duplicate { .. } => "duplicate",
            AdmissionError::Load(_) => "load",
            AdmissionError::HealthCheck(_) => "health_check",
            AdmissionError::Internal(_) => "internal",
        }
    }
}

/// Runs every admission step inside an `admission` span; a refusal is counted by reason.
pub async fn admit(app: &App, principal: &Principal, upload: Upload) -> Result<(VersionRecord, Arc<LoadedVersion>), AdmissionError> {
    let span = tracing::info_span!("admission", publisher = %principal.subject, bytes = upload.component.len(), module = tracing::field::Empty, version = tracing::field::Empty);
    let result = admit_steps(app, principal, upload).instrument(span.clone()).await;
    if let Err(e) = &result {
        app.metrics.admission_refused(e.kind());
        tracing::info!(parent: &span, reason = e.kind(), error = %e, "upload refused");
    }
    result
}

async fn admit_steps(app: &App, principal: &Principal, upload: Upload) -> Result<(VersionRecord, Arc<LoadedVersion>), AdmissionError> {
    if let Some(too_large) = size_problems(upload.manifest.len(), upload.component.len()).into_iter().next() {
        return Err(too_large);
    }
    let manifest = Manifest::parse(&upload.manifest).map_err(AdmissionError::Manifest)?;
    tracing::Span::current().record("module", manifest.id.as_str()).record("version", manifest.version.as_str());
    principal.require_vendor(&manifest.vendor).map_err(|e| AdmissionError::Forbidden(e.to_string()))?;
    let vendor = app.db.vendor(&manifest.vendor).await?.ok_or_else(|| AdmissionError::UnknownVendor(manifest.vendor.clone()))?;
    let signature = upload.signature.as_deref().filter(|s| !s.trim().is_empty()).ok_or(AdmissionError::MissingSignature)?;
    {
        // Hashing the component (up to 32 MiB) runs on a blocking thread.
        let (key, signature, component, manifest) = (vendor.public_key.clone(), signature.to_string(), upload.component.clone(), upload.manifest.clone());
        tokio::task::spawn_blocking(move || signing::verify(&key, &signature, &component, &manifest))
            .await
            .map_err(|e| AdmissionError::BadSignature(format!("the signature check failed: {e}")))?
            .map_err(AdmissionError::BadSignature)?;
    }
    if let Some(owner) = app.db.module_owner(&manifest.id).await? {
        if owner != manifest.vendor {
            return Err(AdmissionError::Forbidden(format!("module id `{}` belongs to vendor `{owner}`", manifest.id)));
        }
    }
    if app.db.version(&manifest.id, &manifest.version).await?.is_some() {
        return Err(AdmissionError::Duplicate { module: manifest.id, version: manifest.version });
    }

    let manifest = Arc::new(manifest);
    let loaded = load_and_health_check(app, manifest.clone(), upload.component.clone()).await?;

    let approve_as = vendor.auto_approve.then_some("auto-approve");
    let inserted = app
        .db
        .insert_version(&NewVersion {
            manifest: &manifest,
            digest: &loaded.identity.digest,
            bytes: &upload.component,
            signature: Some(signature),
            signed_manifest: std::str::from_utf8(&upload.manifest).ok(),
            published_by: &principal.subject,
            approve_as,
        })
        .await?;
    match inserted {
        Inserted::Yes => {}
        // Published concurrently by another request.
        Inserted::Duplicate => return Err(AdmissionError::Duplicate { module: manifest.id.clone(), version: manifest.version.clone() }),
        Inserted::TakenBy(owner) => return Err(AdmissionError::Forbidden(format!("module id `{}` belongs to vendor `{owner}`", manifest.id))),
    }
    app.versions.insert(loaded.clone());
    app.announce(crate::replicas::Announcement::Version { module: manifest.id.clone(), version: manifest.version.clone() }).await;
    let record = app.db.version(&manifest.id, &manifest.version).await?.expect("just inserted");
    tracing::info!(module = %manifest.id, version = %manifest.version, vendor = %manifest.vendor, status = ?record.status, "version admitted");
    Ok((record, loaded))
}

/// What is too large in an upload, for the manifest and the component each.
pub fn size_problems(manifest_bytes: usize, component_bytes: usize) -> Vec<AdmissionError> {
    let mut problems = Vec::new();
    if component_bytes > MAX_COMPONENT_BYTES {
        problems.push(AdmissionError::TooLarge(format!(
            "the component has {component_bytes} bytes; the upload limit is {MAX_COMPONENT_BYTES} bytes (32 MiB): build in release mode, strip debug information (`wasm-tools strip`), or leave unused dependencies out"
        )));
    }
    if manifest_bytes > MAX_MANIFEST_BYTES {
        problems.push(AdmissionError::TooLarge(format!("the manifest has {manifest_bytes} bytes; the limit is {MAX_MANIFEST_BYTES} bytes (64 KiB)")));
    }
    problems
}

/// Compiles the component (header, compile, pool limits, imports, world) and instantiates
/// it once with no grants: the steps of admission that look at the code, shared with
/// `nukisashi module check`.
pub async fn load_and_health_check(app: &App, manifest: Arc<Manifest>, component: Vec<u8>) -> Result<Arc<LoadedVersion>, AdmissionError> {
    let loaded = Arc::new(app.runtime.load(manifest, component).await?);
    // The health check runs in one of the instances kept for platform work.
    let _instance = app.governor.admission.admit_platform().await;
    app.runtime
        .health_check(&loaded, health_check_state(app, &loaded))
        .await
        .map_err(|e| AdmissionError::HealthCheck(e.to_string()))?;
    Ok(loaded)
}

/// A store state with no grants and no caller, for instantiating once.
fn health_check_state(app: &App, loaded: &LoadedVersion) -> PlatformState {
    PlatformState {
        municipality: Arc::new(crate::store::municipalities::Municipality {
            lg_code: crate::lgcode::LgCode::parse("130001").expect("valid code"),
            name: "(admission health check)".into(),
            prefecture: String::new(),
            population: 0,
        }),
        module: loaded.identity.clone(),
        caller: Caller::default(),
        request_id: "admission".into(),
        audit_context: Arc::new(crate::linkage::audit::AuditContext {
            lg_code: "130001".into(),
            module_id: loaded.identity.id.clone(),
            module_version: loaded.identity.version.clone(),
            request_id: "admission".into(),
            caller_subject: None,
            caller_role: "platform".into(),
        }),
        config: Default::default(),
        granted: Default::default(),
        db: app.db.clone(),
        governor: app.governor.clone(),
        module_logs: app.module_logs.clone(),
        host_call_bytes: 0,
        log_lines_left: 0,
        log_bytes_left: 0,
        audit: Default::default(),
        kv_writes: None,
        peak_memory: Default::default(),
        kv_handles: Default::default(),
        manifest: loaded.manifest.clone(),
        links: Default::default(),
        outbox: None,
    }
}
