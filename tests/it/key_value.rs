//! Key-value stores for guests, embedded and on a real redis-server, each
//! through both guest kinds: the `counter` core module (`kv_v1`) and the
//! `counter` component (`wasi:keyvalue`). Both backends pass the same
//! suite: what one shard writes the other reads at once, a route that does
//! not list the store is refused, sizes over the limits are refused, and
//! concurrent increments add up exactly.

use std::collections::BTreeMap;
use std::path::Path;

use crate::harness::client::Client;
use crate::harness::{Redis, TestServer};

/// The counter routes on store `store`, plus one route that does not list
/// it. `store_table` declares the store (with small limits to test).
fn config(store_table: &str, store: &str) -> String {
    let module_routes: String = [
        ("GET", "/counter", "handle"),
        ("PUT", "/item", "put"),
        ("GET", "/item", "fetch"),
        ("DELETE", "/item", "remove"),
        ("GET", "/keys", "keys"),
    ]
    .iter()
    .map(|(method, path, function)| {
        format!(
            r#"
[[applications]]
file_path = "{{samples}}/counter.wasm"
method = "{method}"
url_path = "{path}"
function = "{function}"
instance = "reuse"
env = {{ store = "{store}" }}
key_value_stores = ["{store}"]
"#
        )
    })
    .collect();
    let component_routes: String = ["GET", "PUT", "DELETE"]
        .iter()
        .map(|method| {
            format!(
                r#"
[[applications]]
file_path = "{{components}}/counter.wasm"
method = "{method}"
url_path = "/c/*"
env = {{ STORE = "{store}" }}
key_value_stores = ["{store}"]
"#
            )
        })
        .collect();
    format!(
        r#"
[server]
shard_header = true

{store_table}

[[applications]]
file_path = "{{samples}}/counter.wasm"
method = "GET"
url_path = "/not-listed"
env = {{ store = "{store}" }}
{module_routes}{component_routes}"#
    )
}

/// One keep-alive connection to each shard.
fn one_client_per_shard(server: &TestServer) -> BTreeMap<String, Client> {
    let mut clients = BTreeMap::new();
    for _ in 0..200 {
        let mut client = server.client();
        let response = client.get("/keys");
        assert_eq!(response.status, 200, "{}", response.text());
        let shard = response.header("x-serverless-shard").unwrap().to_string();
        clients.entry(shard).or_insert(client);
        if clients.len() == 2 {
            return clients;
        }
    }
    panic!("connections never reached both shards");
}

fn put(client: &mut Client, key: &str, value: &[u8]) -> crate::harness::client::Response {
    client.request("PUT", "/item", &[("x-key", key)], value)
}

fn fetch(client: &mut Client, key: &str) -> crate::harness::client::Response {
    client.request("GET", "/item", &[("x-key", key)], b"")
}

