//! Guest TCP to backends: `tcp_connect`, `tcp_read`, `tcp_write`,
//! `tcp_close`, asynchronous on the shard's own glommio reactor. While a
//! guest waits on a backend its fiber is suspended and the shard serves
//! other connections.
//!
//! Every connection is checked against the route's `allowed_outbound` list
//! (deny by default), bounded in number, bytes and time, and belongs to the
//! request that opened it: all are closed when the request ends, however it
//! ends.

use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use wasmtime::{Caller, Linker};

use super::abi::MODULE;
use super::abi::tcp_error as code;
use super::backends::{WaitingOnIo, io_code};
use super::host::{HostState, guest_range, memory_and_state};
use crate::config::Endpoint;
use crate::net::{BackendStream, ConnectError};
use crate::stats::OutboundResult;
use crate::wasm::shard_local::ShardLocal;

/// Most bytes moved by one `tcp_read`; larger buffers are filled partially.
const MAX_READ_CHUNK: usize = 64 << 10;

pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap_async(
        MODULE,
        "tcp_connect",
        |caller: Caller<'_, HostState>, (ptr, len): (i32, i64)| Box::new(ShardLocal::new(connect(caller, ptr, len))),
    )?;
    linker.func_wrap_async(
        MODULE,
        "tcp_read",
        |caller: Caller<'_, HostState>, (fd, ptr, cap): (i32, i32, i64)| {
            Box::new(ShardLocal::new(read(caller, fd, ptr, cap)))
        },
    )?;
    linker.func_wrap_async(
        MODULE,
        "tcp_write",
        |caller: Caller<'_, HostState>, (fd, ptr, len): (i32, i32, i64)| {
            Box::new(ShardLocal::new(write(caller, fd, ptr, len)))
        },
    )?;
    linker.func_wrap(
        MODULE,
        "tcp_close",
        |mut caller: Caller<'_, HostState>, fd: i32| -> i32 {
            match caller.data_mut().backends.take_stream(fd) {
                Some(_closed) => 0,
                None => code::BAD_HANDLE as i32,
            }
        },
    )?;
    Ok(())
}

async fn connect(mut caller: Caller<'_, HostState>, ptr: i32, len: i64) -> wasmtime::Result<i32> {
    let (memory, state) = memory_and_state(&mut caller, "tcp_connect")?;
    let range = guest_range(memory.len(), "tcp_connect", ptr, len)?;
    let address = String::from_utf8_lossy(&memory[range]).into_owned();
    let route = state.route();
    // At start-up, while the module is checked, nothing is counted.
    let trial = state.trial;
    let count = |result| {
        if !trial {
            route.stats.outbound(result);
        }
    };
    // `tls://host:port`: the same allow-list entry, with TLS on top.
    let (tls, plain_address) = match address.strip_prefix("tls://") {
        Some(rest) => (true, rest),
        None => (false, address.as_str()),
    };
    let Ok(endpoint) = Endpoint::parse(plain_address) else {
        tracing::warn!(route = %route.label, address = %address.escape_debug(), "tcp_connect: not a host:port address");
        count(OutboundResult::Failed);
        return Ok(code::BAD_ADDRESS as i32);
    };
    if !route.outbound.allowed.contains(&endpoint) {
        tracing::warn!(route = %route.label, address = %endpoint, "tcp_connect denied: not in allowed_outbound");
        count(OutboundResult::Denied);
        return Ok(code::DENIED as i32);
    }
    if trial {
        return Ok(code::UNAVAILABLE as i32);
    }
    if state.backends.open_count() >= route.outbound.max_connections {
        tracing::warn!(route = %route.label, address = %endpoint, limit = route.outbound.max_connections, "tcp_connect: max_backend_connections reached");
        count(OutboundResult::Limit);
        return Ok(code::LIMIT as i32);
    }
    let timeout = route.outbound.connect_timeout;
    let label = route.label.clone();
    let stats = route.stats.clone();
    let waiting = WaitingOnIo::start(&state.backends);

    let tls_client = tls.then(|| route.outbound.tls.clone());
    let stream = match crate::net::connect(&endpoint, tls_client.as_ref(), timeout).await {
        Ok(stream) => stream,
        Err(e) => {
            let code = match &e {
                ConnectError::Resolve(_) | ConnectError::BadServerName => code::BAD_ADDRESS,
                ConnectError::Refused => code::REFUSED,
                ConnectError::Timeout | ConnectError::HandshakeTimeout => code::TIMED_OUT,
                ConnectError::Connect(e) => io_code(e),
                ConnectError::Certificate(_) | ConnectError::Handshake(_) => code::TLS,
            };
            tracing::warn!(route = %label, address = %address, "tcp_connect failed: {e}");
            stats.outbound(OutboundResult::Failed);
            return Ok(code as i32);
        }
    };
    stats.outbound(OutboundResult::Ok);
    drop(waiting);
    Ok(caller.data_mut().backends.insert(stream) as i32)
}

