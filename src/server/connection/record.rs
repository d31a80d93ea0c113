//! What is kept of each answered request: its status under its route (or
//! as unrouted), its duration in the route's histogram, and its line in
//! the access log. The clock starts when the read that completed the
//! request (for a guest that streams, its head) returned, so pipelined
//! requests include their wait behind the batch's earlier ones, and stops
//! when its response has been written, or queued behind the batch's other
//! answers: one clock read per request, one per read.

use std::time::{Instant, SystemTime};

use super::Connection;
use crate::logging::AccessEntry;
use crate::server::routes::Route;

/// The request being answered.
pub(super) struct Answering {
    started: Instant,
    /// The connection's output count (`Connection::bytes_out`) when it
    /// began: its response is what comes after.
    mark: u64,
}

impl Answering {
    /// Before the connection's first request.
    pub(super) fn new(started: Instant) -> Answering {
        Answering { started, mark: 0 }
    }
}

impl Connection<'_> {
    /// Starts the clock of the request just decoded.
    pub(super) fn begin_request(&mut self) {
        self.awaiting_first = None;
        self.answering = Answering {
            started: self.read_at,
            mark: self.bytes_out(),
        };
    }

    /// Bytes of responses produced on this connection so far: written, or
    /// waiting in the output buffer.
    pub(super) fn bytes_out(&self) -> u64 {
        self.sent + self.output.len() as u64
    }

    /// Records an answered request. `fuel` when the guest's use is known.
    pub(super) fn record(&mut self, route: Option<&Route>, status: u16, fuel: Option<u64>) {
        let elapsed = self.answering.started.elapsed();
        match route {
            Some(route) => {
                route.stats.responses.count(status);
                route.stats.duration.observe(elapsed);
            }
            None => self.shard.stats.unrouted.count(status),
        }
        let Some(access_log) = &self.shard.access_log else {
            return;
        };
        let entry = AccessEntry {
            time: SystemTime::now() - elapsed,
            client: self.peer,
            method: self.request.method_bytes(),
            target: self.request.target(),
            version: self.request.version.as_str(),
            status,
            bytes: self.bytes_out() - self.answering.mark,
            duration: elapsed,
            route: route.map(|r| r.name.as_str()),
            shard: self.shard.id,
            fuel,
            instance: route.and_then(Route::instance_policy),
        };
        access_log.borrow_mut().log(&entry);
    }
}
