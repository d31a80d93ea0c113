//! The second guest kind: standard `wasi:http` components, the same `.wasm`
//! that `wasmtime serve` and Spin run. WASI 0.2 components export
//! `wasi:http/incoming-handler` and serve one request per instance at a
//! time (`p2`); WASI 0.3 components (experimental upstream) export
//! `wasi:http/handler` and may serve several at once (`p3`). Which one a
//! component is, is read from its exports at load.
//!
//! wasmtime-wasi and wasmtime-wasi-http provide the interfaces; three
//! pieces are replaced so that everything stays on the shard's executor
//! and no tokio thread starts behind the shards' backs:
//! - `clock`: sleeping guests wait on glommio timers, not `tokio::time`;
//! - `outbound`: outgoing HTTP is our own client on the shard, under the
//!   route's outbound policy;
//! - `state`: stdout/stderr go to the server log.
//!
//! `exchange` is one request in progress, whatever the version: the guest
//! runs on the shard while the connection streams the request body in and
//! the response body out.

mod body;
mod clock;
mod exchange;
mod keyvalue;
mod outbound;
mod p2;
mod p3;
mod state;

use std::rc::Rc;

use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p3::bindings::ServicePre;

pub use body::{BodyEnd, BodySender, ChannelBody, channel as body_channel, whole as whole_body};
pub use exchange::{BodyPart, Exchange};
use outbound::OutboundHooks;
pub use outbound::ShardHttp;
use p2::IncomingPool;
use p3::ServicePool;
pub use state::ComponentState;
pub use state::MAX_PARTS_PER_COMPONENT;

use crate::config::{GuestLimits, WasmSpec};
use crate::http::Request;
use crate::wasm::Warmed;
use crate::wasm::failure::InvokeError;
use crate::wasm::route::RouteContext;

/// A compiled, linked component that exports a `wasi:http` handler.
pub enum ComponentGuest {
    /// `wasi:http/incoming-handler@0.2.x`.
    P2(ProxyPre<ComponentState>),
    /// `wasi:http/handler@0.3.0`.
    P3(ServicePre<ComponentState>),
}

impl ComponentGuest {
    /// What `check` and the logs call it.
    pub fn kind(&self) -> &'static str {
        match self {
            ComponentGuest::P2(_) => "wasi:http component (wasi:http/incoming-handler@0.2)",
            ComponentGuest::P3(_) => "wasi:http component (wasi:http/handler@0.3, concurrent)",
        }
    }
}

/// Every WASI 0.2 and 0.3 interface (what language toolchains import
/// besides the proxy world), wasi:http, and our replacements.
pub fn linker(engine: &Engine) -> wasmtime::Result<Linker<ComponentState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    wasmtime_wasi::p3::add_to_linker(&mut linker)?;
    wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
    keyvalue::add_to_linker(&mut linker)?;
    linker.allow_shadowing(true);
    clock::shadow_monotonic_clock(&mut linker)?;
    clock::shadow_p3_monotonic_clock(&mut linker)?;
    linker.allow_shadowing(false);
    Ok(linker)
}

/// Compiles and checks a component at start-up; `Err` says why it cannot
/// serve the route.
pub fn load(
    engine: &Engine,
    linker: &Linker<ComponentState>,
    label: &str,
    component: &Component,
    spec: &WasmSpec,
) -> Result<ComponentGuest, String> {
    let pre = linker
        .instantiate_pre(component)
        .map_err(|e| format!("cannot link: {e:#}"))?;
    let guest = match ProxyPre::new(pre.clone()) {
        Ok(p2) => ComponentGuest::P2(p2),
        Err(p2_error) => ComponentGuest::P3(ServicePre::new(pre).map_err(|p3_error| {
            format!(
                "is a component but not a wasi:http handler: it must export wasi:http/incoming-handler@0.2.x ({p2_error:#}) or wasi:http/handler@0.3.0 ({p3_error:#})"
            )
        })?),
    };
    if let (
        ComponentGuest::P2(_),
        crate::config::InstancePolicy::Reuse {
            max_concurrent: Some(_),
            ..
        },
    ) = (&guest, spec.limits.instance)
    {
        return Err(
            "max_concurrent_requests_per_instance applies only to wasi:http 0.3 components; this one is 0.2".into(),
        );
    }
    trial_instantiate(engine, &guest, label, spec)?;
    Ok(guest)
}

fn trial_instantiate(engine: &Engine, guest: &ComponentGuest, label: &str, spec: &WasmSpec) -> Result<(), String> {
    let context = Rc::new(RouteContext::trial(label, spec));
    let hooks = OutboundHooks::new(&context, None);
    let mut store = Store::new(engine, ComponentState::new(&context, hooks));
    store.limiter(|state| &mut state.limits);
    store.set_fuel(spec.limits.fuel).map_err(|e| e.to_string())?;
    let instantiated = match guest {
        ComponentGuest::P2(pre) => futures_lite::future::block_on(pre.instantiate_async(&mut store)).map(drop),
        ComponentGuest::P3(pre) => futures_lite::future::block_on(pre.instantiate_async(&mut store)).map(drop),
    };
    instantiated.map_err(|e| format!("cannot be instantiated within its limits: {e:#}"))
}

/// A component route on one shard.
pub enum ComponentPool {
    P2(IncomingPool),
    P3(ServicePool),
}

impl ComponentPool {
    pub fn new(engine: &Engine, guest: &ComponentGuest, context: RouteContext, http: &Rc<ShardHttp>) -> Self {
        match guest {
            ComponentGuest::P2(pre) => ComponentPool::P2(IncomingPool::new(engine, pre, context, http)),
            ComponentGuest::P3(pre) => ComponentPool::P3(ServicePool::new(engine, pre, context, http)),
        }
    }

    pub fn limits(&self) -> &GuestLimits {
        match self {
            ComponentPool::P2(pool) => pool.limits(),
            ComponentPool::P3(pool) => pool.limits(),
        }
    }

    /// Instances alive on this shard for the route.
    pub fn live_instances(&self) -> usize {
        match self {
            ComponentPool::P2(pool) => pool.live_instances(),
            ComponentPool::P3(pool) => pool.live_instances(),
        }
    }

    /// Prepares `warm_instances` instances, so the first requests do not
    /// pay for instantiation.
    pub async fn warm_up(&self, may_warm: &dyn Fn() -> bool) -> Warmed {
        match self {
            ComponentPool::P2(pool) => pool.warm_up(may_warm).await,
            ComponentPool::P3(pool) => pool.warm_up(may_warm).await,
        }
    }

    /// Starts the guest on `request`, whose body arrives through `body`.
    /// Every failure to start is counted and logged.
    pub async fn start(&self, request: &Request, body: ChannelBody) -> Result<Exchange, InvokeError> {
        match self {
            ComponentPool::P2(pool) => pool.start(request, body).await,
            ComponentPool::P3(pool) => pool.start(request, body).await,
        }
    }
}
