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
        let municipalities: Vec<(String, String, String)> = app.tenants.all().iter().map(|m| (m.lg_code.to_string(), m.prefecture.clone(), m.name.clone())).collect();
        municipality_in(&address, &municipalities)
    }
}

/// The letters of a name or address that matter for matching: kanji (with 々 and ヶ) and
/// kana. Digits, Latin letters, spaces (zero-width ones too), dashes, postal codes and labels
/// such as `住所：` are written in too many ways to compare.
fn letters(text: &str) -> String {
    text.chars()
        .filter(|c| matches!(c, '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}' | '\u{3005}' | '\u{3040}'..='\u{30FF}'))
        .collect()
}

/// The code of the municipality `address` lies in, among `municipalities` (code, prefecture,
/// name): the one whose prefecture and name, or name alone, appears first in the address
/// (the longer at the same place: `北海道札幌市` over `北海道`'s cities, `札幌市` before the ward
/// name `中央区` that follows it). None when nothing matches, or when two municipalities
/// match equally well (`府中市` alone is in 東京都 and in 広島県).
fn municipality_in(address: &str, municipalities: &[(String, String, String)]) -> Option<String> {
    let address = letters(address);
    let mut best: Option<(usize, std::cmp::Reverse<usize>, &str)> = None;
    let mut tied = false;
    for (code, prefecture, name) in municipalities {
        let (full, name) = (letters(&format!("{prefecture}{name}")), letters(name));
        let found = [full, name].into_iter().filter(|n| !n.is_empty()).filter_map(|n| address.find(&n).map(|at| (at, std::cmp::Reverse(n.len())))).min();
        let Some((at, length)) = found else { continue };
        match best {
            Some((b_at, b_len, b_code)) if (at, length) == (b_at, b_len) && b_code != code => tied = true,
            Some((b_at, b_len, _)) if (at, length) >= (b_at, b_len) => {}
            _ => {
                best = Some((at, length, code));
                tied = false;
            }
        }
    }
    if tied { None } else { best.map(|(_, _, code)| code.to_string()) }
}

#[cfg(test)]
mod tests {
    use super::municipality_in;

    fn registered() -> Vec<(String, String, String)> {
        [("011002", "北海道", "札幌市"), ("131016", "東京都", "千代田区"), ("131024", "東京都", "中央区"), ("132063", "東京都", "府中市"), ("342076", "広島県", "府中市")]
            .iter()
            .map(|(c, p, n)| (c.to_string(), p.to_string(), n.to_string()))
            .collect()
    }

    #[test]
    fn the_way_an_address_is_written_does_not_hide_the_municipality() {
        let m = registered();
        for written in [
            "北海道札幌市中央区北1条西2丁目",
            "〒060-0003 北海道札幌市中央区北1条西2丁目",
            "〒060\u{2013}0003 北海道札幌市中央区",
            "北海道札\u{200b}幌市中央区",
            "住所：北海道札幌市中央区",
            "日本 北海道 札幌市中央区",
            "〒０６０－０００３　日本国北海道札幌市",
            "札幌市中央区北1条西2丁目",
        ] {
            assert_eq!(municipality_in(written, &m).as_deref(), Some("011002"), "{written}");
        }
        assert_eq!(municipality_in("東京都中央区築地1-1", &m).as_deref(), Some("131024"));
        assert_eq!(municipality_in("東京都府中市宮西町2-24", &m).as_deref(), Some("132063"));
        assert_eq!(municipality_in("府中市宮西町2-24", &m), None, "two municipalities are called 府中市");
        assert_eq!(municipality_in("東京都港区芝公園1-5-25", &m), None);
    }
}
