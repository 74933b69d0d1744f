//! Unit-test handlers natively, with `cargo test`: an in-memory platform for this thread.
//!
//! In a native build every platform call of the SDK ([`kv`](crate::kv),
//! [`config`](crate::config), [`identity`](crate::identity), [`context`](crate::context),
//! [`registry`](crate::registry), [`tax`](crate::tax), [`changes`](crate::changes),
//! [`events`](crate::events), [`log`](crate::log)) is answered here instead of by the host,
//! with the host's errors: `not-granted` for a capability the test has not granted, `invalid`
//! and `too-large` for the keys and values the host refuses. Each `#[test]` runs on a thread
//! of its own, and [`TestPlatform::new`] starts that thread's platform empty, so tests never
//! see each other's data.
//!
//! ```ignore
//! use nukisashi_sdk::testing::TestPlatform;
//!
//! #[test]
//! fn entries_are_kept_per_municipality() {
//!     let platform = TestPlatform::new();
//!     platform.config("title", "区民の声");
//!     let posted = platform.post_json(routes, "/entries", &serde_json::json!({"name": "山田", "message": "こんにちは"}));
//!     assert_eq!(posted.status, 201);
//!     assert_eq!(platform.get(routes, "/entries").body_json::<Vec<serde_json::Value>>().unwrap().len(), 1);
//!
//!     platform.grant_only(&[]);
//!     assert_eq!(platform.get(routes, "/entries").status, 403); // kv not granted
//! }
//! ```
//!
//! Not modelled: the host's per-request limits (deadline, memory, storage quota, audit
//! records per request) and its edge (sign-in, origins, routes' auth levels); the
//! end-to-end tests of a module run it on a real host for those (`nukisashi dev`).

use crate::bindings::nukisashi::platform as wit;
use crate::http::{Method, Request, Response};
use crate::Router;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

pub use crate::identity::Role;

/// Longest kv key the host accepts, in bytes.
const MAX_KEY_BYTES: usize = 512;
/// Largest value one host call carries (the host's default `[limits] host_call_bytes`).
const MAX_VALUE_BYTES: usize = 1 << 20;
/// Most keys one `list-keys` call returns.
const MAX_PAGE: u32 = 1000;
/// Most residents one registry search returns.
const MAX_SEARCH: u32 = 100;
/// Most changes one `since` call returns.
const MAX_CHANGES: u32 = 1000;

/// Every capability a module can be granted (manifest names).
pub const CAPABILITIES: [&str; 8] = ["kv", "resident-registry", "identity-numbers", "tax", "change-feed", "events", "receipts", "notices"];

struct State {
    municipality: wit::context::Municipality,
    module: wit::context::ModuleInfo,
    request_id: String,
    caller: wit::identity::Caller,
    addressee_number: Option<String>,
    config: BTreeMap<String, String>,
    granted: BTreeSet<String>,
    kv: BTreeMap<String, Vec<u8>>,
    residents: BTreeMap<String, wit::resident_registry::Resident>,
    identity_numbers: BTreeMap<String, wit::identity_numbers::IdentityNumbers>,
    tax: BTreeMap<(String, u16), wit::tax::TaxSummary>,
    changes: Vec<wit::changes::Change>,
    published: Vec<crate::events::Event>,
    payments: Vec<crate::receipts::Payment>,
    arrears: Vec<crate::receipts::Arrear>,
    /// (lg_code, prefecture, name) of the platform's other municipalities.
    municipalities: Vec<(String, String, String)>,
    /// (lg_code, kind) pairs the receiving municipality has not accepted.
    not_accepting: BTreeSet<(String, String)>,
    sent: Vec<(String, crate::notices::Notice)>,
    logs: Vec<String>,
    reads: Vec<String>,
}

impl Default for State {
    fn default() -> Self {
        State {
            municipality: wit::context::Municipality { lg_code: "131016".into(), name: "千代田区".into(), prefecture: "東京都".into() },
            module: wit::context::ModuleInfo { id: "test".into(), version: "0.0.0".into() },
            request_id: "test-request".into(),
            caller: anonymous(),
            addressee_number: None,
            config: BTreeMap::new(),
            granted: CAPABILITIES.iter().map(|c| c.to_string()).collect(),
            kv: BTreeMap::new(),
            residents: BTreeMap::new(),
            identity_numbers: BTreeMap::new(),
            tax: BTreeMap::new(),
            changes: Vec::new(),
            published: Vec::new(),
            payments: Vec::new(),
            arrears: Vec::new(),
            municipalities: Vec::new(),
            not_accepting: BTreeSet::new(),
            sent: Vec::new(),
            logs: Vec::new(),
            reads: Vec::new(),
        }
    }
}

