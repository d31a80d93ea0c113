//! Guests written in C, Go, AssemblyScript and JavaScript, built from source
//! by `samples/languages/build.sh`, served over real TCP. Each sample
//! answers by the last part of its path: `hello` (and prints a line),
//! `json` (a POSTed body round trip), `fail`, and for WASI preview 1
//! modules `sleep` and `exit`.

use std::io::Read;
use std::path::PathBuf;

use crate::components::sleeping_does_not_block_the_shard;
use crate::harness::client::format_request;
use crate::harness::{TestServer, languages_dir};

fn language_guest(file: &str) -> PathBuf {
    let path = languages_dir().join(file);
    assert!(
        path.exists(),
        "run `bash samples/languages/build.sh` first ({} is missing)",
        path.display()
    );
    path
}

/// A route serving the sample `file`, with more `settings` lines.
fn route(file: &str, method: &str, url_path: &str, settings: &str) -> String {
    format!(
        "[[applications]]\nfile_path = \"{}\"\nmethod = \"{method}\"\nurl_path = \"{url_path}\"\n{settings}\n",
        language_guest(file).display()
    )
}

/// One shard serving `file` as `GET {prefix}/*` and `POST {prefix}/json`,
/// with the compile cache the samples share (a JavaScript component takes
/// seconds to compile; once per build of the samples, not per test).
fn serve(file: &str, prefix: &str, route_settings: &str) -> TestServer {
    let config = format!(
        "[server]\ncompile_cache_dir = \"{{languages}}/compiled\"\n{}{}",
        route(file, "GET", &format!("{prefix}/*"), route_settings),
        route(file, "POST", &format!("{prefix}/json"), route_settings)
    );
    TestServer::start(&config, &["--shards", "1"])
}

/// `GET {prefix}/hello` answers `body`, and the line the guest printed
/// reaches the log tagged with the route.
fn says_hello(server: &TestServer, prefix: &str, body: &str, printed: &str) {
    let response = server.get(&format!("{prefix}/hello"));
    assert_eq!((response.status, response.text().as_str()), (200, body));
    let line = server.logs().expect(&format!("{printed} {prefix}/hello"));
    assert!(line.contains(&format!("route=GET {prefix}/*")), "{line}");
}

/// POSTs `sent` to `{prefix}/json`; returns the parsed answer.
fn json_round_trip(server: &TestServer, prefix: &str, sent: &serde_json::Value) -> serde_json::Value {
    let response = server
        .client()
        .post(&format!("{prefix}/json"), sent.to_string().as_bytes());
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("content-type"), Some("application/json"));
    serde_json::from_str(&response.text()).unwrap_or_else(|e| panic!("{e}: {}", response.text()))
}

/// `GET {prefix}/fail` is a 500, with the guest's own words and the
/// failure in the log, both naming the route; the route keeps answering.
/// (Read raw: a JavaScript component sends its 500's head itself and then
/// fails, so its body is cut short and the connection closed.)
fn fails_cleanly(server: &TestServer, prefix: &str, guest_said: &str) {
    let mut client = server.client();
    client.send(&format_request(
        "GET",
        &format!("{prefix}/fail"),
        &[("connection", "close")],
        b"",
    ));
    let mut answer = Vec::new();
    client.stream.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 500 "), "{answer}");
    let route = format!("route=GET {prefix}/*");
    let said = server.logs().expect(guest_said);
    assert!(said.contains(&route), "{said}");
    let failure = server.logs().expect("status=500");
    assert!(failure.contains(&route), "{failure}");
    assert_eq!(server.get(&format!("{prefix}/hello")).status, 200);
}

#[test]
fn c_module_with_wasi_libc() {
    let server = serve("c-handler.wasm", "/c", "");
    says_hello(&server, "/c", "Hello from C\n", "guest: hello from C: GET");

    let sent = serde_json::json!({"items": [1, 2, 3], "nested": {"ok": true}});
    let answer = json_round_trip(&server, "/c", &sent);
    assert_eq!(answer["language"], "c");
    assert_eq!(answer["received"], sent, "{answer}");
    assert_eq!(server.client().post("/c/json", b"not json").status, 400);

    fails_cleanly(&server, "/c", "guest: about to abort");
    sleeping_does_not_block_the_shard(&server, "/c/sleep", "/c/hello");

    // exit(0) after building the response answers it; exit(3) is a 500.
    let exited = server.get("/c/exit");
    assert_eq!(
        (exited.status, exited.text().as_str()),
        (200, "answered, then exit(0)\n")
    );
    assert_eq!(server.get("/c/exit-3").status, 500);
    let line = server.logs().expect("guest exited with status 3");
    assert!(line.contains("route=GET /c/*"), "{line}");
}

