//! Which municipality and module version is serving this request.

use crate::bindings::nukisashi::platform::context as raw;

pub use raw::{ModuleInfo, Municipality};

pub fn municipality() -> Municipality {
    raw::current_municipality()
}

pub fn module_info() -> ModuleInfo {
    raw::current_module()
}

pub fn request_id() -> String {
    raw::request_id()
}