fn anonymous() -> wit::identity::Caller {
    wit::identity::Caller { subject: None, role: Role::Anonymous, display_name: None }
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

fn with<T>(f: impl FnOnce(&mut State) -> T) -> T {
    STATE.with(|s| f(&mut s.borrow_mut()))
}

fn require(capability: &str) -> Result<(), wit::types::Error> {
    with(|s| s.granted.contains(capability))
        .then_some(())
        .ok_or_else(|| wit::types::Error::NotGranted(capability.to_string()))
}

/// This thread's in-memory platform: set it up, call handlers, look at what they did.
///
/// Defaults: 千代田区 (131016, 東京都), module `test` 0.0.0, an anonymous caller, every
/// capability granted, nothing in kv, config or the registry.
pub struct TestPlatform {
    // Bound to the thread whose platform it configures.
    _thread: std::marker::PhantomData<*const ()>,
}

impl Default for TestPlatform {
    fn default() -> Self {
        Self::new()
    }
}

impl TestPlatform {
    /// Empties this thread's platform and returns a handle to it.
    pub fn new() -> Self {
        with(|s| *s = State::default());
        TestPlatform { _thread: std::marker::PhantomData }
    }

    /// The municipality the module serves.
    pub fn municipality(&self, lg_code: &str, name: &str, prefecture: &str) -> &Self {
        with(|s| s.municipality = wit::context::Municipality { lg_code: lg_code.into(), name: name.into(), prefecture: prefecture.into() });
        self
    }

    /// The module's id and version, as `context::module_info` reports them.
    pub fn module(&self, id: &str, version: &str) -> &Self {
        with(|s| s.module = wit::context::ModuleInfo { id: id.into(), version: version.into() });
        self
    }

    /// One of the municipality's settings for the module.
    pub fn config(&self, key: &str, value: &str) -> &Self {
        with(|s| s.config.insert(key.into(), value.into()));
        self
    }

    /// The caller of the next requests: `subject` as the host gives it, e.g. `demo#resident-1`.
    pub fn sign_in(&self, role: Role, subject: &str, display_name: Option<&str>) -> &Self {
        with(|s| s.caller = wit::identity::Caller { subject: Some(subject.into()), role, display_name: display_name.map(Into::into) });
        self
    }

    /// The next requests come from nobody signed in (and no vouched 宛名番号).
    pub fn sign_out(&self) -> &Self {
        with(|s| {
            s.caller = anonymous();
            s.addressee_number = None;
        });
        self
    }

    /// The 宛名番号 the identity provider vouched for (`identity::addressee_number`).
    pub fn vouched_addressee_number(&self, addressee_number: Option<&str>) -> &Self {
        with(|s| s.addressee_number = addressee_number.map(Into::into));
        self
    }

    /// Grants exactly these capabilities (manifest names, e.g. `["kv", "tax"]`); every other
    /// call answers `not-granted`, as on a host whose municipality did not grant it.
    ///
    /// Panics on a name that is not a capability, as the host refuses it.
    pub fn grant_only(&self, capabilities: &[&str]) -> &Self {
        for c in capabilities {
            assert!(CAPABILITIES.contains(c), "`{c}` is not a capability; capabilities are {CAPABILITIES:?}");
        }
        with(|s| s.granted = capabilities.iter().map(|c| c.to_string()).collect());
        self
    }

    /// Puts a resident in the registry.
    pub fn resident(&self, resident: crate::registry::Resident) -> &Self {
        with(|s| s.residents.insert(resident.addressee_number.clone(), crate::registry::as_imported::resident(resident)));
        self
    }

    /// A resident's マイナンバー and 住民票コード.
    pub fn identity_numbers(&self, addressee_number: &str, numbers: crate::registry::IdentityNumbers) -> &Self {
        let numbers = wit::identity_numbers::IdentityNumbers {
            individual_number: numbers.individual_number,
            resident_record_code: numbers.resident_record_code,
        };
        with(|s| s.identity_numbers.insert(addressee_number.into(), numbers));
        self
    }

    /// A resident's 個人住民税 assessment for one fiscal year.
    pub fn tax_summary(&self, summary: crate::tax::TaxSummary) -> &Self {
        let key = (summary.addressee_number.clone(), summary.fiscal_year);
        let summary = wit::tax::TaxSummary {
            addressee_number: summary.addressee_number,
            fiscal_year: summary.fiscal_year,
            total_income: summary.total_income,
            income_based_tax: summary.income_based_tax,
        };
        with(|s| s.tax.insert(key, summary));
        self
    }

    /// Appends a change to the feed `changes::since` reads; its cursor is its position (from 1).
    pub fn change(&self, kind: crate::changes::ChangeKind, addressee_number: &str, household_number: &str, effective_date: &str, reason: &str) -> &Self {
        with(|s| {
            let cursor = s.changes.len() as u64 + 1;
            s.changes.push(wit::changes::Change {
                cursor,
                kind: to_wit_change_kind(kind),
                addressee_number: addressee_number.into(),
                household_number: household_number.into(),
                effective_date: effective_date.into(),
                reason: reason.into(),
            })
        });
        self
    }

    /// A payment the municipality's 収納 provider answers with (`receipts::payments`).
    pub fn payment(&self, payment: crate::receipts::Payment) -> &Self {
        with(|s| s.payments.push(payment));
        self
    }

    /// An unpaid installment the 収納 provider answers with (`receipts::arrears`).
    pub fn arrear(&self, arrear: crate::receipts::Arrear) -> &Self {
        with(|s| s.arrears.push(arrear));
        self
    }

    /// Another municipality on the platform (for `notices::municipality_of`).
    pub fn other_municipality(&self, lg_code: &str, prefecture: &str, name: &str) -> &Self {
        with(|s| s.municipalities.push((lg_code.into(), prefecture.into(), name.into())));
        self
    }

    /// `lg_code` has not accepted notices of `kind`: sending one is refused with
    /// `not-accepted`, as on a host. Every other notice is accepted.
    pub fn not_accepting(&self, lg_code: &str, kind: &str) -> &Self {
        with(|s| s.not_accepting.insert((lg_code.into(), kind.into())));
        self
    }

    /// The notices the module sent, in order, each with the municipality it went to.
    pub fn sent_notices(&self) -> Vec<(String, crate::notices::Notice)> {
        with(|s| s.sent.clone())
    }

    /// Stores a value as if the module had (for state a test starts from).
    pub fn kv_set(&self, key: &str, value: &[u8]) -> &Self {
        with(|s| s.kv.insert(key.into(), value.to_vec()));
        self
    }

    /// What the module stored under `key`.
    pub fn kv_get(&self, key: &str) -> Option<Vec<u8>> {
        with(|s| s.kv.get(key).cloned())
    }

    /// Every key the module stored, sorted.
    pub fn kv_keys(&self) -> Vec<String> {
        with(|s| s.kv.keys().cloned().collect())
    }

    /// The events the module published, in order, with the sequence the platform gave each.
    pub fn published(&self) -> Vec<crate::events::Event> {
        with(|s| s.published.clone())
    }

    /// The module's log lines, as `level: message` (`info: 受付 17`).
    pub fn logs(&self) -> Vec<String> {
        with(|s| s.logs.clone())
    }

    /// The personal-data reads the host would put in the audit trail, as
    /// `interface record…` (`resident-registry.get 000000000001`): check that a handler reads
    /// only what it needs.
    pub fn reads(&self) -> Vec<String> {
        with(|s| s.reads.clone())
    }

    /// Runs `GET path` (with its query) through the module's router.
    pub fn get(&self, routes: fn() -> Router, path: &str) -> Response {
        self.request(routes, Method::Get, path, &[("accept", "application/json")], Vec::new())
    }

    /// Runs `POST path` with `body` as JSON.
    pub fn post_json<T: serde::Serialize>(&self, routes: fn() -> Router, path: &str, body: &T) -> Response {
        let body = serde_json::to_vec(body).expect("the test's body serialises to JSON");
        self.request(routes, Method::Post, path, &[("content-type", "application/json"), ("accept", "application/json")], body)
    }

    /// Runs `POST path` with `fields` as a urlencoded form, as a browser posts it.
    pub fn post_form(&self, routes: fn() -> Router, path: &str, fields: &[(&str, &str)]) -> Response {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{}={}", crate::url::encode_component(k), crate::url::encode_component(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.request(routes, Method::Post, path, &[("content-type", "application/x-www-form-urlencoded"), ("accept", "text/html")], body.into_bytes())
    }

    /// Runs any request through the module's router. Header names are lower-cased, as the
    /// host hands them over.
    pub fn request(&self, routes: fn() -> Router, method: Method, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Response {
        let headers = headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.as_bytes().to_vec())).collect();
        routes().dispatch(Request::new(method, path, headers, body))
    }
}

