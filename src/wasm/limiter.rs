//! A store's resource limits (both guest kinds), counting what they refuse.
//!
//! A `memory.grow` past the route's `memory_limit` returns -1 to the guest
//! and does not trap by itself, so without a count an operator would only
//! see a guest misbehave. The limits themselves are wasmtime's
//! `StoreLimits`.

use std::sync::Arc;

use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};

use crate::config::GuestLimits;
use crate::stats::RouteStats;

pub struct GuestLimiter {
    limits: StoreLimits,
    stats: Arc<RouteStats>,
}

impl GuestLimiter {
    /// `parts`: how many instances, memories and tables a guest may have
    /// (one of each for a core module, several for a component).
    pub fn new(guest: &GuestLimits, parts: usize, tables: usize, stats: Arc<RouteStats>) -> GuestLimiter {
        let limits = StoreLimitsBuilder::new()
            .memory_size(guest.memory_limit)
            .table_elements(guest.table_elements_limit as usize)
            .instances(parts)
            .tables(tables)
            .memories(parts)
            .build();
        GuestLimiter { limits, stats }
    }
}

impl ResourceLimiter for GuestLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        if !allowed {
            self.stats.memory_grow_denied.bump();
        }
        Ok(allowed)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}
