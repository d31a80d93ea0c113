//! The linker every core-module guest is instantiated with: the host
//! functions of import module `env` that build the response and read the
//! request and the route's `env`, plus the TCP functions of `net`.

use wasmtime::{Caller, Linker};

use super::abi::MODULE;
use super::host::{HostState, copy_out, guest_range, memory_and_state};
use super::{kv, net, wasi};

/// Builds the linker every guest is instantiated with.
pub fn linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    linker.func_wrap(MODULE, "log", log)?;
    linker.func_wrap(MODULE, "response_set_status_line", response_set_status_line)?;
    linker.func_wrap(
        MODULE,
        "response_set_header",
        |c: Caller<'_, HostState>, np: i32, nl: i64, vp: i32, vl: i64| {
            response_header(c, "response_set_header", (np, nl, vp, vl), true)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "response_add_header",
        |c: Caller<'_, HostState>, np: i32, nl: i64, vp: i32, vl: i64| {
            response_header(c, "response_add_header", (np, nl, vp, vl), false)
        },
    )?;
    linker.func_wrap(MODULE, "response_set_body", response_set_body)?;
    linker.func_wrap(MODULE, "db_get", db_get)?;
    linker.func_wrap(
        MODULE,
        "request_method",
        |mut c: Caller<'_, HostState>, ptr: i32, cap: i64| {
            let (memory, state) = memory_and_state(&mut c, "request_method")?;
            let value = state.request.as_ref().map(|r| r.method_bytes());
            copy_out(memory, "request_method", value, ptr, cap)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "request_path",
        |mut c: Caller<'_, HostState>, ptr: i32, cap: i64| {
            let (memory, state) = memory_and_state(&mut c, "request_path")?;
            let value = state.request.as_ref().map(|r| r.target());
            copy_out(memory, "request_path", value, ptr, cap)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "request_body",
        |mut c: Caller<'_, HostState>, ptr: i32, cap: i64| {
            let (memory, state) = memory_and_state(&mut c, "request_body")?;
            let value = state.request.as_ref().map(|r| r.body.as_slice());
            copy_out(memory, "request_body", value, ptr, cap)
        },
    )?;
    linker.func_wrap(MODULE, "request_header", request_header)?;
    net::add_to_linker(&mut linker)?;
    kv::add_to_linker(&mut linker)?;
    wasi::add_to_linker(&mut linker)?;
    Ok(linker)
}

fn log(mut caller: Caller<'_, HostState>, ptr: i32, len: i64) -> wasmtime::Result<()> {
    let (memory, state) = memory_and_state(&mut caller, "log")?;
    let range = guest_range(memory.len(), "log", ptr, len)?;
    let allowed = state.log.take(range.len());
    if allowed > 0 {
        let text = String::from_utf8_lossy(&memory[range.start..range.start + allowed]);
        tracing::info!(target: "guest", route = %state.route().label, "{}", text.trim_end());
    }
    Ok(())
}

fn response_set_status_line(
    mut caller: Caller<'_, HostState>,
    status: i32,
    ptr: i32,
    len: i64,
) -> wasmtime::Result<()> {
    let (memory, state) = memory_and_state(&mut caller, "response_set_status_line")?;
    let range = guest_range(memory.len(), "response_set_status_line", ptr, len)?;
    state.response.set_status(status, &memory[range]);
    Ok(())
}

fn response_header(
    mut caller: Caller<'_, HostState>,
    function: &'static str,
    (name_ptr, name_len, value_ptr, value_len): (i32, i64, i32, i64),
    replace: bool,
) -> wasmtime::Result<()> {
    let (memory, state) = memory_and_state(&mut caller, function)?;
    let name = guest_range(memory.len(), function, name_ptr, name_len)?;
    let value = guest_range(memory.len(), function, value_ptr, value_len)?;
    let route = &state.route.label;
    state.response.set_header(&memory[name], &memory[value], replace, route);
    Ok(())
}

fn response_set_body(mut caller: Caller<'_, HostState>, ptr: i32, len: i64) -> wasmtime::Result<()> {
    let (memory, state) = memory_and_state(&mut caller, "response_set_body")?;
    let range = guest_range(memory.len(), "response_set_body", ptr, len)?;
    let limit = state.route.limits.max_response_bytes;
    if range.len() > limit {
        state.response.fail(format!(
            "response body of {} bytes exceeds max_response_bytes ({limit})",
            range.len()
        ));
        return Ok(());
    }
    state.response.body.clear();
    state.response.body.extend_from_slice(&memory[range]);
    Ok(())
}

fn db_get(
    mut caller: Caller<'_, HostState>,
    key_ptr: i32,
    key_len: i64,
    val_ptr: i32,
    val_cap: i64,
) -> wasmtime::Result<i64> {
    let (memory, state) = memory_and_state(&mut caller, "db_get")?;
    let key = guest_range(memory.len(), "db_get", key_ptr, key_len)?;
    let env = &state.route.env;
    // The value borrows the store's data, not guest memory: no copy needed.
    let value = std::str::from_utf8(&memory[key]).ok().and_then(|k| env.get(k));
    copy_out(memory, "db_get", value.map(|v| v.as_bytes()), val_ptr, val_cap)
}

fn request_header(
    mut caller: Caller<'_, HostState>,
    name_ptr: i32,
    name_len: i64,
    val_ptr: i32,
    val_cap: i64,
) -> wasmtime::Result<i64> {
    let (memory, state) = memory_and_state(&mut caller, "request_header")?;
    let name = guest_range(memory.len(), "request_header", name_ptr, name_len)?;
    let value = state.request.as_ref().and_then(|r| r.header(&memory[name]));
    copy_out(memory, "request_header", value, val_ptr, val_cap)
}
