//! The admin listener: `/metrics`, `/healthz`, `/readyz`, `GET /config` and
//! `POST /reload` on a socket of their own (`[admin] listen_address`),
//! answered by a thread of their own (a reload's answer excepted: the
//! reloader writes it when done, see [`hand_over_reload`]).
//!
//! It is a plain blocking thread, not a task on a shard: a health check
//! must be answered while every shard is busy running guests, and it is the
//! shards' event loops that it checks. It shares nothing with the request
//! path: it reads the shards' counters (each written by its own shard only,
//! `stats.rs`) when asked. Connections are served one at a time, one
//! request each, under a deadline: its clients are a scraper and a health
//! checker, and a sequential server with bounded requests costs one thread
//! and a few buffers whatever a client does. Nothing here authenticates:
//! the address belongs on loopback or a private interface.
//!
//! Requests are decoded and responses written by the server's own sans-IO
//! code (`http`), so the admin socket parses exactly like the public one.
//! `endpoints.rs` routes a decoded request; `metrics.rs` renders `/metrics`.

mod config_view;
mod endpoints;
mod metrics;

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{SendError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

pub use endpoints::respond;

use crate::http::answers::{self, HttpError};
use crate::http::encode::{ResponseMeta, write_response};
use crate::http::{DateCache, Decoded, Decoder, FramingLimits, Method, Request, Response};
use crate::server::reload::{Current, Event, Outcome, ReloadRequest, Trigger};
use crate::stats::{Health, ShardStats, unix_millis};

/// What the admin endpoints read; `server::run` builds it.
pub struct AdminState {
    /// Every shard's counters, in shard order.
    pub shards: Vec<Arc<ShardStats>>,
    /// Started and not draining: `/readyz`.
    pub health: Arc<Health>,
    /// Log lines lost because the log writer fell behind. Closures, so that
    /// the logging module reports its counters without this module
    /// depending on it.
    pub log_lines_dropped: Arc<dyn Fn() -> u64 + Send + Sync>,
    /// Access log lines lost the same way.
    pub access_lines_dropped: Arc<dyn Fn() -> u64 + Send + Sync>,
    /// `POST /reload` and `GET /config`; `None` (unit tests, fuzzing): they
    /// are not there.
    pub reload: Option<ReloadLink>,
}

/// The admin listener's way to the reloader (the main thread).
pub struct ReloadLink {
    /// The generation every shard serves, and the reload counters.
    pub current: Arc<Current>,
    /// The reloader's queue: a `POST /reload` hands its connection over
    /// with its request, and the reloader answers it when done.
    pub events: Sender<Event>,
    /// `POST /reload` requests handed over and not answered yet.
    pub pending: Arc<AtomicUsize>,
}

/// The admin endpoints take no body worth the name: small bounds keep a
/// client from making the thread hold more than a few buffers.
pub const REQUEST_LIMITS: FramingLimits = FramingLimits {
    max_request_line: 8 << 10,
    max_head: 8 << 10,
    max_body: 64 << 10,
};

/// How long a connection may take to send its request, and again to take
/// its response: connections wait for each other, so a slow client must
/// not hold the next scrape or health check for long.
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// A failed accept (out of file descriptors, ...) tends to fail again at
/// once: waiting a little keeps the thread from spinning on it.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Starts the thread `admin`, which serves `listener` until the process
/// ends. Only a failure to start it is returned: a failed connection is
/// logged (at debug) and the next one is served.
pub fn spawn(listener: TcpListener, state: AdminState) -> io::Result<JoinHandle<()>> {
    // A listener bound through socket2 may be non-blocking; this thread
    // blocks in accept by design.
    listener.set_nonblocking(false)?;
    thread::Builder::new()
        .name("admin".into())
        .spawn(move || serve(&listener, &state))
}

fn serve(listener: &TcpListener, state: &AdminState) {
    let date = DateCache::default();
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                if let Err(e) = answer(stream, state, &date) {
                    tracing::debug!(%peer, "admin connection failed: {e}");
                }
            }
            Err(e) => {
                tracing::debug!("admin accept failed: {e}");
                thread::sleep(ACCEPT_BACKOFF);
            }
        }
    }
}

