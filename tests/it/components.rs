//! wasi:http components (the second guest kind), end to end: the sample
//! components built from source by `samples/components/build.sh`, served by
//! the real server over real TCP, with real backends.

use std::io::{Read, Write};
use std::time::Duration;

use crate::harness::client::format_request;
use crate::harness::{Client, EchoBackend, TestServer, check, components_dir};

/// Every sample component, plus a core-module route beside them.
fn config(extra: &str) -> String {
    format!(
        r#"
[[applications]]
file_path = "{{components}}/hello.wasm"
method = "GET"
url_path = "/hello"

[[applications]]
file_path = "{{components}}/echo.wasm"
method = "POST"
url_path = "/echo/*"
max_body_bytes = "200MiB"
timeout_ms = 60000
fuel = 100000000000
# None prepared ahead: the disconnect test counts the echo's instances.
warm_instances = 0

[[applications]]
file_path = "{{components}}/sleep.wasm"
method = "GET"
url_path = "/sleep"

[[applications]]
file_path = "{{components}}/misbehave.wasm"
method = "GET"
url_path = "/misbehave"
env = {{ GREETING = "bonjour", COLOR = "blue" }}
fuel = 50000000
memory_limit = "8MiB"
timeout_ms = 2000

[[applications]]
file_path = "{{samples}}/hello.wat"
method = "GET"
url_path = "/module"
function = "hello"
{extra}
"#
    )
}

pub(crate) fn require_components() {
    assert!(
        ["hello", "echo", "sleep", "fetch", "misbehave"]
            .iter()
            .all(|c| components_dir().join(format!("{c}.wasm")).exists()),
        "sample components are missing: run `bash samples/components/build.sh` (tests/run.sh does)"
    );
}

fn one_shard(extra: &str) -> TestServer {
    require_components();
    TestServer::start(&config(extra), &["--shards", "1"])
}

#[test]
fn hello_component_answers_with_chunked_framing_keep_alive_and_head() {
    let server = one_shard("");
    let mut client = server.client();
    for _ in 0..3 {
        let response = client.get("/hello");
        assert_eq!(response.status, 200);
        assert_eq!(response.text(), "Hello from a wasi:http component\n");
        assert_eq!(response.header("content-type"), Some("text/plain"));
        assert_eq!(response.header("transfer-encoding"), Some("chunked"));
    }
    // Pipelined, mixed with a core-module route: answers in order.
    let mut batch = format_request("GET", "/hello", &[], b"");
    batch.extend(format_request("GET", "/module", &[], b""));
    batch.extend(format_request("GET", "/hello", &[], b""));
    client.send(&batch);
    assert_eq!(client.read_response().text(), "Hello from a wasi:http component\n");
    assert_eq!(client.read_response().status, 200);
    assert_eq!(client.read_response().text(), "Hello from a wasi:http component\n");
    // HEAD: the head of a GET, no body bytes, the connection stays usable.
    client.send(&format_request("HEAD", "/hello", &[], b""));
    let head = client.read_head_response();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("transfer-encoding"), Some("chunked"));
    assert_eq!(client.get("/hello").status, 200);
    // Components are prepared at start-up too (warm_instances, default 2).
    let logs = server.stop();
    let reports = crate::harness::shard_reports(&logs, crate::harness::STOP_REPORT);
    let sleep = &reports.first().unwrap_or_else(|| panic!("{logs}"))["routes"]["GET /sleep"];
    assert_eq!(
        (sleep["requests"].as_u64(), sleep["instances_created"].as_u64()),
        (Some(0), Some(2)),
        "{logs}"
    );
}

#[test]
fn echo_component_sees_method_target_headers_and_body() {
    let server = one_shard("");
    let mut client = server.client();
    let response = client.request("POST", "/echo/a/b?x=1&y=2", &[("X-Custom", "value 1")], b"hello body");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("x-echo-method"), Some("POST"));
    assert_eq!(response.header("x-echo-path"), Some("/echo/a/b?x=1&y=2"));
    assert_eq!(response.header("x-echo-header-x-custom"), Some("value 1"));
    assert_eq!(response.body, b"hello body");
    // A chunked request body, on the same connection.
    let mut request = b"POST /echo/chunked HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    request.extend_from_slice(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    client.send(&request);
    let response = client.read_response();
    assert_eq!(response.body, b"hello world");
    // Over the route's limit: 413 before the guest runs.
    let server = one_shard("");
    let mut client = server.client();
    client.send(b"POST /echo/x HTTP/1.1\r\nHost: t\r\nContent-Length: 209715201\r\n\r\n");
    assert_eq!(client.read_response().status, 413);
}

