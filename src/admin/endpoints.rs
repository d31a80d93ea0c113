//! What each admin path answers: a decoded request in, a response out, no
//! sockets (the fuzz target drives it directly). The query string is not
//! part of the match. `POST /reload` is the exception: the listener hands
//! it to the reloader ([`asks_reload`]), which answers when done.

use std::time::Duration;

use super::{AdminState, config_view, heartbeat_age, metrics};
use crate::http::{Method, Request, Response, answers};
use crate::stats::{Health, ShardStats};

/// How long a shard's event loop may go without running before `/healthz`
/// calls the shard stuck. A busy shard still runs it between a guest's
/// slices (`preempt_timer_us`, `fuel_yield_interval`): only a shard that
/// stopped yielding altogether goes this long.
pub const STUCK_AFTER: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    Metrics,
    Healthz,
    Readyz,
    Config,
    Reload,
}

impl Endpoint {
    fn at(path: &[u8], state: &AdminState) -> Option<Endpoint> {
        match path {
            b"/metrics" => Some(Endpoint::Metrics),
            b"/healthz" => Some(Endpoint::Healthz),
            b"/readyz" => Some(Endpoint::Readyz),
            b"/config" if state.reload.is_some() => Some(Endpoint::Config),
            b"/reload" if state.reload.is_some() => Some(Endpoint::Reload),
            _ => None,
        }
    }

    /// The `Allow` header of a 405 on this endpoint.
    fn allow(self) -> &'static str {
        match self {
            Endpoint::Metrics | Endpoint::Healthz | Endpoint::Readyz | Endpoint::Config => "GET, HEAD",
            Endpoint::Reload => "POST",
        }
    }
}

/// Whether `request` asks for a reload (`POST /reload`): the listener hands
/// it to the reloader instead of calling [`respond`].
pub fn asks_reload(request: &Request) -> bool {
    request.path() == b"/reload" && request.method() == Method::Post
}

/// The response to `request`; `now_ms` (ms since the Unix epoch) is the
/// clock the shards' heartbeats are compared with.
pub fn respond(state: &AdminState, request: &Request, now_ms: u64) -> Response {
    let Some(endpoint) = Endpoint::at(request.path(), state) else {
        return answers::canned(404);
    };
    match (endpoint, request.method(), &state.reload) {
        (Endpoint::Metrics, Method::Get | Method::Head, _) => metrics(state, now_ms),
        (Endpoint::Healthz, Method::Get | Method::Head, _) => healthz(&state.shards, now_ms),
        (Endpoint::Readyz, Method::Get | Method::Head, _) => readyz(&state.health),
        (Endpoint::Config, Method::Get | Method::Head, Some(link)) => {
            json(200, config_view::render(&link.current.generation()))
        }
        // The listener hands `POST /reload` to the reloader before this.
        (Endpoint::Reload, Method::Post, _) => plain_text(503, "reloads are not served here\n".into()),
        (endpoint, _, _) => answers::method_not_allowed(endpoint.allow()),
    }
}

fn metrics(state: &AdminState, now_ms: u64) -> Response {
    match metrics::render(state, now_ms) {
        Ok(text) => text_response(200, metrics::CONTENT_TYPE, text),
        Err(e) => {
            tracing::debug!("cannot render /metrics: {e}");
            answers::canned(500)
        }
    }
}

/// 200 while every shard's event loop ran within [`STUCK_AFTER`]; else 503
/// with a line per stuck shard.
fn healthz(shards: &[std::sync::Arc<ShardStats>], now_ms: u64) -> Response {
    let stuck: String = shards
        .iter()
        .filter_map(|shard| match heartbeat_age(shard, now_ms) {
            None => Some(format!("shard {}: event loop has not run yet\n", shard.shard)),
            Some(age) if age > STUCK_AFTER => Some(format!(
                "shard {}: event loop last ran {} ms ago\n",
                shard.shard,
                age.as_millis()
            )),
            Some(_) => None,
        })
        .collect();
    if stuck.is_empty() {
        plain_text(200, "ok\n".into())
    } else {
        plain_text(503, stuck)
    }
}

/// 200 once every guest is loaded and the listeners are open, until a stop
/// signal: then 503, so that balancers stop sending requests.
fn readyz(health: &Health) -> Response {
    match (health.is_ready(), health.is_draining()) {
        (true, _) => plain_text(200, "ready\n".into()),
        (false, true) => plain_text(503, "draining\n".into()),
        (false, false) => plain_text(503, "starting\n".into()),
    }
}

/// A JSON answer (`/config`, `/reload`).
pub fn json(status: u16, body: String) -> Response {
    text_response(status, "application/json", body)
}

