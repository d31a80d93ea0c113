//! What does one request cost on a shard's hot path, part by part?
//!
//! - `http`: decode a typical GET head, route it, encode a static answer
//!   (all a native route does, without the socket).
//! - `instance`: get an instance, call an empty guest, give it back, per
//!   pool mode: `fresh` (a new instance from the pooling allocator each
//!   time) vs `reuse` (the same instance again). This is the price of
//!   isolation between requests.
//! - `wasm_hello`: the same with a guest that sets a status, a header and a
//!   body (the load benchmark's wasm hello).
//! - `host_call`: 1000 `db_get` calls vs none from one guest; the
//!   difference divided by 1000 is the cost of one host call.
//! - `component`: a whole exchange (request in, response head and body
//!   out) with the sample wasi:http hello components, WASI 0.2 vs 0.3,
//!   `fresh` vs `reuse`, one request at a time and (0.3 reuse) 16 at once
//!   in one instance. Needs `bash samples/components/build.sh`.
//!
//! Run: `cargo bench --bench request_path`. Results and the machine they
//! came from are recorded in benches/RESULTS.md.

use std::hint::black_box;
use std::path::Path;
use std::rc::Rc;

use criterion::{Criterion, criterion_group, criterion_main};
use serverless_wasm::config;
use serverless_wasm::http::encode::ResponseMeta;
use serverless_wasm::http::{Decoder, FramingLimits, Request, Response, write_response};
use serverless_wasm::kv::ShardStores;
use serverless_wasm::router::{Lookup, Router};
use serverless_wasm::server::routes::SharedAnswer;
use serverless_wasm::server::{self, Prepared};
use serverless_wasm::wasm::{Answer, GuestPool, ShardHttp, ShardServices};

const GET: &[u8] =
    b"GET /hello HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n";

fn config() -> Prepared {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/guests");
    let route = |path: &str, file: &str, extra: &str| {
        format!(
            "[[applications]]\nmethod = \"GET\"\nurl_path = \"{path}\"\nfile_path = \"{}\"\n{extra}\n",
            dir.join(file).display()
        )
    };
    let text = [
        "listen_address = \"127.0.0.1:0\"\n".to_string(),
        route("/noop-fresh", "noop.wat", ""),
        route("/noop-reuse", "noop.wat", "instance = \"reuse\""),
        route("/hello-fresh", "hello.wat", ""),
        route("/hello-reuse", "hello.wat", "instance = \"reuse\""),
        route(
            "/calls-1000",
            "host_calls.wat",
            "function = \"thousand\"\ninstance = \"reuse\"\nenv = { k = \"v\" }",
        ),
        route(
            "/calls-0",
            "host_calls.wat",
            "function = \"zero\"\ninstance = \"reuse\"\nenv = { k = \"v\" }",
        ),
        "[[applications]]\nmethod = \"GET\"\nurl_path = \"/hello\"\nstatic_body = \"Hello, World!\"\n".to_string(),
    ]
    .concat();
    let components = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/components/build");
    let component = |path: &str, file: &str, extra: &str| {
        format!(
            "[[applications]]\nmethod = \"GET\"\nurl_path = \"{path}\"\nfile_path = \"{}\"\nwarm_instances = 1\n{extra}\n",
            components.join(file).display()
        )
    };
    let text = if components.join("p3-hello.wasm").exists() {
        [
            text,
            component("/p2-fresh", "hello.wasm", ""),
            component("/p2-reuse", "hello.wasm", "instance = \"reuse\""),
            component("/p3-fresh", "p3-hello.wasm", ""),
            component("/p3-reuse", "p3-hello.wasm", "instance = \"reuse\""),
        ]
        .concat()
    } else {
        eprintln!("component benches skipped: run `bash samples/components/build.sh` first");
        text
    };
    let config = config::parse(Path::new("bench.toml"), &text).expect("bench config");
    server::prepare(config, 1).expect("bench guests load")
}

fn pool(shared: &Prepared, path: &str) -> GuestPool {
    let route = shared
        .generation
        .routes
        .iter()
        .find(|r| r.path.to_string() == path)
        .expect("route exists");
    let SharedAnswer::Guest { guest, spec, .. } = &route.answer else {
        panic!("{path} is not wasm")
    };
    let services = ShardServices {
        http: ShardHttp::new().expect("shard runtime"),
        key_value: Rc::new(ShardStores::empty()),
    };
    shared
        .shared
        .runtime
        .pool(guest, &route.name, spec, Default::default(), &services)
}

