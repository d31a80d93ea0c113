//! p3-misbehave: a WASI 0.3 component for the failure and concurrency
//! tests. By the last segment of the path (so any route prefix works):
//! - `/sleep?ms=N`: sleeps N ms on the host's clock, then answers;
//! - `/trap`: traps (`unreachable`);
//! - `/spin`: loops forever (its fuel or its deadline ends it);
//! - `/stream?chunks=N&size=S`: streams N chunks of S bytes;
//! - `/log`: writes a line on stderr, then answers;
//! - `/trailers`: a body, then the trailer `x-checksum: 42`;
//! - anything else: `ok`.

use wasip3::clocks::monotonic_clock;
use wasip3::http::types::{ErrorCode, Fields, Request, Response};
use wasip3::{wit_future, wit_stream};

wasip3::http::service::export!(Misbehave);

struct Misbehave;

impl wasip3::exports::http::handler::Guest for Misbehave {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let target = request.get_path_with_query().unwrap_or_default();
        let (path, _) = target.split_once('?').unwrap_or((&target, ""));
        match path.rsplit('/').next().unwrap_or_default() {
            "sleep" => {
                let ms: u64 = param(&target, "ms").unwrap_or(100);
                monotonic_clock::wait_for(ms * 1_000_000).await;
                respond(vec![format!("slept {ms} ms\n").into_bytes()])
            }
            "trap" => core::arch::wasm32::unreachable(),
            "spin" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "stream" => {
                // Each chunk is made when the client is ready for it: the
                // guest holds one at a time.
                let chunks: usize = param(&target, "chunks").unwrap_or(4);
                let size: usize = param(&target, "size").unwrap_or(1024);
                let (mut tx, contents) = wit_stream::new();
                let (no_trailers, trailers) = wit_future::new(|| Ok(None));
                drop(no_trailers);
                let (response, _sent) = Response::new(Fields::new(), Some(contents), trailers);
                wit_bindgen::spawn_local(async move {
                    for i in 0..chunks {
                        if !tx.write_all(vec![b'a' + (i % 26) as u8; size]).await.is_empty() {
                            return;
                        }
                    }
                });
                Ok(response)
            }
            "trailers" => {
                let headers = Fields::new();
                let (mut tx, contents) = wit_stream::new();
                let (trailers_tx, trailers) = wit_future::new(|| Ok(None));
                let (response, _sent) = Response::new(headers, Some(contents), trailers);
                wit_bindgen::spawn_local(async move {
                    tx.write_all(b"with trailers\n".to_vec()).await;
                    drop(tx);
                    let fields = Fields::from_list(&[("x-checksum".to_string(), b"42".to_vec())]);
                    let _ = trailers_tx.write(fields.map(Some).map_err(|_| ErrorCode::InternalError(None))).await;
                });
                Ok(response)
            }
            "log" => {
                let (mut tx, rx) = wit_stream::new();
                let written = wasip3::cli::stderr::write_via_stream(rx);
                tx.write_all(b"p3-misbehave: a line on stderr\n".to_vec()).await;
                drop(tx);
                let _ = written.await;
                respond(vec![b"logged\n".to_vec()])
            }
            _ => respond(vec![b"ok\n".to_vec()]),
        }
    }
}

fn param<T: std::str::FromStr>(target: &str, name: &str) -> Option<T> {
    let (_, query) = target.split_once('?')?;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

/// 200 with `chunks` written one after the other as the client reads.
fn respond(chunks: Vec<Vec<u8>>) -> Result<Response, ErrorCode> {
    let headers = Fields::from_list(&[("content-type".to_string(), b"text/plain".to_vec())])
        .map_err(|_| ErrorCode::InternalError(None))?;
    let (mut tx, contents) = wit_stream::new();
    // No trailers: dropping the writer sends the default, `Ok(None)`.
    let (no_trailers, trailers) = wit_future::new(|| Ok(None));
    drop(no_trailers);
    let (response, _sent) = Response::new(headers, Some(contents), trailers);
    wit_bindgen::spawn_local(async move {
        for chunk in chunks {
            if !tx.write_all(chunk).await.is_empty() {
                return;
            }
        }
    });
    Ok(response)
}
