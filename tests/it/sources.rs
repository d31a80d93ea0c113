//! Modules from anywhere: `file_path` as an HTTP(S), S3 or OCI address,
//! against real servers on loopback, with the content cache on disk.

use std::path::PathBuf;

use crate::harness::TestServer;
use crate::harness::sources::{
    CNCF_WASM_LAYER, FileServer, Registry, S3_SECRET_KEY, S3Server, SPIN_WASM_LAYER, run_command, start_fails,
};
use crate::harness::{components_dir, refusing_port};

/// A core module that answers `text` (plus `padding` bytes of data, to
/// make it as large as a test needs).
fn answering(text: &str, padding: usize) -> Vec<u8> {
    let wat = format!(
        r#"(module
  (import "env" "response_set_status_line" (func $status (param i32 i32 i64)))
  (import "env" "response_set_body" (func $body (param i32 i64)))
  (memory (export "memory") {pages})
  (data (i32.const 0) "OK")
  (data (i32.const 16) "{text}")
  (data (i32.const 4096) "{padding}")
  (func (export "handle")
    (call $status (i32.const 200) (i32.const 0) (i64.const 2))
    (call $body (i32.const 16) (i64.const {len}))))"#,
        pages = 1 + padding / 65536 + 1,
        len = text.len(),
        padding = "x".repeat(padding),
    );
    wat::parse_str(wat).unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// A config file for one route on `file_path` (and the extra route keys),
/// with the content cache in `cache`; `sources` adds to `[sources]`.
struct Setup {
    dir: tempfile::TempDir,
    cache: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("module-cache");
        Setup { dir, cache }
    }

    /// The config text: `routes` are `(url_path, file_path, extra keys)`.
    fn config(&self, routes: &[(&str, &str, &str)], sources: &str) -> String {
        let mut text = format!(
            "[sources]\ncache_dir = \"{}\"\nfetch_attempts = 2\n{sources}\n",
            self.cache.display()
        );
        for (path, file, extra) in routes {
            text += &format!(
                "\n[[applications]]\nmethod = \"GET\"\nurl_path = \"{path}\"\nfile_path = \"{file}\"\n{extra}\n"
            );
        }
        text
    }

    /// Writes a complete config file (for commands run to their end).
    fn write(&self, name: &str, config: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, format!("listen_address = \"127.0.0.1:0\"\n{config}")).unwrap();
        path
    }

    fn cache_bytes(&self) -> u64 {
        std::fs::read_dir(&self.cache)
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }
}

fn start(config: &str, env: &[(&str, &str)]) -> TestServer {
    TestServer::try_start_env(config, &["--shards", "1"], env).unwrap_or_else(|logs| panic!("did not start:\n{logs}"))
}

fn env_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[test]
fn a_pinned_http_module_serves_then_starts_from_the_cache_with_the_server_gone() {
    let files = FileServer::start();
    let module = answering("from http", 0);
    let url = files.put("hello.wasm", &module);
    let setup = Setup::new();
    let pin = format!("sha256 = \"{}\"", sha256(&module));
    let config = setup.config(&[("/hello", &url, &pin)], "");

    let server = start(&config, &[]);
    assert_eq!(server.get("/hello").text(), "from http");
    // The fetch's runtime and its resolver threads are gone once it is
    // done: main, log-writer, control, and the shard's two.
    assert_eq!(server.process.threads(), 4 + 2, "{:?}", server.process.thread_names());
    let logs = server.stop();
    assert!(logs.contains("module fetched"), "{logs}");
    assert!(logs.contains(&sha256(&module)), "the digest loaded is logged:\n{logs}");

    drop(files);
    let server = start(&config, &[]);
    assert_eq!(server.get("/hello").text(), "from http");
    let logs = server.stop();
    assert!(logs.contains("from=module cache"), "{logs}");
    assert!(!logs.contains("module fetched"), "{logs}");
}

