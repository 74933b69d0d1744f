//! The one-stop rule across municipalities (寄附金税額控除に係る申告特例): no receiving
//! municipality can see the donor's other donations, so each one that receives a one-stop
//! application sends a 申告特例通知書 (`onestop-notification`) to the donor's 住所地; the
//! 住所地 counts the distinct senders per donor and year and, past five, treats every
//! one-stop application of that year as void and tells each sender
//! (`onestop-ineligible`), which voids its own application with the reason recorded.
//!
//! Both sides are this module: the 寄附先 in [`notify_residence`], the 住所地 in
//! [`on_notice`]. The platform delivers each notice once, in order, and commits what the
//! handler writes and sends together with the delivery.

use crate::rules::ONESTOP_MAX_MUNICIPALITIES;
use crate::store::{self, Donation, Onestop, OnestopStatus, StatusChange};
use nukisashi_sdk::date::Date;
use nukisashi_sdk::notices::{self, Notice, SendError};
use nukisashi_sdk::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

pub const NOTIFICATION: &str = "onestop-notification";
pub const INELIGIBLE: &str = "onestop-ineligible";

/// The 申告特例通知書: what the 寄附先 tells the 住所地 about one application.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Notification {
    /// The calendar year of the donation.
    pub year: i32,
    /// 個人番号: how the 住所地 knows the donor.
    pub individual_number: String,
    pub name: String,
    pub birth_date: String,
    pub address: String,
    /// The application's number at the 寄附先.
    pub application_id: u64,
    pub donation_date: Date,
    pub amount: i64,
}

/// The 住所地's answer once the donor is past five: the applications of this sender that are
/// void.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ineligible {
    pub year: i32,
    pub individual_number: String,
    pub application_ids: Vec<u64>,
    /// Distinct 寄附先 the 住所地 counted for the year.
    pub municipalities: usize,
}

/// Where a 申告特例通知書 went, as the 寄附先 keeps it with the application.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResidenceNotice {
    /// The 住所地, if found on the platform.
    pub to_lg_code: Option<String>,
    pub on: Date,
    pub sent: bool,
    /// Not sent for a passing reason (the platform was busy): sent again with the next
    /// application here, or by staff (`POST /staff/onestop/resend`).
    #[serde(default)]
    pub pending: bool,
    /// 送付済, or why it was not sent (then, unless pending, it goes by post).
    pub detail: String,
}

/// What the 住所地 keeps per donor and year.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct DonorYear {
    pub year: i32,
    /// 個人番号 of the donor.
    pub individual_number: String,
    /// 寄附先 (lg_code) → its application numbers.
    pub senders: BTreeMap<String, Vec<u64>>,
    /// Past five: every one-stop application of the year is void.
    pub void: bool,
    /// Senders already told.
    pub told: BTreeSet<String>,
    /// Senders that take no electronic notice back: told by post.
    #[serde(default)]
    pub by_post: BTreeSet<String>,
}

fn donor_key(year: i32, individual_number: &str) -> String {
    format!("onestop-residence/{year}/{individual_number}")
}

/// The donor's 住所地 on this platform: this municipality when the signed-in resident's
/// 宛名番号 is vouched here, else the municipality the address on the form lies in.
fn residence(onestop: &Onestop) -> Option<String> {
    if identity::addressee_number().is_some() && onestop.subject.is_some() && onestop.subject == identity::caller().subject {
        return Some(context::municipality().lg_code);
    }
    notices::municipality_of(&onestop.form.address)
}

/// Sends the 申告特例通知書 for a received application to the donor's 住所地 (once), and
/// records on the application where it went or why it could not.
pub fn notify_residence(onestop: &mut Onestop, donation: &Donation) {
    // Once: sent, or settled as going by post (a pending one is tried again).
    if onestop.residence_notice.as_ref().is_some_and(|n| n.sent || !n.pending) {
        return;
    }
    let today = Date::today();
    let Some(to) = residence(onestop) else {
        onestop.residence_notice = Some(ResidenceNotice { to_lg_code: None, on: today, sent: false, pending: false, detail: "住所地が本基盤にないため、申告特例通知書は郵送してください".into() });
        return;
    };
    let notification = Notification {
        year: donation.date.year,
        individual_number: onestop.form.individual_number.clone(),
        name: onestop.form.name.clone(),
        birth_date: onestop.form.birth_date.clone(),
        address: onestop.form.address.clone(),
        application_id: onestop.id,
        donation_date: donation.date,
        amount: donation.amount,
    };
    let (sent, pending, detail) = match notices::send(&to, NOTIFICATION, None, &notification) {
        Ok(_) => (true, false, "申告特例通知書を送付しました".to_string()),
        Err(SendError::NotAccepted(why)) => (false, false, format!("住所地が電子の通知書を受け付けていないため、郵送してください（{why}）")),
        // Busy (the sending rate, the platform): sent again later.
        Err(SendError::Refused(e)) if matches!(e.status, 413 | 503) => (false, true, format!("申告特例通知書はまだ送付できていません。あとで再送します（{}）", e.detail)),
        Err(SendError::Refused(e)) => (false, false, format!("申告特例通知書を送付できませんでした。郵送してください（{}）", e.detail)),
    };
    log::info(&format!("one-stop application {}: notice to {to}: {}", onestop.id, if sent { "sent" } else if pending { "pending" } else { "not sent" }));
    onestop.residence_notice = Some(ResidenceNotice { to_lg_code: Some(to), on: today, sent, pending, detail });
}

