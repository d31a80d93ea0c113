//! `wasi:http/outgoing-handler`: a guest's HTTP requests, sent by a small
//! HTTP/1.1 client running as tasks on the guest's own shard.
//!
//! Policy first: only `http://` and `https://` to a `host:port` on the route's
//! `allowed_outbound` (the TCP backends' list), at most
//! `max_backend_connections` requests per guest request, each within the
//! route's connect and I/O timeouts (or the guest's own, if shorter), its
//! response body within `max_backend_bytes`. A denied request fails in the
//! guest with `HTTP-request-denied`.
//!
//! wasmtime-wasi-http wraps the future we return in a tokio task, so each
//! shard keeps a current-thread tokio runtime (no threads of its own) to
//! hold those tasks; the client task runs it for a moment whenever it has
//! completed one. Keep-alive connections are pooled per shard and endpoint.
//!
//! The bytes on the wire (request head, response head, body framing) are
//! `crate::http::client`'s; this file does the I/O around them.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use http_body_util::BodyExt;
use tokio::sync::oneshot;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::body;
use crate::config::Endpoint;
use crate::http::client::{self, ClientError, ResponseBody, ResponseHead};
use crate::net::{BackendStream, ConnectError, TlsClient, TlsIdentity};
use crate::stats::{OutboundResult, RouteStats};
use crate::wasm::route::RouteContext;
use crate::wasm::shard_local::ShardLocal;

/// Idle keep-alive connections kept per backend endpoint on one shard.
const IDLE_PER_ENDPOINT: usize = 32;
/// An idle connection older than this is closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
const READ_CHUNK: usize = 64 << 10;

type SendResult = Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), Error>> + Send>,
    ),
    Error,
>;

/// Pooled connections are told apart by endpoint and, for TLS, by the
/// certificate authorities they were verified against: a route that
/// trusts fewer never reuses a connection another route's CAs accepted.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Backend {
    endpoint: Endpoint,
    /// `None`: plain HTTP.
    tls: Option<TlsIdentity>,
}

/// A shard's outbound HTTP: the tokio runtime wasi-http needs and the pool
/// of idle backend connections.
pub struct ShardHttp {
    tokio: tokio::runtime::Runtime,
    idle: RefCell<HashMap<Backend, Vec<(BackendStream, Instant)>>>,
}

impl ShardHttp {
    pub fn new() -> std::io::Result<Rc<ShardHttp>> {
        let tokio = tokio::runtime::Builder::new_current_thread().build()?;
        Ok(Rc::new(ShardHttp {
            tokio,
            idle: RefCell::new(HashMap::new()),
        }))
    }

    /// Makes this shard's tokio runtime the thread's ambient one, so
    /// wasi-http's internal `spawn`s land here, not on a global
    /// multi-threaded runtime. The shard holds it for its whole life.
    pub fn enter(&self) -> tokio::runtime::EnterGuard<'_> {
        self.tokio.enter()
    }

    /// Runs the tokio tasks that are ready (a few microseconds).
    fn run_ready_tasks(&self) {
        self.tokio.block_on(tokio::task::yield_now());
    }

    /// The same, once the running guest has yielded: for an answer that is
    /// ready at once (a denied request), whose tokio task wasi-http spawns
    /// only after the hook returns.
    fn run_ready_tasks_soon(self: &Rc<Self>) {
        let http = self.clone();
        glommio::spawn_local(async move {
            // The new task may first run before the guest's host call
            // returns; going round the run queue once lets it finish.
            futures_lite::future::yield_now().await;
            http.run_ready_tasks()
        })
        .detach();
    }

    fn checkout(&self, backend: &Backend) -> Option<BackendStream> {
        let mut idle = self.idle.borrow_mut();
        let streams = idle.get_mut(backend)?;
        while let Some((stream, since)) = streams.pop() {
            if since.elapsed() < IDLE_TIMEOUT && !stream.peer_closed() {
                return Some(stream);
            }
        }
        None
    }

    fn checkin(&self, backend: Backend, stream: BackendStream) {
        let mut idle = self.idle.borrow_mut();
        let streams = idle.entry(backend).or_default();
        if streams.len() < IDLE_PER_ENDPOINT {
            streams.push((stream, Instant::now()));
        }
    }
}