#[test]
fn a_streamed_100_mib_body_comes_back_intact_with_server_memory_bounded() {
    let server = one_shard("");
    let rss_before = server.process.rss_kib();
    let stream = std::net::TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    const SIZE: usize = 100 << 20;
    // A deterministic pattern the reader can check without keeping it.
    let byte_at = |i: usize| (i.wrapping_mul(31) ^ (i >> 13)) as u8;
    let mut writer = stream.try_clone().unwrap();
    let upload = std::thread::spawn(move || {
        writer
            .write_all(format!("POST /echo/big HTTP/1.1\r\nHost: t\r\nContent-Length: {SIZE}\r\n\r\n").as_bytes())
            .unwrap();
        let mut chunk = vec![0u8; 256 << 10];
        let mut sent = 0;
        while sent < SIZE {
            for (k, b) in chunk.iter_mut().enumerate() {
                *b = byte_at(sent + k);
            }
            writer.write_all(&chunk).unwrap();
            sent += chunk.len();
        }
    });
    // Read the chunked response incrementally, checking every byte.
    let mut reader = std::io::BufReader::new(stream);
    let mut line = String::new();
    let mut head = String::new();
    loop {
        line.clear();
        std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("transfer-encoding: chunked"),
        "{head}"
    );
    let mut received = 0usize;
    let mut peak_rss = 0;
    let mut data = Vec::new();
    loop {
        line.clear();
        std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
        let size = usize::from_str_radix(line.trim_end(), 16).unwrap();
        data.resize(size + 2, 0);
        reader.read_exact(&mut data).unwrap();
        if size == 0 {
            break;
        }
        for (k, b) in data[..size].iter().enumerate() {
            assert_eq!(*b, byte_at(received + k), "byte {} differs", received + k);
        }
        received += size;
        if received % (8 << 20) < size {
            peak_rss = peak_rss.max(server.process.rss_kib());
        }
    }
    upload.join().unwrap();
    assert_eq!(received, SIZE);
    // The body passed through; the server never held it (100 MiB).
    let growth_mib = peak_rss.saturating_sub(rss_before) / 1024;
    assert!(growth_mib < 48, "server RSS grew by {growth_mib} MiB while streaming");
}

/// The instance counts of a fresh SIGUSR1 report (the server has one
/// shard).
fn instance_counts(server: &TestServer) -> String {
    let report = &server.stats(1)[0];
    format!(
        "live_instances={} engine_instances={}",
        report["live_instances"], report["engine_instances"]
    )
}

#[test]
fn a_client_that_disconnects_mid_stream_frees_the_instance() {
    let server = one_shard("");
    let idle = instance_counts(&server);
    let mut client = server.client();
    client.send(b"POST /echo/gone HTTP/1.1\r\nHost: t\r\nContent-Length: 50000000\r\n\r\n");
    client.send(&vec![7u8; 1 << 20]);
    let mut first = [0u8; 64];
    let n = client.stream.read(&mut first).unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200"), "the echo started answering");
    assert_ne!(
        instance_counts(&server),
        idle,
        "the echo's instance is alive while it streams"
    );
    drop(client);
    // The instance and its turn are released: back to the idle counts.
    let freed = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        instance_counts(&server) == idle
    });
    assert!(freed, "{}", server.logs().all());
    assert_eq!(server.get("/hello").status, 200);
}

#[test]
fn a_sleeping_component_does_not_block_its_shard() {
    let server = one_shard("");
    sleeping_does_not_block_the_shard(&server, "/sleep?ms=1500", "/hello");
}

