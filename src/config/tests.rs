//! Parsing and validation without the filesystem: guests are `static_body`
//! routes here; wasm routes are covered by `tests/it/config_check.rs`.

use std::path::{Path, PathBuf};
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
    assert_eq!(route.name, "GET /files/*");
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

/// `listen_address`, then one static route per `(method, path, extra keys)`.
fn routes(entries: &[(&str, &str, &str)]) -> String {
    let mut text = "listen_address = \"127.0.0.1:0\"\n".to_string();
    for (method, path, extra) in entries {
        text += &format!("[[applications]]\nmethod = \"{method}\"\nurl_path = \"{path}\"\nstatic_body = \"\"\n{extra}");
    }
    text
}

#[test]
fn a_route_is_named_by_method_and_path_unless_it_has_a_name() {
    let config = parse_ok(&routes(&[
        ("GET", "/hello", ""),
        ("POST", "/files/*", "name = \"upload\"\n"),
        ("GET", "/stats", "name = \"Statistik · GET /stats\"\n"),
    ]));
    let names: Vec<&str> = config.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["GET /hello", "upload", "Statistik · GET /stats"]);
    assert_eq!(config.routes[1].name, "upload");
}

#[test]
fn a_duplicate_name_is_refused_where_the_second_is_written() {
    // Lines: 2 [[applications]], 3 method, 6 name; then 7, 8, 11.
    let err = parse_err(&routes(&[
        ("GET", "/a", "name = \"hello\"\n"),
        ("GET", "/b", "name = \"hello\"\n"),
    ]));
    assert_eq!(
        err,
        "test.toml:11:8: applications[1].name: duplicate route name \"hello\": already used by applications[0] at line 6"
    );
}

#[test]
fn a_name_may_not_be_another_routes_default_name() {
    // The explicit name comes second: located at it.
    let err = parse_err(&routes(&[("GET", "/a", ""), ("GET", "/b", "name = \"GET /a\"\n")]));
    assert_eq!(
        err,
        "test.toml:10:8: applications[1].name: duplicate route name \"GET /a\": already used by applications[0] at line 3"
    );
    // The default name comes second: located at its method.
    let err = parse_err(&routes(&[("GET", "/a", "name = \"GET /b\"\n"), ("GET", "/b", "")]));
    assert_eq!(
        err,
        "test.toml:8:10: applications[1].name: duplicate route name \"GET /b\": already used by applications[0] at line 6"
    );
}

#[test]
fn a_same_route_twice_is_still_reported_as_a_duplicate_route() {
    // Same method and path means the same default name: the route message,
    // checked first, is the one reported.
    let err = parse_err(&routes(&[("GET", "/a", ""), ("GET", "/a", "")]));
    assert!(
        err.contains("applications[1].url_path: duplicate route GET /a"),
        "{err}"
    );
    // Named routes too: the message gives the method and path, not the name.
    let err = parse_err(&routes(&[
        ("GET", "/a", "name = \"x\"\n"),
        ("GET", "/a", "name = \"y\"\n"),
    ]));
    assert_eq!(
        err,
        "test.toml:9:12: applications[1].url_path: duplicate route GET /a: already defined by applications[0] at line 3"
    );
}

#[test]
fn a_name_is_short_printable_and_not_empty() {
    let err = parse_err(&routes(&[("GET", "/a", "name = \"\"\n")]));
    assert_eq!(err, "test.toml:6:8: applications[0].name: the name is empty");
    let long = "n".repeat(129);
    let err = parse_err(&routes(&[("GET", "/a", &format!("name = \"{long}\"\n"))]));
    assert_eq!(
        err,
        "test.toml:6:8: applications[0].name: the name is 129 bytes long: at most 128"
    );
    let err = parse_err(&routes(&[("GET", "/a", "name = \"two\\nlines\"\n")]));
    assert_eq!(
        err,
        "test.toml:6:8: applications[0].name: \"two\\nlines\" contains a control character"
    );
    let config = parse_ok(&routes(&[("GET", "/a", &format!("name = \"{}\"\n", "n".repeat(128)))]));
    assert_eq!(config.routes[0].name.len(), 128);
}

#[test]
fn no_access_log_without_its_table() {
    let config = parse_ok("listen_address = \"127.0.0.1:0\"\n");
    assert_eq!(config.access_log, None);
    assert_eq!(config.server.log_buffer_bytes, DEFAULT_LOG_BUFFER_BYTES);
}

#[test]
fn the_access_log_path_is_relative_to_the_config_file() {
    let config = parse(
        Path::new("/etc/serverless/config.toml"),
        "listen_address = \"127.0.0.1:0\"\n[access_log]\npath = \"logs/access.log\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.access_log,
        Some(AccessLogConfig {
            target: AccessLogTarget::File("/etc/serverless/logs/access.log".into()),
            format: AccessLogFormat::Common,
            buffer_bytes: DEFAULT_ACCESS_LOG_BUFFER_BYTES,
        })
    );
}

