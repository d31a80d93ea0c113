//! Parsing and validation without the filesystem: guests are `static_body`
//! routes here; wasm routes are covered by `tests/it/config_check.rs`.

use std::path::Path;
use std::time::Duration;

use super::*;

fn parse_ok(text: &str) -> Config {
    parse(Path::new("test.toml"), text).unwrap_or_else(|e| panic!("{e}"))
}

fn parse_err(text: &str) -> String {
    parse(Path::new("test.toml"), text)
        .expect_err("must be refused")
        .to_string()
}

#[test]
fn defaults_apply_when_the_server_table_is_absent() {
    let config = parse_ok("listen_address = \"127.0.0.1:8080\"\n");
    assert_eq!(config.listen_address.port(), 8080);
    assert!(config.routes.is_empty());
    assert_eq!(config.server.framing.max_body, DEFAULT_MAX_BODY_BYTES);
    assert_eq!(config.server.timeouts.header, DEFAULT_HEADER_TIMEOUT);
    assert_eq!(config.server.shards, None);
}

#[test]
fn server_settings_accept_sizes_with_units() {
    let config = parse_ok(
        "listen_address = \"127.0.0.1:0\"\n[server]\nmax_body_bytes = \"2MiB\"\nheader_timeout_ms = 250\npreempt_timer_us = 100\n",
    );
    assert_eq!(config.server.framing.max_body, 2 << 20);
    assert_eq!(config.server.timeouts.header, Duration::from_millis(250));
    assert_eq!(config.server.preempt_timer, Duration::from_micros(100));
}

#[test]
fn static_routes_and_prefixes() {
    let config = parse_ok(
        "listen_address = \"127.0.0.1:0\"\n[[applications]]\nmethod = \"GET\"\nurl_path = \"/files/*\"\nstatic_body = \"x\"\nstatus = 201\n",
    );
    let route = &config.routes[0];
    assert_eq!(route.path, RoutePath::Prefix("/files".into()));
    assert_eq!(route.label(), "GET /files/*");
    match &route.handler {
        HandlerSpec::Static(s) => assert_eq!((s.status, s.content_type.as_str()), (201, DEFAULT_STATIC_CONTENT_TYPE)),
        HandlerSpec::Wasm(_) => panic!("static route expected"),
    }
}

#[test]
fn errors_name_line_column_and_key() {
    let err = parse_err("listen_address = \"127.0.0.1:0\"\n[server]\nmax_body_bytes = \"12 parsecs\"\n");
    assert!(err.starts_with("test.toml:3:"), "{err}");
    assert!(err.contains("invalid size unit"), "{err}");
    let err = parse_err("listen_address = \"127.0.0.1:0\"\n[server]\nmax_header_bytes = 300\n");
    assert!(
        err.contains("server.max_header_bytes") && err.contains("at least max_request_line_bytes"),
        "{err}"
    );
    let err = parse_err(
        "listen_address = \"127.0.0.1:0\"\n[[applications]]\nmethod = \"GET\"\nurl_path = \"/a*b\"\nstatic_body = \"\"\n",
    );
    assert!(err.contains("test.toml:4:12: applications[0].url_path"), "{err}");
}

#[test]
fn endpoints_are_host_and_port() {
    assert_eq!(
        Endpoint::parse("DB.internal:5432"),
        Ok(Endpoint {
            host: "db.internal".into(),
            port: 5432
        })
    );
    assert_eq!(
        Endpoint::parse("[::1]:80").map(|e| e.to_string()),
        Ok("[::1]:80".to_string())
    );
    assert!(Endpoint::parse("no-port").is_err());
    assert!(Endpoint::parse("host:0").is_err());
    assert!(Endpoint::parse("*.internal:80").is_err());
}
