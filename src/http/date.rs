//! The `Date` header value, formatted at most once a second per shard.

use std::cell::{Cell, RefCell};
use std::time::{SystemTime, UNIX_EPOCH};

/// Per-shard cache of the IMF-fixdate for the current second. Reading the
/// clock (a vDSO call) is cheap; formatting a date for every response is not.
pub struct DateCache {
    second: Cell<u64>,
    text: RefCell<[u8; 29]>,
}

impl Default for DateCache {
    fn default() -> Self {
        DateCache {
            second: Cell::new(u64::MAX),
            text: RefCell::new([b' '; 29]),
        }
    }
}

impl DateCache {
    /// The date for now, as the 29 bytes of an IMF-fixdate.
    pub fn now(&self) -> [u8; 29] {
        let now = SystemTime::now();
        let second = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        if second != self.second.get() {
            let formatted = httpdate::fmt_http_date(now);
            let mut text = self.text.borrow_mut();
            // IMF-fixdate is always 29 bytes; copy defensively anyway.
            let n = formatted.len().min(29);
            text[..n].copy_from_slice(&formatted.as_bytes()[..n]);
            self.second.set(second);
        }
        *self.text.borrow()
    }
}
