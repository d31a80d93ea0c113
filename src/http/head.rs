//! Request head validation: what a complete head (request line and header
//! fields) means, and whether it is acceptable at all.
//!
//! `decode.rs` finds where a head ends; this parses it into the `Request`
//! and decides how its body is framed. The strict rules against request
//! smuggling live here: two `Content-Length`s, `Content-Length` with
//! `Transfer-Encoding`, codings other than a single final `chunked`, a
//! missing or repeated `Host`, and targets in neither origin nor absolute
//! form are refused.

use super::request::Request;
use super::{FramingLimits, HttpError, Method, Version};

/// httparse needs a fixed array; more header lines than this is a 431.
pub const MAX_HEADERS: usize = 100;

/// How the body after a head is delimited.
pub(super) enum BodyFraming {
    None,
    Length(usize),
    Chunked,
}

/// What a head says about what follows it.
pub(super) struct Framing {
    pub(super) body: BodyFraming,
    /// The client waits for `100 Continue` before sending its body.
    pub(super) expect_continue: bool,
}

/// Parses and validates a complete head, filling `req`.
pub(super) fn parse_head(head: &[u8], req: &mut Request, limits: &FramingLimits) -> Result<Framing, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(HttpError::BadRequest("malformed request head"));
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::HeaderFieldsTooLarge),
        Err(httparse::Error::Version) => return Err(HttpError::VersionNotSupported),
        Err(httparse::Error::HeaderName) => {
            return Err(HttpError::BadRequest("invalid header name"));
        }
        Err(httparse::Error::HeaderValue) => {
            return Err(HttpError::BadRequest("invalid header value"));
        }
        Err(httparse::Error::Token) => return Err(HttpError::BadRequest("invalid method")),
        Err(_) => return Err(HttpError::BadRequest("malformed request line")),
    }
    // Partial parses returned above, so all three are present.
    let (Some(method), Some(target), Some(minor)) = (parsed.method, parsed.path, parsed.version) else {
        return Err(HttpError::BadRequest("malformed request line"));
    };
    let version = if minor == 0 { Version::Http10 } else { Version::Http11 };
    let method_bytes = method.as_bytes();
    let method = Method::from_bytes(method_bytes);

    req.clear();
    req.set_head(head);
    let offset = |s: &[u8]| s.as_ptr() as usize - head.as_ptr() as usize;
    let method_at = offset(method_bytes);
    req.set_method_range(method_at..method_at + method_bytes.len());
    req.set_target(origin_form(target.as_bytes(), method)?);
    req.method = Some(method);
    req.version = version;

    let mut hosts = 0;
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding = false;
    let mut codings = Codings::default();
    let mut close = false;
    let mut keep_alive = false;
    let mut expect_continue = false;
    for h in parsed.headers.iter() {
        let name = h.name.as_bytes();
        let value = h.value;
        let name_at = offset(name);
        let value_at = offset(value);
        req.push_header(name_at..name_at + name.len(), value_at..value_at + value.len());
        if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            if content_length.is_some() {
                return Err(HttpError::BadRequest("more than one Content-Length"));
            }
            content_length = Some(parse_content_length(value)?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            transfer_encoding = true;
            codings.add(value)?;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in list_items(value) {
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            if value.eq_ignore_ascii_case(b"100-continue") {
                expect_continue = true;
            } else {
                return Err(HttpError::ExpectationFailed);
            }
        }
    }
    match (version, hosts) {
        (Version::Http11, 1) | (Version::Http10, 0 | 1) => {}
        (_, 0) => return Err(HttpError::BadRequest("missing Host header")),
        _ => return Err(HttpError::BadRequest("more than one Host header")),
    }
    req.keep_alive = match version {
        Version::Http11 => !close,
        Version::Http10 => keep_alive && !close,
    };

    let body = if transfer_encoding {
        if version == Version::Http10 {
            return Err(HttpError::BadRequest("Transfer-Encoding in an HTTP/1.0 request"));
        }
        if content_length.is_some() {
            return Err(HttpError::BadRequest("both Content-Length and Transfer-Encoding"));
        }
        codings.check()?;
        BodyFraming::Chunked
    } else {
        match content_length {
            None => BodyFraming::None,
            Some(n) if n > limits.max_body as u64 => return Err(HttpError::ContentTooLarge),
            // Checked against max_body (a usize) just above.
            Some(n) => BodyFraming::Length(n as usize),
        }
    };
    // RFC 9110 §10.1.1: no 100 Continue for HTTP/1.0 clients.
    let expect_continue = expect_continue && version == Version::Http11;
    Ok(Framing { body, expect_continue })
}