fn to_wit_change_kind(kind: crate::changes::ChangeKind) -> wit::changes::ChangeKind {
    use crate::changes::ChangeKind as K;
    use wit::changes::ChangeKind as W;
    match kind {
        K::Registered => W::Registered,
        K::Updated => W::Updated,
        K::MovedOut => W::MovedOut,
        K::Deceased => W::Deceased,
        K::Reinstated => W::Reinstated,
        K::TaxAssessed => W::TaxAssessed,
    }
}

/// Kana search keys as the host folds them: hiragana to katakana, spaces dropped.
fn kana_key(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            '\u{3041}'..='\u{3096}' => char::from_u32(c as u32 + 0x60).unwrap_or(c),
            _ => c,
        })
        .collect()
}

/// The platform's interfaces, answered from this thread's [`State`] (see [`crate::platform`]).
pub(crate) mod platform {
    pub mod context {
        use super::super::{with, wit};
        pub use wit::context::{ModuleInfo, Municipality};

        pub fn current_municipality() -> Municipality {
            with(|s| s.municipality.clone())
        }
        pub fn current_module() -> ModuleInfo {
            with(|s| s.module.clone())
        }
        pub fn request_id() -> String {
            with(|s| s.request_id.clone())
        }
    }

    pub mod identity {
        use super::super::{with, wit};
        pub use wit::identity::{Caller, Role};

