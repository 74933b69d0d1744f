//! 児童手当 (child-allowance): eligibility and monthly amounts under the 2024-10 rules,
//! computed from the household in the resident registry plus the claimant's declarations;
//! claims (認定請求) with the 15-day rule, amount revisions (額改定) for new children, the end
//! of entitlement when the change feed reports a move-out or death, and the even-month
//! payment run for staff. A public calculator lets residents see what they would receive.

pub use nukisashi_sdk::date;
mod pages;
pub mod rules;

use date::Date;
use nukisashi_sdk::changes::{Change, ChangeKind};
use nukisashi_sdk::prelude::*;
use nukisashi_sdk::registry::{self, Resident, Status};
use rules::{Child, Month};
use serde_json::{Map, Value};

fn routes() -> Router {
    Router::new()
        .get("/", pages::home)
        .get("/calculate", calculate)
        .get("/staff", pages::staff)
        .get("/staff/claims", |_| Ok(Response::json(&all_claims()?)))
        .post("/staff/claims", create_claim)
        .get("/staff/claims/:id", claim_detail)
        .post("/staff/claims/:id/revision", revise_claim)
        .post("/staff/claims/:id/end", end_claim_route)
        .get("/staff/payment-run", |r| Ok(Response::json(&payment_run(payment_month_param(r)?)?)))
        .get("/staff/payment-run.csv", payment_run_csv)
        .get("/staff/refused-handoffs", |_| Ok(Response::json(&refused_handoffs()?)))
}

nukisashi_sdk::module!(routes, on_change = on_change, on_event = on_event);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum ClaimState {
    Active,
    Ended { last_month: Month, reason: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub on: Date,
    pub by: String,
    pub what: String,
}

/// A recipient's claim (認定) and the children it covers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claim {
    pub id: u64,
    /// The claimant's 宛名番号.
    pub claimant: String,
    pub claimant_name: String,
    pub household_number: String,
    pub filed: Date,
    pub first_month: Month,
    pub children: Vec<Child>,
    pub state: ClaimState,
    pub history: Vec<HistoryEntry>,
}

impl Claim {
    pub fn is_active(&self) -> bool {
        matches!(self.state, ClaimState::Active)
    }

    /// The children as paid: nothing after the claim's last month.
    fn paid_children(&self) -> Vec<Child> {
        let last = match &self.state {
            ClaimState::Active => None,
            ClaimState::Ended { last_month, .. } => Some(*last_month),
        };
        self.children
            .iter()
            .map(|c| Child { until: match (c.until, last) { (Some(a), Some(b)) => Some(a.min(b)), (a, b) => a.or(b) }, ..c.clone() })
            .collect()
    }

    pub fn monthly(&self, month: Month) -> i64 {
        rules::monthly_total(&self.paid_children(), month)
    }

    pub fn payment_due(&self, payment: Month) -> i64 {
        rules::payment_due(&self.paid_children(), payment)
    }
}

// ---- input helpers --------------------------------------------------------------------------

