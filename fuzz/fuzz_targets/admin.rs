//! The admin listener's request handling on arbitrary bytes: they are
//! decoded as the listener decodes them, a complete request is routed, a
//! refused one gets the decoder's status, and the answer is written as the
//! listener writes it. Nothing may panic, and every answer starts with a
//! status line a client can read.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use serverless_wasm::admin::{AdminState, REQUEST_LIMITS, ReloadLink, respond};
use serverless_wasm::config::{self, HandlerSpec};
use serverless_wasm::server::reload::Current;
use serverless_wasm::server::routes::{Generation, SharedAnswer, SharedRoute};
use serverless_wasm::http::encode::{ResponseMeta, write_response};
use serverless_wasm::http::{Decoded, Decoder, Method, Request, answers, canonical_reason};
use serverless_wasm::stats::{GuestFailure, Health, OutboundResult, ShardStats};

/// When the fuzzer "scrapes": shard 1's heartbeat is stale.
const NOW_MS: u64 = 1_700_000_000_000;

/// Two shards with a few routes and counters, one of them stuck.
fn state() -> AdminState {
    let shards: Vec<Arc<ShardStats>> = (0..2).map(|id| Arc::new(ShardStats::new(id))).collect();
    shards[0].heartbeat_ms.set(NOW_MS - 10);
    shards[1].heartbeat_ms.set(NOW_MS - 60_000);
    for (shard, name) in shards.iter().zip(["hello", "say \"hi\""]) {
        let route = shard.route(name);
        route.responses.count(200);
        route.responses.count(599);
        route.fuel_used.add(u64::MAX);
        route.guest_failed(GuestFailure::Trap);
        route.outbound(OutboundResult::Denied);
        route.duration.observe(std::time::Duration::from_millis(3));
        shard.route("shared").instances_created.add(u64::MAX);
        shard.unrouted.count(404);
    }
    let health = Arc::new(Health::default());
    health.set_started();
    AdminState {
        shards,
        health,
        log_lines_dropped: Arc::new(|| 1),
        access_lines_dropped: Arc::new(|| u64::MAX),
        reload: Some(reload_link()),
    }
}

/// `/config` and `/reload` of a generation of two native routes (no
/// reloader reads the queue: the listener, not `respond`, hands requests
/// to it).
fn reload_link() -> ReloadLink {
    let text = r#"
listen_address = "127.0.0.1:0"
[[applications]]
name = "say \"hi\""
method = "GET"
url_path = "/hi/*"
static_body = "hi"
[[applications]]
method = "POST"
url_path = "/x"
static_body = ""
status = 204
"#;
    let config = config::parse(std::path::Path::new("/fuzz/config.toml"), text).expect("the fuzz config is valid");
    let routes = (config.routes.iter())
        .map(|route| match &route.handler {
            HandlerSpec::Static(spec) => SharedRoute::new(route, SharedAnswer::native(spec)),
            HandlerSpec::Wasm(_) => unreachable!("native routes only"),
        })
        .collect();
    let generation = Generation {
        number: 7,
        routes,
        max_body: 1 << 20,
        config: Arc::new(config),
    };
    ReloadLink {
        current: Arc::new(Current::new(Arc::new(generation))),
        events: std::sync::mpsc::channel().0,
        pending: Arc::default(),
    }
}

fuzz_target!(|data: &[u8]| {
    static STATE: OnceLock<AdminState> = OnceLock::new();
    let state = STATE.get_or_init(state);
    let mut decoder = Decoder::new(REQUEST_LIMITS);
    let mut request = Request::default();
    let response = match decoder.decode(data, &mut request) {
        Ok((_, Decoded::Incomplete)) => return,
        // The listener answers a refused request with the decoder's status.
        Err(refused) => answers::canned(refused.status()),
        Ok((_, Decoded::Complete)) => {
            let response = respond(state, &request, NOW_MS);
            assert!(
                matches!(response.status, 200 | 404 | 405 | 503),
                "status {}",
                response.status
            );
            response
        }
    };
    let meta = ResponseMeta {
        date: b"Thu, 01 Jan 1970 00:00:00 GMT",
        head_only: request.method() == Method::Head,
        keep_alive: false,
        extra_headers: &[],
    };
    let mut out = Vec::new();
    write_response(&mut out, &response, &meta);
    // A status line the client can read: three digits and a reason.
    let status_line = format!("HTTP/1.1 {} {}\r\n", response.status, canonical_reason(response.status));
    assert!(out.starts_with(status_line.as_bytes()), "{status_line:?}");
});
