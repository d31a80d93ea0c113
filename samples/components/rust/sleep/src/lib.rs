//! sleep: waits `?ms=N` milliseconds (default 100, capped at 10000) on a
//! `wasi:clocks/monotonic-clock` pollable, i.e. without burning CPU, then
//! answers `slept N ms`. Useful to test concurrency and timeouts.

use wasip2::clocks::monotonic_clock;
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

wasip2::http::proxy::export!(Sleep);

struct Sleep;

const DEFAULT_MS: u64 = 100;
const MAX_MS: u64 = 10_000;

impl Guest for Sleep {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let ms = query_param(&path, "ms")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(DEFAULT_MS)
            .min(MAX_MS);

        // Block on a timer pollable (duration is in nanoseconds).
        monotonic_clock::subscribe_duration(ms * 1_000_000).block();

        let headers = Fields::from_list(&[("content-type".to_string(), b"text/plain".to_vec())]).expect("valid header");
        let response = OutgoingResponse::new(headers);
        let body = response.body().expect("response body");
        ResponseOutparam::set(response_out, Ok(response));
        let out = body.write().expect("body stream");
        out.blocking_write_and_flush(format!("slept {ms} ms\n").as_bytes())
            .expect("write body");
        drop(out);
        OutgoingBody::finish(body, None).expect("finish body");
    }
}

/// The value of `key` in the query string of `path_with_query`, if any.
fn query_param<'a>(path_with_query: &'a str, key: &str) -> Option<&'a str> {
    let (_, query) = path_with_query.split_once('?')?;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then_some(v)
    })
}
