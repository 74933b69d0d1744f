//! The wasmtime engine: pooling allocator, copy-on-write memory images, epoch ticker, and
//! compilation with an on-disk cache of precompiled artifacts.

use crate::settings::Settings;
use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
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
/// host wrote itself into its own data directory.
#[derive(Clone)]
pub struct Compiler {
    engine: Engine,
    cache_dir: PathBuf,
    engine_key: String,
}

impl Compiler {
    pub fn new(engine: Engine, cache_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(cache_dir)
            .with_context(|| format!("cannot create artifact directory {}", cache_dir.display()))?;
        let mut hasher = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = format!("{:016x}", hasher.finish());
        Ok(Self { engine, cache_dir: cache_dir.to_path_buf(), engine_key })
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
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || {
            if path.exists() {
                // SAFETY: the file is in this host's own artifact directory, written by
                // `serialize` below for exactly this engine configuration (the key is in
                // the name); wasmtime additionally checks version and settings compatibility.
                match unsafe { Component::deserialize_file(&engine, &path) } {
                    Ok(component) => return Ok((component, true)),
                    Err(e) => tracing::warn!(path = %path.display(), error = %e, "discarding unusable cached artifact"),
                }
            }
            let component = Component::new(&engine, &bytes).map_err(anyhow::Error::from)?;
            let serialized = component.serialize().map_err(anyhow::Error::from)?;
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, serialized)
                .and_then(|()| std::fs::rename(&tmp, &path))
                .with_context(|| format!("cannot write artifact {}", path.display()))?;
            Ok((component, false))
        })
        .await?
    }
}

#[cfg(test)]
mod tests {
    use super::kernel_at_least;

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
