//! Notices to the service that takes them at another municipality (capability `notices`):
//! ふるさと納税's 申告特例通知書 to the donor's 住所地, a 転出 notice to the new address, …
//!
//! A module sends only the kinds its manifest declares (`[notices] sends = [...]`), and a
//! municipality takes only the kinds its administrator accepted, each into one of its
//! modules that declares it (`[notices] receives = [...]`). That module gets each notice
//! exactly once, in order, through its handler:
//! `nukisashi_sdk::module!(routes, on_notice = handler)`; its [`kv`](crate::kv) writes and
//! the notices it sends during the call are committed together with the delivery. Return
//! `Err` to be called again later with the same notice.

use crate::platform::notices as raw;
use crate::Error;
use serde::Serialize;

/// A notice as delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notice {
    /// Position in this municipality's notice log.
    pub sequence: u64,
    /// The sending municipality's code (set by the platform).
    pub from_lg_code: String,
    /// The sending module (set by the platform).
    pub from_module: String,
    pub kind: String,
    pub subject: Option<String>,
    /// JSON text.
    pub payload: String,
}

impl Notice {
    /// The payload parsed into `T`.
    pub fn payload<T: serde::de::DeserializeOwned>(&self) -> std::result::Result<T, String> {
        serde_json::from_str(&self.payload).map_err(|e| format!("notice {} has an unexpected payload: {e}", self.sequence))
    }
}

impl From<raw::Notice> for Notice {
    fn from(n: raw::Notice) -> Self {
        Notice { sequence: n.sequence, from_lg_code: n.from_lg_code, from_module: n.from_module, kind: n.kind, subject: n.subject, payload: n.payload }
    }
}

/// Why a notice was not sent.
#[derive(Debug, Clone, PartialEq)]
pub enum SendError {
    /// The receiving municipality has not accepted this kind (the sentence says which).
    NotAccepted(String),
    /// Not granted, an undeclared kind, an unknown municipality, too large, or the platform
    /// could not take it now.
    Refused(Error),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::NotAccepted(why) => write!(f, "not accepted: {why}"),
            SendError::Refused(e) => write!(f, "{e}"),
        }
    }
}

impl From<SendError> for Error {
    fn from(e: SendError) -> Self {
        match e {
            SendError::NotAccepted(why) => Error::conflict(why),
            SendError::Refused(e) => e,
        }
    }
}

/// Sends `payload` (serialised to JSON) as a notice of `kind` about `subject` to
/// municipality `to_lg_code`; returns its sequence there.
pub fn send<T: Serialize>(to_lg_code: &str, kind: &str, subject: Option<&str>, payload: &T) -> Result<u64, SendError> {
    let payload = serde_json::to_string(payload).map_err(|e| SendError::Refused(Error::from(e)))?;
    raw::send(to_lg_code, kind, subject, &payload).map_err(|e| match e {
        raw::SendError::NotAccepted(why) => SendError::NotAccepted(why),
        raw::SendError::Refused(e) => SendError::Refused(Error::from(e)),
    })
}

/// The code of the municipality on this platform that `address` lies in
/// (`〒060-0003 北海道札幌市中央区北1条西2丁目` → `011002`), if one matches unambiguously.
pub fn municipality_of(address: &str) -> Option<String> {
    raw::municipality_of(address)
}

/// The signature of a notice handler.
pub type Handler = fn(&Notice) -> std::result::Result<(), String>;

/// The handler modules without one export: never called (the host delivers only to modules
/// an administrator accepted a kind into), and accepting if it were.
#[doc(hidden)]
pub fn ignore(_: &Notice) -> std::result::Result<(), String> {
    Ok(())
}
