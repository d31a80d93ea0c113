//! What the logging threads, the [`Logging`](super::Logging) handle and the
//! `log-writer` thread share: the rings to drain, the flush requests, the
//! access log's settings. Locked when a ring is added (a thread's first
//! line, a shard's access logger), once per writer cycle, and by callers of
//! `flush` and the counters; never per line.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::Thread;

use super::access::AccessSink;
use super::ring::{LineProducer, Rings, line_ring};
use crate::config::AccessLogFormat;

pub struct Hub {
    /// Tells this hub's rings from another's in a thread's list (tests run
    /// several hubs in one process).
    pub id: u64,
    /// The `log-writer` thread, woken by flushes, reopens and filling rings.
    writer: Thread,
    registry: Mutex<Registry>,
    flushes: Mutex<Flushes>,
    flushed: Condvar,
    /// Size of the ring a thread gets at its first line.
    log_ring_bytes: AtomicUsize,
    /// Set once the access log is open: its format and ring size per shard.
    access: OnceLock<(AccessLogFormat, usize)>,
    reopen_access: AtomicBool,
    /// Lines of a thread that could not reach its ring (it was ending, its
    /// thread-locals gone). Rare, so an atomic increment is fine.
    dropped_without_ring: AtomicU64,
}

/// The rings, and the access log's file until the writer takes it.
#[derive(Default)]
pub struct Registry {
    pub log: Rings,
    pub access: Rings,
    pub new_access_sink: Option<AccessSink>,
}

/// Flush requests are numbered; the writer records the last one whose
/// lines it has written.
#[derive(Default)]
struct Flushes {
    asked: u64,
    done: u64,
}

static NEXT_HUB_ID: AtomicU64 = AtomicU64::new(0);

/// A lock that a panic elsewhere cannot make unusable: every state behind
/// these locks stays consistent between statements.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Hub {
    pub fn new(writer: Thread, log_ring_bytes: usize) -> Hub {
        Hub {
            id: NEXT_HUB_ID.fetch_add(1, Ordering::Relaxed),
            writer,
            registry: Mutex::default(),
            flushes: Mutex::default(),
            flushed: Condvar::new(),
            log_ring_bytes: AtomicUsize::new(log_ring_bytes),
            access: OnceLock::new(),
            reopen_access: AtomicBool::new(false),
            dropped_without_ring: AtomicU64::new(0),
        }
    }

    pub fn registry(&self) -> MutexGuard<'_, Registry> {
        lock(&self.registry)
    }

    pub fn set_log_ring_bytes(&self, bytes: usize) {
        self.log_ring_bytes.store(bytes, Ordering::Relaxed);
    }

    /// A ring for the calling thread's log lines.
    pub fn new_log_ring(&self) -> LineProducer {
        let (producer, consumer) = line_ring(self.log_ring_bytes.load(Ordering::Relaxed), self.writer.clone());
        self.registry().log.add(consumer);
        producer
    }

    /// Hands the access log to the writer; refused if one is open already.
    pub fn attach_access(&self, sink: AccessSink, format: AccessLogFormat, ring_bytes: usize) -> std::io::Result<()> {
        let mut registry = self.registry();
        if self.access.set((format, ring_bytes)).is_err() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "the access log is already open",
            ));
        }
        registry.new_access_sink = Some(sink);
        Ok(())
    }

    /// A ring for one shard's access lines, and their format; `None`
    /// without an access log.
    pub fn new_access_ring(&self) -> Option<(LineProducer, AccessLogFormat)> {
        let &(format, bytes) = self.access.get()?;
        let (producer, consumer) = line_ring(bytes, self.writer.clone());
        self.registry().access.add(consumer);
        Some((producer, format))
    }

    pub fn ask_reopen_access(&self) {
        self.reopen_access.store(true, Ordering::Relaxed);
        self.writer.unpark();
    }

    /// For the writer: whether a reopen was asked since it last looked.
    pub fn take_reopen_access(&self) -> bool {
        self.reopen_access.swap(false, Ordering::Relaxed)
    }

    pub fn count_dropped_without_ring(&self) {
        self.dropped_without_ring.fetch_add(1, Ordering::Relaxed);
    }

    pub fn log_lines_dropped(&self) -> u64 {
        self.registry().log.dropped() + self.dropped_without_ring.load(Ordering::Relaxed)
    }

    pub fn access_lines_dropped(&self) -> u64 {
        self.registry().access.dropped()
    }

    /// Blocks until the writer has written every line pushed before this
    /// call.
    pub fn flush(&self) {
        let ticket = {
            let mut flushes = lock(&self.flushes);
            flushes.asked += 1;
            flushes.asked
        };
        self.writer.unpark();
        let mut flushes = lock(&self.flushes);
        while flushes.done < ticket {
            flushes = self.flushed.wait(flushes).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// For the writer, before it drains: the flush requests that this
    /// cycle will satisfy.
    pub fn flush_ticket(&self) -> u64 {
        lock(&self.flushes).asked
    }

    /// For the writer, once written: releases the flushes up to `ticket`
    /// (`u64::MAX` when the writer ends, so no flush waits for ever).
    pub fn flushed(&self, ticket: u64) {
        let mut flushes = lock(&self.flushes);
        flushes.done = flushes.done.max(ticket);
        self.flushed.notify_all();
    }
}
