//! Stopping, in one place. The `control` thread takes the signals:
//! SIGTERM or SIGINT → `/readyz` turns 503 at once → after
//! `shutdown_delay_ms` every shard stops accepting (taking in what the
//! kernel had already queued for it, so no waiting connection is reset) →
//! requests in flight finish, within `drain_timeout_ms`, keep-alive
//! connections get `Connection: close` and idle ones are closed → the
//! process exits 0, or 1 if the deadline cut requests. A second signal
//! exits 1 at once, saying so. The drain waits to be told that the last
//! request in flight ended (a [`Drain`]), not on a polling loop.
//!
//! The control thread also turns SIGHUP into a reload (`reload.rs`, on the
//! main thread), SIGUSR1 into a statistics report from every shard and
//! SIGUSR2 into reopening the access log (logrotate).

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use glommio::channels::local_channel::{self, LocalSender};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook::iterator::{Handle, Signals};

use super::reload::{Current, Event, ReloadRequest, Trigger};
use crate::error::StartupError;
use crate::logging::Logging;
use crate::stats::{Health, unix_millis};

/// How often a shard looks at its flags (a shard cannot be woken from
/// another thread without a message; this is cheap, and also its
/// heartbeat).
const FLAG_POLL: Duration = Duration::from_millis(50);

/// What the control thread tells the shards.
pub struct ShardFlags {
    /// When shards stop accepting (Unix ms); 0 while serving.
    stop_at_ms: AtomicU64,
    /// One per shard: report statistics (SIGUSR1); each shard clears its own.
    report: Vec<AtomicBool>,
}

impl ShardFlags {
    pub fn new(shards: usize) -> ShardFlags {
        ShardFlags {
            stop_at_ms: AtomicU64::new(0),
            report: (0..shards).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    /// Stops every shard now (a failed start-up).
    pub fn stop_now(&self) {
        self.stop_at_ms.store(1, Ordering::Relaxed);
    }

    /// A stop signal arrived (the shards may still be in their shutdown
    /// delay).
    pub fn stop_requested(&self) -> bool {
        self.stop_at_ms.load(Ordering::Relaxed) != 0
    }

    fn stopping(&self) -> bool {
        let at = self.stop_at_ms.load(Ordering::Relaxed);
        at != 0 && unix_millis() >= at
    }

    /// Returns when shard `id` must stop accepting. Calls `look` at every
    /// look and `report` on each SIGUSR1.
    pub async fn until_stop(&self, id: usize, look: impl Fn(), report: impl Fn()) {
        loop {
            look();
            if self.stopping() {
                return;
            }
            if self.report.get(id).is_some_and(|r| r.swap(false, Ordering::Relaxed)) {
                report();
            }
            glommio::timer::sleep(FLAG_POLL).await;
        }
    }
}

/// The thread that takes the process's signals.
pub struct Control {
    handle: Handle,
    thread: JoinHandle<()>,
}

impl Control {
    pub fn start(
        flags: Arc<ShardFlags>,
        health: Arc<Health>,
        logging: Logging,
        current: Arc<Current>,
        events: Sender<Event>,
    ) -> Result<Control, StartupError> {
        let mut signals = Signals::new([SIGTERM, SIGINT, SIGUSR1, SIGUSR2, SIGHUP]).map_err(StartupError::Signals)?;
        let handle = signals.handle();
        let thread = std::thread::Builder::new()
            .name("control".into())
            .spawn(move || {
                let mut stopping = false;
                for signal in signals.forever() {
                    match signal {
                        SIGUSR1 => flags.report.iter().for_each(|r| r.store(true, Ordering::Relaxed)),
                        SIGUSR2 => {
                            tracing::info!("SIGUSR2: reopening the access log");
                            logging.reopen_access_log();
                        }
                        SIGHUP => {
                            let request = ReloadRequest {
                                trigger: Trigger::Signal,
                                reply: None,
                            };
                            // The reloader is gone once the server stops.
                            let _ = events.send(Event::Reload(request));
                        }
                        _ if stopping => {
                            tracing::error!("second stop signal: exiting now; requests in flight are cut");
                            logging.flush();
                            std::process::exit(1);
                        }
                        _ => {
                            stopping = true;
                            health.set_draining();
                            let _ = events.send(Event::Stop);
                            let server = &current.generation().config.server;
                            let delay_ms = server.timeouts.shutdown_delay.as_millis() as u64;
                            tracing::info!(
                                shutdown_delay_ms = delay_ms,
                                "stop signal: /readyz answers 503; draining after the shutdown delay"
                            );
                            flags.stop_at_ms.store(unix_millis() + delay_ms, Ordering::Relaxed);
                        }
                    }
                }
            })
            .map_err(StartupError::Signals)?;
        Ok(Control { handle, thread })
    }

    /// Ends the thread (the shards have stopped).
    pub fn close(self) {
        self.handle.close();
        let _ = self.thread.join();
    }
}

/// How long a drain waits for connections that were accepted but have not
/// started a request: a client whose request was already on its way (it
/// connected while the shard was busy) is answered, a client that only
/// connected is not waited for.
const FIRST_REQUEST_GRACE: Duration = Duration::from_millis(250);

/// A shard's requests in flight, its connections still awaiting their
/// first request, and whether it is draining. Like glommio's `Gate`, whose
/// closing panics if a pass outlives an abandoned close (as it does when
/// the drain times out).
pub struct Drain {
    draining: Cell<bool>,
    in_flight: Cell<u64>,
    awaiting_first: Cell<u64>,
    /// Told, during a drain, whenever either count goes down.
    changed: RefCell<Option<LocalSender<()>>>,
}

/// Something the drain waits for, counted until dropped.
pub struct Counted<'a> {
    drain: &'a Drain,
    count: &'a Cell<u64>,
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.count.set(self.count.get() - 1);
        self.drain.tell();
    }
}

