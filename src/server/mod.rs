//! Start-up and the shards.
//!
//! [`prepare`] does all the expensive, fallible work once, on the main
//! thread: fetch, compile and check every guest, build the first route
//! table generation. [`run`] binds one SO_REUSEPORT socket per shard,
//! starts one pinned glommio executor per shard, waits until all are
//! serving, then serves reloads on the main thread until a stop signal,
//! and waits for the shards to drain.
//!
//! - `listener`: binding the per-shard sockets.
//! - `generation`: building a route table generation from a configuration
//!   (at start and on each reload).
//! - `routes`: the route table, one generation shared by all shards and
//!   each shard's own pools for it.
//! - `reload`: reloads, asked for by SIGHUP, `POST /reload` or `watch`.
//! - `shard`: one executor's state and its accept loop.
//! - `connection`: the HTTP/1.1 loop of one client connection.
//! - `shutdown`: signals, and the drain of requests in flight.
//! - `watch`: `--watch`, reloads when files change.
//! - `platform`: io_uring check, descriptor limit, CPU list.

mod connection;
mod generation;
mod listener;
pub mod platform;
pub mod reload;
pub mod routes;
mod shard;
mod shutdown;
mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::admin::{self, AdminState, ReloadLink};
use crate::config::{Config, HandlerSpec, KeyValueBackend};
use crate::error::StartupError;
use crate::kv::StoreThread;
use crate::logging::Logging;
use crate::sources::Progress;
use crate::stats::{Health, ShardStats};
use crate::wasm::{CompileCache, ModuleCache, Runtime};
use reload::{Current, Reloader};
use routes::Generation;
use shutdown::{Control, ShardFlags};

/// What shards share for the whole run, read-only.
pub struct Shared {
    /// The configuration the server started with. Its restart-only
    /// settings hold for the whole run (a reload that changes one is
    /// refused); the rest is read from the current generation's.
    pub config: Arc<Config>,
    pub runtime: Runtime,
}

/// Everything [`run`] starts from.
pub struct Prepared {
    pub shared: Shared,
    /// The route table every shard starts with: generation 1.
    pub generation: Arc<Generation>,
    /// Compiled guests, kept for reloads.
    cache: ModuleCache,
}

/// Fetches, compiles and checks everything the configuration names, for
/// `shards`.
pub fn prepare(config: Config, shards: usize) -> Result<Prepared, StartupError> {
    let runtime = Runtime::new(&config.server.engine, shards, &config.routes)
        .map_err(|e| StartupError::Engine(format!("{e:#}")))?;
    let disk = match &config.server.compile_cache_dir {
        Some(dir) => Some(CompileCache::open(dir).map_err(StartupError::CompileCache)?),
        None => None,
    };
    let mut cache = ModuleCache::new(disk);
    let generation = Arc::new(generation::build(config, 1, &runtime, &mut cache, &Progress::new())?);
    Ok(Prepared {
        shared: Shared {
            config: generation.config.clone(),
            runtime,
        },
        generation,
        cache,
    })
}

/// Starts the `store` thread and opens the embedded stores routes use, so
/// that one that cannot be opened stops the start with its reason.
fn start_stores(config: &Config) -> Result<StoreThread, StartupError> {
    let stores = StoreThread::start(&config.key_value)
        .map_err(|e| StartupError::KeyValue(format!("cannot start the store thread: {e}")))?;
    open_used_stores(&stores, config).map_err(StartupError::KeyValue)?;
    Ok(stores)
}

/// Opens the embedded stores `config`'s routes list (at start, and for a
/// reload before it is applied).
fn open_used_stores(stores: &StoreThread, config: &Config) -> Result<(), String> {
    let mut used: Vec<&str> = Vec::new();
    for route in &config.routes {
        if let HandlerSpec::Wasm(spec) = &route.handler {
            for name in &spec.key_value_stores {
                let backend = config.key_value.get(name).map(|c| &c.backend);
                let embedded = matches!(backend, Some(KeyValueBackend::Embedded { .. }));
                if embedded && !used.contains(&name.as_str()) {
                    used.push(name);
                }
            }
        }
    }
    stores.open(&used)
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

/// How the server is run, beyond its configuration.
pub struct RunOptions {
    /// The configuration file, read again on each reload.
    pub config_path: PathBuf,
    /// Reload when the configuration or a local module file changes.
    pub watch: bool,
}

/// Runs the server until a stop signal and a drain; meanwhile the main
/// thread serves reloads.
pub fn run(
    prepared: Prepared,
    placement: Vec<usize>,
    logging: Logging,
    options: RunOptions,
) -> Result<Stopped, StartupError> {
    let Prepared {
        shared,
        generation,
        cache,
    } = prepared;
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
    let current = Arc::new(Current::new(generation.clone()));
    let (events, event_queue) = mpsc::channel();
    if let Some(admin) = &shared.config.admin {
        let link = ReloadLink {
            current: current.clone(),
            events: events.clone(),
            pending: Arc::default(),
        };
        start_admin(admin.listen_address, &stats, &health, &logging, link)?;
    }
    let flags = Arc::new(ShardFlags::new(placement.len()));
    let control = Control::start(
        flags.clone(),
        health.clone(),
        logging.clone(),
        current.clone(),
        events.clone(),
    )?;

    // Before the shards: a watch that cannot start stops the start, not a
    // server already taking traffic.
    let watcher = if options.watch {
        let watcher = watch::Watcher::start(&generation.config, events.clone());
        Some(watcher.map_err(|e| StartupError::Watch(e.to_string()))?)
    } else {
        None
    };
    let stores = start_stores(&shared.config)?;
    let shared = Arc::new(shared);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let mut handles = Vec::with_capacity(placement.len());
    let mut mailboxes = Vec::with_capacity(placement.len());
    for (id, (cpu, socket)) in placement.iter().copied().zip(sockets).enumerate() {
        let (mailbox, inbox) = mpsc::channel();
        mailboxes.push(mailbox);
        let start = shard::ShardStart {
            id,
            cpu,
            shared: shared.clone(),
            generation: generation.clone(),
            inbox,
            socket,
            ready: ready_tx.clone(),
            flags: flags.clone(),
            stats: stats[id].clone(),
            logging: logging.clone(),
            stores: stores.clone(),
        };
        handles.push(shard::spawn(start).map_err(|message| StartupError::Shard { id, message })?);
    }
    drop(ready_tx);
    // Held by the shards and `current` from now on: freed once replaced.
    drop(generation);

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
    // Only the senders of the control and admin threads and the watcher
    // are left: the queue ends with them.
    drop(events);
    Reloader {
        last_number: current.generation().number,
        path: options.config_path,
        shared: shared.clone(),
        stores,
        cache,
        current,
        shards: mailboxes,
        flags,
        watcher,
    }
    .serve(event_queue);
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
    reload: ReloadLink,
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
        reload: Some(reload),
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
