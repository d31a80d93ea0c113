//! Fetching modules over the network, off the shards: a current-thread
//! tokio runtime on the thread that asked (the main thread at start), a
//! few fetches at once, each attempt under `fetch_timeout_ms` and
//! `max_module_bytes`, transient failures retried with backoff.
//!
//! - `http`: `https://` and pinned `http://` URLs (reqwest);
//! - `s3`: `s3://bucket/key` (object_store, configured like AWS tools);
//! - `oci`: `oci://registry/repository:tag|@sha256:…` (oci-client, with
//!   Docker's credentials).

mod http;
mod oci;
mod s3;

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::address::ModuleSource;
use super::digest::Sha256Digest;
use super::progress::{Progress, Step, Unit};
use crate::config::SourcesConfig;

/// Modules fetched at once: enough to overlap round trips, few enough not
/// to look like a flood to a registry.
const FETCHES_AT_ONCE: usize = 4;
/// How long the fetch runtime waits for its blocking tasks (name lookups,
/// credential helpers) once every fetch is done or given up.
const RUNTIME_SHUTDOWN: Duration = Duration::from_secs(1);
/// The first retry waits this long; each next one twice as long.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// What one fetch brought back.
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub elapsed: Duration,
}

/// Why one attempt failed, and whether another might succeed.
#[derive(Debug)]
pub(crate) struct Failure {
    transient: bool,
    message: String,
}

impl Failure {
    fn transient(message: impl Into<String>) -> Failure {
        Failure {
            transient: true,
            message: message.into(),
        }
    }

    fn permanent(message: impl Into<String>) -> Failure {
        Failure {
            transient: false,
            message: message.into(),
        }
    }
}

/// Fetches `jobs` (a source and, when the route pins it, the digest its
/// bytes must have), a few at a time; one result per job, in order.
pub fn fetch_all(
    settings: &SourcesConfig,
    jobs: &[(ModuleSource, Option<Sha256Digest>)],
    progress: &Progress,
) -> Vec<Result<Fetched, String>> {
    let failed_all = |why: String| jobs.iter().map(|_| Err(why.clone())).collect();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return failed_all(format!("cannot start the fetch runtime: {e}")),
    };
    let fetcher = match Fetcher::new(settings) {
        Ok(fetcher) => Arc::new(fetcher),
        Err(e) => return failed_all(e),
    };
    let results = runtime.block_on(async {
        let turns = Arc::new(tokio::sync::Semaphore::new(FETCHES_AT_ONCE));
        let mut tasks = tokio::task::JoinSet::new();
        for (index, (source, pin)) in jobs.iter().cloned().enumerate() {
            let (fetcher, turns, progress) = (fetcher.clone(), turns.clone(), progress.clone());
            tasks.spawn(async move {
                let _turn = turns.acquire().await;
                (index, fetcher.fetch(&source, pin, &progress).await)
            });
        }
        let mut results: Vec<Result<Fetched, String>> = failed_all("the fetch did not finish".into());
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok((index, result)) => results[index] = result,
                Err(e) => tracing::error!("a fetch task failed: {e}"),
            }
        }
        results
    });
    // A credential helper that never returns must not hold the start: its
    // blocking task is abandoned (it ends with the helper) instead of
    // waited for, as dropping the runtime would.
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    results
}

/// The clients, built once per batch of fetches.
struct Fetcher {
    settings: SourcesConfig,
    http: reqwest::Client,
    oci: oci_client::Client,
}

impl Fetcher {
    fn new(settings: &SourcesConfig) -> Result<Fetcher, String> {
        Ok(Fetcher {
            settings: settings.clone(),
            http: http::client(settings)?,
            oci: oci::client(settings),
        })
    }

