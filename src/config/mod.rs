//! The configuration: `config.toml` → [`raw::RawConfig`] (serde, no logic)
//! → [`Config`] (typed, validated, defaults applied).
//!
//! Everything that can be checked without wasm is checked here, at start-up:
//! a typo or a bad value stops the server with a message naming the file,
//! line, column and key. Checks that need the compiled modules (exports,
//! imports, memory sizes) happen in `wasm::load`, and their errors point at
//! the route's `file_path` through the [`Location`] kept here.

mod defaults;
mod raw;
mod size;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

pub use defaults::*;
pub use size::ByteSize;

use crate::http::{FramingLimits, Method};

/// A validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it was read from (errors and logs name it).
    pub source: PathBuf,
    pub listen_address: SocketAddr,
    pub server: ServerConfig,
    pub routes: Vec<RouteSpec>,
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
}

/// Where something was written in the config file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

/// One route: method and path, and what answers it.
#[derive(Clone, Debug)]
pub struct RouteSpec {
    /// Position in `[[applications]]`, from 0.
    pub index: usize,
    pub method: Method,
    pub path: RoutePath,
    pub handler: HandlerSpec,
    pub max_body_bytes: usize,
    /// Where the entry's `method` is written.
    pub at: Location,
}

impl RouteSpec {
    /// "GET /hello": how logs name the route.
    pub fn label(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
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

#[derive(Clone, Debug)]
pub enum HandlerSpec {
    /// Answered natively, without wasm: the baseline for benchmarks.
    Static(StaticSpec),
    Wasm(Box<WasmSpec>),
}

#[derive(Clone, Debug)]
pub struct StaticSpec {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

#[derive(Clone, Debug)]
pub struct WasmSpec {
    pub file: PathBuf,
    pub file_at: Location,
    /// The export to call.
    pub function: String,
    pub function_at: Location,
    /// The route's initial state, read by `db_get`.
    pub env: BTreeMap<String, String>,
    pub limits: GuestLimits,
    pub outbound: OutboundPolicy,
}

/// How a wasm route's instances are recycled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstancePolicy {
    /// A clean instance for every request: nothing leaks between requests.
    Fresh,
    /// An instance serves up to `max_requests` requests, keeping its memory
    /// and globals between them, unless it traps, runs out of fuel or times
    /// out (then it is discarded).
    Reuse { max_requests: u64 },
}

/// Per-request bounds on a guest, all enforced by the host.
#[derive(Clone, Copy, Debug)]
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
#[derive(Clone, Debug)]
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
}

/// `host:port` as written in `allowed_outbound` (host lower-cased).
#[derive(Clone, Debug, PartialEq, Eq)]
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

/// A configuration problem, located in the file where that is possible.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}:{column}: {key}: {message}", line = at.line, column = at.column)]
    At {
        path: PathBuf,
        at: Location,
        key: String,
        message: String,
    },
}

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// Validates configuration text; `path` is used for messages and to resolve
/// relative `file_path`s.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let ctx = Ctx { path, text };
    let raw: raw::RawConfig = toml::from_str(text).map_err(|e| {
        let at = e.span().map(|s| ctx.locate(s.start)).unwrap_or_default();
        ctx.error_at(at, "config", e.message().to_string())
    })?;

    let listen_address = resolve_listen_address(&ctx, &raw.listen_address)?;
    let server = server_config(&ctx, &raw.server)?;
    let mut routes = Vec::with_capacity(raw.applications.len());
    for (index, app) in raw.applications.iter().enumerate() {
        let route = route_spec(&ctx, index, app, &server)?;
        if let Some(other) = routes
            .iter()
            .find(|r: &&RouteSpec| r.method == route.method && r.path == route.path)
        {
            return Err(ctx.error(
                &app.url_path,
                &format!("applications[{index}].url_path"),
                format!(
                    "duplicate route {}: already defined by applications[{}] at line {}",
                    route.label(),
                    other.index,
                    other.at.line
                ),
            ));
        }
        routes.push(route);
    }
    Ok(Config {
        source: path.to_path_buf(),
        listen_address,
        server,
        routes,
    })
}

