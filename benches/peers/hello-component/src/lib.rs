//! A wasi:http/proxy hello: 200, text/plain, "Hello, World!" (the same
//! answer as the benchmark's native and wasm routes).

use wasip2::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

wasip2::http::proxy::export!(Hello);

struct Hello;

impl wasip2::exports::http::incoming_handler::Guest for Hello {
    fn handle(_request: IncomingRequest, response_out: ResponseOutparam) {
        let headers = Fields::from_list(&[("content-type".to_string(), b"text/plain; charset=utf-8".to_vec())])
            .expect("valid header");
        let response = OutgoingResponse::new(headers);
        let body = response.body().expect("body");
        ResponseOutparam::set(response_out, Ok(response));
        let out = body.write().expect("stream");
        out.blocking_write_and_flush(b"Hello, World!").expect("write");
        drop(out);
        OutgoingBody::finish(body, None).expect("finish");
    }
}
