//! The one place the SDK reaches the platform. In a component (wasm32) these are the
//! platform's imports; in a native build (a vendor's `cargo test`) they are the in-memory
//! platform of [`crate::testing`], with the same signatures and the same errors, so handler
//! code runs unchanged in both.

#[cfg(target_arch = "wasm32")]
pub(crate) use crate::bindings::nukisashi::platform::{
    changes, config, context, events, identity, identity_numbers, kv, log, notices, receipts, resident_registry, tax,
};

#[cfg(not(target_arch = "wasm32"))]
pub(crate) use crate::testing::platform::{
    changes, config, context, events, identity, identity_numbers, kv, log, notices, receipts, resident_registry, tax,
};
