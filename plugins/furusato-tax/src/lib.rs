//! ふるさと納税 (furusato-tax): the return-gift catalogue, donations with receipts
//! (寄附金受領証明書), one-stop exception applications (ワンストップ特例), a deduction-limit
//! simulator, and the annual solicitation report — for one municipality per mount, with
//! everything municipality-specific taken from config.
//!
//! Resident routes (`/`, `/gifts`, `/simulator`, `/simulate` public; `/donations`,
//! `/onestop` signed-in residents) and staff routes (`/staff…`). The rules are in
//! [`rules`]; records in [`store`].

pub use nukisashi_sdk::date;
pub mod residence;
pub mod rules;
pub mod store;
mod pages;

use date::Date;
use nukisashi_sdk::identity::Role;
use nukisashi_sdk::prelude::*;
use rules::{LocalProductBasis, OnestopAssessment, OnestopForm};
use serde_json::{Map, Value};
use store::{Cost, Donation, DonationState, Donor, Gift, Onestop, OnestopStatus, StatusChange};

fn routes() -> Router {
    Router::new()
        .get("/", pages::catalogue)
        .get("/gifts", |_| Ok(Response::json(&offered_gifts()?)))
        .get("/simulator", pages::simulator)
        .get("/simulate", simulate)
        .get("/simulate/mine", simulate_mine)
        .post("/donations", donate)
        .get("/donations/mine", |r| if r.wants_html() { pages::my_donations(r, &my_donations()?) } else { Ok(Response::json(&my_donations()?)) })
        .get("/donations/:id/receipt", pages::receipt)
        .post("/onestop", apply_onestop)
        .get("/onestop/mine", my_onestop)
        .post("/onestop/:id/change", change_onestop)
        .get("/staff", pages::staff)
        .get("/staff/gifts", |_| Ok(Response::json(&store::all::<Gift>("gift")?)))
        .post("/staff/gifts", create_gift)
        .put("/staff/gifts/:id", update_gift)
        .post("/staff/gifts/:id/stock", add_stock)
        .get("/staff/donations", |_| Ok(Response::json(&store::all::<Donation>("donation")?)))
        .post("/staff/donations/:id/cancel", cancel_donation)
        .get("/staff/onestop", |_| Ok(Response::json(&store::onestops()?)))
        .post("/staff/onestop", record_mailed_onestop)
        .post("/staff/onestop/:id/change", record_mailed_change)
        .post("/staff/onestop/:id/status", set_onestop_status)
        .get("/staff/onestop/residence", |_| Ok(Response::json(&residence::counted()?)))
        .get("/staff/onestop/unmatched", |_| Ok(Response::json(&residence::unmatched()?)))
        .post("/staff/onestop/resend", |r| {
            let sent = residence::resend_pending(usize::MAX)?;
            Ok(Response::after_post(r, "/staff", 200, &serde_json::json!({ "sent": sent })))
        })
        .post("/staff/costs", add_cost)
        .get("/staff/report", |r| Ok(Response::json(&report(year_param(r)?)?)))
        .get("/staff/simulate/:addressee", simulate_resident)
}

nukisashi_sdk::module!(routes, on_notice = residence::on_notice);

// ---- input -----------------------------------------------------------------------------

fn text(m: &Map<String, Value>, key: &str) -> String {
    match m.get(key) {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn required(m: &Map<String, Value>, key: &str, label: &str) -> Result<String> {
    let v = text(m, key);
    if v.is_empty() { Err(Error::unprocessable(format!("{label}（{key}）を入力してください"))) } else { Ok(v) }
}

fn int(m: &Map<String, Value>, key: &str, label: &str) -> Result<i64> {
    match m.get(key) {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().replace(',', "").parse().ok(),
        _ => None,
    }
    .ok_or_else(|| Error::unprocessable(format!("{label}（{key}）は整数で入力してください")))
}

fn flag(m: &Map<String, Value>, key: &str) -> bool {
    match m.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.as_str(), "on" | "true" | "1" | "yes"),
        _ => false,
    }
}

fn id_param(req: &Request, name: &str) -> Result<u64> {
    req.param(name).and_then(|s| s.parse().ok()).ok_or_else(|| Error::bad_request(format!("{name} must be a whole number")))
}

fn year_param(req: &Request) -> Result<i32> {
    match req.query_param("year") {
        None => Ok(Date::today().year),
        Some(y) => y.parse().map_err(|_| Error::bad_request("year must be a year such as 2026")),
    }
}

