//! The data of a component's `Store`: the WASI and wasi:http contexts built
//! from the route, and the guest's stdout/stderr, which go to the server log.

use std::any::Any;
use std::rc::Rc;

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::body::{HostFutureTrailers, HostIncomingBody, HostOutgoingBody};
use wasmtime_wasi_http::p2::types::{
    HostFutureIncomingResponse, HostIncomingRequest, HostIncomingResponse, HostOutgoingRequest, HostOutgoingResponse,
    HostResponseOutparam,
};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::keyvalue::KeyValueCtx;
use super::outbound::{OutboundHooks, ShardHttp};
use crate::wasm::failure::InvokeError;
use crate::wasm::guest_log::GuestLog;
use crate::wasm::limiter::GuestLimiter;
use crate::wasm::route::RouteContext;

/// Core instances, memories and tables one component may create: a Rust
/// component has a handful, an interpreter-based one a few dozen.
pub const MAX_PARTS_PER_COMPONENT: usize = 64;

pub struct ComponentState {
    pub(super) table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    pub(super) hooks: OutboundHooks,
    pub(super) limits: GuestLimiter,
    /// Where the guest's stdout and stderr go.
    log: GuestLog,
    key_value: KeyValueCtx,
}

impl ComponentState {
    pub fn new(route: &Rc<RouteContext>, hooks: OutboundHooks) -> ComponentState {
        let log = GuestLog::new(route);
        // No preopened directories and no socket permissions: the
        // filesystem and socket interfaces are linked but deny everything.
        let mut wasi = route.wasi_builder(&log);
        let limits = GuestLimiter::new(
            &route.limits,
            MAX_PARTS_PER_COMPONENT,
            MAX_PARTS_PER_COMPONENT,
            route.stats.clone(),
        );
        let mut http = WasiHttpCtx::new();
        http.set_field_size_limit(FIELD_SIZE_LIMIT);
        ComponentState {
            table: ResourceTable::new(),
            wasi: wasi.build(),
            http,
            hooks,
            limits,
            log,
            key_value: KeyValueCtx::new(route),
        }
    }

    /// What `wasi:keyvalue` borrows: the resource table and the stores.
    pub(super) fn key_value_parts(&mut self) -> (&mut ResourceTable, &mut KeyValueCtx) {
        (&mut self.table, &mut self.key_value)
    }

    /// Ends a request on a reused instance, so that the next one starts
    /// with nothing of it but the guest's own memory: the request's backend
    /// client tasks are cancelled and the log budget is refilled.
    pub fn end_request(&mut self) {
        self.hooks.end_request();
        self.log.end_request();
    }

    /// What the guest still holds once its handler has returned.
    pub fn held(&mut self) -> Held {
        let mut held = Held::default();
        for entry in self.table.iter_mut() {
            held.handles += 1;
            let entry: &dyn Any = entry;
            if entry.is::<HostResponseOutparam>()
                || entry.is::<HostOutgoingResponse>()
                || entry.is::<HostOutgoingBody>()
            {
                held.response = true;
            } else if entry.is::<HostIncomingRequest>()
                || entry.is::<HostIncomingBody>()
                || entry.is::<HostFutureTrailers>()
                || entry.is::<HostOutgoingRequest>()
                || entry.is::<HostFutureIncomingResponse>()
                || entry.is::<HostIncomingResponse>()
            {
                held.request = true;
            }
        }
        held
    }
}

/// A store for one instance of a route's component, within the route's
/// memory, table and fuel-yield bounds (fuel is set per request).
pub fn new_store(
    engine: &Engine,
    context: &Rc<RouteContext>,
    http: &Rc<ShardHttp>,
    shared_by: Option<usize>,
) -> Result<Store<ComponentState>, InvokeError> {
    let mut hooks = OutboundHooks::new(context, Some(http));
    if let Some(requests) = shared_by {
        hooks.shared_by(requests);
    }
    let mut store = Store::new(engine, ComponentState::new(context, hooks));
    store.limiter(|state| &mut state.limits);
    store
        .fuel_async_yield_interval(Some(context.limits.fuel_yield_interval))
        .map_err(|e| InvokeError::Instantiate(e.to_string()))?;
    Ok(store)
}

/// Host resources a guest kept past the end of its handler. Streams are
/// children of these (the table refuses to drop a parent first), so the
/// parents tell what a stream belongs to.
#[derive(Default)]
pub struct Held {
    /// All handles: stdio streams are fine to keep, many are a leak.
    pub handles: usize,
    /// Its response, unfinished: an outparam never set, or a body never
    /// finished. Dropped with the store, wasi-http would end such a body
    /// as if it were complete.
    pub response: bool,
    /// Parts of its request or of its outgoing requests.
    pub request: bool,
}

/// Headers a guest may build per `fields` resource (in-memory size).
const FIELD_SIZE_LIMIT: usize = 64 << 10;

impl WasiView for ComponentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for ComponentState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}
