//! Calls into the module a municipality chose to provide a standard interface (`receipts`,
//! a vendor's `resident-registry`). The consumer's import is answered here by running the
//! provider's export in a fresh instance of its own: the provider's grants, config and kv,
//! the same municipality and caller, and nine tenths of the time the consumer has left, in
//! an instance of the governor's `linked_instances`. What comes back is checked (about what
//! was asked, extension items as the provider's manifest declares them, within what the
//! request may still read), put on record for both sides in one transaction — a read by
//! the consumer, served by the provider — and only then handed over. Anything that goes
//! wrong is `unavailable` to the consumer, which does not learn which vendor answers; the
//! provider's vendor sees the failure in its module log.

use super::wit::types::{Error, ExtensionItem, ExtensionValue};
use super::PlatformState;
use crate::app::App;
use crate::catalog::manifest::{ExtensionType, Manifest, ProvidedInterface};
use crate::linkage::audit::{self, AuditBuffer, AuditContext, AuditEntry};
use crate::plugins::live::{Provider, Routed};
use crate::runtime::{ProvidedAnswer, ProvidedCall};
use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Instant;

/// How a module's calls reach other modules.
#[derive(Default, Clone)]
pub struct Links {
    /// The host, to call providers with (none in benchmarks and health checks: calls into a
    /// provider are then `unavailable`).
    pub app: Weak<App>,
    /// Interfaces being answered further up this call chain: a provider that (through
    /// others) calls the interface it is answering is refused instead of looping.
    pub chain: Vec<ProvidedInterface>,
    /// The deadline of the request this instance works for; an instance answering for
    /// another module ends by it too.
    pub deadline: Option<Instant>,
    /// Who answered each interface the first time this request called it: every later call
    /// of the request goes to the same provider and version (or the platform), even if the
    /// administrator switches meanwhile, so one request never mixes two vendors' answers.
    pub pinned: BTreeMap<ProvidedInterface, Provider>,
}

/// Who answers a call: the platform's own data, or a module (with its answer).
pub(super) enum Answered {
    ByPlatform,
    ByModule(ProvidedAnswer),
}

fn unavailable(interface: ProvidedInterface, why: &str) -> Error {
    Error::Unavailable(format!("{} ({}) is unavailable: {why}", interface.name(), interface.label()))
}

