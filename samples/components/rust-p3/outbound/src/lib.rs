//! p3-outbound: calls a backend and sleeps at the same time, the point of
//! WASI 0.3's native async. `GET /?url=http://host:port/path&sleep_ms=N`
//! sends a GET to `url` (which must be on the route's `allowed_outbound`)
//! while sleeping N ms, and answers when both are done with what it got
//! and how long the pair took (about the longer of the two, not the sum).

use wasip3::clocks::monotonic_clock;
use wasip3::http::types::{ErrorCode, Fields, Request, Response, Scheme};
use wasip3::{wit_future, wit_stream};

wasip3::http::service::export!(Outbound);

struct Outbound;

impl wasip3::exports::http::handler::Guest for Outbound {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let query = request.get_path_with_query().unwrap_or_default();
        let url = param(&query, "url").unwrap_or_default();
        let sleep_ms: u64 = param(&query, "sleep_ms").and_then(|v| v.parse().ok()).unwrap_or(0);
        let started = monotonic_clock::now();
        let sleep = monotonic_clock::wait_for(sleep_ms * 1_000_000);
        let (fetched, ()) = futures::join!(fetch(&url), sleep);
        let took_ms = (monotonic_clock::now() - started) / 1_000_000;
        let text = match fetched {
            Ok((status, body)) => format!(
                "fetched {url}: status {status}, {} bytes; slept {sleep_ms} ms; both took {took_ms} ms\n{}",
                body.len(),
                String::from_utf8_lossy(&body)
            ),
            Err(code) => format!("fetching {url} failed: {code:?}; slept {sleep_ms} ms; both took {took_ms} ms\n"),
        };
        let status = if text.starts_with("fetched") { 200 } else { 502 };
        respond(status, text.into_bytes())
    }
}

/// GET `url` (`http://host:port/path`), its status and whole body.
async fn fetch(url: &str) -> Result<(u16, Vec<u8>), ErrorCode> {
    let rest = url.strip_prefix("http://").ok_or(ErrorCode::HttpRequestUriInvalid)?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    // No trailers: dropping the writer sends the default, `Ok(None)`.
    let (no_trailers, trailers) = wit_future::new(|| Ok(None));
    drop(no_trailers);
    let (request, _sent) = Request::new(Fields::new(), None, trailers, None);
    let invalid = |_| ErrorCode::HttpRequestUriInvalid;
    request.set_scheme(Some(&Scheme::Http)).map_err(invalid)?;
    request.set_authority(Some(authority)).map_err(invalid)?;
    request.set_path_with_query(Some(path)).map_err(invalid)?;
    let response = wasip3::http::client::send(request).await?;
    let status = response.get_status_code();
    let (_consumed, consumed) = wit_future::new(|| Ok(()));
    let (body, _trailers) = Response::consume_body(response, consumed);
    Ok((status, body.collect().await))
}

fn param(query: &str, name: &str) -> Option<String> {
    let (_, query) = query.split_once('?')?;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('=').map(str::to_string))
}

fn respond(status: u16, body: Vec<u8>) -> Result<Response, ErrorCode> {
    let headers = Fields::from_list(&[("content-type".to_string(), b"text/plain".to_vec())])
        .map_err(|_| ErrorCode::InternalError(None))?;
    let (mut tx, contents) = wit_stream::new();
    // No trailers: dropping the writer sends the default, `Ok(None)`.
    let (no_trailers, trailers) = wit_future::new(|| Ok(None));
    drop(no_trailers);
    let (response, _sent) = Response::new(headers, Some(contents), trailers);
    response.set_status_code(status).map_err(|_| ErrorCode::InternalError(None))?;
    wit_bindgen::spawn_local(async move {
        tx.write_all(body).await;
    });
    Ok(response)
}
