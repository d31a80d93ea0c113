//! Everything that touches wasmtime lives under this module; the rest of the
//! server sees [`Runtime`] (built once), [`Guest`] (a route's compiled
//! guest, shared by all shards), [`RoutePool`] (a route's instances on one
//! shard) and [`InvokeError`].
//!
//! - `engine`: the engine configuration (pooling allocator, fuel, stacks).
//! - `load`: compile a guest and check it against the ABI at start-up.
//! - `imported_memory`: rewrite `env.memory` imports into defined memories.
//! - `abi`: the host functions of module `env` and their signatures.
//! - `host`: the store data and guest-memory access.
//! - `net`: guest TCP to backends.
//! - `route`: per-shard route context and counters.
//! - `shard_local`: the one `unsafe impl Send`, for shard-local store data.
//! - `pool`: concurrency and the fresh/reuse recycle policy.
//! - `invoke`: one call under fuel and a deadline, and its classification.
//! - `turns`: a route's concurrency bound and wait queue (both kinds).
//! - `component`: the second guest kind, wasi:http components.

mod abi;
pub mod component;
mod engine;
mod host;
mod imported_memory;
mod invoke;
mod load;
mod net;
mod pool;
mod precompiled;
mod route;
mod shard_local;
mod turns;

use std::rc::Rc;
use std::sync::Arc;

use wasmtime::{Engine, InstancePre, Linker, ModuleExport};

pub use abi::{ABSENT, HOST_FUNCTIONS};
pub use invoke::InvokeError;
pub use load::{LoadError, ModuleCache};
pub use net::code as tcp_error;
pub use pool::RoutePool;
pub use precompiled::CompileCache;
pub use route::RouteStats;

use component::{ComponentGuest, ComponentPool, ShardHttp};

use crate::config::{EngineLimits, RouteSpec, WasmSpec};
use host::HostState;

/// A route's compiled, checked and pre-linked guest. Immutable and shared
/// by every shard.
pub enum Guest {
    /// A core module speaking the serverless-wasm ABI.
    Module(ModuleGuest),
    /// A component exporting `wasi:http/incoming-handler`.
    Component(ComponentGuest),
}

#[derive(Clone)]
pub struct ModuleGuest {
    pre: InstancePre<HostState>,
    /// The entry function, resolved once so requests skip the name lookup.
    entry: ModuleExport,
    memory: Option<ModuleExport>,
}

impl Guest {
    /// What `check` reports about the guest.
    pub fn kind(&self) -> &'static str {
        match self {
            Guest::Module(_) => "core module (serverless-wasm ABI)",
            Guest::Component(_) => "wasi:http component (wasi:http/incoming-handler@0.2)",
        }
    }
}

/// The engine and the host functions, built once per process.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    component_linker: wasmtime::component::Linker<component::state::ComponentState>,
}

impl Runtime {
    pub fn new(limits: &EngineLimits, shards: usize, routes: &[RouteSpec]) -> Result<Runtime, wasmtime::Error> {
        let engine = engine::build(limits, shards, routes)?;
        let linker = abi::linker(&engine)?;
        let component_linker = component::linker(&engine)?;
        Ok(Runtime {
            engine,
            linker,
            component_linker,
        })
    }

    /// Compiles (once per file, through `cache`) and checks one route's guest.
    pub fn load(&self, label: &str, spec: &WasmSpec, cache: &mut ModuleCache) -> Result<Arc<Guest>, LoadError> {
        load::load(&self.engine, (&self.linker, &self.component_linker), label, spec, cache)
    }

    /// Core instances alive in the whole process (all shards), from the
    /// pooling allocator.
    pub fn live_instances(&self) -> u64 {
        self.engine
            .pooling_allocator_metrics()
            .map_or(0, |m| m.core_instances())
    }

    /// A shard's pool for one route.
    pub fn pool(&self, guest: &Guest, label: String, spec: &WasmSpec, http: &Rc<ShardHttp>) -> GuestPool {
        match guest {
            Guest::Module(module) => GuestPool::Module(RoutePool::new(&self.engine, module, label, spec)),
            Guest::Component(component) => {
                GuestPool::Component(ComponentPool::new(&self.engine, component, label, spec, http))
            }
        }
    }

    /// The pool of a core-module route (benchmarks and fuzzing drive one
    /// directly); `None` for a component.
    pub fn module_pool(&self, guest: &Guest, label: String, spec: &WasmSpec) -> Option<RoutePool> {
        match guest {
            Guest::Module(module) => Some(RoutePool::new(&self.engine, module, label, spec)),
            Guest::Component(_) => None,
        }
    }
}

/// A route's instances on one shard, by guest kind.
pub enum GuestPool {
    Module(RoutePool),
    Component(ComponentPool),
}

impl GuestPool {
    pub fn label(&self) -> &str {
        match self {
            GuestPool::Module(pool) => pool.label(),
            GuestPool::Component(pool) => pool.label(),
        }
    }

    pub fn stats(&self) -> &RouteStats {
        match self {
            GuestPool::Module(pool) => pool.stats(),
            GuestPool::Component(pool) => pool.stats(),
        }
    }

    pub fn live_instances(&self) -> usize {
        match self {
            GuestPool::Module(pool) => pool.live_instances(),
            GuestPool::Component(pool) => pool.live_instances(),
        }
    }
}
