//! Start-up and the shards.
//!
//! [`prepare`] does all the expensive, fallible work once, on the main
//! thread: compile and check every guest, build the first route table
//! generation. [`run`] binds one SO_REUSEPORT socket per shard, starts one
//! pinned glommio executor per shard, waits until all are serving, and then
//! waits for them to stop (SIGTERM/SIGINT drains them).
//!
//! - `listener`: binding the per-shard sockets.
//! - `routes`: the route table, one generation shared by all shards and
//!   each shard's own pools for it.
//! - `shard`: one executor's state and its accept loop.
//! - `connection`: the HTTP/1.1 loop of one client connection.
//! - `shutdown`: signals, and the drain of requests in flight.
//! - `platform`: io_uring check, descriptor limit, CPU list.

mod connection;
mod listener;
pub mod platform;
pub mod routes;
mod shard;
mod shutdown;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use crate::admin::{self, AdminState};
use crate::config::{Config, HandlerSpec, RouteSpec};
use crate::error::{GuestError, StartupError};
use crate::logging::Logging;
use crate::sources::{self, Progress, Unit};
use crate::stats::{Health, ShardStats};
use crate::wasm::{CompileCache, LoadError, ModuleCache, Runtime};
use routes::{Generation, SharedAnswer, SharedRoute};
use shutdown::{Control, ShardFlags};

/// Everything shards share: read-only after [`prepare`].
pub struct Shared {
    /// The configuration the server started with; shards read its server
    /// settings (routes are read through `generation`).
    pub config: Config,
    pub runtime: Runtime,
    /// The route table every shard starts with.
    pub generation: Arc<Generation>,
}

/// Fetches, compiles and checks everything the configuration names, for
/// `shards`.
pub fn prepare(config: Config, shards: usize) -> Result<Shared, StartupError> {
    let progress = Progress::new();
    let modules = sources::gather(&config, &progress).map_err(|e| {
        let error = LoadError::Source(e.error);
        match config.routes.iter().find(|r| r.index == e.route) {
            Some(route) => guest_error(&config, route, error),
            None => StartupError::Sources(error.to_string()),
        }
    })?;
    let runtime = Runtime::new(&config.server.engine, shards, &config.routes, modules.any_component())
        .map_err(|e| StartupError::Engine(format!("{e:#}")))?;
    let disk = match &config.server.compile_cache_dir {
        Some(dir) => Some(CompileCache::open(dir).map_err(StartupError::CompileCache)?),
        None => None,
    };
    let mut cache = ModuleCache::new(disk);
    let mut routes = Vec::with_capacity(config.routes.len());
    let guests = config
        .routes
        .iter()
        .filter(|r| matches!(r.handler, HandlerSpec::Wasm(_)))
        .count();
    let mut compiling =
        (guests > 0).then(|| progress.step(format!("compiling {guests} guest(s)"), Unit::Items, Some(guests as u64)));
    for route in &config.routes {
        let answer = match &route.handler {
            HandlerSpec::Static(spec) => SharedAnswer::native(spec),
            HandlerSpec::Wasm(spec) => {
                if spec.outbound.allowed_from_env && !spec.outbound.allowed.is_empty() {
                    let names: Vec<String> = spec.outbound.allowed.iter().map(|e| e.to_string()).collect();
                    tracing::info!(route = %route.name, "no allowed_outbound: allowing the backend address(es) in its env: {}", names.join(", "));
                }
                // gather() loaded every wasm route's module.
                let module = modules.get(spec).ok_or_else(|| {
                    let missing = LoadError::Invalid {
                        path: spec.source.to_string(),
                        message: "the module was not loaded".into(),
                    };
                    guest_error(&config, route, missing)
                })?;
                let guest = runtime
                    .load(&route.name, spec, module, &mut cache)
                    .map_err(|e| guest_error(&config, route, e))?;
                if let Some(step) = &mut compiling {
                    step.advance(1);
                }
                SharedAnswer::Guest {
                    guest,
                    spec: spec.clone(),
                    digest: module.digest,
                }
            }
        };
        routes.push(SharedRoute::new(route, answer));
    }
    let max_body = config
        .routes
        .iter()
        .map(|r| r.max_body_bytes)
        .max()
        .unwrap_or(0)
        .max(config.server.framing.max_body);
    let generation = Arc::new(Generation {
        number: 1,
        routes,
        max_body,
    });
    Ok(Shared {
        config,
        runtime,
        generation,
    })
}

/// A route's guest failed to load: located at its `file_path`.
fn guest_error(config: &Config, route: &RouteSpec, source: LoadError) -> StartupError {
    let at = match &route.handler {
        HandlerSpec::Wasm(spec) => spec.file_at,
        HandlerSpec::Static(_) => route.at,
    };
    StartupError::Guest(Box::new(GuestError {
        path: config.source.clone(),
        at,
        key: format!("applications[{}].file_path", route.index),
        route: route.name.clone(),
        source,
    }))
}