/// Sends a request to `sleeper` (a guest that sleeps 1500 ms) and, while it
/// sleeps, five to `other` on the same single shard: those answer first.
pub(crate) fn sleeping_does_not_block_the_shard(server: &TestServer, sleeper_path: &str, other: &str) {
    let mut sleeper = server.client();
    sleeper.send(&format_request("GET", sleeper_path, &[], b""));
    for _ in 0..5 {
        assert_eq!(server.get(other).status, 200);
    }
    sleeper.stream.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    assert!(
        matches!(sleeper.stream.read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the sleeper answered before the others"
    );
    sleeper.stream.set_nonblocking(false).unwrap();
    let response = sleeper.read_response();
    assert_eq!(response.text(), "slept 1500 ms\n");
}

#[test]
fn misbehaving_components_get_their_answers_while_a_healthy_route_keeps_answering() {
    let server = one_shard("");
    let healthy = |server: &TestServer| {
        let response = server.get("/hello");
        assert_eq!(response.status, 200);
    };
    for (mode, status) in [("trap", 500), ("alloc", 500), ("spin", 503)] {
        let response = server.get(&format!("/misbehave?mode={mode}"));
        assert_eq!(response.status, status, "mode={mode}");
        healthy(&server);
    }
    // A guest that fails after its head went out: the body is cut short
    // and the connection closed, never completed as if all were well.
    let mut client = server.client();
    client.send(&format_request("GET", "/misbehave?mode=trap-after-head", &[], b""));
    assert!(
        client.try_read_response(false).is_err(),
        "a truncated body must not read as complete"
    );
    healthy(&server);
    // Invalid header values never reach the wire.
    let response = server.get("/misbehave?mode=bad-header");
    assert!(response.header("injected").is_none());
    assert_eq!(response.status, 500);
    healthy(&server);
    let logs = server.stop();
    assert!(logs.contains("guest ran out of fuel"), "{logs}");
    assert!(logs.contains("guest trapped"), "{logs}");
}

#[test]
fn reused_component_instances_keep_state_until_their_quota_and_never_after_a_failure() {
    let server = one_shard(
        r#"
[[applications]]
file_path = "{components}/misbehave.wasm"
method = "GET"
url_path = "/reuse"
instance = "reuse"
max_requests_per_instance = 4
max_log_bytes = 40
"#,
    );
    let count = |server: &TestServer| server.get("/reuse?mode=count").text();
    // The default gets a fresh instance every time.
    assert_eq!(server.get("/misbehave?mode=count").text(), "count=1\n");
    assert_eq!(server.get("/misbehave?mode=count").text(), "count=1\n");
    // One instance serves four requests, then a new one takes over.
    for expected in [1, 2, 3, 4, 1] {
        assert_eq!(count(&server), format!("count={expected}\n"));
    }
    // A guest that prints keeps its stdout handle open: still reused, and
    // each request gets the whole log budget (24 of 40 bytes each time).
    for _ in 0..2 {
        assert_eq!(server.get("/reuse?mode=log").text(), "logged\n");
    }
    server.logs().expect("hello stderr");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while server.logs().count("hello stderr") < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(server.logs().count("hello stdout"), 2, "{}", server.logs().all());
    assert_eq!(server.logs().count("hello stderr"), 2, "{}", server.logs().all());
    assert_eq!(count(&server), "count=2\n"); // its fourth request
    assert_eq!(count(&server), "count=1\n");
    // A failure ends the instance: the next request starts from scratch.
    assert_eq!(server.get("/reuse?mode=trap").status, 500);
    assert_eq!(count(&server), "count=1\n");
    assert_eq!(server.get("/reuse?mode=spin").status, 503);
    assert_eq!(count(&server), "count=1\n");
    // An instance that keeps a request past its handler is replaced.
    assert_eq!(server.get("/reuse?mode=keep-request").text(), "kept\n");
    assert_eq!(count(&server), "count=1\n");
    // One that returns with its response unfinished has failed: the body
    // is cut short (never ended as if complete) and the instance replaced.
    let mut client = server.client();
    client.send(&format_request("GET", "/reuse?mode=unfinished", &[], b""));
    assert!(
        client.try_read_response(false).is_err(),
        "an unfinished body must not read as complete"
    );
    server.logs().expect("guest returned without finishing its response");
    assert_eq!(count(&server), "count=1\n");
}

#[test]
fn a_spinning_component_with_fuel_to_spare_times_out() {
    let server = one_shard(
        r#"
[[applications]]
file_path = "{components}/misbehave.wasm"
method = "GET"
url_path = "/spin-long"
fuel = 100000000000
timeout_ms = 500
"#,
    );
    assert_eq!(server.get("/spin-long?mode=spin").status, 504);
    assert_eq!(server.get("/hello").status, 200);
}

#[test]
fn stdout_and_stderr_go_to_the_log_and_env_comes_from_the_route() {
    let server = one_shard("");
    assert_eq!(server.get("/misbehave?mode=log").text(), "logged\n");
    let line = server.logs().wait_for("hello stdout", Duration::from_secs(5)).unwrap();
    assert!(line.contains("GET /misbehave") && line.contains("stdout"), "{line}");
    let line = server.logs().wait_for("hello stderr", Duration::from_secs(5)).unwrap();
    assert!(line.contains("stderr"), "{line}");
    assert_eq!(
        server.get("/misbehave?mode=env").text(),
        "COLOR=blue\nGREETING=bonjour\n"
    );
}

#[test]
fn files_and_sockets_are_denied_random_works_and_trailers_come_back() {
    let server = one_shard("");
    let fs = server.get("/misbehave?mode=fs").text();
    assert!(fs.contains("read: denied") && fs.contains("list: denied"), "{fs}");
    let socket = server.get("/misbehave?mode=socket").text();
    assert!(socket.starts_with("connect: denied"), "{socket}");
    let random = server.get("/misbehave?mode=random").text();
    let values: Vec<&str> = random.lines().collect();
    assert_eq!(values.len(), 2, "{random}");
    assert!(
        values
            .iter()
            .all(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()))
    );
    assert_ne!(values[0], values[1]);
    let response = server.get("/misbehave?mode=trailers");
    assert_eq!(response.text(), "with trailers\n");
    assert_eq!(response.trailers, vec![("x-checksum".to_string(), "42".to_string())]);
}

