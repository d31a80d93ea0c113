//! One request through one instance: refill fuel, call the entry function
//! on the shard's executor under a deadline, and classify what happened.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Instant;

use wasmtime::{Engine, Extern, Store, Trap, TypedFunc};

use super::ModuleGuest;
use super::host::{HostState, HostTrap};
use super::route::RouteContext;
use crate::http::{Request, Response};

/// Why a request to a wasm route got no response from its guest. Each maps
/// to one status, in one place: [`InvokeError::status`].
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("route busy: {0}")]
    Busy(&'static str),
    #[error("cannot instantiate: {0}")]
    Instantiate(String),
    #[error("guest ran out of fuel")]
    OutOfFuel,
    #[error("guest exceeded its timeout")]
    Timeout,
    #[error("guest trapped: {0}")]
    Trap(String),
    #[error("invalid guest response: {0}")]
    BadResponse(String),
    #[error("request cannot be given to the guest: {0}")]
    BadRequest(String),
}

impl InvokeError {
    pub fn status(&self) -> u16 {
        match self {
            InvokeError::Busy(_) | InvokeError::OutOfFuel => 503,
            InvokeError::Timeout => 504,
            InvokeError::Instantiate(_) | InvokeError::Trap(_) | InvokeError::BadResponse(_) => 500,
            InvokeError::BadRequest(_) => 400,
        }
    }
}

/// An instantiated guest, ready for a request.
pub struct Instance {
    store: Store<HostState>,
    entry: TypedFunc<(), ()>,
    /// Set while the guest waits on a backend (shared with its host state).
    io_wait: Rc<Cell<bool>>,
    /// Requests served so far (reuse mode).
    pub served: u64,
}

/// How a call ended, as far as the instance's future is concerned.
pub enum Outcome {
    /// The entry function returned; the instance is still sound.
    Returned(Result<Response, InvokeError>),
    /// It trapped, ran out of fuel or time: never use the instance again.
    Failed(InvokeError),
}

impl Instance {
    pub async fn new(engine: &Engine, guest: &ModuleGuest, route: &Rc<RouteContext>) -> Result<Instance, InvokeError> {
        let ModuleGuest { pre, entry, memory } = guest;
        let mut store = Store::new(engine, HostState::new(route.clone(), false));
        store.limiter(|state| &mut state.limits);
        // A start function runs on this fuel.
        store
            .set_fuel(route.limits.fuel)
            .map_err(|e| InvokeError::Instantiate(e.to_string()))?;
        let instance = pre.instantiate_async(&mut store).await.map_err(instantiate_error)?;
        let entry = match instance.get_module_export(&mut store, entry) {
            Some(Extern::Func(f)) => f
                .typed::<(), ()>(&store)
                .map_err(|e| InvokeError::Instantiate(e.to_string()))?,
            _ => return Err(InvokeError::Instantiate("entry function missing".into())),
        };
        store.data_mut().memory = memory
            .as_ref()
            .and_then(|m| instance.get_module_export(&mut store, m))
            .and_then(Extern::into_memory);
        let io_wait = store.data().backends.io_wait.clone();
        Ok(Instance {
            store,
            entry,
            io_wait,
            served: 0,
        })
    }

    /// Runs the entry function for `request`. Returns the request (so the
    /// connection keeps its buffers), the outcome and the fuel consumed.
    pub async fn call(&mut self, request: Request, deadline: Instant) -> (Request, Outcome, u64) {
        let state = self.store.data_mut();
        state.reset();
        state.request = Some(request);
        let limits = state.route().limits;
        let fuel_ready = self
            .store
            .set_fuel(limits.fuel)
            .and_then(|()| self.store.fuel_async_yield_interval(Some(limits.fuel_yield_interval)));
        let result = match fuel_ready {
            Ok(()) => drive_guest(deadline, self.entry.call_async(&mut self.store, ()), &self.io_wait).await,
            Err(e) => Ok(Err(e)),
        };
        let fuel_used = limits.fuel.saturating_sub(self.store.get_fuel().unwrap_or(0));
        self.served += 1;
        let state = self.store.data_mut();
        let request = state.request.take().unwrap_or_default();
        // Sockets belong to the request: close them whatever happened.
        state.backends.close_all();
        if state.log.dropped > 0 {
            tracing::warn!(route = %state.route().label, dropped = state.log.dropped, "guest log limit (max_log_bytes) reached; messages dropped");
        }
        let outcome = match result {
            Err(TimedOut) => Outcome::Failed(InvokeError::Timeout),
            Ok(Err(e)) => Outcome::Failed(classify_trap(&e)),
            Ok(Ok(())) => Outcome::Returned(finish_response(state)),
        };
        (request, outcome, fuel_used)
    }
}

