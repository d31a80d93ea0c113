//! WASI 0.3 components (`wasi:http/handler@0.3.0`, experimental upstream):
//! one instance may serve several requests at once.
//!
//! Each instance is a worker task on the shard that owns its store and
//! runs wasmtime's concurrent event loop (`run_concurrent`). Requests are
//! queued to an instance that still has room (fewer than
//! `max_concurrent_requests_per_instance` in flight, fewer than
//! `max_requests_per_instance` accepted), or to a new one; `fresh` is the
//! case of one request per instance. wasi-http's `Prepared` turns our
//! request into the guest's and the guest's response into an
//! `http::Response`, whose body streams out of the guest as the connection
//! reads it (bounded by the guest's stream, never buffered whole here).
//!
//! A request holds a [`RequestSlot`] from its start until its response
//! went out (or the connection gave up): the route turn, its place in the
//! instance, and its deadline. The deadlines are watched outside the event
//! loop, so a guest busy in a loop cannot hide them. A trap, a fuel
//! exhaustion, a memory failure or a deadline ends the whole instance: the
//! request at fault answers with its own status, the others in the
//! instance with 503, and the next requests go to a new instance.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::channel::oneshot;
use futures::stream::FuturesUnordered;
use wasmtime::component::Accessor;
use wasmtime::{AsContextMut, Engine};
use wasmtime_wasi_http::handler::{Prepared, Proxy};
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::{WasiBody, WasiHttpView};

use super::body::ChannelBody;
use super::exchange::{Exchange, admit, log_failure, to_http_request};
use super::outbound::ShardHttp;
use super::state::{ComponentState, new_store};
use crate::config::{
    DEFAULT_MAX_CONCURRENT_REQUESTS_PER_INSTANCE, DEFAULT_MAX_REQUESTS_PER_P3_INSTANCE, GuestLimits, InstancePolicy,
};
use crate::http::Request;
use crate::wasm::Warmed;
use crate::wasm::failure::{InvokeError, classify_trap, instantiate_error};
use crate::wasm::route::RouteContext;
use crate::wasm::turns::{Turn, Turns};

/// What wasi-http hands back for one request: the response (its body still
/// coming from the guest), or why there is none.
pub type P3Response = Result<http::Response<WasiBody>, wasmtime::Error>;

/// How often an instance with requests in flight, or idle, looks at the
/// clock at most: a deadline is enforced within this much.
const DEADLINE_LOOK: Duration = Duration::from_millis(100);

/// A WASI 0.3 component route on one shard.
pub struct ServicePool {
    shared: Rc<Shared>,
    /// Instances alive, accepting requests or finishing them. Dropping the
    /// pool (its generation replaced and its last request done) cancels
    /// their workers and frees their stores.
    instances: RefCell<Vec<Instance>>,
}

/// What every worker of the route needs; holds nothing of the pool, so
/// the pool's drop is what ends idle workers.
struct Shared {
    engine: Engine,
    pre: ServicePre<ComponentState>,
    context: Rc<RouteContext>,
    http: Rc<ShardHttp>,
    turns: Turns,
    max_requests: u64,
    max_concurrent: usize,
}

struct Instance {
    state: Rc<InstanceState>,
    _worker: glommio::Task<()>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        // The instance's life refers to its state: drop it here, or the
        // two would keep each other alive.
        self.state.life.borrow_mut().take();
    }
}

type Life = std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

/// One instance as the pool and its requests see it.
#[derive(Default)]
struct InstanceState {
    /// Requests handed to the instance, not yet started in it.
    queue: RefCell<VecDeque<Job>>,
    /// The event loop's, to wake it for a new request or a released slot.
    waker: RefCell<Option<Waker>>,
    /// The instance's whole life ([`run_instance`]), polled by its worker
    /// task, and also by a request's connection while it waits on the
    /// instance (see [`RequestSlot::drive`]). `None` once over.
    life: RefCell<Option<Life>>,
    /// The worker task's waker: whoever polls `life` polls it with this, so
    /// that the instance's own events always wake the worker.
    worker: RefCell<Option<Waker>>,
    /// Requests accepted so far (also the next request's id).
    accepted: Cell<u64>,
    /// The requests in the instance, by id: from their start until both
    /// their connection let go and their call in the guest returned (an
    /// abandoned request still counts, and its deadline still holds, until
    /// the guest is done with it).
    requests: RefCell<BTreeMap<u64, Tracked>>,
    /// Every request done but the guest still has tasks running: the
    /// instance ends at this instant at the latest.
    linger_until: Cell<Option<Instant>>,
    /// Instantiated and serving.
    serving: Cell<bool>,
    ended: Cell<bool>,
    failure: RefCell<Option<Failure>>,
}