fn fetch_route(allowed: &str, backend: &str) -> String {
    format!(
        r#"
[[applications]]
file_path = "{{components}}/fetch.wasm"
method = "GET"
url_path = "/fetch"
env = {{ BACKEND_URL = "http://{backend}/data?q=1" }}
allowed_outbound = {allowed}
"#
    )
}

#[test]
fn outgoing_http_reaches_an_allowed_backend_over_pooled_connections() {
    let backend = EchoBackend::start_http();
    let address = backend.addr.to_string();
    let server = one_shard(&fetch_route(&format!("[\"{address}\"]"), &address));
    let first = server.get("/fetch");
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.header("x-backend-status"), Some("200"));
    assert!(
        first
            .text()
            .starts_with("connection=1 request=1 method=GET target=/data?q=1"),
        "{}",
        first.text()
    );
    // The next request reuses the shard's keep-alive connection.
    let second = server.get("/fetch");
    assert!(
        second.text().starts_with("connection=1 request=2 "),
        "{}",
        second.text()
    );
    // No extra threads for any of it (no tokio pool behind the shard):
    // main, log-writer, control, the shard and its blocking-pool thread.
    assert_eq!(server.process.threads(), 4 + 2);
}

#[test]
fn outgoing_http_to_a_host_not_allowed_is_denied_in_the_guest() {
    let backend = EchoBackend::start_http();
    let server = one_shard(&fetch_route("[]", &backend.addr.to_string()));
    let response = server.get("/fetch");
    assert_eq!(response.status, 502);
    assert!(response.text().contains("HttpRequestDenied"), "{}", response.text());
    assert!(server.stop().contains("outgoing HTTP denied"));
}

#[test]
fn outgoing_http_to_a_dead_backend_fails_in_the_guest() {
    let (_held, port) = crate::harness::refusing_port();
    let address = format!("127.0.0.1:{port}");
    let server = one_shard(&fetch_route(&format!("[\"{address}\"]"), &address));
    let response = server.get("/fetch");
    assert_eq!(response.status, 502);
    assert!(response.text().contains("ConnectionRefused"), "{}", response.text());
}

