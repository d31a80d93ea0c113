//! WASI preview 1 (`wasi_snapshot_preview1`) for core modules, so that
//! programs built by ordinary toolchains (wasi-libc, Go's `wasip1`, Zig,
//! Rust's `wasm32-wasip1`) can serve a route beside the `env` functions.
//!
//! wasmtime-wasi implements it; this file decides what a guest gets:
//! stdout and stderr go to the route's log, the environment is the route's
//! `env`, clocks and random are the host's, and there are no files,
//! directories or sockets. One function is replaced: `poll_oneoff`, which
//! upstream blocks the thread for a plain sleep and otherwise needs
//! tokio's timer, so it is written here on the shard's timers.
//!
//! The context is built on a guest's first WASI call, so guests that import
//! only `env` carry none of it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wasmtime::{Caller, Linker};
use wasmtime_wasi::I32Exit;
use wasmtime_wasi::p1::WasiP1Ctx;

use super::backends::WaitingOnIo;
use super::host::{HostState, guest_range, memory_and_state};
use crate::wasm::guest_log::GuestLog;
use crate::wasm::route::RouteContext;
use crate::wasm::shard_clock;
use crate::wasm::shard_local::ShardLocal;

/// The import module of WASI preview 1.
pub const MODULE: &str = "wasi_snapshot_preview1";

