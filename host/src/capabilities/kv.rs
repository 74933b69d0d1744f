//! `nukisashi:platform/kv`: storage scoped to (municipality, module). The scope comes from
//! [`PlatformState`], which the module cannot influence; keys are only ever looked up
//! within it.

use super::wit::kv::{Host, KeyPage};
use super::wit::types::Error;
use super::{Capability, PlatformState};
use std::collections::{BTreeMap, BTreeSet};

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 512;
/// Most keys one `list-keys` call returns.
pub const MAX_PAGE: u32 = 1000;

impl PlatformState {
    pub(super) fn check_key(&self, key: &str) -> Result<(), Error> {
        if key.is_empty() {
            return Err(Error::Invalid("kv keys must not be empty".into()));
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(Error::TooLarge(format!("kv keys are limited to {MAX_KEY_BYTES} bytes, this one has {}", key.len())));
        }
        Ok(())
    }

    pub(super) fn check_value(&self, value: &[u8]) -> Result<(), Error> {
        if value.len() > self.host_call_bytes {
            return Err(Error::TooLarge(format!("kv values are limited to {} bytes, this one has {}", self.host_call_bytes, value.len())));
        }
        Ok(())
    }
}

impl PlatformState {
    pub(super) fn quota(&self) -> crate::store::kv::Quota {
        let storage = &self.governor.limits.storage;
        crate::store::kv::Quota { bytes: storage.kv_bytes, keys: storage.kv_keys }
    }

    fn delivery_write_limit(&self) -> usize {
        self.governor.limits.delivery_write_bytes
    }
}

pub(super) fn unavailable(e: anyhow::Error) -> Error {
    tracing::error!(error = %e, "kv storage call failed");
    Error::Unavailable("the platform's storage is unavailable; nothing was written".into())
}

/// Writes held back until the host commits them with something else (a change delivery
/// commits the module's writes and the delivery record together). Reads see them. They
/// are held in host memory, so they are bounded (`[limits] delivery_write_bytes`).
#[derive(Debug, Default)]
pub struct KvWrites(pub BTreeMap<String, Option<Vec<u8>>>);

impl KvWrites {
    /// Bytes held: keys, and values written.
    fn bytes(&self) -> usize {
        self.0.iter().map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len)).sum()
    }

    /// Holds a write unless it takes the buffer past `limit` bytes.
    fn hold(&mut self, key: String, value: Option<Vec<u8>>, limit: usize) -> Result<(), Error> {
        let replaced = self.0.get(&key).map_or(0, |v| key.len() + v.as_ref().map_or(0, Vec::len));
        let after = self.bytes() - replaced + key.len() + value.as_ref().map_or(0, Vec::len);
        if after > limit {
            return Err(Error::TooLarge(format!(
                "a delivery may write at most {limit} bytes of kv (the limit is [limits] delivery_write_bytes); write less per change or event"
            )));
        }
        self.0.insert(key, value);
        Ok(())
    }

    /// Merges buffered keys into a page read from the database. `page` holds up to
    /// `fetched` keys in order; when it is full, buffered keys past its end are left for
    /// the next page (the database may hold keys before them that were not read).
    fn merge(&self, page: Vec<String>, fetched: u32, prefix: &str, after: Option<&str>, limit: u32) -> Vec<String> {
        let full = page.len() == fetched as usize;
        let end = page.last().cloned();
        let mut keys: BTreeSet<String> = page.into_iter().collect();
        for (key, value) in &self.0 {
            let in_range = key.starts_with(prefix) && after.is_none_or(|a| key.as_str() > a);
            let before_end = !full || end.as_ref().is_some_and(|e| key <= e);
            match value {
                Some(_) if in_range && before_end => {
                    keys.insert(key.clone());
                }
                None => {
                    keys.remove(key);
                }
                _ => {}
            }
        }
        keys.into_iter().take(limit as usize).collect()
    }
}

impl Host for PlatformState {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, Error> {
        self.require(Capability::Kv)?;
        self.check_key(&key)?;
        if let Some(buffered) = self.kv_writes.as_ref().and_then(|w| w.0.get(&key)) {
            return Ok(buffered.clone());
        }
        self.db.kv_get(&self.kv_scope(), &key).await.map_err(unavailable)
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), Error> {
        self.require(Capability::Kv)?;
        self.check_key(&key)?;
        self.check_value(&value)?;
        let limit = self.delivery_write_limit();
        if let Some(writes) = &mut self.kv_writes {
            return writes.hold(key, Some(value), limit).inspect_err(|_| self.governor.refused("delivery-write-bytes"));
        }
        self.db.kv_set(&self.kv_scope(), &key, &value, self.quota()).await.map_err(unavailable)?.map_err(|over| {
            self.governor.refused("kv-quota");
            Error::TooLarge(over.0)
        })
    }

