//! The municipality's change feed (capability `change-feed`): moves, deaths, registrations
//! and tax assessments, oldest first, behind a cursor that only grows.
//!
//! Pull with [`since`]; or have changes pushed by exporting a handler with
//! `nukisashi_sdk::module!(routes, on_change = handler)`: the host calls it once per change,
//! in order, and commits the module's [`kv`](crate::kv) writes made during the call together
//! with the delivery, so a change is handled exactly once. Return `Err` to be called again
//! later with the same change.

use crate::platform::changes as raw;
use crate::Result;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    Registered,
    Updated,
    MovedOut,
    Deceased,
    Reinstated,
    TaxAssessed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub cursor: u64,
    pub kind: ChangeKind,
    pub addressee_number: String,
    pub household_number: String,
    pub effective_date: String,
    pub reason: String,
}

impl From<raw::Change> for Change {
    fn from(c: raw::Change) -> Self {
        Change {
            cursor: c.cursor,
            kind: match c.kind {
                raw::ChangeKind::Registered => ChangeKind::Registered,
                raw::ChangeKind::Updated => ChangeKind::Updated,
                raw::ChangeKind::MovedOut => ChangeKind::MovedOut,
                raw::ChangeKind::Deceased => ChangeKind::Deceased,
                raw::ChangeKind::Reinstated => ChangeKind::Reinstated,
                raw::ChangeKind::TaxAssessed => ChangeKind::TaxAssessed,
            },
            addressee_number: c.addressee_number,
            household_number: c.household_number,
            effective_date: c.effective_date,
            reason: c.reason,
        }
    }
}

/// One page of the feed: changes after `after` (0: from the start), at most `limit`
/// (≤ 1000), and the cursor to pass next time.
pub fn since(after: u64, limit: u32) -> Result<(Vec<Change>, u64)> {
    let page = raw::since(after, limit)?;
    Ok((page.changes.into_iter().map(Change::from).collect(), page.next))
}

/// The signature of a pushed-change handler.
pub type Handler = fn(&Change) -> std::result::Result<(), String>;

/// The handler modules without one export: accept and ignore.
#[doc(hidden)]
pub fn ignore(_: &Change) -> std::result::Result<(), String> {
    Ok(())
}