struct Job {
    id: u64,
    request: http::Request<WasiBody>,
    reply: oneshot::Sender<P3Response>,
}

/// One request's hold on its instance.
struct Tracked {
    deadline: Instant,
    /// Its deadline ends the instance until its response head is handed
    /// over; after that the request is bounded by its connection's I/O
    /// timeouts and the instance's fuel, so that a slow reader cannot end
    /// its neighbours.
    watched: bool,
    /// Its connection still waits on it ([`RequestSlot`] alive).
    slot_held: bool,
    /// Its call into the guest has not returned.
    call_running: bool,
    /// The route turn, given back when the guest is done with it.
    _turn: Turn,
}

/// Why an instance ended early, for each of its requests.
struct Failure {
    /// The requests at fault: they answer with `error`; the others in the
    /// instance with 503.
    culprits: Vec<u64>,
    error: InvokeError,
}

impl ServicePool {
    pub fn new(engine: &Engine, pre: &ServicePre<ComponentState>, context: RouteContext, http: &Rc<ShardHttp>) -> Self {
        let limits = &context.limits;
        let (max_requests, max_concurrent) = match limits.instance {
            InstancePolicy::Fresh => (1, 1),
            InstancePolicy::Reuse { max_concurrent, .. } => (
                limits.instance.max_requests(DEFAULT_MAX_REQUESTS_PER_P3_INSTANCE),
                max_concurrent.unwrap_or(DEFAULT_MAX_CONCURRENT_REQUESTS_PER_INSTANCE),
            ),
        };
        ServicePool {
            shared: Rc::new(Shared {
                engine: engine.clone(),
                pre: pre.clone(),
                turns: Turns::new(limits.max_concurrency, limits.max_queue),
                context: Rc::new(context),
                http: http.clone(),
                max_requests,
                max_concurrent,
            }),
            instances: RefCell::new(Vec::new()),
        }
    }

    pub fn limits(&self) -> &GuestLimits {
        &self.shared.context.limits
    }

    /// Instances alive on this shard for the route.
    pub fn live_instances(&self) -> usize {
        let mut instances = self.instances.borrow_mut();
        instances.retain(|i| !i.state.ended.get());
        instances.len()
    }

    /// Prepares `warm_instances` instances (each ready for its share of
    /// requests).
    pub async fn warm_up(&self, may_warm: &dyn Fn() -> bool) -> Warmed {
        let limits = &self.shared.context.limits;
        for _ in 0..limits.warm_instances.min(limits.max_concurrency) {
            if !may_warm() {
                return Warmed::SlotsShort;
            }
            let state = self.spawn_instance();
            while !state.serving.get() && !state.ended.get() {
                glommio::timer::sleep(Duration::from_millis(1)).await;
            }
            if state.ended.get() {
                break;
            }
        }
        Warmed::Done
    }

    /// Queues `request` to an instance with room for it.
    pub async fn start(&self, request: &Request, body: ChannelBody) -> Result<Exchange, InvokeError> {
        let context = &self.shared.context;
        let (deadline, turn) = admit(context, &self.shared.turns).await?;
        let request = to_http_request(request, body)
            .map_err(InvokeError::BadRequest)
            .inspect_err(|e| log_failure(context, e, 0))?
            .map(ChannelBody::boxed);
        let instance = self.instance_with_room();
        let id = instance.accepted.get();
        instance.accepted.set(id + 1);
        let tracked = Tracked {
            deadline,
            watched: true,
            slot_held: true,
            call_running: true,
            _turn: turn,
        };
        instance.requests.borrow_mut().insert(id, tracked);
        let (reply, response) = oneshot::channel();
        instance.queue.borrow_mut().push_back(Job { id, request, reply });
        instance.wake();
        // Start the guest now, in this connection's turn.
        instance.drive();
        Ok(Exchange::p3(
            response,
            RequestSlot {
                instance,
                id,
                context: context.clone(),
            },
        ))
    }

