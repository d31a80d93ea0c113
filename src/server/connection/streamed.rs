//! A request to a component, streamed both ways: the request body goes to
//! the guest as it arrives (within the route's `max_body_bytes`) while the
//! response goes to the client as the guest writes it. Each direction has
//! a bounded buffer, so a slow guest holds back the client's upload and a
//! slow client holds back the guest's writes; a 100 MiB body passes through
//! in a few hundred KiB of memory.
//!
//! Framing of the answer: the guest's `content-length` if it set one, else
//! chunked (which also carries its trailers), else, for HTTP/1.0, until
//! close. A guest that fails after the head went out gets its body cut
//! short and the connection closed: the client sees an incomplete message,
//! never a wrong one.

use std::cell::Cell;
use std::io;
use std::pin::pin;
use std::task::Poll;
use std::time::Instant;

use bytes::Bytes;
use futures_lite::{AsyncReadExt, AsyncWriteExt};

use super::duplex::Duplex;
use super::{Connection, ExtraHeaders, Next, RoutedRequest, next};
use crate::http::encode::{BodyFraming, ResponseMeta, has_body, write_chunk, write_last_chunk, write_parts};
use crate::http::{self, Decoded, Decoder, HttpError, Request, Version};
use crate::wasm::{Answer, BodyEnd, BodyPart, BodySender, Exchange, body_channel};

/// How receiving the request body ended.
enum Received {
    /// All of it arrived (and went to the guest, unless it stopped reading).
    Complete,
    /// The client sent something wrong, too much or too slowly.
    Refused(HttpError),
    /// The client went away.
    Gone,
}

/// How sending the response ended.
enum Sent {
    /// Whole and properly framed; `reusable` when framing allows another
    /// request on the connection.
    Complete { reusable: bool },
    /// Cut short (guest failure): the connection must close.
    Truncated,
}

impl Connection<'_> {
    /// Runs one exchange with a guest that streams. `body_complete`: the
    /// whole body is already in `self.request` (else it is still arriving).
    pub(super) async fn stream_exchange(&mut self, routed: RoutedRequest<'_>, body_complete: bool) -> io::Result<Next> {
        let route = routed.route;
        let keep_alive = self.request.keep_alive && !self.shard.drain.draining();
        let limit = route.max_body_bytes;
        let declared = self
            .request
            .header(b"content-length")
            .and_then(|v| std::str::from_utf8(v).ok()?.parse::<usize>().ok());
        if declared.is_some_and(|n| n > limit) || self.request.body.len() > limit {
            tracing::info!(route = %route.name, limit, "413: request body exceeds the route's max_body_bytes");
            self.answer(Some(route), &http::answers::canned(413), false, false, None);
            return Ok(Next::Close);
        }

        let (body, guest_body) = body_channel();
        let handled = routed.pool.handle(&mut self.request, Some(guest_body)).await;
        let response = match handled.answer {
            Ok(Answer::Streamed(exchange)) => {
                let body = Some(Upload {
                    body,
                    complete: body_complete,
                });
                return self.relay(routed, exchange, body, keep_alive).await;
            }
            Ok(Answer::Whole(response)) => response,
            Err(e) => http::answers::canned(e.status()),
        };
        // The body was not read: unless it is all here, close.
        let keep_alive = keep_alive && body_complete;
        self.answer(Some(route), &response, routed.head_only, keep_alive, handled.fuel_used);
        Ok(next(keep_alive))
    }

    /// Streams a guest's answer to the client while the request body, if
    /// the guest takes it as a stream (`upload`), goes to the guest.
    pub(super) async fn relay(
        &mut self,
        routed: RoutedRequest<'_>,
        mut exchange: Exchange,
        upload: Option<Upload>,
        keep_alive: bool,
    ) -> io::Result<Next> {
        let shard = self.shard;
        let body_complete = upload.as_ref().is_none_or(|u| u.complete);
        if !body_complete && self.decoder.take_continue() {
            self.output.extend_from_slice(http::answers::CONTINUE);
        }

        let date = shard.date.now();
        let version = self.request.version;
        let extra = ExtraHeaders::new(shard, version, keep_alive);
        let meta = ResponseMeta {
            date: &date,
            head_only: routed.head_only,
            keep_alive,
            extra_headers: extra.as_slice(),
        };
        let limit = routed.route.max_body_bytes;
        // The status of the head once written.
        let head_sent = Cell::new(None);
        let first = Bytes::from(std::mem::take(&mut self.request.body));
        let (received, sent) = {
            let Connection {
                stream,
                input,
                start,
                end,
                decoder,
                request,
                deadline,
                output,
                sent: bytes_sent,
                ..
            } = self;
            let deadline = deadline.unwrap_or_else(Instant::now);
            let stream: &Duplex = stream;
            let mut receiving = pin!(async move {
                let Some(Upload { body, .. }) = upload else {
                    return Received::Complete;
                };
                if !first.is_empty() {
                    body.send(first.clone()).await;
                }
                if body_complete {
                    return Received::Complete;
                }
                let mut inbound = Inbound {
                    stream,
                    input,
                    start,
                    end,
                    decoder,
                    request,
                    deadline,
                    received: first.len(),
                    limit,
                };
                inbound.receive(body).await
            });
            let mut out = Output {
                stream,
                buffer: output,
                sent: bytes_sent,
                route: &routed.route.name,
            };
            let mut sending = pin!(send_response(&mut out, &mut exchange, &meta, version, &head_sent));

            let mut received = None;
            let mut sent = None;
            std::future::poll_fn(|cx| {
                if received.is_none()
                    && let Poll::Ready(r) = receiving.as_mut().poll(cx)
                {
                    received = Some(r);
                }
                if matches!(received, Some(Received::Gone | Received::Refused(_))) {
                    return Poll::Ready(());
                }
                if sent.is_none()
                    && let Poll::Ready(s) = sending.as_mut().poll(cx)
                {
                    sent = Some(s);
                }
                match (&received, &sent) {
                    (_, Some(Err(_) | Ok(Sent::Truncated))) | (Some(_), Some(_)) => Poll::Ready(()),
                    _ => Poll::Pending,
                }
            })
            .await;
            (received, sent)
        };
        self.deadline = None;
        self.request.body.clear();
        if let Some(status) = head_sent.get() {
            self.record(Some(routed.route), status, None);
        }

        match (received, sent) {
            (Some(Received::Gone), _) => Ok(Next::Close),
            (Some(Received::Refused(error)), _) => {
                if head_sent.get().is_none() {
                    self.protocol_error(error);
                }
                Ok(Next::Close)
            }
            (_, Some(Err(e))) => Err(e),
            (Some(Received::Complete), Some(Ok(Sent::Complete { reusable }))) => {
                exchange.finish();
                Ok(next(keep_alive && reusable))
            }
            _ => Ok(Next::Close),
        }
    }
}

