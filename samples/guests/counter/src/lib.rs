//! A core-module guest that keeps state in a key-value store through the
//! `kv_v1` host functions (docs/guest-abi.md). Its exports, one per route:
//!
//! - `handle`: counts visits (key `visits`, or the env's `counter_key`)
//!   and answers `visits: N`; logs a line per request.
//! - `put`: stores the request body under the `x-key` header's key.
//! - `fetch`: answers the value under `x-key` (404 when absent).
//! - `remove`: deletes `x-key`.
//! - `keys`: lists the keys, one per line.
//!
//! The store is the env's `store`, else `default`. A store error answers
//! 500 (400 for a key or value over the store's limits) with its code.
//!
//! Built with `samples/guests/build.sh` into `samples/counter.wasm`.

#![no_std]

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

#[link(wasm_import_module = "env")]
extern "C" {
    fn log(ptr: *const u8, size: u64);
    fn response_set_status_line(status: u32, ptr: *const u8, size: u64);
    fn response_set_body(ptr: *const u8, size: u64);
    fn db_get(key_ptr: *const u8, key_size: u64, value_ptr: *mut u8, value_size: u64) -> i64;
    fn request_header(name_ptr: *const u8, name_size: u64, value_ptr: *mut u8, value_size: u64) -> i64;
    fn request_body(ptr: *mut u8, size: u64) -> i64;
}

#[link(wasm_import_module = "kv_v1")]
extern "C" {
    fn open(name_ptr: *const u8, name_size: u64) -> i32;
    fn get(store: i32, key_ptr: *const u8, key_size: u64, value_ptr: *mut u8, value_size: u64) -> i64;
    fn set(store: i32, key_ptr: *const u8, key_size: u64, value_ptr: *const u8, value_size: u64) -> i32;
    fn delete(store: i32, key_ptr: *const u8, key_size: u64) -> i32;
    fn increment(store: i32, key_ptr: *const u8, key_size: u64, delta: i64, result: *mut i64) -> i32;
    fn list_keys(store: i32, cursor: i64, buf_ptr: *mut u8, buf_size: u64, next: *mut i64) -> i64;
}

/// `kv_v1`'s code for a key or value over the store's limits.
const TOO_LARGE: i64 = -4;
const ABSENT: i64 = -1;

/// Room for keys, values and bodies: the guest needs no allocator.
const ROOM: usize = 64 << 10;
static mut KEY: [u8; 2048] = [0; 2048];
static mut VALUE: [u8; ROOM] = [0; ROOM];
static mut OUT: [u8; ROOM] = [0; ROOM];

/// A byte buffer over one of the static arrays above.
struct Buf {
    bytes: &'static mut [u8],
    len: usize,
}

impl Buf {
    fn push(&mut self, s: &[u8]) {
        let n = s.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
    }

