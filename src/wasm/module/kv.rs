//! The `kv_v1` host functions: a core module's access to the key-value
//! stores its route lists. Each operation is asynchronous on the shard
//! (a message to the store thread, or a Redis command): while it waits the
//! guest's fiber is suspended and the shard serves other connections.
//! Failures are codes (`abi::kv_error`), never traps; only a pointer
//! outside the guest's memory traps, as everywhere in the ABI.

use std::rc::Rc;

use wasmtime::{Caller, Linker};

use super::abi::{ABSENT, KV_MODULE, kv_error as code};
use super::backends::WaitingOnIo;
use super::host::{HostState, copy_out, guest_range, memory_and_state};
use crate::kv::{KvError, Store};
use crate::stats::KeyValueResult;
use crate::wasm::route::RouteContext;
use crate::wasm::shard_local::ShardLocal;

/// Stores one instance may hold open at once (`open` of a name already
/// open returns the same handle).
const MAX_OPEN_STORES: usize = 16;

/// The stores an instance opened; handles are indices from 1.
#[derive(Default)]
pub struct OpenStores(Vec<Rc<Store>>);

impl OpenStores {
    pub(super) fn get(&self, handle: i32) -> Option<Rc<Store>> {
        let index = usize::try_from(handle).ok()?.checked_sub(1)?;
        self.0.get(index).cloned()
    }
}

pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap_async(KV_MODULE, "open", |c: Caller<'_, HostState>, (p, l): (i32, i64)| {
        Box::new(ShardLocal::new(open(c, p, l)))
    })?;
    linker.func_wrap_async(
        KV_MODULE,
        "get",
        |c: Caller<'_, HostState>, (h, kp, kl, vp, cap): (i32, i32, i64, i32, i64)| {
            Box::new(ShardLocal::new(get(c, h, (kp, kl), vp, cap)))
        },
    )?;
    linker.func_wrap_async(
        KV_MODULE,
        "set",
        |c: Caller<'_, HostState>, (h, kp, kl, vp, vl): (i32, i32, i64, i32, i64)| {
            Box::new(ShardLocal::new(set(c, h, (kp, kl), (vp, vl))))
        },
    )?;
    linker.func_wrap_async(
        KV_MODULE,
        "delete",
        |c: Caller<'_, HostState>, (h, kp, kl): (i32, i32, i64)| Box::new(ShardLocal::new(delete(c, h, (kp, kl)))),
    )?;
    linker.func_wrap_async(
        KV_MODULE,
        "increment",
        |c: Caller<'_, HostState>, (h, kp, kl, delta, out): (i32, i32, i64, i64, i32)| {
            Box::new(ShardLocal::new(increment(c, h, (kp, kl), delta, out)))
        },
    )?;
    linker.func_wrap_async(
        KV_MODULE,
        "list_keys",
        |c: Caller<'_, HostState>, (h, cursor, bp, cap, next): (i32, i64, i32, i64, i32)| {
            Box::new(ShardLocal::new(list_keys(c, h, cursor, (bp, cap), next)))
        },
    )?;
    Ok(())
}

/// The guest's code for a store error; the reasons worth an operator's
/// attention are logged with the route's name.
fn error_code(route: &RouteContext, function: &str, error: &KvError) -> i64 {
    error.record(&route.stats, &route.label, format_args!("kv_v1.{function}"));
    match error {
        KvError::NoSuchStore(_) => code::NO_SUCH_STORE,
        KvError::AccessDenied(_) => code::ACCESS_DENIED,
        KvError::TooLarge { .. } => code::TOO_LARGE,
        KvError::BadKey => code::BAD_KEY,
        KvError::NotANumber => code::NOT_A_NUMBER,
        KvError::Overflow => code::OVERFLOW,
        KvError::Timeout(_) | KvError::Backend(_) => code::UNAVAILABLE,
    }
}

/// Reads a UTF-8 string (a key or a store name) out of guest memory.
fn guest_string(
    memory: &[u8],
    function: &'static str,
    (ptr, len): (i32, i64),
) -> wasmtime::Result<Result<String, KvError>> {
    let range = guest_range(memory.len(), function, ptr, len)?;
    Ok(String::from_utf8(memory[range].to_vec()).map_err(|_| KvError::BadKey))
}

/// The store behind `handle` and the key, or the code to return.
fn store_and_key(
    caller: &mut Caller<'_, HostState>,
    function: &'static str,
    handle: i32,
    key: (i32, i64),
) -> wasmtime::Result<Result<(Rc<Store>, String), i64>> {
    let (memory, state) = memory_and_state(caller, function)?;
    let Some(store) = state.stores(handle) else {
        return Ok(Err(code::BAD_HANDLE));
    };
    match guest_string(memory, function, key)? {
        Ok(key) => Ok(Ok((store, key))),
        Err(e) => Ok(Err(error_code(state.route(), function, &e))),
    }
}

async fn open(mut caller: Caller<'_, HostState>, ptr: i32, len: i64) -> wasmtime::Result<i32> {
    let (memory, state) = memory_and_state(&mut caller, "open")?;
    let name = match guest_string(memory, "open", (ptr, len))? {
        Ok(name) => name,
        Err(e) => return Ok(error_code(state.route(), "open", &e) as i32),
    };
    let opened = state.route().key_value.open(&name);
    let store = match opened {
        Ok(store) => store,
        Err(e) => return Ok(error_code(state.route(), "open", &e) as i32),
    };
    let open = &mut state.open_stores.0;
    if let Some(i) = open.iter().position(|s| Rc::ptr_eq(s, &store)) {
        return Ok(i as i32 + 1);
    }
    if open.len() == MAX_OPEN_STORES {
        return Ok(code::TOO_LARGE as i32);
    }
    open.push(store);
    Ok(open.len() as i32)
}