/// The hooks of one guest request.
pub struct OutboundHooks {
    route: ShardLocal<Rc<RouteContext>>,
    http: Option<ShardLocal<Rc<ShardHttp>>>,
    /// The client tasks of this request: dropped (cancelled) with the store,
    /// or when a reused instance's request ends. Each with its "finished"
    /// flag.
    tasks: ShardLocal<Vec<ClientTask>>,
    /// Requests a WASI 0.3 instance serves at once; `None` for WASI 0.2,
    /// whose instance serves one request at a time.
    shared_by: Option<usize>,
}

impl OutboundHooks {
    /// `http` is `None` at start-up (trial instantiation, no shard).
    pub fn new(route: &Rc<RouteContext>, http: Option<&Rc<ShardHttp>>) -> OutboundHooks {
        OutboundHooks {
            route: ShardLocal::new(route.clone()),
            http: http.map(|h| ShardLocal::new(h.clone())),
            tasks: ShardLocal::new(Vec::new()),
            shared_by: None,
        }
    }

    /// For a WASI 0.3 instance serving up to `requests` requests at once:
    /// its requests are not told apart, so `max_backend_connections` bounds
    /// each on average, as that many times `requests` client exchanges in
    /// flight in the instance (finished ones no longer count).
    pub fn shared_by(&mut self, requests: usize) {
        self.shared_by = Some(requests);
    }

    /// Ends a request on a reused instance: its client tasks are cancelled,
    /// and the next request may open `max_backend_connections` again.
    pub fn end_request(&mut self) {
        self.tasks.clear();
    }
}

fn ready(result: SendResult) -> Box<dyn Future<Output = SendResult> + Send> {
    Box::new(std::future::ready(result))
}

impl WasiHttpHooks for OutboundHooks {
    fn is_supported_scheme(&mut self, scheme: &http::uri::Scheme) -> bool {
        *scheme == http::uri::Scheme::HTTP || *scheme == http::uri::Scheme::HTTPS
    }

    fn default_scheme(&mut self) -> Option<http::uri::Scheme> {
        Some(http::uri::Scheme::HTTP)
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_done: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        if let Some(http) = &self.http {
            http.run_ready_tasks_soon();
        }
        let route = &**self.route;
        let tls = request.uri().scheme() == Some(&http::uri::Scheme::HTTPS);
        let Some(endpoint) = endpoint_of(request.uri(), tls) else {
            tracing::warn!(route = %route.label, uri = %request.uri(), "outgoing HTTP: no host:port");
            route.stats.outbound(OutboundResult::Failed);
            return ready(Err(Error::HttpRequestUriInvalid));
        };
        if !route.outbound.allowed.contains(&endpoint) {
            tracing::warn!(route = %route.label, address = %endpoint, "outgoing HTTP denied: not in allowed_outbound");
            route.stats.outbound(OutboundResult::Denied);
            return ready(Err(Error::HttpRequestDenied));
        }
        let Some(http) = &self.http else {
            return ready(Err(Error::DestinationUnavailable));
        };
        let limit = match self.shared_by {
            None => route.outbound.max_connections,
            Some(requests) => {
                self.tasks.retain(|(_, finished)| !finished.get());
                route.outbound.max_connections.saturating_mul(requests)
            }
        };
        if self.tasks.len() >= limit {
            tracing::warn!(route = %route.label, address = %endpoint, limit, "outgoing HTTP: max_backend_connections reached");
            route.stats.outbound(OutboundResult::Limit);
            return ready(Err(Error::ConnectionLimitReached));
        }
        let limits = ClientLimits::new(route, options.as_ref());
        let (reply, response) = oneshot::channel();
        let client = Client {
            http: Rc::clone(http),
            label: route.label.clone(),
            stats: route.stats.clone(),
            backend: Backend {
                endpoint,
                tls: tls.then(|| route.outbound.tls.identity()),
            },
            tls: route.outbound.tls.clone(),
            limits,
        };
        let finished = Rc::new(Cell::new(false));
        let exchange = client.exchange(request, reply, finished.clone());
        self.tasks.push((glommio::spawn_local(exchange), finished));
        Box::new(async move {
            response
                .await
                .unwrap_or(Err(Error::InternalError(Some("outgoing request cancelled".into()))))
        })
    }
}

