//! Every answer the server gives on its own behalf, and the one mapping from
//! a protocol error to its status.

use super::encode::{Response, ResponseMeta, write_response};

/// Why a request could not be decoded. Each maps to one status, and each
/// closes the connection: once framing is in doubt, nothing after it on the
/// connection can be trusted to be the next request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    #[error("request line too long")]
    UriTooLong,
    #[error("request head too large")]
    HeaderFieldsTooLarge,
    #[error("request body too large")]
    ContentTooLarge,
    #[error("not implemented: {0}")]
    NotImplemented(&'static str),
    #[error("HTTP version not supported")]
    VersionNotSupported,
    #[error("unsupported expectation")]
    ExpectationFailed,
    #[error("request not received in time")]
    Timeout,
}

impl HttpError {
    pub fn status(self) -> u16 {
        match self {
            HttpError::BadRequest(_) => 400,
            HttpError::Timeout => 408,
            HttpError::ContentTooLarge => 413,
            HttpError::UriTooLong => 414,
            HttpError::ExpectationFailed => 417,
            HttpError::HeaderFieldsTooLarge => 431,
            HttpError::NotImplemented(_) => 501,
            HttpError::VersionNotSupported => 505,
        }
    }
}

/// A short plain-text answer: the status and its reason as the body.
pub fn canned(status: u16) -> Response {
    let reason = super::canonical_reason(status);
    let mut body = Vec::with_capacity(reason.len() + 1);
    body.extend_from_slice(reason.as_bytes());
    body.push(b'\n');
    Response {
        status,
        reason: Vec::new(),
        headers: vec![(b"Content-Type".to_vec(), b"text/plain; charset=utf-8".to_vec())],
        body,
    }
}

/// `405 Method Not Allowed` with the `Allow` header RFC 9110 §15.5.6 requires.
pub fn method_not_allowed(allow: &str) -> Response {
    let mut response = canned(405);
    response.headers.push((b"Allow".to_vec(), allow.as_bytes().to_vec()));
    response
}

/// Writes the answer to a protocol error; the connection closes after it.
pub fn write_http_error(out: &mut Vec<u8>, error: HttpError, date: &[u8]) {
    let meta = ResponseMeta {
        date,
        head_only: false,
        keep_alive: false,
        extra_headers: &[],
    };
    write_response(out, &canned(error.status()), &meta);
}

/// `100 Continue`, sent when a client waits for it before its body.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
