//! The one wasmtime `Engine`, configured in one place.
//!
//! One engine for the process: modules are compiled once and every shard
//! instantiates them. Instances come from the pooling allocator, whose slots
//! keep their memory mapped (copy-on-write images, `keep_resident` pages
//! reset in place) so a fresh instance per request costs a few microseconds.

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

use crate::config::{EngineLimits, GuestLimits, HandlerSpec, RouteSpec};

/// Host functions run on the guest's fiber stack, glommio's I/O submission
/// included; this much stack is kept for them above the wasm stack limit.
const HOST_STACK_BYTES: usize = 512 << 10;

/// Pool slots (core instances, memories, tables) per instance slot: a Rust
/// component uses about three core instances and one memory, so a full
/// shard of components fits. The engine is always sized for components,
/// whatever the routes at start are: a reload may turn any route into one.
const CORE_SLOTS_PER_COMPONENT: u32 = 4;
/// The most core instances, memories or tables one component may have.
const MAX_PARTS_PER_COMPONENT: u32 = super::component::MAX_PARTS_PER_COMPONENT as u32;

/// What every instance slot is sized for: no route may ask more, at start
/// or on a reload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    pub max_memory: usize,
    pub max_table_elements: u32,
}

impl Bounds {
    /// `[server] max_memory_limit` and `max_table_elements`; an unset table
    /// bound is the larger of the default and the routes' at start.
    pub fn new(limits: &EngineLimits, routes: &[RouteSpec]) -> Bounds {
        let largest_table = routes
            .iter()
            .filter_map(|r| match &r.handler {
                HandlerSpec::Wasm(w) => Some(w.limits.table_elements_limit),
                HandlerSpec::Static(_) => None,
            })
            .max()
            .unwrap_or(0);
        Bounds {
            max_memory: limits.max_memory_limit,
            max_table_elements: limits
                .max_table_elements
                .unwrap_or(largest_table.max(crate::config::DEFAULT_TABLE_ELEMENTS)),
        }
    }

    /// Why `limits` does not fit in these bounds, if it does not: the
    /// route's setting at fault and the reason.
    pub fn check(&self, limits: &GuestLimits) -> Result<(), (&'static str, String)> {
        if limits.memory_limit > self.max_memory {
            return Err((
                "memory_limit",
                format!(
                    "memory_limit {} KiB is more than the engine's bound of {} KiB ([server] max_memory_limit; changing it needs a restart)",
                    limits.memory_limit >> 10,
                    self.max_memory >> 10
                ),
            ));
        }
        if limits.table_elements_limit > self.max_table_elements {
            return Err((
                "table_elements_limit",
                format!(
                    "table_elements_limit {} is more than the engine's bound of {} ([server] max_table_elements; changing it needs a restart)",
                    limits.table_elements_limit, self.max_table_elements
                ),
            ));
        }
        Ok(())
    }
}

/// Builds the engine for `shards` shards.
pub fn build(limits: &EngineLimits, bounds: Bounds, shards: usize) -> Result<Engine, wasmtime::Error> {
    let slots = limits
        .instance_slots_per_shard
        .saturating_mul(u32::try_from(shards).unwrap_or(u32::MAX));
    // A component instance is several core instances (the program, the
    // shims wit-component adds, an interpreter's parts), each a pool slot.
    let parts = CORE_SLOTS_PER_COMPONENT;

    let mut pool = PoolingAllocationConfig::new();
    pool.total_core_instances(slots.saturating_mul(parts))
        .total_memories(slots.saturating_mul(parts))
        .total_tables(slots.saturating_mul(parts))
        .total_component_instances(slots)
        .max_core_instances_per_component(MAX_PARTS_PER_COMPONENT)
        .max_memories_per_component(MAX_PARTS_PER_COMPONENT)
        .max_tables_per_component(MAX_PARTS_PER_COMPONENT)
        .total_stacks(slots)
        .max_memory_size(bounds.max_memory)
        .table_elements(bounds.max_table_elements.max(1) as usize)
        .linear_memory_keep_resident(limits.keep_resident_bytes)
        .table_keep_resident(limits.keep_resident_bytes.min(64 << 10))
        .pagemap_scan(Enabled::Auto);

    let mut config = Config::new();
    config
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .consume_fuel(true)
        .max_wasm_stack(limits.max_wasm_stack_bytes)
        .async_stack_size(limits.max_wasm_stack_bytes + HOST_STACK_BYTES)
        .cranelift_opt_level(OptLevel::Speed)
        // Components may need several memories; core guests get one (the
        // host ABI speaks of "the" memory; module/load.rs checks it).
        .wasm_multi_memory(true)
        .wasm_memory64(false)
        // WASI 0.3 components: async lifts and lowers, streams and futures.
        // Also part of every compiled guest's compatibility key, so turning
        // it on invalidated the compile cache once.
        .wasm_component_model_async(true);
    Engine::new(&config)
}

/// Instance slots of the whole process: components and stacks; core
/// instances and memories are [`CORE_SLOTS_PER_COMPONENT`] times as many.
pub fn total_slots(limits: &EngineLimits, shards: usize) -> u64 {
    u64::from(limits.instance_slots_per_shard) * shards as u64
}

/// Whether at least half of every kind of pool slot is free.
pub fn half_free(engine: &Engine, slots: u64) -> bool {
    let Some(used) = engine.pooling_allocator_metrics() else {
        return true;
    };
    let parts = slots * u64::from(CORE_SLOTS_PER_COMPONENT);
    used.core_instances() * 2 < parts && used.memories() as u64 * 2 < parts && used.component_instances() * 2 < slots
}
