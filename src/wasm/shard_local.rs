//! [`ShardLocal`]: shard-local values handed to wasmtime, which wants `Send`.
//!
//! wasmtime requires a store's data and the futures of async host
//! functions to be `Send`, because in general an embedder may move a store
//! between threads. This server never does: a store is created, used and
//! dropped by one shard, and glommio never moves a task to another thread.
//! The shard-local parts of a store (`Rc`, glommio sockets) are wrapped in
//! `ShardLocal`, which declares them `Send` and checks, on every access,
//! that it is still on the thread that created it. The check is a
//! thread-local address comparison (a few instructions), not
//! `thread::current()`, which clones an `Arc` each time.
//!
//! This is the workaround wasmtime's maintainers recommend for
//! single-threaded embeddings (wasmtime issues #10262 and #5936).

use std::future::Future;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::task::{Context, Poll};

thread_local! {
    /// Its address identifies the current thread.
    static THREAD_MARK: u8 = const { 0 };
}

fn this_thread() -> usize {
    THREAD_MARK.with(|mark| mark as *const u8 as usize)
}

pub struct ShardLocal<T> {
    value: ManuallyDrop<T>,
    thread: usize,
}

// SAFETY: a `ShardLocal` is only ever touched on the thread that created it:
// every access goes through `deref`/`deref_mut`/`poll`, which check that
// (see `on_home_thread`), and `drop` stops the process rather than drop it
// elsewhere. So the `T` inside is never used from two threads, which is
// what `Send` exists to prevent.
#[allow(unsafe_code, reason = "see the SAFETY comment above")]
unsafe impl<T> Send for ShardLocal<T> {}

impl<T> ShardLocal<T> {
    pub fn new(value: T) -> ShardLocal<T> {
        ShardLocal {
            value: ManuallyDrop::new(value),
            thread: this_thread(),
        }
    }

    /// The invariant every access relies on. A store or host future moved
    /// to another thread would be a bug in this server (never the result of
    /// input), so it stops the process rather than risk a data race.
    fn on_home_thread(&self) {
        assert_eq!(
            this_thread(),
            self.thread,
            "a shard-local value was used on another thread"
        );
    }
}

impl<T> Deref for ShardLocal<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.on_home_thread();
        &self.value
    }
}

impl<T> DerefMut for ShardLocal<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.on_home_thread();
        &mut self.value
    }
}

impl<T> Drop for ShardLocal<T> {
    fn drop(&mut self) {
        if this_thread() != self.thread {
            // As on any other access from the wrong thread, this is a bug of
            // the server: stop, rather than leak whatever the value holds
            // (instances, sockets) and carry on as if nothing happened.
            // (A panic here could unwind through a drop in progress.)
            eprintln!("fatal: a shard-local value was dropped on another thread");
            std::process::abort();
        }
        // SAFETY: dropped once, here, on its own thread; never used again.
        #[allow(unsafe_code, reason = "ManuallyDrop::drop of our own field")]
        unsafe {
            ManuallyDrop::drop(&mut self.value);
        }
    }
}

impl<T: Clone> Clone for ShardLocal<T> {
    fn clone(&self) -> ShardLocal<T> {
        ShardLocal::new((**self).clone())
    }
}

impl<F: Future> Future for ShardLocal<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.on_home_thread();
        // SAFETY: structural pinning: the future is never moved out of its
        // `ShardLocal` (no method gives it out by value), so pinning the
        // wrapper pins the future.
        #[allow(unsafe_code, reason = "pin projection to the wrapped future")]
        let future = unsafe { self.map_unchecked_mut(|s| &mut *s.value) };
        future.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::ShardLocal;
    use std::rc::Rc;

    #[test]
    fn usable_on_its_thread_refused_elsewhere() {
        let local = ShardLocal::new(Rc::new(5));
        assert_eq!(**local, 5);
        let moved = std::thread::spawn(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| **local));
            // Dropping it here would stop the process (as it should).
            std::mem::forget(local);
            result.is_err()
        })
        .join()
        .unwrap();
        assert!(moved, "access from another thread must be refused");
    }
}
