//! This municipality's configuration of the module (its name, address, contact, settings).

use crate::platform::config as raw;
use crate::{Error, Result};

/// One setting, if the municipality set it.
pub fn get(key: &str) -> Option<String> {
    raw::get(key)
}

/// One setting, or `default`.
pub fn get_or(key: &str, default: &str) -> String {
    get(key).unwrap_or_else(|| default.to_string())
}

/// One setting the module cannot work without: a clear 500 naming the key if missing.
pub fn require(key: &str) -> Result<String> {
    get(key).ok_or_else(|| {
        Error::new(500, "Module not configured", format!("the municipality has not set `{key}` for this module"))
    })
}

/// Every setting, sorted by key.
pub fn entries() -> Vec<(String, String)> {
    raw::entries()
}