/// The request body's way to a guest that streams it.
pub(super) struct Upload {
    body: BodySender,
    /// The whole body is already in the request (else it is still arriving).
    complete: bool,
}

/// The receiving half: decodes the rest of the body from the socket and
/// hands it to the guest.
struct Inbound<'a> {
    stream: &'a Duplex,
    input: &'a mut Vec<u8>,
    start: &'a mut usize,
    end: &'a mut usize,
    decoder: &'a mut Decoder,
    request: &'a mut Request,
    /// When the whole body must have arrived.
    deadline: Instant,
    received: usize,
    limit: usize,
}

impl Inbound<'_> {
    async fn receive(&mut self, body: BodySender) -> Received {
        let mut body = Some(body);
        loop {
            let decoded = self.decoder.decode(&self.input[*self.start..*self.end], self.request);
            let complete = match decoded {
                Err(e) => return end_body(body, BodyEnd::Refused, Received::Refused(e)).await,
                Ok((used, state)) => {
                    *self.start += used;
                    state == Decoded::Complete
                }
            };
            if !self.request.body.is_empty() {
                self.received += self.request.body.len();
                if self.received > self.limit {
                    return end_body(body, BodyEnd::Refused, Received::Refused(HttpError::ContentTooLarge)).await;
                }
                let chunk = Bytes::from(std::mem::take(&mut self.request.body));
                // A guest that stops reading drops its end: the rest of the
                // body is still read (and dropped), to keep the connection.
                if let Some(sender) = &body
                    && !sender.send(chunk).await
                {
                    body = None;
                }
            }
            if complete {
                return Received::Complete;
            }
            super::compact(self.input, self.start, self.end);
            let remaining = self.deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return end_body(body, BodyEnd::Refused, Received::Refused(HttpError::Timeout)).await;
            }
            let _ = self.stream.socket().set_read_timeout(Some(remaining));
            let mut reader = self.stream;
            match reader.read(&mut self.input[*self.end..]).await {
                Ok(0) => return end_body(body, BodyEnd::ClientGone, Received::Gone).await,
                Ok(n) => *self.end += n,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    return end_body(body, BodyEnd::Refused, Received::Refused(HttpError::Timeout)).await;
                }
                Err(_) => return end_body(body, BodyEnd::ClientGone, Received::Gone).await,
            }
        }
    }
}

