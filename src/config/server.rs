//! The `[server]` table: server-wide settings and limits, with defaults.

use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::defaults::*;
use super::{ConfigError, Ctx, EngineLimits, ServerConfig, Timeouts, bounded, bounded_size, millis, raw};
use crate::http::FramingLimits;

pub(super) fn server_config(ctx: &Ctx<'_>, raw: &raw::RawServer) -> Result<ServerConfig, ConfigError> {
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
        compile_cache_dir: compile_cache_dir(ctx, &raw.compile_cache_dir)?,
    })
}

/// Relative to the config file's directory; the directory itself is
/// created (and its permissions checked) when the server starts.
fn compile_cache_dir(ctx: &Ctx<'_>, raw: &Option<Spanned<String>>) -> Result<Option<PathBuf>, ConfigError> {
    let Some(dir) = raw else { return Ok(None) };
    if dir.get_ref().is_empty() {
        return Err(ctx.error(dir, "server.compile_cache_dir", "the path is empty".into()));
    }
    let config_dir = ctx.path.parent().unwrap_or(Path::new("."));
    Ok(Some(config_dir.join(dir.get_ref())))
}
