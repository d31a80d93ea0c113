//! A shard: one pinned glommio executor, its listener, its connections and
//! its instance pools. Nothing here is shared with another shard except the
//! read-only [`Shared`]; counters are plain cells.

use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_lite::AsyncWriteExt;
use glommio::net::{TcpListener, TcpStream};
use glommio::{ExecutorJoinHandle, LocalExecutorBuilder, Placement};
use socket2::Socket;

use super::platform::LogOnce;
use super::{STOP_POLL, Shared, connection, listener};
use crate::config::{HandlerSpec, StaticSpec};
use crate::http::{self, DateCache, Response};
use crate::wasm::GuestPool;
use crate::wasm::component::ShardHttp;

/// glommio's registered-buffer pool is for file I/O, which we do not do.
const IO_MEMORY: usize = 1 << 20;
/// Accept back-off when out of descriptors or memory: from 10 ms to 1 s.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// A rejected connection gets this long to take its 503.
const REJECT_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// What a shard thread needs to start.
pub struct ShardStart {
    pub id: usize,
    pub cpu: usize,
    pub shared: Arc<Shared>,
    pub socket: Socket,
    pub ready: std::sync::mpsc::Sender<Result<(), String>>,
    pub stop: Arc<AtomicBool>,
    /// Set by SIGUSR1: log the shard's counters and live instances.
    pub report: Arc<AtomicBool>,
}

/// How a route is answered on this shard.
pub enum Handler {
    Static(Response),
    Wasm(GuestPool),
}

/// Per-shard counters.
#[derive(Default)]
pub struct ShardStats {
    pub requests: Cell<u64>,
    pub connections: Cell<u64>,
    pub rejected_connections: Cell<u64>,
    pub protocol_errors: Cell<u64>,
}

pub struct Shard {
    pub id: usize,
    pub shared: Arc<Shared>,
    /// Same index as the route table's routes.
    pub handlers: Vec<Handler>,
    pub date: DateCache,
    /// `x-serverless-shard` value, when `server.shard_header` is on.
    pub shard_header: Option<Vec<u8>>,
    /// Open client connections.
    connections: Cell<usize>,
    /// Connections with a request being answered.
    busy: Cell<usize>,
    /// Set on stop: connections finish their request and close.
    draining: Cell<bool>,
    pub stats: ShardStats,
    /// Outgoing HTTP of the shard's components.
    outbound_http: Rc<ShardHttp>,
    accept_errors: LogOnce,
    limit_reached: LogOnce,
}

pub fn spawn(start: ShardStart) -> Result<ExecutorJoinHandle<()>, String> {
    let server = &start.shared.config.server;
    let mut builder = LocalExecutorBuilder::new(Placement::Fixed(start.cpu))
        .name(&format!("shard-{}", start.id))
        .io_memory(IO_MEMORY)
        .preempt_timer(server.preempt_timer);
    if let Some(spin) = server.spin_before_park {
        builder = builder.spin_before_park(spin);
    }
    builder.spawn(move || run(start)).map_err(|e| e.to_string())
}

async fn run(start: ShardStart) {
    let ShardStart {
        id,
        cpu,
        shared,
        socket,
        ready,
        stop,
        report,
    } = start;
    let listener = listener::adopt(socket);
    let shard = match Shard::new(id, shared) {
        Ok(shard) => Rc::new(shard),
        Err(e) => {
            let _ = ready.send(Err(format!("shard {id}: {e}")));
            return;
        }
    };
    // wasi-http spawns its internal tasks on the ambient tokio runtime: for
    // this thread's whole life that is the shard's own (no threads).
    let outbound_http = shard.outbound_http.clone();
    let _tokio = outbound_http.enter();
    shard.warm_up().await;
    tracing::info!(shard = id, cpu, routes = shard.handlers.len(), "shard started");
    let _ = ready.send(Ok(()));
    drop(ready);

    futures_lite::future::or(
        shard.clone().accept_loop(listener),
        watch_signals(&shard, &stop, &report),
    )
    .await;
    shard.drain().await;
    shard.log_summary();
}

/// Returns when the server must stop; logs the shard's state on SIGUSR1.
async fn watch_signals(shard: &Shard, stop: &AtomicBool, report: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        if report.swap(false, Ordering::Relaxed) {
            shard.log_state();
        }
        glommio::timer::sleep(STOP_POLL).await;
    }
}

impl Shard {
    fn new(id: usize, shared: Arc<Shared>) -> Result<Shard, String> {
        let outbound_http = ShardHttp::new().map_err(|e| format!("cannot start the outbound HTTP runtime: {e}"))?;
        let handlers = shared
            .config
            .routes
            .iter()
            .zip(&shared.guests)
            .map(|(route, guest)| match (&route.handler, guest) {
                (HandlerSpec::Wasm(spec), Some(guest)) => {
                    Handler::Wasm(shared.runtime.pool(guest, route.label(), spec, &outbound_http))
                }
                (HandlerSpec::Static(spec), _) => Handler::Static(static_response(spec)),
                // prepare() loads a guest for every wasm route.
                (HandlerSpec::Wasm(_), None) => Handler::Static(http::answers::canned(500)),
            })
            .collect();
        Ok(Shard {
            id,
            shard_header: shared.config.server.shard_header.then(|| id.to_string().into_bytes()),
            shared,
            handlers,
            date: DateCache::default(),
            connections: Cell::new(0),
            busy: Cell::new(0),
            draining: Cell::new(false),
            stats: ShardStats::default(),
            outbound_http,
            accept_errors: LogOnce::new(Duration::from_secs(1)),
            limit_reached: LogOnce::new(Duration::from_secs(1)),
        })
    }