#[test]
fn the_access_log_to_stdout_as_json_with_its_own_buffer() {
    let config = parse_ok(
        "listen_address = \"127.0.0.1:0\"\n[server]\nlog_buffer_bytes = \"64KiB\"\n[access_log]\npath = \"-\"\nformat = \"json\"\nbuffer_bytes = \"4MiB\"\n",
    );
    assert_eq!(
        config.access_log,
        Some(AccessLogConfig {
            target: AccessLogTarget::Stdout,
            format: AccessLogFormat::Json,
            buffer_bytes: 4 << 20,
        })
    );
    assert_eq!(config.server.log_buffer_bytes, 64 << 10);
}

#[test]
fn bad_access_log_settings_are_refused_where_written() {
    let access_log = |table: &str| parse_err(&format!("listen_address = \"127.0.0.1:0\"\n[access_log]\n{table}"));
    let err = access_log("path = \"a.log\"\nformat = \"combined\"\n");
    assert!(
        err.starts_with("test.toml:4:10: access_log.format: \"combined\" is not an access log format"),
        "{err}"
    );
    let err = access_log("path = \"a.log\"\nbuffer_bytes = 100\n");
    assert!(err.contains("access_log.buffer_bytes: 100 is out of range"), "{err}");
    let err = access_log("path = \"\"\n");
    assert!(err.contains("access_log.path: the path is empty"), "{err}");
    let err = access_log("format = \"json\"\n");
    assert!(err.contains("missing field `path`"), "{err}");
    let err = access_log("path = \"a.log\"\nrotate = true\n");
    assert!(err.contains("unknown field `rotate`"), "{err}");
    let err = parse_err("listen_address = \"127.0.0.1:0\"\n[server]\nlog_buffer_bytes = \"1GiB\"\n");
    assert!(err.contains("server.log_buffer_bytes"), "{err}");
}

#[test]
fn the_admin_listener_is_off_without_its_table() {
    assert!(parse_ok("listen_address = \"127.0.0.1:8080\"\n").admin.is_none());
}

#[test]
fn the_admin_table_takes_a_listen_address() {
    let config = parse_ok("listen_address = \"0.0.0.0:8080\"\n[admin]\nlisten_address = \"127.0.0.1:9090\"\n");
    let admin = config.admin.expect("admin configured");
    assert_eq!(admin.listen_address, "127.0.0.1:9090".parse().unwrap());
    // Resolved like the top-level address.
    let config = parse_ok("listen_address = \"127.0.0.1:0\"\n[admin]\nlisten_address = \"localhost:0\"\n");
    let admin = config.admin.expect("admin configured");
    assert!(admin.listen_address.ip().is_loopback(), "{admin:?}");
}

#[test]
fn the_admin_table_refuses_bad_and_unknown_keys() {
    let err = parse_err("listen_address = \"127.0.0.1:0\"\n[admin]\n");
    assert!(err.contains("missing field `listen_address`"), "{err}");
    let err = parse_err("listen_address = \"127.0.0.1:0\"\n[admin]\nlisten_address = \"127.0.0.1:9\"\ntoken = \"x\"\n");
    assert!(
        err.starts_with("test.toml:4:1:") && err.contains("unknown field `token`"),
        "{err}"
    );
    let err = parse_err("listen_address = \"127.0.0.1:0\"\n[admin]\nlisten_address = \"127.0.0.1\"\n");
    assert!(
        err.starts_with("test.toml:3:18: admin.listen_address: \"127.0.0.1\" is not a usable host:port"),
        "{err}"
    );
}

#[test]
fn the_admin_listener_needs_a_socket_of_its_own() {
    let err = parse_err("listen_address = \"0.0.0.0:8080\"\n[admin]\nlisten_address = \"127.0.0.1:8080\"\n");
    assert_eq!(
        err,
        "test.toml:3:18: admin.listen_address: 127.0.0.1:8080 is where the routes are served (listen_address 0.0.0.0:8080): the admin listener needs a socket of its own"
    );
    // Another port, another interface, or a port picked at start: fine.
    for (public, admin) in [
        ("127.0.0.1:8080", "127.0.0.1:9090"),
        ("127.0.0.1:8080", "127.0.0.2:8080"),
        ("127.0.0.1:0", "127.0.0.1:0"),
    ] {
        let text = format!("listen_address = \"{public}\"\n[admin]\nlisten_address = \"{admin}\"\n");
        assert!(parse_ok(&text).admin.is_some(), "{public} and {admin}");
    }
}

#[test]
fn type_errors_do_not_quote_the_value() {
    let text = "listen_address = \"127.0.0.1:0\"\n[[applications]]\nmethod = \"GET\"\nurl_path = \"/x\"\nfile_path = \"x.wasm\"\nenv = { pin = 987654 }\n";
    let error = parse(Path::new("c.toml"), text).unwrap_err().to_string();
    assert!(error.contains("invalid type: integer, expected a string"), "{error}");
    assert!(!error.contains("987654"), "{error}");
    assert!(error.starts_with("c.toml:6:"), "{error}");
}