fn caller_name() -> String {
    let c = identity::caller();
    c.display_name.or(c.subject).unwrap_or_else(|| "anonymous".into())
}


// ---- gifts ---------------------------------------------------------------------------------

#[derive(Serialize)]
pub struct OfferedGift {
    #[serde(flatten)]
    pub gift: Gift,
    pub stock: i64,
    pub basis_label: &'static str,
}

pub fn offered_gifts() -> Result<Vec<OfferedGift>> {
    let mut out = Vec::new();
    for gift in store::all::<Gift>("gift")? {
        if gift.offered && rules::within_gift_cost_rule(gift.procurement_cost, gift.min_donation) {
            let stock = store::stock(gift.id)?;
            out.push(OfferedGift { basis_label: gift.basis.label(), stock, gift });
        }
    }
    Ok(out)
}

fn basis(value: &str) -> Result<LocalProductBasis> {
    serde_json::from_value(Value::String(value.to_string())).map_err(|_| {
        let names: Vec<String> = LocalProductBasis::ALL.iter().map(|b| serde_json::to_value(b).unwrap().as_str().unwrap().to_string()).collect();
        Error::unprocessable(format!("地場産品の類型（basis）は {} のいずれかです", names.join(", ")))
    })
}

fn gift_from(m: &Map<String, Value>, id: u64) -> Result<Gift> {
    let gift = Gift {
        id,
        title: required(m, "title", "返礼品名")?,
        supplier: required(m, "supplier", "提供事業者")?,
        procurement_cost: int(m, "procurement_cost", "調達費")?,
        shipping_cost: int(m, "shipping_cost", "送料")?,
        min_donation: int(m, "min_donation", "必要寄附額")?,
        basis: basis(&required(m, "basis", "地場産品の類型")?)?,
        basis_note: text(m, "basis_note"),
        offered: m.get("offered").map(|_| flag(m, "offered")).unwrap_or(true),
    };
    if gift.procurement_cost < 0 || gift.shipping_cost < 0 || gift.min_donation <= 0 {
        return Err(Error::unprocessable("金額は0以上（必要寄附額は1円以上）で入力してください"));
    }
    if !rules::within_gift_cost_rule(gift.procurement_cost, gift.min_donation) {
        return Err(Error::unprocessable(format!(
            "調達費 {} 円が寄附額 {} 円の3割（{} 円）を超えるため、返礼品として提供できません",
            gift.procurement_cost,
            gift.min_donation,
            gift.min_donation * rules::GIFT_COST_PERCENT / 100
        )));
    }
    Ok(gift)
}

fn create_gift(req: &Request) -> Result<Response> {
    let m = req.fields()?;
    let mut gift = gift_from(&m, 0)?;
    gift.id = store::next_id("gift")?;
    store::save("gift", gift.id, &gift)?;
    if let Ok(stock) = int(&m, "stock", "在庫") {
        store::add_stock(gift.id, stock.max(0))?;
    }
    log::info(&format!("gift {} added: {}", gift.id, gift.title));
    Ok(Response::after_post(req, "/staff", 201, &gift))
}

fn update_gift(req: &Request) -> Result<Response> {
    let id = id_param(req, "id")?;
    if store::load::<Gift>("gift", id)?.is_none() {
        return Err(Error::not_found(format!("返礼品 {id} はありません")));
    }
    let gift = gift_from(&req.fields()?, id)?;
    store::save("gift", id, &gift)?;
    Ok(Response::after_post(req, "/staff", 200, &gift))
}

fn add_stock(req: &Request) -> Result<Response> {
    let id = id_param(req, "id")?;
    store::load::<Gift>("gift", id)?.ok_or_else(|| Error::not_found(format!("返礼品 {id} はありません")))?;
    let delta = int(&req.fields()?, "delta", "増減数")?;
    if store::stock(id)? + delta < 0 {
        return Err(Error::unprocessable("在庫を0未満にはできません"));
    }
    let stock = store::add_stock(id, delta)?;
    Ok(Response::after_post(req, "/staff", 200, &serde_json::json!({ "gift_id": id, "stock": stock })))
}

// ---- donations -----------------------------------------------------------------------------

