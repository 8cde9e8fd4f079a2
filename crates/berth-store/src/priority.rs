//! The writer's scheduling priority.
//!
//! Every write of the store runs, one at a time, on whichever thread holds the writer; the
//! other threads of a busy server (request handlers, agents' polls, readers) outnumber the
//! cores. Measured under load, the holder was preempted while holding the writer for a large
//! share of the time, and every waiting write waited with it. So the thread holding the writer
//! runs at a raised priority for as long as it holds it, and returns to its own afterwards:
//! the one serial path is the last one to wait for a core.
//!
//! The raise is to the lowest real-time priority (`SCHED_FIFO`): no ordinary thread preempts
//! the holder, while the holder still sleeps whenever it waits (for a page, a lock), so
//! ordinary threads run then. A nice value alone (-10) was measured first: under the
//! scheduler's fairness the holder still spent about a third of its hold preempted by
//! ordinary threads; `SCHED_FIFO` made the same run 11 % faster (BENCHMARKS.md, seventh
//! session). A hold is one write, or one group commit: short, and never a loop waiting on
//! another thread, which is what makes a real-time holder safe.
//!
//! Both need `CAP_SYS_NICE` (root has it). Without it the first refusal of each turns it
//! off for the process: real time falls back to the nice value, and a refused nice value to
//! nothing; the store works the same, only without the head start.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

use thread_priority::{
    NormalThreadSchedulePolicy, RealtimeThreadSchedulePolicy, ThreadPriority,
    ThreadPriorityOsValue, ThreadSchedulePolicy,
};

/// The nice value of a thread while it holds the writer when real time is refused (0 is the
/// default, -20 the highest).
pub const WRITER_NICE: i32 = -10;

/// Whether a real-time raise is allowed (cleared by the first refusal).
static REALTIME_ALLOWED: AtomicBool = AtomicBool::new(true);

/// Whether a nice raise is allowed (cleared by the first refusal).
static NICE_ALLOWED: AtomicBool = AtomicBool::new(true);

thread_local! {
    /// This thread's own nice value, read the first time it took the writer; `None` inside
    /// when the thread is not an ordinary one (already real time: left as it is).
    static OWN: Cell<Option<Option<i32>>> = const { Cell::new(None) };
}

/// How a raised thread gets its own priority back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Restore {
    /// Back to the ordinary policy, then to its own nice value.
    Realtime { own_nice: i32 },
    /// Back to its own nice value.
    Nice { own_nice: i32 },
}

/// The current thread's priority while it holds the writer; restored when dropped.
pub struct Raised {
    restore: Option<Restore>,
}

impl Raised {
    /// Not raised (nothing to restore).
    pub fn none() -> Raised {
        Raised { restore: None }
    }
}

/// This thread's own nice value if it is an ordinary thread.
fn own_nice(tid: rustix::thread::Pid) -> Option<i32> {
    if let Some(own) = OWN.get() {
        return own;
    }
    let ordinary = matches!(
        thread_priority::unix::thread_schedule_policy(),
        Ok(ThreadSchedulePolicy::Normal(
            NormalThreadSchedulePolicy::Other
        ))
    );
    let own = if ordinary {
        rustix::process::getpriority_process(Some(tid)).ok()
    } else {
        None
    };
    OWN.set(Some(own));
    own
}

/// Raises the current thread's priority (real time, else [`WRITER_NICE`]) if the process may.
pub fn raise() -> Raised {
    let nothing = Raised::none();
    if !REALTIME_ALLOWED.load(Ordering::Relaxed) && !NICE_ALLOWED.load(Ordering::Relaxed) {
        return nothing;
    }
    let tid = rustix::thread::gettid();
    let Some(own_nice) = own_nice(tid) else {
        return nothing;
    };
    if REALTIME_ALLOWED.load(Ordering::Relaxed) {
        match thread_priority::unix::set_thread_priority_and_policy(
            thread_priority::unix::thread_native_id(),
            ThreadPriority::Min,
            ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo),
        ) {
            Ok(()) => {
                return Raised {
                    restore: Some(Restore::Realtime { own_nice }),
                };
            }
            Err(_) => REALTIME_ALLOWED.store(false, Ordering::Relaxed),
        }
    }
    if !NICE_ALLOWED.load(Ordering::Relaxed) || own_nice <= WRITER_NICE {
        return nothing;
    }
    match rustix::process::setpriority_process(Some(tid), WRITER_NICE) {
        Ok(()) => Raised {
            restore: Some(Restore::Nice { own_nice }),
        },
        Err(_) => {
            NICE_ALLOWED.store(false, Ordering::Relaxed);
            nothing
        }
    }
}

impl Drop for Raised {
    fn drop(&mut self) {
        // Lowering a priority is always allowed; a failure leaves the thread raised, which
        // costs fairness, not correctness.
        let own_nice = match self.restore {
            None => return,
            Some(Restore::Nice { own_nice }) => own_nice,
            Some(Restore::Realtime { own_nice }) => {
                // The ordinary policy at nice 0 (an ordinary policy's "priority" is its nice
                // value), then the thread's own nice value if it had another.
                let _ = thread_priority::unix::set_thread_priority_and_policy(
                    thread_priority::unix::thread_native_id(),
                    ThreadPriority::Os(ThreadPriorityOsValue::default()),
                    ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other),
                );
                if own_nice == 0 {
                    return;
                }
                own_nice
            }
        };
        let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), own_nice);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ThreadSchedulePolicy {
        thread_priority::unix::thread_schedule_policy().unwrap()
    }

    #[test]
    fn the_thread_gets_its_own_priority_back() {
        // On a thread of its own: the test harness's threads are shared.
        std::thread::spawn(|| {
            let tid = rustix::thread::gettid();
            let before = rustix::process::getpriority_process(Some(tid)).unwrap();
            let ordinary = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other);
            assert_eq!(policy(), ordinary);
            {
                let raised = raise();
                match raised.restore {
                    Some(Restore::Realtime { own_nice }) => {
                        assert_eq!(own_nice, before);
                        assert_eq!(
                            policy(),
                            ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo)
                        );
                    }
                    Some(Restore::Nice { .. }) => assert_eq!(
                        rustix::process::getpriority_process(Some(tid)).unwrap(),
                        WRITER_NICE
                    ),
                    None => assert_eq!(
                        rustix::process::getpriority_process(Some(tid)).unwrap(),
                        before,
                        "unprivileged: nothing changes"
                    ),
                }
            }
            assert_eq!(policy(), ordinary);
            assert_eq!(
                rustix::process::getpriority_process(Some(tid)).unwrap(),
                before
            );
        })
        .join()
        .unwrap();
    }

    #[test]
    fn as_root_the_holder_runs_in_real_time() {
        if !rustix::process::geteuid().is_root() {
            return;
        }
        std::thread::spawn(|| {
            let raised = raise();
            assert!(matches!(raised.restore, Some(Restore::Realtime { .. })));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_thread_with_its_own_nice_value_gets_it_back() {
        std::thread::spawn(|| {
            let tid = rustix::thread::gettid();
            rustix::process::setpriority_process(Some(tid), 5).unwrap();
            drop(raise());
            assert_eq!(rustix::process::getpriority_process(Some(tid)).unwrap(), 5);
        })
        .join()
        .unwrap();
    }
}
