//! Guest TCP to real backends: an echo server and redis-server, both real
//! processes on loopback.

use std::time::{Duration, Instant};

use crate::harness::{Client, EchoBackend, Redis, TestServer, free_port, refusing_port};

fn backend_route(path: &str, backend: &str, extra: &str) -> String {
    format!(
        r#"
[[applications]]
file_path = "{{samples}}/backend.wasm"
method = "GET"
url_path = "{path}"
env = {{ "/env/backend" = "{backend}" }}
{extra}
"#
    )
}

const HEALTHY: &str = "\n[[applications]]\nmethod = \"GET\"\nurl_path = \"/static\"\nstatic_body = \"ok\"\n";

#[test]
fn echo_round_trip() {
    let echo = EchoBackend::start(0);
    let config = backend_route(
        "/backend",
        &echo.addr.to_string(),
        &format!("allowed_outbound = [\"{}\"]", echo.addr),
    );
    let server = TestServer::start(&config, &["--shards", "1"]);
    let response = server.get("/backend");
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        response.text(),
        "Hello world from wasm!\nanswer from backend:\nhello\n\n"
    );
}

#[test]
fn an_original_config_without_allowed_outbound_may_reach_its_env_backend() {
    let echo = EchoBackend::start(0);
    let server = TestServer::start(
        &backend_route("/backend", &echo.addr.to_string(), ""),
        &["--shards", "1"],
    );
    assert_eq!(server.get("/backend").status, 200);
    assert!(
        server
            .logs()
            .all()
            .contains("allowing the backend address(es) in its env")
    );
}

#[test]
fn the_seed_abi_guest_talks_to_a_backend() {
    // hello_rust's `ping_backend` uses only the original ABI's tcp_connect,
    // tcp_write and tcp_read (no tcp_close): the host closes the socket.
    let echo = EchoBackend::start(0);
    let config = format!(
        "[[applications]]\nfile_path = \"{{samples}}/hello_rust.wasm\"\nfunction = \"ping_backend\"\nmethod = \"GET\"\nurl_path = \"/ping\"\nenv = {{ backend = \"{}\" }}\nallowed_outbound = [\"{}\"]\n",
        echo.addr, echo.addr
    );
    let server = TestServer::start(&config, &["--shards", "1"]);
    let baseline = server.process.open_fds();
    for _ in 0..20 {
        assert_eq!(server.get("/ping").text(), "ping\n");
    }
    assert_fds_back_to(&server, baseline);
}

#[test]
fn a_backend_that_is_down_is_a_502() {
    let (_held, port) = refusing_port();
    let nobody = format!("127.0.0.1:{port}");
    let config = backend_route("/backend", &nobody, &format!("allowed_outbound = [\"{nobody}\"]"));
    let server = TestServer::start(&config, &["--shards", "1"]);
    let response = server.get("/backend");
    assert_eq!(response.status, 502);
    assert!(response.text().contains("connection refused"), "{}", response.text());
    server.logs().expect("tcp_connect failed");
}

