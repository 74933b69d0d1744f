//! `nukisashi:platform/resident-registry` and `identity-numbers`: the municipality's
//! residents, only the current municipality's (the scope is [`PlatformState`]'s, never an
//! argument), every call audited.

use super::wit::identity_numbers::{self, IdentityNumbers};
use super::wit::resident_registry::{Host, ResidenceStatus, Resident, Sex};
use super::wit::types::Error;
use super::provided::Answered;
use super::{Capability, PlatformState};
use crate::capabilities::bindings::exports::nukisashi::platform::resident_registry as provided;
use crate::catalog::manifest::ProvidedInterface;
use crate::linkage::{self, audit::AuditEntry};
use crate::runtime::{ProvidedAnswer, ProvidedCall};

/// Most residents one `search` returns.
pub const MAX_SEARCH: u32 = 100;
/// Longest identifier argument accepted, in bytes.
pub const MAX_ID_BYTES: usize = 64;

pub(super) fn check_id(what: &str, value: &str) -> Result<(), Error> {
    if value.len() > MAX_ID_BYTES {
        return Err(Error::TooLarge(format!("{what} is limited to {MAX_ID_BYTES} bytes, this one has {}", value.len())));
    }
    Ok(())
}

pub(super) fn unavailable(e: anyhow::Error) -> Error {
    tracing::error!(error = %e, "linkage call failed");
    Error::Unavailable("the platform's linkage data is unavailable right now".into())
}

/// At most 200 characters of an argument, for the audit trail.
pub(super) fn clip(s: &str) -> String {
    s.chars().take(200).collect()
}

fn to_wit(r: linkage::Resident) -> Resident {
    Resident {
        addressee_number: r.addressee_number,
        integrated_addressee_number: r.integrated_number,
        household_number: r.household_number,
        name: r.name,
        name_kana: r.name_kana,
        birth_date: r.birth_date,
        sex: match r.sex {
            linkage::Sex::Male => Sex::Male,
            linkage::Sex::Female => Sex::Female,
            linkage::Sex::Unspecified => Sex::Unspecified,
        },
        relationship: r.relationship,
        postal_code: r.postal_code,
        address: r.address,
        resident_since: r.resident_since,
        status: match r.status {
            linkage::Status::Resident => ResidenceStatus::Resident,
            linkage::Status::MovedOut => ResidenceStatus::MovedOut,
            linkage::Status::Deceased => ResidenceStatus::Deceased,
        },
        status_changed_on: r.status_changed_on,
        status_reason: r.status_reason,
    }
}

/// A resident as a 住民記録 module answered it.
fn from_provider(r: provided::Resident) -> Resident {
    Resident {
        addressee_number: r.addressee_number,
        integrated_addressee_number: r.integrated_addressee_number,
        household_number: r.household_number,
        name: r.name,
        name_kana: r.name_kana,
        birth_date: r.birth_date,
        sex: match r.sex {
            provided::Sex::Male => Sex::Male,
            provided::Sex::Female => Sex::Female,
            provided::Sex::Unspecified => Sex::Unspecified,
        },
        relationship: r.relationship,
        postal_code: r.postal_code,
        address: r.address,
        resident_since: r.resident_since,
        status: match r.status {
            provided::ResidenceStatus::Resident => ResidenceStatus::Resident,
            provided::ResidenceStatus::MovedOut => ResidenceStatus::MovedOut,
            provided::ResidenceStatus::Deceased => ResidenceStatus::Deceased,
        },
        status_changed_on: r.status_changed_on,
        status_reason: r.status_reason,
    }
}

/// The 宛名番号 a registry answer hands over.
fn handed_over(answer: &ProvidedAnswer) -> Vec<String> {
    match answer {
        ProvidedAnswer::Resident(r) => r.iter().map(|r| r.addressee_number.clone()).collect(),
        ProvidedAnswer::Residents(rs) => rs.iter().map(|r| r.addressee_number.clone()).collect(),
        _ => Vec::new(),
    }
}

/// Checks a 住民記録 module's answer against the question: the resident asked for, members
/// of the household asked for, at most the residents a search may return.
fn answers(call: &ProvidedCall<'_>, answer: &ProvidedAnswer) -> Result<(), Error> {
    let fits = match (call, answer) {
        (ProvidedCall::ResidentGet(number), ProvidedAnswer::Resident(r)) => r.as_ref().is_none_or(|r| r.addressee_number == *number),
        (ProvidedCall::ResidentHousehold(household), ProvidedAnswer::Residents(rs)) => rs.iter().all(|r| r.household_number == *household),
        (ProvidedCall::ResidentSearch(_, _, limit), ProvidedAnswer::Residents(rs)) => rs.len() <= (*limit).clamp(1, MAX_SEARCH) as usize,
        _ => false,
    };
    if fits { Ok(()) } else { Err(Error::Unavailable("resident-registry is unavailable: the module that provides it answered another question than asked".into())) }
}

impl PlatformState {
    /// Asks the municipality's 住民記録 module, if it chose one (`ByPlatform` otherwise).
    async fn registry_provider(&mut self, call: ProvidedCall<'_>, query: String, name: &'static str) -> Result<Answered, Error> {
        self.call_provider(ProvidedInterface::ResidentRegistry, call, query, handed_over, name, move |answer| answers(&call, answer)).await
    }

