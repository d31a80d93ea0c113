//! The tracing subscriber's writer: each thread pushes the lines it logs
//! into a ring of its own, created at its first line. The fmt layer formats
//! an event into its thread-local buffer and hands it over with one
//! `write_all`, which is one whole line here.

use std::cell::RefCell;
use std::io;
use std::sync::Arc;

use tracing_subscriber::fmt::MakeWriter;

use super::hub::Hub;
use super::ring::LineProducer;

thread_local! {
    /// This thread's ring per hub: one entry in the server, a few in tests
    /// that start several hubs.
    static RINGS: RefCell<Vec<(u64, LineProducer)>> = const { RefCell::new(Vec::new()) };
}

/// `MakeWriter` for the fmt layer.
pub struct ThreadLines {
    pub hub: Arc<Hub>,
}

impl<'a> MakeWriter<'a> for ThreadLines {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> LineWriter<'a> {
        LineWriter { hub: &self.hub }
    }
}

/// One event's writer: each `write` is one whole line.
pub struct LineWriter<'a> {
    hub: &'a Hub,
}

impl io::Write for LineWriter<'_> {
    /// Takes the whole line, even when it is dropped (a full ring is
    /// counted, not an error to report to the logging code).
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        push_from_this_thread(self.hub, line);
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn push_from_this_thread(hub: &Hub, line: &[u8]) {
    let pushed = RINGS.try_with(|rings| {
        // Busy only if pushing logged again, which it does not.
        let Ok(mut rings) = rings.try_borrow_mut() else {
            return false;
        };
        let index = match rings.iter().position(|(id, _)| *id == hub.id) {
            Some(index) => index,
            None => {
                rings.push((hub.id, hub.new_log_ring()));
                rings.len() - 1
            }
        };
        rings[index].1.push(line);
        true
    });
    // Gone while the thread ends (another thread-local logging from its
    // destructor).
    if pushed != Ok(true) {
        hub.count_dropped_without_ring();
    }
}
