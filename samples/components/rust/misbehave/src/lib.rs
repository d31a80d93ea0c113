//! misbehave: a deliberately badly behaved test guest. It exists to test
//! isolation: the host must contain every failure below to the one request
//! (and instance) that caused it, and keep serving everything else.
//!
//! Selected by the query parameter `mode`:
//! - `trap`: traps (`unreachable`) before setting any response.
//! - `spin`: loops forever without any host call (needs fuel/epoch limits).
//! - `alloc`: allocates 1 MiB blocks without bound until allocation fails
//!   (panic = "abort", so that ends in a trap).
//! - `trap-after-head`: sends a 200 head without content-length, writes and
//!   flushes "partial", then traps before finishing the body.
//! - `bad-header`: tries to set a header value containing "\r\n"; answers
//!   500 `header rejected` if the fields API refuses it (expected), 200 with
//!   the header if it was accepted.
//! - `log`: prints "hello stdout" / "hello stderr", answers 200 `logged`.
//! - `env`: answers 200 with every environment variable as sorted
//!   `KEY=VALUE` lines.
//! - `fs`: tries to read a file and list `/`; answers 200 with what happened
//!   (the host grants no directory, so both must fail).
//! - `socket`: tries a TCP connection through wasi:sockets; answers 200 with
//!   what happened (the host grants no network, so it must fail).
//! - `random`: answers 200 with two 16-byte random values in hex.
//! - `trailers`: answers 200 without content-length and finishes the body
//!   with a trailer `x-checksum: 42`.
//! - `unfinished`: sends a 200 head without content-length, writes
//!   "partial", and returns keeping the body unfinished (in a static).
//! - `keep-request`: keeps the request (in a static) and answers 200 `kept`.
//! - `count`: answers 200 `count=N`, N being the requests this instance
//!   has counted (1 on a fresh instance; it grows on a reused one).
//! - anything else: 200 `ok`.

use core::hint::black_box;
use std::cell::RefCell;
use core::sync::atomic::{AtomicU64, Ordering};

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

wasip2::http::proxy::export!(Misbehave);

struct Misbehave;

const BAD_VALUE: &[u8] = b"a\r\nInjected: 1";

static COUNTED: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static KEPT_REQUESTS: RefCell<Vec<IncomingRequest>> = const { RefCell::new(Vec::new()) };
    static UNFINISHED_BODIES: RefCell<Vec<OutgoingBody>> = const { RefCell::new(Vec::new()) };
}

impl Guest for Misbehave {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let mode = query_param(&path, "mode").unwrap_or("").to_string();
        match mode.as_str() {
            "trap" => trap(),
            "spin" => spin(),
            "alloc" => alloc(),
            "trap-after-head" => trap_after_head(response_out),
            "bad-header" => bad_header(response_out),
            "log" => {
                println!("hello stdout");
                eprintln!("hello stderr");
                respond(response_out, 200, Fields::new(), b"logged\n");
            }
            "env" => {
                let mut vars: Vec<(String, String)> = std::env::vars().collect();
                vars.sort();
                let body: String = vars.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
                respond(response_out, 200, text_plain(), body.as_bytes());
            }
            "fs" => {
                let read = std::fs::read_to_string("/etc/hostname").map(|_| "read");
                let list = std::fs::read_dir("/").map(|_| "listed");
                let body = format!("read: {}\nlist: {}\n", outcome(read), outcome(list));
                respond(response_out, 200, text_plain(), body.as_bytes());
            }
            "socket" => {
                let connect = std::net::TcpStream::connect("127.0.0.1:9").map(|_| "connected");
                let body = format!("connect: {}\n", outcome(connect));
                respond(response_out, 200, text_plain(), body.as_bytes());
            }
            "random" => {
                let hex = |bytes: Vec<u8>| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
                let a = hex(wasip2::random::random::get_random_bytes(16));
                let b = hex(wasip2::random::random::get_random_bytes(16));
                respond(response_out, 200, text_plain(), format!("{a}\n{b}\n").as_bytes());
            }
            "trailers" => with_trailers(response_out),
            "unfinished" => unfinished(response_out),
            "keep-request" => {
                KEPT_REQUESTS.with(|kept| kept.borrow_mut().push(request));
                respond(response_out, 200, text_plain(), b"kept\n");
            }
            "count" => {
                let count = COUNTED.fetch_add(1, Ordering::Relaxed) + 1;
                respond(response_out, 200, text_plain(), format!("count={count}\n").as_bytes());
            }
            _ => respond(response_out, 200, text_plain(), b"ok\n"),
        }
    }
}

