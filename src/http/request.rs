//! A decoded request, stored so that one connection can reuse its buffers.

use std::ops::Range;

use super::{Method, Version};

/// One request, owned. The head is copied once into `head`; the target and
/// the headers are ranges into it, so decoding a request allocates nothing
/// once the connection's first request has sized the buffers.
#[derive(Debug, Default)]
pub struct Request {
    pub method: Option<Method>,
    pub version: Version,
    /// Raw head bytes (request line and header lines).
    head: Vec<u8>,
    method_range: Range<usize>,
    /// The origin-form target (`/path?query`), even when the client sent
    /// the absolute form (which is why it is a copy, not a range).
    target: Vec<u8>,
    headers: Vec<(Range<usize>, Range<usize>)>,
    /// The decoded body (chunked framing already removed).
    pub body: Vec<u8>,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
}

impl Request {
    /// Forgets the previous request but keeps the allocations.
    pub fn clear(&mut self) {
        self.method = None;
        self.head.clear();
        self.headers.clear();
        self.body.clear();
        self.method_range = 0..0;
        self.target.clear();
        self.keep_alive = false;
    }

    pub(super) fn set_head(&mut self, head: &[u8]) {
        self.head.clear();
        self.head.extend_from_slice(head);
    }

    pub(super) fn set_method_range(&mut self, range: Range<usize>) {
        self.method_range = range;
    }

    pub(super) fn set_target(&mut self, target: &[u8]) {
        self.target.clear();
        self.target.extend_from_slice(target);
    }

    pub(super) fn push_header(&mut self, name: Range<usize>, value: Range<usize>) {
        self.headers.push((name, value));
    }

    /// The method exactly as the client sent it.
    pub fn method_bytes(&self) -> &[u8] {
        &self.head[self.method_range.clone()]
    }

    pub fn method(&self) -> Method {
        self.method.unwrap_or(Method::Other)
    }

    /// Path and query, in origin form.
    pub fn target(&self) -> &[u8] {
        &self.target
    }

    /// The path without the query string, as routing sees it.
    pub fn path(&self) -> &[u8] {
        let target = self.target();
        match memchr::memchr(b'?', target) {
            Some(q) => &target[..q],
            None => target,
        }
    }

    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.headers
            .iter()
            .map(|(n, v)| (&self.head[n.clone()], &self.head[v.clone()]))
    }

    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &[u8]) -> Option<&[u8]> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}
