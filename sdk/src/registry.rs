//! The municipality's resident registry (住民基本台帳): residents by 宛名番号, households by
//! 世帯番号, search by kana name and birth date. Needs the `resident-registry` capability;
//! [`identity_numbers`] needs `identity-numbers`. Every call is recorded in the
//! municipality's audit trail, so read only what the request needs.
//!
//! The municipality's administrator may choose a module to answer these calls instead of
//! the platform's own copy of the registry (a vendor's 住民記録 unit): such a module
//! declares `[provides.resident-registry]` in its manifest and exports a [`Provider`] with
//! `nukisashi_sdk::module!(routes, resident_registry = PROVIDER)`.
//!
//! A call the municipality has not granted returns an [`Error`](crate::Error) with status
//! 403 that a handler can pass on with `?` or handle (for example, show a form without
//! prefilled fields).

use crate::platform::identity_numbers as raw_numbers;
use crate::platform::resident_registry as raw;
use crate::Result;
use serde::{Deserialize, Serialize};

/// Where a resident stands in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Resident,
    MovedOut,
    Deceased,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sex {
    Male,
    Female,
    Unspecified,
}

/// One resident; names and addresses byte for byte (外字 and IVS kept). Dates are ISO 8601.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resident {
    /// 宛名番号.
    pub addressee_number: String,
    /// 団体内統合宛名番号.
    pub integrated_addressee_number: String,
    /// 世帯番号.
    pub household_number: String,
    pub name: String,
    pub name_kana: String,
    pub birth_date: String,
    pub sex: Sex,
    /// 続柄, e.g. 世帯主, 妻, 子.
    pub relationship: String,
    pub postal_code: String,
    pub address: String,
    pub resident_since: String,
    pub status: Status,
    pub status_changed_on: Option<String>,
    pub status_reason: Option<String>,
}

impl From<raw::Resident> for Resident {
    fn from(r: raw::Resident) -> Self {
        Resident {
            addressee_number: r.addressee_number,
            integrated_addressee_number: r.integrated_addressee_number,
            household_number: r.household_number,
            name: r.name,
            name_kana: r.name_kana,
            birth_date: r.birth_date,
            sex: match r.sex {
                raw::Sex::Male => Sex::Male,
                raw::Sex::Female => Sex::Female,
                raw::Sex::Unspecified => Sex::Unspecified,
            },
            relationship: r.relationship,
            postal_code: r.postal_code,
            address: r.address,
            resident_since: r.resident_since,
            status: match r.status {
                raw::ResidenceStatus::Resident => Status::Resident,
                raw::ResidenceStatus::MovedOut => Status::MovedOut,
                raw::ResidenceStatus::Deceased => Status::Deceased,
            },
            status_changed_on: r.status_changed_on,
            status_reason: r.status_reason,
        }
    }
}

/// The resident with this 宛名番号, if the municipality has one.
pub fn get(addressee_number: &str) -> Result<Option<Resident>> {
    Ok(raw::get(addressee_number)?.map(Resident::from))
}

/// The household's members, head (世帯主) first.
pub fn household(household_number: &str) -> Result<Vec<Resident>> {
    Ok(raw::household(household_number)?.into_iter().map(Resident::from).collect())
}

/// Residents whose kana name starts with `name_kana` (hiragana and spaces are folded),
/// optionally born on `birth_date` (YYYY-MM-DD); at most `limit` (≤ 100).
pub fn search(name_kana: &str, birth_date: Option<&str>, limit: u32) -> Result<Vec<Resident>> {
    Ok(raw::search(name_kana, birth_date, limit)?.into_iter().map(Resident::from).collect())
}

/// マイナンバー and 住民票コード.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdentityNumbers {
    pub individual_number: Option<String>,
    pub resident_record_code: Option<String>,
}

/// The 宛名番号 of this municipality's resident with this 個人番号 (capability
/// `identity-numbers`; audited), if there is one.
pub fn find_by_individual_number(individual_number: &str) -> Result<Option<String>> {
    Ok(raw_numbers::find(individual_number)?)
}