    async fn audit_read(&self, interface: &'static str, query: String, records: Vec<String>) -> Result<(), Error> {
        self.audited(AuditEntry::new(interface, query, records)).await
    }

    fn lg(&self) -> String {
        self.municipality.lg_code.to_string()
    }
}

impl Host for PlatformState {
    #[tracing::instrument(name = "linkage_call", skip_all, fields(interface = "resident-registry.get"))]
    async fn get(&mut self, addressee_number: String) -> Result<Option<Resident>, Error> {
        self.require(Capability::ResidentRegistry)?;
        self.read_room()?;
        check_id("addressee-number", &addressee_number)?;
        let query = format!("addressee-number={}", clip(&addressee_number));
        if let Answered::ByModule(answer) = self.registry_provider(ProvidedCall::ResidentGet(&addressee_number), query.clone(), "resident-registry.get").await? {
            let ProvidedAnswer::Resident(found) = answer else { unreachable!("checked against the call") };
            return Ok(found.map(from_provider));
        }
        let found = self.db.resident(&self.lg(), &addressee_number).await.map_err(unavailable)?;
        let records = found.iter().map(|r| r.addressee_number.clone()).collect();
        self.audit_read("resident-registry.get", query, records).await?;
        Ok(found.map(to_wit))
    }

    #[tracing::instrument(name = "linkage_call", skip_all, fields(interface = "resident-registry.household"))]
    async fn household(&mut self, household_number: String) -> Result<Vec<Resident>, Error> {
        self.require(Capability::ResidentRegistry)?;
        self.read_room()?;
        check_id("household-number", &household_number)?;
        let query = format!("household-number={}", clip(&household_number));
        if let Answered::ByModule(answer) = self.registry_provider(ProvidedCall::ResidentHousehold(&household_number), query.clone(), "resident-registry.household").await? {
            let ProvidedAnswer::Residents(members) = answer else { unreachable!("checked against the call") };
            return Ok(members.into_iter().map(from_provider).collect());
        }
        let members = self.db.household(&self.lg(), &household_number).await.map_err(unavailable)?;
        let records = members.iter().map(|r| r.addressee_number.clone()).collect();
        self.audit_read("resident-registry.household", query, records).await?;
        Ok(members.into_iter().map(to_wit).collect())
    }

    #[tracing::instrument(name = "linkage_call", skip_all, fields(interface = "resident-registry.search"))]
    async fn search(&mut self, name_kana: String, birth_date: Option<String>, limit: u32) -> Result<Vec<Resident>, Error> {
        self.require(Capability::ResidentRegistry)?;
        self.read_room()?;
        check_id("name-kana", &name_kana)?;
        let key = linkage::kana_key(&name_kana);
        if key.is_empty() {
            return Err(Error::Invalid("name-kana must not be empty: give at least the first kana of the name".into()));
        }
        if let Some(date) = &birth_date
            && chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_err()
        {
            return Err(Error::Invalid(format!("birth-date must be YYYY-MM-DD, not `{}`", clip(date))));
        }
        let limit = limit.clamp(1, MAX_SEARCH);
        let query = format!("name-kana={} birth-date={}", clip(&name_kana), birth_date.as_deref().unwrap_or("-"));
        if let Answered::ByModule(answer) = self.registry_provider(ProvidedCall::ResidentSearch(&name_kana, birth_date.as_deref(), limit), query.clone(), "resident-registry.search").await? {
            let ProvidedAnswer::Residents(found) = answer else { unreachable!("checked against the call") };
            return Ok(found.into_iter().map(from_provider).collect());
        }
        let found = self.db.search_residents(&self.lg(), &key, birth_date.as_deref(), limit).await.map_err(unavailable)?;
        let records = found.iter().map(|r| r.addressee_number.clone()).collect();
        self.audit_read("resident-registry.search", query, records).await?;
        Ok(found.into_iter().map(to_wit).collect())
    }
}

impl identity_numbers::Host for PlatformState {
    #[tracing::instrument(name = "linkage_call", skip_all, fields(interface = "identity-numbers.get"))]
    async fn get(&mut self, addressee_number: String) -> Result<Option<IdentityNumbers>, Error> {
        self.require(Capability::IdentityNumbers)?;
        self.read_room()?;
        check_id("addressee-number", &addressee_number)?;
        let found = self.db.identity_numbers(&self.lg(), &addressee_number).await.map_err(unavailable)?;
        let records = if found.is_some() { vec![addressee_number.clone()] } else { vec![] };
        self.audit_read("identity-numbers.get", format!("addressee-number={}", clip(&addressee_number)), records).await?;
        Ok(found.map(|n| IdentityNumbers { individual_number: n.individual_number, resident_record_code: n.resident_record_code }))
    }

    #[tracing::instrument(name = "linkage_call", skip_all, fields(interface = "identity-numbers.find"))]
    async fn find(&mut self, individual_number: String) -> Result<Option<String>, Error> {
        self.require(Capability::IdentityNumbers)?;
        self.read_room()?;
        check_id("individual-number", &individual_number)?;
        let found = self.db.addressee_by_individual_number(&self.lg(), &individual_number).await.map_err(unavailable)?;
        // The query names a person: it is on record whether or not anyone matched, but the
        // number itself is not written to the trail.
        self.audit_read("identity-numbers.find", "individual-number=(withheld)".into(), found.iter().cloned().collect()).await?;
        Ok(found)
    }
}
