//! A client socket that one task reads and writes at the same time: a
//! streamed exchange receives the request body while it sends the response.
//! glommio keeps separate read and write registrations per socket, so both
//! may be pending at once; the `RefCell` is only borrowed inside each poll.

use std::cell::{Ref, RefCell};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;

pub struct Duplex(RefCell<TcpStream>);

impl Duplex {
    pub fn new(stream: TcpStream) -> Duplex {
        Duplex(RefCell::new(stream))
    }

    /// For socket options and addresses.
    pub fn socket(&self) -> Ref<'_, TcpStream> {
        self.0.borrow()
    }
}

impl AsyncRead for &Duplex {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_read(cx, buf)
    }
}

impl AsyncWrite for &Duplex {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_close(cx)
    }
}
