//! `GET /metrics`: every shard's counters, read and summed per route when
//! scraped, in the OpenMetrics text format (prometheus-client's encoder).
//!
//! Nothing is registered ahead of time and the request path never touches
//! a Prometheus type: each counter has one writer, its shard (`stats.rs`),
//! and the collector below reads them all at scrape time. A route is
//! labelled by its name, never by a request path, so the number of series
//! is bounded by the config, not by clients.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::{AdminState, heartbeat_age};
use crate::server::reload::ReloadResult;
use crate::stats::{
    DURATION_BUCKETS, GuestFailure, Histogram, KeyValueResult, OutboundResult, RouteStats, ShardStats, StatusCounts,
};

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The engine the guests run on, as pinned in Cargo.toml (`=48.0.8`).
const WASMTIME_VERSION: &str = "48.0.8";

/// The exposition of every metric, ending with `# EOF`.
pub fn render(state: &AdminState, now_ms: u64) -> Result<String, fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape {
        shards: state.shards.clone(),
        now_ms,
        log_lines_dropped: (state.log_lines_dropped)(),
        access_lines_dropped: (state.access_lines_dropped)(),
        reloads: state.reload.as_ref().map(|link| Reloads {
            generation: link.current.generation().number,
            counts: ReloadResult::ALL.map(|r| (r.as_str(), link.current.reloads(r))),
        }),
    }));
    let mut text = String::new();
    encode(&mut text, &registry)?;
    Ok(text)
}

/// One scrape: what it reads, and when.
#[derive(Debug)]
struct Scrape {
    shards: Vec<Arc<ShardStats>>,
    /// The clock heartbeats are compared with (ms since the Unix epoch).
    now_ms: u64,
    log_lines_dropped: u64,
    access_lines_dropped: u64,
    reloads: Option<Reloads>,
}

/// The configuration generation and how reloads ended.
#[derive(Debug)]
struct Reloads {
    generation: u64,
    counts: [(&'static str, u64); ReloadResult::ALL.len()],
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let routes = RouteTotals::sum(&self.shards);
        self.encode_responses(&mut encoder, &routes)?;
        encode_durations(&mut encoder, &routes)?;
        encode_route_counters(&mut encoder, &routes)?;
        self.encode_shards(&mut encoder)?;
        self.encode_reloads(&mut encoder)?;
        self.encode_process(&mut encoder)
    }
}

/// Every route's totals, by name.
type Routes = BTreeMap<String, RouteTotals>;

impl Scrape {
    fn encode_responses(&self, encoder: &mut DescriptorEncoder, routes: &Routes) -> fmt::Result {
        let mut unrouted = BTreeMap::new();
        for shard in &self.shards {
            add_statuses(&mut unrouted, &shard.unrouted);
        }
        // Unrouted responses (404, 405 of no route) are the route "".
        let unrouted = (unrouted.iter()).map(|(code, &n)| ([("route", ""), ("code", code.as_str())], n));
        let routed = by_route_and(routes, "code", |t| {
            t.responses.iter().map(|(code, &n)| (code.as_str(), n))
        });
        counters(
            encoder,
            "serverless_wasm_http_requests",
            "Responses sent, by route name and status (a code, or a class such as 5xx).",
            unrouted.chain(routed).filter(|&(_, n)| n > 0),
        )
    }

    fn encode_shards(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let shard_ids: Vec<String> = self.shards.iter().map(|s| s.shard.to_string()).collect();
        let by_shard = || (shard_ids.iter().zip(&self.shards)).map(|(id, s)| ([("shard", id.as_str())], s));
        gauges(
            encoder,
            "serverless_wasm_open_connections",
            "Client connections open on the shard.",
            None,
            by_shard().map(|(labels, shard)| (labels, shard.open_connections.get())),
        )?;
        let ages = by_shard()
            .filter_map(|(labels, shard)| heartbeat_age(shard, self.now_ms).map(|age| (labels, age.as_secs_f64())));
        gauges(
            encoder,
            "serverless_wasm_shard_heartbeat_age",
            "Time since the shard's event loop last ran (no sample before it first ran).",
            Some(&Unit::Seconds),
            ages,
        )?;
        gauges(
            encoder,
            "serverless_wasm_shard_generation",
            "The configuration generation the shard serves new requests with.",
            None,
            by_shard().map(|(labels, shard)| (labels, shard.generation.get())),
        )?;
        gauges(
            encoder,
            "serverless_wasm_shard_generations_alive",
            "Generations whose pools the shard still holds: 1, plus replaced ones until their last request ends.",
            None,
            by_shard().map(|(labels, shard)| (labels, shard.generations_alive.get())),
        )
    }

