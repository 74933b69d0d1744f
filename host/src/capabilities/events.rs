//! `nukisashi:platform/events`: publishing to the municipality's event log. The source is
//! the publishing module, set here from [`PlatformState`]; the municipality is the
//! request's. The push side (`event-handler`) is `linkage::delivery`.

use super::registry::{check_id, unavailable};
use super::wit::events::Host;
use super::wit::types::Error;
use super::{Capability, PlatformState};

/// Longest topic, in bytes.
pub const MAX_TOPIC_BYTES: usize = 64;

impl Host for PlatformState {
    async fn publish(&mut self, topic: String, subject: Option<String>, payload: String) -> Result<u64, Error> {
        self.require(Capability::Events)?;
        if topic.is_empty() || topic.len() > MAX_TOPIC_BYTES || !topic.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return Err(Error::Invalid(format!("topics are 1–{MAX_TOPIC_BYTES} of a-z, 0-9 and `-`, not `{}`", topic.chars().take(80).collect::<String>())));
        }
        if let Some(s) = &subject {
            check_id("subject", s)?;
        }
        let storage = &self.governor.limits.storage;
        let max_payload = storage.event_payload_bytes.min(self.host_call_bytes);
        if payload.len() > max_payload {
            return Err(Error::TooLarge(format!(
                "event payloads are limited to {max_payload} bytes (the limit is [limits.storage] event_payload_bytes), this one has {}",
                payload.len()
            )));
        }
        if serde_json::from_str::<serde_json::Value>(&payload).is_err() {
            return Err(Error::Invalid("the payload must be JSON text".into()));
        }
        if self.kv_writes.is_some() {
            return Err(Error::Invalid("events cannot be published while handling a pushed change or event".into()));
        }
        let lg = self.municipality.lg_code.to_string();
        self.governor.events.take(&lg, &self.module.id).map_err(|why| {
            self.governor.refused("event-rate");
            Error::TooLarge(why)
        })?;
        let kept = self.governor.limits.storage.events_kept;
        let sequence = self.db.publish_event(&lg, &self.module.id, &topic, subject.as_deref(), &payload, kept).await.map_err(unavailable)?.map_err(|why| {
            self.governor.refused("events-kept");
            Error::TooLarge(why)
        })?;
        tracing::info!(lg_code = %lg, module = %self.module.id, topic, sequence, "event published");
        Ok(sequence as u64)
    }
}

