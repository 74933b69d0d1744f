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
//! Pages for browsers: [`Request::wants_html`] tells a browser from an API client (a
//! handler's [`Error`] becomes a Japanese page or problem+json accordingly);
//! [`identity::account_bar`] is the 「ログイン」/「ログアウト」 bar; put
//! [`Request::form_token_field`] in every `<form method="post">` (the router refuses a form
//! posted with a browser session without it); [`Request::fields`] reads JSON, urlencoded
//! and multipart bodies (files included) alike; [`Response::after_post`] answers a form with
//! a redirect to a page and an API client with JSON.
//!
//! Unit-test handlers natively with [`testing::TestPlatform`]: `cargo test` runs them
//! against an in-memory platform (kv, config, identity, registry, events …).
//!
//! Build with `cargo build --target wasm32-wasip2 --release`; the `.wasm` in
//! `target/wasm32-wasip2/release/` is the component to publish.

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "nukisashi:platform/linked-module",
        pub_export_macro: true,
        export_macro_name: "export_bindings",
        default_bindings_module: "nukisashi_sdk::bindings",
        generate_all,
    });
}

pub mod changes;
pub mod config;
pub mod context;
pub mod date;
mod error;
pub mod events;
mod http;
pub mod identity;
pub mod kv;
pub mod log;
mod platform;
pub mod registry;
mod router;
#[doc(hidden)]
pub mod serve;
pub mod tax;
pub mod multipart;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
mod url;

pub use error::{Error, Result};
pub use http::{escape_html, Method, Request, Response};
pub use router::{Handler, Router};

/// Everything a module usually needs, in one `use`.
pub mod prelude {
    pub use crate::{
        changes, config, context, events, identity, kv, log, registry, tax, Error, Method, Request, Response,
        Result, Router,
    };
    pub use serde::{Deserialize, Serialize};
}

/// Exports a module whose routes are built by `$routes: fn() -> Router`, and optionally
/// handlers for pushed changes (`on_change = path`, see [`changes`]) and other modules'
/// events (`on_event = path`, see [`events`]), in that order.
///
/// The router is built once per request (requests get a fresh instance each time, so
/// nothing is kept between requests except what the module stores in [`kv`]).
#[macro_export]
macro_rules! module {
    ($routes:path) => {
        $crate::module!($routes, on_change = $crate::changes::ignore, on_event = $crate::events::ignore);
    };
    ($routes:path, on_change = $handler:path) => {
        $crate::module!($routes, on_change = $handler, on_event = $crate::events::ignore);
    };
    ($routes:path, on_event = $events:path) => {
        $crate::module!($routes, on_change = $crate::changes::ignore, on_event = $events);
    };
    ($routes:path, on_change = $handler:path, on_event = $events:path) => {
        struct __NukisashiModule;

        impl $crate::bindings::exports::wasi::http::incoming_handler::Guest for __NukisashiModule {
            fn handle(
                request: $crate::bindings::wasi::http::types::IncomingRequest,
                response_out: $crate::bindings::wasi::http::types::ResponseOutparam,
            ) {
                $crate::serve::serve(request, response_out, $routes);
            }
        }

        impl $crate::bindings::exports::nukisashi::platform::change_handler::Guest for __NukisashiModule {
            fn on_change(change: $crate::bindings::nukisashi::platform::changes::Change) -> ::core::result::Result<(), ::std::string::String> {
                let handler: $crate::changes::Handler = $handler;
                handler(&$crate::changes::Change::from(change))
            }
        }

        impl $crate::bindings::exports::nukisashi::platform::event_handler::Guest for __NukisashiModule {
            fn on_event(event: $crate::bindings::nukisashi::platform::events::Event) -> ::core::result::Result<(), ::std::string::String> {
                let handler: $crate::events::Handler = $events;
                handler(&$crate::events::Event::from(event))
            }
        }

        $crate::bindings::export_bindings!(__NukisashiModule with_types_in $crate::bindings);
    };
}
