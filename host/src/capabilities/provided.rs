//! Calls into the module a municipality chose to provide a standard interface (`receipts`,
//! a vendor's `resident-registry`). The consumer's import is answered here by running the
//! provider's export in a fresh instance of its own: the provider's grants, config and kv,
//! the same municipality and caller, and nine tenths of the time the consumer has left, in
//! an instance of the governor's `linked_instances`. What comes back is checked (extension items as the
//! provider's manifest declares them), put on record for both sides in one transaction —
//! a read by the consumer, served by the provider — and only then handed over. Anything
//! that goes wrong is `unavailable` to the consumer, which does not learn which vendor
//! answers; the provider's vendor sees the failure in its module log.

use super::wit::types::{Error, ExtensionItem, ExtensionValue};
use super::PlatformState;
use crate::app::App;
use crate::catalog::manifest::{ExtensionType, Manifest, ProvidedInterface};
use crate::linkage::audit::{self, AuditBuffer, AuditContext, AuditEntry};
use crate::plugins::live::{Provider, Routed};
use crate::runtime::{ProvidedAnswer, ProvidedCall};
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
        let (module, routed) = match app.live.provider(&self.municipality.lg_code, interface) {
            Provider::NoneChosen if interface.platform_has_default() => return Ok(Answered::ByPlatform),
            Provider::NoneChosen => return Err(unavailable(interface, "the municipality has not chosen a module to provide it")),
            Provider::Chosen(module, None) => {
                tracing::warn!(lg_code = %self.municipality.lg_code, interface = interface.name(), module, "the chosen provider is not routed here (suspended or quarantined)");
                return Err(unavailable(interface, "the module that provides it is not available at the moment"));
            }
            Provider::Chosen(module, Some(routed)) => (module, routed),
        };
        if self.links.chain.contains(&interface) {
            return Err(unavailable(interface, "it was called again while answering it (a cycle between providers)"));
        }
        // The provider gets nine tenths of the time the consumer has left, so the consumer
        // still has time to answer (and say what failed) when the provider runs out.
        let now = Instant::now();
        let consumer_deadline = self.links.deadline.unwrap_or_else(|| now + app.runtime.limits().deadline());
        let deadline = now + consumer_deadline.saturating_duration_since(now) * 9 / 10;
        let Some(_instance) = app.governor.admission.admit_linked(tokio::time::Instant::from_std(deadline)).await else {
            app.governor.refused("linked-instances");
            return Err(unavailable(interface, "no instance was free for the module that provides it before this request's deadline (the limit is [limits.admission] linked_instances)"));
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
        platform.links = Links { app: self.links.app.clone(), chain: [self.links.chain.as_slice(), &[interface]].concat(), deadline: Some(deadline) };
        let started = Instant::now();
        let outcome = app.runtime.provide(&routed.version, platform, call).await;
        let source = crate::telemetry::module_logs::Source { module: &provider.id, version: &provider.version, lg_code: self.municipality.lg_code.as_str(), request_id: &self.request_id };
        let answer = match outcome {
            Ok(Ok(answer)) => {
                let refused = check_extensions(&routed.version.manifest, interface, &answer)
                    .map_err(|why| (why, unavailable(interface, "the module that provides it answered with items it does not declare")))
                    .and_then(|()| answers_the_question(&answer).map_err(|e| (format!("{e:?}"), e)));
                if let Err((why, error)) = refused {
                    app.module_logs.request(source, "CALL", audit_name, 502, started.elapsed(), Some(why.clone()));
                    tracing::warn!(module, interface = interface.name(), why, "a provider's answer was refused");
                    return Err(error);
                }
                answer
            }
            Ok(Err(refusal)) => {
                app.module_logs.request(source, "CALL", audit_name, 200, started.elapsed(), Some(format!("refused: {refusal:?}")));
                return Err(refusal);
            }
            Err(e) => {
                app.module_logs.request(source, "CALL", audit_name, 500, started.elapsed(), Some(e.to_string()));
                tracing::warn!(module, interface = interface.name(), error = %e, detail = ?e, "a provider failed");
                return Err(unavailable(interface, &format!("the module that provides it failed: {}", brief(&e))));
            }
        };
        let handed = records(&answer);
        // A provider's answer counts against what one request may read, like the platform's.
        let limit = self.governor.limits.audit_records;
        if self.audit.weight() + 1 + handed.len() > limit {
            self.governor.refused("audit-records");
            app.module_logs.request(source, "CALL", audit_name, 502, started.elapsed(), Some(format!("answered {} records", handed.len())));
            return Err(Error::TooLarge(format!(
                "the answer has {} records, more than this request may still read (the limit is [limits] audit_records: {limit}); ask for less",
                handed.len()
            )));
        }
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
            (ExtensionValue::Text(_), ExtensionType::Text) | (ExtensionValue::Integer(_), ExtensionType::Integer) | (ExtensionValue::Boolean(_), ExtensionType::Boolean) => true,
            (ExtensionValue::Date(d), ExtensionType::Date) => chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok(),
            _ => false,
        };
        if !fits {
            return Err(format!("extension item `{}` must be a {:?} value as declared", item.name, spec.value_type).to_lowercase());
        }
    }
    Ok(())
}

/// Whether `routed` may be chosen to provide `interface`: its manifest declares it.
pub fn can_provide(routed: &Routed, interface: ProvidedInterface) -> bool {
    routed.version.manifest.provides.contains_key(&interface)
}
