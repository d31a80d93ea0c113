//! Response serialization. The server owns the framing: whatever a handler
//! put in `headers`, the bytes written carry exactly one `Content-Length`
//! (none where the status forbids a body) and one `Connection` decision.

use std::io::Write;

use super::Version;

/// A response as a handler produced it. `headers` must not contain framing
/// headers (`Content-Length`, `Transfer-Encoding`, `Connection`): handlers'
/// headers are filtered before they get here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Empty means the canonical reason for `status`.
    pub reason: Vec<u8>,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: Vec<u8>,
}

/// What the connection knows about how to write a response.
pub struct ResponseMeta<'a> {
    /// The cached 29-byte IMF-fixdate.
    pub date: &'a [u8],
    /// HEAD: headers as for GET, no body bytes.
    pub head_only: bool,
    pub keep_alive: bool,
    /// Headers the server adds (`Connection: keep-alive` for HTTP/1.0,
    /// the optional shard header).
    pub extra_headers: &'a [(&'a [u8], &'a [u8])],
}

/// Headers that describe the message framing; only the server writes them.
pub fn is_framing_header(name: &[u8]) -> bool {
    [
        &b"content-length"[..],
        b"transfer-encoding",
        b"connection",
        b"keep-alive",
        b"upgrade",
        b"te",
        b"trailer",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

/// Statuses that never carry a body (RFC 9110 §6.4.1), so no Content-Length.
fn status_has_body(status: u16) -> bool {
    !(status == 204 || status == 304 || (100..200).contains(&status))
}

pub fn write_response(out: &mut Vec<u8>, response: &Response, meta: &ResponseMeta<'_>) {
    write_parts(
        out,
        response.status,
        &response.reason,
        &response.headers,
        BodyFraming::Whole(&response.body),
        meta,
    );
}

/// How the body after a head is framed.
#[derive(Clone, Copy, Debug)]
pub enum BodyFraming<'a> {
    /// The whole body, written with the head.
    Whole(&'a [u8]),
    /// A streamed body of a known length (the handler declared it).
    Length(u64),
    /// A streamed body of unknown length: chunked, which also carries
    /// trailers. HTTP/1.1 only.
    Chunked,
    /// A streamed body of unknown length to an HTTP/1.0 client: ends when
    /// the connection closes (`meta.keep_alive` must be false).
    UntilClose,
}

/// The writer behind [`write_response`], on borrowed parts so that routes
/// with a fixed answer need not build a `Response` per request.
pub fn write_parts(
    out: &mut Vec<u8>,
    status: u16,
    reason: &[u8],
    headers: &[(Vec<u8>, Vec<u8>)],
    body: BodyFraming<'_>,
    meta: &ResponseMeta<'_>,
) {
    let mut status_buf = itoa::Buffer::new();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status_buf.format(status).as_bytes());
    out.push(b' ');
    if reason.is_empty() {
        out.extend_from_slice(super::canonical_reason(status).as_bytes());
    } else {
        out.extend_from_slice(reason);
    }
    out.extend_from_slice(b"\r\n");

    let has = |wanted: &[u8]| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(wanted));
    if !has(b"server") {
        out.extend_from_slice(b"Server: serverless-wasm\r\n");
    }
    if !has(b"date") {
        out.extend_from_slice(b"Date: ");
        out.extend_from_slice(meta.date);
        out.extend_from_slice(b"\r\n");
    }
    let handler_headers = headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice()));
    for (name, value) in handler_headers.chain(meta.extra_headers.iter().copied()) {
        write_field(out, name, value);
    }
    let with_body = status_has_body(status);
    let mut len_buf = itoa::Buffer::new();
    match body {
        _ if !with_body => {}
        BodyFraming::Whole(bytes) => {
            write_field(out, b"Content-Length", len_buf.format(bytes.len()).as_bytes());
        }
        BodyFraming::Length(n) => write_field(out, b"Content-Length", len_buf.format(n).as_bytes()),
        BodyFraming::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        BodyFraming::UntilClose => {}
    }
    if !meta.keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if let BodyFraming::Whole(bytes) = body
        && with_body
        && !meta.head_only
    {
        out.extend_from_slice(bytes);
    }
}

/// Whether a response with this status carries a body at all.
pub fn has_body(status: u16) -> bool {
    status_has_body(status)
}

fn write_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// One chunk of a chunked body (empty data writes nothing: an empty chunk
/// would end the body).
pub fn write_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{:x}\r\n", data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The last chunk, with the trailer fields.
pub fn write_last_chunk(out: &mut Vec<u8>, trailers: &[(Vec<u8>, Vec<u8>)]) {
    out.extend_from_slice(b"0\r\n");
    for (name, value) in trailers {
        write_field(out, name, value);
    }
    out.extend_from_slice(b"\r\n");
}

/// Keep-alive for a response to an HTTP/1.0 request must be announced.
pub fn announces_keep_alive(version: Version, keep_alive: bool) -> bool {
    version == Version::Http10 && keep_alive
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(head_only: bool, keep_alive: bool) -> ResponseMeta<'static> {
        ResponseMeta {
            date: b"Tue, 24 Nov 2026 10:00:00 GMT",
            head_only,
            keep_alive,
            extra_headers: &[],
        }
    }

    #[test]
    fn writes_one_content_length() {
        let response = Response {
            status: 200,
            reason: b"Ok".to_vec(),
            headers: vec![(b"X-A".to_vec(), b"1".to_vec())],
            body: b"hello".to_vec(),
        };
        let mut out = Vec::new();
        write_response(&mut out, &response, &meta(false, true));
        assert_eq!(
            out,
            b"HTTP/1.1 200 Ok\r\nServer: serverless-wasm\r\nDate: Tue, 24 Nov 2026 10:00:00 GMT\r\nX-A: 1\r\nContent-Length: 5\r\n\r\nhello"
        );
    }

    #[test]
    fn chunked_head_chunks_and_trailers() {
        let mut out = Vec::new();
        let headers = vec![(b"X-A".to_vec(), b"1".to_vec())];
        write_parts(&mut out, 200, b"", &headers, BodyFraming::Chunked, &meta(false, true));
        write_chunk(&mut out, b"hello");
        write_chunk(&mut out, b"");
        write_last_chunk(&mut out, &[(b"x-sum".to_vec(), b"9".to_vec())]);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("X-A: 1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nx-sum: 9\r\n\r\n"));
        assert!(!text.contains("Content-Length"));
    }

    #[test]
    fn head_and_no_body_statuses() {
        let response = Response {
            status: 204,
            body: b"ignored".to_vec(),
            ..Response::default()
        };
        let mut out = Vec::new();
        write_response(&mut out, &response, &meta(false, false));
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 204 No Content\r\n"));
        assert!(!text.contains("Content-Length"));
        assert!(text.ends_with("Connection: close\r\n\r\n"));

        let mut out = Vec::new();
        let ok = Response {
            status: 200,
            body: b"abc".to_vec(),
            ..Response::default()
        };
        write_response(&mut out, &ok, &meta(true, true));
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with("Content-Length: 3\r\n\r\n"));
    }
}
