//! Hot reload: the configuration and modules change while keep-alive
//! clients never stop sending requests, through each way of asking
//! (`POST /reload`, SIGHUP, `--watch`); a bad configuration changes
//! nothing; replaced generations free their instances.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::harness::client::format_request;
use crate::harness::process::signal;
use crate::harness::{Client, TestServer};

/// The reload tests drive servers under continuous load: one at a time, so
/// that on a 2-core machine they do not starve each other's clients.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A core module answering `text` (written as WAT: no toolchain needed).
fn module_answering(text: &str) -> String {
    format!(
        r#"(module
  (import "env" "response_set_body" (func $body (param i32 i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "{text}")
  (func (export "handle") (call $body (i32.const 0) (i64.const {len}))))"#,
        len = text.len()
    )
}

/// Writes `text` to `path` the way editors and deploy tools do: a new file
/// renamed over the old one, so no reader sees half of it. Each step of a
/// test replaces one watched file, so that `--watch` reloads once per
/// step however the test's threads are scheduled.
fn replace_file(path: &Path, text: &str) {
    let temporary = path.with_extension("new");
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

/// The configuration of step `step`: `/hello` (its module in `hello.wat`)
/// and `/static` always; `/limited` with a body limit; an `/extra-N`
/// route in some steps.
fn config(limit: usize, extra: Option<u32>) -> String {
    let mut text = format!(
        r#"listen_address = "127.0.0.1:0"

[admin]
listen_address = "127.0.0.1:0"

[[applications]]
name = "hello"
file_path = "hello.wat"
method = "GET"
url_path = "/hello"

[[applications]]
name = "static"
method = "GET"
url_path = "/static"
static_body = "static"

[[applications]]
name = "limited"
method = "POST"
url_path = "/limited"
static_body = "accepted"
max_body_bytes = {limit}
"#
    );
    if let Some(n) = extra {
        text += &format!(
            r#"
[[applications]]
name = "extra-{n}"
file_path = "extra.wat"
method = "GET"
url_path = "/extra-{n}"
"#
        );
    }
    text
}

/// Keep-alive clients sending requests to the routes that exist in every
/// generation, all the time, counting what did not come back 200.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<(u64, Vec<String>)>>,
}

impl Load {
    fn start(server: &TestServer, connections: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..connections)
            .map(|i| {
                let (addr, stop) = (server.addr, stop.clone());
                std::thread::spawn(move || {
                    let mut client = Client::connect(addr);
                    let path = if i % 2 == 0 { "/hello" } else { "/static" };
                    let request = format_request("GET", path, &[], b"");
                    let (mut answered, mut failures) = (0, Vec::new());
                    while !stop.load(Ordering::Relaxed) {
                        client.send(&request);
                        match client.try_read_response(false) {
                            Ok(response) if response.status == 200 && !response.closes() => answered += 1,
                            Ok(response) => failures.push(format!("{path}: {} {}", response.status, response.text())),
                            Err(e) => {
                                failures.push(format!("{path}: {e}"));
                                break;
                            }
                        }
                    }
                    (answered, failures)
                })
            })
            .collect();
        Load { stop, threads }
    }

    /// Stops the clients; returns how many requests were answered 200, and
    /// every other outcome.
    fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let mut total = (0, Vec::new());
        for thread in self.threads {
            let (answered, failures) = thread.join().unwrap();
            total.0 += answered;
            total.1.extend(failures);
        }
        total
    }
}

/// How a test asks for a reload, and learns how it went.
#[derive(Clone, Copy, PartialEq)]
enum Trigger {
    Admin,
    Sighup,
    Watch,
}

/// A server whose config file and modules the test rewrites.
struct Reloading {
    server: TestServer,
    trigger: Trigger,
    /// Reloads the log reported so far (applied or rejected).
    reported: usize,
}

impl Reloading {
    fn start(trigger: Trigger) -> Reloading {
        // TestServer adds its own listen_address line: drop ours.
        let text = config(1000, None).replacen("listen_address = \"127.0.0.1:0\"\n", "", 1);
        let args: &[&str] = if trigger == Trigger::Watch {
            &["--shards", "2", "--watch"]
        } else {
            &["--shards", "2"]
        };
        let server = TestServer::start_with_files(
            &text,
            args,
            &[
                ("hello.wat", &module_answering("hello v0")),
                ("extra.wat", &module_answering("extra")),
            ],
        );
        if trigger == Trigger::Watch {
            server.logs().expect("watching ");
        }
        Reloading {
            server,
            trigger,
            reported: 0,
        }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.server.dir().join(name)
    }

    /// Writes the files, asks for a reload and returns (applied, what it
    /// said): the JSON answer of `POST /reload`, else the log line.
    fn reload(&mut self, files: &[(&str, &str)]) -> (bool, String) {
        for (name, text) in files {
            replace_file(&self.path(name), text);
        }
        let said = match self.trigger {
            Trigger::Admin => {
                let response = Client::connect(self.server.admin_addr()).request("POST", "/reload", &[], b"");
                let text = response.text();
                assert_eq!(response.header("content-type"), Some("application/json"), "{text}");
                assert!(matches!(response.status, 200 | 422), "{} {text}", response.status);
                return (response.status == 200, text);
            }
            Trigger::Sighup => {
                signal(self.server.process.pid(), libc::SIGHUP);
                self.next_report()
            }
            Trigger::Watch => self.next_report(),
        };
        (said.contains("active on all shards"), said)
    }

