//! Every default, with the reason for its value. `docs/configuration.md`
//! lists the same numbers for users; `tuning/README.md` says which of them
//! change performance and by how much.

use std::time::Duration;

/// The export called when a route names no `function` (the original ABI).
pub const DEFAULT_FUNCTION: &str = "handle";

/// More shards than this is a configuration mistake, not a machine.
pub const MAX_SHARDS: usize = 1024;

/// Request line: 8 KiB, as common front proxies allow; longer is a 414.
pub const DEFAULT_MAX_REQUEST_LINE: usize = 8 << 10;
/// Whole request head: 16 KiB; larger is a 431.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 << 10;
/// Request body: 1 MiB by default (routes may raise it); larger is a 413.
/// Bodies are buffered whole for the guest, so this bounds memory per
/// connection.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;
/// No route may accept more than this; it is all held in memory.
pub const MAX_BODY_BYTES: usize = 1 << 30;

/// Slowloris protection: a head must arrive within 10 s of its first byte.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A body must arrive within 30 s of its head.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle keep-alive connections are closed after 60 s.
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(60);
/// A client that reads nothing for 30 s while we write is dropped.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// On SIGTERM, in-flight requests get 10 s to finish.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections one shard holds open at once; past it, new ones get a 503
/// and are closed. 4096 × 2 shards stays inside a raised `ulimit -n`.
pub const DEFAULT_MAX_CONNECTIONS_PER_SHARD: usize = 4096;
/// Accept queue per shard listener; the kernel caps it at
/// `net.core.somaxconn`.
pub const DEFAULT_LISTEN_BACKLOG: u32 = 1024;
/// Per-connection read buffer: holds a head and many pipelined requests.
pub const DEFAULT_READ_BUFFER_BYTES: usize = 16 << 10;
/// glommio runs tasks for this long before polling for I/O again. Its own
/// default (100 ms) would let one busy guest delay every other connection
/// on the shard by that much; 500 µs keeps the shard responsive (measured
/// in tuning/README.md).
pub const DEFAULT_PREEMPT_TIMER: Duration = Duration::from_micros(500);

/// Instance slots per shard in the pooling allocator: enough for every
/// route's concurrency on a small machine; each slot reserves address
/// space (not memory) for one linear memory.
pub const DEFAULT_INSTANCE_SLOTS_PER_SHARD: u32 = 256;
/// Memory kept resident when a slot is reused: a typical Rust guest touches
/// about 1.1 MiB. Resetting resident pages in place (with the kernel's
/// PAGEMAP_SCAN) is cheaper than giving them back and faulting them in.
pub const DEFAULT_KEEP_RESIDENT_BYTES: usize = 2 << 20;
/// Wasm stack per call: deep recursion traps at this depth.
pub const DEFAULT_MAX_WASM_STACK: usize = 512 << 10;
/// Each thread's ring of log lines: about a thousand lines waiting for the
/// writer's next 100 ms turn, so a burst of warnings is not dropped.
pub const DEFAULT_LOG_BUFFER_BYTES: usize = 256 << 10;
/// Each shard's ring of access lines: 100 ms of about 100 bytes a line at
/// 100k requests a second per shard.
pub const DEFAULT_ACCESS_LOG_BUFFER_BYTES: usize = 1 << 20;