impl PlatformState {
    /// Answers `call` of `interface` through the module the municipality chose, or says the
    /// platform answers itself (`ByPlatform`: no module chosen for an interface the
    /// platform has data for). `query` and `records` describe the read for the audit
    /// trail; `records` is given the answer and returns the 宛名番号 it hands over.
    pub(super) async fn call_provider(
        &mut self,
        interface: ProvidedInterface,
        call: ProvidedCall<'_>,
        query: String,
        records: impl Fn(&ProvidedAnswer) -> Vec<String>,
        audit_name: &'static str,
        answers_the_question: impl Fn(&ProvidedAnswer) -> Result<(), Error>,
    ) -> Result<Answered, Error> {
        let Some(app) = self.links.app.upgrade() else {
            // Nothing here can be chosen as a provider (a benchmark's or health check's
            // instance): the platform answers what it has.
            return if interface.platform_has_default() { Ok(Answered::ByPlatform) } else { Err(unavailable(interface, "this instance cannot call other modules")) };
        };
        let resolved = match self.links.pinned.get(&interface) {
            Some(pinned) => pinned.clone(),
            None => {
                let now = app.live.provider(&self.municipality.lg_code, interface);
                self.links.pinned.insert(interface, now.clone());
                now
            }
        };
        let (module, routed) = match resolved {
            Provider::NoneChosen if interface.platform_has_default() => return Ok(Answered::ByPlatform),
            Provider::NoneChosen => return Err(unavailable(interface, "the municipality has not chosen a module to provide it")),
            Provider::Chosen(module, None) => {
                tracing::warn!(lg_code = %self.municipality.lg_code, interface = interface.name(), module, "the chosen provider is not routed here (suspended or quarantined)");
                return Err(unavailable(interface, "the module that provides it is not available at the moment"));
            }
            Provider::Chosen(module, Some(routed)) => (module, routed),
        };
        if !can_provide(&routed, interface) {
            // Rolled back (or otherwise moved) to a version that does not declare it.
            tracing::warn!(lg_code = %self.municipality.lg_code, interface = interface.name(), module, version = %routed.version.identity.version, "the chosen provider's version does not provide it");
            return Err(unavailable(interface, "the module chosen for it runs a version that does not provide it; the administrator chooses another"));
        }
        if self.links.chain.contains(&interface) {
            return Err(unavailable(interface, "it was called again while answering it (a cycle between providers)"));
        }
        // The provider gets nine tenths of the time the consumer has left, so the consumer
        // still has time to answer (and say what failed) when the provider runs out.
        let now = Instant::now();
        let consumer_deadline = self.links.deadline.unwrap_or_else(|| now + app.runtime.limits().deadline());
        let deadline = now + consumer_deadline.saturating_duration_since(now) * 9 / 10;
        let _instance = match app.governor.admission.admit_linked(&self.municipality.lg_code, tokio::time::Instant::from_std(deadline)).await {
            Ok(permit) => permit,
            Err(limit) => {
                app.governor.refused("linked-instances");
                return Err(unavailable(interface, &format!("no instance was free for the module that provides it in time (the limit is {limit})")));
            }
        };
        let provider = &routed.version.identity;
        let provider_context = Arc::new(AuditContext {
            lg_code: self.audit_context.lg_code.clone(),
            module_id: provider.id.clone(),
            module_version: provider.version.clone(),
            request_id: self.request_id.clone(),
            caller_subject: self.audit_context.caller_subject.clone(),
            caller_role: self.audit_context.caller_role.clone(),
        });
        let mut platform = app.platform_state(self.municipality.clone(), &routed, self.caller.clone(), provider_context.clone(), AuditBuffer::default()).await.map_err(|e| {
            tracing::error!(error = %format!("{e:#}"), "cannot prepare a provider's instance");
            unavailable(interface, "the platform could not prepare the call")
        })?;
        platform.links = Links {
            app: self.links.app.clone(),
            chain: [self.links.chain.as_slice(), &[interface]].concat(),
            deadline: Some(deadline),
            pinned: self.links.pinned.clone(),
        };
        let started = Instant::now();
        let outcome = app.runtime.provide(&routed.version, platform, call).await;
        let source = crate::telemetry::module_logs::Source { module: &provider.id, version: &provider.version, lg_code: self.municipality.lg_code.as_str(), request_id: &self.request_id };
        let answer = match outcome {
            Ok(Ok(answer)) => {
                let (bytes, records_left) = (answer_bytes(&answer), self.governor.limits.audit_records.saturating_sub(self.audit.weight() + 1));
                let refused = check_extensions(&routed.version.manifest, interface, &answer)
                    .map_err(|why| (why, unavailable(interface, "the module that provides it answered with items that do not match its manifest")))
                    .and_then(|()| answers_the_question(&answer).map_err(|e| (format!("{e:?}"), e)))
                    .and_then(|()| {
                        if bytes > self.host_call_bytes || records(&answer).len() > records_left {
                            Err((
                                format!("answered {bytes} bytes in {} records", records(&answer).len()),
                                unavailable(interface, &format!("the module that provides it answered more than one call may carry ({} bytes, and the records this request may still read: [limits] host_call_bytes, audit_records)", self.host_call_bytes)),
                            ))
                        } else {
                            Ok(())
                        }
                    });
                if let Err((why, error)) = refused {
                    app.module_logs.request(source, "CALL", audit_name, 502, started.elapsed(), Some(why.clone()));
                    tracing::warn!(module, interface = interface.name(), why, "a provider's answer was refused");
                    return Err(error);
                }
                answer
            }
            Ok(Err(refusal)) => {
                // The provider's own words go to its vendor's log; the consumer gets the
                // platform's (they could name the vendor, or carry data past the audit).
                app.module_logs.request(source, "CALL", audit_name, 200, started.elapsed(), Some(format!("refused: {refusal:?}")));
                return Err(match refusal {
                    Error::Invalid(_) => Error::Invalid(format!("{} ({}): the module that provides it refused the arguments as invalid", interface.name(), interface.label())),
                    Error::TooLarge(_) => Error::TooLarge(format!("{} ({}): the module that provides it refused: the question is too large", interface.name(), interface.label())),
                    Error::NotGranted(_) | Error::Unavailable(_) => unavailable(interface, "the module that provides it could not answer"),
                });
            }
            Err(e) => {
                app.module_logs.request(source, "CALL", audit_name, 500, started.elapsed(), Some(e.to_string()));
                tracing::warn!(module, interface = interface.name(), error = %e, detail = ?e, "a provider failed");
                return Err(unavailable(interface, &format!("the module that provides it failed: {}", brief(&e))));
            }
        };
        let handed = records(&answer);
        app.module_logs.request(source, "CALL", audit_name, 200, started.elapsed(), None);
        let consumer_row = AuditEntry { interface: audit_name, query: query.clone(), records: handed.clone(), counterpart: Some(format!("{}@{}", provider.id, provider.version)) };
        let provider_row = AuditEntry { interface: audit_name, query: format!("served: {query}"), records: handed, counterpart: Some(format!("{}@{}", self.module.id, self.module.version)) };
        if let Err(e) = audit::record_all(&self.db, &[(&*self.audit_context, std::slice::from_ref(&consumer_row)), (&*provider_context, std::slice::from_ref(&provider_row))]).await {
            tracing::error!(error = %format!("{e:#}"), interface = audit_name, "audit trail write failed; the provider's answer was withheld");
            return Err(Error::Unavailable("the platform cannot record this read in the audit trail right now, so it returns nothing".into()));
        }
        self.audit.push(consumer_row);
        Ok(Answered::ByModule(answer))
    }
}

