//! Safe bindings to the serverless-wasm guest ABI (import module `env`).
//! See docs/guest-abi.md in the repository for every function.

mod sys {
    #[link(wasm_import_module = "env")]
    extern "C" {
        pub fn log(ptr: *const u8, len: u64);
        pub fn response_set_status_line(status: u32, ptr: *const u8, len: u64);
        pub fn response_set_header(name_ptr: *const u8, name_len: u64, value_ptr: *const u8, value_len: u64);
        pub fn response_add_header(name_ptr: *const u8, name_len: u64, value_ptr: *const u8, value_len: u64);
        pub fn response_set_body(ptr: *const u8, len: u64);
        pub fn db_get(key_ptr: *const u8, key_len: u64, value_ptr: *mut u8, value_cap: u64) -> i64;
        pub fn request_method(ptr: *mut u8, cap: u64) -> i64;
        pub fn request_path(ptr: *mut u8, cap: u64) -> i64;
        pub fn request_header(name_ptr: *const u8, name_len: u64, value_ptr: *mut u8, value_cap: u64) -> i64;
        pub fn request_body(ptr: *mut u8, cap: u64) -> i64;
        pub fn tcp_connect(ptr: *const u8, len: u64) -> i32;
        pub fn tcp_read(fd: i32, ptr: *mut u8, cap: u64) -> i64;
        pub fn tcp_write(fd: i32, ptr: *const u8, len: u64) -> i64;
        pub fn tcp_close(fd: i32) -> i32;
    }
}

/// Calls a "copy into my buffer, return the length" host function: asks
/// for the size first, then fetches exactly that much.
fn fetch(call: impl Fn(*mut u8, u64) -> i64) -> Option<Vec<u8>> {
    let needed = call(core::ptr::NonNull::<u8>::dangling().as_ptr(), 0);
    if needed < 0 {
        return None;
    }
    let mut buf = vec![0u8; needed as usize];
    let got = call(buf.as_mut_ptr(), buf.len() as u64);
    if got < 0 || got as usize != buf.len() {
        return None;
    }
    Some(buf)
}

pub fn log(message: &str) {
    unsafe { sys::log(message.as_ptr(), message.len() as u64) }
}

/// The route's `env` value for `key`.
pub fn db_get(key: &str) -> Option<String> {
    fetch(|ptr, cap| unsafe { sys::db_get(key.as_ptr(), key.len() as u64, ptr, cap) }).and_then(|v| String::from_utf8(v).ok())
}

pub mod request {
    use super::{fetch, sys};

    pub fn method() -> String {
        fetch(|p, c| unsafe { sys::request_method(p, c) })
            .and_then(|v| String::from_utf8(v).ok())
            .unwrap_or_default()
    }

    /// Path with query.
    pub fn path() -> String {
        fetch(|p, c| unsafe { sys::request_path(p, c) })
            .and_then(|v| String::from_utf8(v).ok())
            .unwrap_or_default()
    }

    pub fn header(name: &str) -> Option<Vec<u8>> {
        fetch(|p, c| unsafe { sys::request_header(name.as_ptr(), name.len() as u64, p, c) })
    }

    pub fn body() -> Vec<u8> {
        fetch(|p, c| unsafe { sys::request_body(p, c) }).unwrap_or_default()
    }
}

pub mod response {
    use super::sys;

    pub fn set_status(status: u16, reason: &str) {
        unsafe { sys::response_set_status_line(status.into(), reason.as_ptr(), reason.len() as u64) }
    }

    pub fn set_header(name: &str, value: &str) {
        unsafe { sys::response_set_header(name.as_ptr(), name.len() as u64, value.as_ptr(), value.len() as u64) }
    }

    pub fn add_header(name: &str, value: &str) {
        unsafe { sys::response_add_header(name.as_ptr(), name.len() as u64, value.as_ptr(), value.len() as u64) }
    }

    pub fn set_body(body: &[u8]) {
        unsafe { sys::response_set_body(body.as_ptr(), body.len() as u64) }
    }

    /// Status, a plain-text body, done.
    pub fn send(status: u16, reason: &str, body: &str) {
        set_status(status, reason);
        set_header("Content-Type", "text/plain; charset=utf-8");
        set_body(body.as_bytes());
    }
}

/// Why a backend operation failed: the host's negative codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetError {
    Io,
    Denied,
    Refused,
    TimedOut,
    BadAddress,
    BadHandle,
    Limit,
    Unavailable,
    Tls,
    Unknown(i64),
}

impl NetError {
    fn from_code(code: i64) -> NetError {
        match code {
            -1 => NetError::Io,
            -2 => NetError::Denied,
            -3 => NetError::Refused,
            -4 => NetError::TimedOut,
            -5 => NetError::BadAddress,
            -6 => NetError::BadHandle,
            -7 => NetError::Limit,
            -8 => NetError::Unavailable,
            -9 => NetError::Tls,
            other => NetError::Unknown(other),
        }
    }

    /// The status a gateway-style guest answers with: 504 for a timeout,
    /// 502 for the rest.
    pub fn status(self) -> (u16, &'static str) {
        match self {
            NetError::TimedOut => (504, "Gateway Timeout"),
            _ => (502, "Bad Gateway"),
        }
    }
}

impl core::fmt::Display for NetError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let text = match self {
            NetError::Io => "I/O error",
            NetError::Denied => "denied by the route's allowed_outbound",
            NetError::Refused => "connection refused",
            NetError::TimedOut => "timed out",
            NetError::BadAddress => "bad address",
            NetError::BadHandle => "bad handle",
            NetError::Limit => "limit reached",
            NetError::Unavailable => "backends unavailable",
            NetError::Tls => "TLS certificate not accepted or handshake failed",
            NetError::Unknown(code) => return write!(f, "error {code}"),
        };
        f.write_str(text)
    }
}

/// A TCP connection to a backend, closed when dropped.
pub struct TcpStream {
    fd: i32,
}

impl TcpStream {
    pub fn connect(address: &str) -> Result<TcpStream, NetError> {
        let fd = unsafe { sys::tcp_connect(address.as_ptr(), address.len() as u64) };
        if fd < 0 { Err(NetError::from_code(fd.into())) } else { Ok(TcpStream { fd }) }
    }

    /// Reads up to `buf.len()` bytes; 0 means the backend closed.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        let n = unsafe { sys::tcp_read(self.fd, buf.as_mut_ptr(), buf.len() as u64) };
        if n < 0 { Err(NetError::from_code(n)) } else { Ok(n as usize) }
    }

    /// Writes all of `data`.
    pub fn write(&mut self, data: &[u8]) -> Result<usize, NetError> {
        let n = unsafe { sys::tcp_write(self.fd, data.as_ptr(), data.len() as u64) };
        if n < 0 { Err(NetError::from_code(n)) } else { Ok(n as usize) }
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        unsafe {
            sys::tcp_close(self.fd);
        }
    }
}
