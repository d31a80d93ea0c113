//! Stopping, in one place: a signal (SIGTERM or SIGINT) → every shard stops
//! accepting → the requests in flight finish, within `drain_timeout_ms` →
//! the shard ends, closing its idle connections. A second signal exits at
//! once. The drain waits to be told that the last request in flight ended
//! (a [`Drain`]), not on a polling loop.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use glommio::channels::local_channel::{self, LocalSender};

use crate::error::StartupError;

/// How often a shard looks at the signal flags (a signal handler may only
/// set a flag; the shards read it).
const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// The process's signal flags, set by signal handlers.
pub struct Signals {
    /// SIGTERM or SIGINT: drain and stop.
    stop: Arc<AtomicBool>,
}

impl Signals {
    /// Installs the handlers: the first SIGTERM/SIGINT sets the stop flag,
    /// a second one exits the process at once.
    pub fn install() -> Result<Signals, StartupError> {
        let stop = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            signal_hook::flag::register_conditional_shutdown(signal, 1, stop.clone()).map_err(StartupError::Signals)?;
            signal_hook::flag::register(signal, stop.clone()).map_err(StartupError::Signals)?;
        }
        Ok(Signals { stop })
    }

    /// Stops every shard, as a signal would (a failed start-up).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// What one shard watches: the stop flag, and its own SIGUSR1 flag
    /// (each shard clears its own after reporting).
    pub fn for_shard(&self) -> Result<ShardSignals, StartupError> {
        let report = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGUSR1, report.clone()).map_err(StartupError::Signals)?;
        Ok(ShardSignals {
            stop: self.stop.clone(),
            report,
        })
    }
}

pub struct ShardSignals {
    stop: Arc<AtomicBool>,
    report: Arc<AtomicBool>,
}

impl ShardSignals {
    /// Returns when the server must stop; calls `report` on each SIGUSR1.
    pub async fn until_stop(&self, report: impl Fn()) {
        while !self.stop.load(Ordering::Relaxed) {
            if self.report.swap(false, Ordering::Relaxed) {
                report();
            }
            glommio::timer::sleep(SIGNAL_POLL).await;
        }
    }
}

/// A shard's requests in flight, and whether it is draining. Like
/// glommio's `Gate`, whose closing panics if a pass outlives an abandoned
/// close (as it does when the drain times out).
pub struct Drain {
    draining: Cell<bool>,
    in_flight: Cell<u64>,
    /// Told when the last request in flight ends during a drain.
    idle: RefCell<Option<LocalSender<()>>>,
}

/// One request in flight; the drain waits for it.
pub struct InFlight<'a> {
    drain: &'a Drain,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let drain = self.drain;
        drain.in_flight.set(drain.in_flight.get() - 1);
        if drain.in_flight.get() == 0
            && let Some(idle) = drain.idle.borrow_mut().take()
        {
            // The drain may have given up waiting already.
            let _ = idle.try_send(());
        }
    }
}

impl Drain {
    pub fn new() -> Drain {
        Drain {
            draining: Cell::new(false),
            in_flight: Cell::new(0),
            idle: RefCell::new(None),
        }
    }

    /// Counts a request as in flight until the returned value is dropped.
    pub fn enter(&self) -> InFlight<'_> {
        self.in_flight.set(self.in_flight.get() + 1);
        InFlight { drain: self }
    }

    /// Connections answer their current request with `Connection: close`.
    pub fn draining(&self) -> bool {
        self.draining.get()
    }

    pub fn in_flight(&self) -> u64 {
        self.in_flight.get()
    }

    /// Waits for the requests in flight, at most `timeout`; the accept loop
    /// has already stopped. Returns how many were abandoned.
    pub async fn finish(&self, timeout: Duration) -> u64 {
        self.draining.set(true);
        if self.in_flight.get() == 0 {
            return 0;
        }
        let (idle, all_done) = local_channel::new_bounded(1);
        *self.idle.borrow_mut() = Some(idle);
        let all_done = async {
            all_done.recv().await;
        };
        futures_lite::future::or(all_done, glommio::timer::sleep(timeout)).await;
        self.in_flight.get()
    }
}