/// What failed, in words a consumer can show (no backtraces, no module names).
fn brief(e: &crate::runtime::InvokeError) -> String {
    use crate::runtime::InvokeError as E;
    match e {
        E::Deadline(_) => "it did not answer within the request's deadline".into(),
        E::Memory(_) => "it ran out of memory".into(),
        E::StackOverflow | E::Panic(_) | E::Trap(_) => "it stopped with an error".into(),
        _ => "it could not be run".into(),
    }
}

/// Longest text an extension item may carry, in bytes: items are short additions to a
/// standard record (a code, a date, a note), not a channel for whole records.
pub const MAX_EXTENSION_TEXT: usize = 1024;

/// The bytes of text in an answer (what the consumer's memory must take).
fn answer_bytes(answer: &ProvidedAnswer) -> usize {
    use crate::capabilities::bindings::exports::nukisashi::platform::resident_registry::Resident;
    fn items(items: &[ExtensionItem]) -> usize {
        items.iter().map(|i| i.name.len() + 16 + if let ExtensionValue::Text(t) | ExtensionValue::Date(t) = &i.value { t.len() } else { 0 }).sum()
    }
    fn resident(r: &Resident) -> usize {
        [&r.addressee_number, &r.integrated_addressee_number, &r.household_number, &r.name, &r.name_kana, &r.birth_date, &r.relationship, &r.postal_code, &r.address, &r.resident_since]
            .iter()
            .map(|s| s.len())
            .sum::<usize>()
            + r.status_changed_on.as_ref().map_or(0, String::len)
            + r.status_reason.as_ref().map_or(0, String::len)
            + 16
    }
    match answer {
        ProvidedAnswer::Payments(p) => p.iter().map(|p| p.addressee_number.len() + p.tax_item.len() + p.paid_on.len() + 32 + items(&p.extensions)).sum(),
        ProvidedAnswer::Arrears(a) => a.iter().map(|a| a.addressee_number.len() + a.tax_item.len() + a.due_on.len() + 32 + items(&a.extensions)).sum(),
        ProvidedAnswer::Resident(r) => r.as_ref().map_or(0, resident),
        ProvidedAnswer::Residents(rs) => rs.iter().map(resident).sum(),
    }
}

