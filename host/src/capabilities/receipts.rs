//! `nukisashi:platform/receipts` (収納): answered by the module the municipality chose to
//! provide it (`provided.rs`); the platform has no 収納 data of its own.

use super::registry::{check_id, clip};
use super::provided::Answered;
use super::wit::receipts::{Arrear, Host, Payment};
use super::wit::types::Error;
use super::{Capability, PlatformState};
use crate::capabilities::bindings::exports::nukisashi::platform::receipts as provided;
use crate::catalog::manifest::ProvidedInterface;
use crate::runtime::{ProvidedAnswer, ProvidedCall};

fn payment(p: provided::Payment) -> Payment {
    Payment {
        addressee_number: p.addressee_number,
        tax_item: p.tax_item,
        fiscal_year: p.fiscal_year,
        installment: p.installment,
        amount: p.amount,
        paid_on: p.paid_on,
        extensions: p.extensions,
    }
}

fn arrear(a: provided::Arrear) -> Arrear {
    Arrear {
        addressee_number: a.addressee_number,
        tax_item: a.tax_item,
        fiscal_year: a.fiscal_year,
        installment: a.installment,
        due_on: a.due_on,
        amount_charged: a.amount_charged,
        amount_unpaid: a.amount_unpaid,
        extensions: a.extensions,
    }
}

/// The 宛名番号 a 収納 answer hands over (one per record).
fn handed_over(answer: &ProvidedAnswer) -> Vec<String> {
    match answer {
        ProvidedAnswer::Payments(p) => p.iter().map(|p| p.addressee_number.clone()).collect(),
        ProvidedAnswer::Arrears(a) => a.iter().map(|a| a.addressee_number.clone()).collect(),
        _ => Vec::new(),
    }
}

/// A provider that answered another resident's records than asked is refused whole.
fn only_about(addressee_number: &str, answer: &ProvidedAnswer) -> Result<(), Error> {
    if handed_over(answer).iter().all(|n| n == addressee_number) {
        Ok(())
    } else {
        Err(Error::Unavailable("receipts (収納) is unavailable: the module that provides it answered with another resident's records".into()))
    }
}

impl Host for PlatformState {
    #[tracing::instrument(name = "linkage_call", skip_all, fields(interface = "receipts.payments"))]
    async fn payments(&mut self, addressee_number: String, fiscal_year: Option<u16>) -> Result<Vec<Payment>, Error> {
        self.require(Capability::Receipts)?;
        self.read_room()?;
        check_id("addressee-number", &addressee_number)?;
        let query = format!("addressee-number={} fiscal-year={}", clip(&addressee_number), fiscal_year.map_or("-".to_string(), |y| y.to_string()));
        let call = ProvidedCall::Payments(&addressee_number, fiscal_year);
        match self.call_provider(ProvidedInterface::Receipts, call, query, handed_over, "receipts.payments", |a| only_about(&addressee_number, a)).await? {
            Answered::ByModule(ProvidedAnswer::Payments(found)) => Ok(found.into_iter().map(payment).collect()),
            _ => Err(Error::Unavailable("receipts (収納) is unavailable".into())),
        }
    }

    #[tracing::instrument(name = "linkage_call", skip_all, fields(interface = "receipts.arrears"))]
    async fn arrears(&mut self, addressee_number: String) -> Result<Vec<Arrear>, Error> {
        self.require(Capability::Receipts)?;
        self.read_room()?;
        check_id("addressee-number", &addressee_number)?;
        let query = format!("addressee-number={}", clip(&addressee_number));
        let call = ProvidedCall::Arrears(&addressee_number);
        match self.call_provider(ProvidedInterface::Receipts, call, query, handed_over, "receipts.arrears", |a| only_about(&addressee_number, a)).await? {
            Answered::ByModule(ProvidedAnswer::Arrears(found)) => Ok(found.into_iter().map(arrear).collect()),
            _ => Err(Error::Unavailable("receipts (収納) is unavailable".into())),
        }
    }
}