    /// One module, with retries.
    async fn fetch(
        &self,
        source: &ModuleSource,
        pin: Option<Sha256Digest>,
        progress: &Progress,
    ) -> Result<Fetched, String> {
        let started = Instant::now();
        let attempts = self.settings.fetch_attempts.max(1);
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let failure = match self.attempt(source, pin, progress).await {
                Ok(bytes) => {
                    return Ok(Fetched {
                        bytes,
                        elapsed: started.elapsed(),
                    });
                }
                Err(failure) => failure,
            };
            if !failure.transient || attempt >= attempts {
                let tries = if attempt > 1 {
                    format!(" (after {attempt} attempts)")
                } else {
                    String::new()
                };
                return Err(format!("{}{tries}", failure.message));
            }
            tracing::warn!(source = %source, attempt, "fetch failed, retrying in {} ms: {}", backoff.as_millis(), failure.message);
            tokio::time::sleep(backoff).await;
            backoff *= 2;
            attempt += 1;
        }
    }

    /// One attempt, under `fetch_timeout_ms`.
    async fn attempt(
        &self,
        source: &ModuleSource,
        pin: Option<Sha256Digest>,
        progress: &Progress,
    ) -> Result<Vec<u8>, Failure> {
        let mut body = Body {
            bytes: Vec::new(),
            max: self.settings.max_module_bytes,
            expected: None,
            step: progress.step(format!("fetching {source}"), Unit::Bytes, None),
        };
        let transfer = async {
            match source {
                ModuleSource::Http(address) => http::fetch(&self.http, address, &mut body).await,
                ModuleSource::S3 { bucket, key } => s3::fetch(&self.settings, bucket, key, &mut body).await,
                ModuleSource::Oci(address) => oci::fetch(&self.oci, address, pin, &mut body).await,
                ModuleSource::File(path) => Err(Failure::permanent(format!("{} is a local file", path.display()))),
            }
        };
        match tokio::time::timeout(self.settings.fetch_timeout, transfer).await {
            Ok(Ok(())) => body.finish(),
            Ok(Err(failure)) => Err(failure),
            Err(_) => Err(Failure::transient(format!(
                "no answer within fetch_timeout_ms ({} ms)",
                self.settings.fetch_timeout.as_millis()
            ))),
        }
    }
}

/// A module's bytes as they arrive, within `max_module_bytes`.
struct Body {
    bytes: Vec<u8>,
    max: u64,
    /// The length the source announced, if it did.
    expected: Option<u64>,
    step: Step,
}

impl Body {
    /// The source announced `length` bytes: refuse an oversized module
    /// before its first byte.
    fn expect(&mut self, length: Option<u64>) -> Result<(), Failure> {
        if let Some(length) = length {
            self.check_size(length)?;
            self.expected = Some(length);
            self.step.set_length(length);
            self.bytes.reserve_exact(usize::try_from(length).unwrap_or(0));
        }
        Ok(())
    }

    fn push(&mut self, chunk: &[u8]) -> Result<(), Failure> {
        self.check_size((self.bytes.len() + chunk.len()) as u64)?;
        self.bytes.extend_from_slice(chunk);
        self.step.advance(chunk.len() as u64);
        Ok(())
    }

    fn check_size(&self, length: u64) -> Result<(), Failure> {
        if length > self.max {
            return Err(Failure::permanent(format!(
                "the module is larger than max_module_bytes ({} bytes): {length} bytes or more",
                self.max
            )));
        }
        Ok(())
    }

    /// A body shorter than announced is an interrupted transfer.
    fn finish(self) -> Result<Vec<u8>, Failure> {
        match self.expected {
            Some(expected) if (self.bytes.len() as u64) < expected => Err(Failure::transient(format!(
                "the transfer ended early: {} of {expected} bytes",
                self.bytes.len()
            ))),
            _ => Ok(self.bytes),
        }
    }
}

/// `head`, then each cause of `error` not already said: the useful part
/// is often a cause ("connection refused", "certificate expired").
fn with_causes(mut head: String, error: &dyn std::error::Error) -> String {
    let mut cause = error.source();
    while let Some(inner) = cause {
        let text = inner.to_string();
        if !head.contains(&text) {
            head.push_str(": ");
            head.push_str(&text);
        }
        cause = inner.source();
    }
    head
}
