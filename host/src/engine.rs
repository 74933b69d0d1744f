//! The wasmtime engine: pooling allocator, copy-on-write memory images, epoch ticker, and
//! compilation with an on-disk cache of precompiled artifacts.

use crate::settings::Settings;
use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances. A module running past its deadline is stopped within one
/// tick; a long-running module yields to other requests at every tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Builds the engine every module runs in.
pub fn build_engine(settings: &Settings) -> Result<Engine> {
    let limits = &settings.limits;
    let slots = crate::governor::admission::Admission::pool_size(&limits.admission);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(slots)
        .total_core_instances(slots * limits.instances as u32)
        .total_memories(slots * limits.memories as u32)
        .total_tables(slots * limits.tables as u32)
        .total_stacks(slots)
        .max_core_instances_per_component(limits.instances as u32)
        .max_memories_per_component(limits.memories as u32)
        .max_tables_per_component(limits.tables as u32)
        .max_memory_size(limits.memory_bytes as usize)
        .table_elements(limits.table_elements)
        .table_keep_resident(64 << 10);
    // Resetting a memory slot with madvise makes the kernel flush every thread's TLB
    // (IPIs to every core), which was the largest single cost of a trivial request. With
    // the PAGEMAP_SCAN ioctl (Linux 6.7+) wasmtime memsets only the pages a request
    // touched, up to the kept size, and a 1 MiB keep gave +60 % throughput at concurrency
    // 16 (docs/BENCHMARKS.md, peers). Without the ioctl a large keep means memsetting all
    // of it on every request, which made instantiation twice as slow: keep 64 KiB then.
    if pagemap_scan_available() {
        pool.pagemap_scan(wasmtime::Enabled::Auto).linear_memory_keep_resident(1 << 20);
    } else {
        pool.linear_memory_keep_resident(64 << 10);
    }

    let mut config = Config::new();
    config
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .memory_init_cow(true)
        .epoch_interruption(true)
        // Component-model async is not used by the module world; turning it off makes
        // each call cheaper.
        .concurrency_support(false)
        .max_wasm_stack(1 << 20);
    Engine::new(&config).map_err(anyhow::Error::from).context("cannot create the wasmtime engine")
}

/// Whether this kernel has the `PAGEMAP_SCAN` ioctl (Linux 6.7 and later).
fn pagemap_scan_available() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    kernel_at_least(&release, (6, 7))
}

fn kernel_at_least(release: &str, wanted: (u32, u32)) -> bool {
    let mut parts = release.trim().split(['.', '-']).map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= wanted,
        _ => false,
    }
}

/// Starts the thread that advances the engine's epoch every [`EPOCH_TICK`]. It holds only a
/// weak reference, so it ends when the engine is dropped.
pub fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("nukisashi-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch thread");
}

