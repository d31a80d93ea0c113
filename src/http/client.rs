//! The outbound HTTP/1.1 client's wire format, sans-IO: the head a guest's
//! request goes out with, the backend's response head, and the framing of
//! the response body.
//!
//! `wasm::component::outbound` owns everything else (the allow-list, the
//! limits and timeouts, the sockets and the per-shard keep-alive pool): it
//! writes what [`write_request_head`] produced, feeds what it reads to
//! [`take_response_head`] and then to a [`ResponseBody`], and maps a
//! [`ClientError`] to the error the guest sees.
//!
//! A chunked response body is decoded by the same state machine as a
//! client's chunked request body ([`ChunkedBody`]), with the response head
//! limit bounding its trailers.

use super::FramingLimits;
use super::chunked::ChunkedBody;

/// Largest response head from a backend, and largest trailer section.
pub const MAX_RESPONSE_HEAD: usize = 64 << 10;

/// Header lines a response head may have (httparse needs a fixed array).
const MAX_RESPONSE_HEADERS: usize = 128;

/// The end of a chunked request body: the last chunk, no trailers.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Why a backend's response could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// A malformed response head, conflicting `Content-Length`s, or a
    /// chunked body that breaks the coding or its limits.
    Protocol,
    /// `101 Switching Protocols`: no upgrade was asked for.
    Upgrade,
    /// A `Transfer-Encoding` other than `chunked`; the value as sent.
    TransferCoding(String),
    /// No complete head within [`MAX_RESPONSE_HEAD`].
    HeadTooLarge,
    /// The body grew past its limit; the bytes received so far.
    BodyTooLarge(u64),
    /// The connection ended before the body did.
    Incomplete,
}