/// Tells the guest why its request body ended early (if it still reads it).
async fn end_body(body: Option<BodySender>, why: BodyEnd, received: Received) -> Received {
    if let Some(body) = body {
        body.end_early(why).await;
    }
    received
}

/// The sending half: waits for the guest's response head, then streams its
/// body. Output collects in the connection's buffer (after any earlier
/// answers of the batch) and goes out whenever the guest makes us wait, or
/// the buffer is full: a small answer is one write, a large one streams, and
/// a client that does not read stalls the guest, not our memory. What is
/// left at the end goes out with the rest of the batch.
async fn send_response(
    out: &mut Output<'_>,
    exchange: &mut Exchange,
    meta: &ResponseMeta<'_>,
    version: Version,
    head_sent: &Cell<Option<u16>>,
) -> io::Result<Sent> {
    let response = match out.when_ready(exchange.response()).await? {
        Ok(response) => response,
        Err(e) => {
            let meta = ResponseMeta {
                keep_alive: false,
                ..*meta
            };
            let answer = http::answers::canned(e.status());
            http::write_response(out.buffer, &answer, &meta);
            head_sent.set(Some(answer.status));
            return Ok(Sent::Complete { reusable: false });
        }
    };
    let framing = match response.length {
        Some(n) => BodyFraming::Length(n),
        None if version == Version::Http11 => BodyFraming::Chunked,
        None => BodyFraming::UntilClose,
    };
    let until_close = matches!(framing, BodyFraming::UntilClose);
    let meta = ResponseMeta {
        keep_alive: meta.keep_alive && !until_close,
        ..*meta
    };
    write_parts(out.buffer, response.status, b"", &response.headers, framing, &meta);
    head_sent.set(Some(response.status));
    if meta.head_only || !has_body(response.status) {
        return Ok(Sent::Complete { reusable: true });
    }

    let chunked = matches!(framing, BodyFraming::Chunked);
    let mut body = response.body;
    let mut trailers = Vec::new();
    let mut written: u64 = 0;
    loop {
        match out.when_ready(body.next()).await? {
            None if exchange.guest_failed().await => {
                return out
                    .cut_short(format_args!("the guest failed before finishing it"))
                    .await;
            }
            // wasi-http holds a guest to its content-length; this only
            // keeps a body that ended early from passing as complete.
            None if matches!(framing, BodyFraming::Length(n) if n != written) => {
                return out
                    .cut_short(format_args!(
                        "it ended after {written} bytes, before its content-length"
                    ))
                    .await;
            }
            None => break,
            Some(Ok(BodyPart::Data(data))) if chunked => write_chunk(out.buffer, &data),
            Some(Ok(BodyPart::Data(data))) => {
                written += data.len() as u64;
                out.buffer.extend_from_slice(&data);
            }
            Some(Ok(BodyPart::Trailers(fields))) => trailers = fields,
            Some(Err(e)) => {
                return out
                    .cut_short(format_args!("the guest failed while writing it: {e}"))
                    .await;
            }
        }
        if out.buffer.len() >= super::FLUSH_AT {
            out.flush().await?;
        }
    }
    if chunked {
        write_last_chunk(out.buffer, &trailers);
    }
    Ok(Sent::Complete { reusable: !until_close })
}

/// The connection's output buffer and the socket it drains to.
struct Output<'a> {
    stream: &'a Duplex,
    buffer: &'a mut Vec<u8>,
    /// The connection's count of bytes written.
    sent: &'a mut u64,
    /// The route's name, for logs.
    route: &'a str,
}

impl Output<'_> {
    async fn flush(&mut self) -> io::Result<()> {
        if !self.buffer.is_empty() {
            let mut writer = self.stream;
            writer.write_all(self.buffer).await?;
            *self.sent += self.buffer.len() as u64;
            self.buffer.clear();
        }
        Ok(())
    }

    /// Ends the response where it stands: what was written goes out, the
    /// connection then closes, so the client sees an incomplete message.
    async fn cut_short(&mut self, why: std::fmt::Arguments<'_>) -> io::Result<Sent> {
        tracing::warn!(route = %self.route, "response body cut short: {why}");
        self.flush().await?;
        Ok(Sent::Truncated)
    }

    /// Awaits `next`, writing out what is buffered first if it is not
    /// ready at once (so the client is never kept waiting on bytes we hold).
    async fn when_ready<F: std::future::Future>(&mut self, next: F) -> io::Result<F::Output> {
        let mut next = pin!(next);
        if let Some(value) = futures_lite::future::poll_once(next.as_mut()).await {
            return Ok(value);
        }
        self.flush().await?;
        Ok(next.await)
    }
}