        pub fn current_caller() -> Caller {
            with(|s| s.caller.clone())
        }
        pub fn current_addressee_number() -> Option<String> {
            with(|s| s.addressee_number.clone())
        }
    }

    pub mod config {
        use super::super::with;

        pub fn get(key: &str) -> Option<String> {
            with(|s| s.config.get(key).cloned())
        }
        pub fn entries() -> Vec<(String, String)> {
            with(|s| s.config.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        }
    }

    pub mod log {
        use super::super::with;
        pub use crate::bindings::nukisashi::platform::log::Level;

        pub fn log(level: Level, message: &str) {
            let level = match level {
                Level::Trace => "trace",
                Level::Debug => "debug",
                Level::Info => "info",
                Level::Warn => "warn",
                Level::Error => "error",
            };
            with(|s| s.logs.push(format!("{level}: {message}")));
        }
    }

    pub mod kv {
        use super::super::{require, with, wit, MAX_KEY_BYTES, MAX_PAGE, MAX_VALUE_BYTES};
        pub use wit::kv::KeyPage;
        use wit::types::Error;

        fn check_key(key: &str) -> Result<(), Error> {
            if key.is_empty() {
                return Err(Error::Invalid("kv keys must not be empty".into()));
            }
            if key.len() > MAX_KEY_BYTES {
                return Err(Error::TooLarge(format!("kv keys are limited to {MAX_KEY_BYTES} bytes, this one has {}", key.len())));
            }
            Ok(())
        }

        pub fn get(key: &str) -> Result<Option<Vec<u8>>, Error> {
            require("kv")?;
            check_key(key)?;
            Ok(with(|s| s.kv.get(key).cloned()))
        }
        pub fn set(key: &str, value: &[u8]) -> Result<(), Error> {
            require("kv")?;
            check_key(key)?;
            if value.len() > MAX_VALUE_BYTES {
                return Err(Error::TooLarge(format!("kv values are limited to {MAX_VALUE_BYTES} bytes, this one has {}", value.len())));
            }
            with(|s| s.kv.insert(key.into(), value.to_vec()));
            Ok(())
        }
        pub fn delete(key: &str) -> Result<bool, Error> {
            require("kv")?;
            check_key(key)?;
            Ok(with(|s| s.kv.remove(key).is_some()))
        }
        pub fn increment(key: &str, delta: i64) -> Result<i64, Error> {
            require("kv")?;
            check_key(key)?;
            with(|s| {
                let current = match s.kv.get(key) {
                    None => 0,
                    Some(bytes) => std::str::from_utf8(bytes)
                        .ok()
                        .and_then(|t| t.parse::<i64>().ok())
                        .ok_or_else(|| Error::Invalid(format!("the value under `{key}` is not a decimal counter")))?,
                };
                let next = current.checked_add(delta).ok_or_else(|| Error::Invalid(format!("the counter under `{key}` would overflow")))?;
                s.kv.insert(key.into(), next.to_string().into_bytes());
                Ok(next)
            })
        }
        pub fn list_keys(prefix: &str, after: Option<&str>, limit: u32) -> Result<KeyPage, Error> {
            require("kv")?;
            let limit = limit.clamp(1, MAX_PAGE) as usize;
            let keys: Vec<String> = with(|s| {
                s.kv.keys()
                    .filter(|k| k.starts_with(prefix) && after.is_none_or(|a| k.as_str() > a))
                    .take(limit)
                    .cloned()
                    .collect()
            });
            let next = if keys.len() == limit { keys.last().cloned() } else { None };
            Ok(KeyPage { keys, next })
        }
    }

