//! 個人住民税 summaries (capability `tax`), e.g. for ふるさと納税 deduction limits. Audited.

use crate::platform::tax as raw;
use crate::Result;
use serde::Serialize;

/// One resident's assessment for one fiscal year (年度), in integer yen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaxSummary {
    pub addressee_number: String,
    pub fiscal_year: u16,
    /// 総所得金額等.
    pub total_income: i64,
    /// 所得割額.
    pub income_based_tax: i64,
}

/// The assessment of this resident for this fiscal year, if there is one.
pub fn summary(addressee_number: &str, fiscal_year: u16) -> Result<Option<TaxSummary>> {
    Ok(raw::summary(addressee_number, fiscal_year)?.map(|t| TaxSummary {
        addressee_number: t.addressee_number,
        fiscal_year: t.fiscal_year,
        total_income: t.total_income,
        income_based_tax: t.income_based_tax,
    }))
}
