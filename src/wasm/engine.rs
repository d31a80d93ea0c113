//! The one wasmtime `Engine`, configured in one place.
//!
//! One engine for the process: modules are compiled once and every shard
//! instantiates them. Instances come from the pooling allocator, whose slots
//! keep their memory mapped (copy-on-write images, `keep_resident` pages
//! reset in place) so a fresh instance per request costs a few microseconds.

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

use crate::config::{EngineLimits, HandlerSpec, RouteSpec};

/// Host functions run on the guest's fiber stack, glommio's I/O submission
/// included; this much stack is kept for them above the wasm stack limit.
const HOST_STACK_BYTES: usize = 512 << 10;

/// Pool slots (core instances, memories, tables) per instance slot when
/// some route is a component: a Rust component uses about three core
/// instances and one memory, so a full shard of components still fits.
const CORE_SLOTS_PER_COMPONENT: u32 = 4;
/// The most core instances, memories or tables one component may have.
const MAX_PARTS_PER_COMPONENT: u32 = super::component::MAX_PARTS_PER_COMPONENT as u32;

/// Builds the engine for `shards` shards and these routes.
pub fn build(
    limits: &EngineLimits,
    shards: usize,
    routes: &[RouteSpec],
    with_components: bool,
) -> Result<Engine, wasmtime::Error> {
    // The largest memory any route may grow to bounds every slot.
    let max_memory = routes
        .iter()
        .filter_map(|r| match &r.handler {
            HandlerSpec::Wasm(w) => Some(w.limits.memory_limit),
            HandlerSpec::Static(_) => None,
        })
        .max()
        .unwrap_or(crate::config::WASM_PAGE);
    let max_table = routes
        .iter()
        .filter_map(|r| match &r.handler {
            HandlerSpec::Wasm(w) => Some(w.limits.table_elements_limit as usize),
            HandlerSpec::Static(_) => None,
        })
        .max()
        .unwrap_or(0)
        .max(1);
    let slots = limits
        .instance_slots_per_shard
        .saturating_mul(u32::try_from(shards).unwrap_or(u32::MAX));
    // A component instance is several core instances (the program, the
    // shims wit-component adds, an interpreter's parts), each a pool slot.
    let parts = if with_components { CORE_SLOTS_PER_COMPONENT } else { 1 };

    let mut pool = PoolingAllocationConfig::new();
    pool.total_core_instances(slots.saturating_mul(parts))
        .total_memories(slots.saturating_mul(parts))
        .total_tables(slots.saturating_mul(parts))
        .total_component_instances(slots)
        .max_core_instances_per_component(MAX_PARTS_PER_COMPONENT)
        .max_memories_per_component(MAX_PARTS_PER_COMPONENT)
        .max_tables_per_component(MAX_PARTS_PER_COMPONENT)
        .total_stacks(slots)
        .max_memory_size(max_memory)
        .table_elements(max_table)
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
        // Core guests get one memory (the host ABI speaks of "the" memory;
        // load.rs checks it); components may need more.
        .wasm_multi_memory(with_components)
        .wasm_memory64(false);
    Engine::new(&config)
}
