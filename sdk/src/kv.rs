//! Key-value storage private to this module in this municipality.
//!
//! Every key lives in a store scoped by the host to (municipality, module): there is no way
//! to name another municipality's data. Values are bytes; [`get_json`]/[`set_json`] add
//! serde on top.

use crate::platform::kv as raw;
use crate::Result;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use raw::KeyPage;

pub fn get(key: &str) -> Result<Option<Vec<u8>>> {
    Ok(raw::get(key)?)
}

pub fn set(key: &str, value: &[u8]) -> Result<()> {
    Ok(raw::set(key, value)?)
}

/// Removes `key`; true if it existed.
pub fn delete(key: &str) -> Result<bool> {
    Ok(raw::delete(key)?)
}

/// Adds `delta` to the counter under `key` (0 if missing) and returns the new value,
/// atomically across concurrent requests: use it for sequence numbers and stock.
/// The counter is stored as decimal text, so [`get_json::<i64>`](get_json) reads it too.
pub fn increment(key: &str, delta: i64) -> Result<i64> {
    Ok(raw::increment(key, delta)?)
}

/// One page of keys starting with `prefix`, after `after`, at most `limit`.
pub fn list_keys(prefix: &str, after: Option<&str>, limit: u32) -> Result<KeyPage> {
    Ok(raw::list_keys(prefix, after, limit)?)
}

/// Every key starting with `prefix`, following pages.
pub fn all_keys(prefix: &str) -> Result<Vec<String>> {
    let mut keys = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = list_keys(prefix, after.as_deref(), 1000)?;
        keys.extend(page.keys);
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(keys),
        }
    }
}

pub fn get_json<T: DeserializeOwned>(key: &str) -> Result<Option<T>> {
    match get(key)? {
        Some(bytes) => Ok(Some(serde_json::from_slice(&bytes).map_err(|e| {
            crate::Error::internal(format!("stored value under `{key}` is not valid JSON: {e}"))
        })?)),
        None => Ok(None),
    }
}

pub fn set_json<T: Serialize>(key: &str, value: &T) -> Result<()> {
    set(key, &serde_json::to_vec(value)?)
}
