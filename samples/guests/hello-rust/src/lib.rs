//! A guest written against the original serverless-wasm ABI, declared with
//! the `extern` block of the original README, plus two functions of the
//! extended ABI (`db_get` to read the route's env, `request_*` to read the
//! request).
//!
//! Built with `samples/guests/build.sh` into `samples/hello_rust.wasm`.

#![no_std]

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

// The original README's block, as it was.
#[link(wasm_import_module = "env")]
extern "C" {
    fn log(ptr: *const u8, size: u64);

    fn response_set_status_line(status: u32, ptr: *const u8, size: u64);
    fn response_set_header(name_ptr: *const u8, name_size: u64, value_ptr: *const u8, value_size: u64);
    fn response_set_body(ptr: *const u8, size: u64);

    fn tcp_connect(ptr: *const u8, size: u64) -> i32;
    fn tcp_read(fd: i32, ptr: *mut u8, size: u64) -> i64;
    fn tcp_write(fd: i32, ptr: *const u8, size: u64) -> i64;
}

// Extensions used by this sample.
#[link(wasm_import_module = "env")]
extern "C" {
    fn db_get(key_ptr: *const u8, key_size: u64, value_ptr: *mut u8, value_size: u64) -> i64;
    fn request_method(ptr: *mut u8, size: u64) -> i64;
    fn request_path(ptr: *mut u8, size: u64) -> i64;
}

/// A fixed buffer: the guest needs no allocator.
struct Buf {
    bytes: [u8; 1024],
    len: usize,
}

impl Buf {
    const fn new() -> Buf {
        Buf { bytes: [0; 1024], len: 0 }
    }

    fn push(&mut self, s: &[u8]) {
        let n = s.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
    }

    /// Appends what a host lookup writes (length-returning, like `db_get`);
    /// returns false when absent or too long for the space left.
    fn push_from(&mut self, fetch: impl FnOnce(*mut u8, u64) -> i64) -> bool {
        let room = self.bytes.len() - self.len;
        let n = fetch(self.bytes[self.len..].as_mut_ptr(), room as u64);
        if n < 0 || n as usize > room {
            return false;
        }
        self.len += n as usize;
        true
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

#[no_mangle]
pub extern "C" fn handle() {
    let mut body = Buf::new();
    body.push(b"Hello, ");
    let key = b"name";
    // SAFETY (all calls below): pointers and sizes describe live buffers.
    if !body.push_from(|ptr, cap| unsafe { db_get(key.as_ptr(), key.len() as u64, ptr, cap) }) {
        body.push(b"stranger");
    }
    body.push(b"! You asked for ");
    body.push_from(|ptr, cap| unsafe { request_method(ptr, cap) });
    body.push(b" ");
    body.push_from(|ptr, cap| unsafe { request_path(ptr, cap) });
    body.push(b"\n");

    let message = b"hello-rust answering";
    let reason = b"OK";
    let (name, value) = (b"X-Guest", b"hello-rust");
    unsafe {
        log(message.as_ptr(), message.len() as u64);
        response_set_status_line(200, reason.as_ptr(), reason.len() as u64);
        response_set_header(name.as_ptr(), name.len() as u64, value.as_ptr(), value.len() as u64);
        response_set_body(body.as_slice().as_ptr(), body.len as u64);
    }
}

/// Keeps the original block's TCP functions referenced only when asked
/// for, so this guest imports just what it uses: calling this export opens
/// a connection to the address in env key "backend".
#[no_mangle]
pub extern "C" fn ping_backend() {
    let mut address = Buf::new();
    let key = b"backend";
    if !address.push_from(|ptr, cap| unsafe { db_get(key.as_ptr(), key.len() as u64, ptr, cap) }) {
        return;
    }
    let mut reply = [0u8; 64];
    unsafe {
        let fd = tcp_connect(address.as_slice().as_ptr(), address.len as u64);
        if fd >= 0 && tcp_write(fd, b"ping\n".as_ptr(), 5) == 5 {
            let n = tcp_read(fd, reply.as_mut_ptr(), reply.len() as u64);
            if n > 0 {
                response_set_body(reply.as_ptr(), n as u64);
            }
        }
    }
}
