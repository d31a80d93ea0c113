//! Hostile clients: slowloris, pipelining without reading, connection
//! floods, descriptor exhaustion, request smuggling and abrupt endings. The
//! server answers what deserves an answer, bounds what it holds, leaks
//! nothing, and keeps serving everyone else on the same shard.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use crate::harness::client::format_request;
use crate::harness::{Client, EchoBackend, TestServer};

const ROUTES: &str = r#"
[[applications]]
method = "GET"
url_path = "/static"
static_body = "ok"

[[applications]]
method = "GET"
url_path = "/big"
static_body = "BIG"

[[applications]]
file_path = "{samples}/echo.wat"
method = "POST"
url_path = "/echo"

[[applications]]
file_path = "{guests}/spin_logged.wat"
method = "GET"
url_path = "/spin"
fuel = 100000000000
timeout_ms = 800
"#;

fn server(extra_server_settings: &str) -> TestServer {
    TestServer::start(
        &format!("[server]\n{extra_server_settings}\n{ROUTES}"),
        &["--shards", "1"],
    )
}

/// A healthy request must complete quickly while the attack runs.
fn assert_healthy(server: &TestServer) {
    let started = Instant::now();
    assert_eq!(server.get("/static").text(), "ok");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "healthy request took {:?}",
        started.elapsed()
    );
}

#[test]
fn slowloris_connections_get_408_while_others_are_served() {
    let server = server("header_timeout_ms = 1000");
    let mut slow: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut s = TcpStream::connect(server.addr).unwrap();
            s.write_all(b"GET /static HTTP/1.1\r\nHost: t\r\n").unwrap();
            s
        })
        .collect();
    let started = Instant::now();
    // Trickle a header byte every 100 ms on each, checking service meanwhile.
    while started.elapsed() < Duration::from_millis(700) {
        for s in &mut slow {
            let _ = s.write_all(b"X");
        }
        assert_healthy(&server);
        std::thread::sleep(Duration::from_millis(100));
    }
    for s in slow {
        let mut client = Client::from_stream(s);
        client.stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let response = client.try_read_response(false).expect("a 408 answer");
        assert_eq!(response.status, 408);
        assert!(client.is_closed_by_server());
    }
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_healthy(&server);
}

#[test]
fn a_slow_body_gets_408_while_others_are_served() {
    let server = server("body_timeout_ms = 800");
    let mut slow: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut s = TcpStream::connect(server.addr).unwrap();
            s.write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n")
                .unwrap();
            s
        })
        .collect();
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(500) {
        for s in &mut slow {
            let _ = s.write_all(b"y");
        }
        assert_healthy(&server);
        std::thread::sleep(Duration::from_millis(100));
    }
    for s in slow {
        let mut client = Client::from_stream(s);
        client.stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(client.try_read_response(false).expect("a 408 answer").status, 408);
    }
}

#[test]
fn a_client_that_never_reads_is_throttled_not_buffered() {
    // Each 40-byte request asks for a 1 MiB answer: if the server kept
    // reading and answering, its memory would grow by a MiB per request.
    let big = "B".repeat(1 << 20);
    let server = TestServer::start(
        &format!(
            "[server]\nwrite_timeout_ms = 1000\n[[applications]]\nmethod = \"GET\"\nurl_path = \"/big\"\nstatic_body = \"{big}\"\n{}",
            "[[applications]]\nmethod = \"GET\"\nurl_path = \"/static\"\nstatic_body = \"ok\"\n"
        ),
        &["--shards", "1"],
    );
    let baseline = server.process.rss_kib();
    let mut greedy = TcpStream::connect(server.addr).unwrap();
    greedy.set_write_timeout(Some(Duration::from_millis(500))).unwrap();
    // 4 KiB of padding per request, so that 20,000 of them (80 MB) are far
    // more than the kernel's socket buffers can hold.
    let padding = "p".repeat(4096);
    let batch = format_request("GET", "/big", &[("X-Padding", &padding)], b"").repeat(100);
    let mut sent = 0usize;
    // Write until the kernel's buffers are full and the server has stopped
    // reading (the write times out), or 20,000 requests at most.
    while sent < 20_000 {
        match greedy.write_all(&batch) {
            Ok(()) => sent += 100,
            Err(_) => break,
        }
    }
    assert!(
        sent < 20_000,
        "the server kept reading: {sent} requests accepted without any read"
    );
    let rss = server.process.rss_kib();
    assert!(
        rss < baseline + 64 * 1024,
        "RSS grew from {baseline} KiB to {rss} KiB for {sent} unread requests"
    );
    assert_healthy(&server);
    // The write timeout drops the greedy connection eventually.
    greedy.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut sink = vec![0u8; 1 << 20];
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut closed = false;
    std::thread::sleep(Duration::from_secs(2));
    while Instant::now() < deadline {
        match greedy.read(&mut sink) {
            Ok(0) | Err(_) => {
                closed = true;
                break;
            }
            Ok(_) => {}
        }
    }
    assert!(closed, "the greedy connection was never closed");
}

