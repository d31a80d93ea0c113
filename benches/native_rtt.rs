//! The native side of the backend benchmark: what a Rust client on a glommio
//! shard achieves doing exactly what the `backend_rtt` guest does per
//! request: connect, write "hello\n", read the echo, close.
//!
//!   cargo run --release --example native_rtt -- ADDR CPU CONCURRENCY SECONDS
//!
//! Prints one JSON line: {"round_trips": N, "seconds": S, "errors": E}.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use glommio::{LocalExecutorBuilder, Placement};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: native_rtt ADDR CPU CONCURRENCY SECONDS";
    let (Some(addr), Some(cpu), Some(concurrency), Some(seconds)) = (
        args.get(1).and_then(|a| a.parse::<std::net::SocketAddr>().ok()),
        args.get(2).and_then(|a| a.parse::<usize>().ok()),
        args.get(3).and_then(|a| a.parse::<usize>().ok()),
        args.get(4).and_then(|a| a.parse::<f64>().ok()),
    ) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let executor = LocalExecutorBuilder::new(Placement::Fixed(cpu))
        .io_memory(1 << 20)
        .make()
        .expect("executor");
    executor.run(async move {
        let done = Rc::new(Cell::new(0u64));
        let errors = Rc::new(Cell::new(0u64));
        let deadline = Instant::now() + Duration::from_secs_f64(seconds);
        let started = Instant::now();
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| {
                let (done, errors) = (done.clone(), errors.clone());
                glommio::spawn_local(async move {
                    let mut buf = [0u8; 64];
                    while Instant::now() < deadline {
                        let result: std::io::Result<()> = async {
                            let mut stream = TcpStream::connect(addr).await?;
                            stream.write_all(b"hello\n").await?;
                            let n = stream.read(&mut buf).await?;
                            if n == 0 {
                                return Err(std::io::ErrorKind::UnexpectedEof.into());
                            }
                            Ok(())
                        }
                        .await;
                        match result {
                            Ok(()) => done.set(done.get() + 1),
                            Err(_) => errors.set(errors.get() + 1),
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await;
        }
        println!(
            "{{\"round_trips\": {}, \"seconds\": {:.3}, \"errors\": {}}}",
            done.get(),
            started.elapsed().as_secs_f64(),
            errors.get()
        );
    });
}
