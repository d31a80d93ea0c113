//! The sample configuration, the original ABI, routing and shards.

use crate::harness::process::signal;
use crate::harness::{Client, TestServer, samples_dir};

/// The sample config as shipped, moved to port 0 with absolute guest paths.
fn sample_config() -> String {
    let text = std::fs::read_to_string(samples_dir().join("config.toml")).unwrap();
    // Tests run in parallel: every server takes ports of its own.
    text.replace("listen_address = \"127.0.0.1:8080\"", "")
        .replace(
            "listen_address = \"127.0.0.1:9090\"",
            "listen_address = \"127.0.0.1:0\"",
        )
        .replace("file_path = \"", &format!("file_path = \"{}/", samples_dir().display()))
}

#[test]
fn every_sample_route_answers() {
    let server = TestServer::start(&sample_config(), &["--shards", "1"]);
    let mut client = server.client();

    let hello = client.get("/hello");
    assert_eq!(hello.status, 200);
    assert_eq!(hello.reason, "Ok");
    assert_eq!(hello.text(), "Hello world from wasm!\n");
    assert_eq!(hello.header("content-type"), Some("text/plain; charset=utf-8"));
    // The guest set its own Content-length; exactly one reaches the client
    // (the client checks that on every response).
    assert_eq!(hello.header("content-length"), Some("23"));

    let bonjour = client.get("/bonjour");
    assert_eq!(
        bonjour.text(),
        "Bonjour tout le monde depuis le monde merveilleux de WASM!\n"
    );

    let echo = client.request("POST", "/echo?x=1", &[("X-Echo", "hi there")], b"some body");
    assert_eq!(echo.status, 200);
    assert_eq!(
        echo.text(),
        "method: POST\npath: /echo?x=1\nx-echo: hi there\nbody: some body"
    );

    let greeting = client.get("/greeting");
    assert_eq!(greeting.text(), "Hello from the route's env!\n");

    let native = client.get("/static");
    assert_eq!(native.status, 200);
    assert_eq!(native.text(), "Hello, World!");

    // The counter keeps its count in the default store, under the
    // server's working directory.
    assert_eq!(client.get("/counter").text(), "visits: 1\n");
    assert_eq!(client.get("/counter").text(), "visits: 2\n");
    assert!(server.dir().join("serverless-wasm-state/kv/default").is_file());

    let head = client.request("HEAD", "/hello", &[], b"");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("23"));
    // Nothing follows the HEAD response: the next answer parses cleanly.
    assert_eq!(client.get("/static").text(), "Hello, World!");

    let logs = server.stop();
    assert!(
        logs.contains("Hello world with api! route=GET /hello"),
        "guest log line missing:\n{logs}"
    );
}

#[test]
fn unknown_path_is_404_and_wrong_method_is_405_with_allow() {
    let server = TestServer::start(&sample_config(), &["--shards", "1"]);
    let mut client = server.client();
    assert_eq!(client.get("/nowhere").status, 404);
    let not_allowed = client.request("DELETE", "/hello", &[], b"");
    assert_eq!(not_allowed.status, 405);
    assert_eq!(not_allowed.header("allow"), Some("GET, HEAD"));
    let get_on_post_route = client.get("/echo");
    assert_eq!(get_on_post_route.status, 405);
    assert_eq!(get_on_post_route.header("allow"), Some("POST"));
}

#[test]
fn imported_and_exported_memory_guests() {
    let server = TestServer::start(
        r#"
[[applications]]
file_path = "{guests}/imported_memory_echo.wat"
method = "GET"
url_path = "/imported/*"

[[applications]]
file_path = "{samples}/env.wat"
method = "GET"
url_path = "/exported"
env = { greeting = "exported memory works" }
"#,
        &["--shards", "1"],
    );
    assert_eq!(server.get("/imported/a/b?c=d").text(), "/imported/a/b?c=d");
    assert_eq!(server.get("/exported").text(), "exported memory works");
}

#[test]
fn db_get_reports_needed_length_without_writing() {
    let server = TestServer::start(
        r#"
[[applications]]
file_path = "{guests}/dbget.wat"
method = "GET"
url_path = "/db"
env = { k = "value-of-k" }
"#,
        &["--shards", "1"],
    );
    assert_eq!(
        server.get("/db").text(),
        "small-ok untouched-ok dangling-ok missing-ok value-of-k"
    );
}

