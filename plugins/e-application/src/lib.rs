//! 電子申請 (e-application): procedures defined as data (versioned form definitions managed
//! by staff), submissions validated on the server against the version they were made on,
//! attachments with type and size limits, a 受付番号, the status workflow with full history,
//! corrections after a return, and the hand-off of completed applications to other modules
//! through a platform event (the 児童手当 認定請求 reaches the child-allowance module).

pub use nukisashi_sdk::date;
pub mod forms;
mod pages;
pub mod workflow;

use date::Date;
use forms::{FormDef, Validated};
use nukisashi_sdk::identity::Role;
use nukisashi_sdk::prelude::*;
use serde_json::Value;
use std::collections::BTreeMap;
use workflow::{Actor, Status};

fn routes() -> Router {
    Router::new()
        .get("/", pages::home)
        .get("/forms", |_| Ok(Response::json(&latest_forms()?)))
        .get("/forms/:id", pages::form_page)
        .get("/forms/:id/definition", |r| Ok(Response::json(&latest_form(r.param("id").unwrap_or(""))?)))
        .post("/forms/:id", submit)
        .get("/applications/mine", |r| if r.wants_html() { pages::my_applications(r, &my_applications()?) } else { Ok(Response::json(&my_applications()?)) })
        .get("/applications/:no", |r| {
            let app = visible_application(r.param("no").unwrap_or(""))?;
            if r.wants_html() { pages::application(r, &app) } else { Ok(Response::json(&app)) }
        })
        .put("/applications/:no", resubmit)
        .post("/applications/:no", resubmit)
        .post("/applications/:no/withdraw", withdraw)
        .get("/staff", pages::staff)
        .get("/staff/applications", staff_list)
        .post("/staff/applications/:no/status", set_status)
        .get("/staff/applications/:no/files/:field", attachment)
        .post("/staff/forms", new_form_version)
}

nukisashi_sdk::module!(routes);

/// One change of status, kept for good.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub on: Date,
    pub by: String,
    pub from: Option<Status>,
    pub to: Status,
    pub comment: String,
}

/// Stored metadata of an attachment (its bytes are stored apart).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileInfo {
    pub name: String,
    pub content_type: String,
    pub size: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Application {
    /// 受付番号, e.g. `2026-000012`.
    pub receipt_number: String,
    pub form_id: String,
    pub form_version: u32,
    pub form_title: String,
    pub submitted_on: Date,
    pub applicant: Option<String>,
    /// The applicant's 宛名番号 as vouched for by the identity provider, if it was.
    pub addressee_number: Option<String>,
    pub values: BTreeMap<String, String>,
    pub files: BTreeMap<String, FileInfo>,
    pub status: Status,
    pub history: Vec<HistoryEntry>,
}

// ---- storage -------------------------------------------------------------------------------

pub(crate) fn form_key(id: &str, version: u32) -> String {
    format!("form/{id}/{version:06}")
}

/// The current version of a form; installs the built-in 児童手当 form on first use.
pub fn latest_form(id: &str) -> Result<FormDef> {
    let version = kv::increment(&format!("form-version/{id}"), 0)? as u32;
    if version == 0 {
        let builtin = forms::builtin_child_allowance_claim();
        if id == builtin.id {
            return install_form(builtin);
        }
        return Err(Error::not_found(format!("手続 `{id}` はありません")));
    }
    kv::get_json(&form_key(id, version))?.ok_or_else(|| Error::internal(format!("form {id} v{version} is missing")))
}

fn install_form(mut def: FormDef) -> Result<FormDef> {
    def.check().map_err(Error::unprocessable)?;
    def.version = kv::increment(&format!("form-version/{}", def.id), 1)? as u32;
    kv::set_json(&form_key(&def.id, def.version), &def)?;
    kv::set(&format!("form-ids/{}", def.id), b"1")?;
    Ok(def)
}

pub fn latest_forms() -> Result<Vec<FormDef>> {
    let builtin = forms::builtin_child_allowance_claim().id;
    let mut ids: Vec<String> = kv::all_keys("form-ids/")?.into_iter().map(|k| k["form-ids/".len()..].to_string()).collect();
    if !ids.contains(&builtin) {
        ids.push(builtin);
    }
    ids.iter().map(|id| latest_form(id)).collect()
}

fn app_key(no: &str) -> String {
    format!("application/{no}")
}

fn load(no: &str) -> Result<Application> {
    kv::get_json(&app_key(no))?.ok_or_else(|| Error::not_found(format!("受付番号 {no} の申請はありません")))
}

fn save(app: &Application) -> Result<()> {
    kv::set_json(&app_key(&app.receipt_number), app)
}

fn all_applications() -> Result<Vec<Application>> {
    let mut out = Vec::new();
    for key in kv::all_keys("application/")? {
        if let Some(a) = kv::get_json(&key)? {
            out.push(a);
        }
    }
    Ok(out)
}

