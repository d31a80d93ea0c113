//! One client connection: read, decode every complete request in what was
//! read, answer each in order into one output buffer, write it with one
//! syscall, repeat. Pipelined requests therefore cost one read and one
//! write per batch, not per request.
//!
//! Timeouts: an idle connection closes after `keepalive`; a request's head
//! must arrive within `header` of its first byte and its body within `body`
//! of its head, else 408 and close; a client that stops reading while we
//! write is dropped after `write`. Reading stops while a batch is being
//! answered, so a client that pipelines without reading fills its own
//! socket buffers, not our memory.

mod duplex;
mod record;
mod streamed;

use std::io;
use std::time::Instant;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use super::routes::{Handler, Route, ShardRoutes};
use super::shard::Shard;
use super::shutdown::AwaitingFirst;
use crate::config::Timeouts;
use crate::http::decode::Phase;
use crate::http::encode::{ResponseMeta, announces_keep_alive};
use crate::http::{self, Decoded, Decoder, FramingLimits, HttpError, Request, Response};
use crate::router::Lookup;
use crate::wasm::{Answer, GuestPool};
use duplex::Duplex;
use record::Answering;

/// Write out pending responses once this much has accumulated, even in the
/// middle of a batch, so a flood of pipelined requests with large answers
/// cannot grow the output buffer without bound.
pub(super) const FLUSH_AT: usize = 256 << 10;

pub async fn serve<'a>(shard: &'a Shard, stream: TcpStream, awaiting_first: AwaitingFirst<'a>) {
    // The generation current when the connection opens sets its framing
    // limits and timeouts for its whole life (a reload applies them to
    // connections accepted after it).
    let routes = shard.routes();
    let generation = routes.generation();
    let server = &generation.config.server;
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(server.timeouts.write));
    let limits = FramingLimits {
        max_body: generation.max_body,
        ..server.framing
    };
    let read_buffer = server.read_buffer_bytes.max(server.framing.max_head + 1);
    // Only the access log wants it (a system call per connection).
    let peer = shard.access_log.as_ref().and_then(|_| stream.peer_addr().ok());
    let accepted = Instant::now();
    let mut connection = Connection {
        shard,
        stream: Duplex::new(stream),
        input: vec![0; read_buffer],
        start: 0,
        end: 0,
        output: Vec::with_capacity(read_buffer),
        decoder: Decoder::new(limits),
        timeouts: server.timeouts,
        request: Request::default(),
        deadline: None,
        sent: 0,
        answering: Answering::new(accepted),
        read_at: accepted,
        peer,
        awaiting_first: Some(awaiting_first),
    };
    drop(routes);
    if let Err(e) = connection.run().await {
        tracing::debug!(shard = shard.id, "connection ended: {e}");
    }
}

struct Connection<'a> {
    shard: &'a Shard,
    stream: Duplex,
    /// Read buffer; bytes `start..end` are received but not yet decoded.
    input: Vec<u8>,
    start: usize,
    end: usize,
    /// Responses not yet written.
    output: Vec<u8>,
    decoder: Decoder,
    timeouts: Timeouts,
    request: Request,
    /// When the request being received must be complete (`None` between
    /// requests).
    deadline: Option<Instant>,
    /// Bytes written to the socket so far.
    sent: u64,
    answering: Answering,
    /// When the last read completed.
    read_at: Instant,
    /// The client's address, when the access log wants it.
    peer: Option<std::net::SocketAddr>,
    /// Until its first request starts, the connection tells a drain so.
    awaiting_first: Option<AwaitingFirst<'a>>,
}

/// Whether the connection stays open after a response.
enum Next {
    KeepAlive,
    Close,
}