    fn instance_with_room(&self) -> Rc<InstanceState> {
        let shared = &self.shared;
        let found = self.instances.borrow_mut().iter().find_map(|i| {
            let state = &i.state;
            let room = !state.ended.get()
                && state.accepted.get() < shared.max_requests
                && state.requests.borrow().len() < shared.max_concurrent;
            room.then(|| state.clone())
        });
        found.unwrap_or_else(|| self.spawn_instance())
    }

    fn spawn_instance(&self) -> Rc<InstanceState> {
        let state = Rc::new(InstanceState::default());
        *state.life.borrow_mut() = Some(Box::pin(run_instance(self.shared.clone(), state.clone())));
        let worker = glommio::spawn_local(work(state.clone()));
        let mut instances = self.instances.borrow_mut();
        instances.retain(|i| !i.state.ended.get());
        instances.push(Instance {
            state: state.clone(),
            _worker: worker,
        });
        state
    }
}

/// The worker task: polls the instance's life until it is over.
async fn work(state: Rc<InstanceState>) {
    std::future::poll_fn(|cx| {
        let known = state.worker.borrow().as_ref().is_some_and(|w| w.will_wake(cx.waker()));
        if !known {
            *state.worker.borrow_mut() = Some(cx.waker().clone());
        }
        match state.drive() {
            true => Poll::Ready(()),
            false => Poll::Pending,
        }
    })
    .await
}

impl InstanceState {
    /// Polls the instance's life once, with the worker's waker; `true` once
    /// it is over. Does nothing if it is being polled already (a guest's
    /// host call cannot re-enter it) or the worker has not started.
    fn drive(&self) -> bool {
        let Ok(mut life) = self.life.try_borrow_mut() else {
            return false;
        };
        let Some(running) = life.as_mut() else {
            return true;
        };
        let Some(waker) = self.worker.borrow().clone() else {
            return false;
        };
        if running
            .as_mut()
            .poll(&mut std::task::Context::from_waker(&waker))
            .is_ready()
        {
            *life = None;
            // Over inside a connection's turn: the worker ends too.
            waker.wake();
            return true;
        }
        false
    }

    /// Updates request `id`; forgets it once neither its connection nor its
    /// call holds it (which gives its turn back).
    fn update(&self, id: u64, change: impl FnOnce(&mut Tracked)) {
        let mut requests = self.requests.borrow_mut();
        let Some(tracked) = requests.get_mut(&id) else {
            return;
        };
        change(tracked);
        if !tracked.slot_held && !tracked.call_running {
            requests.remove(&id);
        }
    }

    /// The first deadline of the requests whose response head is due.
    fn first_deadline(&self) -> Option<Instant> {
        self.requests
            .borrow()
            .values()
            .filter(|t| t.watched)
            .map(|t| t.deadline)
            .min()
    }

    fn wake(&self) {
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }

    /// Every request it was given has been accepted and has let go.
    fn done(&self, max_requests: u64) -> bool {
        self.accepted.get() >= max_requests && self.requests.borrow().is_empty() && self.queue.borrow().is_empty()
    }

    fn fail(&self, failure: Failure) {
        self.failure.borrow_mut().get_or_insert(failure);
    }
}

/// A request's share of its instance, from its start until its response
/// went out whole or was abandoned.
pub struct RequestSlot {
    instance: Rc<InstanceState>,
    id: u64,
    context: Rc<RouteContext>,
}

impl RequestSlot {
    /// The request's own call failed (a trap in its task, or the guest
    /// answered with an error code).
    pub fn failed(&self, error: &wasmtime::Error) -> InvokeError {
        let error = match error.downcast_ref::<wasmtime_wasi_http::p3::bindings::http::types::ErrorCode>() {
            Some(code) => InvokeError::BadResponse(format!("guest answered with error {code:?}")),
            None => classify_trap(error),
        };
        log_failure(&self.context, &error, 0);
        error
    }