/// Positions and messages for one config file.
struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn locate(&self, offset: usize) -> Location {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rfind('\n').map_or(before.len(), |nl| before.len() - nl - 1) + 1;
        Location { line, column }
    }

    fn error_at(&self, at: Location, key: &str, message: String) -> ConfigError {
        ConfigError::At {
            path: self.path.to_path_buf(),
            at,
            key: key.to_string(),
            message,
        }
    }

    fn error<T>(&self, value: &Spanned<T>, key: &str, message: String) -> ConfigError {
        self.error_at(self.locate(value.span().start), key, message)
    }

    fn at<T>(&self, value: &Spanned<T>) -> Location {
        self.locate(value.span().start)
    }
}

fn resolve_listen_address(ctx: &Ctx<'_>, addr: &Spanned<String>) -> Result<SocketAddr, ConfigError> {
    let text = addr.get_ref();
    if let Ok(literal) = text.parse::<SocketAddr>() {
        return Ok(literal);
    }
    // Fuzzing feeds arbitrary host names: no resolver calls there.
    let resolved = if cfg!(fuzzing) {
        Err(std::io::ErrorKind::InvalidInput.into())
    } else {
        text.to_socket_addrs()
    };
    let mut resolved = resolved.map_err(|e| {
        ctx.error(
            addr,
            "listen_address",
            format!("{text:?} is not a usable host:port: {e}"),
        )
    })?;
    resolved
        .next()
        .ok_or_else(|| ctx.error(addr, "listen_address", format!("{text:?} resolves to no address")))
}

/// Reads an optional value, checks its range, or takes the default.
fn bounded<T: Copy + PartialOrd + fmt::Display>(
    ctx: &Ctx<'_>,
    value: &Option<Spanned<T>>,
    key: &str,
    default: T,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) if *v.get_ref() >= min && *v.get_ref() <= max => Ok(*v.get_ref()),
        Some(v) => Err(ctx.error(
            v,
            key,
            format!("{} is out of range: must be from {min} to {max}", v.get_ref()),
        )),
    }
}

fn bounded_size(
    ctx: &Ctx<'_>,
    value: &Option<Spanned<ByteSize>>,
    key: &str,
    default: usize,
    min: usize,
    max: usize,
) -> Result<usize, ConfigError> {
    let as_u64 = value.as_ref().map(|v| Spanned::new(v.span(), v.get_ref().0));
    bounded(ctx, &as_u64, key, default as u64, min as u64, max as u64).map(|v| v as usize)
}

fn millis(
    ctx: &Ctx<'_>,
    value: &Option<Spanned<u64>>,
    key: &str,
    default: Duration,
    max: Duration,
) -> Result<Duration, ConfigError> {
    bounded(ctx, value, key, default.as_millis() as u64, 1, max.as_millis() as u64).map(Duration::from_millis)
}

