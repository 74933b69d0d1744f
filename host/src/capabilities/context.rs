//! `nukisashi:platform/context`: which municipality and module version serve the request.

use super::PlatformState;
use super::wit::context::{Host, ModuleInfo, Municipality};

impl Host for PlatformState {
    async fn current_municipality(&mut self) -> Municipality {
        Municipality {
            lg_code: self.municipality.lg_code.to_string(),
            name: self.municipality.name.clone(),
            prefecture: self.municipality.prefecture.clone(),
        }
    }

    async fn current_module(&mut self) -> ModuleInfo {
        ModuleInfo { id: self.module.id.clone(), version: self.module.version.clone() }
    }

    async fn request_id(&mut self) -> String {
        self.request_id.clone()
    }
}
