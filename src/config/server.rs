//! The `[server]` table: server-wide settings and limits, with defaults.

use std::time::Duration;

use super::defaults::*;
use super::{ConfigError, Ctx, EngineLimits, ServerConfig, Settings, Timeouts, raw};
use crate::http::FramingLimits;
use crate::net::TlsClient;

pub(super) fn server_config(ctx: &Ctx<'_>, raw: &raw::RawServer) -> Result<ServerConfig, ConfigError> {
    const HOUR_MS: u64 = 3_600_000;
    // spin_before_park_us = 0, the default: park at once, no busy-polling.
    let spin = |d: Duration| (!d.is_zero()).then_some(d);
    let s = Settings::new(ctx, "server".into());
    // Absent: one shard per CPU, decided at start.
    let shards = s.optional(&raw.shards, "shards", 1, MAX_SHARDS)?;
    let cpus = match &raw.cpus {
        Some(list) if list.get_ref().is_empty() => return Err(s.error(list, "cpus", "the CPU list is empty".into())),
        other => other.as_ref().map(|l| l.get_ref().clone()),
    };
    // One line per setting: raw value, key, default, min, max (rustfmt would
    // spread each call over eight lines). Checked in this order: the first
    // bad value is the one reported.
    #[rustfmt::skip]
    let (max_request_line, max_head) = (
        s.size(&raw.max_request_line_bytes, "max_request_line_bytes", DEFAULT_MAX_REQUEST_LINE, 64,  1 << 20)?,
        s.size(&raw.max_header_bytes,       "max_header_bytes",       DEFAULT_MAX_HEADER_BYTES, 256, 1 << 20)?,
    );
    if max_head < max_request_line {
        let at = raw.max_header_bytes.as_ref().or(raw.max_request_line_bytes.as_ref());
        let at = at.map(|v| ctx.at(v)).unwrap_or_default();
        return Err(ctx.error_at(
            at,
            &s.key("max_header_bytes"),
            format!("max_header_bytes ({max_head}) must be at least max_request_line_bytes ({max_request_line})"),
        ));
    }
    #[rustfmt::skip]
    let config = ServerConfig {
        shards,
        cpus,
        framing: FramingLimits {
            max_request_line,
            max_head,
            max_body: s.size(&raw.max_body_bytes, "max_body_bytes", DEFAULT_MAX_BODY_BYTES, 0, MAX_BODY_BYTES)?,
        },
        timeouts: Timeouts {
            header:    s.millis(&raw.header_timeout_ms,    "header_timeout_ms",    DEFAULT_HEADER_TIMEOUT,    1, HOUR_MS)?,
            body:      s.millis(&raw.body_timeout_ms,      "body_timeout_ms",      DEFAULT_BODY_TIMEOUT,      1, HOUR_MS)?,
            keepalive: s.millis(&raw.keepalive_timeout_ms, "keepalive_timeout_ms", DEFAULT_KEEPALIVE_TIMEOUT, 1, HOUR_MS)?,
            write:     s.millis(&raw.write_timeout_ms,     "write_timeout_ms",     DEFAULT_WRITE_TIMEOUT,     1, HOUR_MS)?,
            drain:     s.millis(&raw.drain_timeout_ms,     "drain_timeout_ms",     DEFAULT_DRAIN_TIMEOUT,     1, HOUR_MS)?,
            shutdown_delay: s.millis(&raw.shutdown_delay_ms, "shutdown_delay_ms", Duration::ZERO,          0, HOUR_MS)?,
        },
        max_connections_per_shard: s.int(&raw.max_connections_per_shard, "max_connections_per_shard", DEFAULT_MAX_CONNECTIONS_PER_SHARD, 1,    1 << 20)?,
        listen_backlog:            s.int(&raw.listen_backlog,            "listen_backlog",            DEFAULT_LISTEN_BACKLOG,            1,    1 << 20)?,
        read_buffer_bytes:         s.size(&raw.read_buffer_bytes,        "read_buffer_bytes",         DEFAULT_READ_BUFFER_BYTES,         1024, 16 << 20)?,
        preempt_timer:             s.micros(&raw.preempt_timer_us,       "preempt_timer_us",          DEFAULT_PREEMPT_TIMER,             50,   1_000_000)?,
        spin_before_park:          s.micros(&raw.spin_before_park_us,    "spin_before_park_us",       Duration::ZERO,                    0,    1_000_000).map(spin)?,
        log_buffer_bytes:          s.size(&raw.log_buffer_bytes,         "log_buffer_bytes",          DEFAULT_LOG_BUFFER_BYTES,          4096, 64 << 20)?,
        engine: EngineLimits {
            instance_slots_per_shard: s.int(&raw.instance_slots_per_shard, "instance_slots_per_shard", DEFAULT_INSTANCE_SLOTS_PER_SHARD, 1,        100_000)?,
            keep_resident_bytes:      s.size(&raw.keep_resident_bytes,     "keep_resident_bytes",      DEFAULT_KEEP_RESIDENT_BYTES,      0,        1 << 30)?,
            max_wasm_stack_bytes:     s.size(&raw.max_wasm_stack_bytes,    "max_wasm_stack_bytes",     DEFAULT_MAX_WASM_STACK,           16 << 10, 64 << 20)?,
            max_memory_limit:         s.size(&raw.max_memory_limit,        "max_memory_limit",         MAX_MEMORY_LIMIT,                 WASM_PAGE, MAX_MEMORY_LIMIT)?,
            max_table_elements:       s.optional(&raw.max_table_elements,  "max_table_elements",       0,                                MAX_TABLE_ELEMENTS)?,
        },
        shard_header: raw.shard_header.unwrap_or(false),
        // Created (and its permissions checked) when the server starts.
        compile_cache_dir: raw.compile_cache_dir.as_ref().map(|dir| s.path(dir, "compile_cache_dir")).transpose()?,
        state_dir: match &raw.state_dir {
            Some(dir) => s.path(dir, "state_dir")?,
            None => std::path::PathBuf::from(DEFAULT_STATE_DIR),
        },
        outbound_tls: match &raw.outbound_ca_file {
            Some(file) => ca_file(&s, file, "outbound_ca_file")?,
            None => TlsClient::public_roots(),
        },
    };
    Ok(config)
}

/// `outbound_ca_file` (server or route): read and parsed now, so a bad file
/// stops a start or a reload with its location.
pub(super) fn ca_file(s: &Settings<'_>, file: &toml::Spanned<String>, key: &str) -> Result<TlsClient, ConfigError> {
    let path = s.path(file, key)?;
    // Fuzzing must not read files named by its input.
    if cfg!(fuzzing) {
        return Ok(TlsClient::public_roots());
    }
    TlsClient::with_ca_file(&path).map_err(|m| s.error(file, key, m))
}
