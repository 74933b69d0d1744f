//! Running module versions: the linker every version is pre-linked against, and one
//! request's trip through a fresh instance (`invoke`), with limits and error classification.

pub mod limits;
pub mod state;

use crate::capabilities::{self, PlatformState};
use crate::catalog::manifest::Manifest;
use crate::engine::{Compiler, build_engine, start_epoch_ticker};
use crate::plugins::LoadedVersion;
use crate::plugins::load::{LoadError, load};
use crate::settings::{Limits, Settings};
use anyhow::Result;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use limits::StoreLimiter;
use state::RequestState;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;
use wasmtime::component::Linker;
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};

/// Extra time the host waits past the deadline for a module blocked in a host call before
/// abandoning the instance.
const DEADLINE_GRACE: Duration = Duration::from_millis(250);

/// Why a request into a module did not produce the module's response.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("the module did not finish within its deadline of {0} ms (the limit is [limits] deadline_ms)")]
    Deadline(u64),
    #[error("the module tried to use more than its memory limit of {0} bytes (the limit is [limits] memory_bytes, all its memories together)")]
    Memory(u64),
    #[error("the module overflowed its call stack (runaway recursion)")]
    StackOverflow,
    #[error("the module panicked")]
    Panic(String),
    #[error("the module trapped: {0}")]
    Trap(String),
    #[error("the module's response body exceeded the limit of {0} bytes (the limit is [limits] response_body_bytes)")]
    ResponseTooLarge(usize),
    #[error("the module ended without sending a response")]
    NoResponse,
    #[error("the module answered with an error: {0}")]
    ModuleError(String),
    #[error("the host could not run the module: {0}")]
    Host(String),
    #[error("the module held more than its limit of {0} host resources at once: headers, bodies, streams (the limit is [limits] resources)")]
    Resources(usize),
    /// The pooling allocator had no slot (the governor admits no more requests than it
    /// has, so this means its counts and the pool disagree).
    #[error("no instance slot was free: {0}")]
    NoSlot(String),
}

/// What the host learned about a request's instance once it ended.
struct Ended {
    memory_limit_hit: bool,
    stderr: String,
}

impl Ended {
    /// Reads the outcome from the store, and records its peak memory for metering.
    fn of(store: &Store<RequestState>) -> Self {
        let data = store.data();
        data.platform.peak_memory.store(data.limiter.peak_memory_bytes, std::sync::atomic::Ordering::Relaxed);
        Ended { memory_limit_hit: data.limiter.memory_limit_hit, stderr: data.stderr_text() }
    }
}

pub struct Runtime {
    compiler: Compiler,
    linker: Linker<RequestState>,
    limits: Limits,
}