fn is_staff() -> bool {
    matches!(identity::caller().role, Role::Staff | Role::Admin | Role::Operator)
}

fn who() -> String {
    let c = identity::caller();
    c.display_name.or(c.subject).unwrap_or_else(|| "anonymous".into())
}

/// The application if the caller is its applicant or staff (others get a 404, not a hint).
fn visible_application(no: &str) -> Result<Application> {
    let app = load(no)?;
    let me = identity::caller().subject;
    if is_staff() || (me.is_some() && app.applicant == me) { Ok(app) } else { Err(Error::not_found(format!("受付番号 {no} の申請はありません"))) }
}

fn my_applications() -> Result<Vec<Application>> {
    let me = identity::caller().subject;
    Ok(all_applications()?.into_iter().filter(|a| me.is_some() && a.applicant == me).collect())
}

// ---- submission ----------------------------------------------------------------------------

fn max_attachment() -> usize {
    config::get_or("max_attachment_bytes", "5242880").parse().unwrap_or(5 << 20)
}

/// Validation failures as one 422 naming every field.
fn invalid(errors: Vec<(String, String)>) -> Error {
    let detail = errors.iter().map(|(f, m)| format!("{f}: {m}")).collect::<Vec<_>>().join(" / ");
    Error::unprocessable(detail)
}

fn store_files(no: &str, validated: &Validated) -> Result<BTreeMap<String, FileInfo>> {
    let mut files = BTreeMap::new();
    for (field, a) in &validated.files {
        kv::set(&format!("file/{no}/{field}"), &a.bytes)?;
        files.insert(field.clone(), FileInfo { name: a.name.clone(), content_type: a.content_type.clone(), size: a.bytes.len() });
    }
    Ok(files)
}

/// The 宛名番号 the sign-in vouched for is the applicant's own: a field prefilled from it
/// takes it (the page shows it read-only), and a post that says another is refused.
fn with_vouched_number(form: &FormDef, mut fields: serde_json::Map<String, Value>) -> Result<serde_json::Map<String, Value>> {
    let Some(number) = identity::addressee_number() else { return Ok(fields) };
    for f in form.fields.iter().filter(|f| f.prefill == Some(forms::Prefill::AddresseeNumber)) {
        match fields.get(&f.name).and_then(Value::as_str) {
            Some(sent) if !sent.is_empty() && sent != number => {
                return Err(Error::unprocessable(format!("{}: ログインした本人の宛名番号（{number}）以外は指定できません", f.label)));
            }
            _ => {
                fields.insert(f.name.clone(), Value::String(number.clone()));
            }
        }
    }
    Ok(fields)
}

fn submit(req: &Request) -> Result<Response> {
    let caller = identity::require(Role::Resident)?;
    let form = latest_form(req.param("id").unwrap_or(""))?;
    let validated = forms::validate(&form, &with_vouched_number(&form, req.fields()?)?, max_attachment()).map_err(invalid)?;
    let today = Date::today();
    let no = format!("{}-{:06}", today.year, kv::increment(&format!("seq/receipt/{}", today.year), 1)?);
    let files = store_files(&no, &validated)?;
    let app = Application {
        receipt_number: no.clone(),
        form_id: form.id.clone(),
        form_version: form.version,
        form_title: form.title.clone(),
        submitted_on: today,
        applicant: caller.subject.clone(),
        addressee_number: identity::addressee_number(),
        values: validated.values,
        files,
        status: Status::Submitted,
        history: vec![HistoryEntry { on: today, by: who(), from: None, to: Status::Submitted, comment: "申請を受け付けました".into() }],
    };
    save(&app)?;
    log::info(&format!("application {no} ({} v{})", form.id, form.version));
    Ok(Response::after_post(req, &format!("/?submitted={no}"), 201, &app))
}

/// A returned application, corrected: validated again against the version it was made on.
fn resubmit(req: &Request) -> Result<Response> {
    let mut app = visible_application(req.param("no").unwrap_or(""))?;
    if app.applicant != identity::caller().subject {
        return Err(Error::forbidden("申請者本人だけが補正できます"));
    }
    workflow::transition(Actor::Applicant, app.status, Status::Submitted).map_err(Error::conflict)?;
    let mut form: FormDef = kv::get_json(&form_key(&app.form_id, app.form_version))?.ok_or_else(|| Error::internal("the form version is missing"))?;
    // A file already on record need not be sent again; a new one replaces it.
    for f in form.fields.iter_mut().filter(|f| f.kind == forms::FieldKind::File && app.files.contains_key(&f.name)) {
        f.required = false;
    }
    let validated = forms::validate(&form, &with_vouched_number(&form, req.fields()?)?, max_attachment()).map_err(invalid)?;
    let mut files = app.files.clone();
    files.extend(store_files(&app.receipt_number, &validated)?);
    app.values = validated.values;
    app.files = files;
    app.history.push(HistoryEntry { on: Date::today(), by: who(), from: Some(app.status), to: Status::Submitted, comment: "補正して再提出".into() });
    app.status = Status::Submitted;
    save(&app)?;
    Ok(Response::after_post(req, &format!("/applications/{}", app.receipt_number), 200, &app))
}

