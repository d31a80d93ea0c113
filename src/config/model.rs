//! The validated configuration's types: what the rest of the server reads.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::http::{FramingLimits, Method};
use crate::net::TlsClient;
use crate::sources::{ModuleSource, Sha256Digest};

/// A validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it was read from (errors and logs name it).
    pub source: PathBuf,
    pub listen_address: SocketAddr,
    pub server: ServerConfig,
    /// `None`: no access log.
    pub access_log: Option<AccessLogConfig>,
    pub routes: Vec<RouteSpec>,
    /// The `[admin]` table; `None`: no admin listener.
    pub admin: Option<AdminConfig>,
    /// The `[sources]` table, with the environment's S3 settings under it.
    pub sources: SourcesConfig,
    /// Every key-value store by name, `default` among them.
    pub key_value: BTreeMap<String, KeyValueConfig>,
}

/// A `[key_value.NAME]` table (or the implicit `default` store).
#[derive(Clone, Debug, PartialEq)]
pub struct KeyValueConfig {
    pub name: String,
    pub backend: KeyValueBackend,
    pub limits: KeyValueLimits,
}

#[derive(Clone, Debug, PartialEq)]
pub enum KeyValueBackend {
    /// A database file served by the `store` thread.
    Embedded { path: PathBuf },
    /// A Redis server, spoken to from every shard.
    Redis { server: RedisServer, prefix: String },
}

/// Where a Redis store lives. Its `Debug` and `Display` leave the password
/// out: configs are logged and shown by `GET /config`.
#[derive(Clone, PartialEq)]
pub struct RedisServer {
    pub endpoint: Endpoint,
    pub username: Option<String>,
    pub password: Option<String>,
    pub database: u32,
}

impl fmt::Display for RedisServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let credentials = match (&self.username, &self.password) {
            (Some(user), Some(_)) => format!("{user}:***@"),
            (None, Some(_)) => ":***@".to_string(),
            (Some(user), None) => format!("{user}@"),
            (None, None) => String::new(),
        };
        write!(f, "redis://{credentials}{}/{}", self.endpoint, self.database)
    }
}

impl fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisServer({self})")
    }
}

/// Bounds of one store, the same on both backends.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KeyValueLimits {
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    /// For one operation, from asking to the answer; then the guest gets
    /// an error.
    pub timeout: Duration,
    /// Redis: connections each shard may hold open.
    pub max_connections_per_shard: usize,
}

/// How modules named by an address are fetched and kept.
#[derive(Clone, Debug)]
pub struct SourcesConfig {
    /// Overrides `AWS_ENDPOINT_URL` (an S3-compatible server).
    pub s3_endpoint: Option<String>,
    /// Overrides `AWS_REGION`.
    pub s3_region: Option<String>,
    /// `Some(true)`: `endpoint/bucket/key`; `Some(false)`:
    /// `bucket.endpoint/key`; `None`: object_store's choice (path style).
    pub s3_path_style: Option<bool>,
    /// Registries (`host` or `host:port`) spoken to over plain HTTP.
    pub oci_insecure_registries: Vec<String>,
    /// For one attempt at one module, from connecting to the last byte.
    pub fetch_timeout: Duration,
    /// Attempts per module (1 = no retry); transient failures only.
    pub fetch_attempts: u32,
    pub max_module_bytes: u64,
    /// The content cache; `None`: fetched modules are not kept.
    pub cache_dir: Option<PathBuf>,
    /// `cache_dir` is the default under `$HOME`, not a setting: if it
    /// cannot be used the server goes on without a cache (a service's
    /// user may have no writable home) instead of refusing to start.
    pub cache_dir_is_default: bool,
    pub cache_max_bytes: u64,
}

/// The admin listener (`/metrics`, `/healthz`, `/readyz`). It authenticates
/// nobody: its address belongs on loopback or a private interface.
#[derive(Clone, Copy, Debug)]
pub struct AdminConfig {
    pub listen_address: SocketAddr,
}

