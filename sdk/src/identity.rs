//! The verified caller of the current request (never the raw token).

use crate::bindings::nukisashi::platform::identity as raw;
use crate::{Error, Result};

pub use raw::{Caller, Role};

pub fn caller() -> Caller {
    raw::current_caller()
}

/// The signed-in resident's 宛名番号 in this municipality, when the identity provider
/// vouched for it; use it to prefill forms (with the `resident-registry` capability).
pub fn addressee_number() -> Option<String> {
    raw::current_addressee_number()
}

/// The caller if it has at least `role` (anonymous < resident < staff < admin < operator),
/// otherwise 401/403.
pub fn require(role: Role) -> Result<Caller> {
    let caller = caller();
    if rank(caller.role) >= rank(role) {
        Ok(caller)
    } else if caller.role == Role::Anonymous {
        Err(Error::new(401, "Sign-in required", "this page needs a signed-in user"))
    } else {
        Err(Error::forbidden("your role may not use this page"))
    }
}

fn rank(role: Role) -> u8 {
    match role {
        Role::Anonymous => 0,
        Role::Resident => 1,
        Role::Staff => 2,
        Role::Admin => 3,
        Role::Operator => 4,
    }
}