#[test]
fn past_the_connection_limit_new_connections_are_refused_and_old_ones_work() {
    let server = server("max_connections_per_shard = 40");
    let mut held: Vec<Client> = (0..40).map(|_| Client::connect(server.addr)).collect();
    // Make sure every held connection has been accepted and counted.
    for client in held.iter_mut().step_by(8) {
        assert_eq!(client.get("/static").status, 200);
    }
    for _ in 0..5 {
        let mut extra = Client::connect(server.addr);
        let started = Instant::now();
        let response = extra.try_read_response(false).expect("a 503 answer");
        assert_eq!(response.status, 503);
        assert!(extra.is_closed_by_server());
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    // Established connections keep working.
    assert_eq!(held[3].get("/static").status, 200);
    // Capacity returns when connections go.
    held.truncate(30);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut client = Client::connect(server.addr);
        client.send(&format_request("GET", "/static", &[], b""));
        let response = client.read_response();
        if response.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "capacity did not return");
        std::thread::sleep(Duration::from_millis(50));
    }
    server.logs().expect("connection limit reached");
}

#[test]
fn descriptor_exhaustion_backs_off_and_recovers() {
    // A low open-files limit (soft and hard, so the server cannot raise it).
    let config = format!("listen_address = \"127.0.0.1:0\"\n{}", crate::harness::expand(ROUTES));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config).unwrap();
    let script = format!(
        "ulimit -n 64 && exec {} {} --shards 1",
        crate::harness::server_binary().display(),
        path.display()
    );
    let mut process = crate::harness::Process::spawn(
        std::path::Path::new("/bin/sh"),
        &["-c".into(), script],
        &[("RUST_LOG", "info")],
    );
    let line = process
        .stderr
        .wait_for("listening on ", Duration::from_secs(60))
        .expect("server started");
    let addr: std::net::SocketAddr = line
        .split("listening on ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();

    // Use up the descriptors with idle connections.
    let hogs: Vec<TcpStream> = (0..100).filter_map(|_| TcpStream::connect(addr).ok()).collect();
    assert!(
        process
            .stderr
            .wait_for("Too many open files", Duration::from_secs(5))
            .is_some(),
        "{}",
        process.stderr.all()
    );
    // Backing off, not spinning: little CPU while stuck.
    let cpu_before = cpu_seconds(process.pid());
    std::thread::sleep(Duration::from_secs(2));
    let cpu_used = cpu_seconds(process.pid()) - cpu_before;
    assert!(cpu_used < 0.5, "{cpu_used} s of CPU in 2 s while out of descriptors");
    // Logged once per interval, not once per attempt.
    let errors = process.stderr.count("accept failed");
    assert!(errors <= 6, "{errors} accept error lines in ~2 s");

    drop(hogs);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(stream) = TcpStream::connect(addr) {
            let mut client = Client::from_stream(stream);
            client.send(&format_request("GET", "/static", &[], b""));
            if let Ok(response) = client.try_read_response(false)
                && response.status == 200
            {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the server did not recover:\n{}",
            process.stderr.all()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        process.terminate(Duration::from_secs(15)),
        "the server did not stop cleanly"
    );
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

#[test]
fn smuggling_and_framing_vectors_get_the_right_status() {
    let server = server("max_request_line_bytes = 2048");
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "u".repeat(3000));
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("CL.TE", b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG".to_vec(), 400),
        ("TE.CL", b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n".to_vec(), 400),
        ("two Content-Lengths", b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde".to_vec(), 400),
        ("chunked, identity", b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n".to_vec(), 501),
        ("unknown coding", b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: rot13\r\n\r\n".to_vec(), 501),
        ("obs-fold", b"GET /static HTTP/1.1\r\nHost: t\r\nX-A: a\r\n  folded\r\n\r\n".to_vec(), 400),
        ("chunk size overflow", b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n".to_vec(), 400),
        ("bare LF", b"GET /static HTTP/1.1\nHost: t\n\n".to_vec(), 400),
        ("NUL in a header", b"GET /static HTTP/1.1\r\nHost: t\r\nX-A: a\0b\r\n\r\n".to_vec(), 400),
        ("control byte in a header", b"GET /static HTTP/1.1\r\nHost: t\r\nX-A: a\x07b\r\n\r\n".to_vec(), 400),
        ("space before colon", b"GET /static HTTP/1.1\r\nHost: t\r\nContent-Length : 0\r\n\r\n".to_vec(), 400),
        ("over-long URI", long_uri.into_bytes(), 414),
    ];
    for (name, raw, status) in cases {
        let mut client = server.client();
        client.send(&raw);
        // A second request follows on the same connection: a server that
        // saw two requests would answer it.
        client.send(&format_request("GET", "/static", &[], b""));
        let response = client
            .try_read_response(false)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(response.status, status, "{name}");
        assert!(response.closes(), "{name}: the connection must close");
        assert!(client.is_closed_by_server(), "{name}: a second response followed");
    }
    // The absolute form is valid HTTP/1.1 and is routed by its path.
    let mut client = server.client();
    client.send(b"GET http://example.com/static HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert_eq!(client.read_response().text(), "ok");
    assert_healthy(&server);
}

/// Closes a socket with a TCP reset instead of a FIN.
fn reset(stream: TcpStream) {
    let socket = socket2::Socket::from(stream);
    socket.set_linger(Some(Duration::ZERO)).unwrap();
    drop(socket);
}

#[test]
fn abrupt_endings_leak_nothing() {
    let echo = EchoBackend::start(2000);
    let config = format!(
        "[server]\ninstance_slots_per_shard = 8\n{ROUTES}\n[[applications]]\nfile_path = \"{{samples}}/backend.wasm\"\nmethod = \"GET\"\nurl_path = \"/backend\"\nenv = {{ \"/env/backend\" = \"{}\" }}\nallowed_outbound = [\"{}\"]\ntimeout_ms = 1000\n",
        echo.addr, echo.addr
    );
    let server = TestServer::start(&config, &["--shards", "1"]);
    assert_healthy(&server);
    let baseline = server.process.open_fds();

    for _ in 0..10 {
        // Mid-request (half a head).
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.write_all(b"GET /static HTTP/1.1\r\nHo").unwrap();
        reset(s);
        // Mid-body.
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc")
            .unwrap();
        reset(s);
        // While its guest runs (spinning, and waiting on a slow backend).
        for path in ["/spin", "/backend"] {
            let mut s = TcpStream::connect(server.addr).unwrap();
            s.write_all(&format_request("GET", path, &[], b"")).unwrap();
            std::thread::sleep(Duration::from_millis(20));
            reset(s);
        }
        // Mid-response (a request, then a reset before reading).
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.write_all(&format_request("POST", "/echo", &[], &[b'x'; 200_000]))
            .unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        reset(s);
    }
    // Guests finish (timeout 800-1000 ms), sockets close, instances return.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut fds = server.process.open_fds();
    while fds > baseline && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        fds = server.process.open_fds();
    }
    assert!(fds <= baseline, "descriptors: {baseline} before, {fds} after");
    // Eight instance slots in all: had any leaked, these would fail.
    for _ in 0..20 {
        assert_eq!(server.client().post("/echo", b"still fine").status, 200);
    }
    assert_healthy(&server);
}
