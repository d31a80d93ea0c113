//! A shard: one pinned glommio executor, its listener, its connections and
//! its instance pools. Nothing here is shared with another shard except the
//! read-only [`Shared`]; its counters are written by this thread alone.

use std::cell::RefCell;
use std::io;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::Duration;

use futures_lite::AsyncWriteExt;
use glommio::net::{TcpListener, TcpStream};
use glommio::{ExecutorJoinHandle, LocalExecutorBuilder, Placement};
use socket2::Socket;

use super::platform::LogOnce;
use super::reload::{Switch, Switched};
use super::routes::{Generation, ShardRoutes};
use super::shutdown::{Drain, InFlight, ShardFlags};
use super::{Shared, connection, listener};
use crate::http::{self, DateCache};
use crate::kv::{ShardStores, StoreThread};
use crate::logging::{AccessLogger, Logging};
use crate::stats::{ShardState, ShardStats};
use crate::wasm::{ShardHttp, ShardServices, Warmed};

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
    /// The generation to serve first.
    pub generation: Arc<Generation>,
    /// Where the reloader sends the next generations.
    pub inbox: Receiver<Switch>,
    pub socket: Socket,
    /// Told once the shard serves, or why it cannot.
    pub ready: std::sync::mpsc::Sender<Result<(), (usize, String)>>,
    pub flags: Arc<ShardFlags>,
    /// This shard's counters (the admin listener reads them).
    pub stats: Arc<ShardStats>,
    pub logging: Logging,
    /// The `store` thread, for embedded key-value stores.
    pub stores: StoreThread,
}

pub struct Shard {
    pub id: usize,
    pub shared: Arc<Shared>,
    /// The generation this shard serves now. Each request takes its own
    /// reference, so replacing it never disturbs a request in flight.
    routes: RefCell<Rc<ShardRoutes>>,
    pub date: DateCache,
    /// `x-serverless-shard` value, when `server.shard_header` is on.
    pub shard_header: Option<Vec<u8>>,
    pub stats: Arc<ShardStats>,
    pub drain: Drain,
    /// This shard's producer of the access log, when there is one.
    pub access_log: Option<RefCell<AccessLogger>>,
    /// Outgoing HTTP of the shard's components.
    services: ShardServices,
    /// Generations to switch to, looked at with the stop flags.
    inbox: Receiver<Switch>,
    accept_errors: LogOnce,
    limit_reached: LogOnce,
}

