//! Turning component bytes into a [`LoadedVersion`]: recognise the file, compile (or load
//! the cached artifact), check every import against what the platform provides, pre-link.
//! Each refusal is a [`LoadError`] whose message tells the vendor what to fix.

use super::LoadedVersion;
use crate::capabilities::bindings::exports::nukisashi::platform::change_handler::GuestIndices as ChangeHandlerIndices;
use crate::capabilities::bindings::exports::nukisashi::platform::event_handler::GuestIndices as EventHandlerIndices;
use crate::capabilities::bindings::exports::nukisashi::platform::notice_handler::GuestIndices as NoticeHandlerIndices;
use crate::capabilities::bindings::exports::nukisashi::platform::receipts::GuestIndices as ReceiptsIndices;
use crate::capabilities::bindings::exports::nukisashi::platform::resident_registry::GuestIndices as ResidentRegistryIndices;
use crate::catalog::manifest::ProvidedInterface;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use crate::capabilities::{ALLOWED_IMPORTS_SENTENCE, ALLOWED_IMPORT_PREFIXES, ModuleIdentity};
use crate::catalog::manifest::Manifest;
use crate::engine::{Compiler, digest};
use crate::runtime::state::RequestState;
use std::sync::Arc;
use wasmtime::component::{Component, Linker};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not a WebAssembly file (it does not start with the `\\0asm` magic bytes)")]
    NotWasm,
    #[error("this is a core WebAssembly module, not a component: build it with `cargo build --target wasm32-wasip2`")]
    CoreModule,
    #[error("the component does not compile: {0}")]
    Invalid(String),
    #[error("{0}")]
    OverLimit(String),
    #[error("the component imports {}, which this host does not provide; {ALLOWED_IMPORTS_SENTENCE}", quoted(.0))]
    ForbiddenImport(Vec<String>),
    #[error("the component does not fit the nukisashi:platform/module world: {0}")]
    WrongWorld(String),
}

/// What kind of WebAssembly binary `bytes` is, from its 8-byte header.
fn check_header(bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.len() < 8 || &bytes[0..4] != b"\0asm" {
        return Err(LoadError::NotWasm);
    }
    // Bytes 4..8: version and layer; layer 0 is a core module, layer 1 a component.
    match (bytes[6], bytes[7]) {
        (0, 0) => Err(LoadError::CoreModule),
        _ => Ok(()),
    }
}

/// Loads one module version. Compilation runs on a blocking thread (and is skipped when the
/// host compiled the same bytes before); nothing here touches the request path.
pub async fn load(
    compiler: &Compiler,
    linker: &Linker<RequestState>,
    manifest: Arc<Manifest>,
    bytes: Vec<u8>,
) -> Result<(LoadedVersion, bool), LoadError> {
    check_header(&bytes)?;
    // Hashing tens of megabytes is not work for an async worker.
    let (bytes, digest) = tokio::task::spawn_blocking(move || {
        let digest = digest(&bytes);
        (bytes, digest)
    })
    .await
    .map_err(|e| LoadError::Invalid(format!("hashing the component failed: {e}")))?;
    let (component, cached) = compiler.compile(bytes, &digest).await.map_err(|e| compile_error(&format!("{e:#}")))?;
    check_imports(&component, compiler.engine())?;
    let instance_pre = linker.instantiate_pre(&component).map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?;
    // The change handler is optional: a version without it simply gets no pushed changes.
    let change_handler = ChangeHandlerIndices::new(&instance_pre).ok();
    let event_handler = EventHandlerIndices::new(&instance_pre).ok();
    let notice_handler = NoticeHandlerIndices::new(&instance_pre).ok();
    // What the manifest says the module provides, it must export (and nothing else of it
    // is ever called).
    let declares = |interface| manifest.provides.contains_key(&interface);
    let mut missing = Vec::new();
    let receipts = match ReceiptsIndices::new(&instance_pre) {
        Ok(found) => declares(ProvidedInterface::Receipts).then_some(found),
        Err(_) if declares(ProvidedInterface::Receipts) => {
            missing.push("`nukisashi:platform/receipts` (the manifest declares [provides.receipts])");
            None
        }
        Err(_) => None,
    };
    let resident_registry = match ResidentRegistryIndices::new(&instance_pre) {
        Ok(found) => declares(ProvidedInterface::ResidentRegistry).then_some(found),
        Err(_) if declares(ProvidedInterface::ResidentRegistry) => {
            missing.push("`nukisashi:platform/resident-registry` (the manifest declares [provides.resident-registry])");
            None
        }
        Err(_) => None,
    };
    if notice_handler.is_none() && !manifest.notices.receives.is_empty() {
        missing.push("`nukisashi:platform/notice-handler` (the manifest declares [notices] receives)");
    }
    if !missing.is_empty() {
        return Err(LoadError::WrongWorld(format!(
            "the component does not export {}; build it against world `nukisashi:platform/business-unit` and export what the manifest declares",
            missing.join(", ")
        )));
    }
    let pre = ProxyPre::new(instance_pre).map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?;
    let identity = Arc::new(ModuleIdentity { id: manifest.id.clone(), version: manifest.version.clone(), digest });
    Ok((LoadedVersion { identity, manifest, pre, change_handler, event_handler, notice_handler, receipts, resident_registry }, cached))
}

