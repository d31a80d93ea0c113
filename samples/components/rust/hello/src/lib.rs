//! hello: the smallest useful wasi:http/proxy component. Answers every
//! request with 200, `content-type: text/plain` and a fixed body.

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

wasip2::http::proxy::export!(Hello);

struct Hello;

impl Guest for Hello {
    fn handle(_request: IncomingRequest, response_out: ResponseOutparam) {
        let headers = Fields::from_list(&[("content-type".to_string(), b"text/plain".to_vec())]).expect("valid header");
        let response = OutgoingResponse::new(headers);
        let body = response.body().expect("response body");
        ResponseOutparam::set(response_out, Ok(response));

        let out = body.write().expect("body stream");
        // At most 4096 bytes per blocking-write-and-flush; this body is tiny.
        out.blocking_write_and_flush(b"Hello from a wasi:http component\n")
            .expect("write body");
        drop(out); // the stream must be dropped before the body is finished
        OutgoingBody::finish(body, None).expect("finish body");
    }
}
