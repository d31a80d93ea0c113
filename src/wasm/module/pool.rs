//! A route's instances on one shard: bounded concurrency, a bounded wait
//! queue, and the recycle policy (`fresh` or `reuse`).
//!
//! Accounting invariant: every request that gets a turn ends by either
//! returning its instance to `ready` (reuse, after a clean return) or
//! dropping it; a failed instance is never returned.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use wasmtime::Engine;

use super::ModuleGuest;
use super::invoke::{Instance, Outcome};
use crate::config::{DEFAULT_MAX_REQUESTS_PER_INSTANCE, GuestLimits, InstancePolicy};
use crate::http::{Request, Response};
use crate::wasm::Warmed;
use crate::wasm::failure::InvokeError;
use crate::wasm::route::RouteContext;
use crate::wasm::turns::Turns;

pub struct ModulePool {
    engine: Engine,
    guest: ModuleGuest,
    context: Rc<RouteContext>,
    /// Instantiated and waiting for a request: prepared ahead (fresh mode)
    /// or returned after a clean request (reuse mode).
    ready: RefCell<Vec<Instance>>,
    turns: Turns,
}

impl ModulePool {
    pub fn new(engine: &Engine, guest: &ModuleGuest, context: RouteContext) -> ModulePool {
        ModulePool {
            engine: engine.clone(),
            guest: guest.clone(),
            turns: Turns::new(context.limits.max_concurrency, context.limits.max_queue),
            context: Rc::new(context),
            ready: RefCell::new(Vec::new()),
        }
    }

    pub fn limits(&self) -> &GuestLimits {
        &self.context.limits
    }

    /// Instances alive on this shard for the route: ready plus running.
    pub fn live_instances(&self) -> usize {
        self.ready.borrow().len() + self.turns.running()
    }

    /// Prepares `warm_instances` instances, so the first requests do not
    /// pay for instantiation. Called once when the shard starts.
    pub async fn warm_up(&self, may_warm: &dyn Fn() -> bool) -> Warmed {
        let limits = &self.context.limits;
        for _ in 0..limits.warm_instances.min(limits.max_concurrency) {
            if !may_warm() {
                return Warmed::SlotsShort;
            }
            match Instance::new(&self.engine, &self.guest, &self.context).await {
                Ok(instance) => self.ready.borrow_mut().push(instance),
                Err(e) => {
                    tracing::warn!(route = %self.context.label, "cannot prepare a warm instance: {e}");
                    break;
                }
            }
        }
        Warmed::Done
    }

    /// Serves one request. Always gives the request back, so the connection
    /// keeps its buffers; also says how much fuel the guest used.
    pub async fn handle(&self, request: Request) -> (Request, Result<Response, InvokeError>, u64) {
        let limits = &self.context.limits;
        let started = Instant::now();
        let deadline = started + limits.timeout;
        let stats = &self.context.stats;
        stats.guest_requests.bump();

        let _turn = match self.turns.take(deadline).await {
            Ok(turn) => turn,
            Err(e) => {
                stats.rejected.bump();
                return (request, Err(self.log_failure(e, 0)), 0);
            }
        };

        let ready = self.ready.borrow_mut().pop();
        let mut instance = match ready {
            Some(instance) => instance,
            None => match Instance::new(&self.engine, &self.guest, &self.context).await {
                Ok(instance) => {
                    stats.instances_created.bump();
                    instance
                }
                Err(e) => return (request, Err(self.log_failure(e, 0)), 0),
            },
        };

        let (request, outcome, fuel_used) = instance.call(request, deadline).await;
        stats.fuel_used.add(fuel_used);
        let result = match outcome {
            Outcome::Returned(result) => {
                self.recycle(instance);
                result.map_err(|e| self.log_failure(e, fuel_used))
            }
            Outcome::Failed(e) => Err(self.log_failure(e, fuel_used)),
        };
        (request, result, fuel_used)
    }

    /// After a clean return: a reused instance goes back to `ready` until it
    /// has served its quota; a fresh one is dropped (its slot is reset for
    /// the next instantiation).
    fn recycle(&self, instance: Instance) {
        let limits = &self.context.limits;
        if let InstancePolicy::Reuse { .. } = limits.instance
            && instance.reusable()
        {
            let max_requests = limits.instance.max_requests(DEFAULT_MAX_REQUESTS_PER_INSTANCE);
            let mut ready = self.ready.borrow_mut();
            if instance.served < max_requests && ready.len() < limits.max_concurrency {
                ready.push(instance);
            }
        }
    }

    /// Counts and logs a request that got no response from the guest.
    fn log_failure(&self, error: InvokeError, fuel_used: u64) -> InvokeError {
        if let Some(failure) = error.guest_failure() {
            self.context.stats.guest_failed(failure);
        }
        tracing::warn!(route = %self.context.label, status = error.status(), fuel_used, "{error}");
        error
    }
}
