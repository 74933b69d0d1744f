//! The catalog municipalities choose from: manifests, and (in `store::catalog`) vendors,
//! modules, versions, reviews and subscriptions.

pub mod manifest;