    /// The instance ended before this request got a response.
    pub fn instance_failure(&self) -> InvokeError {
        let failure = self.instance.failure.borrow();
        let error = match failure.as_ref() {
            Some(f) if f.culprits.contains(&self.id) => f.error.clone(),
            Some(f) => InvokeError::SharedFailure(f.error.to_string()),
            None => InvokeError::BadResponse("guest instance ended without answering".into()),
        };
        log_failure(&self.context, &error, 0);
        error
    }

    /// Whether the instance failed in a way that may have cut this
    /// request's body short: it timed out itself, or the failure's cause is
    /// unknown. A failure blamed on other requests leaves a body that
    /// ended as a complete one.
    pub fn instance_failed(&self) -> bool {
        match self.instance.failure.borrow().as_ref() {
            None => false,
            Some(f) => f.culprits.is_empty() || f.culprits.contains(&self.id),
        }
    }

    /// Runs the instance's event loop from the request's connection (when
    /// it hands over the request and while it waits for the response
    /// head). Without it, the guest runs only when the worker task's turn
    /// comes: on a busy shard a request would cross several rounds of the
    /// run queue, and the shard polls for I/O between rounds (every
    /// `preempt_timer_us`), which on loopback costs more than the guest
    /// (benches/RESULTS.md).
    pub fn drive(&self) {
        self.instance.drive();
    }

    /// The response head went to the connection: the request's deadline no
    /// longer ends the instance.
    pub fn head_sent(&self) {
        self.instance.update(self.id, |t| t.watched = false);
    }
}

impl Drop for RequestSlot {
    fn drop(&mut self) {
        self.instance.update(self.id, |t| t.slot_held = false);
        self.instance.wake();
    }
}

/// Why a worker's event loop ended early.
enum Ended {
    Error(wasmtime::Error),
    /// These requests passed their deadline.
    Timeout(Vec<u64>),
}

/// One instance's life: instantiate, serve what is queued to it until it
/// has served its quota and its requests let go, then drop the store.
async fn run_instance(shared: Rc<Shared>, state: Rc<InstanceState>) {
    let context = &shared.context;
    let fuel = context.limits.fuel;
    let instantiated = async {
        let mut store = new_store(&shared.engine, context, &shared.http, Some(shared.max_concurrent))?;
        store
            .set_fuel(fuel)
            .map_err(|e| InvokeError::Instantiate(e.to_string()))?;
        let service = shared
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(instantiate_error)?;
        Ok((store, Proxy::P3(service)))
    };
    // Instantiation is within the waiting requests' deadlines too.
    let late = async {
        let _ = watch_deadlines(&state).await;
        Err(InvokeError::Timeout)
    };
    let (mut store, proxy) = match futures_lite::future::or(instantiated, late).await {
        Ok(ready) => ready,
        Err(error) => {
            // Every request queued here answers with the instantiation's
            // own status.
            let culprits = state.requests.borrow().keys().copied().collect();
            state.fail(Failure { culprits, error });
            state.ended.set(true);
            state.queue.borrow_mut().clear();
            return;
        }
    };
    context.stats.instances_created.bump();
    state.serving.set(true);

    let ended = {
        let serving = store
            .run_concurrent(async |accessor: &Accessor<ComponentState>| serve(accessor, &proxy, &state, &shared).await);
        let serving = async { serving.await.and_then(|r| r).map_err(Ended::Error) };
        futures_lite::future::or(serving, watch_deadlines(&state)).await
    };
    // Fuel is counted at each refill; this is what the last ones used.
    context
        .stats
        .fuel_used
        .add(fuel.saturating_sub(store.get_fuel().unwrap_or(0)));
    state.ended.set(true);
    if let Err(ended) = ended {
        state.fail(failure(&state, ended, context));
    }
    // Requests queued but not started answer 503 (their reply is dropped).
    state.queue.borrow_mut().clear();
    drop(store);
}