impl Runtime {
    pub fn new(settings: &Settings) -> Result<Self> {
        let engine = build_engine(settings)?;
        start_epoch_ticker(&engine);
        let compiler = Compiler::new(engine.clone(), &settings.artifact_dir())?;
        let mut linker = Linker::<RequestState>::new(&engine);
        // WASI with no authority (no files, no environment, every socket address denied)
        // and wasi:http whose outgoing handler refuses every request: what mainstream
        // toolchains import links, and grants nothing.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        capabilities::add_to_linker(&mut linker, |state: &mut RequestState| &mut state.platform)?;
        Ok(Self { compiler, linker, limits: settings.limits.clone() })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Compiles (or loads from cache), checks and pre-links a module version.
    pub async fn load(&self, manifest: Arc<Manifest>, bytes: Vec<u8>) -> Result<LoadedVersion, LoadError> {
        let (loaded, cached) = load(&self.compiler, &self.linker, manifest, bytes).await?;
        let id = &loaded.identity;
        tracing::info!(module = %id.id, version = %id.version, digest = %id.digest, cached, "module version loaded");
        Ok(loaded)
    }

    /// A fresh store for one request: limiter, and an epoch deadline that yields to other
    /// requests at every tick and interrupts the module once the deadline has passed.
    fn new_store(&self, platform: PlatformState) -> Store<RequestState> {
        // Within the caller's deadline when this instance answers for another module.
        let own = Instant::now() + self.limits.deadline();
        let deadline = platform.links.deadline.map_or(own, |caller| caller.min(own));
        let mut store = Store::new(self.compiler.engine(), RequestState::new(platform, StoreLimiter::new(&self.limits), deadline, &self.limits));
        store.limiter(|state| &mut state.limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| {
            if Instant::now() >= ctx.data().deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                // Give other requests on this thread a turn, then keep going.
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store
    }

    /// Instantiates a version in a fresh store and drops it, calling nothing: the fixed
    /// cost of a request before the module runs (for benchmarks).
    pub async fn instantiate_only(&self, version: &LoadedVersion, platform: PlatformState) -> Result<()> {
        let mut store = self.new_store(platform);
        version.pre.instantiate_async(&mut store).await?;
        Ok(())
    }

    /// Instantiates a version once in a throwaway store: proves it starts within the
    /// limits before anyone can route to it.
    pub async fn health_check(&self, version: &LoadedVersion, platform: PlatformState) -> Result<(), InvokeError> {
        let mut store = self.new_store(platform);
        let result = version.pre.instantiate_async(&mut store).await;
        let ended = Ended::of(&store);
        result.map(|_| ()).map_err(|e| classify(e, &ended, &self.limits))
    }

    /// Serves one request on `version` in a fresh instance and returns the module's full
    /// response. The request body streams into the module; the response body is collected
    /// (up to the response limit) so a module that fails half-way cannot send half a page.
    pub async fn invoke<B>(
        &self,
        version: &Arc<LoadedVersion>,
        platform: PlatformState,
        request: http::Request<B>,
    ) -> Result<http::Response<Bytes>, InvokeError>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let limits = &self.limits;
        let mut store = self.new_store(platform);

        let request_body_limit = limits.request_body_bytes;
        let request = request.map(move |body| {
            Limited::new(body, request_body_limit).map_err(move |e: Box<dyn std::error::Error + Send + Sync>| {
                if e.is::<http_body_util::LengthLimitError>() {
                    ErrorCode::HttpRequestBodySize(Some(request_body_limit as u64))
                } else {
                    ErrorCode::InternalError(Some(e.to_string()))
                }
            })
        });
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let (incoming, outparam) = {
            let mut http = store.data_mut().http();
            let incoming = http.new_incoming_request(Scheme::Http, request).map_err(|e| InvokeError::Host(format!("{e:#}")))?;
            let outparam = http.new_response_outparam(sender).map_err(|e| InvokeError::Host(format!("{e:#}")))?;
            (incoming, outparam)
        };

        let pre = version.pre.clone();
        // The instance and the host's reading of its response run concurrently in this one
        // task (no cross-thread hand-offs): the module may keep writing its body after it
        // sent the response head. The store, with every resource in it, is dropped when
        // the instance future ends, which ends the response channels too.
        let instance = async move {
            let result = async {
                let module = pre.instantiate_async(&mut store).await?;
                module.wasi_http_incoming_handler().call_handle(&mut store, incoming, outparam).await
            }
            .await;
            let ended = Ended::of(&store);
            (result, ended)
        };
        let response_limit = limits.response_body_bytes;
        let response = async move {
            let (parts, body) = match receiver.await {
                Ok(Ok(response)) => response.into_parts(),
                Ok(Err(code)) => return Err(InvokeError::ModuleError(format!("{code:?}"))),
                // No response: the instance ended without one; its outcome says why.
                Err(_) => return Ok(None),
            };
            match Limited::new(body, response_limit).collect().await {
                Ok(collected) => Ok(Some(http::Response::from_parts(parts, collected.to_bytes()))),
                Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(InvokeError::ResponseTooLarge(response_limit)),
                // The body broke off: the instance trapped mid-body; its outcome says why.
                Err(_) => Ok(None),
            }
        };

        let deadline_ms = limits.deadline_ms;
        let both = async move {
            let mut instance = std::pin::pin!(instance.in_current_span());
            let mut response = std::pin::pin!(response);
            let (response, (result, ended)) = tokio::select! {
                outcome = &mut instance => (response.await?, outcome),
                // Dropping the instance future (on an error here) stops the module.
                read = &mut response => { let read = read?; (read, instance.await) }
            };
            match (result, response) {
                (Ok(()), Some(response)) => Ok(response),
                (Ok(()), None) => Err(InvokeError::NoResponse),
                (Err(error), _) => Err(classify(error, &ended, limits)),
            }
        };
        match tokio::time::timeout(limits.deadline() + DEADLINE_GRACE, both).await {
            Ok(result) => result,
            Err(_elapsed) => Err(InvokeError::Deadline(deadline_ms)),
        }
    }
}

/// What is pushed to a module: a change of the municipality's data, another module's
/// event, or a notice from another municipality.
pub enum Delivery<'a> {
    Change(&'a crate::capabilities::bindings::nukisashi::platform::changes::Change),
    Event(&'a crate::capabilities::bindings::nukisashi::platform::events::Event),
    Notice(&'a crate::capabilities::bindings::nukisashi::platform::notices::Notice),
}

/// What a delivery's handler left to commit with it: its kv writes, and the notices it sent.
#[derive(Default)]
pub struct Handled {
    pub kv_writes: capabilities::KvWrites,
    pub notices: Vec<capabilities::OutgoingNotice>,
}

impl Runtime {
    /// Calls the version's `change-handler.on-change` or `event-handler.on-event` in a fresh
    /// instance. `Ok(Ok(writes))`: handled, and these are the module's kv writes to commit
    /// with the delivery record; `Ok(Err(reason))`: the module asked to be called again later.
    pub async fn deliver(
        &self,
        version: &LoadedVersion,
        mut platform: PlatformState,
        item: Delivery<'_>,
    ) -> Result<Result<Handled, String>, InvokeError> {
        let missing = || InvokeError::Host("this version exports no handler for it".into());
        match &item {
            Delivery::Change(_) if version.change_handler.is_none() => return Err(missing()),
            Delivery::Event(_) if version.event_handler.is_none() => return Err(missing()),
            Delivery::Notice(_) if version.notice_handler.is_none() => return Err(missing()),
            _ => {}
        }
        platform.kv_writes = Some(capabilities::KvWrites::default());
        platform.outbox = Some(Vec::new());
        let mut store = self.new_store(platform);
        let call = async {
            let result = async {
                let instance = version.pre.instance_pre().instantiate_async(&mut store).await?;
                match item {
                    Delivery::Change(change) => {
                        let handler = version.change_handler.as_ref().expect("checked").load(&mut store, &instance)?;
                        handler.call_on_change(&mut store, change).await
                    }
                    Delivery::Event(event) => {
                        let handler = version.event_handler.as_ref().expect("checked").load(&mut store, &instance)?;
                        handler.call_on_event(&mut store, event).await
                    }
                    Delivery::Notice(notice) => {
                        let handler = version.notice_handler.as_ref().expect("checked").load(&mut store, &instance)?;
                        handler.call_on_notice(&mut store, notice).await
                    }
                }
            }
            .await;
            let ended = Ended::of(&store);
            match result {
                Ok(Ok(())) => {
                    let platform = &mut store.data_mut().platform;
                    Ok(Ok(Handled { kv_writes: platform.kv_writes.take().unwrap_or_default(), notices: platform.outbox.take().unwrap_or_default() }))
                }
                Ok(Err(reason)) => Ok(Err(reason)),
                Err(error) => Err(classify(error, &ended, &self.limits)),
            }
        };
        match tokio::time::timeout(self.limits.deadline() + DEADLINE_GRACE, call).await {
            Ok(result) => result,
            Err(_elapsed) => Err(InvokeError::Deadline(self.limits.deadline_ms)),
        }
    }
}

/// A call into an interface a module provides.
#[derive(Clone, Copy)]
pub enum ProvidedCall<'a> {
    Payments(&'a str, Option<u16>),
    Arrears(&'a str),
    ResidentGet(&'a str),
    ResidentHousehold(&'a str),
    ResidentSearch(&'a str, Option<&'a str>, u32),
}

/// What the providing module answered, in the shapes of its exports.
pub enum ProvidedAnswer {
    Payments(Vec<provided::receipts::Payment>),
    Arrears(Vec<provided::receipts::Arrear>),
    Resident(Option<provided::resident_registry::Resident>),
    Residents(Vec<provided::resident_registry::Resident>),
}

use crate::capabilities::bindings::exports::nukisashi::platform as provided;
use crate::capabilities::bindings::nukisashi::platform::types::Error as PlatformError;

impl Runtime {
    /// Calls an interface `version` provides, in a fresh instance with `platform` (the
    /// provider's own grants and config, and the consumer's deadline in `links`).
    /// `Ok(Err(e))`: the provider refused the call itself.
    pub async fn provide(&self, version: &LoadedVersion, platform: PlatformState, call: ProvidedCall<'_>) -> Result<Result<ProvidedAnswer, PlatformError>, InvokeError> {
        let missing = || InvokeError::Host("this version does not export the interface".into());
        let receipts = matches!(call, ProvidedCall::Payments(..) | ProvidedCall::Arrears(_));
        if (receipts && version.receipts.is_none()) || (!receipts && version.resident_registry.is_none()) {
            return Err(missing());
        }
        let remaining = platform.links.deadline.map_or(self.limits.deadline(), |d| d.saturating_duration_since(Instant::now()).min(self.limits.deadline()));
        let mut store = self.new_store(platform);
        let run = async {
            let result: wasmtime::Result<Result<ProvidedAnswer, PlatformError>> = async {
                let instance = version.pre.instance_pre().instantiate_async(&mut store).await?;
                Ok(match call {
                    ProvidedCall::Payments(who, year) => {
                        let guest = version.receipts.as_ref().expect("checked").load(&mut store, &instance)?;
                        guest.call_payments(&mut store, who, year).await?.map(ProvidedAnswer::Payments)
                    }
                    ProvidedCall::Arrears(who) => {
                        let guest = version.receipts.as_ref().expect("checked").load(&mut store, &instance)?;
                        guest.call_arrears(&mut store, who).await?.map(ProvidedAnswer::Arrears)
                    }
                    ProvidedCall::ResidentGet(who) => {
                        let guest = version.resident_registry.as_ref().expect("checked").load(&mut store, &instance)?;
                        guest.call_get(&mut store, who).await?.map(ProvidedAnswer::Resident)
                    }
                    ProvidedCall::ResidentHousehold(household) => {
                        let guest = version.resident_registry.as_ref().expect("checked").load(&mut store, &instance)?;
                        guest.call_household(&mut store, household).await?.map(ProvidedAnswer::Residents)
                    }
                    ProvidedCall::ResidentSearch(kana, born, limit) => {
                        let guest = version.resident_registry.as_ref().expect("checked").load(&mut store, &instance)?;
                        guest.call_search(&mut store, kana, born, limit).await?.map(ProvidedAnswer::Residents)
                    }
                })
            }
            .await;
            let ended = Ended::of(&store);
            result.map_err(|error| classify(error, &ended, &self.limits))
        };
        match tokio::time::timeout(remaining + DEADLINE_GRACE, run).await {
            Ok(result) => result,
            Err(_elapsed) => Err(InvokeError::Deadline(remaining.as_millis() as u64)),
        }
    }
}

/// Names the limit or fault behind an error from inside an instance.
fn classify(error: wasmtime::Error, ended: &Ended, limits: &Limits) -> InvokeError {
    let (deadline_ms, memory_bytes) = (limits.deadline_ms, limits.memory_bytes);
    if error.downcast_ref::<Trap>().is_none() {
        let text = format!("{error:#}");
        if text.contains("concurrent limit") {
            return InvokeError::NoSlot(text);
        }
        if error.downcast_ref::<wasmtime::component::ResourceTableError>().is_some_and(|e| matches!(e, wasmtime::component::ResourceTableError::Full)) {
            return InvokeError::Resources(limits.resources);
        }
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => InvokeError::Deadline(deadline_ms),
        Some(Trap::StackOverflow) => InvokeError::StackOverflow,
        // Rust guests keep their stack in linear memory: running off its end is an
        // out-of-bounds access, recognisable by one function filling the backtrace.
        Some(Trap::MemoryOutOfBounds) if runaway_recursion(&error) => InvokeError::StackOverflow,
        _ if ended.memory_limit_hit => InvokeError::Memory(memory_bytes),
        Some(_) if ended.stderr.contains("panicked") => InvokeError::Panic(first_lines(&ended.stderr)),
        // The whole error, backtrace included, for the host log (never for the caller).
        _ => InvokeError::Trap(format!("{error:?}")),
    }
}

fn runaway_recursion(error: &wasmtime::Error) -> bool {
    let Some(backtrace) = error.downcast_ref::<wasmtime::WasmBacktrace>() else { return false };
    let frames = backtrace.frames();
    let mut counts = std::collections::HashMap::new();
    for frame in frames {
        *counts.entry((frame.module().name().map(str::to_owned), frame.func_index())).or_insert(0usize) += 1;
    }
    frames.len() >= 16 && counts.values().any(|&n| n * 4 >= frames.len() * 3)
}

fn first_lines(text: &str) -> String {
    text.lines().take(3).collect::<Vec<_>>().join(" | ")
}