/// Sends again, oldest first, at most `limit` 申告特例通知書 that could not go for a passing
/// reason; returns how many went.
pub fn resend_pending(limit: usize) -> Result<usize> {
    let mut sent = 0;
    for mut onestop in store::onestops()?.into_iter().filter(|o| o.residence_notice.as_ref().is_some_and(|n| n.pending)).take(limit) {
        let Some(donation) = store::load::<Donation>("donation", onestop.donation_id)? else { continue };
        notify_residence(&mut onestop, &donation);
        sent += usize::from(onestop.residence_notice.as_ref().is_some_and(|n| n.sent));
        store::save("onestop", onestop.id, &onestop)?;
    }
    Ok(sent)
}

/// Takes a notice from another municipality (or this one, as its own 住所地).
pub fn on_notice(notice: &Notice) -> std::result::Result<(), String> {
    let result = match notice.kind.as_str() {
        NOTIFICATION => count(notice),
        INELIGIBLE => void_mine(notice),
        other => {
            log::warn(&format!("notice {} of kind {other} ignored", notice.sequence));
            Ok(())
        }
    };
    result.map_err(|e| e.to_string())
}

/// Whether the notification names this municipality's resident: the 個人番号 belongs to a
/// resident born on the day the form gives. `None` when the module may not look (the
/// municipality did not grant `identity-numbers` and `resident-registry`): then it counts
/// the notification as given.
fn names_our_resident(n: &Notification) -> Result<Option<bool>> {
    let found = match registry::find_by_individual_number(&n.individual_number) {
        Ok(found) => found,
        Err(e) if e.status == 403 => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some(number) = found else { return Ok(Some(false)) };
    match registry::get(&number) {
        Ok(resident) => Ok(Some(resident.is_some_and(|r| r.birth_date == n.birth_date))),
        Err(e) if e.status == 403 => Ok(None),
        Err(e) => Err(e),
    }
}

/// How a sender was told its applications are void.
enum Told {
    Electronically,
    /// It takes no electronic notice (or cannot be reached by one): by post.
    ByPost,
}

/// Sends `notice` of kind `onestop-ineligible` to `sender`. `Err` only for a passing
/// refusal (busy), so the whole notice is tried again later; any other refusal means the
/// sender is told by post, and the 住所地 goes on.
fn tell(sender: &str, notice: &Ineligible) -> Result<Told> {
    match notices::send(sender, INELIGIBLE, None, notice) {
        Ok(_) => Ok(Told::Electronically),
        Err(SendError::Refused(e)) if matches!(e.status, 413 | 503) => Err(e),
        Err(why) => {
            log::warn(&format!("ineligibility notice to {sender} not sent ({why}): to be sent by post"));
            Ok(Told::ByPost)
        }
    }
}

/// At the 住所地: counts the sender for the donor's year; past five, the year is void and
/// every sender not yet told is told. A notification whose 個人番号 and birth date are not
/// one of this municipality's residents is not counted, and kept for staff.
fn count(notice: &Notice) -> Result<()> {
    let n: Notification = notice.payload().map_err(Error::unprocessable)?;
    let key = donor_key(n.year, &n.individual_number);
    let mut donor: DonorYear = kv::get_json(&key)?.unwrap_or_else(|| DonorYear { year: n.year, individual_number: n.individual_number.clone(), ..Default::default() });
    if names_our_resident(&n)? == Some(false) {
        // Not answered automatically: an answer would tell whoever filed the form whether a
        // 個人番号 and birth date belong together. Staff look into it (`/staff/onestop/unmatched`).
        let record = Unmatched { from_lg_code: notice.from_lg_code.clone(), application_id: n.application_id, year: n.year, received_on: Date::today() };
        kv::set_json(&format!("onestop-unmatched/{:010}", notice.sequence), &record)?;
        log::warn(&format!("one-stop notice {} names no resident here: kept for staff", notice.sequence));
        return Ok(());
    }
    let ids = donor.senders.entry(notice.from_lg_code.clone()).or_default();
    if !ids.contains(&n.application_id) {
        ids.push(n.application_id);
    }
    if donor.senders.len() > ONESTOP_MAX_MUNICIPALITIES as usize {
        donor.void = true;
    }
    if donor.void {
        let senders: Vec<(String, Vec<u64>)> = donor.senders.iter().map(|(s, ids)| (s.clone(), ids.clone())).collect();
        for (sender, application_ids) in senders {
            // A sender told before gets the later applications it sends too.
            if donor.told.contains(&sender) && sender != notice.from_lg_code {
                continue;
            }
            let ineligible = Ineligible { year: n.year, individual_number: n.individual_number.clone(), application_ids, municipalities: donor.senders.len() };
            if let Told::ByPost = tell(&sender, &ineligible)? {
                donor.by_post.insert(sender.clone());
            }
            donor.told.insert(sender);
        }
    }
    log::info(&format!("one-stop notice {} counted: {} municipalities this year", notice.sequence, donor.senders.len()));
    kv::set_json(&key, &donor)
}

/// At a 寄附先: the 住所地 says the donor is past five; every application it names is void.
fn void_mine(notice: &Notice) -> Result<()> {
    let n: Ineligible = notice.payload().map_err(Error::unprocessable)?;
    let reason = format!(
        "住所地（{}）からの通知：{}年の寄附先が{}団体となり、ワンストップ特例の対象外です（確定申告が必要です）",
        notice.from_lg_code, n.year, n.municipalities
    );
    for id in &n.application_ids {
        let Some(onestop) = store::onestop(*id)? else { continue };
        if onestop.form.individual_number != n.individual_number || onestop.status == OnestopStatus::Voided {
            continue;
        }
        store::void_onestop(*id, &StatusChange { on: Date::today(), status: OnestopStatus::Voided, by: format!("住所地 {}", notice.from_lg_code), reason: reason.clone() })?;
        log::info(&format!("one-stop application {id} voided on the 住所地's notice {}", notice.sequence));
    }
    Ok(())
}

/// A 申告特例通知書 whose 個人番号 and birth date are none of this municipality's residents,
/// kept for staff to look into with the sender (not counted, not answered).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Unmatched {
    pub from_lg_code: String,
    pub application_id: u64,
    pub year: i32,
    pub received_on: Date,
}

