//! Everything that touches wasmtime lives under this module, and the rest
//! of the server sees only this facade:
//!
//! - [`Runtime`]: the engine and the linkers, built once per process;
//! - [`Guest`]: a route's compiled, checked guest, shared by every shard;
//! - [`GuestPool`]: a route's instances on one shard, the one handler type
//!   for every guest kind: it takes a decoded request (and, for a guest
//!   that streams, the request body as it arrives) and gives an [`Answer`];
//! - [`Exchange`] and the body channel: a streamed answer in progress;
//! - [`InvokeError`], [`LoadError`]: what can go wrong, with its status.
//!
//! Behind it, one folder per guest kind:
//! - `module/`: core modules speaking the serverless-wasm ABI;
//! - `component/`: `wasi:http` components.
//!
//! and what both kinds share: `engine` (pooling allocator, fuel, stacks),
//! `load` (compile through the caches), `precompiled` (the compile cache on
//! disk), `turns` (a route's concurrency bound and wait queue), `deadline`
//! (a call under the request's deadline on the shard's timers), `failure`
//! (how a call fails), `route` (what an instance knows of its route),
//! `guest_log` (bounded guest logs), `limiter` (memory and table limits,
//! counting refused growth), `resolve` (backend names, off the
//! shard) and `shard_local` (the one `unsafe impl Send`).

mod component;
mod engine;
mod failure;
mod guest_log;
mod limiter;
mod load;
mod module;
mod precompiled;
mod route;
mod shard_clock;
mod shard_local;
mod turns;

use std::rc::Rc;
use std::sync::Arc;

use wasmtime::Engine;

pub use component::{BodyEnd, BodyPart, BodySender, ChannelBody, Exchange, ShardHttp, body_channel};
pub use failure::InvokeError;
pub use load::{LoadError, ModuleCache};
pub use module::{ABSENT, HOST_FUNCTIONS, tcp_error};
pub use precompiled::CompileCache;

use crate::config::{EngineLimits, InstancePolicy, RouteSpec, WasmSpec};
use crate::http::{Request, Response};
use crate::sources::LoadedModule;
use crate::stats::RouteStats;
use component::{ComponentGuest, ComponentPool};
use module::{ModuleGuest, ModulePool};
use route::RouteContext;

/// What a shard lends its guests, built once per shard on its thread: the
/// outbound HTTP client (and its connection pool) and the key-value stores.
pub struct ShardServices {
    pub http: Rc<ShardHttp>,
    pub key_value: Rc<crate::kv::ShardStores>,
}

/// A route's compiled, checked and pre-linked guest. Immutable and shared
/// by every shard.
pub struct Guest {
    kind: GuestKind,
}

enum GuestKind {
    /// A core module speaking the serverless-wasm ABI.
    Module(ModuleGuest),
    /// A component exporting a `wasi:http` handler (WASI 0.2 or 0.3).
    Component(ComponentGuest),
}

impl Guest {
    /// What `check` reports about the guest.
    pub fn kind(&self) -> &'static str {
        match &self.kind {
            GuestKind::Module(module) => module.kind(),
            GuestKind::Component(component) => component.kind(),
        }
    }

    /// What `instance = "reuse"` means for this guest, for `check`: its
    /// kind decides the defaults.
    pub fn reuse_quota(&self, limits: &crate::config::GuestLimits) -> String {
        let InstancePolicy::Reuse { max_concurrent, .. } = limits.instance else {
            return "fresh".into();
        };
        match &self.kind {
            GuestKind::Component(ComponentGuest::P3(_)) => format!(
                "max {} requests, {} at once",
                limits
                    .instance
                    .max_requests(crate::config::DEFAULT_MAX_REQUESTS_PER_P3_INSTANCE),
                max_concurrent.unwrap_or(crate::config::DEFAULT_MAX_CONCURRENT_REQUESTS_PER_INSTANCE)
            ),
            _ => format!(
                "max {} requests",
                limits
                    .instance
                    .max_requests(crate::config::DEFAULT_MAX_REQUESTS_PER_INSTANCE)
            ),
        }
    }

    /// Whether the route's `function` names its entry point (a component's
    /// is fixed by its world).
    pub fn has_named_entry(&self) -> bool {
        matches!(self.kind, GuestKind::Module(_))
    }
}

/// The linkers of both guest kinds.
struct Linkers {
    module: wasmtime::Linker<module::HostState>,
    component: wasmtime::component::Linker<component::ComponentState>,
}

/// The engine and the host functions, built once per process.
pub struct Runtime {
    engine: Engine,
    linkers: Linkers,
    bounds: engine::Bounds,
    /// Instance slots of the whole pool.
    total_slots: u64,
}

impl Runtime {
    /// The engine for `shards` shards, its bounds from `limits` (and, for
    /// an unset table bound, from the routes at start).
    pub fn new(limits: &EngineLimits, shards: usize, routes: &[RouteSpec]) -> Result<Runtime, wasmtime::Error> {
        let bounds = engine::Bounds::new(limits, routes);
        let engine = engine::build(limits, bounds, shards)?;
        let linkers = Linkers {
            module: module::linker(&engine)?,
            component: component::linker(&engine)?,
        };
        Ok(Runtime {
            engine,
            linkers,
            bounds,
            total_slots: engine::total_slots(limits, shards),
        })
    }

