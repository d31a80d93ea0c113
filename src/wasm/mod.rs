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

mod abi;
mod engine;
mod host;
mod imported_memory;
mod invoke;
mod load;
mod net;
mod pool;
mod route;
mod shard_local;

use std::sync::Arc;

use wasmtime::{Engine, InstancePre, Linker, ModuleExport};

pub use abi::{ABSENT, HOST_FUNCTIONS};
pub use invoke::InvokeError;
pub use load::{LoadError, ModuleCache};
pub use net::code as tcp_error;
pub use pool::RoutePool;
pub use route::RouteStats;

use crate::config::{EngineLimits, RouteSpec, WasmSpec};
use host::HostState;

/// A route's compiled, checked and pre-linked guest. Immutable and shared
/// by every shard.
pub enum Guest {
    /// A core module speaking the serverless-wasm ABI.
    Module(ModuleGuest),
}

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
        }
    }
}

/// The engine and the host functions, built once per process.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
}

impl Runtime {
    pub fn new(limits: &EngineLimits, shards: usize, routes: &[RouteSpec]) -> Result<Runtime, wasmtime::Error> {
        let engine = engine::build(limits, shards, routes)?;
        let linker = abi::linker(&engine)?;
        Ok(Runtime { engine, linker })
    }

    /// Compiles (once per file, through `cache`) and checks one route's guest.
    pub fn load(&self, label: &str, spec: &WasmSpec, cache: &mut ModuleCache) -> Result<Arc<Guest>, LoadError> {
        load::load(&self.engine, &self.linker, label, spec, cache)
    }

    /// Core instances alive in the whole process (all shards), from the
    /// pooling allocator.
    pub fn live_instances(&self) -> u64 {
        self.engine
            .pooling_allocator_metrics()
            .map_or(0, |m| m.core_instances())
    }

    /// A shard's pool for one route.
    pub fn pool(&self, guest: Arc<Guest>, label: String, spec: &WasmSpec) -> RoutePool {
        RoutePool::new(&self.engine, guest, label, spec)
    }
}