/// The notifications that named none of this municipality's residents, oldest first.
pub fn unmatched() -> Result<Vec<Unmatched>> {
    let mut out = Vec::new();
    for key in kv::all_keys("onestop-unmatched/")? {
        out.extend(kv::get_json::<Unmatched>(&key)?);
    }
    Ok(out)
}

/// What the 住所地 counted, for its staff: every donor-year it has heard of.
pub fn counted() -> Result<Vec<DonorYear>> {
    let mut out = Vec::new();
    for key in kv::all_keys("onestop-residence/")? {
        out.extend(kv::get_json::<DonorYear>(&key)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::OnestopForm;
    use nukisashi_sdk::testing::TestPlatform;

    fn application(id: u64) -> Onestop {
        let form = OnestopForm {
            name: "山田 花子".into(),
            address: "北海道札幌市中央区北1条西2丁目".into(),
            individual_number: "123456789018".into(),
            birth_date: "1980-04-01".into(),
            phone: "011-000-0000".into(),
            declares_no_tax_return: true,
            declares_within_five: true,
            municipalities_this_year: 5,
        };
        let today = Date::today();
        Onestop {
            id,
            donation_id: id,
            received_on: today,
            form,
            status: OnestopStatus::Received,
            history: vec![StatusChange { on: today, status: OnestopStatus::Received, by: "donor".into(), reason: "申請書を受け付けました".into() }],
            changes: Vec::new(),
            subject: Some("donor".into()),
            by_mail: false,
            residence_notice: None,
        }
    }

    #[test]
    fn a_void_from_the_residence_is_not_erased_by_a_request_saving_what_it_read_before() {
        let _platform = TestPlatform::new();
        store::save("onestop", 7, &application(7)).unwrap();
        // A change form reads the application…
        let read_before = store::onestop(7).unwrap().unwrap();
        // …the 住所地's notice voids it meanwhile…
        let ineligible = Ineligible { year: 2026, individual_number: "123456789018".into(), application_ids: vec![7], municipalities: 6 };
        let notice = Notice { sequence: 1, from_lg_code: "011002".into(), from_module: "furusato-tax".into(), kind: INELIGIBLE.into(), subject: None, payload: serde_json::to_string(&ineligible).unwrap() };
        on_notice(&notice).unwrap();
        // …and the change form saves what it read, as it was.
        store::save("onestop", 7, &read_before).unwrap();
        let now = store::onestop(7).unwrap().unwrap();
        assert_eq!(now.status, OnestopStatus::Voided);
        assert!(now.history.last().unwrap().reason.contains("6団体"), "{:?}", now.history);
        assert_eq!(store::onestops().unwrap()[0].status, OnestopStatus::Voided);
    }

    #[test]
    fn a_notification_naming_nobody_here_is_kept_for_staff_and_not_answered() {
        let platform = TestPlatform::new();
        let notification = Notification {
            year: 2026,
            individual_number: "111222333446".into(),
            name: "誰か".into(),
            birth_date: "1970-01-01".into(),
            address: "北海道札幌市".into(),
            application_id: 3,
            donation_date: Date::today(),
            amount: 10000,
        };
        let notice = Notice { sequence: 9, from_lg_code: "131016".into(), from_module: "furusato-tax".into(), kind: NOTIFICATION.into(), subject: None, payload: serde_json::to_string(&notification).unwrap() };
        on_notice(&notice).unwrap();
        assert!(platform.sent_notices().is_empty(), "nothing tells the sender whether the number and birth date belong together");
        assert_eq!(unmatched().unwrap().len(), 1);
        assert!(counted().unwrap().is_empty());
    }
}