/// Who answers what when the instance ended early; logs and counts it.
fn failure(state: &InstanceState, ended: Ended, context: &RouteContext) -> Failure {
    // The requests whose connection still waits for the head.
    let waiting: Vec<u64> = state
        .requests
        .borrow()
        .iter()
        .filter(|(_, t)| t.slot_held && t.watched)
        .map(|(id, _)| *id)
        .collect();
    let failure = match ended {
        Ended::Timeout(late) => Failure {
            culprits: late,
            error: InvokeError::Timeout,
        },
        Ended::Error(e) => Failure {
            // Alone in the instance, the request is the one at fault; among
            // several, wasmtime does not say which trapped.
            culprits: if state.requests.borrow().len() == 1 {
                waiting.clone()
            } else {
                Vec::new()
            },
            error: classify_trap(&e),
        },
    };
    // A request at fault counts its failure when it answers; with none
    // known, the instance's failure is counted here, once.
    if failure.culprits.is_empty()
        && let Some(kind) = failure.error.guest_failure()
    {
        context.stats.guest_failed(kind);
    }
    tracing::warn!(
        route = %context.label,
        requests = state.requests.borrow().len(),
        "guest instance ended: {}; its other requests answer 503",
        failure.error
    );
    failure
}

/// The event loop's side of an instance: start each queued request in the
/// guest, drive them, and end once the instance is done.
async fn serve(
    accessor: &Accessor<ComponentState>,
    proxy: &Proxy,
    state: &InstanceState,
    shared: &Shared,
) -> wasmtime::Result<()> {
    let mut calls = FuturesUnordered::new();
    let context = &shared.context;
    let fuel = context.limits.fuel;
    std::future::poll_fn(|cx| {
        loop {
            match calls.poll_next_unpin(cx) {
                Poll::Ready(Some((_, Err(e)))) => return Poll::Ready(Err(e)),
                Poll::Ready(Some((id, Ok(_)))) => {
                    state.update(id, |t| t.call_running = false);
                    continue;
                }
                Poll::Ready(None) | Poll::Pending => {}
            }
            let job = state.queue.borrow_mut().pop_front();
            if let Some(Job { id, request, reply }) = job {
                if reply.is_canceled() {
                    // Its client left before it started: not run for nobody.
                    state.update(id, |t| t.call_running = false);
                    continue;
                }
                // Each request that starts refills the instance's fuel.
                let prepared = accessor.with(|mut store| {
                    let mut store = store.as_context_mut();
                    let left = store.get_fuel().unwrap_or(0);
                    context.stats.fuel_used.add(fuel.saturating_sub(left));
                    store.set_fuel(fuel)?;
                    Prepared::new(store, proxy, request, <ComponentState as WasiHttpView>::http, reply)
                });
                match prepared {
                    Ok(prepared) => {
                        calls.push(async move { (id, prepared.run(accessor, std::future::pending()).await) })
                    }
                    Err(e) => return Poll::Ready(Err(e)),
                }
                continue;
            }
            *state.waker.borrow_mut() = Some(cx.waker().clone());
            if !calls.is_empty() {
                return Poll::Pending;
            }
            if accessor.poll_no_interesting_tasks(cx).is_pending() {
                // Background work of the guest's: bounded by the route's
                // timeout once every request is done.
                if state.done(shared.max_requests) && state.linger_until.get().is_none() {
                    state.linger_until.set(Some(Instant::now() + context.limits.timeout));
                }
                return Poll::Pending;
            }
            if state.done(shared.max_requests) {
                return Poll::Ready(Ok(()));
            }
            return Poll::Pending;
        }
    })
    .await
}

/// Resolves when a request of the instance passes its deadline before its
/// response head (an error), or when the guest's background work after the
/// last request has run out of time (not one). Runs beside the event loop,
/// not in it: a guest that keeps the store busy still yields (fuel) to the
/// shard, and this still runs.
async fn watch_deadlines(state: &InstanceState) -> Result<(), Ended> {
    loop {
        let now = Instant::now();
        if state.linger_until.get().is_some_and(|until| until <= now) {
            return Ok(());
        }
        let wait = match state.first_deadline() {
            Some(deadline) if deadline <= now => {
                let late = state
                    .requests
                    .borrow()
                    .iter()
                    .filter(|(_, t)| t.watched && t.deadline <= now)
                    .map(|(id, _)| *id)
                    .collect();
                return Err(Ended::Timeout(late));
            }
            Some(deadline) => (deadline - now).min(DEADLINE_LOOK),
            None => DEADLINE_LOOK,
        };
        glommio::timer::sleep(wait).await;
    }
}