#[test]
fn a_slow_backend_hits_the_read_timeout_and_is_a_504() {
    let slow = EchoBackend::start(2000);
    let config = backend_route(
        "/backend",
        &slow.addr.to_string(),
        &format!("allowed_outbound = [\"{}\"]\nio_timeout_ms = 300", slow.addr),
    );
    let server = TestServer::start(&config, &["--shards", "1"]);
    let started = Instant::now();
    let response = server.get("/backend");
    assert_eq!(response.status, 504, "{}", response.text());
    assert!(response.text().contains("timed out"));
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn connections_off_the_allow_list_are_denied() {
    let echo = EchoBackend::start(0);
    let config = format!(
        r#"
[[applications]]
file_path = "{{guests}}/connect_report.wat"
method = "GET"
url_path = "/other-port"
env = {{ backend = "127.0.0.1:{other}" }}
allowed_outbound = ["{echo}"]

[[applications]]
file_path = "{{guests}}/connect_report.wat"
method = "GET"
url_path = "/allowed"
env = {{ backend = "{echo}" }}
allowed_outbound = ["{echo}"]

[[applications]]
file_path = "{{guests}}/connect_report.wat"
method = "GET"
url_path = "/nothing-allowed"
env = {{ backend = "{echo}" }}
allowed_outbound = []
"#,
        other = echo.addr.port() + 1,
        echo = echo.addr
    );
    let server = TestServer::start(&config, &["--shards", "1"]);
    assert_eq!(server.get("/allowed").text(), "fd 1");
    assert_eq!(server.get("/other-port").text(), "er-2");
    assert_eq!(server.get("/nothing-allowed").text(), "er-2");
    server.logs().expect("tcp_connect denied");
}

#[test]
fn the_server_s_own_port_is_not_reachable_unless_allowed() {
    // The route's env names the server itself; the list does not.
    let port = free_port();
    let config = format!(
        "listen_address = \"127.0.0.1:{port}\"\n[[applications]]\nfile_path = \"{{guests}}/connect_report.wat\"\nmethod = \"GET\"\nurl_path = \"/self\"\nenv = {{ backend = \"127.0.0.1:{port}\" }}\nallowed_outbound = [\"127.0.0.1:6379\"]\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, crate::harness::expand(&config)).unwrap();
    let process = crate::harness::Process::spawn(
        crate::harness::server_binary(),
        &[path.display().to_string(), "--shards".into(), "1".into()],
        &[],
    );
    assert!(
        process
            .stderr
            .wait_for("listening on", Duration::from_secs(60))
            .is_some()
    );
    let mut client = Client::connect(format!("127.0.0.1:{port}").parse().unwrap());
    assert_eq!(client.get("/self").text(), "er-2");
}

#[test]
fn a_guest_that_traps_with_open_sockets_leaks_nothing() {
    let echo = EchoBackend::start(0);
    let config = format!(
        "[[applications]]\nfile_path = \"{{guests}}/connect_trap.wat\"\nmethod = \"GET\"\nurl_path = \"/leak\"\nenv = {{ backend = \"{}\" }}\nallowed_outbound = [\"{}\"]\n{HEALTHY}",
        echo.addr, echo.addr
    );
    let server = TestServer::start(&config, &["--shards", "1"]);
    assert_eq!(server.get("/static").status, 200);
    let baseline = server.process.open_fds();
    for _ in 0..30 {
        assert_eq!(server.get("/leak").status, 500);
    }
    assert_fds_back_to(&server, baseline);
}

#[test]
fn a_slow_backend_does_not_hold_up_the_shard() {
    let slow = EchoBackend::start(1500);
    let config = format!(
        "{}{HEALTHY}",
        backend_route(
            "/slow",
            &slow.addr.to_string(),
            &format!("allowed_outbound = [\"{}\"]", slow.addr)
        )
    );
    let server = TestServer::start(&config, &["--shards", "1"]);
    let mut waiting = server.client();
    waiting.send(&crate::harness::client::format_request("GET", "/slow", &[], b""));
    assert!(
        server
            .logs()
            .wait_for("connecting to backend", Duration::from_secs(5))
            .is_some()
    );
    let started = Instant::now();
    for _ in 0..10 {
        assert_eq!(server.get("/static").status, 200);
    }
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "other requests waited {:?}",
        started.elapsed()
    );
    let response = waiting.read_response();
    assert_eq!(response.status, 200, "{}", response.text());
}

const REDIS_ROUTES: &str = r#"
[[applications]]
file_path = "{samples}/redis.wasm"
function = "counter"
method = "GET"
url_path = "/counter/*"
env = { redis = "127.0.0.1:PORT" }
allowed_outbound = ["127.0.0.1:PORT"]

[[applications]]
file_path = "{samples}/redis.wasm"
function = "kv_get"
method = "GET"
url_path = "/kv/*"
env = { redis = "127.0.0.1:PORT" }
allowed_outbound = ["127.0.0.1:PORT"]

[[applications]]
file_path = "{samples}/redis.wasm"
function = "kv_set"
method = "PUT"
url_path = "/kv/*"
env = { redis = "127.0.0.1:PORT" }
allowed_outbound = ["127.0.0.1:PORT"]

[server]
shard_header = true
"#;

#[test]
fn redis_counter_increments_across_requests_and_shards() {
    let redis = Redis::start();
    let server = TestServer::start(
        &REDIS_ROUTES.replace("PORT", &redis.port.to_string()),
        &["--shards", "2"],
    );
    let mut shards = std::collections::BTreeSet::new();
    for expected in 1..=40 {
        // A new connection each time, so the kernel spreads them over shards.
        let response = Client::connect(server.addr).get("/counter/visits");
        assert_eq!(response.status, 200, "{}", response.text());
        assert_eq!(response.text(), format!("{expected}\n"));
        shards.insert(response.header("x-serverless-shard").unwrap().to_string());
    }
    assert_eq!(shards.len(), 2, "only shards {shards:?} answered");
    assert_eq!(server.get("/counter/other").text(), "1\n");
}

#[test]
fn redis_get_and_set() {
    let redis = Redis::start();
    let server = TestServer::start(
        &REDIS_ROUTES.replace("PORT", &redis.port.to_string()),
        &["--shards", "1"],
    );
    let mut client = server.client();
    assert_eq!(client.get("/kv/colour").status, 404);
    assert_eq!(client.request("PUT", "/kv/colour", &[], b"blue").status, 200);
    assert_eq!(client.get("/kv/colour").text(), "blue");
}

#[test]
fn redis_down_is_a_502() {
    let (_held, port) = refusing_port();
    let server = TestServer::start(&REDIS_ROUTES.replace("PORT", &port.to_string()), &["--shards", "1"]);
    let response = server.get("/counter/x");
    assert_eq!(response.status, 502);
    assert!(response.text().contains("redis unavailable"));
}

/// Waits (briefly: closing is synchronous, but the last response may be
/// read before the server has dropped the request) for the descriptor
/// count to return to `baseline`.
fn assert_fds_back_to(server: &TestServer, baseline: usize) {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut now = server.process.open_fds();
    while now > baseline && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        now = server.process.open_fds();
    }
    assert!(now <= baseline, "descriptors: {baseline} before, {now} after");
}