fn text(m: &Map<String, Value>, key: &str) -> String {
    match m.get(key) {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn date_field(m: &Map<String, Value>, key: &str, label: &str) -> Result<Option<Date>> {
    let v = text(m, key);
    if v.is_empty() {
        return Ok(None);
    }
    Date::parse(&v).map(Some).ok_or_else(|| Error::unprocessable(format!("{label}（{key}）は YYYY-MM-DD で入力してください")))
}

/// A list of 宛名番号 from a JSON array or a comma-separated form value.
fn numbers(m: &Map<String, Value>, key: &str) -> Vec<String> {
    match m.get(key) {
        Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        Some(Value::String(s)) => s.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect(),
        _ => Vec::new(),
    }
}

fn id_param(req: &Request) -> Result<u64> {
    req.param("id").and_then(|s| s.parse().ok()).ok_or_else(|| Error::bad_request("id must be a whole number"))
}

fn staff_name() -> String {
    let c = identity::caller();
    c.display_name.or(c.subject).unwrap_or_else(|| "staff".into())
}

/// The payment month asked for, or the next one from today.
pub fn payment_month_param(req: &Request) -> Result<Month> {
    let month = match req.query_param("month") {
        Some(m) => Month::parse(&m).ok_or_else(|| Error::bad_request("month は YYYY-MM で指定してください"))?,
        None => next_payment_month(),
    };
    if !rules::is_payment_month(month) {
        return Err(Error::bad_request(format!("{month} は支払月ではありません（支払は偶数月）")));
    }
    Ok(month)
}

pub fn next_payment_month() -> Month {
    let now = Month::of(Date::today());
    if rules::is_payment_month(now) { now } else { now.next() }
}

// ---- storage -------------------------------------------------------------------------------

fn claim_key(id: u64) -> String {
    format!("claim/{id:010}")
}

pub fn load_claim(id: u64) -> Result<Claim> {
    kv::get_json(&claim_key(id))?.ok_or_else(|| Error::not_found(format!("認定 {id} はありません")))
}

fn save_claim(claim: &Claim) -> Result<()> {
    kv::set_json(&claim_key(claim.id), claim)?;
    // Indexes for the change handler: who is whose claimant or child.
    kv::set_json(&format!("by-person/{}", claim.claimant), &claim.id)?;
    for c in &claim.children {
        kv::set_json(&format!("by-person/{}", c.addressee_number), &claim.id)?;
    }
    Ok(())
}

pub fn refused_handoffs() -> Result<Vec<RefusedHandoff>> {
    let mut out = Vec::new();
    for key in kv::all_keys("refused-handoff/")? {
        if let Some(r) = kv::get_json(&key)? {
            out.push(r);
        }
    }
    Ok(out)
}

pub fn all_claims() -> Result<Vec<Claim>> {
    let mut out = Vec::new();
    for key in kv::all_keys("claim/")? {
        if let Some(c) = kv::get_json(&key)? {
            out.push(c);
        }
    }
    Ok(out)
}

// ---- eligibility ---------------------------------------------------------------------------

/// The household's children who can count in `from` (born, and not past 大学生年代).
fn children_of(household: &[Resident], claimant: &Resident, supported: &[String], from: Month) -> Result<Vec<Child>> {
    let mut out = Vec::new();
    for r in household {
        if r.addressee_number == claimant.addressee_number || !r.relationship.contains('子') || r.status != Status::Resident {
            continue;
        }
        let birth = Date::parse(&r.birth_date).ok_or_else(|| Error::internal(format!("住民記録の生年月日が読めません: {}", r.birth_date)))?;
        if Month::of(rules::school_year_end(birth, 22)) < from {
            continue;
        }
        out.push(Child { addressee_number: r.addressee_number.clone(), birth_date: birth, supported: supported.contains(&r.addressee_number), from, until: None });
    }
    Ok(out)
}

fn create_claim(req: &Request) -> Result<Response> {
    let m = req.fields()?;
    let claimant_number = text(&m, "claimant");
    if claimant_number.is_empty() {
        return Err(Error::unprocessable("請求者の宛名番号（claimant）を入力してください"));
    }
    let filed = date_field(&m, "filed", "請求日")?.unwrap_or_else(Date::today);
    let event = date_field(&m, "event", "出生・転入日")?;
    let claim = new_claim(&claimant_number, filed, event, &numbers(&m, "supported"), staff_name(), "認定請求".into())?;
    Ok(Response::after_post(req, "/staff", 201, &claim))
}

/// Checks and records a claim: the claimant must be a resident with a child who counts.
fn new_claim(claimant_number: &str, filed: Date, event: Option<Date>, supported: &[String], by: String, what: String) -> Result<Claim> {
    let claimant_number = claimant_number.to_string();
    let claimant = registry::get(&claimant_number)?.ok_or_else(|| Error::not_found(format!("宛名番号 {claimant_number} の住民はいません")))?;
    if claimant.status != Status::Resident {
        return Err(Error::unprocessable(format!("{} さんは住民ではありません（{}）", claimant.name, claimant.status_reason.clone().unwrap_or_default())));
    }
    if all_claims()?.iter().any(|c| c.is_active() && c.claimant == claimant_number) {
        return Err(Error::conflict(format!("{} さんの認定は既にあります（額改定は revision で）", claimant.name)));
    }
    let first_month = rules::first_paid_month(filed, event);
    let household = registry::household(&claimant.household_number)?;
    let children = children_of(&household, &claimant, supported, first_month)?;
    refuse_claimed_elsewhere(&children, None)?;
    if rules::monthly_total(&children, first_month) == 0 {
        return Err(Error::unprocessable(format!("{} さんの世帯に支給対象となる児童がいません", claimant.name)));
    }
    let claim = Claim {
        id: kv::increment("seq/claim", 1)? as u64,
        claimant: claimant_number,
        claimant_name: claimant.name.clone(),
        household_number: claimant.household_number.clone(),
        filed,
        first_month,
        children,
        state: ClaimState::Active,
        history: vec![HistoryEntry { on: Date::today(), by, what: format!("{what}（{filed}受付、{first_month}分から支給）") }],
    };
    save_claim(&claim)?;
    log::info(&format!("claim {} for household {}", claim.id, claim.household_number));
    Ok(claim)
}

/// A child is paid to one recipient: refuses children already in another active claim
/// (the other parent's, say), naming the claim.
fn refuse_claimed_elsewhere(children: &[rules::Child], except: Option<u64>) -> Result<()> {
    for claim in all_claims()?.iter().filter(|c| c.is_active() && Some(c.id) != except) {
        if let Some(child) = children.iter().find(|child| claim.children.iter().any(|c| c.addressee_number == child.addressee_number)) {
            return Err(Error::conflict(format!(
                "宛名番号 {} の児童は、既に認定番号 {} で {} さんに支給されています（児童手当の受給者は児童1人につき1人です）",
                child.addressee_number, claim.id, claim.claimant_name
            )));
        }
    }
    Ok(())
}

/// What the e-application module hands over when a 児童手当 認定請求 is completed.
#[derive(Deserialize)]
struct ClaimHandoff {
    receipt_number: String,
    submitted_on: String,
    addressee_number: Option<String>,
    values: std::collections::BTreeMap<String, String>,
}

/// A refused hand-off, kept for staff (the event is not retried: the claim itself is wrong).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefusedHandoff {
    pub receipt_number: String,
    pub addressee_number: Option<String>,
    pub reason: String,
}

/// Pushed events: a completed 認定請求 from e-application becomes a claim, once per 受付番号.
fn on_event(event: &nukisashi_sdk::events::Event) -> std::result::Result<(), String> {
    if event.source != "e-application" || event.topic != "child-allowance-claim" {
        return Ok(());
    }
    let handoff: ClaimHandoff = event.payload()?;
    let seen = format!("handoff/{}", handoff.receipt_number);
    if kv::get(&seen).map_err(|e| e.to_string())?.is_some() {
        return Ok(());
    }
    let filed = Date::parse(&handoff.submitted_on).ok_or("the hand-off has no valid submission date")?;
    let event_date = handoff.values.get("event_date").and_then(|d| Date::parse(d));
    let supported: Vec<String> = handoff.values.get("supported_children").map(|s| s.split(',').map(|p| p.trim().to_string()).collect()).unwrap_or_default();
    let outcome = match handoff.addressee_number.as_deref() {
        None => Err("宛名番号がありません".to_string()),
        Some(number) => new_claim(number, filed, event_date, &supported, "電子申請".into(), format!("電子申請 {} による認定請求", handoff.receipt_number))
            .map(|c| c.id)
            .map_err(|e| e.detail),
    };
    match outcome {
        Ok(id) => kv::set_json(&seen, &id).map_err(|e| e.to_string()),
        Err(reason) => {
            let refused = RefusedHandoff { receipt_number: handoff.receipt_number.clone(), addressee_number: handoff.addressee_number, reason };
            kv::set_json(&format!("refused-handoff/{}", handoff.receipt_number), &refused).map_err(|e| e.to_string())?;
            kv::set_json(&seen, &0u64).map_err(|e| e.to_string())
        }
    }
}

#[derive(Serialize)]
struct ScheduleRow {
    payment_month: Month,
    amount: i64,
}

fn claim_detail(req: &Request) -> Result<Response> {
    let claim = load_claim(id_param(req)?)?;
    let mut month = next_payment_month();
    let mut schedule = Vec::new();
    for _ in 0..6 {
        schedule.push(ScheduleRow { payment_month: month, amount: claim.payment_due(month) });
        month = month.next().next();
    }
    let now = Month::of(Date::today());
    Ok(Response::json(&serde_json::json!({
        "claim": claim,
        "this_month": rules::monthly_amounts(&claim.paid_children(), now),
        "schedule": schedule,
    })))
}

/// 額改定請求: new children of the household join from the month after the revision (15-day
/// rule for a birth); the support declarations are replaced if given.
fn revise_claim(req: &Request) -> Result<Response> {
    let mut claim = load_claim(id_param(req)?)?;
    if !claim.is_active() {
        return Err(Error::conflict("終了した認定は改定できません"));
    }
    let m = req.fields()?;
    let filed = date_field(&m, "filed", "請求日")?.unwrap_or_else(Date::today);
    let event = date_field(&m, "event", "出生日")?;
    let from = rules::first_paid_month(filed, event);
    let claimant = registry::get(&claim.claimant)?.ok_or_else(|| Error::not_found("請求者が住民記録にいません"))?;
    let supported = numbers(&m, "supported");
    let household = registry::household(&claimant.household_number)?;
    let before = claim.monthly(from);
    let mut added = Vec::new();
    for child in children_of(&household, &claimant, &supported, from)? {
        match claim.children.iter_mut().find(|c| c.addressee_number == child.addressee_number) {
            Some(existing) => {
                if m.contains_key("supported") {
                    existing.supported = child.supported;
                }
            }
            None => {
                added.push(child.addressee_number.clone());
                claim.children.push(child);
            }
        }
    }
    if added.is_empty() && !m.contains_key("supported") {
        return Err(Error::unprocessable("世帯に新しい児童がいません"));
    }
    let new_children: Vec<rules::Child> = claim.children.iter().filter(|c| added.contains(&c.addressee_number)).cloned().collect();
    refuse_claimed_elsewhere(&new_children, Some(claim.id))?;
    let after = claim.monthly(from);
    claim.history.push(HistoryEntry { on: Date::today(), by: staff_name(), what: format!("額改定（{from}分から月額 {before}円 → {after}円、追加 {}）", added.join("・")) });
    save_claim(&claim)?;
    Ok(Response::json(&claim))
}

fn end_claim(claim: &mut Claim, ended: Date, reason: String, by: String) {
    let last_month = rules::last_paid_month(ended);
    claim.history.push(HistoryEntry { on: Date::today(), by, what: format!("消滅（{reason}、{last_month}分まで支給）") });
    claim.state = ClaimState::Ended { last_month, reason };
}

fn end_claim_route(req: &Request) -> Result<Response> {
    let mut claim = load_claim(id_param(req)?)?;
    if !claim.is_active() {
        return Err(Error::conflict("この認定は既に終了しています"));
    }
    let m = req.fields()?;
    let ended = date_field(&m, "date", "消滅日")?.unwrap_or_else(Date::today);
    let reason = text(&m, "reason");
    if reason.is_empty() {
        return Err(Error::unprocessable("消滅の理由（reason）を入力してください"));
    }
    end_claim(&mut claim, ended, reason, staff_name());
    save_claim(&claim)?;
    Ok(Response::json(&claim))
}

/// Pushed changes: a claimant who moves out or dies ends the claim (paid through that
/// month); a child who does leaves it from the month after.
fn on_change(change: &Change) -> std::result::Result<(), String> {
    if !matches!(change.kind, ChangeKind::MovedOut | ChangeKind::Deceased) {
        return Ok(());
    }
    let Some(id) = kv::get_json::<u64>(&format!("by-person/{}", change.addressee_number)).map_err(|e| e.to_string())? else {
        return Ok(());
    };
    let mut claim = load_claim(id).map_err(|e| e.to_string())?;
    if !claim.is_active() {
        return Ok(());
    }
    let ended = Date::parse(&change.effective_date).unwrap_or_else(Date::today);
    let reason = format!("{}（住民記録の異動 {}）", change.reason, change.effective_date);
    if claim.claimant == change.addressee_number {
        end_claim(&mut claim, ended, reason, "住民記録".into());
    } else if let Some(child) = claim.children.iter_mut().find(|c| c.addressee_number == change.addressee_number) {
        child.until = Some(rules::last_paid_month(ended));
        claim.history.push(HistoryEntry { on: Date::today(), by: "住民記録".into(), what: format!("児童 {} の支給終了（{reason}）", change.addressee_number) });
    }
    save_claim(&claim).map_err(|e| e.to_string())
}

// ---- payment run and calculator --------------------------------------------------------------

#[derive(Serialize)]
pub struct PaymentRow {
    pub claim_id: u64,
    pub claimant: String,
    pub claimant_name: String,
    pub amount: i64,
}

#[derive(Serialize)]
pub struct PaymentRun {
    pub payment_month: Month,
    pub covers: [Month; 2],
    pub rows: Vec<PaymentRow>,
    pub recipients: usize,
    pub total: i64,
}

pub fn payment_run(payment: Month) -> Result<PaymentRun> {
    let rows: Vec<PaymentRow> = all_claims()?
        .into_iter()
        .map(|c| PaymentRow { claim_id: c.id, amount: c.payment_due(payment), claimant: c.claimant, claimant_name: c.claimant_name })
        .filter(|r| r.amount > 0)
        .collect();
    let total = rows.iter().map(|r| r.amount).sum();
    Ok(PaymentRun { payment_month: payment, covers: rules::covered_months(payment), recipients: rows.len(), rows, total })
}

/// `GET /staff/payment-run.csv?month=YYYY-MM`: the payment list as a file for the
/// payment system (UTF-8 with a BOM, so spreadsheet software reads the names).
fn payment_run_csv(req: &Request) -> Result<Response> {
    let run = payment_run(payment_month_param(req)?)?;
    let mut csv = String::from("\u{feff}認定番号,宛名番号,受給者,支払額\r\n");
    for r in &run.rows {
        csv.push_str(&format!("{},{},{},{}\r\n", r.claim_id, csv_text(&r.claimant), csv_text(&r.claimant_name), r.amount));
    }
    Ok(Response::new(200)
        .header("content-type", "text/csv; charset=utf-8")
        .header("content-disposition", format!("attachment; filename=\"payment-run-{}.csv\"", run.payment_month))
        .body(csv.into_bytes()))
}

/// A text cell: quoted, and never read as a formula by spreadsheet software.
fn csv_text(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{value}") } else { value.to_string() };
    format!("\"{}\"", value.replace('"', "\"\""))
}

/// `GET /calculate?births=2016-05-01,2020-01-10&supported=2004-06-01&month=2026-06`: the
/// monthly amount per child for a household (no personal data needed).
fn calculate(req: &Request) -> Result<Response> {
    let parse_dates = |key: &str| -> Result<Vec<Date>> {
        req.query_param(key)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| Date::parse(s).ok_or_else(|| Error::bad_request(format!("`{s}` は YYYY-MM-DD の日付ではありません"))))
            .collect()
    };
    let births = parse_dates("births")?;
    let supported = parse_dates("supported")?;
    if births.is_empty() && supported.is_empty() {
        return Err(Error::bad_request("births に子の生年月日をカンマ区切りで指定してください"));
    }
    let month = match req.query_param("month") {
        Some(m) => Month::parse(&m).ok_or_else(|| Error::bad_request("month は YYYY-MM です"))?,
        None => Month::of(Date::today()),
    };
    let children: Vec<Child> = births
        .iter()
        .map(|b| (b, false))
        .chain(supported.iter().map(|b| (b, true)))
        .enumerate()
        .map(|(i, (b, s))| Child { addressee_number: format!("child-{}", i + 1), birth_date: *b, supported: s, from: month, until: None })
        .collect();
    let amounts = rules::monthly_amounts(&children, month);
    let total: i64 = amounts.iter().map(|a| a.amount).sum();
    Ok(Response::json(&serde_json::json!({ "month": month, "children": amounts, "monthly_total": total })))
}

#[cfg(test)]
mod tests {
    use super::csv_text;

    #[test]
    fn csv_cells_are_quoted_and_never_formulas() {
        assert_eq!(csv_text("山田　蓮"), "\"山田　蓮\"");
        assert_eq!(csv_text("a\"b,c"), "\"a\"\"b,c\"");
        assert_eq!(csv_text("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_text("-1"), "\"'-1\"");
    }
}