/// One request in flight.
pub type InFlight<'a> = Counted<'a>;
/// A connection that has not started a request yet.
pub type AwaitingFirst<'a> = Counted<'a>;

impl Drain {
    pub fn new() -> Drain {
        Drain {
            draining: Cell::new(false),
            in_flight: Cell::new(0),
            awaiting_first: Cell::new(0),
            changed: RefCell::new(None),
        }
    }

    /// Counts a request as in flight until the returned value is dropped.
    pub fn enter(&self) -> InFlight<'_> {
        self.count(&self.in_flight)
    }

    /// Counts a new connection until it starts its first request (or ends).
    pub fn connection_opened(&self) -> AwaitingFirst<'_> {
        self.count(&self.awaiting_first)
    }

    fn count<'a>(&'a self, count: &'a Cell<u64>) -> Counted<'a> {
        count.set(count.get() + 1);
        Counted { drain: self, count }
    }

    /// From now on, connections answer their current request with
    /// `Connection: close`.
    pub fn begin(&self) {
        self.draining.set(true);
    }

    /// Connections answer their current request with `Connection: close`.
    pub fn draining(&self) -> bool {
        self.draining.get()
    }

    pub fn in_flight(&self) -> u64 {
        self.in_flight.get()
    }

    fn tell(&self) {
        if let Some(changed) = self.changed.borrow().as_ref() {
            // Full: the drain has not looked since the last change.
            let _ = changed.try_send(());
        }
    }

    /// Waits for the requests in flight, at most `timeout` (connections
    /// awaiting their first request, at most `FIRST_REQUEST_GRACE`); the
    /// accept loop has already stopped. Returns how many requests were
    /// abandoned.
    pub async fn finish(&self, timeout: Duration) -> u64 {
        self.begin();
        let (changed, changes) = local_channel::new_bounded(1);
        *self.changed.borrow_mut() = Some(changed);
        let started = Instant::now();
        loop {
            let waited = started.elapsed();
            let first_grace_left = FIRST_REQUEST_GRACE.saturating_sub(waited);
            let awaiting = self.awaiting_first.get() > 0 && !first_grace_left.is_zero();
            if self.in_flight.get() == 0 && !awaiting {
                break;
            }
            let left = timeout.saturating_sub(waited);
            if left.is_zero() {
                break;
            }
            let wait = if awaiting { left.min(first_grace_left) } else { left };
            let change = async {
                changes.recv().await;
            };
            futures_lite::future::or(change, glommio::timer::sleep(wait)).await;
        }
        *self.changed.borrow_mut() = None;
        self.in_flight.get()
    }
}
