//! Running a future under a deadline on the shard's timers (a request's,
//! a guest call's, a backend or store operation's),
//! without an epoch ticker thread.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Instant;

/// The deadline passed before the future finished.
pub struct TimedOut;

/// Polls `future` until it completes or `deadline` passes. The clock is
/// checked on every poll (a computing guest comes back here at each fuel
/// yield, so it cannot outrun its deadline by more than one yield interval)
/// and a timer wakes the task if the future waits on something else.
pub async fn with_deadline<F: Future>(deadline: Instant, future: F) -> Result<F::Output, TimedOut> {
    drive(deadline, future, None).await
}

/// Like [`with_deadline`], for a guest call. `io_wait` tells a guest
/// suspended on a backend (set by the host functions of a core module's
/// `net`) from a guest that yielded because its fuel slice ran out. After
/// such a yield the guest waits for a one-microsecond timer before it
/// continues: timers fire when the shard polls for I/O, so the shard looks
/// at its other connections between every two slices of a computing guest
/// instead of only at its preempt timer.
pub async fn with_deadline_yielding<F: Future>(
    deadline: Instant,
    future: F,
    io_wait: &Cell<bool>,
) -> Result<F::Output, TimedOut> {
    drive(deadline, future, Some(io_wait)).await
}

async fn drive<F: Future>(deadline: Instant, future: F, io_wait: Option<&Cell<bool>>) -> Result<F::Output, TimedOut> {
    let mut future = std::pin::pin!(future);
    let mut deadline_timer: Option<glommio::timer::Timer> = None;
    let mut let_io_in: Option<glommio::timer::Timer> = None;
    std::future::poll_fn(|cx| {
        let now = Instant::now();
        if now >= deadline {
            return Poll::Ready(Err(TimedOut));
        }
        if let Some(pause) = let_io_in.as_mut() {
            if Pin::new(pause).poll(cx).is_pending() {
                return Poll::Pending;
            }
            let_io_in = None;
        }
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Ok(output));
        }
        if io_wait.is_some_and(|waiting| !waiting.get()) {
            // A fuel yield: wasmtime has already woken the task; the pause
            // timer holds the guest until the next I/O poll.
            let mut pause = glommio::timer::Timer::new(YIELD_PAUSE);
            let _ = Pin::new(&mut pause).poll(cx);
            let_io_in = Some(pause);
        }
        let timer = deadline_timer.get_or_insert_with(|| glommio::timer::Timer::new(deadline - now));
        match Pin::new(timer).poll(cx) {
            Poll::Ready(_) => Poll::Ready(Err(TimedOut)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// How long a guest that yielded waits: just long enough to let the shard
/// poll for I/O once.
const YIELD_PAUSE: std::time::Duration = std::time::Duration::from_micros(1);
