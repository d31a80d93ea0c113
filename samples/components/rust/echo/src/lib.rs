//! echo: streams the request body back without buffering it. Sends the
//! response head first (`x-echo-method`, `x-echo-path`, and every request
//! header as `x-echo-header-<name>`), then copies the body chunk by chunk
//! (<= 64 KiB per read), honouring the output stream's `check-write` budget.

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam};
use wasip2::io::streams::{InputStream, OutputStream, StreamError};

wasip2::http::proxy::export!(Echo);

struct Echo;

const CHUNK: u64 = 64 * 1024;

impl Guest for Echo {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let mut headers = vec![
            ("x-echo-method".to_string(), method_name(&request.method()).into_bytes()),
            (
                "x-echo-path".to_string(),
                request.path_with_query().unwrap_or_else(|| "/".into()).into_bytes(),
            ),
        ];
        for (name, value) in request.headers().entries() {
            headers.push((format!("x-echo-header-{name}"), value));
        }
        let response = OutgoingResponse::new(Fields::from_list(&headers).expect("valid headers"));
        let out_body = response.body().expect("response body");
        // Send the head now, so the host can start streaming the answer
        // while we are still reading the request.
        ResponseOutparam::set(response_out, Ok(response));

        let in_body = request.consume().expect("request body");
        let input = in_body.stream().expect("request body stream");
        let output = out_body.write().expect("response body stream");
        let ok = pump(&input, &output).is_ok();
        drop(input);
        drop(in_body);
        drop(output);
        if ok {
            OutgoingBody::finish(out_body, None).expect("finish body");
        }
        // On error the body is dropped unfinished: the host sees a truncated
        // response instead of a silently short one.
    }
}

/// Copy `input` to `output` until `input` is closed, one chunk at a time.
fn pump(input: &InputStream, output: &OutputStream) -> Result<(), StreamError> {
    loop {
        let chunk = match input.blocking_read(CHUNK) {
            Ok(chunk) => chunk,
            Err(StreamError::Closed) => break,
            Err(e) => return Err(e),
        };
        write_all(output, &chunk)?;
    }
    output.blocking_flush()
}

/// `write` may only be given as many bytes as `check-write` allows; wait on
/// the stream's pollable when the budget is zero.
fn write_all(output: &OutputStream, mut data: &[u8]) -> Result<(), StreamError> {
    while !data.is_empty() {
        let budget = output.check_write()?;
        if budget == 0 {
            output.subscribe().block();
            continue;
        }
        let n = data.len().min(budget as usize);
        output.write(&data[..n])?;
        data = &data[n..];
    }
    Ok(())
}

fn method_name(method: &Method) -> String {
    match method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Connect => "CONNECT",
        Method::Options => "OPTIONS",
        Method::Trace => "TRACE",
        Method::Patch => "PATCH",
        Method::Other(other) => other,
    }
    .to_string()
}
