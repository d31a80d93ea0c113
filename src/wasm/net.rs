//! Guest TCP to backends: `tcp_connect`, `tcp_read`, `tcp_write`,
//! `tcp_close`, asynchronous on the shard's own glommio reactor. While a
//! guest waits on a backend its fiber is suspended and the shard serves
//! other connections.
//!
//! Every connection is checked against the route's `allowed_outbound` list
//! (deny by default), bounded in number, bytes and time, and belongs to the
//! request that opened it: all are closed when the request ends, however it
//! ends.

use std::cell::Cell;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::time::Duration;

use super::shard_local::ShardLocal;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use wasmtime::{Caller, Linker};

use super::abi::MODULE;
use super::host::{HostState, guest_range, memory_and_state};
use crate::config::Endpoint;

/// Error codes returned to guests (negative; a handle or a count is >= 0).
pub mod code {
    /// An I/O error other than those below (reset by the backend, ...).
    pub const IO: i64 = -1;
    /// The address is not on the route's `allowed_outbound` list.
    pub const DENIED: i64 = -2;
    /// The backend refused the connection.
    pub const REFUSED: i64 = -3;
    /// Connect, read or write took longer than its timeout.
    pub const TIMED_OUT: i64 = -4;
    /// Not `host:port`, or the name does not resolve.
    pub const BAD_ADDRESS: i64 = -5;
    /// Not an open handle of this request.
    pub const BAD_HANDLE: i64 = -6;
    /// `max_backend_connections` or `max_backend_bytes` reached.
    pub const LIMIT: i64 = -7;
    /// Backends cannot be used here (while the module is checked at start-up).
    pub const UNAVAILABLE: i64 = -8;
}

/// Most bytes moved by one `tcp_read`; larger buffers are filled partially.
const MAX_READ_CHUNK: usize = 64 << 10;

/// The backend connections of the current request. Handles are small
/// integers from 1, local to the request.
#[derive(Default)]
pub struct Backends {
    slots: Vec<Option<TcpStream>>,
    open: usize,
    /// Bytes read and written by this request so far.
    bytes: u64,
    /// True while the guest waits on a backend: then a pending call is an
    /// I/O wait, not a fuel yield (see `invoke::drive_guest`).
    pub(super) io_wait: Rc<Cell<bool>>,
}

/// Marks the guest as waiting on I/O for as long as it lives.
struct WaitingOnIo(Rc<Cell<bool>>);

impl WaitingOnIo {
    fn start(backends: &Backends) -> WaitingOnIo {
        backends.io_wait.set(true);
        WaitingOnIo(backends.io_wait.clone())
    }
}

impl Drop for WaitingOnIo {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

impl Backends {
    pub(super) fn close_all(&mut self) {
        self.slots.clear();
        self.open = 0;
        self.bytes = 0;
    }

    fn insert(&mut self, stream: TcpStream) -> i64 {
        self.open += 1;
        match self.slots.iter().position(Option::is_none) {
            Some(i) => {
                self.slots[i] = Some(stream);
                i as i64 + 1
            }
            None => {
                self.slots.push(Some(stream));
                self.slots.len() as i64
            }
        }
    }

    fn index(fd: i32) -> Option<usize> {
        usize::try_from(fd).ok()?.checked_sub(1)
    }

    /// Takes a stream out for an operation; [`Backends::put_back`] returns
    /// it. If the operation is abandoned, the stream is dropped (closed).
    fn take_stream(&mut self, fd: i32) -> Option<TcpStream> {
        let stream = self.slots.get_mut(Self::index(fd)?)?.take();
        if stream.is_some() {
            self.open -= 1;
        }
        stream
    }

    fn put_back(&mut self, fd: i32, stream: TcpStream) {
        if let Some(slot) = Self::index(fd).and_then(|i| self.slots.get_mut(i)) {
            *slot = Some(stream);
            self.open += 1;
        }
    }

    pub fn open_count(&self) -> usize {
        self.open
    }
}

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
    let Ok(endpoint) = Endpoint::parse(&address) else {
        tracing::warn!(route = %route.label, address = %address.escape_debug(), "tcp_connect: not a host:port address");
        return Ok(code::BAD_ADDRESS as i32);
    };
    if !route.outbound.allowed.contains(&endpoint) {
        tracing::warn!(route = %route.label, address = %endpoint, "tcp_connect denied: not in allowed_outbound");
        return Ok(code::DENIED as i32);
    }
    if state.trial {
        return Ok(code::UNAVAILABLE as i32);
    }
    if state.backends.open_count() >= route.outbound.max_connections {
        tracing::warn!(route = %route.label, address = %endpoint, limit = route.outbound.max_connections, "tcp_connect: max_backend_connections reached");
        return Ok(code::LIMIT as i32);
    }
    let timeout = route.outbound.connect_timeout;
    let label = route.label.clone();
    let waiting = WaitingOnIo::start(&state.backends);

    let addr = match resolve(&endpoint).await {
        Ok(addr) => addr,
        Err(e) => {
            tracing::warn!(route = %label, address = %endpoint, "tcp_connect: cannot resolve: {e}");
            return Ok(code::BAD_ADDRESS as i32);
        }
    };
    let stream = match TcpStream::connect_timeout(addr, timeout).await {
        Ok(stream) => stream,
        Err(e) => {
            let e = std::io::Error::from(e);
            let code = io_code(&e);
            tracing::warn!(route = %label, address = %endpoint, "tcp_connect failed: {e}");
            return Ok(code as i32);
        }
    };
    drop(waiting);
    // Request/response protocols: do not hold back small writes.
    let _ = stream.set_nodelay(true);
    Ok(caller.data_mut().backends.insert(stream) as i32)
}

/// IP literals are used as they are; names resolve on the shard's blocking
/// thread, so a slow resolver never stalls the shard.
pub(super) async fn resolve(endpoint: &Endpoint) -> std::io::Result<SocketAddr> {
    if let Ok(ip) = endpoint.host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, endpoint.port));
    }
    let target = (endpoint.host.clone(), endpoint.port);
    let resolved = glommio::executor()
        .spawn_blocking(move || target.to_socket_addrs().map(|mut addrs| addrs.next()))
        .await?;
    resolved.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "name resolves to no address"))
}

fn io_code(e: &std::io::Error) -> i64 {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => code::REFUSED,
        std::io::ErrorKind::TimedOut => code::TIMED_OUT,
        _ if e.raw_os_error() == Some(libc::ETIMEDOUT) || e.raw_os_error() == Some(libc::ECANCELED) => code::TIMED_OUT,
        _ => code::IO,
    }
}

/// Checks the handle and the byte budget before an operation of `len`
/// bytes; on success the stream is taken out of the table.
fn begin_io(state: &mut HostState, fd: i32, len: usize) -> Result<(TcpStream, Duration), i64> {
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
    let _ = stream.set_read_timeout(Some(timeout));
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
    let _ = stream.set_write_timeout(Some(timeout));
    let waiting = WaitingOnIo::start(&state.backends);
    let result = stream.write_all(&data).await;
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
