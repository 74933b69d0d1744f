//! Per-store resource limits that remember which limit a module hit, so the error response
//! can name it (a module that runs out of memory only shows up as an `unreachable` trap).
//! Memory is counted over all of an instance's linear memories together: a component with
//! several memories gets `memory_bytes` in all, not per memory.

use crate::settings::Limits;
use wasmtime::ResourceLimiter;

pub struct StoreLimiter {
    memory_bytes: usize,
    table_elements: usize,
    instances: usize,
    tables: usize,
    memories: usize,
    /// Set when the module asked for more linear memory than allowed.
    pub memory_limit_hit: bool,
    /// Largest linear memory the module grew to (all memories together), for metering.
    pub peak_memory_bytes: usize,
    /// Linear memory of all the instance's memories now.
    total_memory_bytes: usize,
}

impl StoreLimiter {
    pub fn new(limits: &Limits) -> Self {
        Self {
            memory_bytes: limits.memory_bytes as usize,
            table_elements: limits.table_elements,
            instances: limits.instances,
            tables: limits.tables,
            memories: limits.memories,
            memory_limit_hit: false,
            peak_memory_bytes: 0,
            total_memory_bytes: 0,
        }
    }
}

impl ResourceLimiter for StoreLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        // Called for a new memory too (current 0), so the total covers every memory.
        let total = self.total_memory_bytes - current.min(self.total_memory_bytes) + desired;
        if total > self.memory_bytes {
            self.memory_limit_hit = true;
            return Ok(false);
        }
        self.total_memory_bytes = total;
        self.peak_memory_bytes = self.peak_memory_bytes.max(total);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= self.table_elements)
    }

    fn instances(&self) -> usize {
        self.instances
    }
    fn tables(&self) -> usize {
        self.tables
    }
    fn memories(&self) -> usize {
        self.memories
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn memory_is_counted_over_all_memories_together() {
        let limits = Limits { memory_bytes: 10 << 20, ..Limits::default() };
        let mut limiter = StoreLimiter::new(&limits);
        // Two memories created with 4 MiB each: 8 MiB in all.
        assert!(limiter.memory_growing(0, 4 << 20, None).unwrap());
        assert!(limiter.memory_growing(0, 4 << 20, None).unwrap());
        // Growing one of them by 4 MiB would make 12 MiB: refused, and remembered.
        assert!(!limiter.memory_growing(4 << 20, 8 << 20, None).unwrap());
        assert!(limiter.memory_limit_hit);
        // By 2 MiB makes exactly 10 MiB: allowed.
        assert!(limiter.memory_growing(4 << 20, 6 << 20, None).unwrap());
        assert_eq!(limiter.peak_memory_bytes, 10 << 20);
    }
}