fn plain_text(status: u16, body: String) -> Response {
    text_response(status, "text/plain; charset=utf-8", body)
}

fn text_response(status: u16, content_type: &str, body: String) -> Response {
    Response {
        status,
        reason: Vec::new(),
        headers: vec![(b"Content-Type".to_vec(), content_type.as_bytes().to_vec())],
        body: body.into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::two_shards;
    use super::*;
    use crate::http::{Decoded, Decoder, FramingLimits};

    const NOW_MS: u64 = 1_700_000_000_000;

    fn request(bytes: &[u8]) -> Request {
        let limits = FramingLimits {
            max_request_line: 1024,
            max_head: 1024,
            max_body: 1024,
        };
        let mut request = Request::default();
        let (_, decoded) = Decoder::new(limits).decode(bytes, &mut request).unwrap();
        assert_eq!(decoded, Decoded::Complete);
        request
    }

    fn get(state: &AdminState, path: &str) -> (u16, String) {
        let response = respond(
            state,
            &request(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()),
            NOW_MS,
        );
        (response.status, String::from_utf8(response.body).unwrap())
    }

    fn header<'r>(response: &'r Response, name: &[u8]) -> Option<&'r [u8]> {
        let mut found = response.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name));
        found.next().map(|(_, v)| v.as_slice())
    }

    fn beating(state: &AdminState) {
        for shard in &state.shards {
            shard.heartbeat_ms.set(NOW_MS - 100);
        }
    }

    #[test]
    fn healthz_names_the_stuck_shard() {
        let state = two_shards(Arc::default());
        beating(&state);
        assert_eq!(get(&state, "/healthz"), (200, "ok\n".into()));
        state.shards[1].heartbeat_ms.set(NOW_MS - 6_000);
        assert_eq!(
            get(&state, "/healthz"),
            (503, "shard 1: event loop last ran 6000 ms ago\n".into())
        );
        state.shards[0].heartbeat_ms.set(0);
        assert_eq!(
            get(&state, "/healthz?verbose"),
            (
                503,
                "shard 0: event loop has not run yet\nshard 1: event loop last ran 6000 ms ago\n".into()
            )
        );
    }

    #[test]
    fn healthz_allows_up_to_five_seconds() {
        let state = two_shards(Arc::default());
        beating(&state);
        state.shards[0].heartbeat_ms.set(NOW_MS - 5_000);
        // A heartbeat from the future (the clock stepped back) is recent.
        state.shards[1].heartbeat_ms.set(NOW_MS + 1_000);
        assert_eq!(get(&state, "/healthz").0, 200);
    }

    #[test]
    fn readyz_follows_health() {
        let state = two_shards(Arc::default());
        assert_eq!(get(&state, "/readyz"), (503, "starting\n".into()));
        state.health.set_started();
        assert_eq!(get(&state, "/readyz"), (200, "ready\n".into()));
        state.health.set_draining();
        assert_eq!(get(&state, "/readyz"), (503, "draining\n".into()));
    }

    #[test]
    fn metrics_are_openmetrics_text() {
        let state = two_shards(Arc::default());
        let response = respond(
            &state,
            &request(b"GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n"),
            NOW_MS,
        );
        assert_eq!(response.status, 200);
        assert_eq!(
            header(&response, b"content-type"),
            Some(metrics::CONTENT_TYPE.as_bytes())
        );
        assert!(response.body.ends_with(b"# EOF\n"));
        // HEAD is answered as GET; the writer leaves the body out.
        let head = respond(&state, &request(b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), NOW_MS);
        assert_eq!(head.status, 200);
    }

    #[test]
    fn unknown_paths_are_404_and_other_methods_405() {
        let state = two_shards(Arc::default());
        for path in ["/", "/metrics/", "/Metrics", "/reload", "/config", "/healthz/x"] {
            assert_eq!(get(&state, path).0, 404, "{path}");
        }
        for method in ["POST", "PUT", "DELETE", "OPTIONS", "BREW"] {
            for path in ["/metrics", "/healthz", "/readyz"] {
                let bytes = format!("{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n");
                let response = respond(&state, &request(bytes.as_bytes()), NOW_MS);
                assert_eq!(response.status, 405, "{method} {path}");
                assert_eq!(header(&response, b"allow"), Some(&b"GET, HEAD"[..]));
            }
        }
        let response = respond(&state, &request(b"POST /nowhere HTTP/1.1\r\nHost: x\r\n\r\n"), NOW_MS);
        assert_eq!(response.status, 404);
    }
}
