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
    Operator,
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
                Role::Operator => WitRole::Operator,
            },
            display_name: c.display_name.clone(),
        }
    }

    async fn current_addressee_number(&mut self) -> Option<String> {
        self.caller.addressee_number.clone()
    }
}

impl Caller {
    /// The caller as a module of `lg_code` sees it: a 宛名番号 only if the token was issued
    /// for that same municipality.
    pub fn for_municipality(p: &crate::auth::Principal, lg_code: &crate::lgcode::LgCode) -> Self {
        let mut caller = Caller::from(p);
        if p.lg_code.as_ref() == Some(lg_code) {
            caller.addressee_number = p.addressee_number.clone();
        }
        caller
    }
}

impl From<&crate::auth::Principal> for Caller {
    fn from(p: &crate::auth::Principal) -> Self {
        use crate::auth::Role as R;
        let role = match p.role {
            R::Operator => Role::Operator,
            R::Admin => Role::Admin,
            R::Staff => Role::Staff,
            R::Resident => Role::Resident,
            // Vendors have no business inside a municipality's module.
            R::Vendor => Role::Anonymous,
        };
        Caller { subject: Some(p.subject.clone()), role, display_name: p.name.clone(), addressee_number: None }
    }
}
