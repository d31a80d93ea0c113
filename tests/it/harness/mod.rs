//! The test harness: starts the real `serverless-wasm` binary on
//! 127.0.0.1 port 0 with a config written for the test, reads the bound
//! address from its log, and talks HTTP to it over real TCP. Backends
//! (echo server, redis-server) are real processes too.

pub mod client;
pub mod process;
pub mod sources;
pub mod tls;

use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

pub use client::{Client, Response};
pub use process::Process;
use process::signal as signal_process;

/// How long a server may take to start (it compiles its guests: the
/// JavaScript sample alone takes 17 s on an idle core, several times that
/// while the rest of the suite runs).
const START_TIMEOUT: Duration = Duration::from_secs(120);

pub fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn samples_dir() -> PathBuf {
    repo_dir().join("samples")
}

pub fn guests_dir() -> PathBuf {
    repo_dir().join("tests/guests")
}

/// Where `samples/components/build.sh` puts the sample components.
pub fn components_dir() -> PathBuf {
    samples_dir().join("components/build")
}

/// Where `samples/languages/build.sh` puts the guests in other languages.
pub fn languages_dir() -> PathBuf {
    samples_dir().join("languages/build")
}

/// Replaces `{samples}`, `{guests}`, `{components}` and `{languages}` in a
/// config template by absolute directories, so configs can live in a
/// temporary directory.
pub fn expand(template: &str) -> String {
    template
        .replace("{components}", &components_dir().display().to_string())
        .replace("{languages}", &languages_dir().display().to_string())
        .replace("{samples}", &samples_dir().display().to_string())
        .replace("{guests}", &guests_dir().display().to_string())
}

/// Lines a child process wrote to stderr, shared with the thread that reads
/// them, so tests can wait for a line instead of sleeping.
#[derive(Default)]
pub struct Lines {
    lines: Mutex<Vec<String>>,
    changed: Condvar,
}

impl Lines {
    pub fn push(&self, line: String) {
        self.lines.lock().unwrap().push(line);
        self.changed.notify_all();
    }