fn withdraw(req: &Request) -> Result<Response> {
    let mut app = visible_application(req.param("no").unwrap_or(""))?;
    if app.applicant != identity::caller().subject {
        return Err(Error::forbidden("申請者本人だけが取り下げられます"));
    }
    workflow::transition(Actor::Applicant, app.status, Status::Withdrawn).map_err(Error::conflict)?;
    let comment = req.fields().ok().and_then(|m| m.get("comment").and_then(Value::as_str).map(str::to_string)).unwrap_or_default();
    app.history.push(HistoryEntry { on: Date::today(), by: who(), from: Some(app.status), to: Status::Withdrawn, comment });
    app.status = Status::Withdrawn;
    save(&app)?;
    Ok(Response::json(&app))
}

// ---- staff ---------------------------------------------------------------------------------

fn staff_list(req: &Request) -> Result<Response> {
    let wanted = req.query_param("status");
    let list: Vec<Application> = all_applications()?
        .into_iter()
        .filter(|a| wanted.as_ref().is_none_or(|w| serde_json::to_value(a.status).ok().and_then(|v| v.as_str().map(str::to_string)).as_deref() == Some(w.as_str())))
        .collect();
    Ok(Response::json(&list))
}

/// What a completed application hands to other modules.
#[derive(Serialize)]
struct Handoff<'a> {
    receipt_number: &'a str,
    form_id: &'a str,
    form_version: u32,
    submitted_on: Date,
    addressee_number: Option<&'a str>,
    values: &'a BTreeMap<String, String>,
}

fn set_status(req: &Request) -> Result<Response> {
    let no = req.param("no").unwrap_or("").to_string();
    let m = req.fields()?;
    let to: Status = serde_json::from_value(m.get("status").cloned().unwrap_or(Value::Null))
        .map_err(|_| Error::unprocessable("status は received, in-review, completed, returned, rejected のいずれかです"))?;
    let comment = m.get("comment").and_then(Value::as_str).unwrap_or("").trim().to_string();
    let mut app = load(&no)?;
    let needs_comment = workflow::transition(Actor::Staff, app.status, to).map_err(Error::conflict)?;
    if needs_comment && comment.is_empty() {
        return Err(Error::unprocessable(format!("「{}」にするときは理由（comment）を入力してください", to.label())));
    }
    if to == Status::Completed {
        let form: Option<FormDef> = kv::get_json(&form_key(&app.form_id, app.form_version))?;
        if let Some(topic) = form.and_then(|f| f.handoff) {
            // Published before the status is saved: if saving fails, staff retry and the
            // receiving module ignores the repeated 受付番号.
            let subject = app.addressee_number.clone().or_else(|| app.values.get("addressee_number").cloned());
            let handoff = Handoff {
                receipt_number: &app.receipt_number,
                form_id: &app.form_id,
                form_version: app.form_version,
                submitted_on: app.submitted_on,
                addressee_number: subject.as_deref(),
                values: &app.values,
            };
            let sequence = events::publish(&topic, subject.as_deref(), &handoff)?;
            log::info(&format!("application {no} handed off as event {sequence} ({topic})"));
        }
    }
    app.history.push(HistoryEntry { on: Date::today(), by: who(), from: Some(app.status), to, comment });
    app.status = to;
    save(&app)?;
    Ok(Response::after_post(req, "/staff", 200, &app))
}

fn attachment(req: &Request) -> Result<Response> {
    let no = req.param("no").unwrap_or("");
    let field = req.param("field").unwrap_or("");
    let app = load(no)?;
    let info = app.files.get(field).ok_or_else(|| Error::not_found(format!("{no} に添付 {field} はありません")))?;
    let bytes = kv::get(&format!("file/{no}/{field}"))?.ok_or_else(|| Error::not_found("添付ファイルがありません"))?;
    Ok(Response::new(200).header("content-type", info.content_type.clone()).header("content-disposition", "attachment").body(bytes))
}

/// A new version of a form definition (JSON); submissions keep the version they were made on.
fn new_form_version(req: &Request) -> Result<Response> {
    let def: FormDef = req.json().map_err(|e| Error::unprocessable(format!("the form definition is not valid: {}", e.detail)))?;
    let installed = install_form(def)?;
    Ok(Response::json(&installed).with_status(201))
}
