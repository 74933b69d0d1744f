//! Roles, and what each may touch.

use super::AuthError;
use crate::lgcode::LgCode;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Runs the platform: reviews, swaps, suspends, registers vendors and municipalities.
    Operator,
    /// A module vendor; bound to one vendor id.
    Vendor,
    /// A municipality's administrator; bound to one 全国地方公共団体コード.
    Admin,
    /// A municipality's staff; bound to one code.
    Staff,
    /// A resident signed in through an identity provider.
    Resident,
}

/// A verified caller (kept as JSON in a browser session).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub subject: String,
    pub role: Role,
    pub vendor_id: Option<String>,
    pub lg_code: Option<LgCode>,
    pub name: Option<String>,
    /// The resident's 宛名番号 in `lg_code`, if the token carried one.
    pub addressee_number: Option<String>,
}

/// The auth level a module route declares in its manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AccessLevel {
    Public,
    Resident,
    Staff,
    Admin,
}

impl Principal {
    fn denied(&self, what: &str) -> AuthError {
        AuthError::Forbidden(format!("{} `{}` may not {what}", role_name(self.role), self.subject))
    }

    pub fn require_operator(&self) -> Result<(), AuthError> {
        if self.role == Role::Operator { Ok(()) } else { Err(self.denied("do this (operators only)")) }
    }

    /// Operators, or the vendor itself.
    pub fn require_vendor(&self, vendor_id: &str) -> Result<(), AuthError> {
        match self.role {
            Role::Operator => Ok(()),
            Role::Vendor if self.vendor_id.as_deref() == Some(vendor_id) => Ok(()),
            _ => Err(self.denied(&format!("act for vendor `{vendor_id}`"))),
        }
    }

    /// Operators, or an admin of this municipality.
    pub fn require_admin_of(&self, lg_code: &LgCode) -> Result<(), AuthError> {
        match self.role {
            Role::Operator => Ok(()),
            Role::Admin if self.lg_code.as_ref() == Some(lg_code) => Ok(()),
            _ => Err(self.denied(&format!("administer municipality {lg_code}"))),
        }
    }

    /// May this caller use a module route of `level` in municipality `lg_code`?
    /// Staff and admins only in their own municipality; residents anywhere (a donor to
    /// another town's ふるさと納税 is the normal case). Operators run the platform, not the
    /// municipalities' business: a module's signed-in routes, with the personal data behind
    /// them, are not theirs (they administer the municipality through the API).
    pub fn may_use(&self, level: AccessLevel, lg_code: &LgCode) -> bool {
        let own = self.lg_code.as_ref() == Some(lg_code);
        match level {
            AccessLevel::Public => true,
            AccessLevel::Resident => self.role == Role::Resident || (own && matches!(self.role, Role::Staff | Role::Admin)),
            AccessLevel::Staff => own && matches!(self.role, Role::Staff | Role::Admin),
            AccessLevel::Admin => own && self.role == Role::Admin,
        }
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Operator => "operator",
        Role::Vendor => "vendor",
        Role::Admin => "municipality admin",
        Role::Staff => "municipality staff",
        Role::Resident => "resident",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(role: Role, lg: Option<&str>) -> Principal {
        Principal { subject: "s".into(), role, vendor_id: None, lg_code: lg.map(|c| LgCode::parse(c).unwrap()), name: None, addressee_number: None }
    }

    #[test]
    fn staff_and_admin_only_in_their_own_municipality() {
        let chiyoda = LgCode::parse("131016").unwrap();
        let sapporo = LgCode::parse("011002").unwrap();
        let staff = p(Role::Staff, Some("131016"));
        assert!(staff.may_use(AccessLevel::Staff, &chiyoda));
        assert!(!staff.may_use(AccessLevel::Staff, &sapporo));
        assert!(!staff.may_use(AccessLevel::Admin, &chiyoda));
        let resident = p(Role::Resident, None);
        assert!(resident.may_use(AccessLevel::Resident, &sapporo));
        assert!(!resident.may_use(AccessLevel::Staff, &sapporo));
        assert!(p(Role::Admin, Some("011002")).require_admin_of(&chiyoda).is_err());
        assert!(!p(Role::Operator, None).may_use(AccessLevel::Staff, &sapporo), "operators do not work municipalities' cases");
        assert!(!p(Role::Operator, Some("011002")).may_use(AccessLevel::Resident, &sapporo));
        assert!(!p(Role::Vendor, None).may_use(AccessLevel::Resident, &sapporo));
    }
}