/// Checks the handle and the byte budget before an operation of `len`
/// bytes; on success the stream is taken out of the table.
fn begin_io(state: &mut HostState, fd: i32, len: usize) -> Result<(BackendStream, Duration), i64> {
    let limit = state.route().outbound.max_bytes;
    let timeout = state.route().outbound.io_timeout;
    if state.backends.bytes.saturating_add(len as u64) > limit && len > 0 {
        tracing::warn!(route = %state.route().label, limit, "backend I/O: max_backend_bytes reached");
        return Err(code::LIMIT);
    }
    let stream = state.backends.take_stream(fd).ok_or(code::BAD_HANDLE)?;
    Ok((stream, timeout))
}

async fn read(mut caller: Caller<'_, HostState>, fd: i32, ptr: i32, cap: i64) -> wasmtime::Result<i64> {
    let (memory, state) = memory_and_state(&mut caller, "tcp_read")?;
    // Validate the destination first: memory never shrinks, so it stays valid.
    let range = guest_range(memory.len(), "tcp_read", ptr, cap)?;
    let want = range.len().min(MAX_READ_CHUNK);
    let (mut stream, timeout) = match begin_io(state, fd, want) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let mut buf = vec![0u8; want];
    stream.set_read_timeout(Some(timeout));
    let waiting = WaitingOnIo::start(&state.backends);
    let result = stream.read(&mut buf).await;
    drop(waiting);
    let (memory, state) = memory_and_state(&mut caller, "tcp_read")?;
    state.backends.put_back(fd, stream);
    match result {
        Ok(n) => {
            state.backends.bytes += n as u64;
            memory[range.start..range.start + n].copy_from_slice(&buf[..n]);
            Ok(n as i64)
        }
        Err(e) => {
            tracing::warn!(route = %state.route().label, "tcp_read failed: {e}");
            Ok(io_code(&e))
        }
    }
}

async fn write(mut caller: Caller<'_, HostState>, fd: i32, ptr: i32, len: i64) -> wasmtime::Result<i64> {
    let (memory, state) = memory_and_state(&mut caller, "tcp_write")?;
    let range = guest_range(memory.len(), "tcp_write", ptr, len)?;
    let (mut stream, timeout) = match begin_io(state, fd, range.len()) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    // The guest's memory cannot be borrowed across the wait.
    let data = memory[range].to_vec();
    stream.set_write_timeout(Some(timeout));
    let waiting = WaitingOnIo::start(&state.backends);
    // Flushed: a TLS stream may hold back the last record.
    let result = async {
        stream.write_all(&data).await?;
        stream.flush().await
    }
    .await;
    drop(waiting);
    let state = caller.data_mut();
    state.backends.put_back(fd, stream);
    match result {
        Ok(()) => {
            state.backends.bytes += data.len() as u64;
            Ok(data.len() as i64)
        }
        Err(e) => {
            tracing::warn!(route = %state.route().label, "tcp_write failed: {e}");
            Ok(io_code(&e))
        }
    }
}
