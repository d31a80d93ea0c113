//! WASI 0.3 components (`wasi:http/handler@0.3.0`), end to end: the p3
//! sample components built from source by `samples/components/build.sh`,
//! served by the real server over real TCP.

use std::time::Duration;

use crate::harness::client::format_request;
use crate::harness::{EchoBackend, TestServer, check, components_dir};

/// The p3 samples; `reuse` routes share an instance between requests.
fn config(extra: &str) -> String {
    format!(
        r#"
[[applications]]
file_path = "{{components}}/p3-hello.wasm"
method = "GET"
url_path = "/hello"

[[applications]]
file_path = "{{components}}/p3-hello.wasm"
method = "GET"
url_path = "/hello-reuse"
instance = "reuse"

[[applications]]
file_path = "{{components}}/p3-echo.wasm"
method = "POST"
url_path = "/echo"
max_body_bytes = "64MiB"
timeout_ms = 60000
fuel = 100000000000

[[applications]]
name = "shared"
file_path = "{{components}}/p3-misbehave.wasm"
method = "GET"
url_path = "/shared/*"
instance = "reuse"
warm_instances = 0
fuel = 50000000
timeout_ms = 3000
{extra}
"#
    )
}

fn require_p3_components() {
    assert!(
        ["p3-hello", "p3-echo", "p3-outbound", "p3-misbehave"]
            .iter()
            .all(|c| components_dir().join(format!("{c}.wasm")).exists()),
        "WASI 0.3 sample components are missing: run `bash samples/components/build.sh` (tests/run.sh does)"
    );
}

fn one_shard(extra: &str) -> TestServer {
    require_p3_components();
    TestServer::start(&config(extra), &["--shards", "1"])
}

/// The route's statistics from the shard's report.
fn route_stats(server: &TestServer, route: &str) -> serde_json::Value {
    server.stats(1)[0]["routes"][route].clone()
}

#[test]
fn p3_hello_answers_logs_and_is_told_apart_from_a_p2_component() {
    let server = one_shard("");
    let mut client = server.client();
    for path in ["/hello", "/hello-reuse", "/hello"] {
        let response = client.get(path);
        assert_eq!(response.status, 200);
        assert_eq!(response.text(), "Hello from a WASI 0.3 component\n");
        assert_eq!(response.header("content-length"), Some("32"));
    }
    // WASI 0.3 stdout reaches the log with the route's name.
    let line = server.logs().expect("p3-hello: serving /hello-reuse");
    assert!(line.contains("GET /hello-reuse") && line.contains("stdout"), "{line}");
    // check names the kind; a 0.3-only key on a 0.2 component is refused.
    let listen = "listen_address = \"127.0.0.1:0\"\n";
    let (ok, out) = check(&format!("{listen}{}", config("")));
    assert!(ok, "{out}");
    assert!(out.contains("wasi:http/handler@0.3"), "{out}");
    assert!(out.contains("max 128 requests, 16 at once"), "{out}");
    let p2_with_p3_key = r#"
listen_address = "127.0.0.1:0"
[[applications]]
file_path = "{components}/hello.wasm"
method = "GET"
url_path = "/p2"
instance = "reuse"
max_concurrent_requests_per_instance = 4
"#;
    let (ok, out) = check(p2_with_p3_key);
    assert!(!ok, "{out}");
    assert!(
        out.contains("max_concurrent_requests_per_instance applies only to wasi:http 0.3"),
        "{out}"
    );
}

