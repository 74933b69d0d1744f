//! `nukisashi:platform/kv`: storage scoped to (municipality, module). The scope comes from
//! [`PlatformState`], which the module cannot influence; keys are only ever looked up
//! within it.

use super::wit::kv::{Host, KeyPage};
use super::wit::types::Error;
use super::{Capability, PlatformState};

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 512;
/// Most keys one `list-keys` call returns.
pub const MAX_PAGE: u32 = 1000;

impl PlatformState {
    fn check_key(&self, key: &str) -> Result<(), Error> {
        if key.is_empty() {
            return Err(Error::Invalid("kv keys must not be empty".into()));
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(Error::TooLarge(format!("kv keys are limited to {MAX_KEY_BYTES} bytes, this one has {}", key.len())));
        }
        Ok(())
    }
}

fn unavailable(e: anyhow::Error) -> Error {
    tracing::error!(error = %e, "kv storage call failed");
    Error::Unavailable("the platform's storage is unavailable; nothing was written".into())
}

impl Host for PlatformState {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, Error> {
        self.require(Capability::Kv)?;
        self.check_key(&key)?;
        self.db.kv_get(&self.kv_scope(), &key).await.map_err(unavailable)
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), Error> {
        self.require(Capability::Kv)?;
        self.check_key(&key)?;
        if value.len() > self.host_call_bytes {
            return Err(Error::TooLarge(format!(
                "kv values are limited to {} bytes, this one has {}",
                self.host_call_bytes,
                value.len()
            )));
        }
        self.db.kv_set(&self.kv_scope(), &key, &value).await.map_err(unavailable)
    }

    async fn delete(&mut self, key: String) -> Result<bool, Error> {
        self.require(Capability::Kv)?;
        self.check_key(&key)?;
        self.db.kv_delete(&self.kv_scope(), &key).await.map_err(unavailable)
    }

    async fn list_keys(&mut self, prefix: String, after: Option<String>, limit: u32) -> Result<KeyPage, Error> {
        self.require(Capability::Kv)?;
        let limit = limit.clamp(1, MAX_PAGE);
        let keys = self.db.kv_list_keys(&self.kv_scope(), &prefix, after.as_deref(), limit).await.map_err(unavailable)?;
        let next = if keys.len() == limit as usize { keys.last().cloned() } else { None };
        Ok(KeyPage { keys, next })
    }
}