/// Why an instance could not be made: a full pool is a 503, anything else
/// a 500.
pub fn instantiate_error(e: wasmtime::Error) -> InvokeError {
    if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>().is_some() {
        InvokeError::Busy("no free instance slot on this shard (raise server.instance_slots_per_shard)")
    } else {
        InvokeError::Instantiate(format!("{e:#}"))
    }
}

pub fn classify_trap(e: &wasmtime::Error) -> InvokeError {
    if let Some(trap) = e.downcast_ref::<Trap>() {
        return match trap {
            Trap::OutOfFuel => InvokeError::OutOfFuel,
            other => InvokeError::Trap(other.to_string()),
        };
    }
    if let Some(host) = e.downcast_ref::<HostTrap>() {
        return InvokeError::Trap(host.to_string());
    }
    InvokeError::Trap(e.to_string())
}

/// Turns what the guest built into a response, or the reason it cannot be.
fn finish_response(state: &mut HostState) -> Result<Response, InvokeError> {
    let built = &mut state.response;
    if let Some(fault) = built.fault.take() {
        return Err(InvokeError::BadResponse(fault));
    }
    if let Some(declared) = built.declared_length.take() {
        let actual = built.body.len().to_string();
        if declared != actual.as_bytes() {
            tracing::warn!(
                route = %state.route.label,
                declared = %String::from_utf8_lossy(&declared),
                actual = %actual,
                "guest Content-Length disagrees with its body; sending the real length"
            );
        }
    }
    let built = &mut state.response;
    Ok(Response {
        status: built.status.unwrap_or(200),
        reason: std::mem::take(&mut built.reason),
        headers: std::mem::take(&mut built.headers),
        body: std::mem::take(&mut built.body),
    })
}

/// The deadline passed before the future finished.
pub struct TimedOut;

/// Polls `future` until it completes or `deadline` passes. The clock is
/// checked on every poll (a computing guest comes back here at each fuel
/// yield, so it cannot outrun its deadline by more than one yield interval)
/// and a timer wakes the task if the future waits on something else.
pub async fn with_deadline<F: Future>(deadline: Instant, future: F) -> Result<F::Output, TimedOut> {
    drive(deadline, future, None).await
}

/// Like [`with_deadline`], for a guest call. `io_wait` tells a guest
/// suspended on a backend (set by the host functions in `net`) from a guest
/// that yielded because its fuel slice ran out. After such a yield the
/// guest waits for a one-microsecond timer before it continues: timers fire
/// when the shard polls for I/O, so the shard looks at its other
/// connections between every two slices of a computing guest instead of
/// only at its preempt timer.
async fn drive_guest<F: Future>(deadline: Instant, future: F, io_wait: &Cell<bool>) -> Result<F::Output, TimedOut> {
    drive(deadline, future, Some(io_wait)).await
}

async fn drive<F: Future>(deadline: Instant, future: F, io_wait: Option<&Cell<bool>>) -> Result<F::Output, TimedOut> {
    let mut future = std::pin::pin!(future);
    let mut deadline_timer: Option<glommio::timer::Timer> = None;
    let mut let_io_in: Option<glommio::timer::Timer> = None;
    std::future::poll_fn(|cx| {
        let now = Instant::now();
        if now >= deadline {
            return Poll::Ready(Err(TimedOut));
        }
        if let Some(pause) = let_io_in.as_mut() {
            if Pin::new(pause).poll(cx).is_pending() {
                return Poll::Pending;
            }
            let_io_in = None;
        }
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Ok(output));
        }
        if io_wait.is_some_and(|waiting| !waiting.get()) {
            // A fuel yield: wasmtime has already woken the task; the pause
            // timer holds the guest until the next I/O poll.
            let mut pause = glommio::timer::Timer::new(YIELD_PAUSE);
            let _ = Pin::new(&mut pause).poll(cx);
            let_io_in = Some(pause);
        }
        let timer = deadline_timer.get_or_insert_with(|| glommio::timer::Timer::new(deadline - now));
        match Pin::new(timer).poll(cx) {
            Poll::Ready(_) => Poll::Ready(Err(TimedOut)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// How long a guest that yielded waits: just long enough to let the shard
/// poll for I/O once.
const YIELD_PAUSE: std::time::Duration = std::time::Duration::from_micros(1);
