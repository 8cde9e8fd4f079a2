//! Writes events off the request's path: the gateway hands each recorded call to a bounded
//! queue; one writer thread turns calls into events and stores whatever has queued up in one
//! transaction.
//!
//! - A full queue makes the request wait for room (backpressure): events are never dropped
//!   to keep a request fast.
//! - A clean shutdown ([`Recorder::shutdown`], also on drop) closes the queue and waits until
//!   the writer has stored everything in it.
//! - A crash (`kill -9`, power cut) loses the calls still queued: the writer stores each batch
//!   at most [`LINGER`] after its first call, so that is at most the calls of the last tenth
//!   of a second or so. Their effects are in the store; only their records are missing.

use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use berth_store::{Store, StoreError, TrailEvent};

use super::event::{self, ApiCall};

/// Calls that may wait for the writer before a request has to.
pub const QUEUE_CAPACITY: usize = 4096;
/// Most events stored in one transaction.
pub const BATCH_MAX: usize = 512;
/// How long the writer waits for more calls to join a batch once it has one. A commit's cost
/// is mostly the pages it writes, and the pages of events recorded close in time are mostly
/// the same (the end of each index that grows with time): under load, ten events a commit
/// instead of one or two cost the writer about half as much per event.
pub const LINGER: Duration = Duration::from_millis(50);

enum Message {
    Call(Box<ApiCall>),
    /// Answered once everything queued before it is stored.
    Flush(SyncSender<()>),
}

/// The queue and its writer thread.
pub struct Recorder {
    store: Arc<Store>,
    queue: Mutex<Option<SyncSender<Message>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Recorder {
    /// Starts the writer thread over `store`. Should the thread not start, calls are stored
    /// on the caller's thread instead (slower, still complete).
    pub fn start(store: Arc<Store>) -> Recorder {
        let (tx, rx) = mpsc::sync_channel(QUEUE_CAPACITY);
        let writer_store = store.clone();
        let writer = std::thread::Builder::new()
            .name("berth-cloudtrail".into())
            .spawn(move || write_loop(&writer_store, rx));
        match writer {
            Ok(handle) => Recorder {
                store,
                queue: Mutex::new(Some(tx)),
                writer: Mutex::new(Some(handle)),
            },
            Err(e) => {
                tracing::error!(error = %e, "cannot start the CloudTrail writer; recording inline");
                Recorder {
                    store,
                    queue: Mutex::new(None),
                    writer: Mutex::new(None),
                }
            }
        }
    }

    /// Records `call` (blocks only while the queue is full). Runs on blocking threads.
    pub fn record(&self, call: ApiCall) {
        let queue = lock(&self.queue).clone();
        let unsent = match queue {
            Some(q) => match q.send(Message::Call(Box::new(call))) {
                Ok(()) => None,
                Err(mpsc::SendError(Message::Call(call))) => Some(*call),
                Err(_) => None,
            },
            None => Some(call),
        };
        // No writer (never started, or shut down): store it here.
        if let Some(call) = unsent {
            store_batch(&self.store, vec![build(&call)]);
        }
    }

    /// Waits until every call recorded before is stored (for tests and orderly stops).
    pub fn flush(&self) {
        let queue = lock(&self.queue).clone();
        if let Some(q) = queue {
            let (tx, rx) = mpsc::sync_channel(1);
            if q.send(Message::Flush(tx)).is_ok() {
                let _ = rx.recv();
            }
        }
    }

    /// Closes the queue and waits until the writer has stored everything in it.
    pub fn shutdown(&self) {
        drop(lock(&self.queue).take());
        if let Some(handle) = lock(&self.writer).take()
            && handle.join().is_err()
        {
            tracing::error!("the CloudTrail writer panicked");
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn build(call: &ApiCall) -> TrailEvent {
    event::build(
        call,
        crate::ids::time_ordered(call.ctx.now.millis()).to_string(),
    )
}

fn write_loop(store: &Store, rx: Receiver<Message>) {
    // Ends when every sender is gone and the queue is empty.
    while let Ok(first) = rx.recv() {
        let opened = Instant::now();
        let mut batch = Vec::new();
        let mut flushes = Vec::new();
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Call(call) => batch.push(build(&call)),
                Message::Flush(done) => flushes.push(done),
            }
            if batch.len() >= BATCH_MAX {
                break;
            }
            // Whatever else comes within the linger joins this batch; a flush waits for none.
            next = match LINGER.checked_sub(opened.elapsed()) {
                Some(left) if flushes.is_empty() => rx.recv_timeout(left).ok(),
                _ => rx.try_recv().ok(),
            };
        }
        store_batch(store, batch);
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// Stores `batch` in one transaction, retrying a few times before giving up (with an error
/// logged: the store is then failing for every request too).
fn store_batch(store: &Store, batch: Vec<TrailEvent>) {
    if batch.is_empty() {
        return;
    }
    let mut last: Option<StoreError> = None;
    for attempt in 0..5 {
        match store.write(|tx| tx.append_trail_events(&batch)) {
            Ok(()) => return,
            Err(e) => {
                last = Some(e);
                std::thread::sleep(Duration::from_millis(50 << attempt));
            }
        }
    }
    if let Some(e) = last {
        tracing::error!(error = %e, events = batch.len(), "cannot store CloudTrail events");
    }
}