/// Adds every WASI preview 1 function, then our `poll_oneoff` over
/// wasmtime-wasi's.
pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p1::add_to_linker_async(linker, HostState::wasi)?;
    linker.allow_shadowing(true);
    linker.func_wrap_async(
        MODULE,
        "poll_oneoff",
        |caller: Caller<'_, HostState>, (subs, events, count, written): (i32, i32, i32, i32)| {
            Box::new(ShardLocal::new(poll_oneoff(caller, subs, events, count, written)))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// The WASI context of one instance: the route's `env` as its
/// environment, the route's label as its program name, stdout and stderr
/// into the route's log; nothing preopened and no network.
pub(super) fn context(route: &RouteContext, log: &GuestLog) -> WasiP1Ctx {
    let mut wasi = route.wasi_builder(log);
    wasi.arg(&route.label)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    wasi.build_p1()
}

/// The status of a guest that called `proc_exit`, if that is how its call
/// ended.
pub(super) fn exit_status(error: &wasmtime::Error) -> Option<i32> {
    error.downcast_ref::<I32Exit>().map(|exit| exit.0)
}

/// WASI preview 1's layout of `subscription` and `event`, and the codes
/// `poll_oneoff` uses.
mod layout {
    pub const SUBSCRIPTION_SIZE: usize = 48;
    pub const EVENT_SIZE: usize = 32;
    pub const EVENTTYPE_CLOCK: u8 = 0;
    pub const EVENTTYPE_FD_READ: u8 = 1;
    pub const EVENTTYPE_FD_WRITE: u8 = 2;
    pub const CLOCK_REALTIME: u32 = 0;
    pub const CLOCK_MONOTONIC: u32 = 1;
    pub const SUBSCRIPTION_CLOCK_ABSTIME: u16 = 1;
    pub const ERRNO_SUCCESS: u16 = 0;
    pub const ERRNO_BADF: u16 = 8;
    pub const ERRNO_INVAL: u16 = 28;
    pub const ERRNO_NOTSUP: u16 = 58;
}
use layout::*;

/// Most subscriptions one call may pass (Go's scheduler passes a few).
const MAX_SUBSCRIPTIONS: usize = 4096;

/// One `event` to report.
#[derive(Clone, Copy)]
struct Event {
    userdata: u64,
    error: u16,
    kind: u8,
    nbytes: u64,
}

/// What a subscription asks for.
enum Wait {
    /// A clock: ready after this long from now.
    Clock(Duration),
    /// A descriptor: ready now, with this event.
    Ready(Event),
}

/// `poll_oneoff(in, out, nsubscriptions, nevents) -> errno`: waits until a
/// subscription is ready. The only descriptors are stdin (always at its
/// end), stdout and stderr (always writable), so descriptors never wait;
/// clocks sleep on the shard's timers.
async fn poll_oneoff(
    mut caller: Caller<'_, HostState>,
    subs_ptr: i32,
    events_ptr: i32,
    count: i32,
    nevents_ptr: i32,
) -> wasmtime::Result<i32> {
    let count = count as u32 as usize;
    if count == 0 || count > MAX_SUBSCRIPTIONS {
        return Ok(i32::from(ERRNO_INVAL));
    }
    let waits = {
        let (memory, _) = memory_and_state(&mut caller, "poll_oneoff")?;
        let subs = guest_range(
            memory.len(),
            "poll_oneoff",
            subs_ptr,
            (count * SUBSCRIPTION_SIZE) as i64,
        )?;
        match read_subscriptions(&memory[subs]) {
            Ok(waits) => waits,
            Err(errno) => return Ok(i32::from(errno)),
        }
    };
    let mut events: Vec<Event> = Vec::new();
    for (userdata, wait) in &waits {
        if let Wait::Ready(event) = wait {
            events.push(Event {
                userdata: *userdata,
                ..*event
            });
        }
    }
    let soonest = waits
        .iter()
        .filter_map(|(_, wait)| match wait {
            Wait::Clock(after) => Some(*after),
            Wait::Ready(_) => None,
        })
        .min();
    // Sleep only when no descriptor is ready (then some clock is there).
    let slept = match soonest {
        Some(after) if events.is_empty() => {
            let waiting = WaitingOnIo::start(&caller.data().backends);
            shard_clock::sleep(after).await;
            drop(waiting);
            after
        }
        _ => Duration::ZERO,
    };
    for (userdata, wait) in &waits {
        if let Wait::Clock(after) = wait
            && *after <= slept
        {
            events.push(Event {
                userdata: *userdata,
                error: ERRNO_SUCCESS,
                kind: EVENTTYPE_CLOCK,
                nbytes: 0,
            });
        }
    }
    let (memory, _) = memory_and_state(&mut caller, "poll_oneoff")?;
    let out = guest_range(
        memory.len(),
        "poll_oneoff",
        events_ptr,
        (events.len() * EVENT_SIZE) as i64,
    )?;
    for (event, slot) in events.iter().zip(memory[out].chunks_exact_mut(EVENT_SIZE)) {
        slot.fill(0);
        slot[0..8].copy_from_slice(&event.userdata.to_le_bytes());
        slot[8..10].copy_from_slice(&event.error.to_le_bytes());
        slot[10] = event.kind;
        slot[16..24].copy_from_slice(&event.nbytes.to_le_bytes());
    }
    let nevents = guest_range(memory.len(), "poll_oneoff", nevents_ptr, 4)?;
    memory[nevents].copy_from_slice(&(events.len() as u32).to_le_bytes());
    Ok(i32::from(ERRNO_SUCCESS))
}

/// Reads each subscription's userdata and what it waits for; an errno for
/// the whole call if one is malformed.
fn read_subscriptions(bytes: &[u8]) -> Result<Vec<(u64, Wait)>, u16> {
    let u64_at = |sub: &[u8], at: usize| u64::from_le_bytes(sub[at..at + 8].try_into().unwrap_or_default());
    let u32_at = |sub: &[u8], at: usize| u32::from_le_bytes(sub[at..at + 4].try_into().unwrap_or_default());
    bytes
        .chunks_exact(SUBSCRIPTION_SIZE)
        .map(|sub| {
            let userdata = u64_at(sub, 0);
            let wait = match sub[8] {
                EVENTTYPE_CLOCK => {
                    let clock = u32_at(sub, 16);
                    let timeout = u64_at(sub, 24);
                    let absolute = u16::from_le_bytes([sub[40], sub[41]]) & SUBSCRIPTION_CLOCK_ABSTIME != 0;
                    Wait::Clock(clock_wait(clock, timeout, absolute)?)
                }
                kind @ (EVENTTYPE_FD_READ | EVENTTYPE_FD_WRITE) => Wait::Ready(descriptor_event(kind, u32_at(sub, 16))),
                _ => return Err(ERRNO_INVAL),
            };
            Ok((userdata, wait))
        })
        .collect()
}

/// How long from now a clock subscription fires.
fn clock_wait(clock: u32, timeout: u64, absolute: bool) -> Result<Duration, u16> {
    let now = match (clock, absolute) {
        (CLOCK_REALTIME | CLOCK_MONOTONIC, false) => 0,
        (CLOCK_MONOTONIC, true) => shard_clock::now_nanos(),
        (CLOCK_REALTIME, true) => {
            let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
            u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX)
        }
        // CPU-time clocks: a sleep on them means nothing here.
        _ => return Err(ERRNO_NOTSUP),
    };
    Ok(Duration::from_nanos(timeout.saturating_sub(now)))
}

