//! p3-hello: the smallest useful WASI 0.3 `wasi:http/handler` component.
//! Logs one line per request on stdout (as the original samples do) and
//! answers 200 `text/plain` with a fixed body.

use wasip3::http::types::{ErrorCode, Fields, Request, Response};
use wasip3::{wit_future, wit_stream};

wasip3::http::service::export!(Hello);

struct Hello;

const BODY: &[u8] = b"Hello from a WASI 0.3 component\n";

impl wasip3::exports::http::handler::Guest for Hello {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let path = request.get_path_with_query().unwrap_or_default();
        log(format!("p3-hello: serving {path}\n"));
        let headers = Fields::from_list(&[
            ("content-type".to_string(), b"text/plain".to_vec()),
            ("content-length".to_string(), BODY.len().to_string().into_bytes()),
        ])
        .map_err(|_| ErrorCode::InternalError(None))?;
        let (mut body, contents) = wit_stream::new();
        // No trailers: dropping the writer sends the default, `Ok(None)`.
    let (no_trailers, trailers) = wit_future::new(|| Ok(None));
    drop(no_trailers);
        let (response, _sent) = Response::new(headers, Some(contents), trailers);
        wit_bindgen::spawn_local(async move {
            body.write_all(BODY.to_vec()).await;
        });
        Ok(response)
    }
}

/// One line on WASI 0.3 stdout (the server logs it with the route's name).
fn log(line: String) {
    let (mut tx, rx) = wit_stream::new();
    let written = wasip3::cli::stdout::write_via_stream(rx);
    wit_bindgen::spawn_local(async move {
        tx.write_all(line.into_bytes()).await;
        drop(tx);
        let _ = written.await;
    });
}