    fn encode_reloads(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let Some(reloads) = &self.reloads else {
            return Ok(());
        };
        gauges(
            encoder,
            "serverless_wasm_config_generation",
            "The configuration generation every shard serves (1 at start, one more per reload applied).",
            None,
            [(NO_LABELS, reloads.generation)],
        )?;
        counters(
            encoder,
            "serverless_wasm_config_reloads",
            "Configuration reloads, by result (applied, rejected, incomplete).",
            reloads.counts.iter().map(|&(result, n)| ([("result", result)], n)),
        )
    }

    fn encode_process(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let versions = [("version", env!("CARGO_PKG_VERSION")), ("wasmtime", WASMTIME_VERSION)];
        gauges(
            encoder,
            "serverless_wasm_build_info",
            "Always 1: the server's version and the wasmtime it runs guests on.",
            None,
            [(versions, 1)],
        )?;
        counters(
            encoder,
            "serverless_wasm_log_lines_dropped",
            "Log lines lost because the log writer fell behind.",
            [(NO_LABELS, self.log_lines_dropped)],
        )?;
        counters(
            encoder,
            "serverless_wasm_access_log_lines_dropped",
            "Access log lines lost because the log writer fell behind.",
            [(NO_LABELS, self.access_lines_dropped)],
        )
    }
}

fn encode_durations(encoder: &mut DescriptorEncoder, routes: &Routes) -> fmt::Result {
    let mut durations = encoder.encode_descriptor(
        "serverless_wasm_http_request_duration",
        "From a routed request's first byte to its response's last byte handed to the socket.",
        Some(&Unit::Seconds),
        MetricType::Histogram,
    )?;
    for (name, totals) in routes {
        let d = &totals.duration;
        // Read while shards write: a count behind its buckets is raised to
        // them, so that `+Inf` and `_count` agree.
        let count = d.count.max(d.cumulative.last().copied().unwrap_or(0));
        durations
            .encode_family(&[("route", name.as_str())])?
            .encode_histogram::<NoLabelSet>(d.sum_seconds, count, &d.buckets(count), None)?;
    }
    Ok(())
}

/// A counter with one series per route: its name, its help and its value
/// in a route's totals.
type RouteCounter = (&'static str, &'static str, fn(&RouteTotals) -> u64);

/// A counter with one series per route and value of a second label: its
/// name, its help, the label's key and a route's (value, count) pairs.
type LabelledRouteCounter = (
    &'static str,
    &'static str,
    &'static str,
    fn(&RouteTotals) -> Vec<(&'static str, u64)>,
);

fn encode_route_counters(encoder: &mut DescriptorEncoder, routes: &Routes) -> fmt::Result {
    #[rustfmt::skip]
    let per_route: [RouteCounter; 4] = [
        ("serverless_wasm_guest_fuel_consumed",      "Fuel the route's guests consumed (about one unit per wasm instruction).", |t| t.fuel),
        ("serverless_wasm_guest_memory_grow_denied", "memory.grow refused by the route's memory_limit.",                          |t| t.memory_grow_denied),
        ("serverless_wasm_instances_created",        "Guest instances created for the route.",                                    |t| t.instances_created),
        ("serverless_wasm_admission_rejections",     "Requests refused a turn by max_concurrency and max_queue (503).",           |t| t.rejected),
    ];
    for (metric, help, value) in per_route {
        let series = routes.iter().map(|(name, t)| ([("route", name.as_str())], value(t)));
        counters(encoder, metric, help, series)?;
    }
    #[rustfmt::skip]
    let per_route_and_label: [LabelledRouteCounter; 3] = [
        ("serverless_wasm_guest_failures",    "Requests whose guest gave no response of its own, by reason.",                  "reason", |t| {
            GuestFailure::ALL.iter().map(|f| f.as_str()).zip(t.failures).collect()
        }),
        ("serverless_wasm_outbound_requests", "Guests' outbound connections (modules) and requests (components), by result.", "result", |t| {
            OutboundResult::ALL.iter().map(|r| r.as_str()).zip(t.outbound).collect()
        }),
        ("serverless_wasm_key_value_operations", "Guests' key-value store operations, by result.", "result", |t| {
            KeyValueResult::ALL.iter().map(|r| r.as_str()).zip(t.key_value).collect()
        }),
    ];
    for (metric, help, key, values) in per_route_and_label {
        counters(
            encoder,
            metric,
            help,
            by_route_and(routes, key, move |t| values(t).into_iter()),
        )?;
    }
    Ok(())
}

/// One series per route and value of a second label `key`: `values` gives
/// a route's (label value, count) pairs.
fn by_route_and<'a, I: Iterator<Item = (&'a str, u64)> + 'a>(
    routes: &'a Routes,
    key: &'static str,
    values: impl Fn(&'a RouteTotals) -> I + 'a,
) -> impl Iterator<Item = ([(&'static str, &'a str); 2], u64)> + 'a {
    routes.iter().flat_map(move |(name, totals)| {
        values(totals).map(move |(value, n)| ([("route", name.as_str()), (key, value)], n))
    })
}

