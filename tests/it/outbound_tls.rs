//! Outbound TLS: components calling `https://` and core modules opening
//! `tls://host:port`, against a local TLS server whose certificates come
//! from a test authority given to the route by `outbound_ca_file`. A good
//! certificate works (over pooled connections); another name, an unknown
//! authority, an expired certificate and a handshake that never ends each
//! fail in the guest with a log line naming the route.

use crate::harness::TestServer;
use crate::harness::tls::{TLS_BODY, TestCa, TlsServer, silent_server};

/// A server with the `fetch` component calling `https://127.0.0.1:PORT/`
/// and the `backend` module opening `tls://127.0.0.1:PORT`, trusting
/// `ca_pem` (written beside the config).
fn server_for(port: u16, ca_pem: &str) -> TestServer {
    let config = format!(
        r#"
[server]
outbound_ca_file = "test-ca.pem"

[[applications]]
file_path = "{{components}}/fetch.wasm"
method = "GET"
url_path = "/fetch"
env = {{ BACKEND_URL = "https://127.0.0.1:{port}/data" }}
allowed_outbound = ["127.0.0.1:{port}"]
connect_timeout_ms = 1000

[[applications]]
file_path = "{{samples}}/backend.wasm"
method = "GET"
url_path = "/module"
env = {{ "/env/backend" = "tls://127.0.0.1:{port}" }}
allowed_outbound = ["127.0.0.1:{port}"]
connect_timeout_ms = 1000
"#
    );
    TestServer::start_with_files(&config, &["--shards", "1"], &[("test-ca.pem", ca_pem)])
}

#[test]
fn https_with_a_trusted_certificate_works_and_is_pooled() {
    let ca = TestCa::new("serverless-wasm test CA");
    let backend = TlsServer::start(ca.server_certificate(&["127.0.0.1"], false));
    let server = server_for(backend.port, &ca.pem);
    let mut client = server.client();
    for _ in 0..3 {
        let response = client.get("/fetch");
        assert_eq!(response.status, 200, "{}", response.text());
        assert_eq!(response.header("x-backend-status"), Some("200"));
        assert_eq!(response.text(), TLS_BODY);
    }
    // Keep-alive TLS connections are pooled on the shard.
    assert_eq!(backend.connections(), 1);

    // A core module's tls:// connection: the backend echoes what it got.
    let response = server.get("/module");
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(response.text().contains("tls: hello"), "{}", response.text());
}

/// Each way a certificate can fail: the guest sees an error (502 from
/// both samples) and the log names the route and the reason.
#[test]
fn untrusted_certificates_fail_in_the_guest_with_a_log_line() {
    let ca = TestCa::new("serverless-wasm test CA");
    let stranger = TestCa::new("an authority nobody trusts");
    let cases = [
        (
            "wrong name",
            ca.server_certificate(&["other.example"], false),
            "not valid for name",
        ),
        (
            "unknown CA",
            stranger.server_certificate(&["127.0.0.1"], false),
            "UnknownIssuer",
        ),
        ("expired", ca.server_certificate(&["127.0.0.1"], true), "expired"),
    ];
    for (case, certificate, reason) in cases {
        let backend = TlsServer::start(certificate);
        let server = server_for(backend.port, &ca.pem);
        let response = server.get("/fetch");
        assert_eq!(response.status, 502, "{case}: {}", response.text());
        assert!(
            response.text().contains("TlsCertificateError"),
            "{case}: {}",
            response.text()
        );
        let line = server.logs().expect("outgoing HTTPS: TLS certificate not accepted");
        assert!(
            line.contains("route=GET /fetch") && line.contains(reason),
            "{case}: {line}"
        );

        let response = server.get("/module");
        assert_eq!(response.status, 502, "{case}: {}", response.text());
        assert!(response.text().contains("TLS"), "{case}: {}", response.text());
        let line = server.logs().expect("tcp_connect failed: TLS certificate not accepted");
        assert!(
            line.contains("route=GET /module") && line.contains(reason),
            "{case}: {line}"
        );
    }
}

#[test]
fn a_handshake_that_never_ends_times_out_within_connect_timeout() {
    let ca = TestCa::new("serverless-wasm test CA");
    let (_silent, port) = silent_server();
    let server = server_for(port, &ca.pem);
    let started = std::time::Instant::now();
    let response = server.get("/fetch");
    assert_eq!(response.status, 502, "{}", response.text());
    assert!(response.text().contains("ConnectionTimeout"), "{}", response.text());
    let line = server.logs().expect("outgoing HTTPS: TLS handshake timed out");
    assert!(line.contains("route=GET /fetch"), "{line}");
    // Bounded by connect_timeout_ms (1 s), not by the route's 10 s budget.
    assert!(started.elapsed() < std::time::Duration::from_secs(5));

    let response = server.get("/module");
    assert_eq!(response.status, 504, "{}", response.text());
    let line = server.logs().expect("tcp_connect failed: TLS handshake timed out");
    assert!(line.contains("route=GET /module"), "{line}");
}

#[test]
fn a_bad_ca_file_stops_the_start_naming_the_key() {
    let (ok, logs) = crate::harness::check(
        "listen_address = \"127.0.0.1:0\"\n[server]\noutbound_ca_file = \"/nonexistent/ca.pem\"\n",
    );
    assert!(!ok, "a missing CA file must stop the start");
    assert!(
        logs.contains("server.outbound_ca_file") && logs.contains("/nonexistent/ca.pem"),
        "{logs}"
    );
}