/// The uses a donor may choose; `{首長}` in the config stands for the head's title
/// (区長, 市長, 町長, 村長), so the default reads right in every municipality.
fn purposes() -> Vec<String> {
    let head = context::head_title();
    config::get_or("purposes", "{首長}におまかせ").split(',').map(|p| p.trim().replace("{首長}", head)).filter(|p| !p.is_empty()).collect()
}

fn donate(req: &Request) -> Result<Response> {
    let m = req.fields()?;
    let amount = int(&m, "amount", "寄附額")?;
    let today = Date::today();
    let gift = match text(&m, "gift_id").as_str() {
        "" | "0" => None,
        id => {
            let id: u64 = id.parse().map_err(|_| Error::bad_request("gift_id must be a whole number"))?;
            let gift = store::load::<Gift>("gift", id)?.filter(|g| g.offered).ok_or_else(|| Error::not_found(format!("返礼品 {id} は提供していません")))?;
            Some(gift)
        }
    };
    rules::check_donation(amount, gift.as_ref().map(|g| g.min_donation), today, flag(&m, "via_point_portal")).map_err(Error::unprocessable)?;
    let purpose = text(&m, "purpose");
    let purposes = purposes();
    let purpose = if purpose.is_empty() { purposes[0].clone() } else { purpose };
    if !purposes.contains(&purpose) {
        return Err(Error::unprocessable(format!("使い道は {} から選んでください", purposes.join("、"))));
    }
    let donor = Donor {
        name: required(&m, "name", "氏名")?,
        postal_code: required(&m, "postal_code", "郵便番号")?,
        address: required(&m, "address", "住所")?,
        phone: required(&m, "phone", "電話番号")?,
        email: text(&m, "email"),
    };
    if let Some(g) = &gift
        && !store::take_stock(g.id)?
    {
        return Err(Error::conflict(format!("「{}」は在庫がありません", g.title)));
    }
    let donation = Donation {
        id: store::next_id("donation")?,
        receipt_number: store::next_receipt_number(today.year)?,
        date: today,
        donor,
        amount,
        payment_method: { let p = text(&m, "payment_method"); if p.is_empty() { "クレジットカード".into() } else { p } },
        gift_id: gift.map(|g| g.id),
        purpose,
        subject: identity::caller().subject,
        state: DonationState::Accepted,
    };
    store::save("donation", donation.id, &donation)?;
    log::info(&format!("donation {} of {} yen, receipt {}", donation.id, donation.amount, donation.receipt_number));
    Ok(Response::after_post(req, &format!("/donations/{}/receipt", donation.id), 201, &donation))
}

fn my_donations() -> Result<Vec<Donation>> {
    let me = identity::caller().subject;
    Ok(store::all::<Donation>("donation")?.into_iter().filter(|d| me.is_some() && d.subject == me).collect())
}

/// The donation if the caller may see it: the donor, or staff.
pub fn visible_donation(id: u64) -> Result<Donation> {
    let donation = store::load::<Donation>("donation", id)?.ok_or_else(|| Error::not_found(format!("寄附 {id} はありません")))?;
    let caller = identity::caller();
    let staff = matches!(caller.role, Role::Staff | Role::Admin | Role::Operator);
    if staff || (caller.subject.is_some() && caller.subject == donation.subject) {
        Ok(donation)
    } else {
        Err(Error::not_found(format!("寄附 {id} はありません")))
    }
}

fn cancel_donation(req: &Request) -> Result<Response> {
    let id = id_param(req, "id")?;
    let m = req.fields()?;
    let mut donation = store::load::<Donation>("donation", id)?.ok_or_else(|| Error::not_found(format!("寄附 {id} はありません")))?;
    if !donation.is_active() {
        return Err(Error::conflict(format!("寄附 {id} は取消済みです")));
    }
    donation.state = DonationState::Cancelled { on: Date::today(), reason: required(&m, "reason", "理由")?, refunded: flag(&m, "refunded"), by: caller_name() };
    if let Some(g) = donation.gift_id {
        store::return_stock(g)?;
    }
    store::save("donation", id, &donation)?;
    Ok(Response::after_post(req, "/staff", 200, &donation))
}

// ---- one-stop ------------------------------------------------------------------------------

fn apply_onestop(req: &Request) -> Result<Response> {
    let onestop = take_onestop(&req.fields()?, Date::today(), false)?;
    Ok(Response::after_post(req, "/onestop/mine", 201, &onestop))
}

