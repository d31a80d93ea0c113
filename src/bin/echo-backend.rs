//! A small backend for the backend samples and tests, one thread per
//! connection. By default it echoes every byte it receives, optionally
//! after a delay. With `--http` it is a keep-alive HTTP/1.1 server that
//! describes each request it gets: which connection (numbered from 1) and
//! which request on it, the method, target and body size, so tests can see
//! whether a client reuses its connections.
//!
//!   echo-backend [--listen 127.0.0.1:8181] [--delay-ms 0] [--http]
//!
//! It prints `echo-backend listening on ADDR` once bound (port 0 works).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serverless_wasm::http::{Decoded, Decoder, FramingLimits, Request};

static CONNECTIONS: AtomicU64 = AtomicU64::new(0);

fn main() {
    let mut listen = "127.0.0.1:8181".to_string();
    let mut delay = Duration::ZERO;
    let mut http = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--http" {
            http = true;
            continue;
        }
        match (arg.as_str(), args.next()) {
            ("--listen", Some(value)) => listen = value,
            ("--delay-ms", Some(value)) => match value.parse() {
                Ok(ms) => delay = Duration::from_millis(ms),
                Err(_) => exit(&format!("--delay-ms takes a number, not {value:?}")),
            },
            _ => exit("usage: echo-backend [--listen ADDR] [--delay-ms N] [--http]"),
        }
    }
    let listener = match TcpListener::bind(&listen) {
        Ok(l) => l,
        Err(e) => exit(&format!("cannot listen on {listen}: {e}")),
    };
    match listener.local_addr() {
        Ok(addr) => println!("echo-backend listening on {addr}"),
        Err(e) => exit(&format!("no local address: {e}")),
    }
    for stream in listener.incoming().flatten() {
        let connection = CONNECTIONS.fetch_add(1, Ordering::Relaxed) + 1;
        std::thread::spawn(move || {
            if http {
                describe(stream, connection, delay)
            } else {
                echo(stream, delay)
            }
        });
    }
}

fn echo(mut stream: TcpStream, delay: Duration) {
    let mut buf = [0u8; 16 << 10];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        std::thread::sleep(delay);
        if stream.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

/// The `--http` mode: answers every request on the connection.
fn describe(mut stream: TcpStream, connection: u64, delay: Duration) {
    let limits = FramingLimits {
        max_request_line: 8 << 10,
        max_head: 64 << 10,
        max_body: 64 << 20,
    };
    let mut decoder = Decoder::new(limits);
    let mut request = Request::default();
    let mut input = Vec::new();
    let mut buf = [0u8; 16 << 10];
    let mut served = 0;
    loop {
        match decoder.decode(&input, &mut request) {
            Ok((used, Decoded::Complete)) => {
                input.drain(..used);
                served += 1;
                std::thread::sleep(delay);
                let body = format!(
                    "connection={connection} request={served} method={} target={} body-bytes={}\n",
                    String::from_utf8_lossy(request.method_bytes()),
                    String::from_utf8_lossy(request.target()),
                    request.body.len()
                );
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nx-backend-connection: {connection}\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                );
                if stream
                    .write_all(head.as_bytes())
                    .and_then(|()| stream.write_all(body.as_bytes()))
                    .is_err()
                {
                    return;
                }
                request.clear();
                continue;
            }
            Ok((used, Decoded::Incomplete)) => {
                input.drain(..used);
            }
            Err(e) => {
                let body = format!("{e}\n");
                let answer = format!(
                    "HTTP/1.1 400 Bad Request\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes());
                return;
            }
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => input.extend_from_slice(&buf[..n]),
        }
    }
}

fn exit(message: &str) -> ! {
    eprintln!("echo-backend: {message}");
    std::process::exit(2)
}
