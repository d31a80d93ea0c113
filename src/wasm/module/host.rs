//! The host side of one guest instance: what its `Store` carries, and the
//! bounds-checked access to its linear memory that every host function uses.

use std::rc::Rc;

use wasmtime::{Caller, Memory};
use wasmtime_wasi::p1::WasiP1Ctx;

use super::backends::Backends;
use super::kv::OpenStores;
use crate::http::Request;
use crate::kv::Store;
use crate::wasm::guest_log::GuestLog;
use crate::wasm::limiter::GuestLimiter;
use crate::wasm::route::RouteContext;
use crate::wasm::shard_local::ShardLocal;

/// Most headers a guest response may carry; more is a 500.
const MAX_RESPONSE_HEADERS: usize = 100;
/// Longest reason phrase a guest may set.
const MAX_REASON_BYTES: usize = 256;

/// The data of a guest's `Store`.
///
/// wasmtime requires it to be `Send` (async host functions may in principle
/// move between threads). Ours never do: a store is created, used and dropped
/// on its shard's thread. The shard-local parts are wrapped in
/// [`ShardLocal`], which checks that promise at run time.
pub struct HostState {
    pub(super) route: ShardLocal<Rc<RouteContext>>,
    /// The request being served; `None` between requests.
    pub(super) request: Option<Request>,
    pub(super) response: GuestResponse,
    /// The guest's memory, looked up once per instance.
    pub(super) memory: Option<Memory>,
    pub(super) limits: GuestLimiter,
    pub(super) log: GuestLog,
    /// WASI preview 1, built on the guest's first WASI call.
    wasi: Option<WasiP1Ctx>,
    pub(super) backends: ShardLocal<Backends>,
    /// Key-value stores the instance opened (`kv_v1.open`).
    pub(super) open_stores: ShardLocal<OpenStores>,
    /// Set while instantiating at start-up (no shard, no sockets).
    pub(super) trial: bool,
}

impl HostState {
    pub(super) fn new(route: Rc<RouteContext>, trial: bool) -> HostState {
        let guest = &route.limits;
        let limits = GuestLimiter::new(guest, 1, 4, route.stats.clone());
        let log = GuestLog::new(&route);
        HostState {
            route: ShardLocal::new(route),
            request: None,
            response: GuestResponse::default(),
            memory: None,
            limits,
            log,
            wasi: None,
            backends: ShardLocal::new(Backends::default()),
            open_stores: ShardLocal::new(OpenStores::default()),
            trial,
        }
    }

    /// Clears what one request left behind (for a reused instance). Its
    /// backend sockets were already closed when it ended (`Instance::call`).
    pub(super) fn reset(&mut self) {
        self.response.clear();
    }

    /// The instance's WASI context (see `wasi.rs`).
    pub(super) fn wasi(&mut self) -> &mut WasiP1Ctx {
        self.wasi
            .get_or_insert_with(|| super::wasi::context(&self.route, &self.log))
    }

    pub(super) fn route(&self) -> &RouteContext {
        &self.route
    }

    /// The store behind a `kv_v1` handle.
    pub(super) fn stores(&self, handle: i32) -> Option<Rc<Store>> {
        self.open_stores.get(handle)
    }
}

/// A response as the guest built it, plus the first thing it got wrong.
#[derive(Debug, Default)]
pub struct GuestResponse {
    pub status: Option<u16>,
    pub reason: Vec<u8>,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: Vec<u8>,
    /// A `Content-Length` the guest set, checked against the real length.
    pub declared_length: Option<Vec<u8>>,
    /// The first invalid thing the guest asked for; the request becomes a
    /// 500 instead of a malformed response.
    pub fault: Option<String>,
}

impl GuestResponse {
    fn clear(&mut self) {
        self.status = None;
        self.reason.clear();
        self.headers.clear();
        self.body.clear();
        self.declared_length = None;
        self.fault = None;
    }

    pub(super) fn fail(&mut self, why: String) {
        self.fault.get_or_insert(why);
    }

