//! What a municipality's administrator decides about modules that link to each other:
//! which subscribed module provides each standard interface (the platform's own data is
//! the default where it has some), which notice kinds from other municipalities it takes,
//! from which sending modules and into which module, and passing over a notice its module
//! refuses for ever.

use super::auth::{Caller, refused};
use super::municipalities::parse_code;
use super::openapi::MunicipalityPath;
use super::problem::Problem;
use crate::app::App;
use crate::catalog::manifest::{ExtensionItemSpec, ProvidedInterface, is_valid_notice_kind};
use crate::store::providers::ChoiceRefused;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::IntoParams;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ProviderPath {
    /// 全国地方公共団体コード with its check digit
    #[param(pattern = "^[0-9]{6}$", example = "131016")]
    pub lg_code: String,
    /// `receipts` or `resident-registry`
    #[param(example = "receipts")]
    pub interface: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct NoticeKindPath {
    /// 全国地方公共団体コード with its check digit
    #[param(pattern = "^[0-9]{6}$", example = "131016")]
    pub lg_code: String,
    /// A notice kind, e.g. `onestop-notification`
    #[param(pattern = "^[a-z0-9-]{1,64}$", example = "onestop-notification")]
    pub kind: String,
}

/// A module that could provide an interface here.
#[derive(Serialize)]
pub struct Candidate {
    module: String,
    version: String,
    /// The items it adds beyond the standard record.
    extension_items: Vec<ExtensionItemSpec>,
}

/// One provided interface at a municipality.
#[derive(Serialize)]
pub struct ProvidedHere {
    interface: &'static str,
    label: &'static str,
    /// The module chosen to provide it; none: the platform's own data (`platform_default`)
    /// or nobody (calls are `unavailable`).
    chosen: Option<String>,
    platform_default: bool,
    /// Subscribed modules that declare they provide it, with their extension items.
    candidates: Vec<Candidate>,
}

/// Provided interfaces
///
/// Per standard interface: which module provides it here, and which subscribed modules could, with the extension items each adds.
///
/// Who: its admin or an operator.
#[utoipa::path(
    get,
    path = "/municipalities/{lg_code}/providers",
    tag = "subscriptions",
    security(("bearer" = [])),
    params(MunicipalityPath),
    responses((status = 200, description = "each interface with its provider and candidates")),
)]
pub async fn providers(State(app): State<Arc<App>>, Caller(who): Caller, Path(MunicipalityPath { lg_code: code }): Path<MunicipalityPath>) -> Result<Json<Vec<ProvidedHere>>, Problem> {
    let code = parse_code(&code)?;
    who.require_admin_of(&code).map_err(|e| refused(&who, e))?;
    app.require_municipality(&code).await?;
    let chosen = app.live.providers_for(&code);
    let routes = app.live.routes_for(&code);
    Ok(Json(
        ProvidedInterface::ALL
            .into_iter()
            .map(|interface| ProvidedHere {
                interface: interface.name(),
                label: interface.label(),
                chosen: chosen.get(&interface).cloned(),
                platform_default: interface.platform_has_default(),
                candidates: routes
                    .iter()
                    .filter(|r| r.version.manifest.provides.contains_key(&interface))
                    .map(|r| Candidate {
                        module: r.version.identity.id.clone(),
                        version: r.version.identity.version.clone(),
                        extension_items: r.version.manifest.extension_items(interface).to_vec(),
                    })
                    .collect(),
            })
            .collect(),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChooseProvider {
    /// A subscribed module whose manifest declares it provides the interface; `null` for
    /// none (the platform's own data, where it has some). Required: a body without it
    /// changes nothing.
    #[serde(default, deserialize_with = "super::subscriptions::present")]
    #[schema(value_type = Option<String>, required = true)]
    module: Option<Option<String>>,
}

/// Choose the module that provides an interface
///
/// Consumers keep calling the same interface and cannot tell which vendor answers; the switch is one atomic routing change (a request in flight keeps the provider it first called). Refused when the module is not subscribed here, does not declare the interface, or would make a loop between providers; `module` is required (`null` for none).
///
/// Who: its admin or an operator.
#[utoipa::path(
    put,
    path = "/municipalities/{lg_code}/providers/{interface}",
    tag = "subscriptions",
    security(("bearer" = [])),
    params(ProviderPath),
    request_body = ChooseProvider,
    responses((status = 200, description = "the choice")),
)]
pub async fn choose_provider(
    State(app): State<Arc<App>>,
    Caller(who): Caller,
    Path(ProviderPath { lg_code: code, interface }): Path<ProviderPath>,
    body: Result<Json<ChooseProvider>, JsonRejection>,
) -> Result<Json<serde_json::Value>, Problem> {
    let code = parse_code(&code)?;
    who.require_admin_of(&code).map_err(|e| refused(&who, e))?;
    app.require_municipality(&code).await?;
    let names: Vec<&str> = ProvidedInterface::ALL.iter().map(|i| i.name()).collect();
    let interface = ProvidedInterface::parse(&interface)
        .ok_or_else(|| Problem::not_found("unknown-interface", format!("`{interface}` is not an interface modules provide; they provide {}", names.join(", "))))?;
    let Json(ChooseProvider { module }) = body?;
    let Some(module) = module else {
        return Err(Problem::unprocessable("module-required", "say which module provides it (`module`), or `null` for none"));
    };
    match app.db.choose_provider(code.as_str(), interface, module.as_deref(), &who.subject).await? {
        Ok(()) => {}
        Err(ChoiceRefused::NotSubscribed) => {
            return Err(Problem::unprocessable("not-subscribed", format!("{code} does not run `{}`: subscribe to it first", module.as_deref().unwrap_or_default())));
        }
        Err(ChoiceRefused::DoesNotProvide(version)) => {
            return Err(Problem::unprocessable(
                "does-not-provide",
                format!("`{}` {version} does not declare [provides.{}] in its manifest", module.as_deref().unwrap_or_default(), interface.name()),
            ));
        }
        Err(ChoiceRefused::Cycle(path)) => {
            return Err(Problem::conflict("provider-cycle", format!("this choice would make the providers call each other in a loop: {path}; withdraw one of those grants or choose another module")));
        }
    }
    app.converge().await?;
    app.announce(crate::replicas::Announcement::Routes { module: module.clone().unwrap_or_default() }).await;
    tracing::info!(lg_code = %code, interface = interface.name(), module = ?module, by = %who.subject, "provider chosen");
    Ok(Json(serde_json::json!({ "lg_code": code, "interface": interface.name(), "module": module })))
}

/// Notice kinds at a municipality.
#[derive(Serialize)]
pub struct NoticesHere {
    /// Kinds accepted, each into one module.
    accepted: Vec<crate::store::notices::Acceptance>,
    /// Kinds the municipality's modules can take (`[notices] receives`), with the modules.
    receivable: std::collections::BTreeMap<String, Vec<String>>,
    /// The newest notices received and sent (at most 100 each).
    received: Vec<crate::store::notices::Notice>,
    sent: Vec<SentNotice>,
}

#[derive(Serialize)]
pub struct SentNotice {
    to_lg_code: String,
    #[serde(flatten)]
    notice: crate::store::notices::Notice,
}

/// Notices between municipalities
///
/// Which kinds this municipality accepts and into which module, which kinds its modules can take, and the newest notices received and sent.
///
/// Who: its admin or an operator.
#[utoipa::path(
    get,
    path = "/municipalities/{lg_code}/notices",
    tag = "subscriptions",
    security(("bearer" = [])),
    params(MunicipalityPath),
    responses((status = 200, description = "acceptances and recent notices")),
)]
pub async fn notices(State(app): State<Arc<App>>, Caller(who): Caller, Path(MunicipalityPath { lg_code: code }): Path<MunicipalityPath>) -> Result<Json<NoticesHere>, Problem> {
    let code = parse_code(&code)?;
    who.require_admin_of(&code).map_err(|e| refused(&who, e))?;
    app.require_municipality(&code).await?;
    let mut receivable: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for routed in app.live.routes_for(&code) {
        for kind in &routed.version.manifest.notices.receives {
            receivable.entry(kind.clone()).or_default().push(routed.version.identity.id.clone());
        }
    }
    let (received, sent) = app.db.notices_of(code.as_str(), 100).await?;
    Ok(Json(NoticesHere {
        accepted: app.db.notice_acceptances(code.as_str()).await?,
        receivable,
        received,
        sent: sent.into_iter().map(|(to_lg_code, notice)| SentNotice { to_lg_code, notice }).collect(),
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptNotices {
    /// A subscribed module whose manifest lists the kind under `[notices] receives`.
    module: String,
    /// The modules (at any municipality) whose notices of this kind are taken; by default
    /// only `module` itself, that is the same service elsewhere. A kind is only a name any
    /// vendor can declare: name the senders you trust.
    #[serde(default)]
    from: Option<Vec<String>>,
}

/// Accept a kind of notice from other municipalities
///
/// Notices of this kind sent from now on by the modules named in `from` (by default `module` itself, the same service elsewhere) go to `module`, exactly once and in order. Until then, other municipalities' modules are refused when they send it (and the refusal is in their audit trail).
///
/// Who: its admin or an operator.
#[utoipa::path(
    put,
    path = "/municipalities/{lg_code}/notices/{kind}",
    tag = "subscriptions",
    security(("bearer" = [])),
    params(NoticeKindPath),
    request_body = AcceptNotices,
    responses((status = 200, description = "accepted")),
)]
pub async fn accept(
    State(app): State<Arc<App>>,
    Caller(who): Caller,
    Path(NoticeKindPath { lg_code: code, kind }): Path<NoticeKindPath>,
    body: Result<Json<AcceptNotices>, JsonRejection>,
) -> Result<Json<serde_json::Value>, Problem> {
    let code = parse_code(&code)?;
    who.require_admin_of(&code).map_err(|e| refused(&who, e))?;
    app.require_municipality(&code).await?;
    if !is_valid_notice_kind(&kind) {
        return Err(Problem::bad_request("invalid-notice-kind", "notice kinds are 1–64 of a-z, 0-9 and `-`, e.g. `onestop-notification`"));
    }
    let Json(AcceptNotices { module, from }) = body?;
    let senders = from.unwrap_or_else(|| vec![module.clone()]);
    if senders.is_empty() || senders.len() > 32 || senders.iter().any(|m| !crate::is_valid_module_id(m)) {
        return Err(Problem::unprocessable("invalid-senders", "`from` names 1–32 module ids (lower-case letters, digits and `-`) whose notices of this kind are taken"));
    }
    let Some(routed) = app.live.resolve(&module, &code) else {
        return Err(Problem::unprocessable("not-subscribed", format!("{code} does not run `{module}`: subscribe to it first")));
    };
    if !routed.version.manifest.notices.receives.contains(&kind) {
        return Err(Problem::unprocessable("does-not-receive", format!("`{module}` does not list `{kind}` under [notices] receives in its manifest")));
    }
    app.db.accept_notices(code.as_str(), &kind, &module, &senders, &who.subject).await?;
    tracing::info!(lg_code = %code, kind, module, from = ?senders, by = %who.subject, "notices accepted");
    Ok(Json(serde_json::json!({ "lg_code": code, "kind": kind, "module": module, "from": senders })))
}

/// Stop accepting a kind of notice
///
/// Later sends are refused; notices already received are still delivered.
///
/// Who: its admin or an operator.
#[utoipa::path(
    delete,
    path = "/municipalities/{lg_code}/notices/{kind}",
    tag = "subscriptions",
    security(("bearer" = [])),
    params(NoticeKindPath),
    responses((status = 200, description = "no longer accepted")),
)]
pub async fn refuse(State(app): State<Arc<App>>, Caller(who): Caller, Path(NoticeKindPath { lg_code: code, kind }): Path<NoticeKindPath>) -> Result<Json<serde_json::Value>, Problem> {
    let code = parse_code(&code)?;
    who.require_admin_of(&code).map_err(|e| refused(&who, e))?;
    if !is_valid_notice_kind(&kind) {
        return Err(Problem::bad_request("invalid-notice-kind", "notice kinds are 1–64 of a-z, 0-9 and `-`, e.g. `onestop-notification`"));
    }
    if !app.db.refuse_notices(code.as_str(), &kind).await? {
        return Err(Problem::not_found("not-accepted", format!("{code} does not accept notices of kind `{kind}`")));
    }
    tracing::info!(lg_code = %code, kind, by = %who.subject, "notices no longer accepted");
    Ok(Json(serde_json::json!({ "lg_code": code, "kind": kind, "accepted": false })))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct NoticeModulePath {
    /// 全国地方公共団体コード with its check digit
    #[param(pattern = "^[0-9]{6}$", example = "011002")]
    pub lg_code: String,
    /// The receiving module
    #[param(example = "furusato-tax")]
    pub module: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SkipNotice {
    /// The notice's sequence in this municipality's log: it must be the next one the module
    /// would be given.
    #[schema(minimum = 1)]
    sequence: i64,
    /// Why it is passed over (kept in the audit trail), e.g. what the sender was told.
    #[schema(min_length = 1, max_length = 500)]
    reason: String,
}

/// Pass over a notice the module cannot take
///
/// A notice its module refuses for ever holds every notice behind it. The administrator can pass over exactly that one (it must be the next the module would be given; look at `GET …/linkage/deliveries` and `GET …/notices`): it is never delivered, and the skip, with its reason, is in the audit trail.
///
/// Who: its admin or an operator.
#[utoipa::path(
    post,
    path = "/municipalities/{lg_code}/notices/queue/{module}/skip",
    tag = "subscriptions",
    security(("bearer" = [])),
    params(NoticeModulePath),
    request_body = SkipNotice,
    responses((status = 200, description = "passed over")),
)]
pub async fn skip(
    State(app): State<Arc<App>>,
    Caller(who): Caller,
    Path(NoticeModulePath { lg_code: code, module }): Path<NoticeModulePath>,
    body: Result<Json<SkipNotice>, JsonRejection>,
) -> Result<Json<serde_json::Value>, Problem> {
    let code = parse_code(&code)?;
    who.require_admin_of(&code).map_err(|e| refused(&who, e))?;
    app.require_municipality(&code).await?;
    let Json(SkipNotice { sequence, reason }) = body?;
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(Problem::unprocessable("reason-required", "say why the notice is passed over (1–500 characters); it is kept in the audit trail"));
    }
    let context = crate::linkage::audit::AuditContext {
        lg_code: code.to_string(),
        module_id: module.clone(),
        module_version: app.live.resolve(&module, &code).map(|r| r.version.identity.version.clone()).unwrap_or_default(),
        request_id: uuid::Uuid::new_v4().to_string(),
        caller_subject: Some(who.subject.clone()),
        caller_role: format!("{:?}", who.role).to_lowercase(),
    };
    let entry = crate::linkage::audit::AuditEntry { interface: "notices.skipped", query: format!("sequence={sequence} reason={reason}"), records: Vec::new(), counterpart: None };
    if !app.db.skip_notice(code.as_str(), &module, sequence, &context, &entry).await? {
        return Err(Problem::conflict("not-next", format!("notice {sequence} is not the next one `{module}` would be given at {code}: see GET /api/v1/municipalities/{code}/linkage/deliveries")));
    }
    app.deliveries.wake();
    tracing::warn!(lg_code = %code, module, sequence, reason, by = %who.subject, "notice passed over by an administrator");
    Ok(Json(serde_json::json!({ "lg_code": code, "module": module, "sequence": sequence, "skipped": true })))
}
