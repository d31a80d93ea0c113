//! `wasi:clocks/monotonic-clock` on the shard's own timers.
//!
//! wasmtime-wasi implements a sleeping guest with `tokio::time`; this
//! replacement's pollable sleeps on the shard's timers (`shard_clock`).

use std::time::{Duration, Instant};

use wasmtime::component::{Accessor, HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::clocks::{WasiClocksCtxView, WasiClocksView};
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};
use wasmtime_wasi::p3::bindings::clocks::monotonic_clock as p3_monotonic_clock;

use super::state::ComponentState;
use crate::wasm::shard_clock::{now_nanos, sleep};

/// Replaces the monotonic clock wasmtime-wasi linked (the linker must
/// allow shadowing).
pub fn shadow_monotonic_clock(linker: &mut Linker<ComponentState>) -> wasmtime::Result<()> {
    monotonic_clock::add_to_linker::<ComponentState, ShardClock>(linker, |state| ShardClockView {
        table: &mut state.table,
    })
}

/// The same for WASI 0.3, whose `wait-for` and `wait-until` are async
/// functions of the store (the rest of the clock is wasmtime-wasi's).
pub fn shadow_p3_monotonic_clock(linker: &mut Linker<ComponentState>) -> wasmtime::Result<()> {
    p3_monotonic_clock::add_to_linker::<ComponentState, ShardClockP3>(linker, |state| state.clocks())
}

struct ShardClock;

struct ShardClockP3;

impl HasData for ShardClockP3 {
    type Data<'a> = WasiClocksCtxView<'a>;
}

impl<U> p3_monotonic_clock::HostWithStore<U> for ShardClockP3 {
    async fn wait_until(store: &Accessor<U, Self>, when: p3_monotonic_clock::Mark) -> wasmtime::Result<()> {
        // The mark is on the clock wasmtime-wasi's `now` reads.
        let now = store.with(|mut view| p3_monotonic_clock::Host::now(&mut view.get()))?;
        sleep(Duration::from_nanos(when.saturating_sub(now))).await;
        Ok(())
    }

    async fn wait_for(_: &Accessor<U, Self>, nanos: u64) -> wasmtime::Result<()> {
        sleep(Duration::from_nanos(nanos)).await;
        Ok(())
    }
}

impl HasData for ShardClock {
    type Data<'a> = ShardClockView<'a>;
}

struct ShardClockView<'a> {
    table: &'a mut ResourceTable,
}

impl monotonic_clock::Host for ShardClockView<'_> {
    fn now(&mut self) -> wasmtime::Result<u64> {
        Ok(now_nanos())
    }

    fn resolution(&mut self) -> wasmtime::Result<u64> {
        Ok(1)
    }

    fn subscribe_instant(&mut self, when: u64) -> wasmtime::Result<Resource<DynPollable>> {
        let wait = when.saturating_sub(now_nanos());
        self.subscribe_duration(wait)
    }

    fn subscribe_duration(&mut self, nanos: u64) -> wasmtime::Result<Resource<DynPollable>> {
        let deadline = Instant::now().checked_add(Duration::from_nanos(nanos));
        let sleep = self.table.push(Sleep { deadline })?;
        subscribe(self.table, sleep)
    }
}

/// A guest's sleep. `None`: so far ahead it never ends (the route's
/// timeout ends the request first).
struct Sleep {
    deadline: Option<Instant>,
}

#[wasmtime_wasi::async_trait]
impl Pollable for Sleep {
    async fn ready(&mut self) {
        match self.deadline {
            Some(deadline) => sleep(deadline.saturating_duration_since(Instant::now())).await,
            None => std::future::pending().await,
        }
    }
}
