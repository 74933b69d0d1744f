//! `nukisashi:platform/config`: this municipality's settings for this module.

use super::PlatformState;
use super::wit::config::Host;

impl Host for PlatformState {
    async fn get(&mut self, key: String) -> Option<String> {
        self.config.get(&key).cloned()
    }

    async fn entries(&mut self) -> Vec<(String, String)> {
        self.config.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}
