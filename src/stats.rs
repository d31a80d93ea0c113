//! Every counter the server keeps, in one place: per shard (connections,
//! requests, protocol errors) and per route on that shard (responses by
//! status, fuel, guest failures, instances, admission rejections).
//!
//! Each counter has exactly one writer, its shard's thread, and is updated
//! with a plain load and store (no read-modify-write shared between cores);
//! any thread may read it. Route counters are kept by route name, so a
//! route that keeps its name keeps its counters when its generation is
//! replaced; a route a reload removes loses them. A shard writes a [`ShardSnapshot`] as one JSON line on SIGUSR1
//! and when it stops; the tests and the soak read those lines.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

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
        self.each().filter(|(_, n)| *n > 0).collect()
    }

    /// Every code or class with its count, zeros included.
    pub fn each(&self) -> impl Iterator<Item = (String, u64)> + '_ {
        let codes = COUNTED_CODES.iter().map(|c| c.to_string()).zip(&self.codes);
        let classes = CLASSES.iter().map(|c| c.to_string()).zip(&self.classes);
        codes.chain(classes).map(|(code, counter)| (code, counter.get()))
    }

    pub fn total(&self) -> u64 {
        self.codes.iter().chain(&self.classes).map(Counter::get).sum()
    }
}

/// Upper bounds of the request duration histogram, in seconds: requests
/// here take microseconds, a slow guest seconds.
pub const DURATION_BUCKETS: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The same bounds in nanoseconds: what a request compares its duration
/// with (integers: no float conversion per request).
const DURATION_BUCKETS_NANOS: [u64; DURATION_BUCKETS.len()] = {
    let mut nanos = [0; DURATION_BUCKETS.len()];
    let mut i = 0;
    while i < nanos.len() {
        nanos[i] = (DURATION_BUCKETS[i] * 1e9 + 0.5) as u64;
        i += 1;
    }
    nanos
};

/// Request durations (Prometheus histogram semantics: `+Inf` is `count`).
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations at most each bound (not cumulative).
    buckets: [Counter; DURATION_BUCKETS.len()],
    count: Counter,
    sum_nanos: Counter,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        if let Some(i) = DURATION_BUCKETS_NANOS.iter().position(|bound| nanos <= *bound) {
            self.buckets[i].bump();
        }
        self.count.bump();
        self.sum_nanos.add(nanos);
    }

    /// Cumulative counts per bound, the total count and the sum in seconds.
    pub fn snapshot(&self) -> (Vec<u64>, u64, f64) {
        let mut total = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|b| {
                total += b.get();
                total
            })
            .collect();
        (cumulative, self.count.get(), self.sum_nanos.get() as f64 / 1e9)
    }
}

/// How a guest's outbound connection or request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutboundResult {
    Ok,
    /// Not on the route's `allowed_outbound` list.
    Denied,
    /// A connection or request limit of the route.
    Limit,
    /// Refused, unreachable, timed out, or a protocol error.
    Failed,
}

impl OutboundResult {
    pub const ALL: [OutboundResult; 4] = [
        OutboundResult::Ok,
        OutboundResult::Denied,
        OutboundResult::Limit,
        OutboundResult::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OutboundResult::Ok => "ok",
            OutboundResult::Denied => "denied",
            OutboundResult::Limit => "limit",
            OutboundResult::Failed => "failed",
        }
    }
}

/// How a guest's key-value store operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyValueResult {
    /// Done (a key that is absent included).
    Ok,
    /// A store the route does not list, or none of that name.
    Denied,
    /// Refused by the store's rules: a size limit, a bad key, not a
    /// number, an overflow.
    Refused,
    /// The store failed or did not answer in time.
    Failed,
}

impl KeyValueResult {
    pub const ALL: [KeyValueResult; 4] = [
        KeyValueResult::Ok,
        KeyValueResult::Denied,
        KeyValueResult::Refused,
        KeyValueResult::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyValueResult::Ok => "ok",
            KeyValueResult::Denied => "denied",
            KeyValueResult::Refused => "refused",
            KeyValueResult::Failed => "failed",
        }
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

impl GuestFailure {
    pub const ALL: [GuestFailure; 4] = [
        GuestFailure::Trap,
        GuestFailure::Fuel,
        GuestFailure::Timeout,
        GuestFailure::BadResponse,
    ];

    /// The `reason` label of the failures metric.
    pub fn as_str(self) -> &'static str {
        match self {
            GuestFailure::Trap => "trap",
            GuestFailure::Fuel => "fuel",
            GuestFailure::Timeout => "timeout",
            GuestFailure::BadResponse => "bad_response",
        }
    }
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
    /// `memory.grow` refused by the route's `memory_limit` (the guest sees
    /// -1; it does not trap by itself).
    pub memory_grow_denied: Counter,
    /// From the first byte of a routed request to its last response byte
    /// handed to the socket.
    pub duration: Histogram,
    /// Outbound connections (modules) and requests (components), by
    /// [`OutboundResult`].
    outbound: [Counter; OutboundResult::ALL.len()],
    /// Key-value store operations of its guests, by [`KeyValueResult`].
    key_value: [Counter; KeyValueResult::ALL.len()],
}

