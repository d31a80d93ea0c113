//! Running it as a service: the admin listener's metrics (read by a
//! strict OpenMetrics parser and scraped by a real Prometheus), health and readiness, the
//! access log, and the drain on SIGTERM.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::client::format_request;
use crate::harness::process::{Process, signal};
use crate::harness::{Client, TestServer, free_port, which};

/// Routes whose guests move each counter, each with a name of its own.
const ROUTES: &str = r#"
[admin]
listen_address = "127.0.0.1:0"

[[applications]]
name = "hello"
file_path = "{samples}/hello.wat"
method = "GET"
url_path = "/hello"
function = "hello"

[[applications]]
name = "trap"
file_path = "{guests}/trap.wat"
method = "GET"
url_path = "/trap"

[[applications]]
name = "spin"
file_path = "{guests}/spin.wat"
method = "GET"
url_path = "/spin"
fuel = 1000000

[[applications]]
name = "memhog"
file_path = "{guests}/memhog.wat"
method = "GET"
url_path = "/memhog"
memory_limit = "1MiB"

[[applications]]
name = "slow"
file_path = "{guests}/spin.wat"
method = "GET"
url_path = "/slow"
fuel = 100000000000
timeout_ms = 700
max_concurrency = 1
max_queue = 0
"#;

/// Waits for the server to exit by itself with `code`.
fn assert_exits(server: &mut TestServer, code: i32) {
    let exit = server.process.wait_exit(Duration::from_secs(10));
    assert_eq!(exit, Some(code), "{}", server.logs().all());
}

/// The value of one sample of the exposition (`name{labels}`), if present.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn metrics(server: &TestServer) -> String {
    let response = server.admin_get("/metrics");
    assert_eq!(response.status, 200);
    assert!(
        response
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/openmetrics-text")),
        "{:?}",
        response.header("content-type")
    );
    response.text()
}

