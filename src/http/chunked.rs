//! The chunked transfer coding (RFC 9112 §7.1), decoding side: a resumable
//! state machine over a chunked body and its trailer section.
//!
//! Two users share it: the request decoder (`decode.rs`) for clients'
//! chunked request bodies, and the outbound client (`client.rs`) for
//! backends' chunked responses. Like the rest of `http`, it is sans-IO and
//! resumable: a body split across any number of reads decodes to the same
//! bytes (or the same error) as when it arrives whole.
//!
//! Chunk extensions are parsed and dropped, trailers are checked and
//! dropped; a chunk size that overflows, a bare LF, or a byte out of place
//! is refused.

use super::{FramingLimits, HttpError};

/// Chunk extensions are parsed and ignored; this bounds how long one may be.
const MAX_CHUNK_EXTENSION: usize = 1024;

/// A chunk size with more hex digits than this cannot fit the body limit.
const MAX_CHUNK_SIZE_DIGITS: usize = 16;

/// A chunked body being decoded: where the state machine is and how many
/// body bytes it has produced (the limit counts them, not what the caller
/// still holds, so a caller that streams the body out stays bounded).
#[derive(Debug)]
pub struct ChunkedBody {
    chunk: Chunk,
    received: u64,
}

impl Default for ChunkedBody {
    fn default() -> ChunkedBody {
        ChunkedBody {
            chunk: Chunk::Size { size: 0, digits: 0 },
            received: 0,
        }
    }
}

#[derive(Debug)]
enum Chunk {
    /// Reading the hex digits of a chunk size.
    Size {
        size: u64,
        digits: usize,
    },
    /// After `;`: skipping a chunk extension up to its CR.
    Extension {
        size: u64,
        len: usize,
    },
    /// Saw the CR that ends a size line, expecting LF.
    SizeLf {
        size: u64,
    },
    Data {
        remaining: u64,
    },
    DataCr,
    DataLf,
    /// Inside the trailer section: `line` bytes of the current line seen,
    /// `total` bytes of trailers so far, `cr` whether the last byte was CR.
    Trailer {
        line: usize,
        total: usize,
        cr: bool,
    },
}