pub fn spawn(start: ShardStart) -> Result<ExecutorJoinHandle<u64>, String> {
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

/// Serves until the stop, then drains; returns how many requests the
/// drain deadline cut.
async fn run(start: ShardStart) -> u64 {
    let ShardStart {
        id,
        cpu,
        shared,
        generation,
        inbox,
        socket,
        ready,
        flags,
        stats,
        logging,
        stores,
    } = start;
    // glommio's listener does not lend its descriptor: kept for the stop.
    let listen_fd = socket.as_raw_fd();
    let listener = listener::adopt(socket);
    let shard = match Shard::new(id, shared, &generation, inbox, stats, &logging, &stores) {
        Ok(shard) => Rc::new(shard),
        Err(e) => {
            let _ = ready.send(Err((id, e)));
            return 0;
        }
    };
    // wasi-http spawns its internal tasks on the ambient tokio runtime: for
    // this thread's whole life that is the shard's own (no threads).
    let outbound_http = shard.services.http.clone();
    let _tokio = outbound_http.enter();
    let routes = shard.routes();
    routes.warm_up(&shard.shared.runtime).await;
    tracing::info!(shard = id, cpu, routes = routes.pools().count(), "shard started");
    drop((routes, generation));
    let _ = ready.send(Ok(()));
    drop(ready);

    futures_lite::future::or(
        shard.clone().accept_loop(&listener),
        flags.until_stop(id, || shard.look_around(), || shard.report("shard stats")),
    )
    .await;
    // Stop accepting: take in what the kernel already queued (closing the
    // listener would reset those connections), then close it.
    shard.drain.begin();
    let queued = listener::take_queued(listen_fd);
    drop(listener);
    tracing::info!(shard = id, queued = queued.len(), "stopped accepting; draining");
    for stream in queued {
        shard.clone().serve(stream);
    }
    let drain_timeout = shard.routes().generation().config.server.timeouts.drain;
    let abandoned = shard.drain.finish(drain_timeout).await;
    if abandoned > 0 {
        tracing::error!(
            shard = id,
            in_flight = abandoned,
            "drain timeout: abandoning requests in flight"
        );
    }
    shard.report("shard stopped");
    abandoned
}

impl Shard {
    fn new(
        id: usize,
        shared: Arc<Shared>,
        generation: &Arc<Generation>,
        inbox: Receiver<Switch>,
        stats: Arc<ShardStats>,
        logging: &Logging,
        stores: &StoreThread,
    ) -> Result<Shard, String> {
        let services = ShardServices {
            http: ShardHttp::new().map_err(|e| format!("cannot start the outbound HTTP runtime: {e}"))?,
            key_value: Rc::new(ShardStores::new(&shared.config.key_value, stores)),
        };
        let routes = ShardRoutes::new(generation, &shared.runtime, &stats, &services);
        stats.generation.set(generation.number);
        Ok(Shard {
            id,
            shard_header: shared.config.server.shard_header.then(|| id.to_string().into_bytes()),
            shared,
            routes: RefCell::new(Rc::new(routes)),
            date: DateCache::default(),
            stats,
            drain: Drain::new(),
            access_log: logging.access_logger().map(RefCell::new),
            services,
            inbox,
            accept_errors: LogOnce::new(Duration::from_secs(1)),
            limit_reached: LogOnce::new(Duration::from_secs(1)),
        })
    }

    /// Counts a request, and holds the drain until the returned value is
    /// dropped.
    pub fn request_started(&self) -> InFlight<'_> {
        self.stats.requests.bump();
        self.drain.enter()
    }

    /// The current generation's routes, for one request.
    pub fn routes(&self) -> Rc<ShardRoutes> {
        self.routes.borrow().clone()
    }

    /// The shard's periodic look at the world: its heartbeat, and the
    /// generations the reloader sent.
    fn look_around(self: &Rc<Self>) {
        self.stats.beat();
        // Only the newest generation sent is worth setting up (several wait
        // only if this shard was too busy to look for a while); the older
        // ones are confirmed as passed over.
        let mut newest: Option<Switch> = None;
        while let Ok(switch) = self.inbox.try_recv() {
            if let Some(older) = newest.replace(switch) {
                let _ = older.done.send(Switched {
                    shard: self.id,
                    warmed: Warmed::Done,
                });
            }
        }
        if let Some(switch) = newest {
            glommio::spawn_local(self.clone().switch(switch)).detach();
        }
    }

    /// Sets up this shard's pools for a new generation, warms them while
    /// slots are to spare, and serves it from the next request on. The
    /// replaced generation lives on in the requests that hold it.
    async fn switch(self: Rc<Self>, Switch { generation, done }: Switch) {
        let routes = ShardRoutes::new(&generation, &self.shared.runtime, &self.stats, &self.services);
        let warmed = routes.warm_up(&self.shared.runtime).await;
        // The reloader sends generations in order and waits for each; a
        // late one (a shard that did not answer in time) never goes back.
        if generation.number > self.routes.borrow().generation().number {
            *self.routes.borrow_mut() = Rc::new(routes);
            self.stats.generation.set(generation.number);
            // A removed route's counters go with it (their series end in
            // /metrics), so that names used once do not pile up.
            self.stats
                .keep_routes(generation.routes.iter().map(|r| r.name.as_str()));
        }
        let _ = done.send(Switched { shard: self.id, warmed });
    }

    async fn accept_loop(self: Rc<Self>, listener: &TcpListener) {
        let mut backoff = ACCEPT_BACKOFF_MIN;
        loop {
            match listener.accept().await {
                Ok(stream) => {
                    backoff = ACCEPT_BACKOFF_MIN;
                    let open = self.stats.open_connections.get() as usize;
                    let limit = self.routes().generation().config.server.max_connections_per_shard;
                    if open >= limit {
                        self.reject(stream, limit);
                        continue;
                    }
                    self.clone().serve(stream);
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

    /// Serves a connection in a task of its own.
    fn serve(self: Rc<Self>, stream: TcpStream) {
        glommio::spawn_local(async move {
            let _open = OpenConnection::new(&self.stats);
            // A drain gives it a moment to start the request its client
            // may already have sent.
            let awaiting_first = self.drain.connection_opened();
            connection::serve(&self, stream, awaiting_first).await;
        })
        .detach();
    }

    /// Over the connection limit: answer 503 and close, without holding up
    /// the accept loop.
    fn reject(&self, stream: TcpStream, limit: usize) {
        self.stats.rejected_connections.bump();
        if let Some(suppressed) = self.limit_reached.ready() {
            tracing::warn!(
                shard = self.id,
                suppressed,
                limit,
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

    /// Logs the shard's statistics as one JSON line (SIGUSR1, and when the
    /// shard stops): what the soak and the tests read.
    fn report(&self, what: &str) {
        self.routes().refresh_live_instances();
        let snapshot = self.stats.snapshot(ShardState {
            in_flight: self.drain.in_flight(),
            engine_instances: self.shared.runtime.live_instances(),
        });
        tracing::info!("{what} {}", snapshot.to_json());
    }
}

/// Counts a connection as open for as long as its task lives, however the
/// task ends.
struct OpenConnection<'a>(&'a ShardStats);

impl<'a> OpenConnection<'a> {
    fn new(stats: &'a ShardStats) -> OpenConnection<'a> {
        stats.open_connections.set(stats.open_connections.get() + 1);
        stats.connections.bump();
        OpenConnection(stats)
    }
}

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        let open = &self.0.open_connections;
        open.set(open.get() - 1);
    }
}