/// The label set of a metric with a single series.
const NO_LABELS: [(&str, &str); 0] = [];

/// A counter and its series.
fn counters<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (L, u64)>,
) -> fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in series {
        metric
            .encode_family(&labels)?
            .encode_counter::<NoLabelSet, u64, u64>(&value, None)?;
    }
    Ok(())
}

/// A gauge and its series.
fn gauges<L: EncodeLabelSet, V: EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    series: impl IntoIterator<Item = (L, V)>,
) -> fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for (labels, value) in series {
        metric.encode_family(&labels)?.encode_gauge(&value)?;
    }
    Ok(())
}

/// One route's counters summed over the shards.
#[derive(Debug, Default)]
struct RouteTotals {
    /// By code or class, as `StatusCounts` gives them.
    responses: BTreeMap<String, u64>,
    duration: DurationTotals,
    fuel: u64,
    /// In the order of `GuestFailure::ALL`.
    failures: [u64; GuestFailure::ALL.len()],
    memory_grow_denied: u64,
    instances_created: u64,
    rejected: u64,
    /// In the order of `OutboundResult::ALL`.
    outbound: [u64; OutboundResult::ALL.len()],
    /// In the order of `KeyValueResult::ALL`.
    key_value: [u64; KeyValueResult::ALL.len()],
}

impl RouteTotals {
    /// Every route of every shard, by name.
    fn sum(shards: &[Arc<ShardStats>]) -> Routes {
        let mut routes: BTreeMap<String, RouteTotals> = BTreeMap::new();
        for (name, stats) in shards.iter().flat_map(|shard| shard.routes()) {
            routes.entry(name).or_default().add(&stats);
        }
        routes
    }

    fn add(&mut self, stats: &RouteStats) {
        add_statuses(&mut self.responses, &stats.responses);
        self.duration.add(&stats.duration);
        self.fuel = self.fuel.wrapping_add(stats.fuel_used.get());
        for (total, failure) in self.failures.iter_mut().zip(GuestFailure::ALL) {
            *total = total.wrapping_add(stats.failures(failure));
        }
        self.memory_grow_denied = self.memory_grow_denied.wrapping_add(stats.memory_grow_denied.get());
        self.instances_created = self.instances_created.wrapping_add(stats.instances_created.get());
        self.rejected = self.rejected.wrapping_add(stats.rejected.get());
        for (total, result) in self.outbound.iter_mut().zip(OutboundResult::ALL) {
            *total = total.wrapping_add(stats.outbound_count(result));
        }
        for (total, result) in self.key_value.iter_mut().zip(KeyValueResult::ALL) {
            *total = total.wrapping_add(stats.key_value_count(result));
        }
    }
}

fn add_statuses(totals: &mut BTreeMap<String, u64>, counts: &StatusCounts) {
    for (code, n) in counts.each() {
        let total = totals.entry(code).or_default();
        *total = total.wrapping_add(n);
    }
}

/// A route's request durations summed over the shards.
#[derive(Debug, Default)]
struct DurationTotals {
    /// Observations at most each bound of `DURATION_BUCKETS`, cumulative.
    cumulative: [u64; DURATION_BUCKETS.len()],
    count: u64,
    sum_seconds: f64,
}