fn server_config(ctx: &Ctx<'_>, raw: &raw::RawServer) -> Result<ServerConfig, ConfigError> {
    const HOUR: Duration = Duration::from_secs(3600);
    let key = |name: &str| format!("server.{name}");
    let shards = match &raw.shards {
        None => None,
        Some(_) => Some(bounded(ctx, &raw.shards, &key("shards"), 1, 1, MAX_SHARDS)?),
    };
    let cpus = match &raw.cpus {
        Some(list) if list.get_ref().is_empty() => {
            return Err(ctx.error(list, &key("cpus"), "the CPU list is empty".into()));
        }
        other => other.as_ref().map(|l| l.get_ref().clone()),
    };
    let max_request_line = bounded_size(
        ctx,
        &raw.max_request_line_bytes,
        &key("max_request_line_bytes"),
        DEFAULT_MAX_REQUEST_LINE,
        64,
        1 << 20,
    )?;
    let max_head = bounded_size(
        ctx,
        &raw.max_header_bytes,
        &key("max_header_bytes"),
        DEFAULT_MAX_HEADER_BYTES,
        256,
        1 << 20,
    )?;
    if max_head < max_request_line {
        let at = raw.max_header_bytes.as_ref().or(raw.max_request_line_bytes.as_ref());
        let at = at.map(|s| ctx.at(s)).unwrap_or_default();
        return Err(ctx.error_at(
            at,
            &key("max_header_bytes"),
            format!("max_header_bytes ({max_head}) must be at least max_request_line_bytes ({max_request_line})"),
        ));
    }
    Ok(ServerConfig {
        shards,
        cpus,
        framing: FramingLimits {
            max_request_line,
            max_head,
            max_body: bounded_size(
                ctx,
                &raw.max_body_bytes,
                &key("max_body_bytes"),
                DEFAULT_MAX_BODY_BYTES,
                0,
                MAX_BODY_BYTES,
            )?,
        },
        timeouts: Timeouts {
            header: millis(
                ctx,
                &raw.header_timeout_ms,
                &key("header_timeout_ms"),
                DEFAULT_HEADER_TIMEOUT,
                HOUR,
            )?,
            body: millis(
                ctx,
                &raw.body_timeout_ms,
                &key("body_timeout_ms"),
                DEFAULT_BODY_TIMEOUT,
                HOUR,
            )?,
            keepalive: millis(
                ctx,
                &raw.keepalive_timeout_ms,
                &key("keepalive_timeout_ms"),
                DEFAULT_KEEPALIVE_TIMEOUT,
                HOUR,
            )?,
            write: millis(
                ctx,
                &raw.write_timeout_ms,
                &key("write_timeout_ms"),
                DEFAULT_WRITE_TIMEOUT,
                HOUR,
            )?,
            drain: millis(
                ctx,
                &raw.drain_timeout_ms,
                &key("drain_timeout_ms"),
                DEFAULT_DRAIN_TIMEOUT,
                HOUR,
            )?,
        },
        max_connections_per_shard: bounded(
            ctx,
            &raw.max_connections_per_shard,
            &key("max_connections_per_shard"),
            DEFAULT_MAX_CONNECTIONS_PER_SHARD,
            1,
            1 << 20,
        )?,
        listen_backlog: bounded(
            ctx,
            &raw.listen_backlog,
            &key("listen_backlog"),
            DEFAULT_LISTEN_BACKLOG,
            1,
            1 << 20,
        )?,
        read_buffer_bytes: bounded_size(
            ctx,
            &raw.read_buffer_bytes,
            &key("read_buffer_bytes"),
            DEFAULT_READ_BUFFER_BYTES,
            1024,
            16 << 20,
        )?,
        preempt_timer: Duration::from_micros(bounded(
            ctx,
            &raw.preempt_timer_us,
            &key("preempt_timer_us"),
            DEFAULT_PREEMPT_TIMER.as_micros() as u64,
            50,
            1_000_000,
        )?),
        spin_before_park: match bounded(
            ctx,
            &raw.spin_before_park_us,
            &key("spin_before_park_us"),
            0,
            0,
            1_000_000,
        )? {
            0 => None,
            us => Some(Duration::from_micros(us)),
        },
        engine: EngineLimits {
            instance_slots_per_shard: bounded(
                ctx,
                &raw.instance_slots_per_shard,
                &key("instance_slots_per_shard"),
                DEFAULT_INSTANCE_SLOTS_PER_SHARD,
                1,
                100_000,
            )?,
            keep_resident_bytes: bounded_size(
                ctx,
                &raw.keep_resident_bytes,
                &key("keep_resident_bytes"),
                DEFAULT_KEEP_RESIDENT_BYTES,
                0,
                1 << 30,
            )?,
            max_wasm_stack_bytes: bounded_size(
                ctx,
                &raw.max_wasm_stack_bytes,
                &key("max_wasm_stack_bytes"),
                DEFAULT_MAX_WASM_STACK,
                16 << 10,
                64 << 20,
            )?,
        },
        shard_header: raw.shard_header.unwrap_or(false),
    })
}