    /// Waits for the next "generation N active on all shards" or "reload
    /// rejected" line.
    fn next_report(&mut self) -> String {
        self.reported += 1;
        let needles = ["active on all shards", "reload rejected"];
        let logs = self.server.logs();
        match logs.wait_for_nth(&needles, self.reported, Duration::from_secs(120)) {
            Some(line) => line,
            None => panic!(
                "no reload reported after {} reports:\n{}",
                self.reported - 1,
                logs.all()
            ),
        }
    }

    fn generation(&self) -> u64 {
        let config: serde_json::Value = serde_json::from_str(&self.server.admin_get("/config").text()).unwrap();
        config["generation"].as_u64().unwrap()
    }
}

/// 20 reloads (add a route, remove it, replace a module, change a limit,
/// and one bad configuration) under continuous keep-alive load.
fn reloads_under_load(trigger: Trigger) {
    let _alone = one_at_a_time();
    let mut server = Reloading::start(trigger);
    let load = Load::start(&server.server, 4);
    let body = vec![b'x'; 100];
    let mut generation = 1;
    let mut extra = None;
    let mut limit = 1000;
    let mut hello = "hello v0".to_string();
    for step in 1..=20u32 {
        let post_limited = |server: &Reloading| server.server.client().post("/limited", &body).status;
        if step == 10 {
            // An unknown key: rejected, nothing changes.
            let bad = config(limit, extra) + "\n[server]\nno_such_setting = 1\n";
            let (applied, said) = server.reload(&[("config.toml", &bad)]);
            assert!(!applied, "{said}");
            assert!(said.contains("no_such_setting"), "{said}");
            if trigger == Trigger::Admin {
                let answer: serde_json::Value = serde_json::from_str(&said).unwrap();
                assert_eq!(answer["outcome"], "rejected");
                assert_eq!(answer["generation"], generation);
                assert!(answer["error"]["line"].as_u64().unwrap() > 1, "{said}");
                assert!(answer["error"]["file"].as_str().unwrap().ends_with("config.toml"));
            }
            assert_eq!(server.server.get("/hello").text(), hello);
            assert_eq!(server.generation(), generation);
            // Put the good file back without a reload of its own: the next
            // step writes it again anyway.
            continue;
        }
        let files: Vec<(String, String)> = match step % 4 {
            0 => {
                extra = Some(step);
                vec![("config.toml".into(), config(limit, extra))]
            }
            1 => {
                extra = None;
                vec![("config.toml".into(), config(limit, extra))]
            }
            // Only the module: `--watch` sees one file change, one reload.
            2 => {
                hello = format!("hello v{step}");
                vec![("hello.wat".into(), module_answering(&hello))]
            }
            _ => {
                limit = if limit == 1000 { 10 } else { 1000 };
                vec![("config.toml".into(), config(limit, extra))]
            }
        };
        let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
        let (applied, said) = server.reload(&files);
        assert!(applied, "step {step}: {said}");
        generation += 1;
        assert!(
            said.contains(&format!("generation\":{generation}")) || said.contains(&format!("generation {generation} ")),
            "step {step}: {said}"
        );
        // The change is there for the very next request.
        assert_eq!(server.server.get("/hello").text(), hello, "step {step}");
        match extra {
            Some(n) => assert_eq!(server.server.get(&format!("/extra-{n}")).text(), "extra", "step {step}"),
            None => assert_eq!(
                server.server.get(&format!("/extra-{}", step - 1)).status,
                404,
                "step {step}"
            ),
        }
        let expected = if limit == 1000 { 200 } else { 413 };
        assert_eq!(post_limited(&server), expected, "step {step}, limit {limit}");
    }
    let (answered, failures) = load.finish();
    assert!(failures.is_empty(), "{} failed requests: {failures:?}", failures.len());
    assert!(answered > 100, "only {answered} requests answered during the reloads");
    let metrics = server.server.admin_get("/metrics").text();
    assert!(
        metrics.contains("serverless_wasm_config_reloads_total{result=\"applied\"} 19"),
        "{metrics}"
    );
    assert!(
        metrics.contains("serverless_wasm_config_reloads_total{result=\"rejected\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("serverless_wasm_config_generation {generation}")),
        "{metrics}"
    );
}

#[test]
fn twenty_reloads_by_post_reload_under_load_fail_no_request() {
    reloads_under_load(Trigger::Admin);
}

#[test]
fn twenty_reloads_by_sighup_under_load_fail_no_request() {
    reloads_under_load(Trigger::Sighup);
}

#[test]
fn twenty_reloads_by_watch_under_load_fail_no_request() {
    reloads_under_load(Trigger::Watch);
}

#[test]
fn a_rejected_reload_names_the_setting_or_the_route_and_changes_nothing() {
    let mut server = Reloading::start(Trigger::Admin);
    // A restart-only setting.
    let text = config(1000, None) + "\n[server]\nshards = 1\ninstance_slots_per_shard = 64\n";
    let (applied, said) = server.reload(&[("config.toml", &text)]);
    assert!(!applied, "{said}");
    let answer: serde_json::Value = serde_json::from_str(&said).unwrap();
    assert_eq!(
        answer["error"]["key"], "server.shards, server.instance_slots_per_shard",
        "{said}"
    );
    assert!(said.contains("restart"), "{said}");
    // A module that does not validate: located at its route's file_path.
    let (applied, said) = server.reload(&[
        ("config.toml", &config(1000, Some(1))),
        ("extra.wat", "(module (func (export \"handle\") (unknown_instruction)))"),
    ]);
    assert!(!applied, "{said}");
    let answer: serde_json::Value = serde_json::from_str(&said).unwrap();
    assert_eq!(answer["error"]["key"], "applications[3].file_path", "{said}");
    assert!(answer["error"]["line"].as_u64().unwrap() > 20, "{said}");
    assert!(said.contains("route extra-1"), "{said}");
    // A route asking more memory than the engine's bound.
    let text = config(1000, None).replace(
        "url_path = \"/hello\"\n",
        "url_path = \"/hello\"\nmemory_limit = \"8GiB\"\n",
    );
    let (applied, said) = server.reload(&[("config.toml", &text)]);
    assert!(!applied, "{said}");
    assert!(said.contains("memory_limit"), "{said}");
    // Nothing changed: generation 1 serves the old routes.
    assert_eq!(server.generation(), 1);
    assert_eq!(server.server.get("/hello").text(), "hello v0");
    assert_eq!(server.server.get("/extra-1").status, 404);
    // A reload within the bounds raises a route's memory.
    let text = config(1000, None).replace(
        "url_path = \"/hello\"\n",
        "url_path = \"/hello\"\nmemory_limit = \"256MiB\"\n",
    );
    let (applied, said) = server.reload(&[("config.toml", &text)]);
    assert!(applied, "{said}");
    let config: serde_json::Value = serde_json::from_str(&server.server.admin_get("/config").text()).unwrap();
    assert_eq!(config["routes"][0]["handler"]["memory_limit"], 256 << 20);
}

#[test]
fn config_shows_modules_and_digests_but_never_env_values() {
    let server = TestServer::start(
        r#"
[admin]
listen_address = "127.0.0.1:0"

[[applications]]
name = "greeting"
file_path = "{samples}/env.wat"
method = "GET"
url_path = "/greeting"
env = { greeting = "s3cr3t-value", password = "hunter2-password" }
"#,
        &[],
    );
    let response = server.admin_get("/config");
    assert_eq!(response.status, 200);
    let text = response.text();
    assert!(!text.contains("s3cr3t-value") && !text.contains("hunter2"), "{text}");
    let config: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(config["generation"], 1);
    let route = &config["routes"][0];
    assert_eq!(route["name"], "greeting");
    assert_eq!(
        route["handler"]["env_keys"],
        serde_json::json!(["greeting", "password"])
    );
    assert!(route["handler"]["address"].as_str().unwrap().ends_with("env.wat"));
    assert_eq!(route["handler"]["sha256"].as_str().unwrap().len(), 64);
    // Only POST reloads; /config is read-only.
    let mut admin = Client::connect(server.admin_addr());
    let response = admin.request("GET", "/reload", &[], b"");
    assert_eq!(response.status, 405);
    assert_eq!(response.header("allow"), Some("POST"));
}

#[test]
fn fifty_module_replacements_leave_only_the_current_generation_alive() {
    let _alone = one_at_a_time();
    let mut server = Reloading::start(Trigger::Admin);
    let shards = 2;
    let reused = |text: &str| {
        config(1000, None).replace(
            "url_path = \"/hello\"\n",
            &format!("url_path = \"/hello\"\ninstance = \"reuse\"\nwarm_instances = 1\n# {text}\n"),
        )
    };
    let load = Load::start(&server.server, 2);
    for i in 1..=50 {
        let text = format!("hello r{i}");
        let (applied, said) =
            server.reload(&[("hello.wat", &module_answering(&text)), ("config.toml", &reused(&text))]);
        assert!(applied, "reload {i}: {said}");
        assert_eq!(server.server.get("/hello").text(), text);
    }
    let (_, failures) = load.finish();
    assert!(failures.is_empty(), "{failures:?}");
    // Once the clients are gone, nothing holds an old generation.
    let reports = server.server.stats(shards);
    for report in &reports {
        assert_eq!(report["generation"], 51, "{report}");
        assert_eq!(report["generations_alive"], 1, "{report}");
        // One warm instance of /hello per shard; every other instance of
        // the 50 replaced generations is gone.
        assert_eq!(report["engine_instances"], shards as u64, "{report}");
        assert_eq!(report["routes"]["hello"]["live_instances"], 1, "{report}");
    }
}