impl RouteStats {
    pub fn guest_failed(&self, failure: GuestFailure) {
        self.failure_counter(failure).bump();
    }

    pub fn failures(&self, failure: GuestFailure) -> u64 {
        self.failure_counter(failure).get()
    }

    fn failure_counter(&self, failure: GuestFailure) -> &Counter {
        match failure {
            GuestFailure::Trap => &self.traps,
            GuestFailure::Fuel => &self.out_of_fuel,
            GuestFailure::Timeout => &self.timeouts,
            GuestFailure::BadResponse => &self.bad_responses,
        }
    }

    pub fn outbound(&self, result: OutboundResult) {
        self.outbound[result as usize].bump();
    }

    pub fn outbound_count(&self, result: OutboundResult) -> u64 {
        self.outbound[result as usize].get()
    }

    pub fn key_value(&self, result: KeyValueResult) {
        self.key_value[result as usize].bump();
    }

    pub fn key_value_count(&self, result: KeyValueResult) -> u64 {
        self.key_value[result as usize].get()
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
            memory_grow_denied: self.memory_grow_denied.get(),
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
    /// When the shard's event loop last ran a round of its own (ms since
    /// the Unix epoch): `/healthz` finds a stuck shard by it.
    pub heartbeat_ms: Gauge,
    /// The configuration generation the shard serves new requests with.
    pub generation: Gauge,
    /// Generations whose routes and instances the shard still holds: 1,
    /// plus replaced ones until their last request ends.
    pub generations_alive: Gauge,
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

    /// Forgets the counters of every route not named (requests still
    /// running on a replaced generation keep theirs until they end).
    pub fn keep_routes<'a>(&self, names: impl Iterator<Item = &'a str>) {
        let keep: std::collections::HashSet<&str> = names.collect();
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        routes.retain(|name, _| keep.contains(name.as_str()));
    }

    /// Every route's counters on this shard, by name.
    pub fn routes(&self) -> Vec<(String, Arc<RouteStats>)> {
        let routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        routes
            .iter()
            .map(|(name, stats)| (name.clone(), stats.clone()))
            .collect()
    }

    /// Records that the shard's event loop is running.
    pub fn beat(&self) {
        self.heartbeat_ms.set(unix_millis());
    }

    pub fn snapshot(&self, state: ShardState) -> ShardSnapshot {
        let routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        ShardSnapshot {
            shard: self.shard,
            generation: self.generation.get(),
            generations_alive: self.generations_alive.get(),
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

/// The wall clock in milliseconds since the Unix epoch: the unit of
/// [`ShardStats::heartbeat_ms`], so that another thread can compare it
/// with its own clock.
pub fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Whether the server can take traffic: what `/readyz` answers. Written
/// by the main thread (started) and on a stop signal (draining).
#[derive(Debug, Default)]
pub struct Health {
    started: AtomicBool,
    draining: AtomicBool,
}

impl Health {
    /// Every guest is loaded and every shard listens.
    pub fn set_started(&self) {
        self.started.store(true, Ordering::Relaxed);
    }

    /// A stop signal arrived: balancers must stop sending requests.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.started.load(Ordering::Relaxed) && !self.draining.load(Ordering::Relaxed)
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
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
    pub generation: u64,
    pub generations_alive: u64,
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
    pub memory_grow_denied: u64,
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
    fn the_bucket_bounds_agree() {
        for (seconds, nanos) in DURATION_BUCKETS.iter().zip(DURATION_BUCKETS_NANOS) {
            assert_eq!((seconds * 1e9).round() as u64, nanos);
        }
        assert_eq!(DURATION_BUCKETS_NANOS[0], 50_000);
        assert_eq!(DURATION_BUCKETS_NANOS[DURATION_BUCKETS.len() - 1], 10_000_000_000);
    }

    #[test]
    fn durations_fall_in_cumulative_buckets() {
        let histogram = Histogram::default();
        histogram.observe(Duration::from_micros(40));
        histogram.observe(Duration::from_micros(300));
        histogram.observe(Duration::from_secs(60));
        let (buckets, count, sum) = histogram.snapshot();
        assert_eq!(&buckets[..4], &[1, 1, 1, 2]);
        assert_eq!(buckets[DURATION_BUCKETS.len() - 1], 2, "60 s is only in +Inf");
        assert_eq!(count, 3);
        assert!((sum - 60.00034).abs() < 1e-9, "{sum}");
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
