//! # nukisashi-sdk: write a municipal module as an ordinary Rust handler
//!
//! A Nukisashi module is a WebAssembly component that exports `wasi:http/incoming-handler`
//! and imports only the platform interfaces in `wit/platform.wit`. This crate hides the
//! generated bindings: you write a [`Router`] of plain functions from [`Request`] to
//! [`Response`], and use [`kv`], [`config`], [`identity`], [`context`] and [`log`] for what
//! the platform provides.
//!
//! ```ignore
//! use nukisashi_sdk::prelude::*;
//!
//! fn hello(req: &Request) -> Result<Response> {
//!     let town = context::municipality().name;
//!     Ok(Response::text(format!("こんにちは、{town}から")))
//! }
//!
//! fn routes() -> Router {
//!     Router::new().get("/", hello)
//! }
//!
//! nukisashi_sdk::module!(routes);
//! ```
//!
//! Build with `cargo build --target wasm32-wasip2 --release`; the `.wasm` in
//! `target/wasm32-wasip2/release/` is the component to publish.

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "nukisashi:platform/module",
        pub_export_macro: true,
        export_macro_name: "export_bindings",
        default_bindings_module: "nukisashi_sdk::bindings",
        generate_all,
    });
}

pub mod config;
pub mod context;
mod error;
mod http;
pub mod identity;
pub mod kv;
pub mod log;
mod router;
#[doc(hidden)]
pub mod serve;
mod url;

pub use error::{Error, Result};
pub use http::{escape_html, Method, Request, Response};
pub use router::{Handler, Router};

/// Everything a module usually needs, in one `use`.
pub mod prelude {
    pub use crate::{
        config, context, identity, kv, log, Error, Method, Request, Response, Result, Router,
    };
    pub use serde::{Deserialize, Serialize};
}

/// Exports a module whose routes are built by `$routes: fn() -> Router`.
///
/// The router is built once per request (requests get a fresh instance each time, so
/// nothing is kept between requests except what the module stores in [`kv`]).
#[macro_export]
macro_rules! module {
    ($routes:path) => {
        struct __NukisashiModule;

        impl $crate::bindings::exports::wasi::http::incoming_handler::Guest for __NukisashiModule {
            fn handle(
                request: $crate::bindings::wasi::http::types::IncomingRequest,
                response_out: $crate::bindings::wasi::http::types::ResponseOutparam,
            ) {
                $crate::serve::serve(request, response_out, $routes);
            }
        }

        $crate::bindings::export_bindings!(__NukisashiModule with_types_in $crate::bindings);
    };
}
