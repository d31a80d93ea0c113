//! WASI 0.2 components (`wasi:http/incoming-handler`): one request per
//! instance at a time. Take a turn, take a ready instance or make a store,
//! hand the guest the request, and run it as its own task on the shard.
//! Dropping the [`Exchange`] cancels the guest (its instance, its backend
//! connections); a finished exchange lets the guest run to its end under
//! its deadline.
//!
//! A guest that returns with its response unfinished has failed: its body
//! is cut short, never ended as if complete. With `instance = "reuse"` an
//! instance whose handler returned cleanly goes back to the route's
//! `ready` list for the next request, unless it has served its quota or
//! kept host resources of the request; a failed instance is never reused.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use tokio::sync::oneshot;
use wasmtime::{Engine, Store};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyPre};

use super::body::ChannelBody;
use super::exchange::{Exchange, admit, log_failure, to_http_request};
use super::outbound::ShardHttp;
use super::state::{ComponentState, Held, new_store};
use crate::config::{DEFAULT_MAX_REQUESTS_PER_INSTANCE, GuestLimits, InstancePolicy};
use crate::deadline::with_deadline;
use crate::http::Request;
use crate::wasm::Warmed;
use crate::wasm::failure::{InvokeError, classify_trap, instantiate_error};
use crate::wasm::route::RouteContext;
use crate::wasm::turns::{Turn, Turns};

/// Host resources a reused instance may keep between requests: stdin,
/// stdout and stderr streams, with room to spare. More means the guest
/// leaks a handle per request, and its instance is replaced.
const MAX_HELD_RESOURCES: usize = 8;

/// A WASI 0.2 component route on one shard.
pub struct IncomingPool {
    inner: Rc<Inner>,
}

struct Inner {
    engine: Engine,
    pre: ProxyPre<ComponentState>,
    context: Rc<RouteContext>,
    turns: Turns,
    http: Rc<ShardHttp>,
    /// Instantiated and waiting for a request: prepared at start-up
    /// (`warm_instances`, either mode) or returned after a clean request
    /// (reuse mode).
    ready: RefCell<Vec<Instance>>,
}

/// A store, with the guest's exports once it has been instantiated.
struct Instance {
    store: Store<ComponentState>,
    proxy: Option<Proxy>,
    served: u64,
}

impl IncomingPool {
    pub fn new(engine: &Engine, pre: &ProxyPre<ComponentState>, context: RouteContext, http: &Rc<ShardHttp>) -> Self {
        IncomingPool {
            inner: Rc::new(Inner {
                engine: engine.clone(),
                pre: pre.clone(),
                turns: Turns::new(context.limits.max_concurrency, context.limits.max_queue),
                context: Rc::new(context),
                http: http.clone(),
                ready: RefCell::new(Vec::new()),
            }),
        }
    }

    pub fn limits(&self) -> &GuestLimits {
        &self.inner.context.limits
    }

    /// Instances alive on this shard for the route: ready plus running.
    pub fn live_instances(&self) -> usize {
        self.inner.ready.borrow().len() + self.inner.turns.running()
    }

    /// Prepares `warm_instances` instances, so the first requests do not
    /// pay for instantiation. Called once when the shard starts.
    pub async fn warm_up(&self, may_warm: &dyn Fn() -> bool) -> Warmed {
        let inner = &self.inner;
        let limits = &inner.context.limits;
        for _ in 0..limits.warm_instances.min(limits.max_concurrency) {
            if !may_warm() {
                return Warmed::SlotsShort;
            }
            match inner.instantiate().await {
                Ok(instance) => inner.ready.borrow_mut().push(instance),
                Err(e) => {
                    tracing::warn!(route = %inner.context.label, "cannot prepare a warm instance: {e}");
                    break;
                }
            }
        }
        Warmed::Done
    }

    /// Starts the guest on `request`, whose body arrives through `body`.
    /// Every failure to start is counted and logged here.
    pub async fn start(&self, request: &Request, body: ChannelBody) -> Result<Exchange, InvokeError> {
        let context = &self.inner.context;
        let (deadline, turn) = admit(context, &self.inner.turns).await?;
        self.begin(request, body, deadline, turn)
            .inspect_err(|e| log_failure(context, e, 0))
    }

