//! The request decoder on arbitrary bytes: it must never panic, and feeding
//! the same bytes split at arbitrary points across reads must decode to the
//! same requests (or the same error) as feeding them at once.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serverless_wasm::http::{Decoded, Decoder, FramingLimits, HttpError, Request};

/// What a decoded request is, for comparison.
type Seen = (Vec<u8>, Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>, Vec<u8>, bool);

const LIMITS: FramingLimits = FramingLimits {
    max_request_line: 256,
    max_head: 1024,
    max_body: 4096,
};

fn decode(pieces: &mut dyn Iterator<Item = &[u8]>) -> (Vec<Seen>, Option<HttpError>) {
    let mut decoder = Decoder::new(LIMITS);
    let mut request = Request::default();
    let mut buf = Vec::new();
    let mut seen = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&buf, &mut request) {
                Err(e) => return (seen, Some(e)),
                Ok((used, status)) => {
                    assert!(used <= buf.len());
                    buf.drain(..used);
                    if status == Decoded::Incomplete {
                        // Bounded: an incomplete head never needs more than the limit.
                        assert!(buf.len() <= LIMITS.max_head + 2);
                        break;
                    }
                    let headers = request.headers().map(|(n, v)| (n.to_vec(), v.to_vec())).collect();
                    seen.push((request.method_bytes().to_vec(), request.target().to_vec(), headers, request.body.clone(), request.keep_alive));
                }
            }
        }
    }
    (seen, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, input)) = data.split_first() else { return };
    let whole = decode(&mut std::iter::once(input));
    // Split points from the seed: piece sizes 1..=seed%16+1, cycling.
    let mut sizes = (0..).map(|i| 1 + (i * 7 + seed as usize) % (seed as usize % 16 + 1));
    let mut rest = input;
    let mut pieces = std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let n = sizes.next().unwrap_or(1).min(rest.len());
        let (piece, tail) = rest.split_at(n);
        rest = tail;
        Some(piece)
    });
    let split = decode(&mut pieces);
    assert_eq!(whole, split, "decoding depends on how the bytes were split");
});
