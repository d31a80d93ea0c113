//! Response serialization. The server owns the framing: whatever a handler
//! put in `headers`, the bytes written carry exactly one `Content-Length`
//! (none where the status forbids a body) and one `Connection` decision.

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
        &response.body,
        meta,
    );
}

/// The writer behind [`write_response`], on borrowed parts so that routes
/// with a fixed answer need not build a `Response` per request.
pub fn write_parts(
    out: &mut Vec<u8>,
    status: u16,
    reason: &[u8],
    headers: &[(Vec<u8>, Vec<u8>)],
    body: &[u8],
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
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    let with_body = status_has_body(status);
    if with_body {
        let mut len_buf = itoa::Buffer::new();
        out.extend_from_slice(b"Content-Length: ");
        out.extend_from_slice(len_buf.format(body.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !meta.keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if with_body && !meta.head_only {
        out.extend_from_slice(body);
    }
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