#[test]
fn concurrent_requests_per_instance_needs_reuse_and_defaults_by_guest_kind() {
    let route = |extra: &str| {
        format!(
            "listen_address = \"127.0.0.1:0\"\n[[applications]]\nmethod = \"GET\"\nurl_path = \"/x\"\nfile_path = \"{}/samples/hello.wat\"\n{extra}\n",
            env!("CARGO_MANIFEST_DIR")
        )
    };
    let config = parse_ok(&route("instance = \"reuse\"\nmax_concurrent_requests_per_instance = 4"));
    let RouteSpec {
        handler: HandlerSpec::Wasm(spec),
        ..
    } = &config.routes[0]
    else {
        panic!("a wasm route")
    };
    let policy = spec.limits.instance;
    assert_eq!(
        policy,
        InstancePolicy::Reuse {
            max_requests: None,
            max_concurrent: Some(4)
        }
    );
    // Unset, the quota is the guest kind's default.
    assert_eq!(policy.max_requests(DEFAULT_MAX_REQUESTS_PER_P3_INSTANCE), 128);
    assert_eq!(InstancePolicy::Fresh.max_requests(DEFAULT_MAX_REQUESTS_PER_INSTANCE), 1);
    let error = parse_err(&route("max_concurrent_requests_per_instance = 4"));
    assert!(error.contains("applies only with instance = \"reuse\""), "{error}");
    let error = parse_err(&route("instance = \"reuse\"\nmax_concurrent_requests_per_instance = 0"));
    assert!(error.contains("max_concurrent_requests_per_instance"), "{error}");
}

#[test]
fn the_default_store_exists_embedded_under_state_dir() {
    let config = parse_ok("listen_address = \"127.0.0.1:0\"\n");
    let store = &config.key_value[DEFAULT_KEY_VALUE_STORE];
    assert_eq!(
        store.backend,
        KeyValueBackend::Embedded {
            path: PathBuf::from("serverless-wasm-state/kv/default")
        }
    );
    assert_eq!(store.limits.max_key_bytes, DEFAULT_MAX_KEY_BYTES);
    assert_eq!(config.server.state_dir, PathBuf::from(DEFAULT_STATE_DIR));
}

#[test]
fn a_redis_store_parses_its_url_and_never_shows_the_password() {
    let config = parse_ok(
        "listen_address = \"127.0.0.1:0\"\n[key_value.cache]\ntype = \"redis\"\nurl = \"redis://app:p%40ss@cache.internal:6380/2\"\nprefix = \"a:\"\nmax_value_bytes = \"4KiB\"\n",
    );
    let store = &config.key_value["cache"];
    let KeyValueBackend::Redis { server, prefix } = &store.backend else {
        panic!("not redis: {store:?}")
    };
    assert_eq!(server.endpoint.to_string(), "cache.internal:6380");
    assert_eq!(server.username.as_deref(), Some("app"));
    assert_eq!(server.password.as_deref(), Some("p@ss"));
    assert_eq!(server.database, 2);
    assert_eq!(prefix, "a:");
    assert_eq!(store.limits.max_value_bytes, 4096);
    assert_eq!(server.to_string(), "redis://app:***@cache.internal:6380/2");
    assert!(!format!("{config:?}").contains("p@ss"));
    // The default store is still there beside it.
    assert!(config.key_value.contains_key("default"));
}

#[test]
fn bad_stores_are_refused_where_written_without_quoting_the_url() {
    let base = "listen_address = \"127.0.0.1:0\"\n";
    let error = parse_err(&format!("{base}[key_value.x]\ntype = \"memcached\"\n"));
    assert!(
        error.contains("key_value.x.type") && error.contains("\"embedded\" or \"redis\""),
        "{error}"
    );
    let error = parse_err(&format!("{base}[key_value.x]\ntype = \"redis\"\n"));
    assert!(error.contains("key_value.x.url"), "{error}");
    let error = parse_err(&format!(
        "{base}[key_value.x]\ntype = \"redis\"\nurl = \"rediss://:secret@h:1\"\n"
    ));
    assert!(
        error.contains("key_value.x.url") && !error.contains("secret"),
        "{error}"
    );
    let error = parse_err(&format!(
        "{base}[key_value.x]\ntype = \"embedded\"\nurl = \"redis://h\"\n"
    ));
    assert!(error.contains("applies only to type = \"redis\""), "{error}");
    let error = parse_err(&format!("{base}[key_value.\"a b\"]\ntype = \"embedded\"\n"));
    assert!(error.contains("is not a store name"), "{error}");
    let error = parse_err(&format!(
        "{base}[key_value.x]\ntype = \"embedded\"\nmax_key_bytes = 0\n"
    ));
    assert!(error.contains("key_value.x.max_key_bytes"), "{error}");
}

#[test]
fn stores_are_restart_only_settings() {
    let old = parse_ok("listen_address = \"127.0.0.1:0\"\n");
    let new = parse_ok("listen_address = \"127.0.0.1:0\"\n[key_value.x]\ntype = \"embedded\"\n");
    assert_eq!(restart_only_changes(&old, &new), vec!["key_value"]);
}
