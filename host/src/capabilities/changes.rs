//! `nukisashi:platform/changes`: the municipality's change feed, pulled by cursor. The
//! push side (`change-handler`) is `linkage::delivery`.

use super::registry::unavailable;
use super::wit::changes::{Change, ChangeKind, ChangePage, Host};
use super::wit::types::Error;
use super::{Capability, PlatformState};
use crate::linkage::{self, audit::AuditEntry};

/// Most changes one `since` call returns.
pub const MAX_PAGE: u32 = 1000;

/// The WIT form of a feed entry.
pub fn to_wit(c: &linkage::Change) -> Change {
    let kind = match linkage::ChangeKind::parse(c.kind).expect("kinds come from ChangeKind") {
        linkage::ChangeKind::Registered => ChangeKind::Registered,
        linkage::ChangeKind::Updated => ChangeKind::Updated,
        linkage::ChangeKind::MovedOut => ChangeKind::MovedOut,
        linkage::ChangeKind::Deceased => ChangeKind::Deceased,
        linkage::ChangeKind::Reinstated => ChangeKind::Reinstated,
        linkage::ChangeKind::TaxAssessed => ChangeKind::TaxAssessed,
    };
    Change {
        cursor: c.cursor as u64,
        kind,
        addressee_number: c.addressee_number.clone(),
        household_number: c.household_number.clone(),
        effective_date: c.effective_date.clone(),
        reason: c.reason.clone(),
    }
}

impl Host for PlatformState {
    #[tracing::instrument(name = "linkage_call", skip_all, fields(interface = "changes.since"))]
    async fn since(&mut self, after: u64, limit: u32) -> Result<ChangePage, Error> {
        self.require(Capability::ChangeFeed)?;
        self.read_room()?;
        let after = i64::try_from(after).map_err(|_| Error::Invalid(format!("cursor {after} is beyond any feed")))?;
        let limit = limit.clamp(1, MAX_PAGE);
        let lg = self.municipality.lg_code.to_string();
        let changes = self.db.changes_since(&lg, after, limit).await.map_err(unavailable)?;
        self.audited(AuditEntry {
            interface: "changes.since",
            query: format!("after={after} limit={limit}"),
            records: changes.iter().map(|c| c.addressee_number.clone()).collect(),
            counterpart: None,
        })
        .await?;
        let next = changes.last().map(|c| c.cursor as u64).unwrap_or(after as u64);
        Ok(ChangePage { changes: changes.iter().map(to_wit).collect(), next })
    }
}