#[test]
fn metrics_count_what_requests_did_and_parse_as_openmetrics() {
    let server = TestServer::start(ROUTES, &["--shards", "1"]);
    for _ in 0..3 {
        assert_eq!(server.get("/hello").status, 200);
    }
    assert_eq!(server.get("/trap").status, 500);
    assert_eq!(server.get("/spin").status, 503);
    assert_eq!(server.get("/memhog").status, 200);
    assert_eq!(server.get("/nowhere").status, 404);
    // One slow request holds the route's only turn; the next is refused
    // by admission (max_queue = 0): a 503 of its own counter.
    let mut slow = server.client();
    slow.send(&format_request("GET", "/slow", &[], b""));
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..4 {
        assert_eq!(server.get("/slow").status, 503);
    }
    assert_eq!(slow.read_response().status, 504);

    let text = metrics(&server);
    let expect = |series: &str, value: f64| {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    };
    expect(r#"serverless_wasm_http_requests_total{route="hello",code="200"}"#, 3.0);
    expect(r#"serverless_wasm_http_requests_total{route="trap",code="500"}"#, 1.0);
    expect(r#"serverless_wasm_http_requests_total{route="",code="404"}"#, 1.0);
    expect(
        r#"serverless_wasm_guest_failures_total{route="trap",reason="trap"}"#,
        1.0,
    );
    expect(
        r#"serverless_wasm_guest_failures_total{route="spin",reason="fuel"}"#,
        1.0,
    );
    expect(
        r#"serverless_wasm_guest_failures_total{route="slow",reason="timeout"}"#,
        1.0,
    );
    expect(r#"serverless_wasm_admission_rejections_total{route="slow"}"#, 4.0);
    expect(
        r#"serverless_wasm_http_request_duration_seconds_count{route="hello"}"#,
        3.0,
    );
    expect(r#"serverless_wasm_guest_memory_grow_denied_total{route="memhog"}"#, 1.0);
    expect(r#"serverless_wasm_build_info{version="0.1.0",wasmtime="48.0.8"}"#, 1.0);
    assert!(sample(&text, r#"serverless_wasm_guest_fuel_consumed_total{route="hello"}"#).unwrap_or(0.0) > 0.0);
    assert!(
        sample(&text, r#"serverless_wasm_open_connections{shard="0"}"#).is_some(),
        "{text}"
    );

    // A real, strict OpenMetrics parser reads every family (PyPI
    // prometheus-client; promtool 2.42 only lints the older text format).
    let mut parse = Command::new("python3")
        .args(["-c", OPENMETRICS_PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    parse.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = parse.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the OpenMetrics parser refused the exposition (pip install prometheus-client): {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("serverless_wasm_http_requests counter"), "{stdout}");
    assert!(
        stdout.contains("serverless_wasm_http_request_duration_seconds histogram"),
        "{stdout}"
    );
}

/// Parses stdin with prometheus-client's OpenMetrics parser; prints each
/// family's name and type.
const OPENMETRICS_PARSE: &str = "
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    print(family.name, family.type)
";

#[test]
fn a_real_prometheus_scrapes_the_request_counter() {
    let prometheus = which("prometheus").expect("prometheus is not installed (bash .ci/run installs it)");
    let server = TestServer::start(ROUTES, &["--shards", "1"]);
    for _ in 0..5 {
        assert_eq!(server.get("/hello").status, 200);
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: serverless-wasm\n    static_configs:\n      - targets: [\"{}\"]\n",
            server.admin_addr()
        ),
    )
    .unwrap();
    let port = free_port();
    let args: Vec<String> = vec![
        format!("--config.file={}", config.display()),
        format!("--storage.tsdb.path={}", dir.path().join("data").display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
    ];
    let _prometheus = Process::spawn(&prometheus, &args, &[]);
    let query = "/api/v1/query?query=serverless_wasm_http_requests_total%7Broute%3D%22hello%22%7D";
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            // Prometheus's own HTTP server: a plain request, read to the end.
            let request = format!("GET {query} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
            let mut answer = String::new();
            if stream.write_all(request.as_bytes()).is_ok() && stream.read_to_string(&mut answer).is_ok() {
                last = answer.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
                if answer.starts_with("HTTP/1.1 200") && last.contains(r#""value":["#) {
                    assert!(last.contains(r#""code":"200""#), "{last}");
                    assert!(last.trim_end().ends_with(r#","5"]}]}}"#), "{last}");
                    return;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("Prometheus never returned the counter; last answer: {last}");
}

#[test]
fn health_and_readiness_follow_the_server_through_a_drain() {
    let config = format!("[server]\nshutdown_delay_ms = 1500\n{ROUTES}");
    let mut server = TestServer::start(&config, &["--shards", "1"]);
    assert_eq!(server.admin_get("/readyz").status, 200);
    assert_eq!(server.admin_get("/healthz").status, 200);
    assert_eq!(server.admin_get("/metrics?x=1").status, 200);
    assert_eq!(server.admin_get("/nope").status, 404);
    let post = Client::connect(server.admin_addr()).request("POST", "/healthz", &[], b"");
    assert_eq!(post.status, 405);

    signal(server.process.pid(), libc::SIGTERM);
    server.logs().expect("stop signal");
    // At once: the balancer is told; the routes still answer during the
    // shutdown delay, the admin listener too.
    let readyz = server.admin_get("/readyz");
    assert_eq!((readyz.status, readyz.text().trim()), (503, "draining"));
    assert_eq!(server.admin_get("/healthz").status, 200);
    assert_eq!(server.get("/hello").status, 200);
    assert_exits(&mut server, 0);
}

#[test]
fn access_log_lines_match_the_requests_in_both_formats() {
    for format in ["common", "json"] {
        let config = format!("[access_log]\npath = \"access.log\"\nformat = \"{format}\"\n{ROUTES}");
        let server = TestServer::start(&config, &["--shards", "1"]);
        assert_eq!(server.get("/hello?x=1").status, 200);
        assert_eq!(server.get("/trap").status, 500);
        assert_eq!(server.get("/missing").status, 404);
        let path = server.dir().join("access.log");
        // The log writer flushes at exit; the file outlives the process.
        let mut server = server;
        assert!(server.process.terminate(Duration::from_secs(15)));
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        if format == "common" {
            // host ident authuser [date] "request" status bytes
            let re = |line: &str, request: &str, status: &str| {
                assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
                assert!(line.contains(&format!("] \"{request}\" {status} ")), "{line}");
                let bytes: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
                assert!(bytes > 100, "{line}");
            };
            re(lines[0], "GET /hello?x=1 HTTP/1.1", "200");
            re(lines[1], "GET /trap HTTP/1.1", "500");
            re(lines[2], "GET /missing HTTP/1.1", "404");
        } else {
            let entries: Vec<serde_json::Value> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
            assert_eq!(entries[0]["route"], "hello");
            assert_eq!(entries[0]["path"], "/hello?x=1");
            assert_eq!(entries[0]["status"], 200);
            assert_eq!(entries[0]["instance"], "fresh");
            assert!(entries[0]["fuel"].as_u64().is_some_and(|f| f > 0), "{}", lines[0]);
            assert_eq!(entries[0]["shard"], 0);
            assert_eq!(entries[1]["status"], 500);
            assert_eq!(entries[2]["route"], serde_json::Value::Null);
            for entry in &entries {
                for key in ["time", "client", "method", "bytes", "duration_ms"] {
                    assert!(!entry[key].is_null(), "{key} missing in {entry}");
                }
            }
        }
    }
}

#[test]
fn sigusr2_reopens_the_access_log_for_logrotate_and_sighup_is_harmless() {
    let config = format!("[access_log]\npath = \"access.log\"\n{ROUTES}");
    let mut server = TestServer::start(&config, &["--shards", "1"]);
    let path = server.dir().join("access.log");
    let rotated = server.dir().join("access.log.1");
    assert_eq!(server.get("/hello").status, 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read_to_string(&path).unwrap_or_default().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::rename(&path, &rotated).unwrap();
    signal(server.process.pid(), libc::SIGUSR2);
    server.logs().expect("SIGUSR2: reopening the access log");
    signal(server.process.pid(), libc::SIGHUP);
    server.logs().expect("SIGHUP");
    assert_eq!(server.get("/trap").status, 500);
    assert!(server.process.terminate(Duration::from_secs(15)));
    let old = std::fs::read_to_string(&rotated).unwrap();
    let new = std::fs::read_to_string(&path).unwrap();
    assert!(
        old.contains("\"GET /hello HTTP/1.1\" 200") && !old.contains("/trap"),
        "{old}"
    );
    assert!(
        new.contains("\"GET /trap HTTP/1.1\" 500") && !new.contains("/hello"),
        "{new}"
    );
}

/// A guest that computes without yielding to the shard for a while (no
/// fuel yields): the shard cannot accept meanwhile, so connections queue.
const BLOCKING: &str = r#"
[[applications]]
file_path = "{guests}/spin.wat"
method = "GET"
url_path = "/block"
fuel = 400000000
fuel_yield_interval = 400000000
timeout_ms = 10000

[[applications]]
file_path = "{samples}/hello.wat"
method = "GET"
url_path = "/hello"
function = "hello"
"#;

#[test]
fn connections_queued_when_the_server_stops_are_answered_not_reset() {
    let mut server = TestServer::start(BLOCKING, &["--shards", "1"]);
    let mut blocker = server.client();
    blocker.send(&format_request("GET", "/block", &[], b""));
    std::thread::sleep(Duration::from_millis(50));
    signal(server.process.pid(), libc::SIGTERM);
    // The shard is inside the guest: these wait in its accept queue.
    let mut queued: Vec<Client> = (0..5).map(|_| server.client()).collect();
    for client in &mut queued {
        client.send(&format_request("GET", "/hello", &[], b""));
    }
    assert_eq!(blocker.read_response().status, 503);
    for client in &mut queued {
        let response = client
            .try_read_response(false)
            .unwrap_or_else(|e| panic!("reset or closed: {e}\n{}", server.logs().all()));
        assert_eq!(response.status, 200);
    }
    assert_exits(&mut server, 0);
}

#[test]
fn sigterm_lets_requests_in_flight_finish_then_exits_0() {
    crate::components::require_components();
    let config = format!(
        "{BLOCKING}\n{}",
        crate::harness::expand(
            r#"
[[applications]]
file_path = "{components}/sleep.wasm"
method = "GET"
url_path = "/sleep"

[[applications]]
file_path = "{components}/echo.wasm"
method = "POST"
url_path = "/echo/*"
"#
        )
    );
    let mut server = TestServer::start(&config, &["--shards", "1"]);
    let mut sleeper = server.client();
    sleeper.send(&format_request("GET", "/sleep?ms=1500", &[], b""));
    // A streamed upload: half the body before the signal, half after.
    let mut uploader = server.client();
    uploader.send(b"POST /echo/x HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhello");
    std::thread::sleep(Duration::from_millis(200));
    signal(server.process.pid(), libc::SIGTERM);
    server.logs().expect("stopped accepting");
    uploader.send(b"world");
    let echoed = uploader.read_response();
    assert_eq!(echoed.status, 200);
    assert_eq!(echoed.body, b"helloworld");
    let slept = sleeper.read_response();
    assert_eq!(slept.status, 200, "{}", slept.text());
    assert_exits(&mut server, 0);
}

#[test]
fn a_second_signal_exits_1_at_once_and_says_so() {
    let mut server = TestServer::start(
        BLOCKING.replace("400000000", "40000000000").as_str(),
        &["--shards", "1"],
    );
    assert_eq!(server.get("/hello").status, 200);
    // A request that will not finish soon holds the drain.
    let mut long = server.client();
    long.send(&format_request("GET", "/block", &[], b""));
    std::thread::sleep(Duration::from_millis(100));
    signal(server.process.pid(), libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(100));
    let asked = Instant::now();
    signal(server.process.pid(), libc::SIGTERM);
    assert_exits(&mut server, 1);
    assert!(asked.elapsed() < Duration::from_secs(2), "took {:?}", asked.elapsed());
    server.logs().expect("second stop signal: exiting now");
}
