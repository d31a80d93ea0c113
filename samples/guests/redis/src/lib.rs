//! A guest speaking RESP to a real redis-server (address in env key
//! `redis`). Three entry points, chosen with `function`:
//!
//! - `counter`: `INCR` the key named by the request path, answer the count.
//! - `kv_get`: `GET` the key after the route prefix (`/kv/<key>`); 404 if absent.
//! - `kv_set`: `SET` it to the request body.

use serverless_api::{self as api, NetError, TcpStream, response};

/// Replies larger than this are refused (the guest's memory is bounded).
const MAX_REPLY: usize = 1 << 20;

enum Reply {
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Simple(String),
    Error(String),
}

#[no_mangle]
pub extern "C" fn counter() {
    let path = api::request::path();
    let key = path.split('?').next().unwrap_or("/").to_string();
    match command(&[b"INCR", key.as_bytes()]) {
        Ok(Reply::Integer(n)) => response::send(200, "OK", &format!("{n}\n")),
        other => fail(other),
    }
}

#[no_mangle]
pub extern "C" fn kv_get() {
    let key = kv_key();
    match command(&[b"GET", key.as_bytes()]) {
        Ok(Reply::Bulk(Some(value))) => {
            response::set_status(200, "OK");
            response::set_body(&value);
        }
        Ok(Reply::Bulk(None)) => response::send(404, "Not Found", &format!("no value for {key}\n")),
        other => fail(other),
    }
}

#[no_mangle]
pub extern "C" fn kv_set() {
    let key = kv_key();
    let body = api::request::body();
    match command(&[b"SET", key.as_bytes(), &body]) {
        Ok(Reply::Simple(ok)) if ok == "OK" => response::send(200, "OK", "stored\n"),
        other => fail(other),
    }
}

/// `/kv/name?x` → `name`.
fn kv_key() -> String {
    let path = api::request::path();
    let path = path.split('?').next().unwrap_or("");
    path.strip_prefix("/kv/").unwrap_or(path).to_string()
}

fn fail(result: Result<Reply, NetError>) {
    match result {
        Err(e) => {
            let (status, reason) = e.status();
            response::send(status, reason, &format!("redis unavailable: {e}\n"));
        }
        Ok(Reply::Error(message)) => response::send(502, "Bad Gateway", &format!("redis error: {message}\n")),
        Ok(_) => response::send(502, "Bad Gateway", "unexpected reply from redis\n"),
    }
}

/// Sends one command and reads its reply.
fn command(args: &[&[u8]]) -> Result<Reply, NetError> {
    let address = api::db_get("redis").unwrap_or_else(|| "127.0.0.1:6379".to_string());
    let mut socket = TcpStream::connect(&address)?;
    let mut request = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        request.extend_from_slice(arg);
        request.extend_from_slice(b"\r\n");
    }
    socket.write(&request)?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(reply) = parse(&buf) {
            return Ok(reply);
        }
        let n = socket.read(&mut chunk)?;
        if n == 0 || buf.len() + n > MAX_REPLY {
            return Err(NetError::Io);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Parses one complete RESP reply, or `None` if more bytes are needed.
fn parse(buf: &[u8]) -> Option<Reply> {
    let line_end = buf.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&buf[1..line_end]).ok()?;
    match buf.first()? {
        b':' => line.parse().ok().map(Reply::Integer),
        b'+' => Some(Reply::Simple(line.to_string())),
        b'-' => Some(Reply::Error(line.to_string())),
        b'$' => {
            let len: i64 = line.parse().ok()?;
            if len < 0 {
                return Some(Reply::Bulk(None));
            }
            let start = line_end + 2;
            let end = start + len as usize;
            (buf.len() >= end + 2).then(|| Reply::Bulk(Some(buf[start..end].to_vec())))
        }
        _ => Some(Reply::Error("unsupported reply type".into())),
    }
}