fn route_spec(
    ctx: &Ctx<'_>,
    index: usize,
    app: &raw::RawApplication,
    server: &ServerConfig,
) -> Result<RouteSpec, ConfigError> {
    let key = |name: &str| format!("applications[{index}].{name}");
    let method = parse_method(app.method.get_ref()).ok_or_else(|| {
        let allowed: Vec<&str> = Method::ROUTABLE.iter().map(|m| m.as_str()).collect();
        ctx.error(
            &app.method,
            &key("method"),
            format!(
                "bad method {:?}: expected one of {}",
                app.method.get_ref(),
                allowed.join(", ")
            ),
        )
    })?;
    let path = parse_route_path(app.url_path.get_ref()).map_err(|m| ctx.error(&app.url_path, &key("url_path"), m))?;
    let max_body_bytes = bounded_size(
        ctx,
        &app.max_body_bytes,
        &key("max_body_bytes"),
        server.framing.max_body,
        0,
        MAX_BODY_BYTES,
    )?;

    let handler = match (&app.file_path, &app.static_body) {
        (Some(_), Some(body)) => {
            return Err(ctx.error(
                body,
                &key("static_body"),
                "a route has either file_path or static_body, not both".into(),
            ));
        }
        (None, None) => {
            return Err(ctx.error(
                &app.method,
                &key("file_path"),
                "the route needs a file_path (wasm) or a static_body (native)".into(),
            ));
        }
        (None, Some(body)) => {
            reject_wasm_keys(ctx, index, app)?;
            HandlerSpec::Static(static_spec(ctx, index, app, body)?)
        }
        (Some(file), None) => {
            for (name, present) in [
                ("status", app.status.as_ref().map(|s| s.span())),
                ("content_type", app.content_type.as_ref().map(|s| s.span())),
            ] {
                if let Some(span) = present {
                    return Err(ctx.error_at(
                        ctx.locate(span.start),
                        &key(name),
                        format!("{name} applies to static_body routes; a wasm route sets its own status and headers"),
                    ));
                }
            }
            HandlerSpec::Wasm(Box::new(wasm_spec(ctx, index, app, file)?))
        }
    };
    Ok(RouteSpec {
        index,
        method,
        path,
        handler,
        max_body_bytes,
        at: ctx.at(&app.method),
    })
}

fn parse_method(text: &str) -> Option<Method> {
    Method::ROUTABLE.iter().copied().find(|m| m.as_str() == text)
}

fn parse_route_path(text: &str) -> Result<RoutePath, String> {
    if !text.starts_with('/') {
        return Err(format!("{text:?} must start with '/'"));
    }
    if text.bytes().any(|b| b <= b' ' || b == 0x7f || b == b'?' || b == b'#') {
        return Err(format!(
            "{text:?} must not contain spaces, control characters, '?' or '#'"
        ));
    }
    match text.strip_suffix("/*") {
        Some(prefix) if !prefix.contains('*') => Ok(RoutePath::Prefix(prefix.to_string())),
        _ if text.contains('*') => Err(format!(
            "{text:?}: '*' is only allowed as a final \"/*\" (prefix route)"
        )),
        _ => Ok(RoutePath::Exact(text.to_string())),
    }
}

fn static_spec(
    ctx: &Ctx<'_>,
    index: usize,
    app: &raw::RawApplication,
    body: &Spanned<String>,
) -> Result<StaticSpec, ConfigError> {
    let status = bounded(
        ctx,
        &app.status,
        &format!("applications[{index}].status"),
        200,
        200,
        999,
    )?;
    let content_type = match &app.content_type {
        None => DEFAULT_STATIC_CONTENT_TYPE.to_string(),
        Some(ct) if crate::http::is_field_value(ct.get_ref().as_bytes()) && !ct.get_ref().is_empty() => {
            ct.get_ref().clone()
        }
        Some(ct) => {
            return Err(ctx.error(
                ct,
                &format!("applications[{index}].content_type"),
                format!("{:?} is not a valid header value", ct.get_ref()),
            ));
        }
    };
    Ok(StaticSpec {
        status,
        content_type,
        body: body.get_ref().clone(),
    })
}

