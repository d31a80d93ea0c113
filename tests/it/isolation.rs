//! Misbehaving guests get their documented answer while a healthy route on
//! the same single shard keeps answering; instances are recycled by policy.

use std::io::Read;
use std::time::{Duration, Instant};

use crate::harness::{Client, TestServer};

/// Every misbehaving guest of the suite, plus a healthy route.
const SUITE: &str = r#"
[[applications]]
file_path = "{samples}/hello.wat"
method = "GET"
url_path = "/healthy"
function = "hello"

[[applications]]
file_path = "{guests}/spin.wat"
method = "GET"
url_path = "/spin"

[[applications]]
file_path = "{guests}/spin_logged.wat"
method = "GET"
url_path = "/spin-long"
fuel = 100000000000
timeout_ms = 1500

[[applications]]
file_path = "{guests}/trap.wat"
method = "GET"
url_path = "/trap"

[[applications]]
file_path = "{guests}/memhog.wat"
method = "GET"
url_path = "/memhog"
memory_limit = "4MiB"

[[applications]]
file_path = "{guests}/recursion.wat"
method = "GET"
url_path = "/recursion"

[[applications]]
file_path = "{guests}/bigbody.wat"
method = "GET"
url_path = "/bigbody"

[[applications]]
file_path = "{guests}/crlf_header.wat"
method = "GET"
url_path = "/crlf"

[[applications]]
file_path = "{guests}/bad_status.wat"
method = "GET"
url_path = "/bad-status"

[[applications]]
file_path = "{guests}/log_flood.wat"
method = "GET"
url_path = "/log-flood"
max_log_bytes = 2000

[[applications]]
file_path = "{guests}/oob_pointer.wat"
method = "GET"
url_path = "/oob"
"#;

/// Each misbehaving route: its status and a piece of its log line.
const EXPECTED: &[(&str, u16, &str)] = &[
    ("/spin", 503, "guest ran out of fuel"),
    ("/trap", 500, "unreachable"),
    ("/memhog", 200, ""),
    ("/recursion", 500, "call stack exhausted"),
    ("/bigbody", 500, "exceeds max_response_bytes"),
    ("/crlf", 500, "invalid value for header X-Test"),
    ("/bad-status", 500, "invalid status 1000"),
    ("/log-flood", 200, "guest log limit (max_log_bytes) reached"),
    ("/oob", 500, "out-of-bounds buffer"),
];

#[test]
fn each_misbehaving_guest_gets_its_answer_and_the_shard_serves_on() {
    let server = TestServer::start(SUITE, &["--shards", "1"]);
    let mut healthy = server.client();
    for (path, status, log) in EXPECTED {
        let response = server.get(path);
        assert_eq!(response.status, *status, "{path}: {}", response.text());
        if !log.is_empty() {
            let route = format!("route=GET {path}");
            let line = server.logs().wait_for(log, Duration::from_secs(5));
            assert!(
                line.as_ref().is_some_and(|l| l.contains(&route)),
                "{path}: no log line with {log:?}:\n{}",
                server.logs().all()
            );
        }
        assert_eq!(healthy.get("/healthy").status, 200, "after {path}");
    }
    assert_eq!(server.get("/memhog").text(), "refused");
    // The header injection never reached the wire.
    assert!(server.get("/crlf").header("injected").is_none());
    // The flood was cut: 2000 bytes at 100 bytes a message is 20 lines.
    let flood_lines = server.logs().count("flood flood");
    assert!((1..=40).contains(&flood_lines), "{flood_lines} flood lines logged");
}

#[test]
fn a_spinning_guest_does_not_block_its_shard_and_times_out() {
    let server = TestServer::start(SUITE, &["--shards", "1"]);
    let mut spinner = server.client();
    spinner.send(&crate::harness::client::format_request("GET", "/spin-long", &[], b""));
    let started = Instant::now();
    assert!(server.logs().wait_for("spinning", Duration::from_secs(5)).is_some());

    // While it spins, the same (only) shard answers another request...
    let mut healthy = server.client();
    assert_eq!(healthy.get("/healthy").status, 200);
    let healthy_done = started.elapsed();
    // ...and the spinner has not answered yet: it is still in flight.
    spinner.stream.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let pending = matches!(spinner.stream.read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    spinner.stream.set_nonblocking(false).unwrap();
    assert!(pending, "the spinner answered before the healthy request completed");
    assert!(
        healthy_done < Duration::from_millis(1000),
        "healthy request took {healthy_done:?}"
    );

    let response = spinner.read_response();
    assert_eq!(response.status, 504);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1400) && elapsed < Duration::from_secs(5),
        "timeout after {elapsed:?}"
    );
    assert!(
        server
            .logs()
            .wait_for("guest exceeded its timeout", Duration::from_secs(2))
            .is_some()
    );
}

