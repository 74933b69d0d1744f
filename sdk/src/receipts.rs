//! 収納 (payments received) and 滞納 (arrears) per 宛名番号 and 税目, from the module the
//! municipality's administrator chose to provide them (capability `receipts`). Which
//! vendor's 収納 unit answers is the municipality's choice and may change; a consumer sees
//! the same standard records either way. Every record handed over is in the audit trail.
//!
//! A provider adds items of its own to a record as [`ExtensionItem`]s, declared in its
//! manifest; read the ones you know with [`Payment::extension`] / [`Arrear::extension`]
//! and ignore the rest.
//!
//! To *provide* this interface, declare it in the manifest (`[provides.receipts]`) and
//! export a [`Provider`] with `nukisashi_sdk::module!(routes, receipts = PROVIDER)`.

use crate::platform::receipts as raw;
use crate::bindings::nukisashi::platform::types::{ExtensionItem as RawItem, ExtensionValue as RawValue};
use crate::Result;
use serde::{Deserialize, Serialize};

/// `payment` and `arrear` functions from the SDK's records into the records of the WIT
/// module `$wit` (the export's, or the import's): the same fields, other generated types.
macro_rules! into_wit {
    ($wit:ident) => {
        pub fn payment(p: Payment) -> $wit::Payment {
            $wit::Payment {
                addressee_number: p.addressee_number,
                tax_item: p.tax_item,
                fiscal_year: p.fiscal_year,
                installment: p.installment,
                amount: p.amount,
                paid_on: p.paid_on,
                extensions: p.extensions.into_iter().map(item_to_raw).collect(),
            }
        }

        pub fn arrear(a: Arrear) -> $wit::Arrear {
            $wit::Arrear {
                addressee_number: a.addressee_number,
                tax_item: a.tax_item,
                fiscal_year: a.fiscal_year,
                installment: a.installment,
                due_on: a.due_on,
                amount_charged: a.amount_charged,
                amount_unpaid: a.amount_unpaid,
                extensions: a.extensions.into_iter().map(item_to_raw).collect(),
            }
        }
    };
}

/// The value of an extension item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type", content = "value")]
pub enum ExtensionValue {
    Text(String),
    Integer(i64),
    /// ISO 8601.
    Date(String),
    Boolean(bool),
}

/// An item a provider adds beyond the standard record (拡張項目).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtensionItem {
    pub name: String,
    #[serde(flatten)]
    pub value: ExtensionValue,
}

impl ExtensionItem {
    pub fn new(name: &str, value: ExtensionValue) -> Self {
        ExtensionItem { name: name.to_string(), value }
    }
}

/// One payment (収納) of one installment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub addressee_number: String,
    /// 税目, e.g. 個人住民税, 固定資産税, 軽自動車税, 国民健康保険税.
    pub tax_item: String,
    /// 年度.
    pub fiscal_year: u16,
    /// 期別 (1 for a lump sum).
    pub installment: u8,
    /// 収納額, yen.
    pub amount: i64,
    /// 収納日.
    pub paid_on: String,
    #[serde(default)]
    pub extensions: Vec<ExtensionItem>,
}

/// One installment not paid in full by its due date (滞納).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arrear {
    pub addressee_number: String,
    pub tax_item: String,
    pub fiscal_year: u16,
    pub installment: u8,
    /// 納期限.
    pub due_on: String,
    /// 調定額, yen.
    pub amount_charged: i64,
    /// 未納額, yen.
    pub amount_unpaid: i64,
    #[serde(default)]
    pub extensions: Vec<ExtensionItem>,
}

fn find<'a>(items: &'a [ExtensionItem], name: &str) -> Option<&'a ExtensionValue> {
    items.iter().find(|i| i.name == name).map(|i| &i.value)
}

impl Payment {
    /// The provider's extension item called `name`, if it sent one.
    pub fn extension(&self, name: &str) -> Option<&ExtensionValue> {
        find(&self.extensions, name)
    }
}

impl Arrear {
    /// The provider's extension item called `name`, if it sent one.
    pub fn extension(&self, name: &str) -> Option<&ExtensionValue> {
        find(&self.extensions, name)
    }
}