/// A static route with wasm-only keys is a mistake worth reporting.
fn reject_wasm_keys(ctx: &Ctx<'_>, index: usize, app: &raw::RawApplication) -> Result<(), ConfigError> {
    let spans = [
        ("function", app.function.as_ref().map(|v| v.span())),
        ("env", app.env.as_ref().map(|v| v.span())),
        ("fuel", app.fuel.as_ref().map(|v| v.span())),
        (
            "fuel_yield_interval",
            app.fuel_yield_interval.as_ref().map(|v| v.span()),
        ),
        ("timeout_ms", app.timeout_ms.as_ref().map(|v| v.span())),
        ("memory_limit", app.memory_limit.as_ref().map(|v| v.span())),
        (
            "table_elements_limit",
            app.table_elements_limit.as_ref().map(|v| v.span()),
        ),
        ("max_response_bytes", app.max_response_bytes.as_ref().map(|v| v.span())),
        ("max_log_bytes", app.max_log_bytes.as_ref().map(|v| v.span())),
        ("instance", app.instance.as_ref().map(|v| v.span())),
        (
            "max_requests_per_instance",
            app.max_requests_per_instance.as_ref().map(|v| v.span()),
        ),
        ("max_concurrency", app.max_concurrency.as_ref().map(|v| v.span())),
        ("max_queue", app.max_queue.as_ref().map(|v| v.span())),
        ("warm_instances", app.warm_instances.as_ref().map(|v| v.span())),
        (
            "allowed_outbound",
            app.allowed_outbound.as_ref().and_then(|v| v.first()).map(|v| v.span()),
        ),
        ("connect_timeout_ms", app.connect_timeout_ms.as_ref().map(|v| v.span())),
        ("io_timeout_ms", app.io_timeout_ms.as_ref().map(|v| v.span())),
        (
            "max_backend_connections",
            app.max_backend_connections.as_ref().map(|v| v.span()),
        ),
        ("max_backend_bytes", app.max_backend_bytes.as_ref().map(|v| v.span())),
    ];
    match spans.into_iter().find_map(|(name, span)| span.map(|s| (name, s))) {
        None => Ok(()),
        Some((name, span)) => Err(ctx.error_at(
            ctx.locate(span.start),
            &format!("applications[{index}].{name}"),
            format!("{name} applies to wasm routes (file_path), not to static_body routes"),
        )),
    }
}