    async fn delete(&mut self, key: String) -> Result<bool, Error> {
        self.require(Capability::Kv)?;
        self.check_key(&key)?;
        if self.kv_writes.is_some() {
            let existed = <Self as Host>::get(self, key.clone()).await?.is_some();
            let limit = self.delivery_write_limit();
            self.kv_writes.as_mut().expect("checked").hold(key, None, limit)?;
            return Ok(existed);
        }
        self.db.kv_delete(&self.kv_scope(), &key).await.map_err(unavailable)
    }

    async fn increment(&mut self, key: String, delta: i64) -> Result<i64, Error> {
        self.require(Capability::Kv)?;
        self.check_key(&key)?;
        if self.kv_writes.is_some() {
            // During a change delivery the new value is committed with the delivery; a
            // concurrent request's increment of the same key in that window can be lost.
            let current = <Self as Host>::get(self, key.clone()).await?;
            let current = match current {
                None => 0,
                Some(bytes) => crate::store::kv::parse_counter(&bytes)
                    .ok_or_else(|| Error::Invalid(format!("the value under `{key}` is not an integer")))?,
            };
            let next = current.checked_add(delta).ok_or_else(|| Error::Invalid("the counter would overflow".into()))?;
            let limit = self.delivery_write_limit();
            self.kv_writes.as_mut().expect("checked").hold(key, Some(next.to_string().into_bytes()), limit)?;
            return Ok(next);
        }
        self.db.kv_increment(&self.kv_scope(), &key, delta, self.quota()).await.map_err(unavailable)?.map_err(|refused| match refused {
            crate::store::kv::NotIncremented::NotAnInteger(why) => Error::Invalid(why),
            crate::store::kv::NotIncremented::OverQuota(over) => {
                self.governor.refused("kv-quota");
                Error::TooLarge(over.0)
            }
        })
    }

    async fn list_keys(&mut self, prefix: String, after: Option<String>, limit: u32) -> Result<KeyPage, Error> {
        self.require(Capability::Kv)?;
        let limit = limit.clamp(1, MAX_PAGE);
        let keys = match &self.kv_writes {
            None => self.db.kv_list_keys(&self.kv_scope(), &prefix, after.as_deref(), limit).await.map_err(unavailable)?,
            Some(writes) => {
                // Read enough that deleted-but-buffered keys cannot leave the page short.
                let deleted = writes.0.values().filter(|v| v.is_none()).count() as u32;
                let fetched = limit + deleted;
                let page = self.db.kv_list_keys(&self.kv_scope(), &prefix, after.as_deref(), fetched).await.map_err(unavailable)?;
                writes.merge(page, fetched, &prefix, after.as_deref(), limit)
            }
        };
        let next = if keys.len() == limit as usize { keys.last().cloned() } else { None };
        Ok(KeyPage { keys, next })
    }
}

#[cfg(test)]
mod tests {
    use super::KvWrites;

    fn writes(entries: &[(&str, bool)]) -> KvWrites {
        KvWrites(entries.iter().map(|(k, set)| (k.to_string(), set.then(|| vec![1]))).collect())
    }

    fn keys(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn buffered_writes_are_bounded() {
        let mut w = KvWrites::default();
        w.hold("a".into(), Some(vec![0; 6]), 10).unwrap();
        // Replacing a key counts its new size, not both.
        w.hold("a".into(), Some(vec![0; 9]), 10).unwrap();
        assert!(matches!(w.hold("b".into(), Some(vec![0; 1]), 10), Err(super::Error::TooLarge(m)) if m.contains("delivery_write_bytes")));
    }

    #[test]
    fn buffered_writes_show_in_listings() {
        let w = writes(&[("a/2", true), ("a/3", false), ("b/1", true)]);
        // A short page: everything in the database was read, buffered keys all count.
        assert_eq!(w.merge(keys(&["a/1", "a/3"]), 10, "a/", None, 10), keys(&["a/1", "a/2"]));
        // A full page ending at a/1: a/2 may come after keys not yet read, so it waits.
        assert_eq!(w.merge(keys(&["a/0", "a/1"]), 2, "a/", None, 2), keys(&["a/0", "a/1"]));
        // Paging past a key leaves it out.
        assert_eq!(w.merge(keys(&[]), 10, "a/", Some("a/2"), 10), Vec::<String>::new());
    }
}