/// Payments of this resident, of one fiscal year or of all, oldest first.
pub fn payments(addressee_number: &str, fiscal_year: Option<u16>) -> Result<Vec<Payment>> {
    Ok(raw::payments(addressee_number, fiscal_year)?.into_iter().map(Payment::from).collect())
}

/// This resident's unpaid installments, oldest due date first.
pub fn arrears(addressee_number: &str) -> Result<Vec<Arrear>> {
    Ok(raw::arrears(addressee_number)?.into_iter().map(Arrear::from).collect())
}

/// What a 収納 unit exports: the two questions of the interface.
#[derive(Clone, Copy)]
pub struct Provider {
    pub payments: fn(&str, Option<u16>) -> Result<Vec<Payment>>,
    pub arrears: fn(&str) -> Result<Vec<Arrear>>,
}

/// The provider modules without one export: never called (the host calls only modules whose
/// manifest declares `[provides.receipts]`).
#[doc(hidden)]
pub const NOT_PROVIDED: Provider = Provider {
    payments: |_, _| Err(crate::Error::new(503, "Not provided", "this module does not provide receipts")),
    arrears: |_| Err(crate::Error::new(503, "Not provided", "this module does not provide receipts")),
};

pub(crate) fn item_to_raw(item: ExtensionItem) -> RawItem {
    RawItem {
        name: item.name,
        value: match item.value {
            ExtensionValue::Text(t) => RawValue::Text(t),
            ExtensionValue::Integer(n) => RawValue::Integer(n),
            ExtensionValue::Date(d) => RawValue::Date(d),
            ExtensionValue::Boolean(b) => RawValue::Boolean(b),
        },
    }
}

pub(crate) fn item_from_raw(item: RawItem) -> ExtensionItem {
    ExtensionItem {
        name: item.name,
        value: match item.value {
            RawValue::Text(t) => ExtensionValue::Text(t),
            RawValue::Integer(n) => ExtensionValue::Integer(n),
            RawValue::Date(d) => ExtensionValue::Date(d),
            RawValue::Boolean(b) => ExtensionValue::Boolean(b),
        },
    }
}

impl From<raw::Payment> for Payment {
    fn from(p: raw::Payment) -> Self {
        Payment {
            addressee_number: p.addressee_number,
            tax_item: p.tax_item,
            fiscal_year: p.fiscal_year,
            installment: p.installment,
            amount: p.amount,
            paid_on: p.paid_on,
            extensions: p.extensions.into_iter().map(item_from_raw).collect(),
        }
    }
}

impl From<raw::Arrear> for Arrear {
    fn from(a: raw::Arrear) -> Self {
        Arrear {
            addressee_number: a.addressee_number,
            tax_item: a.tax_item,
            fiscal_year: a.fiscal_year,
            installment: a.installment,
            due_on: a.due_on,
            amount_charged: a.amount_charged,
            amount_unpaid: a.amount_unpaid,
            extensions: a.extensions.into_iter().map(item_from_raw).collect(),
        }
    }
}

/// The export side: the SDK's records in the shapes the `receipts` export returns.
#[doc(hidden)]
pub mod export {
    use super::{item_to_raw, Arrear, Payment};
    use crate::bindings::exports::nukisashi::platform::receipts as out;
    use crate::bindings::nukisashi::platform::types::Error as RawError;

    pub fn payments(provider: &super::Provider, addressee_number: String, fiscal_year: Option<u16>) -> Result<Vec<out::Payment>, RawError> {
        let found = (provider.payments)(&addressee_number, fiscal_year).map_err(crate::error::to_platform)?;
        Ok(found.into_iter().map(payment).collect())
    }

    pub fn arrears(provider: &super::Provider, addressee_number: String) -> Result<Vec<out::Arrear>, RawError> {
        let found = (provider.arrears)(&addressee_number).map_err(crate::error::to_platform)?;
        Ok(found.into_iter().map(arrear).collect())
    }

    into_wit!(out);
}

/// The SDK's records in the shapes the `receipts` import returns (the in-memory platform of
/// [`crate::testing`] answers with them).
#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod as_imported {
    use super::{item_to_raw, Arrear, Payment};
    use crate::bindings::nukisashi::platform::receipts as raw;

    into_wit!(raw);
}
