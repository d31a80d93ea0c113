//! The route table. A configuration load becomes one immutable
//! [`Generation`], shared read-only by every shard; each shard builds its
//! own [`ShardRoutes`] from it (its instance pools and counters) and keeps
//! it in one place, from which it can be replaced between requests. A
//! request holds the `ShardRoutes` it started with until it ends, so a
//! replaced generation lives on until its last request is answered.

use std::sync::Arc;

use crate::config::{Config, RoutePath, RouteSpec, StaticSpec, WasmSpec};
use crate::http::{Method, Response};
use crate::router::{Lookup, Router};
use crate::sources::Sha256Digest;
use crate::stats::{RouteStats, ShardStats};
use crate::wasm::{Guest, GuestPool, Runtime, ShardServices, Warmed};

/// One configuration's routes, with their guests compiled and checked.
pub struct Generation {
    /// 1 for the configuration the server started with, then one more per
    /// reload applied.
    pub number: u64,
    pub routes: Vec<SharedRoute>,
    /// The decoder's body limit: the largest any route accepts (routes with
    /// smaller limits check after routing).
    pub max_body: usize,
    /// The configuration it was built from: connections accepted while it
    /// is current read their `[server]` settings here.
    pub config: Arc<Config>,
}

impl Generation {
    /// The digest of the module of the route called `name`, if it runs one.
    pub fn module_digest(&self, name: &str) -> Option<Sha256Digest> {
        self.routes
            .iter()
            .find(|r| r.name == name)
            .and_then(SharedRoute::module_digest)
    }

    /// The digests of every route's module.
    pub fn module_digests(&self) -> impl Iterator<Item = Sha256Digest> + '_ {
        self.routes.iter().filter_map(SharedRoute::module_digest)
    }
}

/// A route as every shard sees it.
pub struct SharedRoute {
    pub name: String,
    pub method: Method,
    pub path: RoutePath,
    pub max_body_bytes: usize,
    pub answer: SharedAnswer,
}

pub enum SharedAnswer {
    /// A native answer, without wasm.
    Static(Response),
    Guest {
        guest: Arc<Guest>,
        spec: Box<WasmSpec>,
        /// The SHA-256 of the module's bytes as loaded (logged, shown by
        /// `check`).
        digest: Sha256Digest,
    },
}

impl SharedAnswer {
    /// A `static_body` route's answer, built once.
    pub fn native(spec: &StaticSpec) -> SharedAnswer {
        SharedAnswer::Static(Response {
            status: spec.status,
            reason: Vec::new(),
            headers: vec![(b"Content-Type".to_vec(), spec.content_type.as_bytes().to_vec())],
            body: spec.body.as_bytes().to_vec(),
        })
    }
}

impl SharedRoute {
    fn module_digest(&self) -> Option<Sha256Digest> {
        match &self.answer {
            SharedAnswer::Guest { digest, .. } => Some(*digest),
            SharedAnswer::Static(_) => None,
        }
    }

    pub fn new(spec: &RouteSpec, answer: SharedAnswer) -> SharedRoute {
        SharedRoute {
            name: spec.name.clone(),
            method: spec.method,
            path: spec.path.clone(),
            max_body_bytes: spec.max_body_bytes,
            answer,
        }
    }
}

/// A route on one shard: everything a request needs to be answered.
pub struct Route {
    pub name: String,
    pub method: Method,
    pub path: RoutePath,
    pub max_body_bytes: usize,
    pub stats: Arc<RouteStats>,
    pub handler: Handler,
}

impl Route {
    /// The guest's instance policy ("fresh", "reuse"), for the access log.
    pub fn instance_policy(&self) -> Option<&'static str> {
        match &self.handler {
            Handler::Guest(pool) => Some(pool.instance_policy()),
            Handler::Static(_) => None,
        }
    }
}

/// How a route is answered on this shard.
pub enum Handler {
    Static(Response),
    Guest(GuestPool),
}

/// A generation as one shard serves it. Counted in the shard's
/// `generations_alive` until dropped: a replaced generation is dropped, its
/// instances with it, when the last request that holds it ends.
pub struct ShardRoutes {
    generation: Arc<Generation>,
    router: Router<Route>,
    stats: Arc<ShardStats>,
}

impl Drop for ShardRoutes {
    fn drop(&mut self) {
        let alive = &self.stats.generations_alive;
        alive.set(alive.get().saturating_sub(1));
    }
}

impl ShardRoutes {
    /// Sets up the shard's pools and counters for `generation`.
    pub fn new(
        generation: &Arc<Generation>,
        runtime: &Runtime,
        stats: &Arc<ShardStats>,
        services: &ShardServices,
    ) -> ShardRoutes {
        stats.generations_alive.set(stats.generations_alive.get() + 1);
        let routes = generation.routes.iter().map(|shared| {
            let stats = stats.route(&shared.name);
            let handler = match &shared.answer {
                SharedAnswer::Static(response) => Handler::Static(response.clone()),
                SharedAnswer::Guest { guest, spec, .. } => {
                    Handler::Guest(runtime.pool(guest, &shared.name, spec, stats.clone(), services))
                }
            };
            let route = Route {
                name: shared.name.clone(),
                method: shared.method,
                path: shared.path.clone(),
                max_body_bytes: shared.max_body_bytes,
                stats,
                handler,
            };
            (route.method, route.path.clone(), route)
        });
        ShardRoutes {
            router: Router::build(routes),
            generation: generation.clone(),
            stats: stats.clone(),
        }
    }

    pub fn lookup(&self, method: Method, path: &[u8]) -> Lookup<'_, Route> {
        self.router.lookup(method, path)
    }

    pub fn generation(&self) -> &Generation {
        &self.generation
    }

    /// The routes that run guests.
    pub fn pools(&self) -> impl Iterator<Item = (&Route, &GuestPool)> {
        self.router.routes().iter().filter_map(|route| match &route.handler {
            Handler::Guest(pool) => Some((route, pool)),
            Handler::Static(_) => None,
        })
    }

    /// Prepares every route's warm instances while the runtime has slots
    /// to spare ([`Runtime::may_warm`]).
    pub async fn warm_up(&self, runtime: &Runtime) -> Warmed {
        for (_, pool) in self.pools() {
            if pool.warm_up(&|| runtime.may_warm()).await == Warmed::SlotsShort {
                return Warmed::SlotsShort;
            }
        }
        Warmed::Done
    }

    /// Copies each route's live instance count into its statistics, for a
    /// report.
    pub fn refresh_live_instances(&self) {
        for (route, pool) in self.pools() {
            route.stats.live_instances.set(pool.live_instances() as u64);
        }
    }
}