fn trap() -> ! {
    core::arch::wasm32::unreachable()
}

/// Burn CPU forever; `black_box` keeps the optimizer from removing the loop.
fn spin() -> ! {
    let mut counter: u64 = 0;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

/// Grow memory 1 MiB at a time until the allocator gives up (abort -> trap).
fn alloc() -> ! {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        let block = vec![0xA5u8; 1024 * 1024];
        blocks.push(black_box(block));
        black_box(&blocks);
    }
}

fn trap_after_head(response_out: ResponseOutparam) -> ! {
    let response = OutgoingResponse::new(text_plain());
    let body = response.body().expect("response body");
    ResponseOutparam::set(response_out, Ok(response));
    let out = body.write().expect("body stream");
    out.blocking_write_and_flush(b"partial").expect("write body");
    black_box((&out, &body));
    trap()
}

fn unfinished(response_out: ResponseOutparam) {
    let response = OutgoingResponse::new(text_plain());
    let body = response.body().expect("response body");
    ResponseOutparam::set(response_out, Ok(response));
    let out = body.write().expect("body stream");
    out.blocking_write_and_flush(b"partial").expect("write body");
    drop(out);
    UNFINISHED_BODIES.with(|bodies| bodies.borrow_mut().push(body));
}

fn bad_header(response_out: ResponseOutparam) {
    let from_list = Fields::from_list(&[("x-bad".to_string(), BAD_VALUE.to_vec())]);
    match from_list {
        Ok(fields) => respond(response_out, 200, fields, b"header accepted (from-list)\n"),
        Err(_) => {
            // Also try the mutable path; both should refuse.
            let fields = Fields::new();
            match fields.set("x-bad", &[BAD_VALUE.to_vec()]) {
                Ok(()) => respond(response_out, 200, fields, b"header accepted (set)\n"),
                Err(_) => respond(response_out, 500, text_plain(), b"header rejected\n"),
            }
        }
    }
}

fn outcome(result: std::io::Result<&str>) -> String {
    match result {
        Ok(what) => what.to_string(),
        Err(e) => format!("denied ({:?})", e.kind()),
    }
}

fn with_trailers(response_out: ResponseOutparam) {
    let response = OutgoingResponse::new(text_plain());
    let body = response.body().expect("response body");
    ResponseOutparam::set(response_out, Ok(response));
    let out = body.write().expect("body stream");
    out.blocking_write_and_flush(b"with trailers\n").expect("write body");
    drop(out);
    let trailers = Fields::from_list(&[("x-checksum".to_string(), b"42".to_vec())]).expect("valid trailer");
    OutgoingBody::finish(body, Some(trailers)).expect("finish body");
}

fn text_plain() -> Fields {
    Fields::from_list(&[("content-type".to_string(), b"text/plain".to_vec())]).expect("valid header")
}

fn respond(response_out: ResponseOutparam, status: u16, headers: Fields, body_bytes: &[u8]) {
    let _ = headers.set("content-length", &[body_bytes.len().to_string().into_bytes()]);
    let response = OutgoingResponse::new(headers);
    response.set_status_code(status).expect("valid status");
    let body = response.body().expect("response body");
    ResponseOutparam::set(response_out, Ok(response));
    let out = body.write().expect("body stream");
    // blocking-write-and-flush takes at most 4096 bytes per call.
    for chunk in body_bytes.chunks(4096) {
        out.blocking_write_and_flush(chunk).expect("write body");
    }
    drop(out);
    OutgoingBody::finish(body, None).expect("finish body");
}

/// The value of `key` in the query string of `path_with_query`, if any.
fn query_param<'a>(path_with_query: &'a str, key: &str) -> Option<&'a str> {
    let (_, query) = path_with_query.split_once('?')?;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then_some(v)
    })
}