    async fn warm_up(&self) {
        for handler in &self.handlers {
            match handler {
                Handler::Wasm(GuestPool::Module(pool)) => pool.warm_up().await,
                Handler::Wasm(GuestPool::Component(pool)) => pool.warm_up().await,
                Handler::Static(_) => {}
            }
        }
    }

    pub fn draining(&self) -> bool {
        self.draining.get()
    }

    async fn accept_loop(self: Rc<Self>, listener: TcpListener) {
        let mut backoff = ACCEPT_BACKOFF_MIN;
        loop {
            match listener.accept().await {
                Ok(stream) => {
                    backoff = ACCEPT_BACKOFF_MIN;
                    if self.connections.get() >= self.shared.config.server.max_connections_per_shard {
                        self.reject(stream);
                        continue;
                    }
                    self.connections.set(self.connections.get() + 1);
                    ShardStats::bump(&self.stats.connections);
                    let shard = self.clone();
                    glommio::spawn_local(async move {
                        let _open = OpenConnection(&shard);
                        connection::serve(&shard, stream).await;
                    })
                    .detach();
                }
                Err(e) => {
                    let e = io::Error::from(e);
                    match e.raw_os_error() {
                        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                            if let Some(suppressed) = self.accept_errors.ready() {
                                tracing::error!(
                                    shard = self.id,
                                    suppressed,
                                    backoff_ms = backoff.as_millis() as u64,
                                    "accept failed: {e}; backing off"
                                );
                            }
                            glommio::timer::sleep(backoff).await;
                            backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                        }
                        _ => tracing::debug!(shard = self.id, "accept failed: {e}"),
                    }
                }
            }
        }
    }

    /// Over the connection limit: answer 503 and close, without holding up
    /// the accept loop.
    fn reject(&self, stream: TcpStream) {
        ShardStats::bump(&self.stats.rejected_connections);
        if let Some(suppressed) = self.limit_reached.ready() {
            tracing::warn!(
                shard = self.id,
                suppressed,
                limit = self.shared.config.server.max_connections_per_shard,
                "connection limit reached; refusing new connections"
            );
        }
        let mut answer = Vec::with_capacity(256);
        let date = self.date.now();
        let meta = http::encode::ResponseMeta {
            date: &date,
            head_only: false,
            keep_alive: false,
            extra_headers: &[],
        };
        http::write_response(&mut answer, &http::answers::canned(503), &meta);
        glommio::spawn_local(async move {
            let mut stream = stream;
            let _ = stream.set_write_timeout(Some(REJECT_WRITE_TIMEOUT));
            let _ = stream.write_all(&answer).await;
        })
        .detach();
    }

    /// Stops accepting (the accept loop was dropped), lets requests in
    /// flight finish, then returns; idle connections close with the shard.
    async fn drain(&self) {
        self.draining.set(true);
        let deadline = Instant::now() + self.shared.config.server.timeouts.drain;
        while self.busy.get() > 0 && Instant::now() < deadline {
            glommio::timer::sleep(Duration::from_millis(10)).await;
        }
        if self.busy.get() > 0 {
            tracing::warn!(
                shard = self.id,
                in_flight = self.busy.get(),
                "drain timeout: abandoning requests in flight"
            );
        }
    }

    pub fn request_started(&self) {
        self.busy.set(self.busy.get() + 1);
        ShardStats::bump(&self.stats.requests);
    }

    pub fn request_finished(&self) {
        self.busy.set(self.busy.get().saturating_sub(1));
    }

    /// What the soak samples: open connections, live instances, counters.
    fn log_state(&self) {
        let live: usize = self
            .handlers
            .iter()
            .map(|h| match h {
                Handler::Wasm(pool) => pool.live_instances(),
                Handler::Static(_) => 0,
            })
            .sum();
        tracing::info!(
            shard = self.id,
            connections_open = self.connections.get(),
            in_flight = self.busy.get(),
            live_instances = live,
            engine_instances = self.shared.runtime.live_instances(),
            requests = self.stats.requests.get(),
            protocol_errors = self.stats.protocol_errors.get(),
            "shard state"
        );
    }

    fn log_summary(&self) {
        let s = &self.stats;
        tracing::info!(
            shard = self.id,
            requests = s.requests.get(),
            connections = s.connections.get(),
            rejected_connections = s.rejected_connections.get(),
            protocol_errors = s.protocol_errors.get(),
            "shard stopped"
        );
        for handler in &self.handlers {
            if let Handler::Wasm(pool) = handler {
                let r = pool.stats();
                tracing::info!(
                    shard = self.id,
                    route = pool.label(),
                    requests = r.requests.get(),
                    fuel_used = r.fuel_used.get(),
                    traps = r.traps.get(),
                    out_of_fuel = r.out_of_fuel.get(),
                    timeouts = r.timeouts.get(),
                    rejected = r.rejected.get(),
                    instances_created = r.instances_created.get(),
                    "route stats"
                );
            }
        }
    }
}

impl ShardStats {
    pub fn bump(cell: &Cell<u64>) {
        cell.set(cell.get().wrapping_add(1));
    }
}

/// Counts a connection as open for as long as its task lives, however the
/// task ends.
struct OpenConnection<'a>(&'a Shard);

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.connections.set(self.0.connections.get() - 1);
    }
}

fn static_response(spec: &StaticSpec) -> Response {
    Response {
        status: spec.status,
        reason: Vec::new(),
        headers: vec![(b"Content-Type".to_vec(), spec.content_type.as_bytes().to_vec())],
        body: spec.body.as_bytes().to_vec(),
    }
}
