//! The first guest kind: core modules speaking the serverless-wasm ABI
//! (the original project's, extended), imported from module `env`.
//!
//! - `abi`: the functions' names, signatures and codes (definitions only).
//! - `host`: what a store carries, and bounds-checked guest memory access.
//! - `linker`: the `env` functions that build the response and read the
//!   request and the route's `env`.
//! - `backends`: a request's backend sockets, bounded.
//! - `net`: the TCP functions, on the shard's reactor.
//! - `imported_memory`: rewriting an `env.memory` import into a definition.
//! - `load`: checking a module against the ABI at start-up.
//! - `invoke`: one call under fuel and a deadline.
//! - `pool`: a route's instances on one shard (`fresh` or `reuse`).
//! - `wasi`: WASI preview 1, for modules built by ordinary toolchains.

mod abi;
mod backends;
mod host;
mod imported_memory;
mod invoke;
mod kv;
mod linker;
mod load;
mod net;
mod pool;
mod wasi;

use wasmtime::{InstancePre, ModuleExport};

pub use abi::{ABSENT, HOST_FUNCTIONS, tcp_error};
pub use host::HostState;
pub use linker::linker;
pub use load::{load, prepare};
pub use pool::ModulePool;

/// A WASI reactor's initializer: run once per instance, before its first
/// request.
const INITIALIZE: &str = "_initialize";
/// A WASI command's entry: its `main` runs once, so an instance whose entry
/// it is serves one request (whatever the route's instance policy).
const COMMAND_ENTRY: &str = "_start";

/// A compiled, checked and pre-linked core module. Immutable and shared by
/// every shard.
#[derive(Clone)]
pub struct ModuleGuest {
    pre: InstancePre<HostState>,
    /// The entry function, resolved once so requests skip the name lookup.
    entry: ModuleExport,
    memory: Option<ModuleExport>,
    initialize: Option<ModuleExport>,
    /// The entry is a command's `_start`.
    runs_once: bool,
    /// It imports WASI preview 1.
    uses_wasi: bool,
}

impl ModuleGuest {
    /// What `check` reports about it.
    pub fn kind(&self) -> &'static str {
        match (self.uses_wasi, self.initialize.is_some(), self.runs_once) {
            (_, _, true) => "core module (serverless-wasm ABI + WASI preview 1 command: an instance per request)",
            (true, true, false) => {
                "core module (serverless-wasm ABI + WASI preview 1 reactor: _initialize once per instance)"
            }
            (true, false, false) => "core module (serverless-wasm ABI + WASI preview 1)",
            (false, true, false) => "core module (serverless-wasm ABI; _initialize once per instance)",
            (false, false, false) => "core module (serverless-wasm ABI)",
        }
    }
}
