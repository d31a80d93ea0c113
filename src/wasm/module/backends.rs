//! The backend connections of one request: a small table of sockets,
//! bounded in number and bytes, closed when the request ends.

use std::cell::Cell;
use std::rc::Rc;

use crate::net::BackendStream;

use super::abi::tcp_error as code;

/// The backend connections of the current request. Handles are small
/// integers from 1, local to the request.
#[derive(Default)]
pub struct Backends {
    slots: Vec<Option<BackendStream>>,
    open: usize,
    /// Bytes read and written by this request so far.
    pub(super) bytes: u64,
    /// True while the guest waits on a backend: then a pending call is an
    /// I/O wait, not a fuel yield (see `deadline::with_deadline_yielding`).
    pub(super) io_wait: Rc<Cell<bool>>,
}

/// Marks the guest as waiting on I/O for as long as it lives.
pub(super) struct WaitingOnIo(Rc<Cell<bool>>);

impl WaitingOnIo {
    pub(super) fn start(backends: &Backends) -> WaitingOnIo {
        backends.io_wait.set(true);
        WaitingOnIo(backends.io_wait.clone())
    }
}

impl Drop for WaitingOnIo {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

impl Backends {
    pub(super) fn close_all(&mut self) {
        self.slots.clear();
        self.open = 0;
        self.bytes = 0;
    }

    pub(super) fn insert(&mut self, stream: BackendStream) -> i64 {
        self.open += 1;
        match self.slots.iter().position(Option::is_none) {
            Some(i) => {
                self.slots[i] = Some(stream);
                i as i64 + 1
            }
            None => {
                self.slots.push(Some(stream));
                self.slots.len() as i64
            }
        }
    }

    fn index(fd: i32) -> Option<usize> {
        usize::try_from(fd).ok()?.checked_sub(1)
    }

    /// Takes a stream out for an operation; [`Backends::put_back`] returns
    /// it. If the operation is abandoned, the stream is dropped (closed).
    pub(super) fn take_stream(&mut self, fd: i32) -> Option<BackendStream> {
        let stream = self.slots.get_mut(Self::index(fd)?)?.take();
        if stream.is_some() {
            self.open -= 1;
        }
        stream
    }

    pub(super) fn put_back(&mut self, fd: i32, stream: BackendStream) {
        if let Some(slot) = Self::index(fd).and_then(|i| self.slots.get_mut(i)) {
            *slot = Some(stream);
            self.open += 1;
        }
    }

    pub fn open_count(&self) -> usize {
        self.open
    }
}

/// The guest's code for an I/O error.
pub(super) fn io_code(e: &std::io::Error) -> i64 {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => code::REFUSED,
        std::io::ErrorKind::TimedOut => code::TIMED_OUT,
        _ if e.raw_os_error() == Some(libc::ETIMEDOUT) || e.raw_os_error() == Some(libc::ECANCELED) => code::TIMED_OUT,
        _ => code::IO,
    }
}