#[test]
fn the_rust_guest_with_the_original_extern_block_works() {
    let server = TestServer::start(
        r#"
[[applications]]
file_path = "{samples}/hello_rust.wasm"
method = "GET"
url_path = "/rust"
env = { name = "Rust" }
"#,
        &["--shards", "1"],
    );
    let response = server.get("/rust?who=tests");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("x-guest"), Some("hello-rust"));
    assert_eq!(response.text(), "Hello, Rust! You asked for GET /rust?who=tests\n");
}

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    let server = TestServer::start(&sample_config(), &["--shards", "1"]);
    let mut client = server.client();
    for i in 0..50 {
        let path = if i % 2 == 0 { "/hello" } else { "/static" };
        let response = client.get(path);
        assert_eq!(response.status, 200);
        assert!(!response.closes());
    }
}

#[test]
fn sixteen_pipelined_requests_get_sixteen_ordered_responses() {
    let server = TestServer::start(&sample_config(), &["--shards", "1"]);
    let mut client = server.client();
    let mut batch = Vec::new();
    for i in 0..16 {
        batch.extend(crate::harness::client::format_request(
            "POST",
            &format!("/echo?n={i}"),
            &[],
            format!("body {i}").as_bytes(),
        ));
    }
    client.send(&batch);
    for i in 0..16 {
        let response = client.read_response();
        assert_eq!(response.status, 200);
        assert!(
            response.text().contains(&format!("path: /echo?n={i}\n")),
            "response {i}: {}",
            response.text()
        );
        assert!(response.text().ends_with(&format!("body: body {i}")));
    }
}

#[test]
fn chunked_request_body_is_decoded() {
    let server = TestServer::start(&sample_config(), &["--shards", "1"]);
    let mut client = server.client();
    client.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nTrailer: x\r\n\r\n");
    let response = client.read_response();
    assert_eq!(response.status, 200);
    assert!(response.text().ends_with("body: Wikipedia"), "{}", response.text());
    // The connection is still in sync.
    assert_eq!(client.get("/static").status, 200);
}

#[test]
fn expect_100_continue_gets_an_interim_response() {
    let server = TestServer::start(&sample_config(), &["--shards", "1"]);
    let mut client = server.client();
    client.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    let interim = client.read_response();
    assert_eq!(interim.status, 100);
    client.send(b"hello");
    let response = client.read_response();
    assert_eq!(response.status, 200);
    assert!(response.text().ends_with("body: hello"));
}

#[test]
fn http_1_0_closes_unless_keep_alive_is_asked() {
    let server = TestServer::start(&sample_config(), &["--shards", "1"]);
    let mut client = server.client();
    client.send(b"GET /static HTTP/1.0\r\n\r\n");
    let response = client.read_response();
    assert_eq!(response.status, 200);
    assert!(response.closes());
    assert!(client.is_closed_by_server());

    let mut client = server.client();
    client.send(b"GET /static HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let response = client.read_response();
    assert_eq!(response.header("connection"), Some("keep-alive"));
    client.send(b"GET /hello HTTP/1.0\r\n\r\n");
    assert_eq!(client.read_response().text(), "Hello world from wasm!\n");
}

#[test]
fn connection_close_is_honoured() {
    let server = TestServer::start(&sample_config(), &["--shards", "1"]);
    let mut client = server.client();
    let response = client.request("GET", "/static", &[("Connection", "close")], b"");
    assert!(response.closes());
    assert!(client.is_closed_by_server());
}

#[test]
fn two_shards_both_serve() {
    let config = format!("[server]\nshard_header = true\n{}", sample_config());
    let server = TestServer::start(&config, &["--shards", "2"]);
    assert!(
        server
            .logs()
            .wait_for("shard started shard=1", std::time::Duration::from_secs(5))
            .is_some()
    );
    let mut seen = std::collections::BTreeSet::new();
    // The kernel spreads connections over the shards' sockets by hash.
    for _ in 0..200 {
        let mut client = Client::connect(server.addr);
        let response = client.get("/hello");
        assert_eq!(response.status, 200);
        seen.insert(response.header("x-serverless-shard").unwrap().to_string());
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec!["0", "1"]);
    let logs = server.stop();
    let mut stopped: Vec<u64> = crate::harness::shard_reports(&logs, crate::harness::STOP_REPORT)
        .iter()
        .filter_map(|r| r["shard"].as_u64())
        .collect();
    stopped.sort();
    assert_eq!(stopped, vec![0, 1], "{logs}");
}

#[test]
fn a_second_server_on_the_same_port_is_refused() {
    let server = TestServer::start(&sample_config(), &["--shards", "1"]);
    let config = format!("listen_address = \"{}\"\n{}", server.addr, sample_config());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config).unwrap();
    let output = std::process::Command::new(crate::harness::server_binary())
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot listen on") && stderr.contains("in use"),
        "{stderr}"
    );
}