/// A descriptor subscription is answered at once: stdin is at its end,
/// stdout and stderr take a log line, and nothing else is open.
fn descriptor_event(kind: u8, fd: u32) -> Event {
    let (error, nbytes) = match (kind, fd) {
        (EVENTTYPE_FD_READ, 0) => (ERRNO_SUCCESS, 0),
        (EVENTTYPE_FD_WRITE, 1 | 2) => (ERRNO_SUCCESS, crate::config::MAX_LOG_LINE as u64),
        _ => (ERRNO_BADF, 0),
    };
    Event {
        userdata: 0,
        error,
        kind,
        nbytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscription(userdata: u64, kind: u8, clock_or_fd: u32, timeout: u64, flags: u16) -> [u8; SUBSCRIPTION_SIZE] {
        let mut sub = [0u8; SUBSCRIPTION_SIZE];
        sub[0..8].copy_from_slice(&userdata.to_le_bytes());
        sub[8] = kind;
        sub[16..20].copy_from_slice(&clock_or_fd.to_le_bytes());
        sub[24..32].copy_from_slice(&timeout.to_le_bytes());
        sub[40..42].copy_from_slice(&flags.to_le_bytes());
        sub
    }

    #[test]
    fn clock_subscriptions_become_waits_from_now() {
        let mut bytes = Vec::new();
        bytes.extend(subscription(7, EVENTTYPE_CLOCK, CLOCK_MONOTONIC, 1_500_000, 0));
        bytes.extend(subscription(8, EVENTTYPE_CLOCK, CLOCK_REALTIME, 2_000, 0));
        // An absolute monotonic deadline already past fires at once.
        bytes.extend(subscription(
            9,
            EVENTTYPE_CLOCK,
            CLOCK_MONOTONIC,
            0,
            SUBSCRIPTION_CLOCK_ABSTIME,
        ));
        let waits = read_subscriptions(&bytes).unwrap_or_default();
        let clocks: Vec<(u64, Duration)> = waits
            .iter()
            .filter_map(|(userdata, wait)| match wait {
                Wait::Clock(after) => Some((*userdata, *after)),
                Wait::Ready(_) => None,
            })
            .collect();
        assert_eq!(
            clocks,
            [
                (7, Duration::from_micros(1500)),
                (8, Duration::from_micros(2)),
                (9, Duration::ZERO)
            ]
        );
        // An absolute realtime deadline an hour ahead is about an hour away.
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let later = (now + Duration::from_secs(3600)).as_nanos() as u64;
        let wait = clock_wait(CLOCK_REALTIME, later, true).unwrap_or_default();
        assert!(
            wait > Duration::from_secs(3590) && wait <= Duration::from_secs(3600),
            "{wait:?}"
        );
    }

    #[test]
    fn descriptors_answer_at_once_and_unknown_ones_are_badf() {
        let mut bytes = Vec::new();
        bytes.extend(subscription(1, EVENTTYPE_FD_WRITE, 1, 0, 0));
        bytes.extend(subscription(2, EVENTTYPE_FD_READ, 0, 0, 0));
        bytes.extend(subscription(3, EVENTTYPE_FD_READ, 5, 0, 0));
        let errors: Vec<u16> = read_subscriptions(&bytes)
            .unwrap_or_default()
            .iter()
            .filter_map(|(_, wait)| match wait {
                Wait::Ready(event) => Some(event.error),
                Wait::Clock(_) => None,
            })
            .collect();
        assert_eq!(errors, [ERRNO_SUCCESS, ERRNO_SUCCESS, ERRNO_BADF]);
    }

    #[test]
    fn unknown_kinds_and_cpu_clocks_are_refused() {
        assert_eq!(
            read_subscriptions(&subscription(1, 9, 0, 0, 0)).err(),
            Some(ERRNO_INVAL)
        );
        assert_eq!(
            read_subscriptions(&subscription(1, EVENTTYPE_CLOCK, 2, 10, 0)).err(),
            Some(ERRNO_NOTSUP)
        );
    }
}
