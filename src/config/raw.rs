//! The TOML file, mirrored field for field. No logic here: `config::load`
//! turns this into the validated `Config`. Every table denies unknown keys
//! so a typo is an error at start-up, not a silently ignored setting.
//! Values that later checks may reject carry their span, so the error can
//! name the line and column.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::size::ByteSize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen_address: Spanned<String>,
    #[serde(default)]
    pub server: RawServer,
    pub access_log: Option<RawAccessLog>,
    #[serde(default)]
    pub applications: Vec<RawApplication>,
    pub admin: Option<RawAdmin>,
    pub sources: Option<RawSources>,
    /// `[key_value.NAME]` tables: the stores routes may use.
    #[serde(default)]
    pub key_value: BTreeMap<String, Spanned<RawKeyValue>>,
}

/// One `[key_value.NAME]` table: a key-value store guests may open by name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKeyValue {
    #[serde(rename = "type")]
    pub kind: Spanned<String>,
    /// Embedded: the database file.
    pub path: Option<Spanned<String>>,
    /// Redis: `redis://[[user]:password@]host[:port][/db]`.
    pub url: Option<Spanned<String>>,
    /// Redis: prepended to every key.
    pub prefix: Option<Spanned<String>>,
    pub max_key_bytes: Option<Spanned<ByteSize>>,
    pub max_value_bytes: Option<Spanned<ByteSize>>,
    pub timeout_ms: Option<Spanned<u64>>,
    pub max_connections_per_shard: Option<Spanned<usize>>,
}

/// The optional `[sources]` table: how modules are fetched and cached.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSources {
    pub s3_endpoint: Option<Spanned<String>>,
    pub s3_region: Option<Spanned<String>>,
    pub s3_path_style: Option<bool>,
    pub oci_insecure_registries: Option<Vec<Spanned<String>>>,
    pub fetch_timeout_ms: Option<Spanned<u64>>,
    pub fetch_attempts: Option<Spanned<u32>>,
    pub max_module_bytes: Option<Spanned<ByteSize>>,
    pub cache_dir: Option<Spanned<String>>,
    pub cache_max_bytes: Option<Spanned<ByteSize>>,
}

/// The optional `[admin]` table: the admin listener (off when absent).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub listen_address: Spanned<String>,
}

/// The optional `[server]` table: server-wide settings and limits.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub shards: Option<Spanned<usize>>,
    pub cpus: Option<Spanned<Vec<usize>>>,
    pub max_request_line_bytes: Option<Spanned<ByteSize>>,
    pub max_header_bytes: Option<Spanned<ByteSize>>,
    pub max_body_bytes: Option<Spanned<ByteSize>>,
    pub header_timeout_ms: Option<Spanned<u64>>,
    pub body_timeout_ms: Option<Spanned<u64>>,
    pub keepalive_timeout_ms: Option<Spanned<u64>>,
    pub write_timeout_ms: Option<Spanned<u64>>,
    pub drain_timeout_ms: Option<Spanned<u64>>,
    pub shutdown_delay_ms: Option<Spanned<u64>>,
    pub max_connections_per_shard: Option<Spanned<usize>>,
    pub listen_backlog: Option<Spanned<u32>>,
    pub read_buffer_bytes: Option<Spanned<ByteSize>>,
    pub preempt_timer_us: Option<Spanned<u64>>,
    pub spin_before_park_us: Option<Spanned<u64>>,
    pub instance_slots_per_shard: Option<Spanned<u32>>,
    pub keep_resident_bytes: Option<Spanned<ByteSize>>,
    pub max_wasm_stack_bytes: Option<Spanned<ByteSize>>,
    pub max_memory_limit: Option<Spanned<ByteSize>>,
    pub max_table_elements: Option<Spanned<u32>>,
    pub shard_header: Option<bool>,
    pub compile_cache_dir: Option<Spanned<String>>,
    pub log_buffer_bytes: Option<Spanned<ByteSize>>,
    pub state_dir: Option<Spanned<String>>,
    pub outbound_ca_file: Option<Spanned<String>>,
}

/// The optional `[access_log]` table: present, every response is logged.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccessLog {
    pub path: Spanned<String>,
    pub format: Option<Spanned<String>>,
    pub buffer_bytes: Option<Spanned<ByteSize>>,
}

/// One `[[applications]]` entry: a route and what answers it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApplication {
    pub method: Spanned<String>,
    pub url_path: Spanned<String>,
    pub name: Option<Spanned<String>>,

    // A wasm route...
    pub file_path: Option<Spanned<String>>,
    pub sha256: Option<Spanned<String>>,
    pub function: Option<Spanned<String>>,
    pub env: Option<Spanned<BTreeMap<String, String>>>,

    // ...or a native one.
    pub static_body: Option<Spanned<String>>,
    pub status: Option<Spanned<u16>>,
    pub content_type: Option<Spanned<String>>,

    // Limits (any route).
    pub max_body_bytes: Option<Spanned<ByteSize>>,

    // Limits and policy of a wasm route.
    pub fuel: Option<Spanned<u64>>,
    pub fuel_yield_interval: Option<Spanned<u64>>,
    pub timeout_ms: Option<Spanned<u64>>,
    pub memory_limit: Option<Spanned<ByteSize>>,
    pub table_elements_limit: Option<Spanned<u32>>,
    pub max_response_bytes: Option<Spanned<ByteSize>>,
    pub max_log_bytes: Option<Spanned<ByteSize>>,
    pub instance: Option<Spanned<String>>,
    pub max_requests_per_instance: Option<Spanned<u64>>,
    pub max_concurrent_requests_per_instance: Option<Spanned<usize>>,
    pub max_concurrency: Option<Spanned<usize>>,
    pub max_queue: Option<Spanned<usize>>,
    pub warm_instances: Option<Spanned<usize>>,

    // Backends a wasm route may reach.
    pub allowed_outbound: Option<Vec<Spanned<String>>>,
    pub connect_timeout_ms: Option<Spanned<u64>>,
    pub io_timeout_ms: Option<Spanned<u64>>,
    pub max_backend_connections: Option<Spanned<usize>>,
    pub max_backend_bytes: Option<Spanned<ByteSize>>,
    pub outbound_ca_file: Option<Spanned<String>>,

    // Key-value stores the guest may open.
    pub key_value_stores: Option<Vec<Spanned<String>>>,
}
