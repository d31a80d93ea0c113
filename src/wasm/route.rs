//! What a guest instance knows about its route on its shard: read-only
//! settings, and the route's counters on that shard.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime_wasi::WasiCtxBuilder;

use crate::config::{GuestLimits, OutboundPolicy, WasmSpec};
use crate::kv::RouteStores;
use crate::stats::RouteStats;
use crate::wasm::guest_log::{GuestLog, Stream};
use crate::wasm::shard_clock::MonotonicClock;

/// One per route per shard. Host functions reach it through the store, so
/// nothing on the request path is shared between shards.
pub struct RouteContext {
    /// The route's name, for logs and statistics.
    pub label: String,
    pub env: BTreeMap<String, String>,
    pub limits: GuestLimits,
    pub outbound: OutboundPolicy,
    pub stats: Arc<RouteStats>,
    /// The key-value stores its guests may open.
    pub key_value: RouteStores,
}

impl RouteContext {
    pub fn new(label: &str, spec: &WasmSpec, stats: Arc<RouteStats>, key_value: RouteStores) -> RouteContext {
        RouteContext {
            label: label.to_string(),
            env: spec.env.clone(),
            limits: spec.limits,
            outbound: spec.outbound.clone(),
            stats,
            key_value,
        }
    }

    /// The WASI context both guest kinds start from: the route's `env` as
    /// the environment, stdout and stderr into `log`, the guests' monotonic
    /// clock (`shard_clock`); nothing preopened.
    pub fn wasi_builder(&self, log: &GuestLog) -> WasiCtxBuilder {
        let mut wasi = WasiCtxBuilder::new();
        wasi.envs(&self.env.iter().collect::<Vec<_>>())
            .stdout(log.stream(Stream::Stdout))
            .stderr(log.stream(Stream::Stderr))
            .monotonic_clock(MonotonicClock);
        wasi
    }

    /// For a trial instantiation at start-up: counters nobody reads, no
    /// stores.
    pub fn trial(label: &str, spec: &WasmSpec) -> RouteContext {
        RouteContext::new(label, spec, Arc::default(), RouteStores::none())
    }
}
