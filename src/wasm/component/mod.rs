//! The second guest kind: standard `wasi:http/proxy` components (WASI 0.2),
//! the same `.wasm` that `wasmtime serve` and Spin run.
//!
//! wasmtime-wasi and wasmtime-wasi-http provide the interfaces; three
//! pieces are replaced so that everything stays on the shard's executor
//! and no tokio thread starts behind the shards' backs:
//! - `clock`: sleeping guests wait on glommio timers, not `tokio::time`;
//! - `outbound`: outgoing HTTP is our own client on the shard, under the
//!   route's outbound policy;
//! - `state`: stdout/stderr go to the server log.
//!
//! `exchange` runs one request: the guest runs as its own task while the
//! connection streams the request body in and the response body out.

mod body;
mod clock;
mod exchange;
mod outbound;
mod state;

use std::rc::Rc;

use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

pub use body::{BodyEnd, BodySender, ChannelBody, channel as body_channel, whole as whole_body};
pub use exchange::{BodyPart, ComponentPool, Exchange};
use outbound::OutboundHooks;
pub use outbound::ShardHttp;
pub use state::ComponentState;
pub use state::MAX_PARTS_PER_COMPONENT;

use crate::config::WasmSpec;
use crate::wasm::route::RouteContext;

/// A compiled, linked component that exports `wasi:http/incoming-handler`.
pub struct ComponentGuest {
    pre: ProxyPre<ComponentState>,
}

/// Every WASI 0.2 interface (what language toolchains import besides the
/// proxy world), wasi:http, and our replacements.
pub fn linker(engine: &Engine) -> wasmtime::Result<Linker<ComponentState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    linker.allow_shadowing(true);
    clock::shadow_monotonic_clock(&mut linker)?;
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
    let pre = ProxyPre::new(pre).map_err(|e| {
        format!("is a component but not a wasi:http proxy: it must export wasi:http/incoming-handler@0.2.x ({e:#})")
    })?;
    let guest = ComponentGuest { pre };
    trial_instantiate(engine, &guest, label, spec)?;
    Ok(guest)
}

fn trial_instantiate(engine: &Engine, guest: &ComponentGuest, label: &str, spec: &WasmSpec) -> Result<(), String> {
    let context = Rc::new(RouteContext::trial(label, spec));
    let hooks = OutboundHooks::new(&context, None);
    let mut store = Store::new(engine, ComponentState::new(&context, hooks));
    store.limiter(|state| &mut state.limits);
    store.set_fuel(spec.limits.fuel).map_err(|e| e.to_string())?;
    futures_lite::future::block_on(guest.pre.instantiate_async(&mut store))
        .map(drop)
        .map_err(|e| format!("cannot be instantiated within its limits: {e:#}"))
}