async fn get(
    mut caller: Caller<'_, HostState>,
    handle: i32,
    key: (i32, i64),
    ptr: i32,
    cap: i64,
) -> wasmtime::Result<i64> {
    let (store, key) = match store_and_key(&mut caller, "get", handle, key)? {
        Ok(found) => found,
        Err(code) => return Ok(code),
    };
    let value = match awaited(&mut caller, "get", store.get(&key)).await {
        Ok(value) => value,
        Err(code) => return Ok(code),
    };
    let (memory, _) = memory_and_state(&mut caller, "get")?;
    match value {
        Some(value) => copy_out(memory, "get", Some(&value), ptr, cap),
        None => Ok(ABSENT),
    }
}

async fn set(
    mut caller: Caller<'_, HostState>,
    handle: i32,
    key: (i32, i64),
    value: (i32, i64),
) -> wasmtime::Result<i32> {
    let (store, key) = match store_and_key(&mut caller, "set", handle, key)? {
        Ok(found) => found,
        Err(code) => return Ok(code as i32),
    };
    let (memory, _) = memory_and_state(&mut caller, "set")?;
    let value = memory[guest_range(memory.len(), "set", value.0, value.1)?].to_vec();
    Ok(status(awaited(&mut caller, "set", store.set(&key, value)).await))
}

async fn delete(mut caller: Caller<'_, HostState>, handle: i32, key: (i32, i64)) -> wasmtime::Result<i32> {
    let (store, key) = match store_and_key(&mut caller, "delete", handle, key)? {
        Ok(found) => found,
        Err(code) => return Ok(code as i32),
    };
    Ok(status(awaited(&mut caller, "delete", store.delete(&key)).await))
}

/// Awaits a store operation as an I/O wait of the guest (not a fuel
/// yield), counts it, and turns its error into the guest's code.
async fn awaited<T>(
    caller: &mut Caller<'_, HostState>,
    function: &'static str,
    operation: impl Future<Output = Result<T, KvError>>,
) -> Result<T, i64> {
    let waiting = WaitingOnIo::start(&caller.data().backends);
    let result = operation.await;
    drop(waiting);
    let route = caller.data().route();
    match result {
        Ok(value) => {
            route.stats.key_value(KeyValueResult::Ok);
            Ok(value)
        }
        Err(e) => Err(error_code(route, function, &e)),
    }
}

/// 0, or the error's code: what functions that answer nothing return.
fn status(result: Result<(), i64>) -> i32 {
    result.map_or_else(|code| code as i32, |()| 0)
}

async fn increment(
    mut caller: Caller<'_, HostState>,
    handle: i32,
    key: (i32, i64),
    delta: i64,
    out: i32,
) -> wasmtime::Result<i32> {
    let (store, key) = match store_and_key(&mut caller, "increment", handle, key)? {
        Ok(found) => found,
        Err(code) => return Ok(code as i32),
    };
    // The result's place is checked before the store changes.
    let (memory, _) = memory_and_state(&mut caller, "increment")?;
    let out = guest_range(memory.len(), "increment", out, 8)?;
    let value = match awaited(&mut caller, "increment", store.increment(&key, delta)).await {
        Ok(value) => value,
        Err(code) => return Ok(code as i32),
    };
    let (memory, _) = memory_and_state(&mut caller, "increment")?;
    memory[out].copy_from_slice(&value.to_le_bytes());
    Ok(0)
}

/// A page of keys, each as a little-endian u32 length and its bytes, and
/// at `next` the cursor of the next page (0: none). Like every lookup, a
/// page larger than `cap` is not written and its length is returned.
async fn list_keys(
    mut caller: Caller<'_, HostState>,
    handle: i32,
    cursor: i64,
    (ptr, cap): (i32, i64),
    next: i32,
) -> wasmtime::Result<i64> {
    let Some(store) = caller.data().stores(handle) else {
        return Ok(code::BAD_HANDLE);
    };
    let (memory, _) = memory_and_state(&mut caller, "list_keys")?;
    let next = guest_range(memory.len(), "list_keys", next, 8)?;
    let cursor = (cursor > 0).then_some(cursor as u64);
    let page = match awaited(&mut caller, "list_keys", store.list_keys(cursor)).await {
        Ok(page) => page,
        Err(code) => return Ok(code),
    };
    let (memory, _) = memory_and_state(&mut caller, "list_keys")?;
    let mut encoded = Vec::new();
    for key in &page.keys {
        encoded.extend_from_slice(&(key.len() as u32).to_le_bytes());
        encoded.extend_from_slice(key.as_bytes());
    }
    let written = copy_out(memory, "list_keys", Some(&encoded), ptr, cap)?;
    if encoded.len() as u64 <= cap as u64 {
        let cursor = page.cursor.map_or(0, |c| c as i64);
        memory[next].copy_from_slice(&cursor.to_le_bytes());
    }
    Ok(written)
}