fn endpoint_of(uri: &http::Uri, tls: bool) -> Option<Endpoint> {
    let authority = uri.authority()?;
    Some(Endpoint {
        host: authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase(),
        port: authority.port_u16().unwrap_or(if tls { 443 } else { 80 }),
    })
}

#[derive(Clone, Copy)]
struct ClientLimits {
    connect: Duration,
    first_byte: Duration,
    between_bytes: Duration,
    max_body: u64,
}

impl ClientLimits {
    /// The route's bounds, tightened by the guest's request options.
    fn new(route: &RouteContext, options: Option<&RequestOptions>) -> ClientLimits {
        let tighter = |route: Duration, guest: Option<Duration>| guest.map_or(route, |g| g.min(route));
        let o = options.cloned().unwrap_or_default();
        ClientLimits {
            connect: tighter(route.outbound.connect_timeout, o.connect_timeout),
            first_byte: tighter(route.outbound.io_timeout, o.first_byte_timeout),
            between_bytes: tighter(route.outbound.io_timeout, o.between_bytes_timeout),
            max_body: route.outbound.max_bytes,
        }
    }
}

/// A backend exchange running on the shard, and whether it has finished.
type ClientTask = (glommio::Task<()>, Rc<Cell<bool>>);

struct Finished(Rc<Cell<bool>>);

impl Drop for Finished {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

struct Client {
    http: Rc<ShardHttp>,
    label: String,
    stats: Arc<RouteStats>,
    backend: Backend,
    /// The route's certificate authorities (used for `https://`).
    tls: TlsClient,
    limits: ClientLimits,
}

impl Client {
    async fn exchange(
        self,
        request: http::Request<WasiBody>,
        reply: oneshot::Sender<SendResult>,
        finished: Rc<Cell<bool>>,
    ) {
        // Set however the exchange ends, even cancelled.
        let _finished = Finished(finished);
        let method = request.method().clone();
        let result = self.send(request).await;
        let (stream, head, leftover) = match result {
            Ok(ok) => ok,
            Err(e) => {
                tracing::warn!(route = %self.label, address = %self.backend.endpoint, "outgoing HTTP failed: {e:?}");
                self.stats.outbound(OutboundResult::Failed);
                let _ = reply.send(Err(e));
                self.http.run_ready_tasks();
                return;
            }
        };
        self.stats.outbound(OutboundResult::Ok);
        let ResponseHead {
            response,
            framing,
            keep_alive,
        } = head;
        let response_body = ResponseBody::new(framing, &method, self.limits.max_body);
        let (body_tx, body_rx) = body::channel();
        let response = response.map(|()| body_rx.boxed());
        let io: Box<dyn Future<Output = Result<(), Error>> + Send> = Box::new(async { Ok(()) });
        if reply.send(Ok((response, io))).is_err() {
            return;
        }
        self.http.run_ready_tasks();
        let reusable = self.forward_body(stream, response_body, leftover, body_tx).await;
        if let Some(stream) = reusable.filter(|_| keep_alive) {
            self.http.checkin(self.backend.clone(), stream);
        }
    }