#[test]
fn p3_echo_streams_a_body_both_ways_and_trailers_follow_the_body() {
    let server = one_shard("");
    let mut client = server.client();
    let body: Vec<u8> = (0..(3 << 20)).map(|i| (i % 251) as u8).collect();
    let response = client.post("/echo", &body);
    assert_eq!(response.status, 200);
    assert_eq!(response.body.len(), body.len());
    assert!(response.body == body, "the echoed body differs");
    // A chunked request: the echo answers chunked (no content-length).
    let mut request = b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    request.extend_from_slice(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    client.send(&request);
    let response = client.read_response();
    assert_eq!(response.header("transfer-encoding"), Some("chunked"));
    assert_eq!(response.body, b"hello world");
    // Trailers a guest sets through its trailers future come after the body.
    let response = server.get("/shared/trailers");
    assert_eq!(response.text(), "with trailers\n");
    assert_eq!(response.trailers, vec![("x-checksum".to_string(), "42".to_string())]);
}

#[test]
fn a_slow_reader_holds_back_the_guest_not_the_servers_memory() {
    let server = one_shard("");
    let rss_before = server.process.rss_kib();
    let mut client = server.client();
    // 16 MiB made and streamed by the guest in 64 KiB chunks, not read at
    // first.
    let (chunks, size) = (256usize, 65536usize);
    client.send(&format_request(
        "GET",
        &format!("/shared/stream?chunks={chunks}&size={size}"),
        &[],
        b"",
    ));
    std::thread::sleep(Duration::from_millis(500));
    let rss_while_blocked = server.process.rss_kib();
    let response = client.read_response();
    assert_eq!(response.status, 200);
    assert_eq!(response.body.len(), chunks * size);
    assert!(response.body.starts_with(b"aaaa") && response.body.ends_with(&[b'a' + (255 % 26) as u8; 4]));
    // The server held a few chunks at most, not the body.
    let grew_kib = rss_while_blocked.saturating_sub(rss_before);
    assert!(
        grew_kib < 8 * 1024,
        "the server buffered the body: RSS grew {grew_kib} KiB"
    );
}

#[test]
fn concurrent_requests_share_one_instance() {
    let server = one_shard("");
    // Ten requests that sleep on the shard's timers, all in flight at once.
    let mut sleepers: Vec<_> = (0..10)
        .map(|_| {
            let mut client = server.client();
            client.send(&format_request("GET", "/shared/sleep?ms=2500", &[], b""));
            client
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let report = &server.stats(1)[0];
    assert_eq!(report["in_flight"], 10, "{report}");
    let shared = &report["routes"]["shared"];
    assert_eq!(shared["instances_created"], 1, "one instance serves the ten: {shared}");
    assert_eq!(shared["live_instances"], 1, "{shared}");
    // Meanwhile the shard answers others.
    assert_eq!(server.get("/hello").status, 200);
    for sleeper in &mut sleepers {
        assert_eq!(sleeper.read_response().text(), "slept 2500 ms\n");
    }
    assert_eq!(route_stats(&server, "shared")["instances_created"], 1);
}

#[test]
fn an_instance_serves_its_quota_then_a_new_one_takes_over_and_fresh_gets_one_each() {
    let server = one_shard(
        r#"
[[applications]]
name = "quota"
file_path = "{components}/p3-misbehave.wasm"
method = "GET"
url_path = "/quota/*"
instance = "reuse"
max_requests_per_instance = 3
max_concurrent_requests_per_instance = 2
warm_instances = 0
"#,
    );
    for _ in 0..7 {
        assert_eq!(server.get("/quota/x").text(), "ok\n");
    }
    assert_eq!(route_stats(&server, "quota")["instances_created"], 3);
    // `fresh` (the default): an instance per request.
    for _ in 0..4 {
        assert_eq!(server.get("/hello").status, 200);
    }
    let hello = route_stats(&server, "GET /hello");
    // Two are prepared at start (warm_instances), one per request after.
    assert_eq!(hello["instances_created"], 4, "{hello}");
}

#[test]
fn a_failure_ends_the_shared_instance_and_the_next_requests_get_a_new_one() {
    let server = one_shard("");
    let trap_alone = server.get("/shared/trap");
    assert_eq!(trap_alone.status, 500, "alone in its instance, a trap is its own 500");
    let spin_alone = server.get("/shared/spin");
    assert_eq!(spin_alone.status, 503, "out of fuel");
    assert_eq!(server.get("/shared/x").text(), "ok\n");

    // Three requests sleeping in one instance when another traps in it.
    let mut sleepers: Vec<_> = (0..3)
        .map(|_| {
            let mut client = server.client();
            client.send(&format_request("GET", "/shared/sleep?ms=2000", &[], b""));
            client
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let trap = server.get("/shared/trap");
    for sleeper in &mut sleepers {
        assert_eq!(sleeper.read_response().status, 503);
    }
    assert!(matches!(trap.status, 500 | 503), "{}", trap.status);
    server
        .logs()
        .expect("ended with its guest instance, which another request failed: guest trapped");
    // The next request gets a new instance; other routes never noticed.
    assert_eq!(server.get("/shared/x").text(), "ok\n");
    assert_eq!(server.get("/hello").status, 200);
    let shared = route_stats(&server, "shared");
    assert_eq!(shared["instances_created"], 4, "{shared}");
    assert_eq!(shared["live_instances"], 1, "{shared}");
}

#[test]
fn a_deadline_ends_the_request_at_fault_with_504_and_its_neighbours_with_503() {
    let server = one_shard(
        r#"
[[applications]]
name = "deadline"
file_path = "{components}/p3-misbehave.wasm"
method = "GET"
url_path = "/deadline/*"
instance = "reuse"
warm_instances = 0
timeout_ms = 1500
fuel = 1000000000000
"#,
    );
    // A spinner with fuel to spare, then a sleeper in the same instance:
    // the spinner's deadline comes first and ends the instance.
    let mut spinner = server.client();
    spinner.send(&format_request("GET", "/deadline/spin", &[], b""));
    std::thread::sleep(Duration::from_millis(200));
    let mut sleeper = server.client();
    sleeper.send(&format_request("GET", "/deadline/sleep?ms=5000", &[], b""));
    assert_eq!(spinner.read_response().status, 504);
    assert_eq!(sleeper.read_response().status, 503);
    server
        .logs()
        .expect("ended with its guest instance, which another request failed: guest exceeded its timeout");
    assert_eq!(server.get("/deadline/x").text(), "ok\n");
    server.logs().expect("guest exceeded its timeout");
}

#[test]
fn p3_stderr_reaches_the_log_and_sleep_does_not_block_the_shard() {
    let server = one_shard("");
    assert_eq!(server.get("/shared/log").text(), "logged\n");
    let line = server.logs().expect("p3-misbehave: a line on stderr");
    assert!(line.contains("shared") && line.contains("stderr"), "{line}");
    crate::components::sleeping_does_not_block_the_shard(&server, "/shared/sleep?ms=1500", "/hello");
}

#[test]
fn p3_outbound_calls_and_sleeps_at_once_under_the_routes_policy() {
    require_p3_components();
    let backend = EchoBackend::start_http();
    let route = format!(
        r#"
[[applications]]
file_path = "{{components}}/p3-outbound.wasm"
method = "GET"
url_path = "/out"
instance = "reuse"
allowed_outbound = ["{}"]
"#,
        backend.addr
    );
    let server = TestServer::start(&config(&route), &["--shards", "1"]);
    let mut client = server.client();
    for n in 1..=3 {
        let response = client.get(&format!("/out?url=http://{}/item/{n}&sleep_ms=100", backend.addr));
        assert_eq!(response.status, 200, "{}", response.text());
        let text = response.text();
        assert!(text.starts_with("fetched") && text.contains("status 200"), "{text}");
        assert!(text.contains(&format!("/item/{n}")), "{text}");
        assert!(text.contains("slept 100 ms"), "{text}");
    }
    // Keep-alive connections to the backend are pooled on the shard: the
    // backend saw one connection for the three requests.
    let text = client
        .get(&format!("/out?url=http://{}/last&sleep_ms=0", backend.addr))
        .text();
    assert!(text.contains("connection=1 request=4"), "{text}");
    // A host the route does not allow fails in the guest.
    let response = client.get("/out?url=http://127.0.0.1:9/x&sleep_ms=0");
    assert_eq!(response.status, 502);
    assert!(response.text().contains("HttpRequestDenied"), "{}", response.text());
    server.logs().expect("outgoing HTTP denied: not in allowed_outbound");
}

#[test]
fn serving_p3_components_starts_no_thread() {
    // As the foundation test counts them: main, log-writer, control, and
    // per shard its executor and glommio's blocking thread. WASI 0.3's
    // sleeps, stdio and concurrent instances all run on the shard.
    let server = one_shard("");
    let mut sleeper = server.client();
    sleeper.send(&format_request("GET", "/shared/sleep?ms=300", &[], b""));
    assert_eq!(server.get("/shared/log").text(), "logged\n");
    assert_eq!(server.get("/hello-reuse").status, 200);
    assert_eq!(sleeper.read_response().status, 200);
    let names = server.process.thread_names();
    assert_eq!(names.len(), 4 + 2, "{names:?}");
}

#[test]
fn an_abandoned_request_is_still_bounded_by_its_deadline() {
    let server = one_shard(
        r#"
[[applications]]
name = "abandon"
file_path = "{components}/p3-misbehave.wasm"
method = "GET"
url_path = "/abandon/*"
warm_instances = 0
timeout_ms = 1000
"#,
    );
    // The client leaves while the guest sleeps for a minute: the instance
    // still ends at the request's deadline, not after the guest's sleep.
    let mut client = server.client();
    client.send(&format_request("GET", "/abandon/sleep?ms=60000", &[], b""));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(route_stats(&server, "abandon")["live_instances"], 1);
    drop(client);
    let ended = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        route_stats(&server, "abandon")["live_instances"] == 0
    });
    assert!(ended, "the abandoned instance lives on: {}", server.logs().all());
    server.logs().expect("guest instance ended: guest exceeded its timeout");
    assert_eq!(server.get("/abandon/x").text(), "ok\n");
}