#[test]
fn the_process_runs_exactly_the_documented_threads() {
    // docs/architecture.md: the main thread, the log-writer, the control
    // thread (signals), the store thread (embedded key-value stores), the
    // admin listener's thread when configured, and
    // per shard its executor thread and glommio's blocking-pool thread
    // (name resolution). Nothing else: no runtime or compiler thread pools
    // behind the shards' backs.
    let server = TestServer::start(&sample_config(), &["--shards", "2"]);
    assert_eq!(server.get("/hello").status, 200);
    let names = server.process.thread_names();
    assert_eq!(names.len(), 5 + 2 * 2, "{names:?}");
    for service in ["admin", "control", "log-writer", "store"] {
        assert!(names.iter().any(|n| n == service), "no {service} thread: {names:?}");
    }
    // glommio names a shard's executor and blocking threads after it.
    for shard in ["shard-0", "shard-1"] {
        assert_eq!(names.iter().filter(|n| n.starts_with(shard)).count(), 2, "{names:?}");
    }
    let without = sample_config().replace("[admin]\nlisten_address = \"127.0.0.1:0\"\n", "");
    let without_admin = TestServer::start(&without, &["--shards", "1"]);
    assert_eq!(
        without_admin.process.threads(),
        4 + 2,
        "{:?}",
        without_admin.process.thread_names()
    );
    // --watch adds notify's inotify reader; reloads run on the main thread
    // and add none, however many there are.
    let watching = TestServer::start(&without, &["--shards", "1", "--watch"]);
    watching.logs().expect("watching ");
    signal(watching.process.pid(), libc::SIGHUP);
    watching.logs().expect("generation 2 active on all shards");
    let names = watching.process.thread_names();
    assert_eq!(names.len(), 4 + 2 + 1, "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("notify")), "{names:?}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let mut server = TestServer::start(&sample_config(), &["--shards", "1", "--log-format", "json"]);
    let line = server.logs().expect("listening on ");
    let listening: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(listening["level"], "INFO");
    assert_eq!(listening["shards"], 1);
    // The last line, logged just before the process exits, is written.
    assert!(server.process.terminate(std::time::Duration::from_secs(15)));
    let stopped = server.logs().expect("\"message\":\"stopped\"");
    serde_json::from_str::<serde_json::Value>(&stopped).unwrap();
}

#[test]
fn the_access_log_file_is_created_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let access_log = dir.path().join("access.log");
    let config = format!(
        "{}\n[access_log]\npath = \"{}\"\n",
        sample_config(),
        access_log.display()
    );
    let _server = TestServer::start(&config, &["--shards", "1"]);
    assert!(access_log.exists());
}

#[test]
fn shards_are_pinned_to_the_cpus_asked_for() {
    let server = TestServer::start(&sample_config(), &["--shards", "1", "--cpus", "1"]);
    server.logs().expect("shard started shard=0 cpu=1");
    assert_eq!(server.get("/static").status, 200);
    // A CPU the process may not use is refused before anything starts.
    let config = format!("listen_address = \"127.0.0.1:0\"\n{}", sample_config());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config).unwrap();
    let output = std::process::Command::new(crate::harness::server_binary())
        .args([path.to_str().unwrap(), "--cpus", "0-4095"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not available to this process"));
}

#[test]
fn help_and_version() {
    let help = std::process::Command::new(crate::harness::server_binary())
        .arg("--help")
        .output()
        .unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("--shards") && text.contains("--cpus") && text.contains("check"),
        "{text}"
    );
    let version = std::process::Command::new(crate::harness::server_binary())
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("serverless-wasm "));
}

#[test]
fn sigusr1_logs_each_shard_s_state() {
    let server = TestServer::start(&sample_config(), &["--shards", "2"]);
    assert_eq!(server.get("/hello").status, 200);
    let reports = server.stats(2);
    for (shard, report) in reports.iter().enumerate() {
        assert_eq!(report["shard"].as_u64(), Some(shard as u64));
        assert!(report["live_instances"].is_u64(), "{report}");
        assert!(report["connections_open"].is_u64(), "{report}");
    }
    // The request above was answered by one of the shards, under its route.
    let answered: u64 = reports
        .iter()
        .map(|r| r["routes"]["GET /hello"]["responses"]["200"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(answered, 1, "{reports:?}");
}