/// The sha256 of a component's bytes, hex-encoded: its identity everywhere in the platform.
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Compiles components and caches the machine code on disk, keyed by the component's
/// digest and everything in the engine that affects code generation (wasmtime version,
/// target, fuel/epoch settings, memory layout). A cached artifact is only ever one this
/// host wrote itself into its own data directory, and is loaded only if its bytes match
/// the SHA-256 written beside it: a torn or altered file is recompiled, never deserialised.
/// Concurrent compilations of the same component wait for the first (single flight).
#[derive(Clone)]
pub struct Compiler {
    engine: Engine,
    cache_dir: PathBuf,
    engine_key: String,
    in_flight: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl Compiler {
    pub fn new(engine: Engine, cache_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(cache_dir)
            .with_context(|| format!("cannot create artifact directory {}", cache_dir.display()))?;
        let mut hasher = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = format!("{:016x}", hasher.finish());
        Ok(Self { engine, cache_dir: cache_dir.to_path_buf(), engine_key, in_flight: Default::default() })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    fn artifact_path(&self, digest: &str) -> PathBuf {
        self.cache_dir.join(format!("{digest}-{}.cwasm", self.engine_key))
    }

    /// The compiled component for `bytes`, from the cache when this host compiled it before.
    /// Compiling takes whole cores for a while: call this at admission, never on the
    /// request path. Returns whether the cache was used.
    pub async fn compile(&self, bytes: Vec<u8>, digest: &str) -> Result<(Component, bool)> {
        let path = self.artifact_path(digest);
        let key = path.display().to_string();
        let flight = self.in_flight.lock().expect("compile flights").entry(key.clone()).or_default().clone();
        let _mine = flight.lock().await;
        let engine = self.engine.clone();
        let result = tokio::task::spawn_blocking(move || {
            if let Some(component) = load_checked(&engine, &path) {
                return Ok((component, true));
            }
            let component = Component::new(&engine, &bytes).map_err(anyhow::Error::from)?;
            let serialized = component.serialize().map_err(anyhow::Error::from)?;
            write_checked(&path, &serialized).with_context(|| format!("cannot write artifact {}", path.display()))?;
            Ok((component, false))
        })
        .await?;
        self.in_flight.lock().expect("compile flights").remove(&key);
        result
    }
}

/// The sidecar holding an artifact's SHA-256.
fn digest_path(path: &Path) -> PathBuf {
    path.with_extension("cwasm.sha256")
}

/// A cached artifact, if its bytes match the digest written beside it.
fn load_checked(engine: &Engine, path: &Path) -> Option<Component> {
    let bytes = std::fs::read(path).ok()?;
    let expected = std::fs::read_to_string(digest_path(path)).ok();
    if expected.as_deref().map(str::trim) != Some(digest(&bytes).as_str()) {
        tracing::warn!(path = %path.display(), "discarding a cached artifact that does not match its digest; recompiling");
        let _ = std::fs::remove_file(path);
        return None;
    }
    // SAFETY: the bytes are exactly those this host's `serialize` wrote into its own
    // artifact directory for this engine configuration (the key is in the name, the digest
    // beside it matches); wasmtime additionally checks version and settings compatibility.
    match unsafe { Component::deserialize(engine, &bytes) } {
        Ok(component) => Some(component),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "discarding unusable cached artifact");
            None
        }
    }
}

/// Writes an artifact and its digest so that a crash at any point leaves either the old
/// state or a complete pair: each goes to a file of its own name first, is synced, then
/// renamed into place (digest first: an artifact without a matching digest is discarded).
fn write_checked(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let unique = format!("{}.{}", std::process::id(), uuid::Uuid::new_v4().simple());
    let write = |target: &Path, content: &[u8]| -> std::io::Result<()> {
        let tmp = target.with_extension(format!("{unique}.tmp"));
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(content)?;
        file.sync_all()?;
        std::fs::rename(&tmp, target)
    };
    write(&digest_path(path), digest(bytes).as_bytes())?;
    write(path, bytes)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::kernel_at_least;

    #[test]
    fn an_artifact_that_does_not_match_its_digest_is_not_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x-1.cwasm");
        super::write_checked(&path, b"artifact bytes").unwrap();
        assert_eq!(std::fs::read_to_string(super::digest_path(&path)).unwrap(), super::digest(b"artifact bytes"));
        // A torn write: the bytes no longer match; loading refuses before deserialising.
        std::fs::write(&path, b"artifact by").unwrap();
        let engine = wasmtime::Engine::default();
        assert!(super::load_checked(&engine, &path).is_none());
        assert!(!path.exists(), "the damaged artifact is removed");
    }

    #[test]
    fn kernel_release_is_compared_by_major_then_minor() {
        assert!(kernel_at_least("6.18.44-fc-v657\n", (6, 7)));
        assert!(kernel_at_least("6.7.0", (6, 7)));
        assert!(!kernel_at_least("6.6.87-generic", (6, 7)));
        assert!(!kernel_at_least("5.15.0", (6, 7)));
        assert!(kernel_at_least("7.0", (6, 7)));
        assert!(!kernel_at_least("unknown", (6, 7)));
    }
}
