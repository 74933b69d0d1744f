//! `nukisashi:platform/notices`: sending a notice to the module another municipality
//! accepted its kind into. The sender is the requesting module at the request's
//! municipality, set here; the kind must be one the sender's manifest declares under
//! `[notices] sends`, and one the receiving municipality's administrator accepted from this
//! sending module, into a module that runs a version receiving it. The push side
//! (`notice-handler`) is `linkage::delivery`.
//!
//! A notice sent while the module handles a pushed item waits in the platform state's
//! outbox and is committed with that delivery (or not at all), so a retried delivery never
//! sends it twice.

use super::registry::check_id;
use super::wit::notices::{Host, SendError};
use super::wit::types::Error;
use super::{Capability, PlatformState};
use crate::lgcode::LgCode;
use crate::linkage::audit::{self, AuditEntry};
use crate::store::notices::Sending;

/// Notices one delivery may send (they are held in host memory until it commits).
pub const MAX_OUTBOX: usize = 64;

/// A notice sent during a delivery, with the sender's audit row, committed with it.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub notice: Sending,
    pub audit: AuditEntry,
}

fn refused(e: Error) -> SendError {
    SendError::Refused(e)
}

impl Host for PlatformState {
    async fn send(&mut self, to_lg_code: String, kind: String, subject: Option<String>, payload: String) -> Result<u64, SendError> {
        self.require(Capability::Notices).map_err(refused)?;
        if !self.manifest.notices.sends.contains(&kind) {
            return Err(refused(Error::Invalid(format!(
                "notices of kind `{}` are not declared under [notices] sends in the module's manifest",
                kind.chars().take(64).collect::<String>()
            ))));
        }
        let Some(app) = self.links.app.upgrade() else {
            return Err(refused(Error::Unavailable("this instance cannot send notices".into())));
        };
        let Some(to) = to_lg_code.parse::<LgCode>().ok().and_then(|code| app.tenants.get(&code)) else {
            return Err(refused(Error::Invalid(format!("no municipality `{}` is on this platform", to_lg_code.chars().take(16).collect::<String>()))));
        };
        if let Some(s) = &subject {
            check_id("subject", s).map_err(refused)?;
        }
        let max_payload = self.governor.limits.storage.event_payload_bytes.min(self.host_call_bytes);
        if payload.len() > max_payload {
            return Err(refused(Error::TooLarge(format!(
                "notice payloads are limited to {max_payload} bytes (the limit is [limits.storage] event_payload_bytes), this one has {}",
                payload.len()
            ))));
        }
        if serde_json::from_str::<serde_json::Value>(&payload).is_err() {
            return Err(refused(Error::Invalid("the payload must be JSON text".into())));
        }
        let from = self.municipality.lg_code.to_string();
        // Paced before anything is looked up or recorded (refusals are recorded too).
        self.governor.notices.take(&from, &self.module.id).map_err(|why| {
            self.governor.refused("notice-rate");
            refused(Error::TooLarge(why))
        })?;
        let query = format!("to={} kind={kind}", to.lg_code);
        let acceptance = self.db.notice_acceptance(to.lg_code.as_str(), &kind).await.map_err(|e| refused(super::registry::unavailable(e)))?;
        // Accepted for this kind, and from this (sending) module.
        let Some(recipient) = acceptance.filter(|a| a.senders.contains(&self.module.id)).map(|a| a.module_id) else {
            let row = AuditEntry { interface: "notices.send", query: format!("{query} refused: not accepted"), records: subject.iter().cloned().collect(), counterpart: Some(to.lg_code.to_string()) };
            if let Err(e) = audit::record(&self.db, &self.audit_context, &row).await {
                tracing::error!(error = %format!("{e:#}"), "cannot record a refused notice");
            }
            tracing::info!(from, to = %to.lg_code, kind, module = %self.module.id, "notice refused: kind not accepted from this module");
            return Err(SendError::NotAccepted(format!(
                "{}（{}）は `{}` からの種類 `{kind}` の通知を受け付けていません (municipality {} has not accepted notices of kind `{kind}` from `{}`)",
                to.name, to.lg_code, self.module.id, to.lg_code, self.module.id
            )));
        };
        // The module accepted for the kind must be running there, in a version that takes it.
        if !app.live.resolve(&recipient, &to.lg_code).is_some_and(|r| r.version.manifest.notices.receives.contains(&kind) && r.version.notice_handler.is_some()) {
            return Err(refused(Error::Unavailable(format!("the service that takes `{kind}` at {} is not available at the moment; try again later", to.lg_code))));
        }
        let notice = Sending { to_lg_code: to.lg_code.to_string(), to_module: recipient.clone(), from_lg_code: from.clone(), from_module: self.module.id.clone(), kind: kind.clone(), subject: subject.clone(), payload };
        let row = AuditEntry { interface: "notices.send", query, records: subject.into_iter().collect(), counterpart: Some(format!("{}/{recipient}", to.lg_code)) };
        if let Some(outbox) = &mut self.outbox {
            if outbox.len() >= MAX_OUTBOX {
                return Err(refused(Error::TooLarge(format!("one delivery may send at most {MAX_OUTBOX} notices"))));
            }
            outbox.push(Outgoing { notice, audit: row });
            return Ok(0);
        }
        let kept = self.governor.limits.storage.notices_kept;
        let sequence = self.db.send_notice(&notice, kept, &self.audit_context, &row).await.map_err(|e| refused(super::registry::unavailable(e)))?.map_err(|over| {
            self.governor.refused("notices-kept");
            refused(Error::TooLarge(over))
        })?;
        app.deliveries.wake();
        tracing::info!(from, to = %to.lg_code, kind, module = %self.module.id, sequence, "notice sent");
        Ok(sequence as u64)
    }

    async fn municipality_of(&mut self, address: String) -> Option<String> {
        let app = self.links.app.upgrade()?;
        let address = address_for_matching(&address);
        app.tenants
            .all()
            .into_iter()
            .filter_map(|m| {
                let full = format!("{}{}", m.prefecture, m.name);
                let matched = if address.starts_with(&full) { full.len() } else if address.starts_with(&m.name) { m.name.len() } else { return None };
                Some((matched, m.lg_code.to_string()))
            })
            .max()
            .map(|(_, code)| code)
    }
}

/// An address as written on a form, ready to be matched against municipality names: without
/// spaces, a leading postal code (`〒060-0003`, `060-0003`) or a leading `日本` / `日本国`.
fn address_for_matching(address: &str) -> String {
    let compact: String = address.chars().filter(|c| !c.is_whitespace()).collect();
    let mut rest = compact.as_str();
    loop {
        let before = rest;
        rest = rest.trim_start_matches(['〒', '-', '－', '‐', '−', 'ー']).trim_start_matches(|c: char| c.is_ascii_digit() || ('０'..='９').contains(&c));
        rest = rest.strip_prefix("日本国").or_else(|| rest.strip_prefix("日本")).unwrap_or(rest);
        if rest == before {
            return rest.to_string();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::address_for_matching;

    #[test]
    fn postal_codes_country_and_spaces_do_not_hide_the_municipality() {
        for written in ["北海道札幌市中央区北1条西2丁目", "〒060-0003 北海道札幌市中央区北1条西2丁目", "日本 北海道 札幌市中央区", "〒０６０－０００３　日本国北海道札幌市", "060-0003北海道札幌市"] {
            assert!(address_for_matching(written).starts_with("北海道札幌市"), "{written}");
        }
        assert_eq!(address_for_matching("札幌市中央区"), "札幌市中央区");
    }
}
