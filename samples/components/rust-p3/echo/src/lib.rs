//! p3-echo: streams the request body back as the response body, chunk by
//! chunk as it arrives (a slow reader holds back the guest, not the host's
//! memory), and passes the request's trailers on as response trailers (the
//! server drops trailers of requests today, so none arrive).

use wasip3::http::types::{ErrorCode, Fields, Request, Response};
use wasip3::{wit_future, wit_stream};
use wit_bindgen::StreamResult;

wasip3::http::service::export!(Echo);

struct Echo;

const CHUNK: usize = 16 << 10;

impl wasip3::exports::http::handler::Guest for Echo {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let headers = Fields::from_list(&[("content-type".to_string(), b"application/octet-stream".to_vec())])
            .map_err(|_| ErrorCode::InternalError(None))?;
        let (_consumed, consumed) = wit_future::new(|| Ok(()));
        let (mut incoming, trailers) = Request::consume_body(request, consumed);
        let (mut outgoing, contents) = wit_stream::new();
        let (response, _sent) = Response::new(headers, Some(contents), trailers);
        wit_bindgen::spawn_local(async move {
            let mut buffer = Vec::with_capacity(CHUNK);
            loop {
                let (result, chunk) = incoming.read(buffer).await;
                match result {
                    StreamResult::Complete(_) => {
                        let rest = outgoing.write_all(chunk).await;
                        if !rest.is_empty() {
                            return; // the client went away
                        }
                        buffer = Vec::with_capacity(CHUNK);
                    }
                    StreamResult::Dropped | StreamResult::Cancelled => return,
                }
            }
        });
        Ok(response)
    }
}