    /// Readies an instance, hands it the request and spawns the guest.
    fn begin(
        &self,
        request: &Request,
        body: ChannelBody,
        deadline: Instant,
        turn: Turn,
    ) -> Result<Exchange, InvokeError> {
        let inner = &self.inner;
        let incoming = to_http_request(request, body).map_err(InvokeError::BadRequest)?;
        let ready = inner.ready.borrow_mut().pop();
        let mut instance = match ready {
            Some(instance) => instance,
            None => inner.new_store()?,
        };
        instance
            .store
            .set_fuel(inner.context.limits.fuel)
            .map_err(|e| InvokeError::Instantiate(e.to_string()))?;
        let (reply, response) = oneshot::channel();
        let mut http = instance.store.data_mut().http();
        let handles = http
            .new_incoming_request(Scheme::Http, incoming)
            .and_then(|req| Ok((req, http.new_response_outparam(reply)?)))
            .map_err(|e| InvokeError::Instantiate(format!("{e:#}")))?;

        let guest = glommio::spawn_local(run_guest(inner.clone(), instance, handles, deadline, turn));
        Ok(Exchange::p2(response, guest))
    }
}

impl Inner {
    /// A new store with the route's limits; the guest is instantiated in it
    /// when the request runs.
    fn new_store(&self) -> Result<Instance, InvokeError> {
        Ok(Instance {
            store: new_store(&self.engine, &self.context, &self.http, None)?,
            proxy: None,
            served: 0,
        })
    }

    /// A store with the guest instantiated in it, ahead of any request.
    async fn instantiate(&self) -> Result<Instance, InvokeError> {
        let mut instance = self.new_store()?;
        instance
            .store
            .set_fuel(self.context.limits.fuel)
            .map_err(|e| InvokeError::Instantiate(e.to_string()))?;
        instance.proxy = Some(self.instantiate_in(&mut instance.store).await?);
        Ok(instance)
    }

    async fn instantiate_in(&self, store: &mut Store<ComponentState>) -> Result<Proxy, InvokeError> {
        let proxy = self.pre.instantiate_async(store).await.map_err(instantiate_error)?;
        self.context.stats.instances_created.bump();
        Ok(proxy)
    }

    /// After a clean return: in reuse mode the instance goes back to `ready`
    /// (request-scoped state ended) until it has served its quota; otherwise
    /// it is dropped and its slot reset for the next instantiation.
    fn recycle(&self, mut instance: Instance, held: Held) {
        let limits = &self.context.limits;
        let InstancePolicy::Reuse { .. } = limits.instance else {
            return;
        };
        let max_requests = limits.instance.max_requests(DEFAULT_MAX_REQUESTS_PER_INSTANCE);
        instance.served += 1;
        if held.request {
            // A request's parts would tie this instance to a finished
            // request's channels and connections.
            tracing::debug!(route = %self.context.label, "guest kept parts of a request: instance replaced");
            return;
        }
        if held.handles > MAX_HELD_RESOURCES {
            tracing::warn!(route = %self.context.label, handles = held.handles, "guest keeps host handles between requests: instance replaced");
            return;
        }
        instance.store.data_mut().end_request();
        let mut ready = self.ready.borrow_mut();
        if instance.served < max_requests && ready.len() < limits.max_concurrency {
            ready.push(instance);
        }
    }
}

type Handles = (
    wasmtime::component::Resource<wasmtime_wasi_http::p2::types::HostIncomingRequest>,
    wasmtime::component::Resource<wasmtime_wasi_http::p2::types::HostResponseOutparam>,
);

/// The guest's whole run: instantiate unless warm or reused, call `handle`,
/// classify the end. Holds the route turn until the guest is done.
async fn run_guest(
    pool: Rc<Inner>,
    mut instance: Instance,
    (request, outparam): Handles,
    deadline: Instant,
    _turn: Turn,
) -> Result<(), InvokeError> {
    let context = &pool.context;
    let call = async {
        let proxy = match instance.proxy.take() {
            Some(proxy) => proxy,
            None => pool.instantiate_in(&mut instance.store).await?,
        };
        proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut instance.store, request, outparam)
            .await
            .map_err(|e| classify_trap(&e))?;
        Ok(proxy)
    };
    let result = with_deadline(deadline, call).await;
    let fuel_used = context
        .limits
        .fuel
        .saturating_sub(instance.store.get_fuel().unwrap_or(0));
    context.stats.fuel_used.add(fuel_used);
    let error = match result {
        Ok(Ok(proxy)) => {
            let held = instance.store.data_mut().held();
            if !held.response {
                instance.proxy = Some(proxy);
                pool.recycle(instance, held);
                return Ok(());
            }
            InvokeError::BadResponse("guest returned without finishing its response".into())
        }
        Ok(Err(e)) => e,
        Err(_) => InvokeError::Timeout,
    };
    log_failure(context, &error, fuel_used);
    Err(error)
}
