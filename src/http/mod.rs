//! Sans-IO HTTP/1.1: request decoding, response encoding and the canned answers.
//!
//! Nothing in this module tree touches a socket or knows about wasm: the
//! connection loop in `server::connection` feeds it bytes and writes what it
//! produces. That keeps the framing rules testable and fuzzable on their own.

pub mod answers;
pub mod chunked;
pub mod client;
pub mod date;
pub mod decode;
pub mod encode;
mod head;
pub mod request;

pub use answers::HttpError;
pub use date::DateCache;
pub use decode::{Decoded, Decoder, FramingLimits};
pub use encode::{Response, write_response};
pub use request::Request;

/// The request methods the server routes on. Anything else is still parsed
/// (it may be a valid extension method) but can never match a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Patch,
    Options,
    Other,
}

impl Method {
    /// Methods a route may name in the config, in the order `Allow` lists them.
    pub const ROUTABLE: [Method; 7] = [
        Method::Get,
        Method::Head,
        Method::Post,
        Method::Put,
        Method::Delete,
        Method::Patch,
        Method::Options,
    ];

    pub fn from_bytes(name: &[u8]) -> Method {
        match name {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"PATCH" => Method::Patch,
            b"OPTIONS" => Method::Options,
            _ => Method::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Patch => "PATCH",
            Method::Options => "OPTIONS",
            Method::Other => "OTHER",
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Version {
    Http10,
    #[default]
    Http11,
}

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// RFC 9110 §5.6.2 `tchar`: the bytes allowed in a header name or method.
pub fn is_token(bytes: &[u8]) -> bool {
    !bytes.is_empty()
        && bytes.iter().all(|&b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// RFC 9110 §5.5 field-value: visible ASCII, space, tab and obs-text; never
/// CR, LF, NUL or another control byte (which is what makes header injection
/// impossible). Leading or trailing whitespace is not allowed either.
pub fn is_field_value(bytes: &[u8]) -> bool {
    let inner_ok = bytes
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80);
    let trimmed = match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => !matches!(first, b' ' | b'\t') && !matches!(last, b' ' | b'\t'),
        _ => true,
    };
    inner_ok && trimmed
}

/// The reason phrase a status line carries when the handler gave none.
pub fn canonical_reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// Runs `decode` on `input` fed whole and in pieces of 1 to 7 bytes (the
/// way reads split it), asserting that every split decodes the same.
#[cfg(test)]
fn same_when_split<T: PartialEq + std::fmt::Debug>(input: &[u8], decode: impl Fn(&[u8], usize) -> T) -> T {
    let whole = decode(input, input.len());
    for step in 1..8 {
        assert_eq!(decode(input, step), whole, "split every {step} bytes");
    }
    whole
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_values() {
        assert!(is_token(b"Content-Type"));
        assert!(!is_token(b"Bad Name"));
        assert!(!is_token(b""));
        assert!(!is_token(b"a:b"));
        assert!(is_field_value(b"text/plain; charset=utf-8"));
        assert!(is_field_value(b""));
        assert!(!is_field_value(b"a\r\nInjected: yes"));
        assert!(!is_field_value(b"nul\0byte"));
        assert!(!is_field_value(b" padded"));
    }
}