/// The request line and headers, and whether the body goes chunked (it
/// has one and no `content-length`). The headers are written as given:
/// wasi-http has already added `host` (from the URI's authority) and
/// refused hop-by-hop headers from the guest.
pub fn write_request_head(parts: &http::request::Parts, has_body: bool) -> (Vec<u8>, bool) {
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(parts.method.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(target.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\n");
    let mut has_length = false;
    for (name, value) in &parts.headers {
        has_length |= name == http::header::CONTENT_LENGTH;
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    let chunked = has_body && !has_length;
    if chunked {
        head.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    // An empty body of a method that usually has one is said to be empty
    // (some servers answer 411 to a POST without a length).
    let expects_body = matches!(
        parts.method,
        http::Method::POST | http::Method::PUT | http::Method::PATCH
    );
    if !has_body && !has_length && expects_body {
        head.extend_from_slice(b"content-length: 0\r\n");
    }
    head.extend_from_slice(b"\r\n");
    (head, chunked)
}

/// A backend's final response head.
#[derive(Debug)]
pub struct ResponseHead {
    /// Status and headers (framing headers included, as the backend sent them).
    pub response: http::Response<()>,
    pub framing: ResponseFraming,
    /// Whether the connection may carry another request once the body is read.
    pub keep_alive: bool,
}

/// How a backend's response body is delimited.
#[derive(Debug)]
pub enum ResponseFraming {
    /// No body (204, 304, or the answer to HEAD).
    Empty,
    Length(u64),
    Chunked(ChunkedBody),
    /// Ends when the backend closes the connection.
    UntilClose,
}

/// Takes the final response head off the front of `input` (what has been
/// read from the backend so far), skipping any 1xx interim responses.
/// `None`: more bytes are needed. What stays in `input` after a head is
/// the start of its body.
pub fn take_response_head(input: &mut Vec<u8>) -> Result<Option<ResponseHead>, ClientError> {
    loop {
        match parse_response_head(input)? {
            Some((used, Interim::Skip)) => {
                input.drain(..used);
            }
            Some((used, Interim::Final(head))) => {
                input.drain(..used);
                return Ok(Some(head));
            }
            None if input.len() > MAX_RESPONSE_HEAD => return Err(ClientError::HeadTooLarge),
            None => return Ok(None),
        }
    }
}

enum Interim {
    /// A 1xx informational response: skipped.
    Skip,
    Final(ResponseHead),
}

fn parse_response_head(input: &[u8]) -> Result<Option<(usize, Interim)>, ClientError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut parsed = httparse::Response::new(&mut headers);
    let used = match parsed.parse(input) {
        Ok(httparse::Status::Complete(used)) => used,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(ClientError::Protocol),
    };
    let status = parsed.code.unwrap_or(0);
    if (100..200).contains(&status) {
        if status == 101 {
            return Err(ClientError::Upgrade);
        }
        return Ok(Some((used, Interim::Skip)));
    }
    let mut response = http::Response::builder().status(status);
    let mut framing = ResponseFraming::UntilClose;
    let mut keep_alive = parsed.version == Some(1);
    for header in parsed.headers.iter() {
        let value = header.value;
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            if !value.eq_ignore_ascii_case(b"chunked") {
                return Err(ClientError::TransferCoding(String::from_utf8_lossy(value).into()));
            }
            framing = ResponseFraming::Chunked(ChunkedBody::default());
            continue;
        }
        if header.name.eq_ignore_ascii_case("content-length") {
            let length = std::str::from_utf8(value).ok().and_then(|v| v.trim().parse().ok());
            match (length, &framing) {
                (Some(n), ResponseFraming::UntilClose) => framing = ResponseFraming::Length(n),
                (Some(n), ResponseFraming::Length(m)) if n == *m => {}
                (_, ResponseFraming::Chunked(_)) => {}
                _ => return Err(ClientError::Protocol),
            }
        }
        if header.name.eq_ignore_ascii_case("connection") {
            let value = String::from_utf8_lossy(value).to_ascii_lowercase();
            if value.contains("close") {
                keep_alive = false;
            } else if value.contains("keep-alive") {
                keep_alive = true;
            }
        }
        response = response.header(header.name, value);
    }
    if status == 204 || status == 304 {
        framing = ResponseFraming::Empty;
    }
    if matches!(framing, ResponseFraming::UntilClose) {
        keep_alive = false;
    }
    let response = response.body(()).map_err(|_| ClientError::Protocol)?;
    Ok(Some((
        used,
        Interim::Final(ResponseHead {
            response,
            framing,
            keep_alive,
        }),
    )))
}

/// A response body being decoded, within a size limit.
#[derive(Debug)]
pub struct ResponseBody {
    framing: ResponseFraming,
    /// Bounds a chunked body's trailers and chunk sizes.
    chunk_limits: FramingLimits,
    received: u64,
    max_body: u64,
}

impl ResponseBody {
    /// The body `framing` announced, to a request with `method`: the
    /// answer to HEAD has none, whatever its headers say.
    pub fn new(framing: ResponseFraming, method: &http::Method, max_body: u64) -> ResponseBody {
        let framing = if method == http::Method::HEAD {
            ResponseFraming::Empty
        } else {
            framing
        };
        ResponseBody {
            framing,
            chunk_limits: FramingLimits {
                max_request_line: 0,
                max_head: MAX_RESPONSE_HEAD,
                max_body: usize::try_from(max_body).unwrap_or(usize::MAX),
            },
            received: 0,
            max_body,
        }
    }

    /// Moves the body bytes at the front of `input` to the end of `data`.
    /// Returns whether the body is complete; bytes after its end stay in
    /// `input`. On an error, what this call decoded is not to be used.
    ///
    /// A chunk announcing more than the limit is refused by the chunked
    /// decoder before its bytes arrive, as [`ClientError::Protocol`]; a
    /// body of another framing is cut off once it has passed the limit,
    /// as [`ClientError::BodyTooLarge`].
    pub fn decode(&mut self, input: &mut Vec<u8>, data: &mut Vec<u8>) -> Result<bool, ClientError> {
        let before = data.len();
        let done = match &mut self.framing {
            ResponseFraming::Empty => true,
            ResponseFraming::Length(remaining) => {
                let take = input.len().min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                data.extend(input.drain(..take));
                *remaining -= take as u64;
                *remaining == 0
            }
            ResponseFraming::Chunked(chunked) => {
                let (used, done) = chunked
                    .decode(input, data, &self.chunk_limits)
                    .map_err(|_| ClientError::Protocol)?;
                input.drain(..used);
                done
            }
            ResponseFraming::UntilClose => {
                data.append(input);
                false
            }
        };
        self.received += (data.len() - before) as u64;
        if self.received > self.max_body {
            return Err(ClientError::BodyTooLarge(self.received));
        }
        Ok(done)
    }

    /// The backend closed the connection before [`decode`](Self::decode)
    /// reported the end: whether that ends the body or cuts it short.
    pub fn end_of_stream(&self) -> Result<(), ClientError> {
        match self.framing {
            ResponseFraming::UntilClose => Ok(()),
            _ => Err(ClientError::Incomplete),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut request = http::Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap().into_parts().0
    }

    fn head_text(parts: &http::request::Parts, has_body: bool) -> (String, bool) {
        let (head, chunked) = write_request_head(parts, has_body);
        (String::from_utf8(head).unwrap(), chunked)
    }

    #[test]
    fn request_head_carries_host_and_target() {
        let get = parts(
            "GET",
            "http://backend:8080/items?id=7",
            &[("host", "backend:8080"), ("x-a", "1")],
        );
        assert_eq!(
            head_text(&get, false),
            (
                "GET /items?id=7 HTTP/1.1\r\nhost: backend:8080\r\nx-a: 1\r\n\r\n".into(),
                false
            )
        );
        let root = parts("DELETE", "http://backend", &[("host", "backend")]);
        assert_eq!(head_text(&root, false).0, "DELETE / HTTP/1.1\r\nhost: backend\r\n\r\n");
    }

    #[test]
    fn request_head_frames_the_body() {
        let streamed = parts("POST", "http://b/p", &[("host", "b")]);
        assert_eq!(
            head_text(&streamed, true),
            (
                "POST /p HTTP/1.1\r\nhost: b\r\ntransfer-encoding: chunked\r\n\r\n".into(),
                true
            )
        );
        let sized = parts("PUT", "http://b/p", &[("host", "b"), ("Content-Length", "5")]);
        assert_eq!(
            head_text(&sized, true),
            ("PUT /p HTTP/1.1\r\nhost: b\r\ncontent-length: 5\r\n\r\n".into(), false)
        );
        // No body: no framing header for a GET; a POST says its body is
        // empty (some servers answer 411 otherwise).
        let get = parts("GET", "http://b/p", &[("host", "b")]);
        assert_eq!(
            head_text(&get, false),
            ("GET /p HTTP/1.1\r\nhost: b\r\n\r\n".into(), false)
        );
        let empty = parts("POST", "http://b/p", &[("host", "b")]);
        assert_eq!(
            head_text(&empty, false),
            ("POST /p HTTP/1.1\r\nhost: b\r\ncontent-length: 0\r\n\r\n".into(), false)
        );
    }

    /// The head in `input` fed in pieces of `step` bytes: the head, and the
    /// bytes after it.
    fn take_split(input: &[u8], step: usize) -> Result<Option<(ResponseHead, Vec<u8>)>, ClientError> {
        let mut buf = Vec::new();
        let mut pieces = input.chunks(step.max(1));
        while let Some(piece) = pieces.next() {
            buf.extend_from_slice(piece);
            if let Some(head) = take_response_head(&mut buf)? {
                buf.extend(pieces.flatten());
                return Ok(Some((head, buf)));
            }
        }
        Ok(None)
    }

    fn take(input: &[u8]) -> (ResponseHead, Vec<u8>) {
        let whole = take_split(input, input.len()).unwrap().unwrap();
        for step in [1, 3, 7] {
            let (head, leftover) = take_split(input, step).unwrap().unwrap();
            assert_eq!(head.response.status(), whole.0.response.status());
            assert_eq!(leftover, whole.1, "split every {step} bytes");
        }
        whole
    }

    fn framing_of(head: &ResponseHead) -> String {
        match head.framing {
            ResponseFraming::Empty => "empty".into(),
            ResponseFraming::Length(n) => format!("length {n}"),
            ResponseFraming::Chunked(_) => "chunked".into(),
            ResponseFraming::UntilClose => "until close".into(),
        }
    }

    #[test]
    fn response_head_framing_and_keep_alive() {
        let cases: &[(&[u8], &str, bool)] = &[
            (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "length 5", true),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nContent-Length: 5\r\n\r\n",
                "length 5",
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                "chunked",
                true,
            ),
            // Transfer-Encoding wins over Content-Length, in either order.
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                "chunked",
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
                "chunked",
                true,
            ),
            (b"HTTP/1.1 200 OK\r\n\r\n", "until close", false),
            (b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", "empty", true),
            (b"HTTP/1.1 304 Not Modified\r\n\r\n", "empty", true),
            (
                b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                "length 0",
                false,
            ),
            (b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", "length 1", false),
            (
                b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\n",
                "length 1",
                true,
            ),
        ];
        for (input, framing, keep_alive) in cases {
            let (head, leftover) = take(input);
            let text = String::from_utf8_lossy(input);
            assert_eq!(framing_of(&head), *framing, "{text}");
            assert_eq!(head.keep_alive, *keep_alive, "{text}");
            assert!(leftover.is_empty());
        }
    }

    #[test]
    fn response_head_keeps_status_headers_and_following_bytes() {
        let input = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\nHTTP/1.1 201 Created\r\nX-A: 1\r\nContent-Length: 3\r\n\r\nabc";
        let (head, leftover) = take(input);
        assert_eq!(head.response.status(), 201);
        assert_eq!(head.response.headers()["x-a"], "1");
        assert_eq!(head.response.headers()["content-length"], "3");
        assert!(
            head.response.headers().get("link").is_none(),
            "interim headers are dropped"
        );
        assert_eq!(leftover, b"abc");
        let mut partial = b"HTTP/1.1 200 OK\r\nContent-Le".to_vec();
        assert_eq!(take_response_head(&mut partial).map(|h| h.is_some()), Ok(false));
    }

    fn refusal(input: &[u8]) -> ClientError {
        let whole = take_split(input, input.len()).expect_err("must be refused");
        assert_eq!(take_split(input, 1).expect_err("must be refused"), whole);
        whole
    }

    #[test]
    fn malformed_response_heads_are_refused() {
        use ClientError::*;
        let cases: &[(&[u8], ClientError)] = &[
            (b"HTTP/1.1 200 OK\r\nBad Name: v\r\n\r\n", Protocol),
            (b"HTTP/1.1 2x0 OK\r\n\r\n", Protocol),
            (b"SMTP ready\r\n\r\n", Protocol),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                Protocol,
            ),
            (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", Protocol),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n", Protocol),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                TransferCoding("gzip, chunked".into()),
            ),
            (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: ws\r\n\r\n", Upgrade),
        ];
        for (input, expected) in cases {
            assert_eq!(&refusal(input), expected, "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn an_oversized_response_head_is_refused() {
        let input = format!("HTTP/1.1 200 OK\r\nX-Big: {}", "a".repeat(MAX_RESPONSE_HEAD));
        let found = |bytes: &[u8]| take_response_head(&mut bytes.to_vec()).map(|h| h.is_some());
        assert_eq!(found(input.as_bytes()), Err(ClientError::HeadTooLarge));
        // Within the limit a partial head just waits for more.
        assert_eq!(found(&input.as_bytes()[..MAX_RESPONSE_HEAD]), Ok(false));
        // More header lines than httparse's array holds is malformed.
        let many: String = (0..=MAX_RESPONSE_HEADERS).map(|i| format!("h{i}: v\r\n")).collect();
        let input = format!("HTTP/1.1 200 OK\r\n{many}\r\n");
        assert_eq!(found(input.as_bytes()), Err(ClientError::Protocol));
    }

    /// A body fed in pieces of `step` bytes: the body and the bytes after
    /// it, or the first error; the input running out is the backend
    /// closing the connection.
    fn read_body(
        framing: fn() -> ResponseFraming,
        method: &http::Method,
        max_body: u64,
        input: &[u8],
        step: usize,
    ) -> Result<(Vec<u8>, Vec<u8>), ClientError> {
        let mut body = ResponseBody::new(framing(), method, max_body);
        let mut buf = Vec::new();
        let mut data = Vec::new();
        let mut pieces = input.chunks(step.max(1));
        loop {
            if body.decode(&mut buf, &mut data)? {
                buf.extend(pieces.flatten());
                return Ok((data, buf));
            }
            match pieces.next() {
                Some(piece) => buf.extend_from_slice(piece),
                None => return body.end_of_stream().map(|()| (data, buf)),
            }
        }
    }

    /// A GET's response body, fed whole and split at every point up to 7 bytes.
    fn body_of(
        framing: fn() -> ResponseFraming,
        max_body: u64,
        input: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), ClientError> {
        crate::http::same_when_split(input, |input, step| {
            read_body(framing, &http::Method::GET, max_body, input, step)
        })
    }

    fn chunked() -> ResponseFraming {
        ResponseFraming::Chunked(ChunkedBody::default())
    }

    #[test]
    fn content_length_body() {
        let five = || ResponseFraming::Length(5);
        assert_eq!(body_of(five, 100, b"hello"), Ok((b"hello".to_vec(), vec![])));
        assert_eq!(
            body_of(five, 100, b"helloHTTP"),
            Ok((b"hello".to_vec(), b"HTTP".to_vec()))
        );
        assert_eq!(body_of(|| ResponseFraming::Length(0), 100, b""), Ok((vec![], vec![])));
        assert_eq!(body_of(five, 100, b"hel"), Err(ClientError::Incomplete));
        assert_eq!(body_of(five, 4, b"hello"), Err(ClientError::BodyTooLarge(5)));
    }

    #[test]
    fn chunked_body_with_trailers() {
        let input = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 9\r\nX-More: 1\r\n\r\nnext";
        assert_eq!(
            body_of(chunked, 100, input),
            Ok((b"hello world".to_vec(), b"next".to_vec()))
        );
        assert_eq!(body_of(chunked, 100, b"5\r\nhello\r\n"), Err(ClientError::Incomplete));
        assert_eq!(
            body_of(chunked, 100, b"5\r\nhello\r\n0\r\nX: 1\r\n"),
            Err(ClientError::Incomplete)
        );
        assert_eq!(body_of(chunked, 100, b"5\r\nhelloX"), Err(ClientError::Protocol));
        assert_eq!(body_of(chunked, 100, b"zz\r\n"), Err(ClientError::Protocol));
        // A chunk announcing more than the limit: refused by the chunked decoder.
        assert_eq!(
            body_of(chunked, 4, b"5\r\nhello\r\n0\r\n\r\n"),
            Err(ClientError::Protocol)
        );
        let big_trailer = format!("0\r\nX: {}\r\n\r\n", "t".repeat(MAX_RESPONSE_HEAD));
        assert_eq!(
            read_body(chunked, &http::Method::GET, 100, big_trailer.as_bytes(), 4096),
            Err(ClientError::Protocol)
        );
    }

    #[test]
    fn until_close_body() {
        let until_close = || ResponseFraming::UntilClose;
        assert_eq!(
            body_of(until_close, 100, b"all of it"),
            Ok((b"all of it".to_vec(), vec![]))
        );
        assert_eq!(body_of(until_close, 100, b""), Ok((vec![], vec![])));
        assert_eq!(
            read_body(until_close, &http::Method::GET, 4, b"hello", 5),
            Err(ClientError::BodyTooLarge(5))
        );
    }

    #[test]
    fn no_body_after_head_or_empty_framing() {
        // The answer to HEAD announces a length but carries no body: what
        // follows is not read as one.
        let five = || ResponseFraming::Length(5);
        assert_eq!(
            read_body(five, &http::Method::HEAD, 100, b"next", 4),
            Ok((vec![], b"next".to_vec()))
        );
        assert_eq!(
            read_body(five, &http::Method::GET, 100, b"next!", 5),
            Ok((b"next!".to_vec(), vec![]))
        );
        assert_eq!(
            read_body(|| ResponseFraming::Empty, &http::Method::GET, 100, b"", 1),
            Ok((vec![], vec![]))
        );
    }
}
