//! A small TCP backend for the backend samples and tests: it echoes every
//! byte it receives, optionally after a delay, one thread per connection.
//!
//!   echo-backend [--listen 127.0.0.1:8181] [--delay-ms 0]
//!
//! It prints `echo-backend listening on ADDR` once bound (port 0 works).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

fn main() {
    let mut listen = "127.0.0.1:8181".to_string();
    let mut delay = Duration::ZERO;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--listen", Some(value)) => listen = value,
            ("--delay-ms", Some(value)) => match value.parse() {
                Ok(ms) => delay = Duration::from_millis(ms),
                Err(_) => exit(&format!("--delay-ms takes a number, not {value:?}")),
            },
            _ => exit("usage: echo-backend [--listen ADDR] [--delay-ms N]"),
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
        std::thread::spawn(move || echo(stream, delay));
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

fn exit(message: &str) -> ! {
    eprintln!("echo-backend: {message}");
    std::process::exit(2)
}
