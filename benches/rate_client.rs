//! Latency at a set rate, without coordinated omission: each connection
//! sends requests on a fixed schedule, and a request's latency is measured
//! from when it was *scheduled*, not from when it could be sent, so a
//! server that stalls is charged for every request its stall delayed (the
//! method of wrk2, which Debian does not package).
//!
//!   cargo run --release --example rate_client -- ADDR PATH RATE SECONDS CONNECTIONS CPU
//!
//! Prints one JSON line with the rate achieved and the latency percentiles
//! in microseconds. Runs on one pinned glommio executor.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use glommio::{LocalExecutorBuilder, Placement};
use hdrhistogram::Histogram;

struct Totals {
    latency: Histogram<u64>,
    ok: u64,
    errors: u64,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let parsed = (|| {
        Some((
            args.get(1)?.parse::<std::net::SocketAddr>().ok()?,
            args.get(2)?.clone(),
            args.get(3)?.parse::<f64>().ok()?,
            args.get(4)?.parse::<f64>().ok()?,
            args.get(5)?.parse::<usize>().ok()?,
            args.get(6)?.parse::<usize>().ok()?,
        ))
    })();
    let Some((addr, path, rate, seconds, connections, cpu)) = parsed else {
        eprintln!("usage: rate_client ADDR PATH RATE SECONDS CONNECTIONS CPU");
        std::process::exit(2);
    };
    let executor = LocalExecutorBuilder::new(Placement::Fixed(cpu))
        .io_memory(1 << 20)
        .make()
        .expect("executor");
    executor.run(async move {
        let totals = Rc::new(RefCell::new(Totals {
            latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram"),
            ok: 0,
            errors: 0,
        }));
        let request = format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n").into_bytes();
        let interval = Duration::from_secs_f64(connections as f64 / rate);
        let start = Instant::now() + Duration::from_millis(50);
        let end = start + Duration::from_secs_f64(seconds);
        let tasks: Vec<_> = (0..connections)
            .map(|i| {
                let (totals, request) = (totals.clone(), request.clone());
                // Connections are staggered evenly across one interval.
                let first = start + interval.mul_f64(i as f64 / connections as f64);
                glommio::spawn_local(async move { connection(addr, request, first, interval, end, totals).await })
            })
            .collect();
        for task in tasks {
            task.await;
        }
        let totals = totals.borrow();
        let pct = |p: f64| totals.latency.value_at_quantile(p);
        println!(
            "{{\"rate\": {rate}, \"achieved_rps\": {:.1}, \"ok\": {}, \"errors\": {}, \"p50_us\": {}, \"p90_us\": {}, \"p99_us\": {}, \"p999_us\": {}, \"max_us\": {}}}",
            totals.ok as f64 / seconds,
            totals.ok,
            totals.errors,
            pct(0.5),
            pct(0.9),
            pct(0.99),
            pct(0.999),
            totals.latency.max()
        );
    });
}

async fn connection(
    addr: std::net::SocketAddr,
    request: Vec<u8>,
    mut scheduled: Instant,
    interval: Duration,
    end: Instant,
    totals: Rc<RefCell<Totals>>,
) {
    let mut stream: Option<TcpStream> = None;
    let mut buf = vec![0u8; 64 << 10];
    while scheduled < end {
        let now = Instant::now();
        if scheduled > now {
            glommio::timer::sleep(scheduled - now).await;
        }
        let result = async {
            if stream.is_none() {
                let s = TcpStream::connect(addr).await?;
                s.set_nodelay(true)?;
                stream = Some(s);
            }
            let s = stream.as_mut().ok_or(std::io::ErrorKind::NotConnected)?;
            s.write_all(&request).await?;
            read_response(s, &mut buf).await
        }
        .await;
        let mut totals = totals.borrow_mut();
        match result {
            Ok(status) if (200..300).contains(&status) => {
                totals.ok += 1;
                let micros = scheduled.elapsed().as_micros().max(1) as u64;
                let _ = totals.latency.record(micros.min(60_000_000));
            }
            Ok(_) => totals.errors += 1,
            Err(_) => {
                totals.errors += 1;
                stream = None;
            }
        }
        scheduled += interval;
    }
}

/// Reads one response (head and Content-Length body); returns its status.
async fn read_response(stream: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<u16> {
    let mut filled = 0;
    loop {
        let n = stream.read(&mut buf[filled..]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        filled += n;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        if let Ok(httparse::Status::Complete(head)) = response.parse(&buf[..filled]) {
            let length = response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.parse::<usize>().ok())
                .unwrap_or(0);
            let status = response.code.unwrap_or(0);
            let mut have = filled - head;
            while have < length {
                let n = stream.read(&mut buf[..]).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                have += n;
            }
            return Ok(status);
        }
        if filled == buf.len() {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
    }
}
