//! Events between this municipality's modules (capability `events`): publish what happened
//! here for other modules that subscribe to it, and receive what they publish.
//!
//! A module receives the events it lists in its manifest (`subscribes =
//! ["e-application/child-allowance-claim"]`) by exporting a handler:
//! `nukisashi_sdk::module!(routes, on_event = handler)`. Delivery is in order and exactly
//! once; the module's [`kv`](crate::kv) writes during the call are committed with it.
//! Return `Err` to be called again later with the same event.

use crate::platform::events as raw;
use crate::Result;
use serde::Serialize;

/// An event as delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub sequence: u64,
    /// The publishing module's id (set by the platform).
    pub source: String,
    pub topic: String,
    pub subject: Option<String>,
    /// JSON text.
    pub payload: String,
}

impl Event {
    /// The payload parsed into `T`.
    pub fn payload<T: serde::de::DeserializeOwned>(&self) -> std::result::Result<T, String> {
        serde_json::from_str(&self.payload).map_err(|e| format!("event {} has an unexpected payload: {e}", self.sequence))
    }
}

impl From<raw::Event> for Event {
    fn from(e: raw::Event) -> Self {
        Event { sequence: e.sequence, source: e.source, topic: e.topic, subject: e.subject, payload: e.payload }
    }
}

/// Publishes `payload` (serialised to JSON) under `topic` (a-z, 0-9, `-`), about `subject`
/// (e.g. a 宛名番号); returns the event's sequence.
pub fn publish<T: Serialize>(topic: &str, subject: Option<&str>, payload: &T) -> Result<u64> {
    let payload = serde_json::to_string(payload)?;
    Ok(raw::publish(topic, subject, &payload)?)
}

/// The signature of an event handler.
pub type Handler = fn(&Event) -> std::result::Result<(), String>;

/// The handler modules without one export: accept and ignore.
#[doc(hidden)]
pub fn ignore(_: &Event) -> std::result::Result<(), String> {
    Ok(())
}