impl ChunkedBody {
    /// Decodes what it can of `buf`, appending body bytes to `body`.
    /// Returns the bytes used and whether the body (trailers included) is
    /// complete; bytes after its end are left unused. `limits.max_head`
    /// bounds the trailers (past it: 431) and `limits.max_body` the body
    /// (past it: 413, refused as soon as a chunk size would exceed it).
    pub fn decode(
        &mut self,
        buf: &[u8],
        body: &mut Vec<u8>,
        limits: &FramingLimits,
    ) -> Result<(usize, bool), HttpError> {
        let ChunkedBody { chunk, received } = self;
        let mut i = 0;
        while i < buf.len() {
            let byte = buf[i];
            match chunk {
                Chunk::Size { size, digits } => {
                    if let Some(d) = (byte as char).to_digit(16) {
                        *digits += 1;
                        if *digits > MAX_CHUNK_SIZE_DIGITS {
                            return Err(HttpError::BadRequest("chunk size overflows"));
                        }
                        *size = (*size << 4) | u64::from(d);
                    } else if byte == b'\n' {
                        return Err(HttpError::BadRequest("chunk size line not ended by CRLF"));
                    } else if *digits == 0 {
                        return Err(HttpError::BadRequest("invalid chunk size"));
                    } else if byte == b';' {
                        *chunk = Chunk::Extension { size: *size, len: 0 };
                    } else if byte == b'\r' {
                        *chunk = Chunk::SizeLf { size: *size };
                    } else {
                        return Err(HttpError::BadRequest("invalid chunk size"));
                    }
                    i += 1;
                }
                Chunk::Extension { size, len } => {
                    if byte == b'\r' {
                        *chunk = Chunk::SizeLf { size: *size };
                    } else if byte == b'\t' || (b' '..=b'~').contains(&byte) || byte >= 0x80 {
                        *len += 1;
                        if *len > MAX_CHUNK_EXTENSION {
                            return Err(HttpError::BadRequest("chunk extension too long"));
                        }
                    } else {
                        return Err(HttpError::BadRequest("invalid chunk extension"));
                    }
                    i += 1;
                }
                Chunk::SizeLf { size } => {
                    if byte != b'\n' {
                        return Err(HttpError::BadRequest("chunk size line not ended by CRLF"));
                    }
                    i += 1;
                    let size = *size;
                    if size == 0 {
                        *chunk = Chunk::Trailer {
                            line: 0,
                            total: 0,
                            cr: false,
                        };
                    } else {
                        if received.saturating_add(size) > limits.max_body as u64 {
                            return Err(HttpError::ContentTooLarge);
                        }
                        *chunk = Chunk::Data { remaining: size };
                    }
                }
                Chunk::Data { remaining } => {
                    // The body limit was checked against this size already.
                    let take = (buf.len() - i).min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                    body.extend_from_slice(&buf[i..i + take]);
                    *received += take as u64;
                    i += take;
                    *remaining -= take as u64;
                    if *remaining == 0 {
                        *chunk = Chunk::DataCr;
                    }
                }
                Chunk::DataCr => {
                    if byte != b'\r' {
                        return Err(HttpError::BadRequest("chunk data not followed by CRLF"));
                    }
                    *chunk = Chunk::DataLf;
                    i += 1;
                }
                Chunk::DataLf => {
                    if byte != b'\n' {
                        return Err(HttpError::BadRequest("chunk data not followed by CRLF"));
                    }
                    *chunk = Chunk::Size { size: 0, digits: 0 };
                    i += 1;
                }
                Chunk::Trailer { line, total, cr } => {
                    i += 1;
                    *total += 1;
                    if *total > limits.max_head {
                        return Err(HttpError::HeaderFieldsTooLarge);
                    }
                    match (byte, *cr) {
                        (b'\n', true) if *line == 0 => return Ok((i, true)),
                        (b'\n', true) => {
                            *line = 0;
                            *cr = false;
                        }
                        (b'\r', false) => *cr = true,
                        (_, true) | (b'\n', false) => {
                            return Err(HttpError::BadRequest("trailer line not ended by CRLF"));
                        }
                        (b, false) if b == b'\t' || b >= b' ' && b != 0x7f => *line += 1,
                        _ => return Err(HttpError::BadRequest("invalid byte in trailer")),
                    }
                }
            }
        }
        Ok((i, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: FramingLimits = FramingLimits {
        max_request_line: 0,
        max_head: 64,
        max_body: 64,
    };

    /// Decodes a chunked body fed in pieces of `step` bytes (the way reads
    /// split it): the body, and how many bytes of the input it used.
    fn decode_split(input: &[u8], step: usize) -> Result<(Vec<u8>, usize), HttpError> {
        let mut chunked = ChunkedBody::default();
        let mut body = Vec::new();
        let mut buf = Vec::new();
        let mut used_total = 0;
        for piece in input.chunks(step.max(1)) {
            buf.extend_from_slice(piece);
            let (used, done) = chunked.decode(&buf, &mut body, &LIMITS)?;
            buf.drain(..used);
            used_total += used;
            if done {
                return Ok((body, used_total));
            }
        }
        Err(HttpError::BadRequest("incomplete"))
    }

    /// Decodes `input` whole and split at every point up to 7 bytes, which
    /// must all agree.
    fn decode(input: &[u8]) -> Result<(Vec<u8>, usize), HttpError> {
        crate::http::same_when_split(input, decode_split)
    }

    #[test]
    fn extensions_and_trailers_are_dropped() {
        let input = b"5;name=v\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n";
        assert_eq!(decode(input), Ok((b"hello world".to_vec(), input.len())));
        assert_eq!(decode(b"A\r\n0123456789\r\n0\r\n\r\n").unwrap().0, b"0123456789");
    }

    #[test]
    fn bytes_after_the_body_are_left_unused() {
        let body = b"3\r\nabc\r\n0\r\n\r\n";
        let input = [&body[..], b"GET / HTTP/1.1\r\n"].concat();
        assert_eq!(decode(&input), Ok((b"abc".to_vec(), body.len())));
    }

    #[test]
    fn framing_errors() {
        use HttpError::*;
        let long_extension = format!("1;{}\r\n", "e".repeat(MAX_CHUNK_EXTENSION + 1));
        let cases: &[(&[u8], HttpError)] = &[
            (b"10000000000000000\r\n", BadRequest("chunk size overflows")),
            (b"zz\r\n", BadRequest("invalid chunk size")),
            (b"\r\n", BadRequest("invalid chunk size")),
            (b"3 \r\n", BadRequest("invalid chunk size")),
            (b"3\nabc\r\n", BadRequest("chunk size line not ended by CRLF")),
            (b"3\rabc\r\n", BadRequest("chunk size line not ended by CRLF")),
            (b"3\r\nabcd", BadRequest("chunk data not followed by CRLF")),
            (b"3\r\nabc\rx", BadRequest("chunk data not followed by CRLF")),
            (b"3;a\0\r\n", BadRequest("invalid chunk extension")),
            (long_extension.as_bytes(), BadRequest("chunk extension too long")),
            (b"0\r\nX: y\n\r\n", BadRequest("trailer line not ended by CRLF")),
            (b"0\r\nX: y\rz\r\n\r\n", BadRequest("trailer line not ended by CRLF")),
            (b"0\r\nX: \x01\r\n\r\n", BadRequest("invalid byte in trailer")),
        ];
        for (input, expected) in cases {
            assert_eq!(
                decode(input).as_ref(),
                Err(expected),
                "input: {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn limits_give_413_and_431() {
        let fits = format!("40\r\n{}\r\n0\r\n\r\n", "a".repeat(64));
        assert_eq!(decode(fits.as_bytes()).unwrap().0.len(), 64);
        // Refused at the size line, before any of the chunk arrives.
        assert_eq!(decode(b"41\r\n"), Err(HttpError::ContentTooLarge));
        // The limit counts the whole body, not one chunk.
        let two = format!("20\r\n{0}\r\n21\r\n{0}a\r\n0\r\n\r\n", "a".repeat(32));
        assert_eq!(decode(two.as_bytes()), Err(HttpError::ContentTooLarge));
        let trailers = format!("0\r\nX: {}\r\n\r\n", "t".repeat(64));
        assert_eq!(decode(trailers.as_bytes()), Err(HttpError::HeaderFieldsTooLarge));
    }
}
