//! The access log: one line per response, in the Common Log Format or as
//! JSON. Each shard formats its lines into its own ring
//! ([`AccessLogger`]); the `log-writer` thread appends them to the file
//! (or stdout).

mod clock;
mod format;

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::ring::LineProducer;
use crate::config::{AccessLogFormat, AccessLogTarget};
use clock::Clock;

/// One response, as the access log records it.
#[derive(Clone, Copy, Debug)]
pub struct AccessEntry<'a> {
    /// When the request started.
    pub time: SystemTime,
    pub client: Option<SocketAddr>,
    pub method: &'a [u8],
    /// The request target as received (path and query).
    pub target: &'a [u8],
    /// `"HTTP/1.1"`.
    pub version: &'a str,
    pub status: u16,
    /// Response bytes sent, head and body.
    pub bytes: u64,
    pub duration: Duration,
    /// The route's name; `None`: no route matched (404, 405, or an answer
    /// before routing).
    pub route: Option<&'a str>,
    pub shard: usize,
    /// Fuel the guest used, for guest routes.
    pub fuel: Option<u64>,
    /// `"fresh"` or `"reuse"`, for guest routes.
    pub instance: Option<&'a str>,
}

/// One shard's access log producer: formats into a reused buffer and
/// pushes the line whole into the shard's own ring (a full ring drops and
/// counts it). Obtained on the shard's thread from
/// [`Logging::access_logger`](super::Logging::access_logger).
pub struct AccessLogger {
    ring: LineProducer,
    format: AccessLogFormat,
    line: Vec<u8>,
    clock: Clock,
}

impl AccessLogger {
    pub(super) fn new(ring: LineProducer, format: AccessLogFormat) -> AccessLogger {
        AccessLogger {
            ring,
            format,
            line: Vec::with_capacity(256),
            clock: Clock::default(),
        }
    }

    pub fn log(&mut self, entry: &AccessEntry<'_>) {
        self.line.clear();
        let stamp = self.clock.stamp(entry.time);
        match self.format {
            AccessLogFormat::Common => format::common(&mut self.line, entry, &stamp),
            AccessLogFormat::Json => format::json(&mut self.line, entry, &stamp),
        }
        self.ring.push(&self.line);
    }
}

/// Where the writer puts access lines: the file (reopened on request, for
/// log rotation) or stdout.
pub struct AccessSink {
    pub target: AccessLogTarget,
    out: Box<dyn Write + Send>,
}

impl AccessSink {
    pub fn open(target: &AccessLogTarget) -> io::Result<AccessSink> {
        let out: Box<dyn Write + Send> = match target {
            AccessLogTarget::Stdout => Box::new(io::stdout()),
            AccessLogTarget::File(path) => Box::new(open_append(path)?),
        };
        Ok(AccessSink {
            target: target.clone(),
            out,
        })
    }

    /// Stands for stdout (a test's buffer).
    #[cfg(test)]
    pub fn to(out: Box<dyn Write + Send>) -> AccessSink {
        AccessSink {
            target: AccessLogTarget::Stdout,
            out,
        }
    }

    pub fn out(&mut self) -> &mut dyn Write {
        &mut *self.out
    }

    /// Opens the file again (logrotate moved it away); on failure the old
    /// file stays in use. Stdout is left as it is.
    pub fn reopen(&mut self) -> io::Result<()> {
        if let AccessLogTarget::File(path) = &self.target {
            self.out = Box::new(open_append(path)?);
        }
        Ok(())
    }
}

/// Appended to, created readable by the owner's group, not by others.
fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().append(true).create(true).mode(0o640).open(path)
}