/// The `[server]` table, with defaults applied.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// `None`: one shard per CPU the process may run on.
    pub shards: Option<usize>,
    /// CPUs to pin shards to, in order; `None`: every CPU available.
    pub cpus: Option<Vec<usize>>,
    /// Request framing bounds; `max_body` is the default for routes.
    pub framing: FramingLimits,
    pub timeouts: Timeouts,
    pub max_connections_per_shard: usize,
    pub listen_backlog: u32,
    pub read_buffer_bytes: usize,
    /// glommio: how often a busy shard stops running tasks to poll I/O.
    pub preempt_timer: Duration,
    /// glommio: busy-poll this long before sleeping when idle.
    pub spin_before_park: Option<Duration>,
    pub engine: EngineLimits,
    /// Add `x-serverless-shard: N` to every response (for tests and
    /// debugging; off by default).
    pub shard_header: bool,
    /// Where compiled guests are kept between starts; `None`: compile
    /// every guest at every start.
    pub compile_cache_dir: Option<PathBuf>,
    /// Ring of each thread's server and guest log lines; a line that finds
    /// it full is dropped and counted.
    pub log_buffer_bytes: usize,
    /// Where the server keeps state (embedded key-value stores).
    pub state_dir: PathBuf,
    /// Extra certificate authorities for outbound HTTPS and TLS, beside
    /// webpki's; routes inherit it.
    pub outbound_tls: TlsClient,
}

/// The `[access_log]` table: a line per response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessLogConfig {
    pub target: AccessLogTarget,
    pub format: AccessLogFormat,
    /// Ring of each shard's access lines; full, a line is dropped and
    /// counted.
    pub buffer_bytes: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccessLogTarget {
    /// `path = "-"`.
    Stdout,
    /// Appended to; created if absent.
    File(PathBuf),
}

impl fmt::Display for AccessLogTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccessLogTarget::Stdout => f.write_str("(stdout)"),
            AccessLogTarget::File(path) => write!(f, "{}", path.display()),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessLogFormat {
    /// The Common Log Format (`%h %l %u %t "%r" %>s %b`).
    Common,
    /// One JSON object per line.
    Json,
}

#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// From the first byte of a request to the end of its head; then 408.
    pub header: Duration,
    /// For the whole body once the head is in; then 408.
    pub body: Duration,
    /// Idle keep-alive connection with no request started; then closed.
    pub keepalive: Duration,
    /// A client that does not read its responses; then closed.
    pub write: Duration,
    /// On SIGTERM/SIGINT, how long in-flight connections may finish.
    pub drain: Duration,
    /// On SIGTERM/SIGINT, how long the server keeps accepting (while
    /// `/readyz` answers 503) before it stops: time for balancers to notice.
    pub shutdown_delay: Duration,
}

/// Settings of the shared wasmtime engine and its pooling allocator.
#[derive(Clone, Copy, Debug)]
pub struct EngineLimits {
    /// Instance slots (memories, tables, stacks) reserved per shard.
    pub instance_slots_per_shard: u32,
    /// Bytes of each linear memory kept resident (reset in place) when a
    /// slot is reused, instead of being returned to the kernel.
    pub keep_resident_bytes: usize,
    pub max_wasm_stack_bytes: usize,
    /// The largest `memory_limit` a route may be given: every instance
    /// slot is sized for it, so a reload may raise a route's limit up to
    /// it.
    pub max_memory_limit: usize,
    /// The largest `table_elements_limit` a route may be given; `None`:
    /// the larger of the default and the largest at start.
    pub max_table_elements: Option<u32>,
}

/// Where something was written in the config file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

/// One route: method and path, and what answers it.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteSpec {
    /// Position in `[[applications]]`, from 0.
    pub index: usize,
    /// How logs, statistics and metrics name the route: its `name`, else
    /// "GET /hello". Unique in a config.
    pub name: String,
    pub method: Method,
    pub path: RoutePath,
    pub handler: HandlerSpec,
    pub max_body_bytes: usize,
    /// Where the entry's `method` is written.
    pub at: Location,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoutePath {
    /// `url_path = "/hello"`: this path only.
    Exact(String),
    /// `url_path = "/static/*"`: `/static` and everything below `/static/`.
    /// The stored string is the prefix without the `/*`.
    Prefix(String),
}

