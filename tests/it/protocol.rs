//! Protocol errors get their status and, where framing is in doubt, a
//! closed connection; the server keeps serving everyone else.

use std::time::{Duration, Instant};

use crate::harness::TestServer;

const CONFIG: &str = r#"
[server]
header_timeout_ms = 500
body_timeout_ms = 500
max_header_bytes = 4096
max_request_line_bytes = 1024
max_body_bytes = 1024

[[applications]]
method = "GET"
url_path = "/static"
static_body = "ok"

[[applications]]
file_path = "{samples}/echo.wat"
method = "POST"
url_path = "/echo"

[[applications]]
file_path = "{samples}/echo.wat"
method = "POST"
url_path = "/small"
max_body_bytes = 10
"#;

/// Sends raw bytes on a new connection; returns the status and whether the
/// server then closed the connection.
fn answer_to(server: &TestServer, raw: &[u8]) -> (u16, bool) {
    let mut client = server.client();
    client.send(raw);
    let response = client.read_response();
    let closed = response.closes() && client.is_closed_by_server();
    (response.status, closed)
}

#[test]
fn malformed_requests_are_400_and_close() {
    let server = TestServer::start(CONFIG, &["--shards", "1"]);
    for raw in [
        &b"GET /static HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n"[..],
        b"GET /static HTTP/1.1\nHost: t\n\n",
        b"GET /static HTTP/1.1\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"GARBAGE\r\n\r\n",
    ] {
        assert_eq!(
            answer_to(&server, raw),
            (400, true),
            "{:?}",
            String::from_utf8_lossy(raw)
        );
    }
    assert_eq!(server.get("/static").status, 200);
}

#[test]
fn oversized_parts_get_413_414_431() {
    let server = TestServer::start(CONFIG, &["--shards", "1"]);
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(2000));
    assert_eq!(answer_to(&server, long_uri.as_bytes()), (414, true));
    let big_head = format!("GET /static HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n", "b".repeat(5000));
    assert_eq!(answer_to(&server, big_head.as_bytes()), (431, true));
    let big_body = format!("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n", 2000);
    assert_eq!(answer_to(&server, big_body.as_bytes()), (413, true));

    // A route's own smaller limit: the body was read, so the connection stays.
    let mut client = server.client();
    let response = client.post("/small", b"more than ten bytes");
    assert_eq!(response.status, 413);
    assert_eq!(client.post("/small", b"tiny").status, 200);
}

#[test]
fn a_slow_head_gets_408_and_a_close() {
    let server = TestServer::start(CONFIG, &["--shards", "1"]);
    let mut client = server.client();
    let started = Instant::now();
    client.send(b"GET /static HTTP/1.1\r\nHost: t\r\n");
    let response = client.read_response();
    assert_eq!(response.status, 408);
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "408 came too early: {:?}",
        started.elapsed()
    );
    assert!(client.is_closed_by_server());
}

#[test]
fn a_slow_body_gets_408() {
    let server = TestServer::start(CONFIG, &["--shards", "1"]);
    let mut client = server.client();
    client.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
    assert_eq!(client.read_response().status, 408);
}

#[test]
fn a_trapping_guest_is_a_500_and_the_connection_survives() {
    let server = TestServer::start(
        r#"
[[applications]]
file_path = "{guests}/trap.wat"
method = "GET"
url_path = "/trap"

[[applications]]
method = "GET"
url_path = "/static"
static_body = "ok"
"#,
        &["--shards", "1"],
    );
    let mut client = server.client();
    let response = client.get("/trap");
    assert_eq!(response.status, 500);
    assert_eq!(client.get("/static").text(), "ok");
    assert!(
        server
            .logs()
            .wait_for("route=GET /trap", Duration::from_secs(5))
            .is_some()
    );
    server.logs().expect("unreachable");
}

#[test]
fn an_idle_keep_alive_connection_is_closed_quietly() {
    let server = TestServer::start(
        "[server]\nkeepalive_timeout_ms = 300\n[[applications]]\nmethod = \"GET\"\nurl_path = \"/s\"\nstatic_body = \"ok\"\n",
        &["--shards", "1"],
    );
    let mut client = server.client();
    assert_eq!(client.get("/s").status, 200);
    let started = Instant::now();
    assert!(client.is_closed_by_server());
    assert!(started.elapsed() >= Duration::from_millis(250));
}
