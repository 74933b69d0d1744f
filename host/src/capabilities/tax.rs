//! `nukisashi:platform/tax`: 個人住民税 summaries of the current municipality, audited.

use super::registry::{check_id, clip, unavailable};
use super::wit::tax::{Host, TaxSummary};
use super::wit::types::Error;
use super::{Capability, PlatformState};
use crate::linkage::audit::AuditEntry;

impl Host for PlatformState {
    #[tracing::instrument(name = "linkage_call", skip_all, fields(interface = "tax.summary"))]
    async fn summary(&mut self, addressee_number: String, fiscal_year: u16) -> Result<Option<TaxSummary>, Error> {
        self.require(Capability::Tax)?;
        self.read_room()?;
        check_id("addressee-number", &addressee_number)?;
        let lg = self.municipality.lg_code.to_string();
        let found = self.db.tax_summary(&lg, &addressee_number, i64::from(fiscal_year)).await.map_err(unavailable)?;
        self.audited(AuditEntry {
            interface: "tax.summary",
            query: format!("addressee-number={} fiscal-year={fiscal_year}", clip(&addressee_number)),
            records: found.iter().map(|t| t.addressee_number.clone()).collect(),
            counterpart: None,
        })
        .await?;
        Ok(found.map(|t| TaxSummary {
            addressee_number: t.addressee_number,
            fiscal_year: u16::try_from(t.fiscal_year).unwrap_or(fiscal_year),
            total_income: t.total_income,
            income_based_tax: t.income_based_tax,
        }))
    }
}