impl fmt::Display for RoutePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoutePath::Exact(p) => f.write_str(p),
            RoutePath::Prefix(p) => write!(f, "{p}/*"),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum HandlerSpec {
    /// Answered natively, without wasm: the baseline for benchmarks.
    Static(StaticSpec),
    Wasm(Box<WasmSpec>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct StaticSpec {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct WasmSpec {
    /// Where the module comes from (`file_path`); a relative path is
    /// resolved already.
    pub source: ModuleSource,
    /// `sha256`: the module's bytes must have this digest.
    pub sha256: Option<Sha256Digest>,
    pub file_at: Location,
    /// The export to call.
    pub function: String,
    pub function_at: Location,
    /// The route's initial state, read by `db_get`.
    pub env: BTreeMap<String, String>,
    pub limits: GuestLimits,
    pub outbound: OutboundPolicy,
    /// The key-value stores the guest may open (`key_value_stores`).
    pub key_value_stores: Vec<String>,
}

/// How a wasm route's instances are recycled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstancePolicy {
    /// A clean instance for every request: nothing leaks between requests.
    Fresh,
    /// An instance serves up to `max_requests` requests, keeping its memory
    /// and globals between them, unless it traps, runs out of fuel or times
    /// out (then it is discarded). A WASI 0.3 instance serves up to
    /// `max_concurrent` of them at once. `None`: the guest kind's default
    /// (the kind is known only once the guest is loaded).
    Reuse {
        max_requests: Option<u64>,
        max_concurrent: Option<usize>,
    },
}

impl InstancePolicy {
    /// Requests per instance: 1 for `fresh`, else the configured quota or
    /// the guest kind's `default`.
    pub fn max_requests(&self, default: u64) -> u64 {
        match self {
            InstancePolicy::Fresh => 1,
            InstancePolicy::Reuse { max_requests, .. } => max_requests.unwrap_or(default),
        }
    }
}

/// Per-request bounds on a guest, all enforced by the host.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GuestLimits {
    pub fuel: u64,
    pub fuel_yield_interval: u64,
    pub timeout: Duration,
    pub memory_limit: usize,
    pub table_elements_limit: u32,
    pub max_response_bytes: usize,
    pub max_log_bytes: usize,
    pub instance: InstancePolicy,
    /// Requests of this route running at once on one shard.
    pub max_concurrency: usize,
    /// Requests waiting for a turn on one shard; past it: 503.
    pub max_queue: usize,
    /// Instances kept ready (reuse mode) per shard.
    pub warm_instances: usize,
}

/// Which backends a guest may open TCP connections to, and how much.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboundPolicy {
    pub allowed: Vec<Endpoint>,
    /// True when the route has no `allowed_outbound` and `allowed` holds the
    /// `host:port` values of its `env` instead: that is how the original
    /// project's configs name a guest's backend, and they must keep working.
    pub allowed_from_env: bool,
    pub connect_timeout: Duration,
    pub io_timeout: Duration,
    pub max_connections: usize,
    pub max_bytes: u64,
    /// Which certificate authorities an `https://` or `tls://` backend's
    /// certificate must chain to.
    pub tls: TlsClient,
}

/// `host:port` as written in `allowed_outbound` (host lower-cased).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    pub fn parse(text: &str) -> Result<Endpoint, String> {
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| format!("{text:?} is not host:port"))?;
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let port: u16 = port
            .parse()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| format!("{text:?}: port must be a number from 1 to 65535"))?;
        let host_ok = !host.is_empty()
            && host.len() <= 253
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
        if !host_ok {
            return Err(format!("{text:?}: invalid host (wildcards are not supported)"));
        }
        Ok(Endpoint {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}