impl<'a> Connection<'a> {
    async fn run(&mut self) -> io::Result<()> {
        let timeouts = self.timeouts;
        loop {
            if let Next::Close = self.answer_buffered().await? {
                return self.flush().await;
            }
            self.flush().await?;
            self.compact();

            // Which timeout applies to the next read?
            let now = Instant::now();
            let (deadline, idle) = match (self.deadline, self.decoder.phase()) {
                (None, _) if self.start == self.end => (now + timeouts.keepalive, true),
                (None, Phase::Head) => (*self.deadline.insert(now + timeouts.header), false),
                (None, Phase::Body) => (*self.deadline.insert(now + timeouts.body), false),
                (Some(deadline), _) => (deadline, false),
            };
            let remaining = deadline.saturating_duration_since(now);
            let read = if remaining.is_zero() {
                Err(io::ErrorKind::TimedOut.into())
            } else {
                let _ = self.stream.socket().set_read_timeout(Some(remaining));
                (&self.stream).read(&mut self.input[self.end..]).await
            };
            match read {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    self.end += n;
                    // One clock read per read: the start of every request it
                    // completes, and the head's deadline.
                    self.read_at = Instant::now();
                    if self.deadline.is_none() {
                        // The first bytes of a request: its head is due.
                        self.deadline = Some(self.read_at + timeouts.header);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut && idle => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    self.protocol_error(HttpError::Timeout);
                    return self.flush().await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Decodes and answers every complete request in the buffer.
    async fn answer_buffered(&mut self) -> io::Result<Next> {
        loop {
            let phase_before = self.decoder.phase();
            let decoded = self
                .decoder
                .decode(&self.input[self.start..self.end], &mut self.request);
            match decoded {
                Err(e) => {
                    self.protocol_error(e);
                    return Ok(Next::Close);
                }
                Ok((used, Decoded::Incomplete)) => {
                    self.start += used;
                    if phase_before == Phase::Head && self.decoder.phase() == Phase::Body {
                        // The head is in: the body has its own budget.
                        self.deadline = Some(Instant::now() + self.timeouts.body);
                        let routes = self.shard.routes();
                        if let Some(route) = streaming_route(&routes, &self.request) {
                            // This guest takes its body as it arrives.
                            let _in_flight = self.shard.request_started();
                            self.begin_request();
                            match Box::pin(self.stream_exchange(route, false)).await? {
                                Next::Close => return Ok(Next::Close),
                                Next::KeepAlive => continue,
                            }
                        }
                    }
                    if self.decoder.take_continue() {
                        self.output.extend_from_slice(http::answers::CONTINUE);
                    }
                    return Ok(Next::KeepAlive);
                }
                Ok((used, Decoded::Complete)) => {
                    self.start += used;
                    self.deadline = None;
                    let in_flight = self.shard.request_started();
                    self.begin_request();
                    let next = self.respond().await;
                    drop(in_flight);
                    if let Next::Close = next? {
                        return Ok(Next::Close);
                    }
                    if self.output.len() >= FLUSH_AT {
                        self.flush().await?;
                    }
                }
            }
        }
    }

    /// Routes the complete request and appends its response (or, for a
    /// guest that streams, streams it).
    async fn respond(&mut self) -> io::Result<Next> {
        let shard = self.shard;
        let keep_alive = self.request.keep_alive && !shard.drain.draining();
        let routes = shard.routes();
        let (route, head_only) = match routes.lookup(self.request.method(), self.request.path()) {
            Lookup::Found { route, head_only } => (route, head_only),
            Lookup::NotFound => {
                self.answer(None, &http::answers::canned(404), false, keep_alive, None);
                return Ok(next(keep_alive));
            }
            Lookup::MethodNotAllowed { allow } => {
                let answer = http::answers::method_not_allowed(allow);
                self.answer(None, &answer, false, keep_alive, None);
                return Ok(next(keep_alive));
            }
        };
        if self.request.body.len() > route.max_body_bytes {
            tracing::info!(route = %route.name, limit = route.max_body_bytes, "413: request body exceeds the route's max_body_bytes");
            self.answer(Some(route), &http::answers::canned(413), false, keep_alive, None);
            return Ok(next(keep_alive));
        }
        let pool = match &route.handler {
            Handler::Static(response) => {
                self.answer(Some(route), response, head_only, keep_alive, None);
                return Ok(next(keep_alive));
            }
            Handler::Guest(pool) if pool.streams_request_body() => {
                let routed = RoutedRequest { route, pool, head_only };
                return Box::pin(self.stream_exchange(routed, true)).await;
            }
            Handler::Guest(pool) => pool,
        };
        let handled = pool.handle(&mut self.request, None).await;
        let fuel = handled.fuel_used;
        match handled.answer {
            Ok(Answer::Whole(response)) => self.answer(Some(route), &response, head_only, keep_alive, fuel),
            Ok(Answer::Streamed(exchange)) => {
                let routed = RoutedRequest { route, pool, head_only };
                return Box::pin(self.relay(routed, exchange, None, keep_alive)).await;
            }
            Err(e) => {
                let answer = http::answers::canned(e.status());
                self.answer(Some(route), &answer, head_only, keep_alive, fuel);
            }
        }
        Ok(next(keep_alive))
    }

    /// Appends a whole response and records it under its route (`None`:
    /// unrouted).
    fn answer(
        &mut self,
        route: Option<&Route>,
        response: &Response,
        head_only: bool,
        keep_alive: bool,
        fuel: Option<u64>,
    ) {
        self.write(response, head_only, keep_alive);
        self.record(route, response.status, fuel);
    }

    fn write(&mut self, response: &Response, head_only: bool, keep_alive: bool) {
        let date = self.shard.date.now();
        let extra = ExtraHeaders::new(self.shard, self.request.version, keep_alive);
        let meta = ResponseMeta {
            date: &date,
            head_only,
            keep_alive,
            extra_headers: extra.as_slice(),
        };
        http::write_response(&mut self.output, response, &meta);
    }

    /// Answers a request that could not be decoded; the connection closes.
    fn protocol_error(&mut self, error: HttpError) {
        self.shard.stats.protocol_errors.bump();
        let peer = self
            .stream
            .socket()
            .peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        tracing::info!(shard = self.shard.id, peer, status = error.status(), "{error}");
        let date = self.shard.date.now();
        http::answers::write_http_error(&mut self.output, error, &date);
    }

    async fn flush(&mut self) -> io::Result<()> {
        if !self.output.is_empty() {
            let result = (&self.stream).write_all(&self.output).await;
            self.sent += self.output.len() as u64;
            self.output.clear();
            result?;
        }
        Ok(())
    }

    fn compact(&mut self) {
        compact(&mut self.input, &mut self.start, &mut self.end);
    }
}

/// Moves the undecoded bytes `start..end` of a read buffer to its front so
/// the next read has room.
fn compact(input: &mut [u8], start: &mut usize, end: &mut usize) {
    if *start == *end {
        *start = 0;
        *end = 0;
    } else if *start > 0 {
        input.copy_within(*start..*end, 0);
        *end -= *start;
        *start = 0;
    }
}

fn next(keep_alive: bool) -> Next {
    if keep_alive { Next::KeepAlive } else { Next::Close }
}

/// A request routed to a guest.
#[derive(Clone, Copy)]
struct RoutedRequest<'r> {
    route: &'r Route,
    pool: &'r GuestPool,
    head_only: bool,
}

/// The route of a request whose head just arrived, if its guest takes the
/// body as a stream.
fn streaming_route<'r>(routes: &'r ShardRoutes, request: &Request) -> Option<RoutedRequest<'r>> {
    match routes.lookup(request.method(), request.path()) {
        Lookup::Found { route, head_only } => match &route.handler {
            Handler::Guest(pool) if pool.streams_request_body() => Some(RoutedRequest { route, pool, head_only }),
            _ => None,
        },
        _ => None,
    }
}

/// Headers the server adds to every response: `Connection: keep-alive` for
/// an HTTP/1.0 client that keeps the connection, and the shard id.
struct ExtraHeaders<'a> {
    fields: [(&'a [u8], &'a [u8]); 2],
    count: usize,
}

impl<'a> ExtraHeaders<'a> {
    fn new(shard: &'a Shard, version: http::Version, keep_alive: bool) -> ExtraHeaders<'a> {
        let mut extra = ExtraHeaders {
            fields: [(b"", b""); 2],
            count: 0,
        };
        if announces_keep_alive(version, keep_alive) {
            extra.fields[extra.count] = (b"Connection", b"keep-alive");
            extra.count += 1;
        }
        if let Some(id) = &shard.shard_header {
            extra.fields[extra.count] = (b"x-serverless-shard", id);
            extra.count += 1;
        }
        extra
    }

    fn as_slice(&self) -> &[(&'a [u8], &'a [u8])] {
        &self.fields[..self.count]
    }
}