/// Which CPU each shard is pinned to.
pub fn plan_shards(
    requested_shards: Option<usize>,
    requested_cpus: Option<&[usize]>,
) -> Result<Vec<usize>, StartupError> {
    let available = platform::available_cpus();
    let cpus: Vec<usize> = match requested_cpus {
        Some(list) => {
            if let Some(missing) = list.iter().find(|c| !available.contains(c)) {
                return Err(StartupError::Cpus(format!(
                    "CPU {missing} is not available to this process (available: {available:?})"
                )));
            }
            list.to_vec()
        }
        None => available,
    };
    let shards = requested_shards.unwrap_or(cpus.len()).max(1);
    if shards > cpus.len() {
        tracing::warn!(
            shards,
            cpus = cpus.len(),
            "more shards than CPUs: some shards share a CPU"
        );
    }
    Ok((0..shards).map(|i| cpus[i % cpus.len()]).collect())
}

/// How a server that served ended.
pub struct Stopped {
    /// Requests in flight that the drain deadline cut.
    pub abandoned: u64,
}

/// Runs the server until a stop signal and a drain.
pub fn run(shared: Shared, placement: Vec<usize>, logging: Logging) -> Result<Stopped, StartupError> {
    platform::check_io_uring().map_err(StartupError::IoUring)?;
    let fd_limit = platform::raise_fd_limit();
    let server = &shared.config.server;
    let wanted_fds = (placement.len() * server.max_connections_per_shard) as u64;
    if fd_limit < wanted_fds {
        tracing::warn!(
            fd_limit,
            wanted_fds,
            "the open-files limit is lower than shards × max_connections_per_shard; accept will back off when it is reached"
        );
    }
    let (bound, sockets) = listener::bind_all(shared.config.listen_address, placement.len(), server.listen_backlog)
        .map_err(|source| StartupError::Bind {
            addr: shared.config.listen_address,
            source,
        })?;
    let health = Arc::new(Health::default());
    let stats: Vec<Arc<ShardStats>> = (0..placement.len()).map(|id| Arc::new(ShardStats::new(id))).collect();
    if let Some(admin) = &shared.config.admin {
        start_admin(admin.listen_address, &stats, &health, &logging)?;
    }
    let flags = Arc::new(ShardFlags::new(placement.len()));
    let control = Control::start(
        flags.clone(),
        health.clone(),
        logging.clone(),
        server.timeouts.shutdown_delay,
    )?;

    let shared = Arc::new(shared);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let mut handles = Vec::with_capacity(placement.len());
    for (id, (cpu, socket)) in placement.iter().copied().zip(sockets).enumerate() {
        let start = shard::ShardStart {
            id,
            cpu,
            shared: shared.clone(),
            socket,
            ready: ready_tx.clone(),
            flags: flags.clone(),
            stats: stats[id].clone(),
            logging: logging.clone(),
        };
        handles.push(shard::spawn(start).map_err(|message| StartupError::Shard { id, message })?);
    }
    drop(ready_tx);

    let mut failure = None;
    let deadline = Instant::now() + SHARD_START_TIMEOUT;
    for started in 0..handles.len() {
        let wait = deadline.saturating_duration_since(Instant::now());
        match ready_rx.recv_timeout(wait) {
            Ok(Ok(())) => {}
            Ok(Err((id, message))) => {
                failure.get_or_insert(StartupError::Shard { id, message });
            }
            Err(RecvTimeoutError::Timeout) => {
                // A stuck shard cannot be joined: leave, the exit ends it.
                return Err(StartupError::ShardsStuck {
                    waiting: handles.len() - started,
                    total: handles.len(),
                    seconds: SHARD_START_TIMEOUT.as_secs(),
                });
            }
            Err(RecvTimeoutError::Disconnected) => {
                failure.get_or_insert(StartupError::ShardExited);
                break;
            }
        }
    }
    if let Some(failure) = failure {
        flags.stop_now();
        join_all(handles);
        control.close();
        return Err(failure);
    }
    health.set_started();
    tracing::info!(shards = placement.len(), "listening on {bound}");
    let abandoned = join_all(handles);
    control.close();
    tracing::info!("stopped");
    Ok(Stopped { abandoned })
}

/// Binds the admin listener (never SO_REUSEPORT: one socket, one thread)
/// and starts its thread.
fn start_admin(
    address: SocketAddr,
    stats: &[Arc<ShardStats>],
    health: &Arc<Health>,
    logging: &Logging,
) -> Result<(), StartupError> {
    let bind_error = |source| StartupError::Bind { addr: address, source };
    let listener = std::net::TcpListener::bind(address).map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    let (lines, access) = (logging.clone(), logging.clone());
    let state = AdminState {
        shards: stats.to_vec(),
        health: health.clone(),
        log_lines_dropped: Arc::new(move || lines.lines_dropped()),
        access_lines_dropped: Arc::new(move || access.access_lines_dropped()),
    };
    admin::spawn(listener, state).map_err(bind_error)?;
    tracing::info!("admin endpoints on http://{bound}");
    Ok(())
}

/// How long shards may take to start (executor, pools, warm instances)
/// before the server gives up instead of waiting for ever.
const SHARD_START_TIMEOUT: Duration = Duration::from_secs(120);

/// Waits for every shard; returns how many requests their drains cut.
fn join_all(handles: Vec<glommio::ExecutorJoinHandle<u64>>) -> u64 {
    let mut abandoned = 0;
    for handle in handles {
        match handle.join() {
            Ok(cut) => abandoned += cut,
            Err(e) => tracing::error!("shard thread failed: {e}"),
        }
    }
    abandoned
}
