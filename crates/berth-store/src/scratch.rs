//! Byte buffers a thread keeps between uses, for work the store's writer does per record
//! (encoding a body, compressing it): a buffer reused instead of a vector allocated, grown
//! and dropped each time.

use std::cell::RefCell;
use std::thread::LocalKey;

/// The largest buffer a thread keeps between uses: a rare huge record does not stay
/// reserved for the thread's life.
const KEPT_BYTES: usize = 1 << 20;

/// A thread's buffer, declared with `thread_local!` (one per use, so that one use may call
/// another).
pub(crate) type Scratch = LocalKey<RefCell<Vec<u8>>>;

/// Runs `f` with the thread's `buffer` (as the last use left it: `f` clears or overwrites
/// it), or with a new one if the buffer is in use further up this thread's stack.
pub(crate) fn with<R>(buffer: &'static Scratch, f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    buffer.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            let out = f(&mut buf);
            if buf.capacity() > KEPT_BYTES {
                *buf = Vec::new();
            }
            out
        }
        Err(_) => f(&mut Vec::new()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }

    #[test]
    fn a_buffer_is_kept_reused_and_given_up_past_its_limit() {
        with(&BUF, |b| b.extend_from_slice(b"abc"));
        assert_eq!(with(&BUF, |b| b.clone()), b"abc");
        // In use further up: a fresh one, the kept one untouched.
        with(&BUF, |outer| {
            assert!(with(&BUF, |inner| inner.is_empty()));
            outer.push(b'd');
        });
        assert_eq!(with(&BUF, |b| b.len()), 4);
        with(&BUF, |b| b.resize(KEPT_BYTES + 1, 0));
        assert_eq!(with(&BUF, |b| b.capacity()), 0);
    }
}