#[test]
fn plain_http_needs_a_digest_and_a_wrong_digest_refuses_to_start() {
    let files = FileServer::start();
    let module = answering("from http", 0);
    let url = files.put("hello.wasm", &module);
    let setup = Setup::new();

    let unpinned = setup.write("unpinned.toml", &setup.config(&[("/hello", &url, "")], ""));
    let (code, output) = start_fails(&unpinned, &[]);
    assert_ne!(code, Some(0));
    assert!(output.contains("an http:// module needs a sha256"), "{output}");

    let wrong = "0".repeat(64);
    let pinned = setup.write(
        "wrong.toml",
        &setup.config(&[("/hello", &url, &format!("sha256 = \"{wrong}\""))], ""),
    );
    let (code, output) = start_fails(&pinned, &[]);
    assert_ne!(code, Some(0));
    for part in [
        "route GET /hello",
        &url,
        "sha256 mismatch",
        &format!("expected {wrong}"),
        &format!("received {}", sha256(&module)),
    ] {
        assert!(output.contains(part), "{part:?} missing from:\n{output}");
    }
}

#[test]
fn missing_unreachable_and_oversized_modules_fail_clearly() {
    let files = FileServer::start();
    let big = answering("big", 300 << 10);
    let big_url = files.put("big.wasm", &big);
    let setup = Setup::new();
    let missing_url = format!("http://127.0.0.1:{}/missing.wasm", files.port);
    let pin = |bytes: &[u8]| format!("sha256 = \"{}\"", sha256(bytes));

    let missing = setup.write("missing.toml", &setup.config(&[("/m", &missing_url, &pin(b"x"))], ""));
    let (code, output) = start_fails(&missing, &[]);
    assert_ne!(code, Some(0));
    assert!(
        output.contains(&format!("cannot fetch {missing_url}")) && output.contains("404"),
        "{output}"
    );
    assert!(!output.contains("after 2 attempts"), "a 404 is not retried:\n{output}");

    let (_closed, port) = refusing_port();
    let unreachable_url = format!("http://127.0.0.1:{port}/hello.wasm");
    let unreachable = setup.write(
        "unreachable.toml",
        &setup.config(&[("/u", &unreachable_url, &pin(b"x"))], ""),
    );
    let (code, output) = start_fails(&unreachable, &[]);
    assert_ne!(code, Some(0));
    assert!(
        output.contains("cannot connect") && output.contains("after 2 attempts"),
        "{output}"
    );

    // A server that announces more than it sends: an interrupted transfer.
    let short_url = short_transfer_server();
    let short = setup.write("short.toml", &setup.config(&[("/s", &short_url, &pin(b"x"))], ""));
    let (code, output) = start_fails(&short, &[]);
    assert_ne!(code, Some(0));
    assert!(output.contains(&format!("cannot fetch {short_url}")), "{output}");
    assert!(
        output.contains("after 2 attempts"),
        "a cut transfer is retried:\n{output}"
    );

    let oversized = setup.write(
        "oversized.toml",
        &setup.config(&[("/big", &big_url, &pin(&big))], "max_module_bytes = \"256KiB\""),
    );
    let (code, output) = start_fails(&oversized, &[]);
    assert_ne!(code, Some(0));
    assert!(
        output.contains("larger than max_module_bytes (262144 bytes)"),
        "{output}"
    );
    assert!(output.contains("route GET /big"), "{output}");
}