/// Reduces a request target to origin form (`/path?query`). The absolute
/// form must be accepted (RFC 9112 §3.2.2); the authority form belongs to
/// CONNECT, which no route serves; `*` only to OPTIONS.
fn origin_form(target: &[u8], method: Method) -> Result<&[u8], HttpError> {
    if target.first() == Some(&b'/') {
        return Ok(target);
    }
    if target == b"*" && method == Method::Options {
        return Ok(target);
    }
    let lower_starts =
        |prefix: &[u8]| target.len() >= prefix.len() && target[..prefix.len()].eq_ignore_ascii_case(prefix);
    let after_scheme = if lower_starts(b"http://") {
        7
    } else if lower_starts(b"https://") {
        8
    } else {
        return Err(HttpError::BadRequest(
            "request target is not in origin or absolute form",
        ));
    };
    let rest = &target[after_scheme..];
    if rest.is_empty() || rest[0] == b'/' {
        return Err(HttpError::BadRequest("absolute-form target without a host"));
    }
    match rest.iter().position(|&b| b == b'/' || b == b'?') {
        Some(i) if rest[i] == b'/' => Ok(&rest[i..]),
        // `http://host` or `http://host?query`: the path is `/`, and a
        // query without a path is too odd to be worth a copy.
        None => Ok(b"/"),
        Some(_) => Err(HttpError::BadRequest("absolute-form target with a query but no path")),
    }
}

fn parse_content_length(value: &[u8]) -> Result<u64, HttpError> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(HttpError::BadRequest("invalid Content-Length"));
    }
    value.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
            .ok_or(HttpError::BadRequest("Content-Length overflows"))
    })
}

/// Splits a comma-separated header list, trimming optional whitespace and
/// skipping empty items.
fn list_items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(|item| item.trim_ascii())
        .filter(|item| !item.is_empty())
}

/// The transfer codings named across all `Transfer-Encoding` headers.
#[derive(Default)]
struct Codings {
    count: usize,
    chunked_count: usize,
    last_is_chunked: bool,
    unknown: bool,
}

impl Codings {
    fn add(&mut self, value: &[u8]) -> Result<(), HttpError> {
        if list_items(value).next().is_none() {
            return Err(HttpError::BadRequest("empty Transfer-Encoding"));
        }
        for coding in list_items(value) {
            // Parameters (`;q=…`) are not allowed on transfer codings we know.
            let is_chunked = coding.eq_ignore_ascii_case(b"chunked");
            let known = is_chunked
                || [&b"gzip"[..], b"x-gzip", b"deflate", b"compress", b"x-compress"]
                    .iter()
                    .any(|k| coding.eq_ignore_ascii_case(k));
            self.count += 1;
            self.chunked_count += usize::from(is_chunked);
            self.last_is_chunked = is_chunked;
            self.unknown |= !known;
        }
        Ok(())
    }

    /// RFC 9112 §6.1 and §6.3: chunked must be the final coding and appear
    /// once, else the length cannot be known (400); a coding we do not
    /// implement is a 501.
    fn check(&self) -> Result<(), HttpError> {
        if self.unknown {
            return Err(HttpError::NotImplemented("unknown transfer coding"));
        }
        if !self.last_is_chunked || self.chunked_count != 1 {
            return Err(HttpError::BadRequest("chunked is not the final transfer coding"));
        }
        if self.count > 1 {
            return Err(HttpError::NotImplemented("compressed transfer coding"));
        }
        Ok(())
    }
}
