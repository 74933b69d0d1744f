//! The module's records in its kv store (scoped by the host to this municipality): gifts,
//! donations, one-stop applications and other solicitation costs. Sequence numbers come
//! from `kv::increment`, so concurrent requests never share a number or oversell stock.

use crate::date::Date;
use crate::rules::{LocalProductBasis, OnestopForm};
use nukisashi_sdk::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Gift {
    pub id: u64,
    pub title: String,
    pub supplier: String,
    /// 調達費 (yen).
    pub procurement_cost: i64,
    /// 送料 (yen).
    pub shipping_cost: i64,
    pub min_donation: i64,
    pub basis: LocalProductBasis,
    /// How it meets the basis (e.g. 区内の工房で製造).
    #[serde(default)]
    pub basis_note: String,
    pub offered: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Donor {
    pub name: String,
    pub postal_code: String,
    pub address: String,
    pub phone: String,
    #[serde(default)]
    pub email: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum DonationState {
    Accepted,
    /// Cancelled or refunded: recorded, never deleted.
    Cancelled { on: Date, reason: String, refunded: bool, by: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Donation {
    pub id: u64,
    /// 寄附金受領証明書の番号, e.g. `2026-000012`.
    pub receipt_number: String,
    pub date: Date,
    pub donor: Donor,
    pub amount: i64,
    pub payment_method: String,
    pub gift_id: Option<u64>,
    /// 使い道.
    pub purpose: String,
    /// The signed-in resident who donated (their identity subject).
    pub subject: Option<String>,
    pub state: DonationState,
}

impl Donation {
    pub fn is_active(&self) -> bool {
        matches!(self.state, DonationState::Accepted)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnestopStatus {
    /// 受付
    Received,
    /// 不備
    Incomplete,
    /// 受理 (sent on to the donor's municipality)
    Accepted,
    /// 無効 (tax return filed, 6th municipality, late)
    Voided,
}

impl OnestopStatus {
    pub fn label(self) -> &'static str {
        match self {
            OnestopStatus::Received => "受付",
            OnestopStatus::Incomplete => "不備",
            OnestopStatus::Accepted => "受理",
            OnestopStatus::Voided => "無効",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusChange {
    pub on: Date,
    pub status: OnestopStatus,
    pub by: String,
    pub reason: String,
}

/// A 変更届: new name or address after applying.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChangeForm {
    /// The day it arrived: today online, the day staff record for a mailed form.
    pub received_on: Date,
    pub name: Option<String>,
    pub address: Option<String>,
    /// Mailed, and recorded by staff.
    #[serde(default)]
    pub by_mail: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Onestop {
    pub id: u64,
    pub donation_id: u64,
    /// The day it arrived: today online, the day staff record for a mailed application
    /// (the 10 January deadline is judged on it).
    pub received_on: Date,
    pub form: OnestopForm,
    pub status: OnestopStatus,
    pub history: Vec<StatusChange>,
    #[serde(default)]
    pub changes: Vec<ChangeForm>,
    pub subject: Option<String>,
    /// Mailed, and recorded by staff.
    #[serde(default)]
    pub by_mail: bool,
    /// The 申告特例通知書 to the donor's 住所地, once the application is received.
    #[serde(default)]
    pub residence_notice: Option<crate::residence::ResidenceNotice>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cost {
    pub id: u64,
    pub year: i32,
    pub label: String,
    pub amount: i64,
}

fn key(kind: &str, id: u64) -> String {
    format!("{kind}/{id:010}")
}

pub fn next_id(kind: &str) -> Result<u64> {
    Ok(kv::increment(&format!("seq/{kind}"), 1)? as u64)
}

pub fn load<T: serde::de::DeserializeOwned>(kind: &str, id: u64) -> Result<Option<T>> {
    kv::get_json(&key(kind, id))
}

pub fn save<T: Serialize>(kind: &str, id: u64, value: &T) -> Result<()> {
    kv::set_json(&key(kind, id), value)
}

pub fn all<T: serde::de::DeserializeOwned>(kind: &str) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for k in kv::all_keys(&format!("{kind}/"))? {
        if let Some(v) = kv::get_json(&k)? {
            out.push(v);
        }
    }
    Ok(out)
}

/// A one-stop application, with the 住所地's void applied. The void is kept under a key of
/// its own (`onestop-void/…`, written only by the notice that brings it), never inside the
/// application record, which requests read and write back: a change form saved just after
/// the void arrived cannot erase it.
pub fn onestop(id: u64) -> Result<Option<Onestop>> {
    Ok(load::<Onestop>("onestop", id)?.map(with_void).transpose()?)
}

/// Every one-stop application, with the 住所地's voids applied.
pub fn onestops() -> Result<Vec<Onestop>> {
    all::<Onestop>("onestop")?.into_iter().map(with_void).collect()
}

/// Records the 住所地's void of application `id` (see [`onestop`]).
pub fn void_onestop(id: u64, change: &StatusChange) -> Result<()> {
    save("onestop-void", id, change)
}

fn with_void(mut onestop: Onestop) -> Result<Onestop> {
    if onestop.status != OnestopStatus::Voided
        && let Some(change) = load::<StatusChange>("onestop-void", onestop.id)?
    {
        onestop.status = OnestopStatus::Voided;
        onestop.history.push(change);
    }
    Ok(onestop)
}

/// Takes one unit of a gift's stock; `false` if none is left. Atomic: the counter is the
/// truth for stock, the gift record only describes the gift.
pub fn take_stock(gift_id: u64) -> Result<bool> {
    let key = format!("stock/{gift_id:010}");
    if kv::increment(&key, -1)? >= 0 {
        return Ok(true);
    }
    kv::increment(&key, 1)?;
    Ok(false)
}

pub fn return_stock(gift_id: u64) -> Result<()> {
    kv::increment(&format!("stock/{gift_id:010}"), 1).map(|_| ())
}

pub fn stock(gift_id: u64) -> Result<i64> {
    kv::increment(&format!("stock/{gift_id:010}"), 0)
}

pub fn add_stock(gift_id: u64, delta: i64) -> Result<i64> {
    kv::increment(&format!("stock/{gift_id:010}"), delta)
}

/// The next receipt number of a year: `YYYY-NNNNNN`, gap-free per year.
pub fn next_receipt_number(year: i32) -> Result<String> {
    let n = kv::increment(&format!("seq/receipt/{year}"), 1)?;
    Ok(format!("{year}-{n:06}"))
}
