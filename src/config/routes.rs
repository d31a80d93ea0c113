//! `[[applications]]`: one route each, native or wasm, with its limits.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::defaults::*;
use super::{
    ConfigError, Ctx, Endpoint, GuestLimits, HandlerSpec, InstancePolicy, KeyValueConfig, OutboundPolicy, RoutePath,
    RouteSpec, ServerConfig, Settings, StaticSpec, WasmSpec, raw,
};
use crate::http::Method;
use crate::sources::{ModuleSource, Sha256Digest};

/// A route's name becomes a log field and a metrics label value: short,
/// and nothing that breaks a line or a terminal.
const MAX_NAME_BYTES: usize = 128;

pub(super) fn route_spec(
    ctx: &Ctx<'_>,
    index: usize,
    app: &raw::RawApplication,
    server: &ServerConfig,
    stores: &BTreeMap<String, KeyValueConfig>,
) -> Result<RouteSpec, ConfigError> {
    let s = Settings::new(ctx, format!("applications[{index}]"));
    let method = parse_method(app.method.get_ref()).ok_or_else(|| {
        let allowed: Vec<&str> = Method::ROUTABLE.iter().map(|m| m.as_str()).collect();
        s.error(
            &app.method,
            "method",
            format!(
                "bad method {:?}: expected one of {}",
                app.method.get_ref(),
                allowed.join(", ")
            ),
        )
    })?;
    let path = parse_route_path(app.url_path.get_ref()).map_err(|m| s.error(&app.url_path, "url_path", m))?;
    let name = match &app.name {
        Some(name) => check_name(name.get_ref()).map_err(|m| s.error(name, "name", m))?,
        None => format!("{method} {path}"),
    };
    let max_body_bytes = s.size(
        &app.max_body_bytes,
        "max_body_bytes",
        server.framing.max_body,
        0,
        MAX_BODY_BYTES,
    )?;

    let handler = match (&app.file_path, &app.static_body) {
        (Some(_), Some(body)) => {
            return Err(s.error(
                body,
                "static_body",
                "a route has either file_path or static_body, not both".into(),
            ));
        }
        (None, None) => {
            return Err(s.error(
                &app.method,
                "file_path",
                "the route needs a file_path (wasm) or a static_body (native)".into(),
            ));
        }
        (None, Some(body)) => {
            reject_wasm_keys(&s, app)?;
            HandlerSpec::Static(static_spec(&s, app, body)?)
        }
        (Some(file), None) => {
            for (name, present) in [
                ("status", app.status.as_ref().map(|v| v.span())),
                ("content_type", app.content_type.as_ref().map(|v| v.span())),
            ] {
                if let Some(span) = present {
                    return Err(s.error_at(
                        span.start,
                        name,
                        format!("{name} applies to static_body routes; a wasm route sets its own status and headers"),
                    ));
                }
            }
            HandlerSpec::Wasm(Box::new(wasm_spec(&s, app, file, server, stores)?))
        }
    };
    Ok(RouteSpec {
        index,
        name,
        method,
        path,
        handler,
        max_body_bytes,
        at: ctx.at(&app.method),
    })
}

/// An explicit `name`. A default one ("GET /hello") needs no check: a
/// `url_path` is printable already, and a long one was never refused.
fn check_name(name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "the name is {} bytes long: at most {MAX_NAME_BYTES}",
            name.len()
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(format!("{name:?} contains a control character"));
    }
    Ok(name.to_string())
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