#[test]
fn s3_modules_follow_the_aws_environment_and_never_show_the_secret() {
    let s3 = S3Server::start();
    let module = answering("from s3", 0);
    s3.put("modules", "v1/hello.wasm", &module);
    let env = s3.env();
    let env = env_refs(&env);
    let setup = Setup::new();

    // Unpinned: fetched at every start.
    let unpinned = setup.config(&[("/hello", "s3://modules/v1/hello.wasm", "")], "");
    let server = start(&unpinned, &env);
    assert_eq!(server.get("/hello").text(), "from s3");
    let logs = server.stop();
    assert!(logs.contains("module fetched"), "{logs}");

    // A missing object: refused, named, not retried.
    let missing = setup.write(
        "missing.toml",
        &setup.config(&[("/gone", "s3://modules/v1/gone.wasm", "")], ""),
    );
    let (code, output) = start_fails(&missing, &env);
    assert_ne!(code, Some(0));
    assert!(
        output.contains("cannot fetch s3://modules/v1/gone.wasm: no such object"),
        "{output}"
    );

    // A wrong pin is refused with both digests.
    let wrong = setup.write(
        "wrong.toml",
        &setup.config(
            &[(
                "/hello",
                "s3://modules/v1/hello.wasm",
                &format!("sha256 = \"{}\"", "1".repeat(64)),
            )],
            "",
        ),
    );
    let (code, output) = start_fails(&wrong, &env);
    assert_ne!(code, Some(0));
    assert!(
        output.contains(&format!("expected {}, received {}", "1".repeat(64), sha256(&module))),
        "{output}"
    );

    // Pinned: starts from the cache once S3 is gone; unpinned does not.
    let pinned = setup.config(
        &[(
            "/hello",
            "s3://modules/v1/hello.wasm",
            &format!("sha256 = \"{}\"", sha256(&module)),
        )],
        "",
    );
    let logs = start(&pinned, &env).stop();
    drop(s3);
    let server = start(&pinned, &env);
    assert_eq!(server.get("/hello").text(), "from s3");
    let offline_logs = server.stop();
    assert!(offline_logs.contains("from=module cache"), "{offline_logs}");
    let (code, output) = start_fails(&setup.write("unpinned.toml", &unpinned), &env);
    assert_ne!(code, Some(0), "an unpinned module never starts stale:\n{output}");
    assert!(output.contains("cannot fetch s3://modules/v1/hello.wasm"), "{output}");

    for text in [&logs, &offline_logs, &output] {
        assert!(!text.contains(S3_SECRET_KEY), "the secret key was logged:\n{text}");
    }
}

#[test]
fn oci_modules_in_both_layouts_and_a_pinned_manifest_starts_offline() {
    let registry = Registry::start();
    let module = answering("from oci", 0);
    registry.push("team/hello", "v1", &module, CNCF_WASM_LAYER);
    let component = std::fs::read(components_dir().join("hello.wasm"))
        .expect("the sample components are built by samples/components/build.sh (tests/run.sh runs it)");
    let manifest = registry.push("team/component", "v1", &component, SPIN_WASM_LAYER);

    // Docker's credentials are used (the registry ignores them) and never shown.
    let docker = tempfile::tempdir().unwrap();
    let password = "hunter2-registry-password";
    let auth = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("robot:{password}"));
    std::fs::write(
        docker.path().join("config.json"),
        format!(r#"{{"auths": {{"{}": {{"auth": "{auth}"}}}}}}"#, registry.host()),
    )
    .unwrap();
    let docker_env = docker.path().display().to_string();
    let env = [("DOCKER_CONFIG", docker_env.as_str())];

    let setup = Setup::new();
    let host = registry.host();
    let insecure = format!("oci_insecure_registries = [\"{host}\"]");
    let config = setup.config(
        &[
            ("/hello", &format!("oci://{host}/team/hello:v1"), ""),
            ("/component", &format!("oci://{host}/team/component@{manifest}"), ""),
        ],
        &insecure,
    );
    let server = start(&config, &env);
    assert_eq!(server.get("/hello").text(), "from oci");
    assert!(serves_the_component(&server));
    let logs = server.stop();
    assert!(!logs.contains(password) && !logs.contains(&auth), "{logs}");

    // Without the insecure setting, plain HTTP is not spoken.
    let secure = setup.write(
        "secure.toml",
        &setup.config(&[("/hello", &format!("oci://{host}/team/hello:v1"), "")], ""),
    );
    let (code, output) = start_fails(&secure, &env);
    assert_ne!(code, Some(0));
    assert!(
        output.contains(&format!("cannot fetch oci://{host}/team/hello:v1")),
        "{output}"
    );

    // A tag that is not there.
    let missing = setup.write(
        "missing.toml",
        &setup.config(&[("/x", &format!("oci://{host}/team/hello:v9"), "")], &insecure),
    );
    let (code, output) = start_fails(&missing, &env);
    assert_ne!(code, Some(0));
    assert!(output.contains("not found") || output.contains("unknown"), "{output}");

    // A pin that is not the layer's content is refused with both digests.
    let wrong = setup.write(
        "wrong.toml",
        &setup.config(
            &[(
                "/hello",
                &format!("oci://{host}/team/hello:v1"),
                &format!("sha256 = \"{}\"", "2".repeat(64)),
            )],
            &insecure,
        ),
    );
    let (code, output) = start_fails(&wrong, &env);
    assert_ne!(code, Some(0));
    assert!(
        output.contains(&format!("expected {}, received {}", "2".repeat(64), sha256(&module))),
        "{output}"
    );

    // The pinned manifest starts from the cache with the registry gone.
    drop(registry);
    let pinned_only = setup.config(
        &[("/component", &format!("oci://{host}/team/component@{manifest}"), "")],
        &insecure,
    );
    let server = start(&pinned_only, &env);
    assert!(serves_the_component(&server));
    let logs = server.stop();
    assert!(logs.contains("from=module cache"), "{logs}");
}