    /// Sends the request and reads the response head. A pooled connection
    /// the backend closed meanwhile is retried once on a new one, when the
    /// request has no body to replay. Returns the connection, the head, and
    /// the body bytes read with it.
    async fn send(&self, request: http::Request<WasiBody>) -> Result<(BackendStream, ResponseHead, Vec<u8>), Error> {
        let (parts, mut body) = request.into_parts();
        // WASI 0.3 bodies (even empty ones) cannot tell up front whether
        // they are empty: the first bytes tell, so that a request without a
        // body still goes on a pooled connection.
        let first = first_data(&mut body).await?;
        let has_body = first.is_some();
        let (head, chunked) = client::write_request_head(&parts, has_body);
        if !has_body
            && let Some(mut stream) = self.http.checkout(&self.backend)
            && let Ok((response, leftover)) = self.round_trip(&mut stream, &head, None).await
        {
            return Ok((stream, response, leftover));
        }
        let mut stream = self.connect().await?;
        let body = first.map(|first| (first, body, chunked));
        let (response, leftover) = self.round_trip(&mut stream, &head, body).await?;
        Ok((stream, response, leftover))
    }

    /// A new connection; for `https://`, TLS within the connect timeout.
    /// A certificate or handshake failure is logged with its reason (the
    /// guest's error code cannot carry it).
    async fn connect(&self) -> Result<BackendStream, Error> {
        let Backend { endpoint, tls } = &self.backend;
        let tls = tls.as_ref().map(|_| &self.tls);
        crate::net::connect(endpoint, tls, self.limits.connect)
            .await
            .map_err(|e| {
                if matches!(
                    e,
                    ConnectError::Certificate(_)
                        | ConnectError::Handshake(_)
                        | ConnectError::HandshakeTimeout
                        | ConnectError::BadServerName
                ) {
                    tracing::warn!(route = %self.label, address = %endpoint, "outgoing HTTPS: {e}");
                }
                match e {
                    ConnectError::Resolve(e) => Error::DnsError {
                        rcode: Some(e.to_string()),
                        info_code: None,
                    },
                    ConnectError::Refused => Error::ConnectionRefused,
                    ConnectError::Timeout | ConnectError::HandshakeTimeout => Error::ConnectionTimeout,
                    ConnectError::Connect(e) => Error::Connect(e),
                    ConnectError::BadServerName => Error::HttpRequestUriInvalid,
                    ConnectError::Certificate(_) => Error::TlsCertificateError,
                    ConnectError::Handshake(_) => Error::TlsProtocolError,
                }
            })
    }

    async fn round_trip(
        &self,
        stream: &mut BackendStream,
        head: &[u8],
        body: Option<(Bytes, WasiBody, bool)>,
    ) -> Result<(ResponseHead, Vec<u8>), Error> {
        stream.set_write_timeout(Some(self.limits.first_byte));
        write_all(stream, head).await?;
        if let Some((first, rest, chunked)) = body {
            send_body(stream, first, rest, chunked).await?;
        }
        read_response_head(stream, self.limits.first_byte).await
    }

    /// Streams the response body to the guest. Returns the connection when
    /// the body ended cleanly (so it can be reused).
    async fn forward_body(
        &self,
        mut stream: BackendStream,
        mut response_body: ResponseBody,
        leftover: Vec<u8>,
        body: body::BodySender,
    ) -> Option<BackendStream> {
        stream.set_read_timeout(Some(self.limits.between_bytes));
        let mut input = leftover;
        let mut buffer = vec![0; READ_CHUNK];
        loop {
            // Decode what is buffered.
            let mut data = Vec::new();
            let done = match response_body.decode(&mut input, &mut data) {
                Ok(done) => done,
                Err(e) => {
                    self.fail_body(body, e).await;
                    return None;
                }
            };
            if !data.is_empty() && !body.send(Bytes::from(data)).await {
                return None;
            }
            if done {
                // Bytes past the body would be read as the next response.
                return input.is_empty().then_some(stream);
            }
            match stream.read(&mut buffer).await {
                Ok(0) => {
                    if let Err(e) = response_body.end_of_stream() {
                        self.fail_body(body, e).await;
                    }
                    return None;
                }
                Ok(n) => input.extend_from_slice(&buffer[..n]),
                Err(e) => {
                    let timed_out = e.kind() == std::io::ErrorKind::TimedOut;
                    body.fail(if timed_out {
                        Error::ConnectionReadTimeout
                    } else {
                        Error::ConnectionTerminated
                    })
                    .await;
                    return None;
                }
            }
        }
    }