/// Every extension item in `answer` is one the provider's manifest declares for
/// `interface`, with a value of the declared type; otherwise why not.
fn check_extensions(manifest: &Manifest, interface: ProvidedInterface, answer: &ProvidedAnswer) -> Result<(), String> {
    let declared = manifest.extension_items(interface);
    let items: Vec<&ExtensionItem> = match answer {
        ProvidedAnswer::Payments(p) => p.iter().flat_map(|p| &p.extensions).collect(),
        ProvidedAnswer::Arrears(a) => a.iter().flat_map(|a| &a.extensions).collect(),
        ProvidedAnswer::Resident(_) | ProvidedAnswer::Residents(_) => Vec::new(),
    };
    for item in items {
        let Some(spec) = declared.iter().find(|d| d.name == item.name) else {
            return Err(format!("extension item `{}` is not declared under [provides.{}] extension_items", item.name, interface.name()));
        };
        let fits = match (&item.value, spec.value_type) {
            (ExtensionValue::Text(t), ExtensionType::Text) => t.len() <= MAX_EXTENSION_TEXT,
            (ExtensionValue::Integer(_), ExtensionType::Integer) | (ExtensionValue::Boolean(_), ExtensionType::Boolean) => true,
            (ExtensionValue::Date(d), ExtensionType::Date) => chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok(),
            _ => false,
        };
        if !fits {
            return Err(format!("extension item `{}` must be a `{}` value as declared (text at most {MAX_EXTENSION_TEXT} bytes)", item.name, spec.value_type.name()));
        }
    }
    Ok(())
}

/// Whether `routed` provides `interface`: its manifest declares it (and so, checked at
/// load, its component exports it).
fn can_provide(routed: &Routed, interface: ProvidedInterface) -> bool {
    routed.version.manifest.provides.contains_key(&interface)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::bindings::exports::nukisashi::platform::receipts::Arrear;

    fn answer(value: ExtensionValue) -> ProvidedAnswer {
        let item = ExtensionItem { name: "督促状発送日".into(), value };
        ProvidedAnswer::Arrears(vec![Arrear {
            addressee_number: "1".into(),
            tax_item: "固定資産税".into(),
            fiscal_year: 2026,
            installment: 1,
            due_on: "2026-07-31".into(),
            amount_charged: 1,
            amount_unpaid: 1,
            extensions: vec![item],
        }])
    }

    #[test]
    fn extension_items_must_be_declared_with_their_type() {
        let manifest = Manifest::parse(
            "id = \"r\"\nversion = \"1.0.0\"\nvendor = \"v\"\ncategory = \"収納\"\nname = { ja = \"r\", en = \"r\" }\ndescription = \"\"\nwit_major = 1\n\
             routes = [{ path = \"/\", auth = \"public\" }]\n[provides.receipts]\nextension_items = [{ name = \"督促状発送日\", type = \"date\", description = \"\" }]\n"
                .as_bytes(),
        )
        .unwrap();
        let check = |value| check_extensions(&manifest, ProvidedInterface::Receipts, &answer(value));
        assert_eq!(check(ExtensionValue::Date("2026-08-20".into())), Ok(()));
        assert!(check(ExtensionValue::Date("2026-13-01".into())).unwrap_err().contains("`date`"));
        assert!(check(ExtensionValue::Text("2026-08-20".into())).unwrap_err().contains("`date`"));
        assert!(check_extensions(&manifest, ProvidedInterface::ResidentRegistry, &answer(ExtensionValue::Date("2026-08-20".into()))).unwrap_err().contains("not declared"));
        let texts = Manifest { provides: [(ProvidedInterface::Receipts, crate::catalog::manifest::Provision { extension_items: vec![crate::catalog::manifest::ExtensionItemSpec { name: "督促状発送日".into(), value_type: ExtensionType::Text, description: String::new() }] })].into(), ..manifest };
        assert_eq!(check_extensions(&texts, ProvidedInterface::Receipts, &answer(ExtensionValue::Text("a".repeat(MAX_EXTENSION_TEXT)))), Ok(()));
        assert!(check_extensions(&texts, ProvidedInterface::Receipts, &answer(ExtensionValue::Text("a".repeat(MAX_EXTENSION_TEXT + 1)))).is_err(), "text past the limit");
    }
}