/// A one-stop application that came by post, as staff record it with the day it arrived
/// (`arrived_on`): the deadline is judged on that day, as for one sent online.
fn record_mailed_onestop(req: &Request) -> Result<Response> {
    let m = req.fields()?;
    let onestop = take_onestop(&m, arrival_date(&m)?, true)?;
    Ok(Response::after_post(req, "/staff", 201, &onestop))
}

/// The day a mailed form arrived, as staff give it: a date, not in the future.
fn arrival_date(m: &Map<String, Value>) -> Result<Date> {
    let arrived = Date::parse(&required(m, "arrived_on", "到着日")?).ok_or_else(|| Error::unprocessable("到着日（arrived_on）は YYYY-MM-DD で入力してください"))?;
    if arrived > Date::today() {
        return Err(Error::unprocessable("到着日に未来の日付は入力できません"));
    }
    Ok(arrived)
}

/// Takes a one-stop application for a donation, which arrived on `received_on`, and, when
/// it is complete, sends the 申告特例通知書 to the donor's 住所地.
fn take_onestop(m: &Map<String, Value>, received_on: Date, by_mail: bool) -> Result<Onestop> {
    let donation_id = u64::try_from(int(m, "donation_id", "寄附番号")?).map_err(|_| Error::unprocessable("寄附番号（donation_id）は1以上の整数で入力してください"))?;
    let donation = visible_donation(donation_id)?;
    if !donation.is_active() {
        return Err(Error::unprocessable("取り消された寄附にはワンストップ特例を申請できません"));
    }
    if received_on < donation.date {
        return Err(Error::unprocessable(format!("到着日が寄附日（{}）より前です", donation.date.wareki())));
    }
    if store::onestops()?.iter().any(|o| o.donation_id == donation_id && o.status != OnestopStatus::Voided) {
        return Err(Error::conflict("この寄附の申請書は受付済みです（内容の変更は変更届で）"));
    }
    let form = OnestopForm {
        name: text(m, "name"),
        address: text(m, "address"),
        individual_number: text(m, "individual_number"),
        birth_date: text(m, "birth_date"),
        phone: text(m, "phone"),
        declares_no_tax_return: flag(m, "declares_no_tax_return"),
        declares_within_five: flag(m, "declares_within_five"),
        municipalities_this_year: int(m, "municipalities_this_year", "本年の寄附先団体数").unwrap_or(0).max(0) as u32,
    };
    let (status, reason) = match rules::assess_onestop(&form, donation.date, received_on) {
        OnestopAssessment::Refused(reason) => return Err(Error::unprocessable(reason)),
        OnestopAssessment::Received if by_mail => (OnestopStatus::Received, format!("郵送の申請書を受け付けました（{}到着）", received_on.wareki())),
        OnestopAssessment::Received => (OnestopStatus::Received, "申請書を受け付けました".to_string()),
        OnestopAssessment::Incomplete(missing) => (OnestopStatus::Incomplete, missing.join("／")),
    };
    let mut onestop = Onestop {
        id: store::next_id("onestop")?,
        donation_id,
        received_on,
        form,
        status,
        history: vec![StatusChange { on: Date::today(), status, by: caller_name(), reason }],
        changes: Vec::new(),
        // A mailed application is the donor's, whoever records it.
        subject: if by_mail { donation.subject.clone() } else { identity::caller().subject },
        by_mail,
        residence_notice: None,
    };
    if status == OnestopStatus::Received {
        residence::notify_residence(&mut onestop, &donation);
    }
    store::save("onestop", onestop.id, &onestop)?;
    // Notices that could not go earlier (the platform was busy) go with this one.
    residence::resend_pending(10)?;
    Ok(onestop)
}

fn my_onestop(req: &Request) -> Result<Response> {
    let me = identity::caller().subject;
    let mine: Vec<Onestop> = store::onestops()?.into_iter().filter(|o| me.is_some() && o.subject == me).collect();
    if req.wants_html() { pages::my_onestop(req, &mine) } else { Ok(Response::json(&mine)) }
}

fn change_onestop(req: &Request) -> Result<Response> {
    let onestop = take_change(req.param("id"), &req.fields()?, Date::today(), false)?;
    Ok(Response::after_post(req, "/", 200, &onestop))
}