impl DurationTotals {
    fn add(&mut self, histogram: &Histogram) {
        let (cumulative, count, sum_seconds) = histogram.snapshot();
        for (total, n) in self.cumulative.iter_mut().zip(cumulative) {
            *total = total.wrapping_add(n);
        }
        self.count = self.count.wrapping_add(count);
        self.sum_seconds += sum_seconds;
    }

    /// Each bound with the observations in it alone (the encoder makes them
    /// cumulative again), ending with `+Inf`, which holds the rest of `count`.
    fn buckets(&self, count: u64) -> Vec<(f64, u64)> {
        let mut below = 0;
        let mut buckets = Vec::with_capacity(DURATION_BUCKETS.len() + 1);
        for (&bound, &cumulative) in DURATION_BUCKETS.iter().zip(&self.cumulative) {
            buckets.push((bound, cumulative.saturating_sub(below)));
            below = below.max(cumulative);
        }
        buckets.push((f64::INFINITY, count.saturating_sub(below)));
        buckets
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use super::super::two_shards;
    use super::*;

    const NOW_MS: u64 = 1_700_000_000_000;

    /// The state of the example in the tests: two shards, route "hello" on
    /// both, "upload" on the second only.
    fn example() -> AdminState {
        let state = two_shards(Arc::default());
        let (a, b) = (&state.shards[0], &state.shards[1]);
        a.heartbeat_ms.set(NOW_MS - 250);
        b.heartbeat_ms.set(NOW_MS - 1_500);
        a.open_connections.set(2);
        b.open_connections.set(1);
        a.unrouted.count(404);
        b.unrouted.count(404);
        let (hello_a, hello_b) = (a.route("hello"), b.route("hello"));
        for status in [200, 200, 503] {
            hello_a.responses.count(status);
        }
        hello_b.responses.count(200);
        hello_b.responses.count(599);
        hello_a.duration.observe(Duration::from_micros(40));
        hello_b.duration.observe(Duration::from_millis(3));
        hello_b.duration.observe(Duration::from_secs(12));
        hello_a.fuel_used.add(1_000);
        hello_b.fuel_used.add(500);
        hello_a.guest_failed(GuestFailure::Fuel);
        hello_b.guest_failed(GuestFailure::Fuel);
        hello_b.guest_failed(GuestFailure::Trap);
        hello_a.instances_created.add(3);
        hello_b.instances_created.add(4);
        hello_b.rejected.bump();
        hello_b.memory_grow_denied.bump();
        hello_a.outbound(OutboundResult::Ok);
        hello_b.outbound(OutboundResult::Denied);
        b.route("upload").responses.count(201);
        state
    }

    /// Checks the exposition's grammar the way a scraper reads it: every
    /// sample belongs to a family declared before it, with a value that is
    /// a number; returns the samples as "name{labels}" → value.
    fn parse(text: &str) -> BTreeMap<String, f64> {
        assert!(text.ends_with("# EOF\n"), "{text}");
        let mut families = BTreeSet::new();
        let mut samples = BTreeMap::new();
        for line in text.lines() {
            if let Some(declared) = line.strip_prefix("# TYPE ") {
                let (family, kind) = declared.split_once(' ').unwrap();
                assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
                assert!(families.insert(family.to_string()), "declared twice: {line}");
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap();
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("value of {line}"));
            let name = series.split('{').next().unwrap();
            let family = ["_total", "_bucket", "_count", "_sum", ""]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix).filter(|f| families.contains(*f)));
            assert!(family.is_some(), "sample of an undeclared family: {line}");
            assert!(samples.insert(series.to_string(), value).is_none(), "twice: {line}");
        }
        samples
    }

    #[test]
    fn two_shards_are_summed_per_route() {
        let samples = parse(&render(&example(), NOW_MS).unwrap());
        #[rustfmt::skip]
        let expected = [
            (r#"serverless_wasm_http_requests_total{route="",code="404"}"#, 2.0),
            (r#"serverless_wasm_http_requests_total{route="hello",code="200"}"#, 3.0),
            (r#"serverless_wasm_http_requests_total{route="hello",code="503"}"#, 1.0),
            (r#"serverless_wasm_http_requests_total{route="hello",code="5xx"}"#, 1.0),
            (r#"serverless_wasm_http_requests_total{route="upload",code="201"}"#, 1.0),
            (r#"serverless_wasm_guest_fuel_consumed_total{route="hello"}"#, 1_500.0),
            (r#"serverless_wasm_guest_fuel_consumed_total{route="upload"}"#, 0.0),
            (r#"serverless_wasm_guest_failures_total{route="hello",reason="fuel"}"#, 2.0),
            (r#"serverless_wasm_guest_failures_total{route="hello",reason="trap"}"#, 1.0),
            (r#"serverless_wasm_guest_failures_total{route="hello",reason="bad_response"}"#, 0.0),
            (r#"serverless_wasm_instances_created_total{route="hello"}"#, 7.0),
            (r#"serverless_wasm_admission_rejections_total{route="hello"}"#, 1.0),
            (r#"serverless_wasm_guest_memory_grow_denied_total{route="hello"}"#, 1.0),
            (r#"serverless_wasm_outbound_requests_total{route="hello",result="ok"}"#, 1.0),
            (r#"serverless_wasm_outbound_requests_total{route="hello",result="denied"}"#, 1.0),
            (r#"serverless_wasm_http_request_duration_seconds_count{route="hello"}"#, 3.0),
            (r#"serverless_wasm_http_request_duration_seconds_bucket{le="0.00005",route="hello"}"#, 1.0),
            (r#"serverless_wasm_http_request_duration_seconds_bucket{le="0.005",route="hello"}"#, 2.0),
            (r#"serverless_wasm_http_request_duration_seconds_bucket{le="10.0",route="hello"}"#, 2.0),
            (r#"serverless_wasm_http_request_duration_seconds_bucket{le="+Inf",route="hello"}"#, 3.0),
            (r#"serverless_wasm_http_request_duration_seconds_sum{route="hello"}"#, 12.003_04),
            (r#"serverless_wasm_open_connections{shard="0"}"#, 2.0),
            (r#"serverless_wasm_open_connections{shard="1"}"#, 1.0),
            (r#"serverless_wasm_shard_heartbeat_age_seconds{shard="1"}"#, 1.5),
            ("serverless_wasm_log_lines_dropped_total", 3.0),
            ("serverless_wasm_access_log_lines_dropped_total", 0.0),
        ];
        for (series, value) in expected {
            assert_eq!(samples.get(series), Some(&value), "{series}");
        }
        // Only non-zero series of responses.
        let requests = samples
            .keys()
            .filter(|s| s.starts_with("serverless_wasm_http_requests_total"));
        assert_eq!(requests.count(), 5);
        let version = env!("CARGO_PKG_VERSION");
        let build = format!(r#"serverless_wasm_build_info{{version="{version}",wasmtime="48.0.8"}}"#);
        assert_eq!(samples.get(&build), Some(&1.0));
    }

    #[test]
    fn the_exposition_of_the_example() {
        let text = render(&example(), NOW_MS).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for expected in [
            "# HELP serverless_wasm_http_requests Responses sent, by route name and status (a code, or a class such as 5xx).",
            "# TYPE serverless_wasm_http_requests counter",
            "serverless_wasm_http_requests_total{route=\"\",code=\"404\"} 2",
            "# TYPE serverless_wasm_http_request_duration_seconds histogram",
            "# UNIT serverless_wasm_http_request_duration_seconds seconds",
            "# TYPE serverless_wasm_open_connections gauge",
            "serverless_wasm_shard_heartbeat_age_seconds{shard=\"0\"} 0.25",
        ] {
            assert!(lines.contains(&expected), "{expected:?} missing from\n{text}");
        }
    }

    #[test]
    fn a_shard_that_never_ran_has_no_heartbeat_age() {
        let state = example();
        state.shards[0].heartbeat_ms.set(0);
        let samples = parse(&render(&state, NOW_MS).unwrap());
        let ages: Vec<&String> = (samples.keys())
            .filter(|s| s.starts_with("serverless_wasm_shard_heartbeat_age"))
            .collect();
        assert_eq!(ages, ["serverless_wasm_shard_heartbeat_age_seconds{shard=\"1\"}"]);
    }

    #[test]
    fn route_names_are_escaped_label_values() {
        let state = two_shards(Arc::default());
        state.shards[0].route("say \"hi\" \\ bye").responses.count(200);
        let text = render(&state, NOW_MS).unwrap();
        let expected = r#"serverless_wasm_http_requests_total{route="say \"hi\" \\ bye",code="200"} 1"#;
        assert!(text.lines().any(|l| l == expected), "{text}");
    }
}
