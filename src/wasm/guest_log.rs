//! A guest's log output (both guest kinds): `env.log`, and stdout and
//! stderr, which become lines of the server log tagged with the route,
//! bounded per request.

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::config::MAX_LOG_LINE;
use crate::wasm::route::RouteContext;
use crate::wasm::shard_local::ShardLocal;

/// Bounds a guest's log output per request.
#[derive(Debug)]
pub struct LogBudget {
    remaining: usize,
    pub dropped: usize,
}

impl LogBudget {
    pub fn new(bytes: usize) -> LogBudget {
        LogBudget {
            remaining: bytes,
            dropped: 0,
        }
    }

    /// How much of a message of `len` bytes may be logged (0: drop it).
    pub fn take(&mut self, len: usize) -> usize {
        if len == 0 {
            return 0;
        }
        let allowed = len.min(MAX_LOG_LINE).min(self.remaining);
        if allowed == 0 {
            self.dropped += 1;
        }
        self.remaining -= allowed;
        allowed
    }
}

/// One instance's log: its route, the budget of the current request, and
/// the unfinished line of each stream, shared by everything the guest
/// writes through.
#[derive(Clone)]
pub struct GuestLog {
    route: ShardLocal<Rc<RouteContext>>,
    shared: ShardLocal<Rc<RefCell<Shared>>>,
}

struct Shared {
    budget: LogBudget,
    /// Stdout's and stderr's text since their last newline.
    unfinished: [Vec<u8>; 2],
}

/// The two streams a guest can print to.
#[derive(Clone, Copy)]
pub enum Stream {
    Stdout = 0,
    Stderr = 1,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

impl GuestLog {
    pub fn new(route: &Rc<RouteContext>) -> GuestLog {
        let shared = Shared {
            budget: LogBudget::new(route.limits.max_log_bytes),
            unfinished: Default::default(),
        };
        GuestLog {
            route: ShardLocal::new(route.clone()),
            shared: ShardLocal::new(Rc::new(RefCell::new(shared))),
        }
    }

    /// Ends a request: what the guest printed without a final newline is
    /// logged, a drop for the budget is logged once, and the next request
    /// starts with the whole budget.
    pub fn end_request(&self) {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let line = std::mem::take(&mut self.shared.borrow_mut().unfinished[stream as usize]);
            self.emit(stream, &line);
        }
        let fresh = LogBudget::new(self.route.limits.max_log_bytes);
        let dropped = std::mem::replace(&mut self.shared.borrow_mut().budget, fresh).dropped;
        if dropped > 0 {
            tracing::warn!(route = %self.route.label, dropped, "guest log limit (max_log_bytes) reached; messages dropped");
        }
    }

    /// How much of a message of `len` bytes may be logged.
    pub fn take(&self, len: usize) -> usize {
        self.shared.borrow_mut().budget.take(len)
    }

    /// The guest's stdout or stderr.
    pub fn stream(&self, stream: Stream) -> LogStream {
        LogStream {
            log: self.clone(),
            stream,
        }
    }

    /// Logs each finished line of `bytes`; keeps the unfinished rest for
    /// the next write (runtimes such as Go's print a message in pieces). A
    /// line longer than a log line is logged in pieces of that size.
    fn write(&self, stream: Stream, bytes: &[u8]) {
        let mut finished = Vec::new();
        {
            let mut shared = self.shared.borrow_mut();
            let line = &mut shared.unfinished[stream as usize];
            for &byte in bytes {
                if byte == b'\n' || line.len() == MAX_LOG_LINE {
                    finished.push(std::mem::take(line));
                }
                if byte != b'\n' {
                    line.push(byte);
                }
            }
        }
        for line in finished {
            self.emit(stream, &line);
        }
    }

    /// One log line within the budget; empty lines say nothing in a log.
    fn emit(&self, stream: Stream, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return;
        }
        let allowed = self.take(line.len());
        if allowed > 0 {
            let message = String::from_utf8_lossy(&line[..allowed]);
            tracing::info!(route = %self.route.label, stream = stream.name(), "guest: {message}");
        }
    }
}

/// A guest's stdout or stderr, written line by line into the log.
pub struct LogStream {
    log: GuestLog,
    stream: Stream,
}

impl IsTerminal for LogStream {
    /// A terminal, so that the guest's libc (wasi-libc, CPython) flushes
    /// its stdout at every newline: each printed line reaches the log when
    /// it is printed, not when a buffer fills or the program exits (which
    /// a handler that returns never does).
    fn is_terminal(&self) -> bool {
        true
    }
}

impl StdoutStream for LogStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.log.stream(self.stream))
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        // WASI 0.3's stdout and stderr. The mutex only makes the writer
        // `Sync`, as wasmtime-wasi asks; it is never contended (one shard).
        Box::new(AsyncLogStream(std::sync::Mutex::new(self.log.stream(self.stream))))
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogStream {
    async fn ready(&mut self) {}
}

#[wasmtime_wasi::async_trait]
impl OutputStream for LogStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.log.write(self.stream, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(MAX_LOG_LINE)
    }
}

/// A WASI 0.3 guest's stdout or stderr.
struct AsyncLogStream(std::sync::Mutex<LogStream>);

impl tokio::io::AsyncWrite for AsyncLogStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        bytes: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if let Ok(stream) = self.get_mut().0.get_mut() {
            stream.log.write(stream.stream, bytes);
        }
        std::task::Poll::Ready(Ok(bytes.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}
