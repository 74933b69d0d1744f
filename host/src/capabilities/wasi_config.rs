//! `wasi:config/store@0.2.0-draft-2024-09-27`, as Spin 3 modules import it: the same
//! per-municipality settings `nukisashi:platform/config` gives.

use super::PlatformState;
use super::standard::wasi::config::store::{Error, Host};

impl Host for PlatformState {
    async fn get(&mut self, key: String) -> Result<Option<String>, Error> {
        Ok(self.config.get(&key).cloned())
    }

    async fn get_all(&mut self) -> Result<Vec<(String, String)>, Error> {
        Ok(self.config.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }
}
