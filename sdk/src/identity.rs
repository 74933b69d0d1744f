//! The verified caller of the current request (never the raw token).

use crate::platform::identity as raw;
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

/// Where a page links to sign in: the platform's sign-in for this municipality, then back
/// to `return_to` (a path of this module). Only on the module's own origin: the path form
/// (`Request::base_path` not empty) is for API clients, which send bearer tokens.
pub fn sign_in_url(return_to: &str) -> String {
    format!("/.nukisashi/signin?return_to={}", crate::url::encode_component(return_to))
}

/// For a page's header: a 「ログイン」 link that comes back to this page, or the signed-in
/// person's name with a 「ログアウト」 button (which signs out of every module of the
/// municipality). Empty in the path form, which has no browser sign-in.
pub fn account_bar(req: &crate::Request) -> String {
    if !req.base_path().is_empty() {
        return String::new();
    }
    let caller = caller();
    if caller.role == Role::Anonymous {
        let here = if req.query.is_empty() { req.path.clone() } else { format!("{}?{}", req.path, req.query) };
        return format!("<nav class=\"account\"><a href=\"{}\">ログイン</a></nav>", crate::escape_html(&sign_in_url(&here)));
    }
    let name = caller.display_name.unwrap_or_else(|| "ログイン中".into());
    format!(
        "<nav class=\"account\">{} さん <form method=\"post\" action=\"/.nukisashi/signout\" class=\"signout\"><button type=\"submit\">ログアウト</button></form></nav>",
        crate::escape_html(&name)
    )
}