/// A wasm page.
pub const WASM_PAGE: usize = 64 << 10;
/// Fuel per request: about 10 ms of guest CPU, 100× what the sample guests
/// need. Exhausted fuel is a 503.
pub const DEFAULT_FUEL: u64 = 10_000_000;
/// The guest yields to the shard after this much fuel (about 50–100 µs of
/// CPU), so other connections on the shard keep being served.
pub const DEFAULT_FUEL_YIELD_INTERVAL: u64 = 100_000;
/// Wall-clock budget per request, backend waits included; then 504.
pub const DEFAULT_GUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Guest linear memory; `memory.grow` beyond it returns -1 to the guest.
pub const DEFAULT_MEMORY_LIMIT: usize = 16 << 20;
/// No route may give a guest more than this (wasm32's whole address
/// space). It is also the default of `server.max_memory_limit`: an
/// instance slot reserves 4 GiB of address space anyway, so sizing slots
/// for it costs nothing and lets a reload raise any route's limit.
pub const MAX_MEMORY_LIMIT: usize = 4 << 30;
/// Elements per guest table (function pointers, mostly).
pub const DEFAULT_TABLE_ELEMENTS: u32 = 10_000;
/// No route may give a table more than this. Table slots are allocated
/// at their full size (8 bytes an element, address space only until
/// used), so `server.max_table_elements` defaults to what the routes at
/// start need rather than to this.
pub const MAX_TABLE_ELEMENTS: u32 = 10_000_000;
/// Largest body a guest may set; larger is a 500.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 4 << 20;
/// Guest log output per request; beyond it, log calls are dropped (and the
/// drop is logged once).
pub const DEFAULT_MAX_LOG_BYTES: usize = 16 << 10;
/// Longest single guest log message; longer ones are cut.
pub const MAX_LOG_LINE: usize = 1024;
/// Requests one reused instance serves before it is replaced.
pub const DEFAULT_MAX_REQUESTS_PER_INSTANCE: u64 = 10_000;
/// The same for a WASI 0.3 component, whose instance serves requests
/// concurrently: `wasmtime serve`'s default.
pub const DEFAULT_MAX_REQUESTS_PER_P3_INSTANCE: u64 = 128;
/// Requests one reused WASI 0.3 instance serves at once (`wasmtime serve`'s
/// default).
pub const DEFAULT_MAX_CONCURRENT_REQUESTS_PER_INSTANCE: usize = 16;
/// Requests of one route in flight on one shard.
pub const DEFAULT_MAX_CONCURRENCY: usize = 64;
/// Requests of one route waiting on one shard when all are busy.
pub const DEFAULT_MAX_QUEUE: usize = 256;
/// Ready instances kept per route and shard in reuse mode.
pub const DEFAULT_WARM_INSTANCES: usize = 2;

/// Content type of a `static_body` route that names none.
pub const DEFAULT_STATIC_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// Backend connect budget.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Budget for one backend read or write.
pub const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Backend sockets one request may have open.
pub const DEFAULT_MAX_BACKEND_CONNECTIONS: usize = 8;
/// Bytes one request may move to and from backends.
pub const DEFAULT_MAX_BACKEND_BYTES: usize = 16 << 20;

/// The key-value store every config has without declaring it (embedded).
pub const DEFAULT_KEY_VALUE_STORE: &str = "default";
/// `[server] state_dir`, relative to the working directory.
pub const DEFAULT_STATE_DIR: &str = "serverless-wasm-state";
/// Keys: 1 KiB is far more than names and ids need, and keeps listing
/// pages small.
pub const DEFAULT_MAX_KEY_BYTES: usize = 1 << 10;
pub const MAX_KEY_BYTES: usize = 64 << 10;
/// Values: 1 MiB, as requests and responses of a guest are; raise it per
/// store for documents.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 1 << 20;
pub const MAX_VALUE_BYTES: usize = 64 << 20;
/// A store that does not answer within 5 s answers the guest an error.
pub const DEFAULT_KEY_VALUE_TIMEOUT: Duration = Duration::from_secs(5);
/// Redis connections per shard per store: requests queue for one beyond it.
pub const DEFAULT_REDIS_CONNECTIONS_PER_SHARD: usize = 16;

/// One attempt to fetch one module: a minute covers a large component over
/// a slow link; a dead server fails faster (connection refused).
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(60);
/// Transient fetch failures (connection, 5xx, timeout) are retried twice,
/// with backoff; a missing object or a refused credential is not retried.
pub const DEFAULT_FETCH_ATTEMPTS: u32 = 3;
/// A fetched module larger than this is refused: interpreters compiled to
/// wasm (Python, JavaScript) weigh 20–40 MiB; 128 MiB leaves room.
pub const DEFAULT_MAX_MODULE_BYTES: usize = 128 << 20;
/// The content cache keeps fetched modules up to 1 GiB; least recently
/// used entries that no route uses go first.
pub const DEFAULT_CACHE_MAX_BYTES: usize = 1 << 30;