#[test]
fn memory_stays_bounded_after_many_misbehaving_requests() {
    let server = TestServer::start(SUITE, &["--shards", "1"]);
    let round = |server: &TestServer| {
        for _ in 0..10 {
            for (path, status, _) in EXPECTED {
                assert_eq!(server.get(path).status, *status, "{path}");
            }
        }
    };
    round(&server);
    let after_first = server.process.rss_kib();
    round(&server);
    round(&server);
    let after_third = server.process.rss_kib();
    assert!(
        after_third <= after_first + 16 * 1024,
        "RSS grew from {after_first} KiB to {after_third} KiB over two more rounds"
    );
    assert_eq!(server.get("/healthy").status, 200);
}

const COUNTERS: &str = r#"
[[applications]]
file_path = "{guests}/counter.wat"
method = "GET"
url_path = "/fresh"

[[applications]]
file_path = "{guests}/counter.wat"
method = "GET"
url_path = "/reuse"
instance = "reuse"

[[applications]]
file_path = "{guests}/counter.wat"
method = "GET"
url_path = "/reuse-twice"
instance = "reuse"
max_requests_per_instance = 2
warm_instances = 0

[[applications]]
file_path = "{guests}/counter_trap.wat"
method = "GET"
url_path = "/count/*"
instance = "reuse"
warm_instances = 0
"#;

#[test]
fn fresh_instances_share_nothing_between_requests() {
    let server = TestServer::start(COUNTERS, &["--shards", "1"]);
    let mut client = server.client();
    for _ in 0..5 {
        assert_eq!(client.get("/fresh").text(), "1");
    }
}

#[test]
fn reused_instances_keep_state_until_their_quota() {
    let server = TestServer::start(COUNTERS, &["--shards", "1"]);
    let mut client = server.client();
    let counts: Vec<String> = (0..4).map(|_| client.get("/reuse").text()).collect();
    assert_eq!(counts, ["1", "2", "3", "4"]);
    let counts: Vec<String> = (0..5).map(|_| client.get("/reuse-twice").text()).collect();
    assert_eq!(counts, ["1", "2", "1", "2", "1"]);
}

#[test]
fn a_trapped_instance_is_never_reused() {
    let server = TestServer::start(COUNTERS, &["--shards", "1"]);
    let mut client = server.client();
    assert_eq!(client.get("/count/a").text(), "1");
    assert_eq!(client.get("/count/a").text(), "2");
    assert_eq!(client.get("/count/trap").status, 500);
    assert_eq!(client.get("/count/a").text(), "1");
}

#[test]
fn concurrency_beyond_the_limit_and_queue_is_a_503() {
    let server = TestServer::start(
        r#"
[[applications]]
file_path = "{guests}/spin_logged.wat"
method = "GET"
url_path = "/spin"
fuel = 100000000000
timeout_ms = 1000
max_concurrency = 1
max_queue = 1

[[applications]]
method = "GET"
url_path = "/static"
static_body = "ok"
"#,
        &["--shards", "1"],
    );
    let mut first = server.client();
    first.send(&crate::harness::client::format_request("GET", "/spin", &[], b""));
    assert!(server.logs().wait_for("spinning", Duration::from_secs(5)).is_some());
    // The second waits in the queue (one place); the third finds it full.
    let mut second = server.client();
    second.send(&crate::harness::client::format_request("GET", "/spin", &[], b""));
    // The queue is per shard: give the second request time to be read and queued.
    let mut probe = Client::connect(server.addr);
    assert_eq!(probe.get("/static").status, 200);
    let third = server.get("/spin");
    assert_eq!(third.status, 503);
    server.logs().expect("queue full");
    assert_eq!(first.read_response().status, 504);
    // The queued request ran after the first, or timed out waiting: either
    // way it got an answer, not a hang.
    assert!([503, 504].contains(&second.read_response().status));
}