/// A change form (変更届) that came by post, recorded by staff with the day it arrived.
fn record_mailed_change(req: &Request) -> Result<Response> {
    let m = req.fields()?;
    let onestop = take_change(req.param("id"), &m, arrival_date(&m)?, true)?;
    Ok(Response::after_post(req, "/staff", 200, &onestop))
}

/// Takes a change form that arrived on `received_on`; the deadline is judged on that day.
fn take_change(id: Option<&str>, m: &Map<String, Value>, received_on: Date, by_mail: bool) -> Result<Onestop> {
    let id: u64 = id.and_then(|s| s.parse().ok()).ok_or_else(|| Error::bad_request("id must be a whole number"))?;
    let mut onestop = store::onestop(id)?.ok_or_else(|| Error::not_found(format!("申請 {id} はありません")))?;
    let donation = visible_donation(onestop.donation_id)?;
    let deadline = rules::onestop_deadline(donation.date);
    if received_on > deadline {
        return Err(Error::unprocessable(format!("変更届の期限（{}）を過ぎています", deadline.wareki())));
    }
    if onestop.status == OnestopStatus::Voided {
        return Err(Error::conflict("無効となった申請は変更できません"));
    }
    let name = Some(text(m, "name")).filter(|s| !s.is_empty());
    let address = Some(text(m, "address")).filter(|s| !s.is_empty());
    if name.is_none() && address.is_none() {
        return Err(Error::unprocessable("変更後の氏名または住所を入力してください"));
    }
    if let Some(n) = &name {
        onestop.form.name = n.clone();
    }
    if let Some(a) = &address {
        onestop.form.address = a.clone();
    }
    onestop.changes.push(ChangeForm { received_on, name, address, by_mail });
    // A corrected form may complete an incomplete application.
    if onestop.status == OnestopStatus::Incomplete && rules::assess_onestop(&onestop.form, donation.date, received_on) == OnestopAssessment::Received {
        onestop.status = OnestopStatus::Received;
        onestop.history.push(StatusChange { on: Date::today(), status: OnestopStatus::Received, by: caller_name(), reason: "変更届により補正".into() });
        residence::notify_residence(&mut onestop, &donation);
    }
    store::save("onestop", id, &onestop)?;
    Ok(onestop)
}

use store::ChangeForm;

fn set_onestop_status(req: &Request) -> Result<Response> {
    let id = id_param(req, "id")?;
    let m = req.fields()?;
    let status: OnestopStatus = serde_json::from_value(Value::String(required(&m, "status", "状態")?))
        .map_err(|_| Error::unprocessable("status は received, incomplete, accepted, voided のいずれかです"))?;
    let reason = text(&m, "reason");
    let mut onestop = store::onestop(id)?.ok_or_else(|| Error::not_found(format!("申請 {id} はありません")))?;
    let allowed = match (onestop.status, status) {
        (OnestopStatus::Voided, _) => false,
        (OnestopStatus::Received, OnestopStatus::Accepted | OnestopStatus::Incomplete | OnestopStatus::Voided) => true,
        (OnestopStatus::Incomplete, OnestopStatus::Received | OnestopStatus::Voided) => true,
        (OnestopStatus::Accepted, OnestopStatus::Voided) => true,
        _ => false,
    };
    if !allowed {
        return Err(Error::conflict(format!("「{}」から「{}」には変更できません", onestop.status.label(), status.label())));
    }
    if matches!(status, OnestopStatus::Voided | OnestopStatus::Incomplete) && reason.is_empty() {
        return Err(Error::unprocessable("無効・不備にするときは理由を入力してください"));
    }
    onestop.status = status;
    onestop.history.push(StatusChange { on: Date::today(), status, by: caller_name(), reason });
    if status == OnestopStatus::Received {
        let donation = visible_donation(onestop.donation_id)?;
        residence::notify_residence(&mut onestop, &donation);
    }
    store::save("onestop", id, &onestop)?;
    Ok(Response::after_post(req, "/staff", 200, &onestop))
}

// ---- simulator and report ------------------------------------------------------------------

#[derive(Serialize)]
struct Simulation {
    figures: rules::TaxFigures,
    income_tax_rate_percent: i64,
    limit: i64,
    at_limit: rules::Deductions,
    for_donation: Option<rules::Deductions>,
}

fn simulation(figures: rules::TaxFigures, donation: Option<i64>) -> Simulation {
    let limit = rules::full_deduction_limit(figures);
    Simulation {
        income_tax_rate_percent: rules::income_tax_rate_percent(figures.taxable_income),
        limit,
        at_limit: rules::deductions(limit, figures),
        for_donation: donation.map(|d| rules::deductions(d, figures)),
        figures,
    }
}

