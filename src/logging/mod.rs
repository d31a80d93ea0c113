//! Logging that costs the shards little: the server's own lines and the
//! guests' (through `tracing`) and the access log are formatted on the
//! thread that logs, pushed whole into that thread's own bounded ring, and
//! written by one `log-writer` thread, a batch per `write_all`, within
//! 100 ms ([`writer::DRAIN_INTERVAL`]). A line that finds its ring full is
//! dropped and counted, never torn; no logging thread takes a lock or makes
//! a syscall per line.
//!
//! - `ring.rs`: the single-producer, single-consumer byte ring of lines.
//! - `thread_lines.rs`: the fmt layer's writer, a ring per thread.
//! - `hub.rs`: what the threads, the handle and the writer share.
//! - `writer.rs`: the `log-writer` thread.
//! - `access/`: access log entries, their formats, the per-shard logger.

mod access;
mod hub;
mod ring;
mod thread_lines;
mod writer;

use std::io::{self, IsTerminal, Write};
use std::str::FromStr;
use std::sync::Arc;

use tracing::Dispatch;
use tracing_subscriber::EnvFilter;

use access::AccessSink;
pub use access::{AccessEntry, AccessLogger};
use hub::Hub;
use thread_lines::ThreadLines;

use crate::config::AccessLogConfig;

/// How the server's own lines are written (`--log-format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// tracing's human-readable lines (ANSI colours on a terminal).
    #[default]
    Text,
    /// One JSON object per line, its fields (a guest line's `route`) at the
    /// top level.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<LogFormat, String> {
        match text {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("{other:?} is not a log format: use text or json")),
        }
    }
}

/// The level filter without `RUST_LOG`: info, except wasmtime-wasi's
/// per-call spans (every WASI call of a guest is an info span there: its
/// name would prefix the guest's own log lines and cost a span per call).
const DEFAULT_FILTER: &str = "info,wasmtime_wasi=warn";

/// Starts the writer thread and installs the global tracing subscriber:
/// the level filter comes from `RUST_LOG` (default [`DEFAULT_FILTER`]),
/// lines go to stderr through per-thread rings of `buffer_bytes`.
pub fn init(format: LogFormat, buffer_bytes: usize) -> io::Result<Logging> {
    let logging = Logging::start(Box::new(io::stderr()), buffer_bytes)?;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let ansi = io::stderr().is_terminal();
    tracing::dispatcher::set_global_default(logging.dispatch(format, filter, ansi)).map_err(io::Error::other)?;
    Ok(logging)
}

/// The handle on the logs: flush them, count what was dropped, open and
/// reopen the access log, give each shard its access logger. Cheap to
/// clone; every clone is the same logs.
#[derive(Clone)]
pub struct Logging {
    hub: Arc<Hub>,
}

impl Logging {
    /// The writer thread and its hub, writing the log to `sink` (stderr;
    /// a buffer in tests).
    fn start(sink: Box<dyn Write + Send>, buffer_bytes: usize) -> io::Result<Logging> {
        Ok(Logging {
            hub: writer::spawn(sink, buffer_bytes)?,
        })
    }

    /// A subscriber whose lines go to this hub's rings.
    fn dispatch(&self, format: LogFormat, filter: EnvFilter, ansi: bool) -> Dispatch {
        let lines = ThreadLines { hub: self.hub.clone() };
        let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(lines);
        match format {
            LogFormat::Text => Dispatch::new(builder.with_ansi(ansi).finish()),
            LogFormat::Json => Dispatch::new(builder.with_ansi(false).json().flatten_event(true).finish()),
        }
    }

    /// The ring size of threads whose first line comes after this call
    /// (`server.log_buffer_bytes`, known once the config is read; the
    /// shards start logging after that). A thread that logged already keeps
    /// the ring it has: rings are sized once, at a thread's first line.
    pub fn set_buffer_bytes(&self, bytes: usize) {
        self.hub.set_log_ring_bytes(bytes);
    }

    /// Blocks until every line logged (server and access log) before the
    /// call is written. Call it before the process exits.
    pub fn flush(&self) {
        self.hub.flush();
    }

    /// Server and guest lines dropped because their thread's ring was
    /// full.
    pub fn lines_dropped(&self) -> u64 {
        self.hub.log_lines_dropped()
    }

    /// Opens the access log file (or takes stdout) for the writer; an error
    /// if it cannot be opened, or if an access log is open already.
    pub fn open_access_log(&self, config: &AccessLogConfig) -> io::Result<()> {
        let sink = AccessSink::open(&config.target)?;
        self.hub.attach_access(sink, config.format, config.buffer_bytes)
    }

    /// This shard's access logger, with a ring of its own; call it on the
    /// shard's thread. `None` when no access log is configured.
    pub fn access_logger(&self) -> Option<AccessLogger> {
        let (ring, format) = self.hub.new_access_ring()?;
        Some(AccessLogger::new(ring, format))
    }

    /// Asks the writer to reopen the access log file (after logrotate
    /// moved it, on SIGUSR2); lines already taken go to the old file.
    pub fn reopen_access_log(&self) {
        self.hub.ask_reopen_access();
    }

    /// Access lines dropped because their shard's ring was full.
    pub fn access_lines_dropped(&self) -> u64 {
        self.hub.access_lines_dropped()
    }
}

#[cfg(test)]
mod tests;
