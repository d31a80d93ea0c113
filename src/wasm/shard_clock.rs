//! The guests' clock and sleep (both guest kinds): monotonic time from one
//! fixed instant, and sleeping on the shard's own timers.
//!
//! wasmtime-wasi sleeps with `tokio::time` (a timer driver and a thread to
//! run it) or, in WASI preview 1, blocks the thread: neither may happen on
//! a shard. A guest's sleep here is a glommio timer, so a sleeping guest
//! is a suspended task and the shard serves others meanwhile.

use std::time::{Duration, Instant};

use wasmtime_wasi::HostMonotonicClock;

use crate::wasm::shard_local::ShardLocal;

/// The clock's zero: the process start (any fixed instant would do; WASI
/// only promises monotonic nanoseconds).
fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds on the guests' monotonic clock.
pub fn now_nanos() -> u64 {
    u64::try_from(epoch().elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// A sleep on the shard's timers. Even a zero sleep goes through the
/// timer: a guest polling in a loop with a zero timeout must let the shard
/// poll I/O.
pub async fn sleep(wait: Duration) {
    ShardLocal::new(glommio::timer::Timer::new(wait)).await;
}

/// The same clock for wasmtime-wasi's context, so that an absolute
/// deadline a guest computed from `now` means the same instant to
/// [`sleep`]'s callers.
pub struct MonotonicClock;

impl HostMonotonicClock for MonotonicClock {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        now_nanos()
    }
}