    fn push_number(&mut self, n: i64) {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let negative = n < 0;
        let mut rest = n.unsigned_abs();
        loop {
            at -= 1;
            digits[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        if negative {
            self.push(b"-");
        }
        self.push(&digits[at..]);
    }

    /// Fills the buffer from a length-returning host lookup; the length
    /// (negative: a code), or the needed size when it did not fit.
    fn fill(&mut self, fetch: impl FnOnce(*mut u8, u64) -> i64) -> i64 {
        let n = fetch(self.bytes.as_mut_ptr(), self.bytes.len() as u64);
        if n >= 0 && n as usize <= self.bytes.len() {
            self.len = n as usize;
        }
        n
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

// SAFETY (all `unsafe` below): one request runs at a time in an instance,
// so the static buffers have one user; pointers and sizes describe them.
fn buffers() -> (Buf, Buf, Buf) {
    unsafe {
        (
            Buf { bytes: &mut *core::ptr::addr_of_mut!(KEY), len: 0 },
            Buf { bytes: &mut *core::ptr::addr_of_mut!(VALUE), len: 0 },
            Buf { bytes: &mut *core::ptr::addr_of_mut!(OUT), len: 0 },
        )
    }
}

fn respond(status: u32, body: &[u8]) {
    let reason: &[u8] = match status {
        200 => b"OK",
        400 => b"Bad Request",
        413 => b"Content Too Large",
        404 => b"Not Found",
        _ => b"Internal Server Error",
    };
    unsafe {
        response_set_status_line(status, reason.as_ptr(), reason.len() as u64);
        response_set_body(body.as_ptr(), body.len() as u64);
    }
}

/// Answers a store error with its code: 400 for a size limit, else 500.
fn fail(out: &mut Buf, what: &[u8], code: i64) {
    out.len = 0;
    out.push(b"kv_v1.");
    out.push(what);
    out.push(b" failed: ");
    out.push_number(code);
    out.push(b"\n");
    unsafe { log(out.as_slice().as_ptr(), out.len as u64) };
    respond(if code == TOO_LARGE { 400 } else { 500 }, out.as_slice());
}

/// The store named by the env's `store` (default `default`), or why not.
fn open_store(scratch: &mut Buf) -> Result<i32, i64> {
    let key = b"store";
    let n = scratch.fill(|ptr, cap| unsafe { db_get(key.as_ptr(), key.len() as u64, ptr, cap) });
    if n < 0 {
        scratch.len = 0;
        scratch.push(b"default");
    }
    let handle = unsafe { open(scratch.as_slice().as_ptr(), scratch.len as u64) };
    if handle > 0 {
        Ok(handle)
    } else {
        Err(handle as i64)
    }
}

/// The store and, in `key`, the request's `x-key` header; `None` once the
/// failure is answered.
fn keyed_request(key: &mut Buf, out: &mut Buf) -> Option<i32> {
    let store = match open_store(key) {
        Ok(store) => store,
        Err(code) => {
            fail(out, b"open", code);
            return None;
        }
    };
    request_key(key, out).then_some(store)
}

/// The request's `x-key` header into `key`; false (and a 400) if absent.
fn request_key(key: &mut Buf, out: &mut Buf) -> bool {
    let name = b"x-key";
    let n = key.fill(|ptr, cap| unsafe { request_header(name.as_ptr(), name.len() as u64, ptr, cap) });
    if n < 0 || n as usize > key.bytes.len() {
        out.push(b"send the key in an x-key header (at most 2048 bytes)\n");
        respond(400, out.as_slice());
        return false;
    }
    true
}

#[no_mangle]
pub extern "C" fn handle() {
    let (mut key, _, mut out) = buffers();
    let store = match open_store(&mut key) {
        Ok(store) => store,
        Err(code) => return fail(&mut out, b"open", code),
    };
    let name = b"counter_key";
    if key.fill(|ptr, cap| unsafe { db_get(name.as_ptr(), name.len() as u64, ptr, cap) }) < 0 {
        key.len = 0;
        key.push(b"visits");
    }
    let mut visits = 0i64;
    let code = unsafe { increment(store, key.as_slice().as_ptr(), key.len as u64, 1, &mut visits) };
    if code != 0 {
        return fail(&mut out, b"increment", code as i64);
    }
    out.push(b"visit ");
    out.push_number(visits);
    unsafe { log(out.as_slice().as_ptr(), out.len as u64) };
    out.len = 0;
    out.push(key.as_slice());
    out.push(b": ");
    out.push_number(visits);
    out.push(b"\n");
    respond(200, out.as_slice());
}

#[no_mangle]
pub extern "C" fn put() {
    let (mut key, mut value, mut out) = buffers();
    let Some(store) = keyed_request(&mut key, &mut out) else {
        return;
    };
    if value.fill(|ptr, cap| unsafe { request_body(ptr, cap) }) > value.bytes.len() as i64 {
        out.push(b"the body is larger than this sample's 64 KiB buffer\n");
        return respond(413, out.as_slice());
    }
    let code = unsafe { set(store, key.as_slice().as_ptr(), key.len as u64, value.as_slice().as_ptr(), value.len as u64) };
    if code != 0 {
        return fail(&mut out, b"set", code as i64);
    }
    out.push(b"stored\n");
    respond(200, out.as_slice());
}

#[no_mangle]
pub extern "C" fn fetch() {
    let (mut key, mut value, mut out) = buffers();
    let Some(store) = keyed_request(&mut key, &mut out) else {
        return;
    };
    let n = value.fill(|ptr, cap| unsafe { get(store, key.as_slice().as_ptr(), key.len as u64, ptr, cap) });
    match n {
        ABSENT => respond(404, b"no such key\n"),
        n if n < 0 => fail(&mut out, b"get", n),
        n if n as usize > value.bytes.len() => fail(&mut out, b"get (value larger than the guest's buffer)", n),
        _ => respond(200, value.as_slice()),
    }
}

#[no_mangle]
pub extern "C" fn remove() {
    let (mut key, _, mut out) = buffers();
    let Some(store) = keyed_request(&mut key, &mut out) else {
        return;
    };
    let code = unsafe { delete(store, key.as_slice().as_ptr(), key.len as u64) };
    if code != 0 {
        return fail(&mut out, b"delete", code as i64);
    }
    respond(200, b"deleted\n");
}

#[no_mangle]
pub extern "C" fn keys() {
    let (mut key, mut page, mut out) = buffers();
    let store = match open_store(&mut key) {
        Ok(store) => store,
        Err(code) => return fail(&mut out, b"open", code),
    };
    let mut cursor = 0i64;
    loop {
        let mut next = 0i64;
        let n = page.fill(|ptr, cap| unsafe { list_keys(store, cursor, ptr, cap, &mut next) });
        if n < 0 || n as usize > page.bytes.len() {
            return fail(&mut out, b"list_keys", n);
        }
        // Each key: a little-endian u32 length, then its bytes.
        let bytes = page.as_slice();
        let mut at = 0;
        while at + 4 <= bytes.len() {
            let len = u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
            at += 4;
            out.push(&bytes[at..(at + len).min(bytes.len())]);
            out.push(b"\n");
            at += len;
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    respond(200, out.as_slice());
}