fn decoded_request() -> Request {
    let mut request = Request::default();
    let limits = FramingLimits {
        max_request_line: 8192,
        max_head: 16384,
        max_body: 1 << 20,
    };
    Decoder::new(limits).decode(GET, &mut request).expect("valid request");
    request
}

fn benches(c: &mut Criterion) {
    let shared = config();

    c.bench_function("http/decode_route_encode", |b| {
        let limits = FramingLimits {
            max_request_line: 8192,
            max_head: 16384,
            max_body: 1 << 20,
        };
        let mut decoder = Decoder::new(limits);
        let mut request = Request::default();
        let table = Router::build(shared.generation.routes.iter().map(|r| (r.method, r.path.clone(), ())));
        let answer = Response {
            status: 200,
            reason: Vec::new(),
            headers: vec![(b"Content-Type".to_vec(), b"text/plain".to_vec())],
            body: b"Hello, World!".to_vec(),
        };
        let mut out = Vec::with_capacity(4096);
        let date = *b"Tue, 24 Nov 2026 10:00:00 GMT";
        b.iter(|| {
            out.clear();
            decoder.decode(black_box(GET), &mut request).expect("valid");
            let found = matches!(table.lookup(request.method(), request.path()), Lookup::Found { .. });
            let meta = ResponseMeta {
                date: &date,
                head_only: false,
                keep_alive: found,
                extra_headers: &[],
            };
            write_response(&mut out, &answer, &meta);
            black_box(out.len())
        })
    });

    // Guests run on a glommio executor, as on a shard.
    let executor = glommio::LocalExecutorBuilder::default().make().expect("executor");
    executor.run(async {
        let mut run = |name: &str, path: &str| {
            let pool = pool(&shared, path);
            let mut request = decoded_request();
            c.bench_function(name, |b| {
                b.iter(|| {
                    let answer = futures_lite::future::block_on(pool.handle(&mut request, None)).answer;
                    let Ok(Answer::Whole(response)) = answer else {
                        panic!("the guest answers whole")
                    };
                    black_box(response)
                })
            });
        };
        run("instance/fresh", "/noop-fresh");
        run("instance/reuse", "/noop-reuse");
        run("wasm_hello/fresh", "/hello-fresh");
        run("wasm_hello/reuse", "/hello-reuse");
        run("host_call/1000_calls", "/calls-1000");
        run("host_call/0_calls", "/calls-0");
    });
    drop(executor);

    for (name, path, at_once) in [
        ("component/p2_fresh", "/p2-fresh", 1),
        ("component/p2_reuse", "/p2-reuse", 1),
        ("component/p3_fresh", "/p3-fresh", 1),
        ("component/p3_reuse", "/p3-reuse", 1),
        ("component/p3_reuse_16_at_once", "/p3-reuse", 16),
    ] {
        if !shared.generation.routes.iter().any(|r| r.path.to_string() == path) {
            continue;
        }
        c.bench_function(name, |b| {
            b.iter_custom(|iters| exchanges(&shared, path, iters, at_once))
        });
    }
}

/// Time for `iters` whole exchanges with the component on `path`,
/// `at_once` in flight, on a glommio executor of its own (components run
/// as tasks beside the request, as on a shard).
fn exchanges(shared: &Prepared, path: &str, iters: u64, at_once: u64) -> std::time::Duration {
    let executor = glommio::LocalExecutorBuilder::default().make().expect("executor");
    executor.run(async {
        let pool = std::rc::Rc::new(pool(shared, path));
        pool.warm_up(&|| true).await;
        let started = std::time::Instant::now();
        let clients: Vec<_> = (0..at_once)
            .map(|client| {
                let pool = pool.clone();
                let share = iters / at_once + u64::from(client < iters % at_once);
                glommio::spawn_local(async move {
                    let mut request = decoded_request();
                    for _ in 0..share {
                        let answer = pool.handle(&mut request, None).await.answer;
                        let Ok(Answer::Streamed(mut exchange)) = answer else {
                            panic!("a component answers streamed")
                        };
                        let mut response = exchange.response().await.expect("a response");
                        while let Some(part) = response.body.next().await {
                            black_box(part.expect("a body"));
                        }
                        exchange.finish();
                    }
                })
            })
            .collect();
        for client in clients {
            client.await;
        }
        started.elapsed()
    })
}

criterion_group!(request_path, benches);
criterion_main!(request_path);