/// Every import the platform does not provide, all named at once.
fn check_imports(component: &Component, engine: &wasmtime::Engine) -> Result<(), LoadError> {
    let refused: Vec<String> = component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name.to_string())
        .filter(|name| !ALLOWED_IMPORT_PREFIXES.iter().any(|prefix| name.starts_with(prefix)))
        .collect();
    if refused.is_empty() { Ok(()) } else { Err(LoadError::ForbiddenImport(refused)) }
}

fn quoted(names: &[String]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

/// A compile failure, told apart from a component that exceeds what the host gives one
/// request (wasmtime checks the per-component counts of the instance pool when it
/// compiles): that is no fault in the component's code, and the message names the setting.
fn compile_error(message: &str) -> LoadError {
    if message.contains("pooling allocator") && message.contains("memory") {
        return LoadError::OverLimit(format!(
            "the component compiles, but its memory starts larger than this host gives one request ({message}); the operator sets it with `[limits] memory_bytes` in the settings file"
        ));
    }
    if message.contains("pooling allocator") && message.contains("table") {
        return LoadError::OverLimit(format!(
            "the component compiles, but its table starts larger than this host gives one request ({message}); the operator sets it with `[limits] table_elements` in the settings file"
        ));
    }
    if !message.contains("configured maximum") {
        return LoadError::Invalid(message.to_string());
    }
    let setting = if message.contains("core module instances") {
        "the operator sets it with `[limits] instances` in the settings file"
    } else if message.contains("linear memories") {
        "the operator sets it with `[limits] memories` in the settings file"
    } else if message.contains("tables") {
        "the operator sets it with `[limits] tables` in the settings file"
    } else {
        "this limit is built into the host"
    };
    LoadError::OverLimit(format!("the component compiles, but needs more than this host gives one request ({message}); {setting}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_headers() {
        assert!(matches!(check_header(b"hello world"), Err(LoadError::NotWasm)));
        assert!(matches!(check_header(b"\0asm\x01\0\0\0"), Err(LoadError::CoreModule)));
        assert!(check_header(b"\0asm\x0d\0\x01\0").is_ok());
    }

    #[test]
    fn pool_limits_are_named_as_settings_not_compile_errors() {
        let over = compile_error("The component transitively contains 40 core module instances, which exceeds the configured maximum of 32");
        assert!(matches!(&over, LoadError::OverLimit(m) if m.contains("`[limits] instances`") && m.contains("40 core module instances")), "{over}");
        assert!(matches!(compile_error("invalid leb128 number"), LoadError::Invalid(_)));
        let memory = compile_error("module memory does not fit in pooling allocator requirements: memory index 0 is unsupported in this pooling allocator configuration: memory has a minimum byte size of 1114112 which exceeds the limit of 0x10000 bytes");
        assert!(matches!(&memory, LoadError::OverLimit(m) if m.contains("`[limits] memory_bytes`")), "{memory}");
    }
}
