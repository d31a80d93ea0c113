//! A guest's log output, bounded per request (both guest kinds).

use crate::config::MAX_LOG_LINE;

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
        let allowed = len.min(MAX_LOG_LINE).min(self.remaining);
        if allowed == 0 {
            self.dropped += 1;
        }
        self.remaining -= allowed;
        allowed
    }
}