/// Reads one request, writes its answer and closes the connection.
fn answer(mut stream: TcpStream, state: &AdminState, date: &DateCache) -> io::Result<()> {
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut request = Request::default();
    let received = read_request(&mut stream, &mut request, deadline);
    if let (Ok(()), Some(link)) = (&received, &state.reload)
        && endpoints::asks_reload(&request)
    {
        hand_over_reload(stream, link);
        return Ok(());
    }
    let date = date.now();
    let mut out = Vec::new();
    match received {
        Ok(()) => {
            let response = respond(state, &request, unix_millis());
            write_response(&mut out, &response, &closing(&date, request.method() == Method::Head));
        }
        Err(Unanswerable::Refused(error)) => answers::write_http_error(&mut out, error, &date),
        Err(Unanswerable::Gone(e)) => return Err(e),
    }
    send_and_close(stream, &out)
}

/// Every admin answer closes its connection.
fn closing(date: &[u8], head_only: bool) -> ResponseMeta<'_> {
    ResponseMeta {
        date,
        head_only,
        keep_alive: false,
        extra_headers: &[],
    }
}

fn send_and_close(mut stream: TcpStream, out: &[u8]) -> io::Result<()> {
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.write_all(out)?;
    stream.shutdown(Shutdown::Write)
}

/// Reload requests waiting for the reloader, with their connections, at
/// most: past it a `POST /reload` is answered 503 at once, so a client
/// that loops on it cannot pile up connections while a long reload runs.
const MAX_PENDING_RELOADS: usize = 16;

/// Queues a reload whose outcome answers the connection: the reload may
/// take a while (fetching, compiling), and health checks and scrapes must
/// not wait behind it, so this thread goes back to its other clients.
fn hand_over_reload(stream: TcpStream, link: &ReloadLink) {
    let pending = link.pending.clone();
    if pending.fetch_add(1, Ordering::Relaxed) >= MAX_PENDING_RELOADS {
        pending.fetch_sub(1, Ordering::Relaxed);
        let busy = endpoints::json(
            503,
            "{\"outcome\":\"rejected\",\"error\":{\"message\":\"too many reloads waiting\"}}\n".into(),
        );
        return write_reload_answer(stream, &busy);
    }
    let answer = move |outcome: &Outcome| {
        pending.fetch_sub(1, Ordering::Relaxed);
        write_reload_answer(stream, &endpoints::json(outcome.status(), outcome.to_json()));
    };
    let request = ReloadRequest {
        trigger: Trigger::Admin,
        reply: Some(Box::new(answer)),
    };
    if let Err(SendError(Event::Reload(request))) = link.events.send(Event::Reload(request)) {
        // The reloader is gone: the server is stopping. The request came
        // back with its connection, which is answered so.
        let running = link.current.generation().number;
        request
            .reply
            .into_iter()
            .for_each(|reply| reply(&Outcome::stopping(running)));
    }
}

/// Writes a `POST /reload` answer (on the reloader's thread, or here).
fn write_reload_answer(stream: TcpStream, response: &Response) {
    let date = DateCache::default();
    let mut out = Vec::new();
    write_response(&mut out, response, &closing(&date.now(), false));
    if let Err(e) = send_and_close(stream, &out) {
        tracing::debug!("cannot answer POST /reload: {e}");
    }
}

/// Why no request came in.
enum Unanswerable {
    /// The bytes are not a request the decoder accepts, or they came too
    /// slowly: the client gets the decoder's status.
    Refused(HttpError),
    /// The connection failed or closed: nobody to answer.
    Gone(io::Error),
}

