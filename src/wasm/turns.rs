//! A route's turns on one shard: at most `max_concurrency` requests run at
//! once and at most `max_queue` wait for a turn, each no longer than its
//! deadline. Shared by both guest kinds.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

use glommio::sync::{Semaphore, StaticPermit};

use super::failure::InvokeError;
use crate::deadline::with_deadline;

pub struct Turns {
    /// `max_concurrency` permits.
    permits: Rc<Semaphore>,
    max_concurrency: usize,
    max_queue: usize,
    /// Requests waiting for a permit.
    waiting: Cell<usize>,
}

/// A request's turn; dropping it lets the next one in.
pub type Turn = StaticPermit;

impl Turns {
    pub fn new(max_concurrency: usize, max_queue: usize) -> Turns {
        Turns {
            permits: Rc::new(Semaphore::new(max_concurrency as u64)),
            max_concurrency,
            max_queue,
            waiting: Cell::new(0),
        }
    }

    /// Requests holding a turn now.
    pub fn running(&self) -> usize {
        self.max_concurrency - self.permits.available() as usize
    }

    /// Waits for a turn, or says why there is none: the queue is full, or
    /// the deadline passed while waiting.
    pub async fn take(&self, deadline: Instant) -> Result<Turn, InvokeError> {
        if let Ok(turn) = self.permits.try_acquire_static_permit(1) {
            return Ok(turn);
        }
        if self.waiting.get() >= self.max_queue {
            return Err(InvokeError::Busy("max_concurrency reached and queue full"));
        }
        self.waiting.set(self.waiting.get() + 1);
        let turn = with_deadline(deadline, self.permits.acquire_static_permit(1)).await;
        self.waiting.set(self.waiting.get() - 1);
        match turn {
            Ok(Ok(turn)) => Ok(turn),
            _ => Err(InvokeError::Busy("no turn before the route timeout")),
        }
    }
}
