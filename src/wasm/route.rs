//! What a guest instance knows about its route on its shard: read-only
//! settings, and the route's counters on that shard.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::{GuestLimits, OutboundPolicy, WasmSpec};
use crate::kv::RouteStores;
use crate::stats::RouteStats;

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

    /// For a trial instantiation at start-up: counters nobody reads, no
    /// stores.
    pub fn trial(label: &str, spec: &WasmSpec) -> RouteContext {
        RouteContext::new(label, spec, Arc::default(), RouteStores::none())
    }
}