    /// Compiles (once per module, through `cache`) and checks one route's
    /// guest from its module's bytes.
    pub fn load(
        &self,
        name: &str,
        spec: &WasmSpec,
        module: &LoadedModule,
        cache: &mut ModuleCache,
    ) -> Result<Arc<Guest>, LoadError> {
        load::load(&self.engine, &self.linkers, name, spec, module, cache)
    }

    /// Whether a warm instance may be made now: only while at least half of
    /// the pool's slots are free, the other half being kept for requests
    /// (during a reload, two generations' instances share the pool).
    pub fn may_warm(&self) -> bool {
        engine::half_free(&self.engine, self.total_slots)
    }

    /// Why `spec`'s limits do not fit in the engine's bounds, if they do not:
    /// the setting at fault and the reason.
    pub fn check_bounds(&self, spec: &WasmSpec) -> Result<(), (&'static str, String)> {
        self.bounds.check(&spec.limits)
    }

    /// Core instances alive in the whole process (all shards), from the
    /// pooling allocator.
    pub fn live_instances(&self) -> u64 {
        self.engine
            .pooling_allocator_metrics()
            .map_or(0, |m| m.core_instances())
    }

    /// A shard's pool for one route, counting into `stats`.
    pub fn pool(
        &self,
        guest: &Guest,
        name: &str,
        spec: &WasmSpec,
        stats: Arc<RouteStats>,
        services: &ShardServices,
    ) -> GuestPool {
        let stores = services.key_value.for_route(&spec.key_value_stores);
        let context = RouteContext::new(name, spec, stats, stores);
        let kind = match &guest.kind {
            GuestKind::Module(module) => PoolKind::Module(ModulePool::new(&self.engine, module, context)),
            GuestKind::Component(component) => {
                PoolKind::Component(ComponentPool::new(&self.engine, component, context, &services.http))
            }
        };
        GuestPool { kind }
    }
}

/// How a warm-up ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Warmed {
    /// Every warm instance asked for was prepared (or could not be, and
    /// that was logged).
    Done,
    /// Stopped early: the pool's slots are kept for requests; instances
    /// are made on demand instead.
    SlotsShort,
}

/// A guest's answer to a request.
pub enum Answer {
    /// Complete: the guest built the whole response before it returned.
    Whole(Response),
    /// In progress: the head when the guest sets it, then the body as the
    /// guest writes it.
    Streamed(Exchange),
}

/// What became of a request handed to a guest.
pub struct Handled {
    pub answer: Result<Answer, InvokeError>,
    /// Fuel the guest used, when known by the time it answers (a streaming
    /// guest may still be running).
    pub fuel_used: Option<u64>,
}

/// A route's instances on one shard, whatever the guest's kind.
pub struct GuestPool {
    kind: PoolKind,
}

enum PoolKind {
    Module(ModulePool),
    Component(ComponentPool),
}

impl GuestPool {
    /// Whether the guest takes the request body as it arrives: then the
    /// connection hands it over as soon as the head is in, with the body
    /// channel. Otherwise it wants the request whole.
    pub fn streams_request_body(&self) -> bool {
        matches!(self.kind, PoolKind::Component(_))
    }

    /// Serves one request. `body` carries the request body as it arrives;
    /// `None` means it is all in `request.body`. The request is left in
    /// place (its buffers stay with the connection).
    pub async fn handle(&self, request: &mut Request, body: Option<ChannelBody>) -> Handled {
        match &self.kind {
            PoolKind::Module(pool) => {
                // A core module reads the body through the ABI, whole.
                let (back, result, fuel_used) = pool.handle(std::mem::take(request)).await;
                *request = back;
                Handled {
                    answer: result.map(Answer::Whole),
                    fuel_used: Some(fuel_used),
                }
            }
            PoolKind::Component(pool) => {
                let body = body.unwrap_or_else(|| component::whole_body(std::mem::take(&mut request.body)));
                Handled {
                    answer: pool.start(request, body).await.map(Answer::Streamed),
                    fuel_used: None,
                }
            }
        }
    }

    /// The route's instance policy, for the access log.
    pub fn instance_policy(&self) -> &'static str {
        let limits = match &self.kind {
            PoolKind::Module(pool) => pool.limits(),
            PoolKind::Component(pool) => pool.limits(),
        };
        match limits.instance {
            InstancePolicy::Fresh => "fresh",
            InstancePolicy::Reuse { .. } => "reuse",
        }
    }

    /// Prepares the route's `warm_instances`, so the first requests do not
    /// pay for instantiation, for as long as `may_warm` allows
    /// ([`Runtime::may_warm`]).
    pub async fn warm_up(&self, may_warm: &dyn Fn() -> bool) -> Warmed {
        match &self.kind {
            PoolKind::Module(pool) => pool.warm_up(may_warm).await,
            PoolKind::Component(pool) => pool.warm_up(may_warm).await,
        }
    }

    /// Instances alive on this shard for the route: ready plus running.
    pub fn live_instances(&self) -> usize {
        match &self.kind {
            PoolKind::Module(pool) => pool.live_instances(),
            PoolKind::Component(pool) => pool.live_instances(),
        }
    }
}