    pub(super) fn set_status(&mut self, status: i32, reason: &[u8]) {
        // 1xx are interim responses; a guest's answer is always final.
        if !(200..=999).contains(&status) {
            return self.fail(format!("invalid status {status}: must be from 200 to 999"));
        }
        if reason.len() > MAX_REASON_BYTES
            || !reason
                .iter()
                .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80)
        {
            return self.fail(format!(
                "invalid reason phrase {:?}",
                String::from_utf8_lossy(&reason[..reason.len().min(64)])
            ));
        }
        self.status = Some(status as u16);
        self.reason.clear();
        self.reason.extend_from_slice(reason);
    }

    /// Records a header; `replace` drops earlier headers of the same name.
    pub(super) fn set_header(&mut self, name: &[u8], value: &[u8], replace: bool, route: &str) {
        let value = value.trim_ascii();
        if !crate::http::is_token(name) {
            return self.fail(format!(
                "invalid header name {:?}",
                String::from_utf8_lossy(&name[..name.len().min(64)])
            ));
        }
        if !crate::http::is_field_value(value) {
            return self.fail(format!("invalid value for header {}", String::from_utf8_lossy(name)));
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            self.declared_length = Some(value.to_vec());
            return;
        }
        if crate::http::encode::is_framing_header(name) {
            tracing::warn!(route, header = %String::from_utf8_lossy(name), "guest set a framing header; the server owns framing, header ignored");
            return;
        }
        if replace {
            self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        }
        if self.headers.len() >= MAX_RESPONSE_HEADERS {
            return self.fail(format!("more than {MAX_RESPONSE_HEADERS} response headers"));
        }
        self.headers.push((name.to_vec(), value.to_vec()));
    }
}

/// A guest passed the host something it cannot mean: the call traps and the
/// request is a 500.
#[derive(Debug, thiserror::Error)]
pub enum HostTrap {
    #[error("guest passed an out-of-bounds buffer ({ptr:#x}, {len} bytes) to {function}")]
    OutOfBounds { function: &'static str, ptr: u32, len: i64 },
    #[error("guest has no memory exported as \"memory\" (needed by {0})")]
    NoMemory(&'static str),
}

/// The guest's memory and the host state, borrowed together.
pub(super) fn memory_and_state<'a>(
    caller: &'a mut Caller<'_, HostState>,
    function: &'static str,
) -> wasmtime::Result<(&'a mut [u8], &'a mut HostState)> {
    let memory = caller.data().memory.ok_or(HostTrap::NoMemory(function))?;
    Ok(memory.data_and_store_mut(caller))
}

/// The range `ptr..ptr+len` of guest memory, if it is one.
pub(super) fn guest_range(
    memory_len: usize,
    function: &'static str,
    ptr: i32,
    len: i64,
) -> Result<std::ops::Range<usize>, HostTrap> {
    // Wasm32 pointers are unsigned.
    let start = ptr as u32 as usize;
    let end = usize::try_from(len).ok().and_then(|l| start.checked_add(l));
    match end {
        Some(end) if end <= memory_len => Ok(start..end),
        _ => Err(HostTrap::OutOfBounds {
            function,
            ptr: ptr as u32,
            len,
        }),
    }
}

/// Copies `value` into the guest's buffer `(ptr, cap)` if it fits, and
/// returns its length either way (the guest retries with a bigger buffer);
/// `None` means absent and returns -1. Nothing is written when it does not
/// fit, and a zero-capacity buffer is never dereferenced, so the "ask for
/// the size first" idiom with a dangling pointer works.
pub(super) fn copy_out(
    memory: &mut [u8],
    function: &'static str,
    value: Option<&[u8]>,
    ptr: i32,
    cap: i64,
) -> wasmtime::Result<i64> {
    let Some(value) = value else {
        return Ok(super::abi::ABSENT);
    };
    if cap < 0 {
        return Err(HostTrap::OutOfBounds {
            function,
            ptr: ptr as u32,
            len: cap,
        }
        .into());
    }
    if value.len() as u64 > cap as u64 {
        return Ok(value.len() as i64);
    }
    if !value.is_empty() {
        let range = guest_range(memory.len(), function, ptr, value.len() as i64)?;
        memory[range].copy_from_slice(value);
    }
    Ok(value.len() as i64)
}
