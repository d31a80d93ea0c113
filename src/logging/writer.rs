//! The `log-writer` thread: every [`DRAIN_INTERVAL`], or sooner when woken
//! (a ring passed half full, a flush, a reopen), it takes what every ring
//! holds and writes it with one `write_all` per destination. The only
//! thread that writes log output; logging threads never make a syscall.

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use super::access::AccessSink;
use super::hub::Hub;

/// The longest a line waits in its ring before it is written.
pub const DRAIN_INTERVAL: Duration = Duration::from_millis(100);

/// Starts the writer thread and the hub it drains; lines go to `log_sink`.
pub fn spawn(log_sink: Box<dyn Write + Send>, log_ring_bytes: usize) -> io::Result<Arc<Hub>> {
    // The hub names the writer thread (producers wake it), so the thread
    // is started first and handed its hub once that exists.
    let (hub_tx, hub_rx) = mpsc::sync_channel::<Arc<Hub>>(1);
    let handle = thread::Builder::new().name("log-writer".into()).spawn(move || {
        if let Ok(hub) = hub_rx.recv() {
            Writer::new(hub, log_sink).run();
        }
    })?;
    let hub = Arc::new(Hub::new(handle.thread().clone(), log_ring_bytes));
    hub_tx
        .send(hub.clone())
        .map_err(|_| io::Error::other("the log-writer thread ended at start"))?;
    Ok(hub)
}

struct Writer {
    hub: Arc<Hub>,
    log_sink: Box<dyn Write + Send>,
    access_sink: Option<AccessSink>,
    /// Reused batches: what one cycle took from the rings.
    log_batch: Vec<u8>,
    access_batch: Vec<u8>,
    /// Whether the last access log write failed: a failure is reported
    /// once, not once per batch.
    access_failing: bool,
}

impl Writer {
    fn new(hub: Arc<Hub>, log_sink: Box<dyn Write + Send>) -> Writer {
        Writer {
            hub,
            log_sink,
            access_sink: None,
            log_batch: Vec::new(),
            access_batch: Vec::new(),
            access_failing: false,
        }
    }

    fn run(&mut self) {
        loop {
            // Taken before draining: every line pushed before a flush asked
            // for this ticket is in the rings by now.
            let ticket = self.hub.flush_ticket();
            let reopen = self.hub.take_reopen_access();
            self.take_batches();
            // Nowhere to report a failed write to the server's own log.
            let _ = write_batch(&mut *self.log_sink, &self.log_batch);
            self.write_access_batch();
            if reopen {
                self.reopen_access();
            }
            self.hub.flushed(ticket);
            thread::park_timeout(DRAIN_INTERVAL);
        }
    }

    fn take_batches(&mut self) {
        self.log_batch.clear();
        self.access_batch.clear();
        let mut registry = self.hub.registry();
        registry.log.drain_into(&mut self.log_batch);
        registry.access.drain_into(&mut self.access_batch);
        if let Some(sink) = registry.new_access_sink.take() {
            self.access_sink = Some(sink);
        }
    }

    fn write_access_batch(&mut self) {
        let Some(sink) = &mut self.access_sink else { return };
        match write_batch(sink.out(), &self.access_batch) {
            Ok(()) => self.access_failing = false,
            Err(e) => {
                if !self.access_failing {
                    tracing::error!("cannot write the access log {}: {e}", sink.target);
                }
                self.access_failing = true;
            }
        }
    }

    fn reopen_access(&mut self) {
        let Some(sink) = &mut self.access_sink else { return };
        match sink.reopen() {
            Ok(()) => tracing::info!("access log {} reopened", sink.target),
            Err(e) => tracing::error!(
                "cannot reopen the access log {}: {e}; still writing to the old file",
                sink.target
            ),
        }
    }
}

impl Drop for Writer {
    /// However the writer ends, nobody waits for a flush it will not do.
    fn drop(&mut self) {
        self.hub.flushed(u64::MAX);
    }
}

fn write_batch(sink: &mut dyn Write, batch: &[u8]) -> io::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    sink.write_all(batch)?;
    sink.flush()
}