fn static_spec(s: &Settings<'_>, app: &raw::RawApplication, body: &Spanned<String>) -> Result<StaticSpec, ConfigError> {
    let status = s.int(&app.status, "status", 200, 200, 999)?;
    let content_type = match &app.content_type {
        None => DEFAULT_STATIC_CONTENT_TYPE.to_string(),
        Some(ct) if crate::http::is_field_value(ct.get_ref().as_bytes()) && !ct.get_ref().is_empty() => {
            ct.get_ref().clone()
        }
        Some(ct) => {
            return Err(s.error(
                ct,
                "content_type",
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
fn reject_wasm_keys(s: &Settings<'_>, app: &raw::RawApplication) -> Result<(), ConfigError> {
    let spans = [
        ("sha256", app.sha256.as_ref().map(|v| v.span())),
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
        (
            "max_concurrent_requests_per_instance",
            app.max_concurrent_requests_per_instance.as_ref().map(|v| v.span()),
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
        ("outbound_ca_file", app.outbound_ca_file.as_ref().map(|v| v.span())),
        (
            "key_value_stores",
            app.key_value_stores.as_ref().and_then(|v| v.first()).map(|v| v.span()),
        ),
    ];
    match spans.into_iter().find_map(|(name, span)| span.map(|s| (name, s))) {
        None => Ok(()),
        Some((name, span)) => Err(s.error_at(
            span.start,
            name,
            format!("{name} applies to wasm routes (file_path), not to static_body routes"),
        )),
    }
}

fn wasm_spec(
    s: &Settings<'_>,
    app: &raw::RawApplication,
    file: &Spanned<String>,
    server: &ServerConfig,
    stores: &BTreeMap<String, KeyValueConfig>,
) -> Result<WasmSpec, ConfigError> {
    const HOUR_MS: u64 = 3_600_000;
    let ctx = s.ctx;
    let source = module_source(s, file, app.sha256.as_ref())?;
    let sha256 = match &app.sha256 {
        Some(pin) => Some(Sha256Digest::parse(pin.get_ref()).map_err(|m| s.error(pin, "sha256", m))?),
        None => None,
    };
    let function = app
        .function
        .as_ref()
        .map_or(DEFAULT_FUNCTION.to_string(), |f| f.get_ref().clone());
    let instance = match app.instance.as_ref().map(|i| i.get_ref().as_str()) {
        None | Some("fresh") => {
            if let Some(m) = &app.max_requests_per_instance {
                return Err(s.error(
                    m,
                    "max_requests_per_instance",
                    "applies only with instance = \"reuse\"".into(),
                ));
            }
            if let Some(m) = &app.max_concurrent_requests_per_instance {
                return Err(s.error(
                    m,
                    "max_concurrent_requests_per_instance",
                    "applies only with instance = \"reuse\"".into(),
                ));
            }
            InstancePolicy::Fresh
        }
        #[rustfmt::skip]
        Some("reuse") => InstancePolicy::Reuse {
            max_requests: s.optional(&app.max_requests_per_instance, "max_requests_per_instance", 1, u64::MAX)?,
            max_concurrent: s.optional(&app.max_concurrent_requests_per_instance, "max_concurrent_requests_per_instance", 1, 1024)?,
        },
        Some(other) => {
            let at = app.instance.as_ref().map(|i| ctx.at(i)).unwrap_or_default();
            return Err(ctx.error_at(
                at,
                &s.key("instance"),
                format!("{other:?} is not an instance policy: use \"fresh\" or \"reuse\""),
            ));
        }
    };
    let fuel = s.int(&app.fuel, "fuel", DEFAULT_FUEL, 1, u64::MAX / 2)?;
    let yield_interval = DEFAULT_FUEL_YIELD_INTERVAL.min(fuel);
    // Within the engine's bounds (`[server] max_memory_limit`,
    // `max_table_elements`), which a lowered bound also lowers the
    // defaults to.
    let engine = &server.engine;
    let max_table = engine.max_table_elements.unwrap_or(MAX_TABLE_ELEMENTS);
    let default_memory = DEFAULT_MEMORY_LIMIT.min(engine.max_memory_limit);
    let default_table = DEFAULT_TABLE_ELEMENTS.min(max_table);
    // One line per setting: raw value, key, default, min, max (rustfmt would
    // spread each call over eight lines).
    #[rustfmt::skip]
    let limits = GuestLimits {
        fuel,
        instance,
        fuel_yield_interval:  s.int(&app.fuel_yield_interval,  "fuel_yield_interval",  yield_interval,             1_000,     u64::MAX / 2)?,
        timeout:              s.millis(&app.timeout_ms,        "timeout_ms",           DEFAULT_GUEST_TIMEOUT,      1,         HOUR_MS)?,
        memory_limit:         s.size(&app.memory_limit,        "memory_limit",         default_memory,             WASM_PAGE, engine.max_memory_limit)?,
        table_elements_limit: s.int(&app.table_elements_limit, "table_elements_limit", default_table,              0,         max_table)?,
        max_response_bytes:   s.size(&app.max_response_bytes,  "max_response_bytes",   DEFAULT_MAX_RESPONSE_BYTES, 0,         1 << 30)?,
        max_log_bytes:        s.size(&app.max_log_bytes,       "max_log_bytes",        DEFAULT_MAX_LOG_BYTES,      0,         16 << 20)?,
        max_concurrency:      s.int(&app.max_concurrency,      "max_concurrency",      DEFAULT_MAX_CONCURRENCY,    1,         100_000)?,
        max_queue:            s.int(&app.max_queue,            "max_queue",            DEFAULT_MAX_QUEUE,          0,         1_000_000)?,
        warm_instances:       s.int(&app.warm_instances,       "warm_instances",       DEFAULT_WARM_INSTANCES,     0,         10_000)?,
    };
    let env = app.env.as_ref().map(|e| e.get_ref().clone()).unwrap_or_default();
    let mut allowed = Vec::new();
    for entry in app.allowed_outbound.iter().flatten() {
        allowed.push(Endpoint::parse(entry.get_ref()).map_err(|m| s.error(entry, "allowed_outbound", m))?);
    }
    let allowed_from_env = app.allowed_outbound.is_none();
    if allowed_from_env {
        allowed.extend(env.values().filter_map(|v| Endpoint::parse(v).ok()));
    }
    #[rustfmt::skip]
    let outbound = OutboundPolicy {
        allowed,
        allowed_from_env,
        connect_timeout: s.millis(&app.connect_timeout_ms,   "connect_timeout_ms",      DEFAULT_CONNECT_TIMEOUT,         1, 600_000)?,
        io_timeout:      s.millis(&app.io_timeout_ms,        "io_timeout_ms",           DEFAULT_IO_TIMEOUT,              1, HOUR_MS)?,
        max_connections: s.int(&app.max_backend_connections, "max_backend_connections", DEFAULT_MAX_BACKEND_CONNECTIONS, 0, 1024)?,
        max_bytes:       s.size(&app.max_backend_bytes,      "max_backend_bytes",       DEFAULT_MAX_BACKEND_BYTES,       0, 1 << 40)? as u64,
        tls: match &app.outbound_ca_file {
            Some(file) => super::server::ca_file(s, file, "outbound_ca_file")?,
            None => server.outbound_tls.clone(),
        },
    };
    let mut key_value_stores = Vec::new();
    for store in app.key_value_stores.iter().flatten() {
        let name = store.get_ref();
        if !stores.contains_key(name) {
            let declared: Vec<&str> = stores.keys().map(String::as_str).collect();
            return Err(s.error(
                store,
                "key_value_stores",
                format!("no key-value store {name:?}: declared are {}", declared.join(", ")),
            ));
        }
        if !key_value_stores.contains(name) {
            key_value_stores.push(name.clone());
        }
    }
    Ok(WasmSpec {
        source,
        sha256,
        file_at: ctx.at(file),
        function_at: app.function.as_ref().map(|f| ctx.at(f)).unwrap_or_else(|| ctx.at(file)),
        function,
        env,
        limits,
        outbound,
        key_value_stores,
    })
}

/// `file_path`: a path (resolved here) or an address (fetched at start).
fn module_source(
    s: &Settings<'_>,
    file: &Spanned<String>,
    sha256: Option<&Spanned<String>>,
) -> Result<ModuleSource, ConfigError> {
    let source = ModuleSource::parse(file.get_ref()).map_err(|m| s.error(file, "file_path", m))?;
    match source {
        ModuleSource::File(path) => {
            let path = path.to_string_lossy();
            resolve_file(s.ctx.path, &path)
                .map(ModuleSource::File)
                .map_err(|m| s.error(file, "file_path", m))
        }
        // Without a digest, plain HTTP would let anyone on the path swap
        // the code this server runs.
        ModuleSource::Http(address) if address.is_plain() && sha256.is_none() => Err(s.error(
            file,
            "file_path",
            "an http:// module needs a sha256 on its route (or use https://)".into(),
        )),
        remote => Ok(remote),
    }
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