    /// Waits until a line contains `needle`; returns it.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut lines = self.lines.lock().unwrap();
        loop {
            if let Some(line) = lines.iter().find(|l| l.contains(needle)) {
                return Some(line.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            lines = self.changed.wait_timeout(lines, deadline - now).unwrap().0;
        }
    }

    /// Waits until `n` lines contain one of `needles`; returns the n-th.
    pub fn wait_for_nth(&self, needles: &[&str], n: usize, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut lines = self.lines.lock().unwrap();
        loop {
            let mut matching = lines.iter().filter(|l| needles.iter().any(|needle| l.contains(needle)));
            if let Some(line) = matching.nth(n - 1) {
                return Some(line.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            lines = self.changed.wait_timeout(lines, deadline - now).unwrap().0;
        }
    }

    /// The first line containing `needle`, waiting for it: a log line may
    /// reach us after the response that it explains. Panics with the whole
    /// log if it never comes.
    pub fn expect(&self, needle: &str) -> String {
        match self.wait_for(needle, Duration::from_secs(5)) {
            Some(line) => line,
            None => panic!("no log line contains {needle:?}:\n{}", self.all()),
        }
    }

    pub fn all(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    pub fn count(&self, needle: &str) -> usize {
        self.lines.lock().unwrap().iter().filter(|l| l.contains(needle)).count()
    }
}

/// A running server.
pub struct TestServer {
    pub process: Process,
    pub addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl TestServer {
    /// Starts the server on `config` (a template, see [`expand`]; the listen
    /// address is added) with extra command-line arguments.
    pub fn start(config: &str, args: &[&str]) -> TestServer {
        Self::try_start(config, args).unwrap_or_else(|logs| panic!("server did not start:\n{logs}"))
    }

    pub fn try_start(config: &str, args: &[&str]) -> Result<TestServer, String> {
        Self::try_start_env(config, args, &[])
    }

    /// Like [`TestServer::start`], with files (name, text) written beside
    /// the config first.
    pub fn start_with_files(config: &str, args: &[&str], files: &[(&str, &str)]) -> TestServer {
        Self::try_start_in(config, args, &[], files).unwrap_or_else(|logs| panic!("server did not start:\n{logs}"))
    }

    /// Like [`TestServer::try_start`], with extra environment variables.
    pub fn try_start_env(config: &str, args: &[&str], env: &[(&str, &str)]) -> Result<TestServer, String> {
        Self::try_start_in(config, args, env, &[])
    }

    fn try_start_in(
        config: &str,
        args: &[&str],
        env: &[(&str, &str)],
        files: &[(&str, &str)],
    ) -> Result<TestServer, String> {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let path = dir.path().join("config.toml");
        let text = format!("listen_address = \"127.0.0.1:0\"\n{}", expand(config));
        std::fs::write(&path, text).unwrap();
        let mut all_args: Vec<String> = vec![path.display().to_string()];
        all_args.extend(args.iter().map(|a| a.to_string()));
        let mut all_env = vec![("RUST_LOG", "info")];
        all_env.extend_from_slice(env);
        // Run in the config's directory: the default state_dir (embedded
        // key-value stores) lands there, not in the repository.
        let process = Process::spawn_with(server_binary(), &all_args, &all_env, |command| {
            command.current_dir(dir.path());
        });
        match process.stderr.wait_for("listening on ", START_TIMEOUT) {
            Some(line) => {
                // The address ends at a space (text logs) or a quote (JSON).
                let addr = line
                    .split("listening on ")
                    .nth(1)
                    .unwrap()
                    .split([' ', '"'])
                    .next()
                    .unwrap();
                Ok(TestServer {
                    addr: addr.parse().unwrap(),
                    process,
                    _dir: dir,
                })
            }
            None => Err(format!("{}{}", process.stderr.all(), thread_report(process.pid()))),
        }
    }

    pub fn client(&self) -> Client {
        Client::connect(self.addr)
    }

    /// One request on a new connection.
    pub fn get(&self, path: &str) -> Response {
        self.client().get(path)
    }

    pub fn logs(&self) -> &Lines {
        &self.process.stderr
    }

    /// The directory of its config file (relative paths in it resolve here).
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// The admin listener's address, from its start-up line.
    pub fn admin_addr(&self) -> std::net::SocketAddr {
        let line = self.logs().expect("admin endpoints on http://");
        let addr = line.split("admin endpoints on http://").nth(1).unwrap();
        addr.split_whitespace().next().unwrap().parse().unwrap()
    }

    /// One request to the admin listener.
    pub fn admin_get(&self, path: &str) -> Response {
        Client::connect(self.admin_addr()).get(path)
    }

    /// Asks every shard for its statistics (SIGUSR1) and returns the
    /// reports, one per shard, in shard order.
    pub fn stats(&self, shards: usize) -> Vec<serde_json::Value> {
        let before = self.logs().count(STATS_REPORT);
        process::signal(self.process.pid(), libc::SIGUSR1);
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.logs().count(STATS_REPORT) < before + shards && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut latest = shard_reports(&self.logs().all(), STATS_REPORT);
        latest.sort_by_key(|r| r["shard"].as_u64());
        latest.dedup_by_key(|r| r["shard"].as_u64());
        assert_eq!(latest.len(), shards, "reports: {latest:?}\n{}", self.logs().all());
        latest
    }

    /// SIGTERM, wait for the drain, return the logs. A server that does
    /// not stop in time is killed, and the logs it returns end with what
    /// each of its threads was doing (a stop that hung was seen once and
    /// not reproduced: the next one will be located).
    pub fn stop(mut self) -> String {
        signal_process(self.process.pid(), libc::SIGTERM);
        let _ = self.process.wait_exit(Duration::from_secs(15));
        if let Ok(None) = self.process.child.try_wait() {
            let report = thread_report(self.process.pid());
            let _ = self.process.child.kill();
            let _ = self.process.child.wait();
            return format!(
                "{}\n--- the server did not stop within 15 s{report}",
                self.process.stderr.all()
            );
        }
        self.process.stderr.all()
    }
}

/// The log line a shard writes on SIGUSR1, followed by its statistics as
/// JSON.
pub const STATS_REPORT: &str = "shard stats ";
/// The same, written when a shard stops.
pub const STOP_REPORT: &str = "shard stopped ";

/// The statistics reports (`what` is [`STATS_REPORT`] or [`STOP_REPORT`])
/// in `logs`, newest first.
pub fn shard_reports(logs: &str, what: &str) -> Vec<serde_json::Value> {
    logs.lines()
        .rev()
        .filter_map(|line| line.split_once(what))
        .map(|(_, json)| serde_json::from_str(json).unwrap_or_else(|e| panic!("bad report {json}: {e}")))
        .collect()
}

/// What each thread of a server that is still running is doing (name,
/// state, kernel wait channel and stack where readable): for a start that
/// hangs, the next person needs to know where.
fn thread_report(pid: u32) -> String {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return String::new();
    };
    let mut report = String::from("\n--- threads of the server, still running:\n");
    for task in tasks.flatten() {
        let dir = task.path();
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        let stat = read("stat");
        let state = stat
            .rsplit(") ")
            .next()
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or("?");
        report += &format!(
            "{} {} state={state} wchan={}\n{}",
            task.file_name().to_string_lossy(),
            read("comm").trim(),
            read("wchan").trim(),
            read("stack")
        );
    }
    report
}

pub fn server_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_serverless-wasm"))
}

/// Runs `serverless-wasm check` on a config template; returns (success,
/// stdout + stderr).
pub fn check(config: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, expand(config)).unwrap();
    check_file(&path)
}

/// Runs `serverless-wasm check` on a config file.
pub fn check_file(path: &Path) -> (bool, String) {
    let output = std::process::Command::new(server_binary())
        .arg("check")
        .arg(path)
        .arg("--shards")
        .arg("1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// The real echo backend (`echo-backend`), on a free port.
pub struct EchoBackend {
    /// Kept so the backend lives as long as the test.
    pub _process: Process,
    pub addr: std::net::SocketAddr,
}

impl EchoBackend {
    pub fn start(delay_ms: u64) -> EchoBackend {
        Self::start_with(&["--delay-ms", &delay_ms.to_string()])
    }

    /// The `--http` mode: a keep-alive HTTP/1.1 server that describes each
    /// request (connection number, request number on it, target).
    pub fn start_http() -> EchoBackend {
        Self::start_with(&["--http"])
    }

    fn start_with(extra: &[&str]) -> EchoBackend {
        let mut args = vec!["--listen".to_string(), "127.0.0.1:0".to_string()];
        args.extend(extra.iter().map(|a| a.to_string()));
        let process = Process::spawn(Path::new(env!("CARGO_BIN_EXE_echo-backend")), &args, &[]);
        let line = process
            .stdout
            .wait_for("listening on ", Duration::from_secs(10))
            .expect("echo-backend did not start");
        let addr = line.rsplit(' ').next().unwrap().parse().unwrap();
        EchoBackend {
            _process: process,
            addr,
        }
    }
}

/// A real redis-server on a free port, without persistence.
pub struct Redis {
    /// Kept so redis-server lives as long as the test.
    pub _process: Process,
    pub port: u16,
}

impl Redis {
    /// `None` when redis-server is not installed (the test says so and
    /// fails: `.ci/run` installs it).
    pub fn start() -> Redis {
        Redis::start_with(&[])
    }

    /// With extra arguments (`--requirepass`, ...).
    pub fn start_with(extra: &[&str]) -> Redis {
        let port = free_port();
        let mut args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "yes",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let binary = which("redis-server")
            .expect("redis-server is not installed (bash .ci/run installs it: apt-get install redis-server)");
        let process = Process::spawn(&binary, &args, &[]);
        process
            .stdout
            .wait_for("Ready to accept connections", Duration::from_secs(15))
            .unwrap_or_else(|| panic!("redis-server did not start: {}", process.stdout.all()));
        Redis {
            _process: process,
            port,
        }
    }
}

pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
}

/// A port where connections are refused for as long as the returned socket
/// lives: bound (so no other process can take it) but not listening.
pub fn refusing_port() -> (socket2::Socket, u16) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&"127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap().into())
        .unwrap();
    let port = socket.local_addr().unwrap().as_socket().unwrap().port();
    (socket, port)
}

/// A port that was free a moment ago (for servers that cannot take port 0).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
