//! Real module sources on loopback, started and stopped by the tests: an
//! HTTP file server (Python's `http.server`), an S3-compatible server
//! (moto in server mode, filled with boto3) and an OCI registry (Debian's
//! `docker-registry`, filled with oci-client's push).

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{Process, free_port, server_binary, which};

/// The S3 credentials the tests use; the secret must never reach a log.
pub const S3_ACCESS_KEY: &str = "AKIATESTSERVERLESS";
pub const S3_SECRET_KEY: &str = "s3cr3t-never-logged-0123456789";

/// Waits until something accepts connections on `port`.
fn wait_listening(port: u16, process: &Process, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not start on port {port}:\n{}{}",
            process.stdout.all(),
            process.stderr.all()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `python3 -m http.server` serving a directory.
pub struct FileServer {
    _process: Process,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl FileServer {
    pub fn start() -> FileServer {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let args: Vec<String> = ["-m", "http.server", "--bind", "127.0.0.1", "--directory"]
            .iter()
            .map(|s| s.to_string())
            .chain([dir.path().display().to_string(), port.to_string()])
            .collect();
        let process = Process::spawn(Path::new("python3"), &args, &[]);
        wait_listening(port, &process, "python3 -m http.server");
        FileServer {
            _process: process,
            port,
            dir,
        }
    }

    /// Puts a file and returns its URL.
    pub fn put(&self, name: &str, bytes: &[u8]) -> String {
        std::fs::write(self.dir.path().join(name), bytes).unwrap();
        format!("http://127.0.0.1:{}/{name}", self.port)
    }
}

/// moto's S3 server.
pub struct S3Server {
    _process: Process,
    pub port: u16,
}

impl S3Server {
    pub fn start() -> S3Server {
        let binary =
            which("moto_server").expect("moto_server is not installed (tests/run.sh installs moto[server] with pip)");
        let port = free_port();
        let args: Vec<String> = vec!["-H".into(), "127.0.0.1".into(), "-p".into(), port.to_string()];
        let process = Process::spawn(&binary, &args, &[]);
        wait_listening(port, &process, "moto_server");
        S3Server {
            _process: process,
            port,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment a server needs to reach this S3, as AWS tools take it.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY.into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
        ]
    }

    /// Creates the bucket if needed and puts an object, with boto3 (the
    /// AWS SDK for Python, which moto brings).
    pub fn put(&self, bucket: &str, key: &str, bytes: &[u8]) {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), bytes).unwrap();
        let script = r#"
import sys, boto3
endpoint, access, secret, bucket, key, path = sys.argv[1:]
s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=access,
                  aws_secret_access_key=secret, region_name="us-east-1")
try:
    s3.create_bucket(Bucket=bucket)
except s3.exceptions.BucketAlreadyOwnedByYou:
    pass
with open(path, "rb") as f:
    s3.put_object(Bucket=bucket, Key=key, Body=f.read())
"#;
        let status = std::process::Command::new("python3")
            .args([
                "-c",
                script,
                &self.endpoint(),
                S3_ACCESS_KEY,
                S3_SECRET_KEY,
                bucket,
                key,
            ])
            .arg(file.path())
            .status()
            .unwrap();
        assert!(status.success(), "boto3 put_object failed");
    }
}

/// Debian's `docker-registry` (the CNCF distribution registry), plain HTTP
/// on loopback, storing under a temporary directory.
pub struct Registry {
    _process: Process,
    pub port: u16,
    _dir: tempfile::TempDir,
}

/// How an artifact's wasm layer is labelled.
pub const CNCF_WASM_LAYER: &str = "application/wasm";
pub const SPIN_WASM_LAYER: &str = "application/vnd.wasm.content.layer.v1+wasm";

impl Registry {
    pub fn start() -> Registry {
        let binary = which("docker-registry")
            .or_else(|| Some(PathBuf::from("/usr/bin/docker-registry")).filter(|p| p.exists()))
            .expect("docker-registry is not installed (tests/run.sh installs it with apt-get)");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let args = vec!["serve".to_string(), config.display().to_string()];
        let process = Process::spawn(&binary, &args, &[]);
        wait_listening(port, &process, "docker-registry");
        Registry {
            _process: process,
            port,
            _dir: dir,
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Pushes `bytes` as a one-layer wasm artifact (layer type `media_type`)
    /// to `repository:tag`; returns the manifest's digest (`sha256:…`).
    pub fn push(&self, repository: &str, tag: &str, bytes: &[u8], media_type: &str) -> String {
        use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
        let client = oci_client::Client::new(ClientConfig {
            protocol: ClientProtocol::HttpsExcept(vec![self.host()]),
            ..ClientConfig::default()
        });
        let reference = oci_client::Reference::with_tag(self.host(), repository.into(), tag.into());
        let layers = vec![ImageLayer::new(bytes.to_vec(), media_type.into(), None)];
        // The CNCF wasm artifact's config media type.
        let config = Config::new(b"{}".to_vec(), "application/vnd.wasm.config.v0+json".into(), None);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            client
                .push(
                    &reference,
                    &layers,
                    config,
                    &oci_client::secrets::RegistryAuth::Anonymous,
                    None,
                )
                .await
                .unwrap_or_else(|e| panic!("push to {reference} failed: {e}"));
            let (_, digest) = client
                .pull_image_manifest(&reference, &oci_client::secrets::RegistryAuth::Anonymous)
                .await
                .unwrap();
            digest
        })
    }
}

/// Runs the server on a config that must not start; returns its exit code
/// and everything it wrote.
pub fn start_fails(config: &Path, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let args = vec![config.display().to_string(), "--shards".into(), "1".into()];
    let mut process = Process::spawn(server_binary(), &args, env);
    let code = process.wait_exit(Duration::from_secs(90));
    std::thread::sleep(Duration::from_millis(100));
    (code, format!("{}{}", process.stdout.all(), process.stderr.all()))
}

/// Runs `serverless-wasm <command> <config>` to its end.
pub fn run_command(command: &str, config: &Path, env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = std::process::Command::new(server_binary());
    cmd.arg(command).arg(config).args(["--shards", "1"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let output = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}