/// The identity numbers of a resident (capability `identity-numbers`); `None` if there is
/// no such resident.
pub fn identity_numbers(addressee_number: &str) -> Result<Option<IdentityNumbers>> {
    Ok(raw_numbers::get(addressee_number)?.map(|n| IdentityNumbers {
        individual_number: n.individual_number,
        resident_record_code: n.resident_record_code,
    }))
}

/// A `resident` function from the SDK's resident into the resident of the WIT module `$wit`
/// (the export's, or the import's): the same fields, other generated types.
macro_rules! resident_into_wit {
    ($wit:ident) => {
        pub fn resident(r: Resident) -> $wit::Resident {
            $wit::Resident {
                addressee_number: r.addressee_number,
                integrated_addressee_number: r.integrated_addressee_number,
                household_number: r.household_number,
                name: r.name,
                name_kana: r.name_kana,
                birth_date: r.birth_date,
                sex: match r.sex {
                    Sex::Male => $wit::Sex::Male,
                    Sex::Female => $wit::Sex::Female,
                    Sex::Unspecified => $wit::Sex::Unspecified,
                },
                relationship: r.relationship,
                postal_code: r.postal_code,
                address: r.address,
                resident_since: r.resident_since,
                status: match r.status {
                    Status::Resident => $wit::ResidenceStatus::Resident,
                    Status::MovedOut => $wit::ResidenceStatus::MovedOut,
                    Status::Deceased => $wit::ResidenceStatus::Deceased,
                },
                status_changed_on: r.status_changed_on,
                status_reason: r.status_reason,
            }
        }
    };
}

/// What a 住民記録 unit exports: the three questions of the interface.
#[derive(Clone, Copy)]
pub struct Provider {
    pub get: fn(&str) -> Result<Option<Resident>>,
    pub household: fn(&str) -> Result<Vec<Resident>>,
    /// (name kana as given, birth date, limit ≤ 100)
    pub search: fn(&str, Option<&str>, u32) -> Result<Vec<Resident>>,
}

/// The provider modules without one export: never called (the host calls only modules whose
/// manifest declares `[provides.resident-registry]`).
#[doc(hidden)]
pub const NOT_PROVIDED: Provider = Provider {
    get: |_| Err(crate::Error::new(503, "Not provided", "this module does not provide the resident registry")),
    household: |_| Err(crate::Error::new(503, "Not provided", "this module does not provide the resident registry")),
    search: |_, _, _| Err(crate::Error::new(503, "Not provided", "this module does not provide the resident registry")),
};

/// The export side: the SDK's residents in the shapes the `resident-registry` export returns.
#[doc(hidden)]
pub mod export {
    use super::{Resident, Sex, Status};
    use crate::bindings::exports::nukisashi::platform::resident_registry as out;
    use crate::bindings::nukisashi::platform::types::Error as RawError;

    pub fn get(provider: &super::Provider, addressee_number: String) -> Result<Option<out::Resident>, RawError> {
        Ok((provider.get)(&addressee_number).map_err(crate::error::to_platform)?.map(resident))
    }

    pub fn household(provider: &super::Provider, household_number: String) -> Result<Vec<out::Resident>, RawError> {
        Ok((provider.household)(&household_number).map_err(crate::error::to_platform)?.into_iter().map(resident).collect())
    }

    pub fn search(provider: &super::Provider, name_kana: String, birth_date: Option<String>, limit: u32) -> Result<Vec<out::Resident>, RawError> {
        let found = (provider.search)(&name_kana, birth_date.as_deref(), limit).map_err(crate::error::to_platform)?;
        Ok(found.into_iter().map(resident).collect())
    }

    resident_into_wit!(out);
}

/// The SDK's residents in the shapes the `resident-registry` import returns (the in-memory
/// platform of [`crate::testing`] answers with them).
#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod as_imported {
    use super::{Resident, Sex, Status};
    use crate::bindings::nukisashi::platform::resident_registry as raw;

    resident_into_wit!(raw);
}
