//! What a guest instance knows about its route on its shard, and the
//! route's per-shard counters.

use std::cell::Cell;
use std::collections::BTreeMap;

use crate::config::{GuestLimits, OutboundPolicy, WasmSpec};

/// Read-only route settings plus counters, one per route per shard. Host
/// functions reach it through the store, so nothing on the request path
/// is shared between shards.
pub struct RouteContext {
    /// "GET /hello", for logs.
    pub label: String,
    pub env: BTreeMap<String, String>,
    pub limits: GuestLimits,
    pub outbound: OutboundPolicy,
    pub stats: RouteStats,
}

impl RouteContext {
    pub fn new(label: String, spec: &WasmSpec) -> RouteContext {
        RouteContext {
            label,
            env: spec.env.clone(),
            limits: spec.limits,
            outbound: spec.outbound.clone(),
            stats: RouteStats::default(),
        }
    }
}

/// Per-shard, per-route counters (plain cells: one thread writes them).
/// Kept for the metrics endpoint; tests and the soak read them through the
/// shutdown summary.
#[derive(Debug, Default)]
pub struct RouteStats {
    pub requests: Cell<u64>,
    pub fuel_used: Cell<u64>,
    pub traps: Cell<u64>,
    pub out_of_fuel: Cell<u64>,
    pub timeouts: Cell<u64>,
    pub rejected: Cell<u64>,
    pub instances_created: Cell<u64>,
}

impl RouteStats {
    pub fn bump(cell: &Cell<u64>, by: u64) {
        cell.set(cell.get().wrapping_add(by));
    }
}
