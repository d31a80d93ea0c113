//! One SO_REUSEPORT listening socket per shard, all on the same address.
//!
//! With port 0, each `bind` would get its own ephemeral port, so the first
//! socket is bound alone, its real port read back, and the others bound to
//! that address. All are bound before any shard starts, so a bind error
//! stops the server before it claims to listen.

use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};

use socket2::{Domain, Protocol, Socket, Type};

/// Binds `count` listening sockets on `addr`; returns the bound address
/// (with the real port) and the sockets.
pub fn bind_all(addr: SocketAddr, count: usize, backlog: u32) -> std::io::Result<(SocketAddr, Vec<Socket>)> {
    let bound = probe(addr)?;
    let sockets = (0..count)
        .map(|_| bind_one(bound, backlog))
        .collect::<std::io::Result<_>>()?;
    Ok((bound, sockets))
}

/// SO_REUSEPORT would let a second server silently share the port with a
/// first one (same user); binding once without it first turns that into
/// "address in use". It also resolves port 0 to a real port.
fn probe(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| std::io::Error::other("listener has no IP address"))
}

fn bind_one(addr: SocketAddr, backlog: u32) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket)
}

/// Hands a bound socket to the current shard's glommio reactor.
#[allow(unsafe_code, reason = "glommio adopts a socket only through FromRawFd")]
pub fn adopt(socket: Socket) -> glommio::net::TcpListener {
    let fd = socket.into_raw_fd();
    // SAFETY: `fd` comes from `into_raw_fd` on a socket we own, so it is an
    // open, bound, listening TCP socket that nothing else will close; the
    // listener takes over its ownership and closes it on drop.
    unsafe { glommio::net::TcpListener::from_raw_fd(fd) }
}

/// Takes the connections the kernel has already queued for this listener,
/// without waiting for more. Closing a listener resets the connections in
/// its queue (with SO_REUSEPORT each shard has its own queue), so a shard
/// that stops takes them in first and answers them.
#[allow(
    unsafe_code,
    reason = "accept4 on the listener's descriptor; glommio adopts a socket only through FromRawFd"
)]
/// `fd` is the listening socket's descriptor, still open (its glommio
/// listener is alive and no longer accepting).
pub fn take_queued(fd: std::os::fd::RawFd) -> Vec<glommio::net::TcpStream> {
    // SAFETY: `fd` is the listener's open descriptor, borrowed for the call;
    // F_GETFL/F_SETFL only change its blocking mode (glommio's own accepts
    // go through io_uring and do not depend on it).
    let nonblocking = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) == 0
    };
    let mut queued = Vec::new();
    if !nonblocking {
        return queued;
    }
    loop {
        // SAFETY: a plain accept4 on a valid listening descriptor, with no
        // address buffers; it returns a new descriptor that we own, or -1.
        let stream = unsafe { libc::accept4(fd, std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC) };
        if stream < 0 {
            // EAGAIN: the queue is empty. Anything else: nothing more to take.
            return queued;
        }
        // SAFETY: `stream` was just returned by accept4, is open, and
        // nothing else owns it; the stream closes it on drop.
        queued.push(unsafe { glommio::net::TcpStream::from_raw_fd(stream) });
    }
}
