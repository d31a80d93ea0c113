//! The host ABI under a guest that calls every host function (`env`,
//! `kv_v1` on an embedded store in a temporary directory, and WASI
//! preview 1's, our `poll_oneoff` among them) with pointers,
//! lengths and handles from the fuzz input (fuzz/guests/abi_fuzz.wat).
//! Whatever it passes, the host answers with a trap or an error code: the
//! request ends with some status, the process never crashes.
#![no_main]

use std::io::{Read, Write};
use std::path::Path;
use std::rc::Rc;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serverless_wasm::config;
use serverless_wasm::http::{Decoder, FramingLimits, Request};
use serverless_wasm::server::routes::SharedAnswer;
use serverless_wasm::server::{self, Prepared};
use serverless_wasm::kv::{ShardStores, StoreThread};
use serverless_wasm::wasm::{GuestPool, ShardHttp, ShardServices};

/// An echo backend the guest may connect to (op 15), on a thread.
fn backend() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

fn prepared() -> &'static Prepared {
    static PREPARED: OnceLock<Prepared> = OnceLock::new();
    PREPARED.get_or_init(|| {
        let backend = backend();
        let guest = Path::new(env!("CARGO_MANIFEST_DIR")).join("guests/abi_fuzz.wat");
        let state = std::env::temp_dir().join(format!("abi-fuzz-state-{}", std::process::id()));
        let text = format!(
            "listen_address = \"127.0.0.1:0\"\n[server]\nstate_dir = \"{}\"\n[key_value.default]\ntype = \"embedded\"\nmax_value_bytes = 4096\n\
             [[applications]]\nmethod = \"POST\"\nurl_path = \"/fuzz\"\nfile_path = \"{}\"\n\
             env = {{ backend = \"{backend}\", key = \"value\" }}\nallowed_outbound = [\"{backend}\"]\n\
             fuel = 1000000\ntimeout_ms = 200\nio_timeout_ms = 50\nmax_response_bytes = 65536\nmax_log_bytes = 256\n\
             key_value_stores = [\"default\"]\n",
            state.display(),
            guest.display()
        );
        let config = config::parse(Path::new("fuzz.toml"), &text).expect("config");
        server::prepare(config, 1).expect("guest loads")
    })
}

fn request(body: &[u8]) -> Request {
    let mut head = format!("POST /fuzz?q=1 HTTP/1.1\r\nHost: fuzz\r\nX-Key: value\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    head.extend_from_slice(body);
    let mut request = Request::default();
    let limits = FramingLimits { max_request_line: 1024, max_head: 4096, max_body: 1 << 20 };
    Decoder::new(limits).decode(&head, &mut request).expect("valid request");
    request
}

thread_local! {
    static EXECUTOR: glommio::LocalExecutor =
        glommio::LocalExecutorBuilder::default().io_memory(1 << 20).make().expect("executor");
    /// Leaked so requests can borrow it across awaits; one per fuzzing thread.
    static POOL: &'static GuestPool = {
        let prepared = prepared();
        let route = &prepared.generation.routes[0];
        let SharedAnswer::Guest { guest, spec, .. } = &route.answer else { unreachable!("a wasm route") };
        let stores = StoreThread::start(&prepared.shared.config.key_value).expect("store thread");
        let services = ShardServices {
            http: ShardHttp::new().expect("shard runtime"),
            key_value: Rc::new(ShardStores::new(&prepared.shared.config.key_value, &stores)),
        };
        Box::leak(Box::new(prepared.shared.runtime.pool(guest, &route.name, spec, Default::default(), &services)))
    };
}

fuzz_target!(|data: &[u8]| {
    let request = request(data);
    let pool = POOL.with(|pool| *pool);
    EXECUTOR.with(|executor| {
        executor.run(async move {
            let mut request = request;
            if let Err(e) = pool.handle(&mut request, None).await.answer {
                // Every failure maps to a status the server can send.
                assert!([500, 503, 504].contains(&e.status()), "{e}");
            }
        })
    });
});
