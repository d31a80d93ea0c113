//! One connection to a backend, plain or TLS, on the shard's reactor.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_lite::{AsyncRead, AsyncWrite};
use futures_rustls::TlsConnector;
use futures_rustls::client::TlsStream;
use glommio::net::TcpStream;
use rustls::pki_types::ServerName;

use super::{TlsClient, resolve};
use crate::config::Endpoint;
use crate::deadline::{TimedOut, with_deadline};

/// A backend connection. Timeouts are the TCP socket's: glommio applies
/// them to every read and write, which TLS records go through too.
pub enum BackendStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// Why a connection could not be made; the message says it for logs.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot resolve: {0}")]
    Resolve(io::Error),
    #[error("connection refused")]
    Refused,
    #[error("timed out")]
    Timeout,
    #[error("{0}")]
    Connect(io::Error),
    #[error("TLS: the host name is not a valid server name")]
    BadServerName,
    /// The certificate did not verify (unknown authority, wrong name,
    /// expired, ...), rustls' words.
    #[error("TLS certificate not accepted: {0}")]
    Certificate(String),
    #[error("TLS handshake failed: {0}")]
    Handshake(String),
    #[error("TLS handshake timed out")]
    HandshakeTimeout,
}

/// Connects to `endpoint`; with `tls`, the handshake (server name: the
/// endpoint's host) is done within the same `timeout`.
pub async fn connect(
    endpoint: &Endpoint,
    tls: Option<&TlsClient>,
    timeout: Duration,
) -> Result<BackendStream, ConnectError> {
    let deadline = Instant::now() + timeout;
    let addr = with_deadline(deadline, resolve(endpoint))
        .await
        .map_err(|TimedOut| ConnectError::Timeout)?
        .map_err(ConnectError::Resolve)?;
    let remaining = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    let stream = TcpStream::connect_timeout(addr, remaining)
        .await
        .map_err(|e| match io::Error::from(e) {
            e if e.kind() == io::ErrorKind::ConnectionRefused => ConnectError::Refused,
            e if e.kind() == io::ErrorKind::TimedOut => ConnectError::Timeout,
            e => ConnectError::Connect(e),
        })?;
    // Request/response protocols: do not hold back small writes.
    let _ = stream.set_nodelay(true);
    let Some(tls) = tls else {
        return Ok(BackendStream::Plain(stream));
    };
    let name = ServerName::try_from(endpoint.host.clone()).map_err(|_| ConnectError::BadServerName)?;
    let handshake = TlsConnector::from(tls.config().clone()).connect(name, stream);
    match with_deadline(deadline, handshake).await {
        Err(TimedOut) => Err(ConnectError::HandshakeTimeout),
        Ok(Ok(stream)) => Ok(BackendStream::Tls(Box::new(stream))),
        Ok(Err(e)) => Err(handshake_error(e)),
    }
}

fn handshake_error(e: io::Error) -> ConnectError {
    match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(why)) => ConnectError::Certificate(format!("{why}")),
        Some(other) => ConnectError::Handshake(other.to_string()),
        None if e.kind() == io::ErrorKind::TimedOut => ConnectError::Timeout,
        None => ConnectError::Handshake(e.to_string()),
    }
}

impl BackendStream {
    fn tcp(&self) -> &TcpStream {
        match self {
            BackendStream::Plain(stream) => stream,
            BackendStream::Tls(stream) => stream.get_ref().0,
        }
    }

    pub fn set_read_timeout(&self, timeout: Option<Duration>) {
        let _ = self.tcp().set_read_timeout(timeout);
    }

    pub fn set_write_timeout(&self, timeout: Option<Duration>) {
        let _ = self.tcp().set_write_timeout(timeout);
    }

    /// For an idle pooled connection: whether the peer closed it (or sent
    /// something unasked) meanwhile, so it must not carry a request. A
    /// non-blocking peek, answered by the kernel at once.
    #[allow(unsafe_code, reason = "recv(MSG_PEEK | MSG_DONTWAIT) on the socket's own descriptor")]
    pub fn peer_closed(&self) -> bool {
        use std::os::fd::AsRawFd;
        let mut byte = 0u8;
        // SAFETY: the descriptor belongs to the live stream borrowed here;
        // the buffer is one valid byte; MSG_PEEK consumes nothing and
        // MSG_DONTWAIT never blocks.
        let peeked = unsafe {
            libc::recv(
                self.tcp().as_raw_fd(),
                (&mut byte as *mut u8).cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        match peeked {
            -1 => io::Error::last_os_error().kind() != io::ErrorKind::WouldBlock,
            _ => true, // 0: closed; 1: bytes nobody asked for
        }
    }
}

impl AsyncRead for BackendStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            BackendStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            // Many servers close without TLS's close_notify: that reads as
            // the end of the stream, as on plain TCP (HTTP framing and the
            // guest's own protocol tell a cut-short message apart).
            BackendStream::Tls(s) => match Pin::new(s.as_mut()).poll_read(cx, buf) {
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => Poll::Ready(Ok(0)),
                other => other,
            },
        }
    }
}

impl AsyncWrite for BackendStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            BackendStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            BackendStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendStream::Plain(s) => Pin::new(s).poll_flush(cx),
            BackendStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendStream::Plain(s) => Pin::new(s).poll_close(cx),
            BackendStream::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
        }
    }
}
