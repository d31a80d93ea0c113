//! fetch: an outgoing HTTP request from inside a component. GETs the URL in
//! the `BACKEND_URL` environment variable (`http://` or `https://`) with
//! `wasi:http/outgoing-handler`, waits on the response future's pollable and
//! streams the backend's body back with `x-backend-status: <status>`.
//! Errors: 500 if `BACKEND_URL` is missing/unusable, 502 if the request fails.

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingRequest, IncomingResponse, OutgoingBody, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};
use wasip2::io::streams::{InputStream, OutputStream, StreamError};

wasip2::http::proxy::export!(Fetch);

struct Fetch;

impl Guest for Fetch {
    fn handle(_request: IncomingRequest, response_out: ResponseOutparam) {
        // std::env::var reads wasi:cli/environment.
        let url = match std::env::var("BACKEND_URL") {
            Ok(url) => url,
            Err(_) => return respond(response_out, 500, "BACKEND_URL is not set\n"),
        };
        let Some((scheme, authority, path_with_query)) = split_http_url(&url) else {
            let msg = format!("BACKEND_URL must look like http[s]://host[:port][/path]: {url}\n");
            return respond(response_out, 500, &msg);
        };
        let backend = match get(scheme, authority, path_with_query) {
            Ok(response) => response,
            Err(e) => return respond(response_out, 502, &format!("backend error: {e:?}\n")),
        };

        let mut headers = vec![(
            "x-backend-status".to_string(),
            backend.status().to_string().into_bytes(),
        )];
        for value in backend.headers().get("content-type") {
            headers.push(("content-type".to_string(), value));
        }
        let response = OutgoingResponse::new(Fields::from_list(&headers).expect("valid headers"));
        let out_body = response.body().expect("response body");
        ResponseOutparam::set(response_out, Ok(response));

        let in_body = backend.consume().expect("backend body");
        let input = in_body.stream().expect("backend body stream");
        let output = out_body.write().expect("response body stream");
        let ok = pump(&input, &output).is_ok();
        drop((input, in_body, output));
        if ok {
            OutgoingBody::finish(out_body, None).expect("finish body");
        } // else: dropped unfinished, so the client sees a truncated body
    }
}

/// `http[s]://authority[/path][?query]` -> (scheme, authority, path-with-query).
fn split_http_url(url: &str) -> Option<(Scheme, &str, String)> {
    let (scheme, rest) = match url.strip_prefix("https://") {
        Some(rest) => (Scheme::Https, rest),
        None => (Scheme::Http, url.strip_prefix("http://")?),
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.is_empty() {
        return None;
    }
    let path = if tail.starts_with('/') {
        tail.to_string()
    } else {
        format!("/{tail}")
    };
    Some((scheme, authority, path))
}

/// GET scheme://authority/path_with_query and wait for the response head.
fn get(scheme: Scheme, authority: &str, path_with_query: String) -> Result<IncomingResponse, ErrorCode> {
    let request = OutgoingRequest::new(Fields::new()); // method defaults to GET
    request.set_scheme(Some(&scheme)).expect("scheme");
    request
        .set_authority(Some(authority))
        .map_err(|()| ErrorCode::HttpRequestUriInvalid)?;
    request
        .set_path_with_query(Some(&path_with_query))
        .map_err(|()| ErrorCode::HttpRequestUriInvalid)?;
    // No body is attached: a GET with an empty body.
    let future = outgoing_handler::handle(request, None)?;
    future.subscribe().block();
    future
        .get()
        .expect("future is ready after block()")
        .expect("response taken only once")
}

fn respond(response_out: ResponseOutparam, status: u16, text: &str) {
    let headers = Fields::from_list(&[("content-type".to_string(), b"text/plain".to_vec())]).expect("valid header");
    let response = OutgoingResponse::new(headers);
    response.set_status_code(status).expect("valid status");
    let body = response.body().expect("response body");
    ResponseOutparam::set(response_out, Ok(response));
    let out = body.write().expect("body stream");
    write_all(&out, text.as_bytes())
        .and_then(|()| out.blocking_flush())
        .expect("write body");
    drop(out);
    OutgoingBody::finish(body, None).expect("finish body");
}

fn pump(input: &InputStream, output: &OutputStream) -> Result<(), StreamError> {
    loop {
        match input.blocking_read(64 * 1024) {
            Ok(chunk) => write_all(output, &chunk)?,
            Err(StreamError::Closed) => break,
            Err(e) => return Err(e),
        }
    }
    output.blocking_flush()
}

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