/// The suite both backends pass.
fn store_suite(server: &TestServer) {
    let mut shards = one_client_per_shard(server);
    let mut zero = shards.remove("0").unwrap();
    let mut one = shards.remove("1").unwrap();

    // A set on one shard is read on the other at once; both guest kinds
    // see the same data.
    assert_eq!(put(&mut zero, "greeting", b"hello from shard 0").status, 200);
    let read = fetch(&mut one, "greeting");
    assert_eq!((read.status, read.text().as_str()), (200, "hello from shard 0"));
    let read = one.get("/c/item/greeting");
    assert_eq!((read.status, read.text().as_str()), (200, "hello from shard 0"));
    let written = one.request("PUT", "/c/item/from-component", &[], b"written by a component");
    assert_eq!(written.status, 200, "{}", written.text());
    assert_eq!(fetch(&mut zero, "from-component").text(), "written by a component");
    let keys = zero.get("/keys").text();
    assert!(
        keys.contains("greeting\n") && keys.contains("from-component\n"),
        "{keys}"
    );
    assert_eq!(
        zero.request("DELETE", "/item", &[("x-key", "greeting")], b"").status,
        200
    );
    assert_eq!(fetch(&mut one, "greeting").status, 404);
    assert_eq!(one.get("/c/item/greeting").status, 404);

    // Over the store's limits (max_key_bytes 64, max_value_bytes 1024):
    // refused, and the store is unchanged.
    let long_key = "k".repeat(65);
    let refused = put(&mut zero, &long_key, b"x");
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert!(refused.text().contains("-4"), "{}", refused.text());
    let refused = put(&mut zero, "big", &[b'v'; 1025]);
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert_eq!(fetch(&mut zero, "big").status, 404);
    let refused = one.request("PUT", "/c/item/big", &[], &[b'v'; 1025]);
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert!(
        refused.text().contains("larger than the store's limit"),
        "{}",
        refused.text()
    );
    assert_eq!(put(&mut zero, "big", &[b'v'; 1024]).status, 200);

    // A route that does not list the store cannot open it.
    let denied = server.get("/not-listed");
    assert_eq!(denied.status, 500, "{}", denied.text());
    assert!(denied.text().contains("kv_v1.open failed: -3"), "{}", denied.text());
    let line = server.logs().expect("may not open key-value store");
    assert!(line.contains("route=GET /not-listed"), "{line}");

    // Concurrent increments from many connections on both shards add up
    // exactly: 8 connections × 50, module and component alike.
    let addr = server.addr;
    let workers: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                let mut client = Client::connect(addr);
                let path = if i % 2 == 0 { "/counter" } else { "/c/counter" };
                for _ in 0..50 {
                    let response = client.get(path);
                    assert_eq!(response.status, 200, "{}", response.text());
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    assert_eq!(zero.get("/counter").text(), "visits: 401\n");
    assert_eq!(one.get("/c/counter").text(), "visits: 402\n");
    // Requests log their visit, with their route.
    let line = server.logs().expect("visit 402");
    assert!(line.contains("route=GET /c/*"), "{line}");
}

fn with_state_dir(config: String, state_dir: &Path) -> String {
    config.replace(
        "[server]\nshard_header = true\n",
        &format!(
            "[server]\nshard_header = true\nstate_dir = \"{}\"\n",
            state_dir.display()
        ),
    )
}

#[test]
fn the_embedded_store_passes_the_suite_and_survives_a_restart() {
    let state = tempfile::tempdir().unwrap();
    let table = "[key_value.default]\ntype = \"embedded\"\nmax_key_bytes = 64\nmax_value_bytes = 1024\n";
    let config = with_state_dir(config(table, "default"), state.path());
    let server = TestServer::start(&config, &["--shards", "2"]);
    store_suite(&server);
    let line = server.logs().expect("key-value store opened");
    assert!(
        line.contains(&state.path().join("kv/default").display().to_string()),
        "{line}"
    );
    server.stop();

    // Answered writes are durable: a new process sees them.
    let server = TestServer::start(&config, &["--shards", "2"]);
    assert_eq!(server.get("/counter").text(), "visits: 403\n");
    assert_eq!(server.get("/c/item/big").text().len(), 1024);
}

#[test]
fn the_default_store_needs_no_declaration() {
    let state = tempfile::tempdir().unwrap();
    let config = format!(
        "[server]\nstate_dir = \"{}\"\n[[applications]]\nfile_path = \"{{samples}}/counter.wasm\"\nmethod = \"GET\"\nurl_path = \"/counter\"\nkey_value_stores = [\"default\"]\n",
        state.path().display()
    );
    let server = TestServer::start(&config, &["--shards", "1"]);
    assert_eq!(server.get("/counter").text(), "visits: 1\n");
    assert_eq!(server.get("/counter").text(), "visits: 2\n");
    assert!(state.path().join("kv/default").is_file());
}

#[test]
fn the_redis_store_passes_the_suite_and_keeps_its_password_secret() {
    let password = "s3cr+t/pw";
    let redis = Redis::start_with(&["--requirepass", password]);
    let table = format!(
        "[key_value.shared]\ntype = \"redis\"\nurl = \"redis://:s3cr%2Bt%2Fpw@127.0.0.1:{}/3\"\nprefix = \"app:\"\nmax_key_bytes = 64\nmax_value_bytes = 1024\n\n[admin]\nlisten_address = \"127.0.0.1:0\"\n",
        redis.port
    );
    let state = tempfile::tempdir().unwrap();
    let config = with_state_dir(config(&table, "shared"), state.path());
    let server = TestServer::start(&config, &["--shards", "2"]);
    store_suite(&server);

    // The data is in Redis, under the prefix, in database 3.
    let mut redis_client = Client::connect(format!("127.0.0.1:{}", redis.port).parse().unwrap());
    redis_client.send(format!("AUTH {password}\r\nSELECT 3\r\nGET app:visits\r\n").as_bytes());
    let mut seen = Vec::new();
    let stream = &mut redis_client.stream;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !String::from_utf8_lossy(&seen).contains("402\r\n") && std::time::Instant::now() < deadline {
        let mut buffer = [0u8; 256];
        let n = std::io::Read::read(stream, &mut buffer).unwrap();
        seen.extend_from_slice(&buffer[..n]);
    }
    assert!(
        String::from_utf8_lossy(&seen).contains("$3\r\n402\r\n"),
        "{}",
        String::from_utf8_lossy(&seen)
    );

    // Redis closes the server's idle connections (as a restart would): the
    // next operations go on new ones, without an error.
    redis_client.send(b"CLIENT KILL TYPE normal SKIPME yes\r\n");
    std::thread::sleep(std::time::Duration::from_millis(200));
    for expected in [403, 404] {
        let response = server.get("/counter");
        assert_eq!(response.text(), format!("visits: {expected}\n"));
    }

    // Operations are counted per route and result.
    let metrics = server.admin_get("/metrics").text();
    for series in [
        r#"serverless_wasm_key_value_operations_total{route="GET /not-listed",result="denied"} 1"#,
        r#"serverless_wasm_key_value_operations_total{route="PUT /item",result="refused"} 2"#,
    ] {
        assert!(metrics.contains(series), "no {series} in\n{metrics}");
    }

    // The password is in no log line and not in GET /config.
    let view = server.admin_get("/config").text();
    assert!(view.contains("redis://:***@127.0.0.1"), "{view}");
    assert!(!view.contains("s3cr"), "{view}");
    let logs = server.stop();
    assert!(!logs.contains("s3cr"), "the password leaked into the log");
}

#[test]
fn a_redis_store_that_is_down_is_an_error_in_the_guest_not_a_crash() {
    let (_refusing, port) = crate::harness::refusing_port();
    let table = format!("[key_value.shared]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:{port}\"\n");
    let state = tempfile::tempdir().unwrap();
    let config = with_state_dir(config(&table, "shared"), state.path());
    let server = TestServer::start(&config, &["--shards", "1"]);
    let response = server.get("/counter");
    assert_eq!(response.status, 500, "{}", response.text());
    assert!(
        response.text().contains("kv_v1.increment failed: -8"),
        "{}",
        response.text()
    );
    let line = server
        .logs()
        .expect("key-value store: the store failed: cannot connect");
    assert!(line.contains("store=shared"), "{line}");
    let response = server.get("/c/counter");
    assert_eq!(response.status, 500, "{}", response.text());
    assert!(response.text().contains("cannot connect"), "{}", response.text());
    // And the server goes on serving.
    assert_eq!(server.get("/keys").status, 500);
}

#[test]
fn a_route_may_list_only_declared_stores() {
    let (ok, output) = crate::harness::check(
        "listen_address = \"127.0.0.1:0\"\n[[applications]]\nfile_path = \"{samples}/counter.wasm\"\nmethod = \"GET\"\nurl_path = \"/c\"\nkey_value_stores = [\"nope\"]\n",
    );
    assert!(!ok);
    assert!(
        output.contains("applications[0].key_value_stores") && output.contains("no key-value store \"nope\""),
        "{output}"
    );
}

#[test]
fn listing_follows_the_cursor_through_many_pages() {
    let state = tempfile::tempdir().unwrap();
    let config = with_state_dir(config("", "default"), state.path());
    let server = TestServer::start(&config, &["--shards", "1"]);
    let mut client = server.client();
    for i in 0..1234 {
        assert_eq!(put(&mut client, &format!("key-{i:05}"), b"v").status, 200);
    }
    // Two pages of 1000 and 234, through the module's and the
    // component's cursor loops.
    for path in ["/keys", "/c/keys"] {
        let keys = client.get(path).text();
        let keys: Vec<&str> = keys.lines().collect();
        assert_eq!(keys.len(), 1234, "{path}");
        assert_eq!((keys[0], keys[1233]), ("key-00000", "key-01233"), "{path}");
    }
}

#[test]
fn a_reload_that_needs_a_store_it_cannot_open_is_rejected() {
    let base = "[admin]\nlisten_address = \"127.0.0.1:0\"\n\n[key_value.broken]\ntype = \"embedded\"\npath = \"/proc/no-such-dir/kv\"\n";
    let server = TestServer::start(base, &["--shards", "1"]);
    // No route uses it yet: the start did not need to open it.
    let route = "\n[[applications]]\nfile_path = \"{samples}/counter.wasm\"\nmethod = \"GET\"\nurl_path = \"/counter\"\nkey_value_stores = [\"broken\"]\n";
    let text = format!(
        "listen_address = \"127.0.0.1:0\"\n{base}{}",
        crate::harness::expand(route)
    );
    std::fs::write(server.dir().join("config.toml"), text).unwrap();
    let response = crate::harness::client::Client::connect(server.admin_addr()).request("POST", "/reload", &[], b"");
    assert_eq!(response.status, 422, "{}", response.text());
    assert!(
        response.text().contains("key-value store \\\"broken\\\""),
        "{}",
        response.text()
    );
    // The running generation is untouched.
    assert_eq!(server.get("/counter").status, 404);
}