    pub mod resident_registry {
        use super::super::{kana_key, require, with, wit, MAX_SEARCH};
        pub use wit::resident_registry::{ResidenceStatus, Resident, Sex};
        use wit::types::Error;

        pub fn get(addressee_number: &str) -> Result<Option<Resident>, Error> {
            require("resident-registry")?;
            Ok(with(|s| {
                let found = s.residents.get(addressee_number).cloned();
                if found.is_some() {
                    s.reads.push(format!("resident-registry.get {addressee_number}"));
                }
                found
            }))
        }
        pub fn household(household_number: &str) -> Result<Vec<Resident>, Error> {
            require("resident-registry")?;
            Ok(with(|s| {
                let mut members: Vec<Resident> = s.residents.values().filter(|r| r.household_number == household_number).cloned().collect();
                // 世帯主 first, as the host answers.
                members.sort_by_key(|r| r.relationship != "世帯主");
                for r in &members {
                    s.reads.push(format!("resident-registry.household {}", r.addressee_number));
                }
                members
            }))
        }
        pub fn search(name_kana: &str, birth_date: Option<&str>, limit: u32) -> Result<Vec<Resident>, Error> {
            require("resident-registry")?;
            let key = kana_key(name_kana);
            if key.is_empty() {
                return Err(Error::Invalid("name-kana must not be empty: give at least the first kana of the name".into()));
            }
            let limit = limit.clamp(1, MAX_SEARCH) as usize;
            Ok(with(|s| {
                let found: Vec<Resident> = s
                    .residents
                    .values()
                    .filter(|r| kana_key(&r.name_kana).starts_with(&key) && birth_date.is_none_or(|d| r.birth_date == d))
                    .take(limit)
                    .cloned()
                    .collect();
                for r in &found {
                    s.reads.push(format!("resident-registry.search {}", r.addressee_number));
                }
                found
            }))
        }
    }

    pub mod identity_numbers {
        use super::super::{require, with, wit};
        pub use wit::identity_numbers::IdentityNumbers;
        use wit::types::Error;

        pub fn get(addressee_number: &str) -> Result<Option<IdentityNumbers>, Error> {
            require("identity-numbers")?;
            Ok(with(|s| {
                let found = s.identity_numbers.get(addressee_number).cloned();
                if found.is_some() {
                    s.reads.push(format!("identity-numbers.get {addressee_number}"));
                }
                found
            }))
        }
        pub fn find(individual_number: &str) -> Result<Option<String>, Error> {
            require("identity-numbers")?;
            Ok(with(|s| {
                let found = s.identity_numbers.iter().find(|(_, n)| n.individual_number.as_deref() == Some(individual_number)).map(|(a, _)| a.clone());
                if let Some(a) = &found {
                    s.reads.push(format!("identity-numbers.find {a}"));
                }
                found
            }))
        }
    }

    pub mod tax {
        use super::super::{require, with, wit};
        pub use wit::tax::TaxSummary;
        use wit::types::Error;

        pub fn summary(addressee_number: &str, fiscal_year: u16) -> Result<Option<TaxSummary>, Error> {
            require("tax")?;
            Ok(with(|s| {
                let found = s.tax.get(&(addressee_number.to_string(), fiscal_year)).cloned();
                if found.is_some() {
                    s.reads.push(format!("tax.summary {addressee_number}"));
                }
                found
            }))
        }
    }

