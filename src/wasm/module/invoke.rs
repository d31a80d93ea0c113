//! One request through one instance: refill fuel, call the entry function
//! on the shard's executor under a deadline, and classify what happened.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

use wasmtime::{Engine, Extern, Store, TypedFunc};

use super::host::{HostState, HostTrap};
use super::{INITIALIZE, ModuleGuest, wasi};
use crate::deadline::{TimedOut, with_deadline_yielding};
use crate::http::{Request, Response};
use crate::wasm::failure::{InvokeError, classify_trap, instantiate_error};
use crate::wasm::route::RouteContext;

/// An instantiated guest, ready for a request.
pub struct Instance {
    store: Store<HostState>,
    entry: TypedFunc<(), ()>,
    /// Set while the guest waits on a backend (shared with its host state).
    io_wait: Rc<Cell<bool>>,
    /// Requests served so far (reuse mode).
    pub served: u64,
    /// It must not serve again: its guest exited (`proc_exit`) or it is a
    /// command, whose `main` runs once.
    spent: bool,
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
        let ModuleGuest {
            pre,
            entry,
            memory,
            initialize,
            runs_once,
            ..
        } = guest;
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
        if let Some(initialize) = initialize {
            // On the fuel left from instantiation, within one request's time.
            let function = match instance.get_module_export(&mut store, initialize) {
                Some(Extern::Func(f)) => f.typed::<(), ()>(&store).ok(),
                _ => None,
            };
            let function = function.ok_or_else(|| InvokeError::Instantiate(format!("{INITIALIZE} missing")))?;
            let deadline = Instant::now() + route.limits.timeout;
            let ran = with_deadline_yielding(deadline, function.call_async(&mut store, ()), &io_wait).await;
            let failure = match ran {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(classify(&e).to_string()),
                Err(TimedOut) => Some(InvokeError::Timeout.to_string()),
            };
            if let Some(failure) = failure {
                return Err(InvokeError::Instantiate(format!("{INITIALIZE} failed: {failure}")));
            }
            let fuel_used = route.limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
            tracing::debug!(route = %route.label, fuel_used, "{INITIALIZE} ran");
        }
        Ok(Instance {
            store,
            entry,
            io_wait,
            served: 0,
            spent: *runs_once,
        })
    }

    /// Whether it may serve another request.
    pub fn reusable(&self) -> bool {
        !self.spent
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
            Ok(()) => with_deadline_yielding(deadline, self.entry.call_async(&mut self.store, ()), &self.io_wait).await,
            Err(e) => Ok(Err(e)),
        };
        let fuel_used = limits.fuel.saturating_sub(self.store.get_fuel().unwrap_or(0));
        self.served += 1;
        let state = self.store.data_mut();
        let request = state.request.take().unwrap_or_default();
        // Sockets belong to the request: close them whatever happened.
        state.backends.close_all();
        state.log.end_request();
        let outcome = match result {
            Err(TimedOut) => Outcome::Failed(InvokeError::Timeout),
            Ok(Err(e)) => match wasi::exit_status(&e) {
                // `proc_exit(0)`: the program is done, and so is its
                // response as it built it.
                Some(0) => {
                    self.spent = true;
                    Outcome::Returned(finish_response(state))
                }
                Some(status) => Outcome::Failed(InvokeError::Exited(status)),
                None => Outcome::Failed(classify(&e)),
            },
            Ok(Ok(())) => Outcome::Returned(finish_response(state)),
        };
        (request, outcome, fuel_used)
    }
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

/// A host function's refusal is a trap with its own message (wasmtime
/// would otherwise describe it by its backtrace).
fn classify(e: &wasmtime::Error) -> InvokeError {
    match e.downcast_ref::<HostTrap>() {
        Some(host) => InvokeError::Trap(host.to_string()),
        None => classify_trap(e),
    }
}
