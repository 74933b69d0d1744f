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
        world: "nukisashi:platform/business-unit",
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
pub mod notices;
pub mod receipts;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
mod url;

pub use error::{Error, Result};
pub use http::{escape_html, Method, Request, Response};
pub use router::{Handler, Router};

/// Everything a module usually needs, in one `use`.
pub mod prelude {
    pub use crate::{
        changes, config, context, events, identity, kv, log, notices, receipts, registry, tax, Error, Method, Request,
        Response, Result, Router,
    };
    pub use serde::{Deserialize, Serialize};
}

/// What a module exports besides its routes. [`module!`] fills in what it is not given:
/// handlers that accept and ignore, and providers the host never calls (it calls a module
/// only for what its manifest declares).
#[doc(hidden)]
pub struct Exports {
    pub on_change: changes::Handler,
    pub on_event: events::Handler,
    pub on_notice: notices::Handler,
    pub receipts: receipts::Provider,
    pub resident_registry: registry::Provider,
}

impl Exports {
    pub const NONE: Exports = Exports {
        on_change: changes::ignore,
        on_event: events::ignore,
        on_notice: notices::ignore,
        receipts: receipts::NOT_PROVIDED,
        resident_registry: registry::NOT_PROVIDED,
    };
}

/// Exports a module whose routes are built by `$routes: fn() -> Router`, and optionally,
/// in any order:
///
/// - `on_change = path` — pushed changes of the municipality's data (see [`changes`]);
/// - `on_event = path` — other modules' events (see [`events`]);
/// - `on_notice = path` — notices from other municipalities (see [`notices`]);
/// - `receipts = CONST` — this module provides 収納 (a [`receipts::Provider`]);
/// - `resident_registry = CONST` — this module provides the resident registry (a
///   [`registry::Provider`]).
///
/// The router is built once per request (requests get a fresh instance each time, so
/// nothing is kept between requests except what the module stores in [`kv`]).
#[macro_export]
macro_rules! module {
    ($routes:path $(, $export:ident = $value:expr)* $(,)?) => {
        const __NUKISASHI_EXPORTS: $crate::Exports = $crate::Exports { $($export: $value,)* ..$crate::Exports::NONE };

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
                (__NUKISASHI_EXPORTS.on_change)(&$crate::changes::Change::from(change))
            }
        }

        impl $crate::bindings::exports::nukisashi::platform::event_handler::Guest for __NukisashiModule {
            fn on_event(event: $crate::bindings::nukisashi::platform::events::Event) -> ::core::result::Result<(), ::std::string::String> {
                (__NUKISASHI_EXPORTS.on_event)(&$crate::events::Event::from(event))
            }
        }

        impl $crate::bindings::exports::nukisashi::platform::notice_handler::Guest for __NukisashiModule {
            fn on_notice(notice: $crate::bindings::nukisashi::platform::notices::Notice) -> ::core::result::Result<(), ::std::string::String> {
                (__NUKISASHI_EXPORTS.on_notice)(&$crate::notices::Notice::from(notice))
            }
        }

        impl $crate::bindings::exports::nukisashi::platform::receipts::Guest for __NukisashiModule {
            fn payments(
                addressee_number: ::std::string::String,
                fiscal_year: ::core::option::Option<u16>,
            ) -> ::core::result::Result<::std::vec::Vec<$crate::bindings::exports::nukisashi::platform::receipts::Payment>, $crate::bindings::nukisashi::platform::types::Error> {
                $crate::receipts::export::payments(&__NUKISASHI_EXPORTS.receipts, addressee_number, fiscal_year)
            }
            fn arrears(
                addressee_number: ::std::string::String,
            ) -> ::core::result::Result<::std::vec::Vec<$crate::bindings::exports::nukisashi::platform::receipts::Arrear>, $crate::bindings::nukisashi::platform::types::Error> {
                $crate::receipts::export::arrears(&__NUKISASHI_EXPORTS.receipts, addressee_number)
            }
        }

        impl $crate::bindings::exports::nukisashi::platform::resident_registry::Guest for __NukisashiModule {
            fn get(
                addressee_number: ::std::string::String,
            ) -> ::core::result::Result<::core::option::Option<$crate::bindings::exports::nukisashi::platform::resident_registry::Resident>, $crate::bindings::nukisashi::platform::types::Error> {
                $crate::registry::export::get(&__NUKISASHI_EXPORTS.resident_registry, addressee_number)
            }
            fn household(
                household_number: ::std::string::String,
            ) -> ::core::result::Result<::std::vec::Vec<$crate::bindings::exports::nukisashi::platform::resident_registry::Resident>, $crate::bindings::nukisashi::platform::types::Error> {
                $crate::registry::export::household(&__NUKISASHI_EXPORTS.resident_registry, household_number)
            }
            fn search(
                name_kana: ::std::string::String,
                birth_date: ::core::option::Option<::std::string::String>,
                limit: u32,
            ) -> ::core::result::Result<::std::vec::Vec<$crate::bindings::exports::nukisashi::platform::resident_registry::Resident>, $crate::bindings::nukisashi::platform::types::Error> {
                $crate::registry::export::search(&__NUKISASHI_EXPORTS.resident_registry, name_kana, birth_date, limit)
            }
        }

        $crate::bindings::export_bindings!(__NukisashiModule with_types_in $crate::bindings);
    };
}