    pub mod changes {
        use super::super::{require, with, wit, MAX_CHANGES};
        pub use wit::changes::{Change, ChangeKind, ChangePage};
        use wit::types::Error;

        pub fn since(after: u64, limit: u32) -> Result<ChangePage, Error> {
            require("change-feed")?;
            let limit = limit.clamp(1, MAX_CHANGES) as usize;
            Ok(with(|s| {
                let changes: Vec<Change> = s.changes.iter().filter(|c| c.cursor > after).take(limit).cloned().collect();
                let next = changes.last().map_or(after, |c| c.cursor);
                ChangePage { changes, next }
            }))
        }
    }

    pub mod receipts {
        use super::super::{require, with, wit};
        use crate::receipts::as_imported::{arrear, payment};
        pub use wit::receipts::{Arrear, Payment};
        use wit::types::Error;

        pub fn payments(addressee_number: &str, fiscal_year: Option<u16>) -> Result<Vec<Payment>, Error> {
            require("receipts")?;
            Ok(with(|s| {
                let found: Vec<Payment> = s
                    .payments
                    .iter()
                    .filter(|p| p.addressee_number == addressee_number && fiscal_year.is_none_or(|y| p.fiscal_year == y))
                    .cloned()
                    .map(payment)
                    .collect();
                if !found.is_empty() {
                    s.reads.push(format!("receipts.payments {addressee_number}"));
                }
                found
            }))
        }
        pub fn arrears(addressee_number: &str) -> Result<Vec<Arrear>, Error> {
            require("receipts")?;
            Ok(with(|s| {
                let found: Vec<Arrear> = s.arrears.iter().filter(|a| a.addressee_number == addressee_number).cloned().map(arrear).collect();
                if !found.is_empty() {
                    s.reads.push(format!("receipts.arrears {addressee_number}"));
                }
                found
            }))
        }
    }

    pub mod notices {
        use super::super::{require, with, wit};
        pub use wit::notices::{Notice, SendError};
        use wit::types::Error;

        pub fn send(to_lg_code: &str, kind: &str, subject: Option<&str>, payload: &str) -> Result<u64, SendError> {
            require("notices").map_err(SendError::Refused)?;
            if serde_json::from_str::<serde_json::Value>(payload).is_err() {
                return Err(SendError::Refused(Error::Invalid("the payload must be JSON text".into())));
            }
            with(|s| {
                if s.not_accepting.contains(&(to_lg_code.to_string(), kind.to_string())) {
                    return Err(SendError::NotAccepted(format!("{to_lg_code} has not accepted notices of kind `{kind}`")));
                }
                let sequence = s.sent.len() as u64 + 1;
                let notice = crate::notices::Notice {
                    sequence,
                    from_lg_code: s.municipality.lg_code.clone(),
                    from_module: s.module.id.clone(),
                    kind: kind.into(),
                    subject: subject.map(Into::into),
                    payload: payload.into(),
                };
                s.sent.push((to_lg_code.into(), notice));
                Ok(sequence)
            })
        }
        pub fn municipality_of(address: &str) -> Option<String> {
            with(|s| {
                let here = (s.municipality.lg_code.clone(), s.municipality.prefecture.clone(), s.municipality.name.clone());
                std::iter::once(here)
                    .chain(s.municipalities.iter().cloned())
                    .find(|(_, prefecture, name)| address.starts_with(&format!("{prefecture}{name}")) || address.starts_with(name.as_str()))
                    .map(|(code, _, _)| code)
            })
        }
    }

    pub mod events {
        use super::super::{require, with, wit};
        pub use wit::events::Event;
        use wit::types::Error;

