//! Every counter the server keeps, in one place: per shard (connections,
//! requests, protocol errors) and per route on that shard (responses by
//! status, fuel, guest failures, instances, admission rejections).
//!
//! Each counter has exactly one writer, its shard's thread, and is updated
//! with a plain load and store (no read-modify-write shared between cores);
//! any thread may read it. Route counters are kept by route name, so a
//! route that keeps its name keeps its counters when its generation is
//! replaced. A shard writes a [`ShardSnapshot`] as one JSON line on SIGUSR1
//! and when it stops; the tests and the soak read those lines.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;

/// A counter written by one thread only.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Only the owning shard calls this, so a load and a store
    /// suffice (no lock prefix on the request path).
    pub fn add(&self, n: u64) {
        let value = self.0.load(Ordering::Relaxed);
        self.0.store(value.wrapping_add(n), Ordering::Relaxed);
    }

    pub fn bump(&self) {
        self.add(1);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down, written by one thread only.
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    pub fn set(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Status codes counted one by one; any other code is counted in its
/// class ("2xx", ...). A fixed set keeps the memory and the number of
/// label values bounded whatever a guest answers.
const COUNTED_CODES: [u16; 22] = [
    200, 201, 202, 204, 206, 301, 302, 304, 307, 308, 400, 401, 403, 404, 405, 408, 413, 429, 500, 502, 503, 504,
];
const CLASSES: [&str; 9] = ["1xx", "2xx", "3xx", "4xx", "5xx", "6xx", "7xx", "8xx", "9xx"];

/// Responses by status.
#[derive(Debug, Default)]
pub struct StatusCounts {
    codes: [Counter; COUNTED_CODES.len()],
    classes: [Counter; CLASSES.len()],
}

impl StatusCounts {
    pub fn count(&self, status: u16) {
        match COUNTED_CODES.binary_search(&status) {
            Ok(i) => self.codes[i].bump(),
            Err(_) => {
                let class = usize::from(status / 100).clamp(1, 9) - 1;
                self.classes[class].bump();
            }
        }
    }

    /// Non-zero counts, keyed by code or class.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        let codes = COUNTED_CODES.iter().map(|c| c.to_string()).zip(&self.codes);
        let classes = CLASSES.iter().map(|c| c.to_string()).zip(&self.classes);
        codes
            .chain(classes)
            .map(|(code, counter)| (code, counter.get()))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    pub fn total(&self) -> u64 {
        self.codes.iter().chain(&self.classes).map(Counter::get).sum()
    }
}

/// Why a guest gave no response of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestFailure {
    Trap,
    Fuel,
    Timeout,
    BadResponse,
}

/// One route's counters on one shard.
#[derive(Debug, Default)]
pub struct RouteStats {
    /// Responses sent for the route, by status.
    pub responses: StatusCounts,
    /// Requests handed to the route's guest (including those refused a turn).
    pub guest_requests: Counter,
    pub fuel_used: Counter,
    pub traps: Counter,
    pub out_of_fuel: Counter,
    pub timeouts: Counter,
    pub bad_responses: Counter,
    /// Refused by `max_concurrency` + `max_queue` (503).
    pub rejected: Counter,
    pub instances_created: Counter,
    /// Instances alive (ready or running), refreshed when the shard reports.
    pub live_instances: Gauge,
}

impl RouteStats {
    pub fn guest_failed(&self, failure: GuestFailure) {
        match failure {
            GuestFailure::Trap => self.traps.bump(),
            GuestFailure::Fuel => self.out_of_fuel.bump(),
            GuestFailure::Timeout => self.timeouts.bump(),
            GuestFailure::BadResponse => self.bad_responses.bump(),
        }
    }

    fn snapshot(&self) -> RouteSnapshot {
        RouteSnapshot {
            responses: self.responses.snapshot(),
            requests: self.guest_requests.get(),
            fuel_used: self.fuel_used.get(),
            traps: self.traps.get(),
            out_of_fuel: self.out_of_fuel.get(),
            timeouts: self.timeouts.get(),
            bad_responses: self.bad_responses.get(),
            rejected: self.rejected.get(),
            instances_created: self.instances_created.get(),
            live_instances: self.live_instances.get(),
        }
    }
}

/// One shard's counters.
#[derive(Debug, Default)]
pub struct ShardStats {
    pub shard: usize,
    /// Requests decoded (routed or not).
    pub requests: Counter,
    /// Connections accepted and served.
    pub connections: Counter,
    pub open_connections: Gauge,
    /// Connections refused at `max_connections_per_shard`.
    pub rejected_connections: Counter,
    /// Requests that could not be decoded (4xx and close).
    pub protocol_errors: Counter,
    /// Responses to requests that matched no route (404, 405).
    pub unrouted: StatusCounts,
    /// By route name. Locked only when a generation's routes are set up
    /// and when a snapshot is taken, never on the request path.
    routes: Mutex<BTreeMap<String, Arc<RouteStats>>>,
}

impl ShardStats {
    pub fn new(shard: usize) -> ShardStats {
        ShardStats {
            shard,
            ..ShardStats::default()
        }
    }

    /// The counters of the route called `name`: the same ones for as long
    /// as the shard runs, whatever generation the route belongs to.
    pub fn route(&self, name: &str) -> Arc<RouteStats> {
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        routes.entry(name.to_string()).or_default().clone()
    }

    pub fn snapshot(&self, state: ShardState) -> ShardSnapshot {
        let routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        ShardSnapshot {
            shard: self.shard,
            connections_open: self.open_connections.get(),
            in_flight: state.in_flight,
            live_instances: routes.values().map(|r| r.live_instances.get()).sum(),
            engine_instances: state.engine_instances,
            requests: self.requests.get(),
            connections: self.connections.get(),
            rejected_connections: self.rejected_connections.get(),
            protocol_errors: self.protocol_errors.get(),
            unrouted: self.unrouted.snapshot(),
            routes: routes.iter().map(|(name, r)| (name.clone(), r.snapshot())).collect(),
        }
    }
}

/// What only the shard itself knows when it reports.
pub struct ShardState {
    pub in_flight: u64,
    pub engine_instances: u64,
}

/// A shard's counters at one moment: the JSON of its `shard stats` line.
#[derive(Debug, Serialize)]
pub struct ShardSnapshot {
    pub shard: usize,
    pub connections_open: u64,
    pub in_flight: u64,
    pub live_instances: u64,
    /// Core instances alive in the whole process (the pooling allocator's
    /// count, shared by all shards).
    pub engine_instances: u64,
    pub requests: u64,
    pub connections: u64,
    pub rejected_connections: u64,
    pub protocol_errors: u64,
    pub unrouted: BTreeMap<String, u64>,
    pub routes: BTreeMap<String, RouteSnapshot>,
}

#[derive(Debug, Serialize)]
pub struct RouteSnapshot {
    pub responses: BTreeMap<String, u64>,
    pub requests: u64,
    pub fuel_used: u64,
    pub traps: u64,
    pub out_of_fuel: u64,
    pub timeouts: u64,
    pub bad_responses: u64,
    pub rejected: u64,
    pub instances_created: u64,
    pub live_instances: u64,
}

impl ShardSnapshot {
    /// One line of JSON (a snapshot is plain numbers and names: it always
    /// serializes).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_counted_by_code_or_class() {
        let counts = StatusCounts::default();
        for status in [200, 200, 404, 299, 599, 999] {
            counts.count(status);
        }
        let snapshot = counts.snapshot();
        assert_eq!(snapshot["200"], 2);
        assert_eq!(snapshot["404"], 1);
        assert_eq!(snapshot["2xx"], 1);
        assert_eq!(snapshot["5xx"], 1);
        assert_eq!(snapshot["9xx"], 1);
        assert_eq!(counts.total(), 6);
    }

    #[test]
    fn a_route_keeps_its_counters_by_name() {
        let shard = ShardStats::new(3);
        shard.route("hello").fuel_used.add(7);
        assert_eq!(shard.route("hello").fuel_used.get(), 7);
        assert_eq!(shard.route("other").fuel_used.get(), 0);
        let json = shard
            .snapshot(ShardState {
                in_flight: 0,
                engine_instances: 0,
            })
            .to_json();
        assert!(json.starts_with(r#"{"shard":3,"#), "{json}");
        assert!(
            json.contains(r#""hello":{"responses":{},"requests":0,"fuel_used":7"#),
            "{json}"
        );
    }
}