fn wasm_spec(
    ctx: &Ctx<'_>,
    index: usize,
    app: &raw::RawApplication,
    file: &Spanned<String>,
) -> Result<WasmSpec, ConfigError> {
    let key = |name: &str| format!("applications[{index}].{name}");
    let resolved = resolve_file(ctx.path, file.get_ref()).map_err(|m| ctx.error(file, &key("file_path"), m))?;
    let function = app
        .function
        .as_ref()
        .map_or(DEFAULT_FUNCTION.to_string(), |f| f.get_ref().clone());
    let instance = match app.instance.as_ref().map(|i| i.get_ref().as_str()) {
        None | Some("fresh") => {
            if let Some(m) = &app.max_requests_per_instance {
                return Err(ctx.error(
                    m,
                    &key("max_requests_per_instance"),
                    "applies only with instance = \"reuse\"".into(),
                ));
            }
            InstancePolicy::Fresh
        }
        Some("reuse") => InstancePolicy::Reuse {
            max_requests: bounded(
                ctx,
                &app.max_requests_per_instance,
                &key("max_requests_per_instance"),
                DEFAULT_MAX_REQUESTS_PER_INSTANCE,
                1,
                u64::MAX,
            )?,
        },
        Some(other) => {
            let at = app.instance.as_ref().map(|i| ctx.at(i)).unwrap_or_default();
            return Err(ctx.error_at(
                at,
                &key("instance"),
                format!("{other:?} is not an instance policy: use \"fresh\" or \"reuse\""),
            ));
        }
    };
    let fuel = bounded(ctx, &app.fuel, &key("fuel"), DEFAULT_FUEL, 1, u64::MAX / 2)?;
    let limits = GuestLimits {
        fuel,
        fuel_yield_interval: bounded(
            ctx,
            &app.fuel_yield_interval,
            &key("fuel_yield_interval"),
            DEFAULT_FUEL_YIELD_INTERVAL.min(fuel),
            1_000,
            u64::MAX / 2,
        )?,
        timeout: millis(
            ctx,
            &app.timeout_ms,
            &key("timeout_ms"),
            DEFAULT_GUEST_TIMEOUT,
            Duration::from_secs(3600),
        )?,
        memory_limit: bounded_size(
            ctx,
            &app.memory_limit,
            &key("memory_limit"),
            DEFAULT_MEMORY_LIMIT,
            WASM_PAGE,
            MAX_MEMORY_LIMIT,
        )?,
        table_elements_limit: bounded(
            ctx,
            &app.table_elements_limit,
            &key("table_elements_limit"),
            DEFAULT_TABLE_ELEMENTS,
            0,
            10_000_000,
        )?,
        max_response_bytes: bounded_size(
            ctx,
            &app.max_response_bytes,
            &key("max_response_bytes"),
            DEFAULT_MAX_RESPONSE_BYTES,
            0,
            1 << 30,
        )?,
        max_log_bytes: bounded_size(
            ctx,
            &app.max_log_bytes,
            &key("max_log_bytes"),
            DEFAULT_MAX_LOG_BYTES,
            0,
            16 << 20,
        )?,
        instance,
        max_concurrency: bounded(
            ctx,
            &app.max_concurrency,
            &key("max_concurrency"),
            DEFAULT_MAX_CONCURRENCY,
            1,
            100_000,
        )?,
        max_queue: bounded(ctx, &app.max_queue, &key("max_queue"), DEFAULT_MAX_QUEUE, 0, 1_000_000)?,
        warm_instances: bounded(
            ctx,
            &app.warm_instances,
            &key("warm_instances"),
            DEFAULT_WARM_INSTANCES,
            0,
            10_000,
        )?,
    };
    let env = app.env.as_ref().map(|e| e.get_ref().clone()).unwrap_or_default();
    let mut allowed = Vec::new();
    for entry in app.allowed_outbound.iter().flatten() {
        allowed.push(Endpoint::parse(entry.get_ref()).map_err(|m| ctx.error(entry, &key("allowed_outbound"), m))?);
    }
    let allowed_from_env = app.allowed_outbound.is_none();
    if allowed_from_env {
        allowed.extend(env.values().filter_map(|v| Endpoint::parse(v).ok()));
    }
    let outbound = OutboundPolicy {
        allowed,
        allowed_from_env,
        connect_timeout: millis(
            ctx,
            &app.connect_timeout_ms,
            &key("connect_timeout_ms"),
            DEFAULT_CONNECT_TIMEOUT,
            Duration::from_secs(600),
        )?,
        io_timeout: millis(
            ctx,
            &app.io_timeout_ms,
            &key("io_timeout_ms"),
            DEFAULT_IO_TIMEOUT,
            Duration::from_secs(3600),
        )?,
        max_connections: bounded(
            ctx,
            &app.max_backend_connections,
            &key("max_backend_connections"),
            DEFAULT_MAX_BACKEND_CONNECTIONS,
            0,
            1024,
        )?,
        max_bytes: bounded_size(
            ctx,
            &app.max_backend_bytes,
            &key("max_backend_bytes"),
            DEFAULT_MAX_BACKEND_BYTES,
            0,
            1 << 40,
        )? as u64,
    };
    Ok(WasmSpec {
        file: resolved,
        file_at: ctx.at(file),
        function_at: app.function.as_ref().map(|f| ctx.at(f)).unwrap_or_else(|| ctx.at(file)),
        function,
        env,
        limits,
        outbound,
    })
}

/// Relative paths resolve against the config file's directory first, then
/// the working directory (where the original server looked).
fn resolve_file(config_path: &Path, file: &str) -> Result<PathBuf, String> {
    let given = Path::new(file);
    let candidates: Vec<PathBuf> = if given.is_absolute() {
        vec![given.to_path_buf()]
    } else {
        let config_dir = config_path.parent().unwrap_or(Path::new("."));
        let mut c = vec![config_dir.join(given)];
        if let Ok(cwd) = std::env::current_dir() {
            c.push(cwd.join(given));
        }
        c
    };
    for candidate in &candidates {
        if candidate.is_file() {
            return Ok(candidate.clone());
        }
    }
    let tried: Vec<String> = candidates.iter().map(|c| c.display().to_string()).collect();
    Err(format!("wasm file {file:?} not found; tried {}", tried.join(", ")))
}

#[cfg(test)]
mod tests;