    async fn fail_body(&self, body: body::BodySender, error: ClientError) {
        if let ClientError::BodyTooLarge(_) = error {
            tracing::warn!(route = %self.label, address = %self.backend.endpoint, limit = self.limits.max_body, "outgoing HTTP: response body exceeds max_backend_bytes");
        }
        body.fail(error.into()).await;
    }
}

/// Writes and flushes (a TLS stream may hold back the last record).
async fn write_all(stream: &mut BackendStream, bytes: &[u8]) -> Result<(), Error> {
    let written = async {
        stream.write_all(bytes).await?;
        stream.flush().await
    };
    written.await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::TimedOut {
            Error::ConnectionWriteTimeout
        } else {
            Error::ConnectionTerminated
        }
    })
}

/// Sends a streamed request body as chunks, or raw when the guest gave a
/// content-length (wasi-http checks that the length is right).
/// The body's first bytes; `None` if it has none.
async fn first_data(body: &mut WasiBody) -> Result<Option<Bytes>, Error> {
    if http_body::Body::is_end_stream(body) {
        return Ok(None);
    }
    while let Some(frame) = body.frame().await {
        match frame?.into_data() {
            Ok(data) if !data.is_empty() => return Ok(Some(data)),
            // Trailers are not sent; empty data says nothing.
            _ => continue,
        }
    }
    Ok(None)
}

/// Sends `first` and the rest of the body.
async fn send_body(stream: &mut BackendStream, first: Bytes, mut rest: WasiBody, chunked: bool) -> Result<(), Error> {
    let mut framed = Vec::new();
    let mut next = Some(first);
    loop {
        let data = match next.take() {
            Some(data) => data,
            None => match rest.frame().await {
                None => break,
                Some(frame) => match frame?.into_data() {
                    Ok(data) => data,
                    Err(_) => continue,
                },
            },
        };
        if chunked {
            framed.clear();
            crate::http::encode::write_chunk(&mut framed, &data);
            write_all(stream, &framed).await?;
        } else {
            write_all(stream, &data).await?;
        }
    }
    if chunked {
        write_all(stream, client::LAST_CHUNK).await?;
    }
    Ok(())
}

/// Reads until the response head is complete: the head, and the body
/// bytes read with it.
async fn read_response_head(stream: &mut BackendStream, timeout: Duration) -> Result<(ResponseHead, Vec<u8>), Error> {
    stream.set_read_timeout(Some(timeout));
    let mut input = Vec::with_capacity(4096);
    let mut buffer = vec![0; 16 << 10];
    loop {
        let n = stream.read(&mut buffer).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::TimedOut {
                Error::ConnectionReadTimeout
            } else {
                Error::ConnectionTerminated
            }
        })?;
        if n == 0 {
            return Err(Error::ConnectionTerminated);
        }
        input.extend_from_slice(&buffer[..n]);
        if let Some(head) = client::take_response_head(&mut input)? {
            return Ok((head, input));
        }
    }
}

/// What the guest sees when a backend's response cannot be read.
impl From<ClientError> for Error {
    fn from(error: ClientError) -> Error {
        match error {
            ClientError::Protocol => Error::HttpProtocolError,
            ClientError::Upgrade => Error::HttpUpgradeFailed,
            ClientError::TransferCoding(coding) => Error::HttpResponseTransferCoding(Some(coding)),
            ClientError::HeadTooLarge => Error::HttpResponseHeaderSectionSize(None),
            ClientError::BodyTooLarge(received) => Error::HttpResponseBodySize(Some(received)),
            ClientError::Incomplete => Error::HttpResponseIncomplete,
        }
    }
}
