//! What one request's `Store` holds: WASI with no authority, wasi:http, the limiter, and
//! the platform state the capabilities read (tenant, module, caller, config, storage).

use super::limits::StoreLimiter;
use crate::capabilities::PlatformState;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// How much of a module's stderr is kept (panic messages land there).
const STDERR_CAPTURE_BYTES: usize = 8 * 1024;

pub struct RequestState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: NoOutboundHttp,
    table: ResourceTable,
    pub limiter: StoreLimiter,
    pub platform: PlatformState,
    pub stderr: MemoryOutputPipe,
    pub deadline: std::time::Instant,
}

impl RequestState {
    pub fn new(platform: PlatformState, limiter: StoreLimiter, deadline: std::time::Instant, limits: &crate::governor::limits::Limits) -> Self {
        let stderr = MemoryOutputPipe::new(STDERR_CAPTURE_BYTES);
        // No preopened directories, no environment, no arguments, no inherited stdio, no
        // name lookup, and the default socket policy denies every address: the module has
        // no ambient authority, whatever WASI interfaces it imports.
        let wasi = WasiCtx::builder().stderr(stderr.clone()).build();
        // Host memory a module can hold through resources is bounded too: so many of them,
        // headers objects of at most so many bytes each.
        let mut table = ResourceTable::new();
        table.set_max_capacity(limits.resources);
        let mut http = WasiHttpCtx::new();
        http.set_field_size_limit(limits.header_bytes);
        Self {
            wasi,
            http,
            hooks: NoOutboundHttp,
            table,
            limiter,
            platform,
            stderr,
            deadline,
        }
    }

    /// What the module wrote to stderr, lossily decoded.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.contents()).into_owned()
    }
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for RequestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.hooks }
    }
}

/// wasi:http policy for modules: they only answer requests. `wasi:http/outgoing-handler`
/// is linked (toolchains import it whether or not the module sends anything) and every
/// request through it fails with `HTTP-request-denied`.
struct NoOutboundHttp;

type HttpBody = http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, wasmtime_wasi_http::Error>;
type IoFuture = Box<dyn std::future::Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>;

impl wasmtime_wasi_http::WasiHttpHooks for NoOutboundHttp {
    fn send_request(
        &mut self,
        _request: http::Request<HttpBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: IoFuture,
    ) -> Box<dyn std::future::Future<Output = Result<(http::Response<HttpBody>, IoFuture), wasmtime_wasi_http::Error>> + Send>
    {
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}
