//! counter: a wasi:http component that keeps state with wasi:keyvalue
//! (0.2.0-draft, as serverless-wasm provides it). The store is the `STORE`
//! environment variable's, else `default`. By path (the last segments):
//!
//! - `GET …/counter`: increments `visits` and answers `visits: N`
//!   (prints a line per request: it reaches the server log).
//! - `PUT …/item/KEY` stores the body; `GET …/item/KEY` answers it (404
//!   when absent); `DELETE …/item/KEY` deletes it.
//! - `GET …/keys`: every key, one per line (following the cursor).
//!
//! A store error answers 500 with the error (400 when it is about a size).

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

mod bindings {
    wit_bindgen::generate!({
        path: "../../../../wit/keyvalue",
        world: "wasi:keyvalue/imports",
    });
}

use bindings::wasi::keyvalue::{atomics, store};

wasip2::http::proxy::export!(Counter);

struct Counter;

/// Bodies of stored values are read up to this many bytes (the store's
/// own limit refuses larger ones first).
const MAX_BODY: usize = 4 << 20;

impl Guest for Counter {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let path = path.split('?').next().unwrap_or_default().to_string();
        let method = request.method();
        let (status, body) = match answer(&method, &path, request) {
            Ok(body) => (200, body),
            Err((status, message)) => (status, message.into_bytes()),
        };
        respond(response_out, status, &body);
    }
}

type Answer = Result<Vec<u8>, (u16, String)>;

fn answer(method: &Method, path: &str, request: IncomingRequest) -> Answer {
    let name = std::env::var("STORE").unwrap_or_else(|_| "default".to_string());
    let bucket = store::open(&name).map_err(|e| failed("open", e))?;
    let segments: Vec<&str> = path.trim_end_matches('/').rsplit('/').collect();
    match (method, segments.as_slice()) {
        (Method::Get, ["counter", ..]) => {
            let visits = atomics::increment(&bucket, "visits", 1).map_err(|e| failed("increment", e))?;
            println!("visit {visits}");
            Ok(format!("visits: {visits}\n").into_bytes())
        }
        (Method::Get, ["keys", ..]) => {
            let mut keys = String::new();
            let mut cursor = None;
            loop {
                let page = bucket.list_keys(cursor).map_err(|e| failed("list-keys", e))?;
                for key in page.keys {
                    keys.push_str(&key);
                    keys.push('\n');
                }
                match page.cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            Ok(keys.into_bytes())
        }
        (Method::Get, [key, "item", ..]) => match bucket.get(key).map_err(|e| failed("get", e))? {
            Some(value) => Ok(value),
            None => Err((404, "no such key\n".to_string())),
        },
        (Method::Put, [key, "item", ..]) => {
            let value = read_body(request)?;
            bucket.set(key, &value).map_err(|e| failed("set", e))?;
            Ok(b"stored\n".to_vec())
        }
        (Method::Delete, [key, "item", ..]) => {
            bucket.delete(key).map_err(|e| failed("delete", e))?;
            Ok(b"deleted\n".to_vec())
        }
        _ => Err((404, "try GET counter, GET keys, or GET/PUT/DELETE item/KEY\n".to_string())),
    }
}

/// The store's error as the answer: 400 for a size limit, else 500.
fn failed(operation: &str, error: store::Error) -> (u16, String) {
    let (status, why) = match error {
        store::Error::NoSuchStore => (500, "no such store".to_string()),
        store::Error::AccessDenied => (500, "access denied".to_string()),
        store::Error::Other(why) if why.contains("larger than") => (400, why),
        store::Error::Other(why) => (500, why),
    };
    eprintln!("{operation} failed: {why}");
    (status, format!("{operation} failed: {why}\n"))
}

fn read_body(request: IncomingRequest) -> Result<Vec<u8>, (u16, String)> {
    let unreadable = || (400, "cannot read the body\n".to_string());
    let body = request.consume().map_err(|()| unreadable())?;
    let stream = body.stream().map_err(|()| unreadable())?;
    let mut value = Vec::new();
    while value.len() <= MAX_BODY {
        match stream.blocking_read(64 << 10) {
            Ok(chunk) => value.extend_from_slice(&chunk),
            Err(_) => break, // closed: the whole body is in
        }
    }
    Ok(value)
}

fn respond(response_out: ResponseOutparam, status: u16, body: &[u8]) {
    let headers = Fields::from_list(&[("content-type".to_string(), b"text/plain".to_vec())]).expect("valid header");
    let response = OutgoingResponse::new(headers);
    response.set_status_code(status).expect("valid status");
    let out_body = response.body().expect("response body");
    ResponseOutparam::set(response_out, Ok(response));
    let out = out_body.write().expect("body stream");
    for chunk in body.chunks(4096) {
        out.blocking_write_and_flush(chunk).expect("write body");
    }
    drop(out);
    OutgoingBody::finish(out_body, None).expect("finish body");
}
