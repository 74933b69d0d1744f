//! `nukisashi:platform/identity`: the verified caller, never the raw token.

use super::PlatformState;
use super::wit::identity::{Caller as WitCaller, Host, Role as WitRole};

/// Who is calling, as verified by the host before the module runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    pub subject: Option<String>,
    pub role: Role,
    pub display_name: Option<String>,
    /// The resident's 宛名番号 in the request's municipality, if the token vouched for it.
    pub addressee_number: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    #[default]
    Anonymous,
    Resident,
    Staff,
    Admin,
}

impl Host for PlatformState {
    async fn current_caller(&mut self) -> WitCaller {
        let c = &self.caller;
        WitCaller {
            subject: c.subject.clone(),
            role: match c.role {
                Role::Anonymous => WitRole::Anonymous,
                Role::Resident => WitRole::Resident,
                Role::Staff => WitRole::Staff,
                Role::Admin => WitRole::Admin,
            },
            display_name: c.display_name.clone(),
        }
    }

    async fn current_addressee_number(&mut self) -> Option<String> {
        self.caller.addressee_number.clone()
    }
}

impl Caller {
    /// The caller as a module of `lg_code` sees it. Roles are scoped to the municipality
    /// that issued them: staff and admins of another municipality, operators and vendors
    /// are anonymous here (their tokens vouch for nothing in this municipality's business);
    /// a resident is a resident anywhere, with a 宛名番号 only in the municipality it
    /// belongs to. The second value says why a caller was made anonymous, for the log.
    pub fn for_municipality(p: &crate::auth::Principal, lg_code: &crate::lgcode::LgCode) -> (Self, Option<&'static str>) {
        use crate::auth::Role as R;
        let own = p.lg_code.as_ref() == Some(lg_code);
        let role = match p.role {
            R::Operator => return (Caller::default(), Some("operators run the platform, not a municipality's business")),
            R::Admin if own => Role::Admin,
            R::Staff if own => Role::Staff,
            R::Resident => Role::Resident,
            R::Admin | R::Staff => return (Caller::default(), Some("staff and admins act only in their own municipality")),
            R::Vendor => return (Caller::default(), Some("vendors have no role inside a municipality's module")),
        };
        let addressee_number = if own { p.addressee_number.clone() } else { None };
        (Caller { subject: Some(p.subject.clone()), role, display_name: p.name.clone(), addressee_number }, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Principal, Role as R};
    use crate::lgcode::LgCode;

    fn principal(role: R, lg: Option<&str>) -> Principal {
        Principal { subject: "s".into(), role, vendor_id: None, lg_code: lg.map(|c| LgCode::parse(c).unwrap()), name: None, addressee_number: Some("123".into()) }
    }

    #[test]
    fn roles_are_scoped_to_their_municipality() {
        let chiyoda = LgCode::parse("131016").unwrap();
        let (own_staff, why) = Caller::for_municipality(&principal(R::Staff, Some("131016")), &chiyoda);
        assert_eq!((own_staff.role, why), (Role::Staff, None));
        let (other_staff, why) = Caller::for_municipality(&principal(R::Staff, Some("011002")), &chiyoda);
        assert_eq!(other_staff, Caller::default());
        assert!(why.is_some());
        assert_eq!(Caller::for_municipality(&principal(R::Admin, Some("011002")), &chiyoda).0.role, Role::Anonymous);
        let (visitor, _) = Caller::for_municipality(&principal(R::Resident, Some("011002")), &chiyoda);
        assert_eq!((visitor.role, visitor.addressee_number), (Role::Resident, None));
        let (local, _) = Caller::for_municipality(&principal(R::Resident, Some("131016")), &chiyoda);
        assert_eq!(local.addressee_number.as_deref(), Some("123"));
        assert_eq!(Caller::for_municipality(&principal(R::Vendor, None), &chiyoda).0.role, Role::Anonymous);
        assert_eq!(Caller::for_municipality(&principal(R::Operator, Some("131016")), &chiyoda).0.role, Role::Anonymous);
    }
}