        pub fn publish(topic: &str, subject: Option<&str>, payload: &str) -> Result<u64, Error> {
            require("events")?;
            let valid_topic = !topic.is_empty() && topic.len() <= 64 && topic.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !valid_topic {
                return Err(Error::Invalid(format!("topics are 1–64 of a-z, 0-9 and `-`, not `{topic}`")));
            }
            Ok(with(|s| {
                let sequence = s.published.len() as u64 + 1;
                s.published.push(crate::events::Event {
                    sequence,
                    source: s.module.id.clone(),
                    topic: topic.into(),
                    subject: subject.map(Into::into),
                    payload: payload.into(),
                });
                sequence
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TestPlatform;
    use crate::prelude::*;
    use crate::registry::{Resident, Sex, Status};

    fn resident(number: &str, name_kana: &str) -> Resident {
        Resident {
            addressee_number: number.into(),
            integrated_addressee_number: format!("9{number}"),
            household_number: "H1".into(),
            name: "山田 太郎".into(),
            name_kana: name_kana.into(),
            birth_date: "1980-04-01".into(),
            sex: Sex::Male,
            relationship: if number.ends_with('1') { "世帯主".into() } else { "子".into() },
            postal_code: "1000001".into(),
            address: "東京都千代田区千代田1-1".into(),
            resident_since: "2000-01-01".into(),
            status: Status::Resident,
            status_changed_on: None,
            status_reason: None,
        }
    }

    fn whoami(_: &Request) -> Result<Response> {
        let caller = identity::require(identity::Role::Staff)?;
        let number = identity::addressee_number();
        Ok(Response::json(&(caller.subject, number, context::municipality().lg_code)))
    }

    fn lookup(req: &Request) -> Result<Response> {
        let found = registry::get(req.param("number").unwrap_or(""))?;
        let sequence = events::publish("looked-up", Some("x"), &found.as_ref().map(|r| r.name.clone()))?;
        Ok(Response::json(&(found.map(|r| r.name), sequence)))
    }

    fn routes() -> Router {
        Router::new().get("/me", whoami).get("/residents/:number", lookup)
    }

    #[test]
    fn roles_are_checked_as_the_sdk_checks_them_on_a_host() {
        let platform = TestPlatform::new();
        assert_eq!(platform.get(routes, "/me").status, 401);
        platform.sign_in(identity::Role::Resident, "demo#r1", None);
        assert_eq!(platform.get(routes, "/me").status, 403);
        platform.sign_in(identity::Role::Staff, "demo#s1", Some("職員")).vouched_addressee_number(Some("000000000001"));
        let me: (Option<String>, Option<String>, String) = platform.get(routes, "/me").body_json().unwrap();
        assert_eq!(me, (Some("demo#s1".into()), Some("000000000001".into()), "131016".into()));
    }

    #[test]
    fn registry_reads_and_events_are_recorded_and_need_their_grants() {
        let platform = TestPlatform::new();
        platform.resident(resident("000000000001", "ヤマダ タロウ")).resident(resident("000000000002", "ヤマダ ハナコ"));
        let (name, sequence): (Option<String>, u64) = platform.get(routes, "/residents/000000000001").body_json().unwrap();
        assert_eq!((name.as_deref(), sequence), (Some("山田 太郎"), 1));
        assert_eq!(platform.reads(), ["resident-registry.get 000000000001"]);
        assert_eq!(platform.published()[0].topic, "looked-up");
        assert_eq!(platform.published()[0].source, "test");

        let found = registry::search("やまだ", None, 10).unwrap();
        assert_eq!(found.len(), 2, "hiragana folds to katakana and spaces are ignored");
        assert_eq!(registry::household("H1").unwrap()[0].relationship, "世帯主");

        platform.grant_only(&["resident-registry"]);
        let refused = platform.get(routes, "/residents/000000000001");
        assert_eq!(refused.status, 403);
        assert!(refused.body_text().unwrap().contains("`events`"));
        platform.grant_only(&["kv"]);
        assert_eq!(platform.get(routes, "/residents/000000000001").status, 403);
    }

    #[test]
    fn kv_refuses_what_the_host_refuses_and_counts_atomically() {
        let _platform = TestPlatform::new();
        assert!(kv::set("", b"x").is_err());
        assert_eq!(kv::set(&"k".repeat(513), b"x").unwrap_err().status, 413);
        assert_eq!(kv::increment("n", 2).unwrap(), 2);
        assert_eq!(kv::increment("n", -1).unwrap(), 1);
        assert_eq!(kv::get_json::<i64>("n").unwrap(), Some(1));
        for i in 0..5 {
            kv::set(&format!("p/{i}"), b"v").unwrap();
        }
        let page = kv::list_keys("p/", None, 2).unwrap();
        assert_eq!((page.keys.len(), page.next.as_deref()), (2, Some("p/1")));
        assert_eq!(kv::all_keys("p/").unwrap().len(), 5);
    }

    #[test]
    fn each_test_starts_from_an_empty_platform() {
        let platform = TestPlatform::new();
        platform.kv_set("left-over", b"1");
        let again = TestPlatform::new();
        assert!(again.kv_keys().is_empty());
    }
}