#[test]
fn check_reports_components_and_refuses_what_cannot_serve() {
    require_components();
    let listen = "listen_address = \"127.0.0.1:0\"\n";
    let (ok, text) = check(&format!("{listen}{}", config("")));
    assert!(ok, "{text}");
    assert!(
        text.contains("GET /hello") && text.contains("wasi:http component"),
        "{text}"
    );
    let dir = tempfile::tempdir().unwrap();
    let other_world = dir.path().join("command.wat");
    std::fs::write(&other_world, "(component)").unwrap();
    let (ok, text) = check(&format!(
        "{listen}[[applications]]\nfile_path = \"{}\"\nmethod = \"GET\"\nurl_path = \"/x\"\n",
        other_world.display()
    ));
    assert!(!ok);
    assert!(text.contains("must export wasi:http/incoming-handler"), "{text}");
}

#[test]
fn a_component_from_another_language_runs_unchanged() {
    let python = components_dir().join("python-hello.wasm");
    assert!(python.exists(), "run `bash samples/components/build.sh` first");
    // The sample config's compile cache: the interpreter compiles once per
    // build of the samples, not once per test that serves it.
    let server = TestServer::start(
        &format!(
            "[server]\ncompile_cache_dir = \"{{components}}/compiled\"\n[[applications]]\nfile_path = \"{}\"\nmethod = \"GET\"\nurl_path = \"/py/*\"\nmemory_limit = \"128MiB\"\nfuel = 10000000000\n",
            python.display()
        ),
        &["--shards", "1"],
    );
    let response = Client::connect(server.addr).get("/py/some/path?x=1");
    assert_eq!(response.status, 200, "{}", response.text());
    let text = response.text();
    assert!(text.starts_with("Hello from Python"), "{text}");
    assert!(
        text.contains("path=/py/some/path?x=1") && text.contains("method=GET"),
        "{text}"
    );
}

#[test]
fn the_compile_cache_serves_the_next_start_and_survives_a_bad_entry() {
    use std::os::unix::fs::PermissionsExt;
    require_components();
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("compiled");
    let config = format!(
        "[server]\ncompile_cache_dir = \"{}\"\n[[applications]]\nfile_path = \"{{components}}/hello.wasm\"\nmethod = \"GET\"\nurl_path = \"/hello\"\n",
        cache.display()
    );
    let serve_once = |expected_log: &str| {
        let server = TestServer::start(&config, &["--shards", "1"]);
        server.logs().expect(expected_log);
        assert_eq!(server.get("/hello").text(), "Hello from a wasi:http component\n");
        server.stop();
    };
    let entries =
        || -> Vec<std::path::PathBuf> { std::fs::read_dir(&cache).unwrap().map(|e| e.unwrap().path()).collect() };

    serve_once("component compiled and cached");
    let stored = entries();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(stored[0].extension().is_some_and(|e| e == "cwasm"), "{stored:?}");
    let mode = std::fs::metadata(&cache).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "the cache is the server's own: mode {mode:o}");

    serve_once("component loaded from the compile cache");

    // A damaged entry (one flipped bit in its code) is compiled again and
    // replaced, never run.
    let mut entry = std::fs::read(&stored[0]).unwrap();
    let middle = entry.len() / 2;
    entry[middle] ^= 1;
    std::fs::write(&stored[0], &entry).unwrap();
    serve_once("checksum mismatch");
    assert!(std::fs::read(&stored[0]).unwrap().len() > 1000);
    serve_once("component loaded from the compile cache");

    // A directory others may write to would let them run code in the server.
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (ok, text) = check(&format!("listen_address = \"127.0.0.1:0\"\n{config}"));
    assert!(!ok);
    assert!(text.contains("may be written by other users"), "{text}");
    // So would a directory of another user (only root can make one here).
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o700)).unwrap();
    if std::os::unix::fs::chown(&cache, Some(65534), None).is_ok() {
        let (ok, text) = check(&format!("listen_address = \"127.0.0.1:0\"\n{config}"));
        assert!(!ok);
        assert!(text.contains("belongs to another user (uid 65534)"), "{text}");
    }
}
