//! Running module versions: the linker every version is pre-linked against, and one
//! request's trip through a fresh instance (`invoke`), with limits and error classification.

pub mod limits;
pub mod state;

use crate::capabilities::{self, PlatformState};
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
    #[error("the module did not finish within its deadline of {0} ms")]
    Deadline(u64),
    #[error("the module tried to use more than its memory limit of {0} bytes")]
    Memory(u64),
    #[error("the module overflowed its call stack (runaway recursion)")]
    StackOverflow,
    #[error("the module panicked")]
    Panic(String),
    #[error("the module trapped: {0}")]
    Trap(String),
    #[error("the module's response body exceeded the limit of {0} bytes")]
    ResponseTooLarge(usize),
    #[error("the module ended without sending a response")]
    NoResponse,
    #[error("the module answered with an error: {0}")]
    ModuleError(String),
    #[error("the host could not run the module: {0}")]
    Host(String),
}

/// What the host learned about a request's instance once it ended.
struct Ended {
    memory_limit_hit: bool,
    stderr: String,
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
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        let http_options = wasmtime_wasi_http::p2::bindings::LinkOptions::default();
        wasmtime_wasi_http::p2::bindings::http::types::add_to_linker::<_, wasmtime_wasi_http::WasiHttp>(
            &mut linker,
            &(&http_options).into(),
            RequestState::http,
        )?;
        capabilities::add_to_linker(&mut linker, |state: &mut RequestState| &mut state.platform)?;
        Ok(Self { compiler, linker, limits: settings.limits.clone() })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Compiles (or loads from cache), checks and pre-links a module version.
    pub async fn load(&self, id: &str, version: &str, bytes: Vec<u8>) -> Result<LoadedVersion, LoadError> {
        let (loaded, cached) = load(&self.compiler, &self.linker, id, version, bytes).await?;
        tracing::info!(module = id, version, digest = %loaded.identity.digest, cached, "module version loaded");
        Ok(loaded)
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
        let deadline = Instant::now() + limits.deadline();
        let mut store = Store::new(
            self.compiler.engine(),
            RequestState::new(platform, StoreLimiter::new(limits), deadline),
        );
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
        // The instance runs in its own task so it can keep writing the body after it sent
        // the response head; the store (and so every resource) is dropped when it ends.
        let task = tokio::spawn(async move {
            let result = async {
                let module = pre.instantiate_async(&mut store).await?;
                module.wasi_http_incoming_handler().call_handle(&mut store, incoming, outparam).await
            }
            .await;
            let ended = Ended { memory_limit_hit: store.data().limiter.memory_limit_hit, stderr: store.data().stderr_text() };
            (result, ended)
        }.in_current_span());
        let abort = task.abort_handle();

        let (deadline_ms, memory_bytes) = (limits.deadline_ms, limits.memory_bytes);
        let response_limit = limits.response_body_bytes;
        let outcome = tokio::time::timeout(limits.deadline() + DEADLINE_GRACE, async move {
            let head = receiver.await;
            let response = match head {
                Ok(Ok(response)) => {
                    let (parts, body) = response.into_parts();
                    match Limited::new(body, response_limit).collect().await {
                        Ok(collected) => Some(http::Response::from_parts(parts, collected.to_bytes())),
                        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                            return Err(InvokeError::ResponseTooLarge(response_limit));
                        }
                        // The body broke off: the instance trapped mid-body; its error says why.
                        Err(_) => None,
                    }
                }
                Ok(Err(code)) => return Err(InvokeError::ModuleError(format!("{code:?}"))),
                Err(_) => None,
            };
            let (result, ended) = task.await.map_err(|e| InvokeError::Host(e.to_string()))?;
            match (result, response) {
                (Ok(()), Some(response)) => Ok(response),
                (Ok(()), None) => Err(InvokeError::NoResponse),
                (Err(error), _) => Err(classify(error, &ended, deadline_ms, memory_bytes)),
            }
        })
        .await;
        match outcome {
            Ok(result) => {
                if result.is_err() {
                    abort.abort();
                }
                result
            }
            Err(_elapsed) => {
                abort.abort();
                Err(InvokeError::Deadline(deadline_ms))
            }
        }
    }
}

/// Names the limit or fault behind an error from inside an instance.
fn classify(error: wasmtime::Error, ended: &Ended, deadline_ms: u64, memory_bytes: u64) -> InvokeError {
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => InvokeError::Deadline(deadline_ms),
        Some(Trap::StackOverflow) => InvokeError::StackOverflow,
        // Rust guests keep their stack in linear memory: running off its end is an
        // out-of-bounds access, recognisable by one function filling the backtrace.
        Some(Trap::MemoryOutOfBounds) if runaway_recursion(&error) => InvokeError::StackOverflow,
        _ if ended.memory_limit_hit => InvokeError::Memory(memory_bytes),
        Some(_) if ended.stderr.contains("panicked") => InvokeError::Panic(first_lines(&ended.stderr)),
        Some(trap) => InvokeError::Trap(trap.to_string()),
        None => InvokeError::Trap(format!("{error:#}")),
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