/// Reads until `request` is complete, `deadline` at the latest.
fn read_request(stream: &mut TcpStream, request: &mut Request, deadline: Instant) -> Result<(), Unanswerable> {
    let mut decoder = Decoder::new(REQUEST_LIMITS);
    // What the decoder has not consumed yet: at most a head's worth plus
    // one read, since it bounds the head and consumes the body as it goes.
    let mut pending = Vec::new();
    let mut chunk = [0; 4096];
    loop {
        let (used, decoded) = decoder.decode(&pending, request).map_err(Unanswerable::Refused)?;
        pending.drain(..used);
        if decoded == Decoded::Complete {
            return Ok(());
        }
        if decoder.take_continue() {
            stream.write_all(answers::CONTINUE).map_err(Unanswerable::Gone)?;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Unanswerable::Refused(HttpError::Timeout));
        }
        stream.set_read_timeout(Some(left)).map_err(Unanswerable::Gone)?;
        match stream.read(&mut chunk) {
            Ok(0) => return Err(Unanswerable::Gone(io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => pending.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Err(Unanswerable::Refused(HttpError::Timeout));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Unanswerable::Gone(e)),
        }
    }
}

/// How long ago `shard`'s event loop last ran; `None` before it first ran.
fn heartbeat_age(shard: &ShardStats, now_ms: u64) -> Option<Duration> {
    match shard.heartbeat_ms.get() {
        0 => None,
        beat => Some(Duration::from_millis(now_ms.saturating_sub(beat))),
    }
}

/// A state with two shards and their routes, for the tests of each file.
#[cfg(test)]
fn two_shards(health: Arc<Health>) -> AdminState {
    AdminState {
        shards: vec![Arc::new(ShardStats::new(0)), Arc::new(ShardStats::new(1))],
        health,
        log_lines_dropped: Arc::new(|| 3),
        access_lines_dropped: Arc::new(|| 0),
        reload: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Starts the admin thread on a free loopback port.
    fn start(health: Arc<Health>) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        spawn(listener, two_shards(health)).unwrap();
        addr
    }

    /// Sends `request` on a new connection and reads until the server closes.
    fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.write_all(request).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    }

    #[test]
    fn answers_one_request_per_connection_and_closes() {
        let health = Arc::new(Health::default());
        health.set_started();
        let addr = start(health);
        let response = exchange(
            addr,
            b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\nGET /metrics HTTP/1.1\r\n\r\n",
        );
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.contains("\r\nConnection: close\r\n"), "{response}");
        assert!(response.ends_with("\r\n\r\nready\n"), "{response}");
        // The next connection is served too.
        let response = exchange(addr, b"HEAD /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.ends_with("\r\n\r\n"), "HEAD has no body: {response}");
    }

    #[test]
    fn a_request_the_decoder_refuses_gets_its_status() {
        let addr = start(Arc::new(Health::default()));
        let response = exchange(addr, b"GET /metrics HTTP/1.1\nHost: x\n\n");
        assert!(response.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{response}");
        let long = format!(
            "GET /{} HTTP/1.1\r\nHost: x\r\n\r\n",
            "a".repeat(REQUEST_LIMITS.max_request_line)
        );
        let response = exchange(addr, long.as_bytes());
        assert!(response.starts_with("HTTP/1.1 414 "), "{response}");
        let response = exchange(
            addr,
            b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 70000\r\n\r\n",
        );
        assert!(response.starts_with("HTTP/1.1 413 "), "{response}");
    }

    #[test]
    fn a_client_that_sends_nothing_is_closed_after_the_timeout() {
        let addr = start(Arc::new(Health::default()));
        let started = Instant::now();
        let response = exchange(addr, b"GET /healthz HTTP/1.1\r\n");
        assert!(response.starts_with("HTTP/1.1 408 "), "{response}");
        assert!(started.elapsed() >= IO_TIMEOUT, "{:?}", started.elapsed());
    }
}
