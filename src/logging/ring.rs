//! A bounded byte ring that carries whole lines from one thread to the
//! `log-writer` thread: the producer pushes a line entirely or not at all,
//! so a reader never sees half of one.
//!
//! Nothing shared is read-modify-written on the producer's side: rtrb's
//! ring has one index written by each side, and the count of dropped lines
//! is written by the producer alone.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::Thread;

use rtrb::RingBuffer;

/// The lines a ring could not take. Written by the ring's producer only
/// (a load and a store, no atomic increment: no other core writes it); read
/// by whoever asks how many were dropped.
#[derive(Debug, Default)]
struct DropCount(AtomicU64);

impl DropCount {
    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn add_one(&self) {
        self.0.store(self.get() + 1, Ordering::Relaxed);
    }
}

/// The pushing side, owned by one thread (a logging thread, a shard's
/// access logger).
pub struct LineProducer {
    ring: rtrb::Producer<u8>,
    dropped: Arc<DropCount>,
    /// Woken when the ring passes half full, so a burst is written before
    /// the ring fills, without a wake-up per line.
    writer: Thread,
}

/// The draining side, owned by the writer.
pub struct LineConsumer {
    ring: rtrb::Consumer<u8>,
    dropped: Arc<DropCount>,
}

/// A ring of `bytes` bytes whose producer wakes `writer` when it passes
/// half full.
pub fn line_ring(bytes: usize, writer: Thread) -> (LineProducer, LineConsumer) {
    let (producer, consumer) = RingBuffer::new(bytes);
    let dropped = Arc::new(DropCount::default());
    let producer = LineProducer {
        ring: producer,
        dropped: dropped.clone(),
        writer,
    };
    (
        producer,
        LineConsumer {
            ring: consumer,
            dropped,
        },
    )
}

impl LineProducer {
    /// Pushes `line` whole, or drops and counts it when it does not fit.
    pub fn push(&mut self, line: &[u8]) {
        if self.ring.push_entire_slice(line).is_err() {
            self.dropped.add_one();
            return;
        }
        // `slots()` reads the consumer's index (a plain load): exact while
        // the writer sleeps, which is when waking it matters.
        let capacity = self.ring.buffer().capacity();
        let used = capacity - self.ring.slots();
        let half = capacity / 2;
        if used >= half && used.saturating_sub(line.len()) < half {
            self.writer.unpark();
        }
    }
}

impl LineConsumer {
    /// Appends every byte in the ring to `out`: whole lines only, since a
    /// line becomes visible to the consumer in one step.
    fn drain_into(&mut self, out: &mut Vec<u8>) {
        let available = self.ring.slots();
        if let Ok(chunk) = self.ring.read_chunk(available) {
            let (first, second) = chunk.as_slices();
            out.extend_from_slice(first);
            out.extend_from_slice(second);
            chunk.commit_all();
        }
    }
}

/// The rings of one destination (the server's log, the access log), and
/// the drops of rings whose thread has ended.
#[derive(Default)]
pub struct Rings {
    live: Vec<LineConsumer>,
    dropped_by_ended: u64,
}

impl Rings {
    pub fn add(&mut self, ring: LineConsumer) {
        self.live.push(ring);
    }

    /// Appends what every ring holds to `out`, and forgets the rings whose
    /// producer is gone once they are empty.
    pub fn drain_into(&mut self, out: &mut Vec<u8>) {
        let dropped_by_ended = &mut self.dropped_by_ended;
        self.live.retain_mut(|ring| {
            // Asked before draining: a line pushed just before the producer
            // went away is still taken.
            let ended = ring.ring.is_abandoned();
            ring.drain_into(out);
            if ended {
                *dropped_by_ended += ring.dropped.get();
            }
            !ended
        });
    }

    /// Lines dropped by every ring so far, ended ones included.
    pub fn dropped(&self) -> u64 {
        self.dropped_by_ended + self.live.iter().map(|ring| ring.dropped.get()).sum::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// One ring, registered in a set as the writer's are.
    fn one_ring(bytes: usize) -> (LineProducer, Rings) {
        let (producer, consumer) = line_ring(bytes, std::thread::current());
        let mut rings = Rings::default();
        rings.add(consumer);
        (producer, rings)
    }

    fn drained(rings: &mut Rings) -> Vec<u8> {
        let mut out = Vec::new();
        rings.drain_into(&mut out);
        out
    }

    #[test]
    fn a_line_that_does_not_fit_is_dropped_whole_and_counted() {
        let (mut producer, mut rings) = one_ring(16);
        producer.push(b"0123456789\n");
        producer.push(b"too long for what is left\n");
        producer.push(b"abcd\n");
        assert_eq!(drained(&mut rings), b"0123456789\nabcd\n");
        assert_eq!(rings.dropped(), 1);
        // Drained, the ring takes lines again.
        producer.push(b"0123456789\n");
        assert_eq!(drained(&mut rings), b"0123456789\n");
    }

    #[test]
    fn an_ended_threads_ring_is_drained_then_forgotten_with_its_drops() {
        let (mut producer, mut rings) = one_ring(8);
        producer.push(b"last\n");
        producer.push(b"too long\n");
        drop(producer);
        assert_eq!(drained(&mut rings), b"last\n");
        assert!(rings.live.is_empty());
        assert_eq!(rings.dropped(), 1);
    }

    #[test]
    fn passing_half_full_wakes_the_writer() {
        let (mut producer, _consumer) = line_ring(16, std::thread::current());
        producer.push(b"1234567\n");
        // Crossing to 8 of 16 bytes unparks this (test) thread: the park
        // returns at once instead of after the timeout.
        let start = Instant::now();
        std::thread::park_timeout(Duration::from_secs(5));
        assert!(start.elapsed() < Duration::from_secs(4));
    }
}