/// A one-shot HTTP server on loopback that announces 100,000 bytes, sends
/// ten and closes, for every connection (the retry comes back); returns
/// its URL. It lives until the test process ends.
fn short_transfer_server() -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n0123456789");
        }
    });
    format!("http://127.0.0.1:{port}/short.wasm")
}

fn serves_the_component(server: &TestServer) -> bool {
    server
        .get("/component")
        .text()
        .contains("Hello from a wasi:http component")
}

#[test]
fn the_cache_stays_under_its_bound_and_compile_fills_both_caches() {
    let files = FileServer::start();
    let first = answering("first", 40 << 10);
    let second = answering("second", 40 << 10);
    let (first_url, second_url) = (files.put("first.wasm", &first), files.put("second.wasm", &second));
    let setup = Setup::new();
    let pin = |bytes: &[u8]| format!("sha256 = \"{}\"", sha256(bytes));
    let bound = format!("cache_max_bytes = {}", second.len() + 1024);
    let compile_cache = setup.dir.path().join("compiled");
    let with_compile_cache = |config: String| {
        format!(
            "[server]\ncompile_cache_dir = \"{}\"\n{config}",
            compile_cache.display()
        )
    };

    let one = setup.write(
        "one.toml",
        &with_compile_cache(setup.config(&[("/first", &first_url, &pin(&first))], &bound)),
    );
    let (ok, output) = run_command("compile", &one, &[]);
    assert!(ok, "{output}");
    assert!(
        output.contains("modules cached in") && output.contains("guests compiled into"),
        "{output}"
    );
    assert!(setup.cache_bytes() >= first.len() as u64);
    assert!(std::fs::read_dir(&compile_cache).unwrap().count() >= 1);

    // The second module replaces the first within the bound.
    let two = with_compile_cache(setup.config(&[("/second", &second_url, &pin(&second))], &bound));
    let (ok, output) = run_command("compile", &setup.write("two.toml", &two), &[]);
    assert!(ok, "{output}");
    assert!(
        setup.cache_bytes() <= second.len() as u64 + 1024,
        "{} bytes",
        setup.cache_bytes()
    );

    // Served from both caches, with the file server gone.
    drop(files);
    let server = start(&two, &[]);
    assert_eq!(server.get("/second").text(), "second");
    let logs = server.stop();
    assert!(
        logs.contains("from=module cache") && logs.contains("loaded from the compile cache"),
        "{logs}"
    );

    // check shows the digest loaded.
    let (ok, output) = run_command("check", &setup.write("two.toml", &two), &[]);
    assert!(ok, "{output}");
    assert!(output.contains(&format!("(sha256 {})", sha256(&second))), "{output}");
}