fn household_from(req: &Request) -> Result<(rules::Household, Option<i64>)> {
    let q = |k: &str| req.query_param(k).unwrap_or_default();
    let n = |k: &str, label: &str| -> Result<i64> {
        let v = q(k).replace(',', "");
        if v.is_empty() { Ok(0) } else { v.parse().ok().filter(|n: &i64| *n >= 0).ok_or_else(|| Error::bad_request(format!("{label}（{k}）は0以上の整数です"))) }
    };
    let h = rules::Household {
        total_income: n("total_income", "総所得金額等")?,
        social_insurance: n("social_insurance", "社会保険料")?,
        spouse: matches!(q("spouse").as_str(), "on" | "true" | "1"),
        dependents: n("dependents", "扶養親族")? as u32,
        specific_dependents: n("specific_dependents", "特定扶養親族")? as u32,
        elderly_dependents: n("elderly_dependents", "老人扶養親族")? as u32,
    };
    let donation = Some(n("donation", "寄附額")?).filter(|d| *d > 0);
    Ok((h, donation))
}

fn simulate(req: &Request) -> Result<Response> {
    let (h, donation) = household_from(req)?;
    Ok(Response::json(&simulation(rules::estimate(h), donation)))
}

/// For staff: the limit of a resident of this municipality from the resident-tax summary
/// (linkage `tax` capability).
fn simulate_resident(req: &Request) -> Result<Response> {
    let addressee = req.param("addressee").unwrap_or_default().to_string();
    let year = year_param(req)?;
    let summary = tax::summary(&addressee, year as u16)?
        .ok_or_else(|| Error::not_found(format!("宛名番号 {addressee} の{year}年度の課税情報はありません")))?;
    let figures = rules::from_tax_summary(summary.total_income, summary.income_based_tax);
    Ok(Response::json(&simulation(figures, None)))
}

/// For a signed-in resident of this municipality: their own limit from their resident-tax
/// summary (the identity provider vouched for their 宛名番号; `tax` capability, audited).
fn simulate_mine(req: &Request) -> Result<Response> {
    let number = identity::addressee_number()
        .ok_or_else(|| Error::forbidden("この自治体の住民としてログインした場合に使えます（宛名番号を確認できません）"))?;
    let year = year_param(req)?;
    let summary = tax::summary(&number, year as u16)?.ok_or_else(|| Error::not_found(format!("{year}年度の課税情報がありません")))?;
    let donation = req.query_param("donation").and_then(|d| d.parse().ok()).filter(|d: &i64| *d > 0);
    Ok(Response::json(&simulation(rules::from_tax_summary(summary.total_income, summary.income_based_tax), donation)))
}

fn add_cost(req: &Request) -> Result<Response> {
    let m = req.fields()?;
    let amount = int(&m, "amount", "金額")?;
    if amount < 0 {
        return Err(Error::unprocessable("金額は0以上です"));
    }
    let cost = Cost { id: store::next_id("cost")?, year: int(&m, "year", "年")? as i32, label: required(&m, "label", "費目")?, amount };
    store::save("cost", cost.id, &cost)?;
    Ok(Response::after_post(req, "/staff", 201, &cost))
}

/// Donations (calendar year), the gifts' procurement and shipping costs, other costs, and
/// whether everything stays within 50 %.
pub fn report(year: i32) -> Result<rules::AnnualReport> {
    let gifts: std::collections::HashMap<u64, Gift> = store::all::<Gift>("gift")?.into_iter().map(|g| (g.id, g)).collect();
    let mut r = rules::AnnualReport { year, ..Default::default() };
    for d in store::all::<Donation>("donation")?.into_iter().filter(|d| d.date.year == year) {
        if !d.is_active() {
            r.cancelled_count += 1;
            continue;
        }
        r.donation_count += 1;
        r.donations += d.amount;
        if let Some(g) = d.gift_id.and_then(|id| gifts.get(&id)) {
            r.gift_procurement += g.procurement_cost;
            r.shipping += g.shipping_cost;
        }
    }
    r.other_costs = store::all::<Cost>("cost")?.iter().filter(|c| c.year == year).map(|c| c.amount).sum();
    Ok(r.finish())
}
