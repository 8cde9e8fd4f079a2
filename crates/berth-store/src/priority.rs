//! The writer's scheduling priority.
//!
//! Every write of the store runs, one at a time, on whichever thread holds the writer; the
//! other threads of a busy server (request handlers, agents' polls, readers) outnumber the
//! cores. Measured under load, the holder was preempted while holding the writer for a large
//! share of the time, and every waiting write waited with it. So the thread holding the writer
//! runs at a raised priority (a lower nice value) for as long as it holds it, and returns to
//! its own afterwards: the one serial path is the last one to wait for a core.
//!
//! Raising a priority needs `CAP_SYS_NICE` (root has it). Without it the first refusal turns
//! the boost off for the process: the store works the same, only without the head start.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

/// The nice value of a thread while it holds the writer (0 is the default, -20 the highest).
pub const WRITER_NICE: i32 = -10;

/// Whether raising is allowed (cleared by the first refusal).
static ALLOWED: AtomicBool = AtomicBool::new(true);

thread_local! {
    /// This thread's own nice value, read the first time it took the writer.
    static OWN_NICE: Cell<Option<i32>> = const { Cell::new(None) };
}

/// The current thread's priority while it holds the writer; restored when dropped.
pub struct Raised {
    own: Option<i32>,
}

/// Raises the current thread's priority to [`WRITER_NICE`] if the process may.
pub fn raise() -> Raised {
    if !ALLOWED.load(Ordering::Relaxed) {
        return Raised { own: None };
    }
    let tid = rustix::thread::gettid();
    let own = match OWN_NICE.get() {
        Some(n) => n,
        None => match rustix::process::getpriority_process(Some(tid)) {
            Ok(n) => {
                OWN_NICE.set(Some(n));
                n
            }
            Err(_) => return Raised { own: None },
        },
    };
    if own <= WRITER_NICE {
        return Raised { own: None };
    }
    match rustix::process::setpriority_process(Some(tid), WRITER_NICE) {
        Ok(()) => Raised { own: Some(own) },
        Err(_) => {
            ALLOWED.store(false, Ordering::Relaxed);
            Raised { own: None }
        }
    }
}

impl Drop for Raised {
    fn drop(&mut self) {
        if let Some(own) = self.own {
            // Lowering a priority is always allowed; a failure leaves the thread raised,
            // which costs fairness, not correctness.
            let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), own);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thread_gets_its_own_priority_back() {
        let tid = rustix::thread::gettid();
        let before = rustix::process::getpriority_process(Some(tid)).unwrap();
        {
            let raised = raise();
            let during = rustix::process::getpriority_process(Some(tid)).unwrap();
            if raised.own.is_some() {
                assert_eq!(during, WRITER_NICE);
            } else {
                assert_eq!(during, before, "unprivileged: nothing changes");
            }
        }
        assert_eq!(
            rustix::process::getpriority_process(Some(tid)).unwrap(),
            before
        );
    }
}