#[test]
fn go_module_built_for_wasip1() {
    let server = serve("go-handler.wasm", "/go", "");
    says_hello(&server, "/go", "Hello from Go\n", "guest: hello from Go: GET");

    let answer = json_round_trip(&server, "/go", &serde_json::json!({"name": "Ada"}));
    assert_eq!(answer["greeting"], "Hello, Ada", "{answer}");
    assert_eq!(answer["language"], "go");

    // A panic: Go's runtime prints it in many small writes, which reach the
    // log as whole lines.
    fails_cleanly(&server, "/go", "guest: panic: the handler failed on purpose");
    server.logs().expect("guest: goroutine 1 [running]:");
    sleeping_does_not_block_the_shard(&server, "/go/sleep", "/go/hello");

    let exited = server.get("/go/exit");
    assert_eq!(
        (exited.status, exited.text().as_str()),
        (200, "answered, then os.Exit(0)\n")
    );
}

/// A reused Go instance runs `_initialize` (the Go runtime's start) once and
/// then serves many requests; one that exits is replaced.
#[test]
fn reused_go_instances_start_once_and_are_replaced_after_exit() {
    let server = serve("go-handler.wasm", "/go", "instance = \"reuse\"\nwarm_instances = 0");
    let created = |server: &TestServer| server.stats(1)[0]["routes"]["GET /go/*"]["instances_created"].as_u64();
    assert_eq!(server.get("/go/hello").status, 200);
    let first = created(&server);
    for _ in 0..5 {
        assert_eq!(server.get("/go/hello").status, 200);
    }
    assert_eq!(created(&server), first, "one instance serves them all");
    assert_eq!(server.get("/go/exit").status, 200);
    assert_eq!(server.get("/go/hello").status, 200);
    assert_eq!(
        created(&server),
        first.map(|n| n + 1),
        "an instance whose program exited is not reused"
    );
}

#[test]
fn assemblyscript_module_on_the_original_abi() {
    let server = serve("as-handler.wasm", "/as", "");
    says_hello(
        &server,
        "/as",
        "Hello from AssemblyScript\n",
        "guest: hello from AssemblyScript:",
    );

    let sent = serde_json::json!({"name": "Ada", "tags": ["x"]});
    let answer = json_round_trip(&server, "/as", &sent);
    assert_eq!(answer["received"], sent, "{answer}");
    fails_cleanly(&server, "/as", "guest: abort: the handler failed on purpose");
}

#[test]
fn javascript_component_from_componentize_js() {
    let server = serve("js-handler.wasm", "/js", "");
    says_hello(
        &server,
        "/js",
        "Hello from JavaScript\n",
        "guest: hello from JavaScript: GET",
    );

    let answer = json_round_trip(&server, "/js", &serde_json::json!({"name": "Ada", "age": 36}));
    assert_eq!(answer["greeting"], "Hello, Ada", "{answer}");
    let mut keys: Vec<String> = serde_json::from_value(answer["keys"].clone()).unwrap();
    keys.sort();
    assert_eq!(keys, ["age", "name"]);
    assert_eq!(server.client().post("/js/json", b"{").status, 400);

    fails_cleanly(&server, "/js", "the handler failed on purpose");
    sleeping_does_not_block_the_shard(&server, "/js/sleep", "/js/hello");
}

#[test]
fn c_component_through_the_preview1_adapter() {
    let server = serve("c-component.wasm", "/cc", "");
    says_hello(
        &server,
        "/cc",
        "Hello from a C component\n",
        "guest: hello from a C component: GET",
    );

    let response = server.get("/cc/about.json");
    assert_eq!(response.status, 200);
    let answer: serde_json::Value = serde_json::from_str(&response.text()).unwrap();
    assert_eq!(answer["language"], "c");
    assert_eq!(answer["path"], "/cc/about.json");
    fails_cleanly(&server, "/cc", "guest: C component about to abort");
}

/// An ordinary C program (a WASI command) is a handler with
/// `function = "_start"`: `main` runs per request in a fresh instance, even
/// on a route that asks for reuse.
#[test]
fn a_wasi_command_serves_with_its_main() {
    let server = serve("c-command.wasm", "/cmd", "function = \"_start\"\ninstance = \"reuse\"");
    for _ in 0..3 {
        let response = server.get("/cmd/hello");
        assert_eq!((response.status, response.text().as_str()), (200, "Hello from C\n"));
    }
    let printed = server.logs().wait_for_nth(
        &["guest: hello from C: GET /cmd/hello"],
        3,
        std::time::Duration::from_secs(5),
    );
    assert!(printed.is_some(), "{}", server.logs().all());
    let exited = server.get("/cmd/exit");
    assert_eq!(exited.status, 200);
    assert_eq!(server.get("/cmd/exit-3").status, 500);
}

#[test]
fn check_names_what_a_module_imports() {
    let (ok, text) = crate::harness::check(&format!(
        "listen_address = \"127.0.0.1:0\"\n{}{}{}",
        route("go-handler.wasm", "GET", "/go", ""),
        route("c-command.wasm", "GET", "/cmd", "function = \"_start\""),
        route("as-handler.wasm", "GET", "/as", ""),
    ));
    assert!(ok, "{text}");
    for kind in [
        "WASI preview 1 reactor: _initialize once per instance",
        "WASI preview 1 command: an instance per request",
        "core module (serverless-wasm ABI);",
    ] {
        assert!(text.contains(kind), "{kind:?} in {text}");
    }
}
