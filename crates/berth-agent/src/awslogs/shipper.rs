//! The shipper of one container: it reads the shim's `stdout.log` and `stderr.log`, groups
//! lines into events, merges both streams by time and ships batches with PutLogEvents.
//!
//! Durability. The log files are the buffer; the shipper keeps a cursor (an offset per file)
//! in `<state dir>/awslogs/<container id>.json` and moves it only once PutLogEvents
//! succeeded, so an agent killed at any moment resumes where the last acknowledged batch
//! ended. Before each PutLogEvents the batch is recorded in the cursor as *pending* (its
//! first timestamp, its number of events, where it ends in each file). A pending batch that
//! was not acknowledged (the agent died, the answer was lost, the call timed out) may or may
//! not have been stored, so it is reconciled before anything else is sent: shipped events
//! never go back in time (see the watermark below) and only this shipper writes the stream,
//! so the stream holds events at or after the pending batch's first timestamp `t0` beyond
//! the ones already acknowledged at `t0` exactly if the batch was stored (PutLogEvents stores
//! a batch in one transaction). GetLogEvents from `t0` counts them; the cursor then moves
//! past the batch, or the batch is sent again.
//!
//! Order. The shim stamps each line when it reads it, so the two files are each in time
//! order but are read at slightly different moments. Only events older than a watermark are
//! shipped: the time the files were read minus [`WATERMARK_MS`], and never past the start of
//! a multiline event still open; once the container has exited everything goes. Anything
//! read later is therefore never older than what was shipped.

use std::collections::VecDeque;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth_wire::logs::shapes as logs;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::batch::{self, Batch};
use super::multiline::{Event, Grouper, Line};
use super::options::{AwslogsOptions, Mode};
use crate::control_plane::{ControlPlane, LogsCall, LogsReply, LogsScope};
use crate::error::ControlPlaneError;

/// Events younger than this (relative to when the files were read) wait for the next round.
pub const WATERMARK_MS: u64 = 100;
/// How often the files are looked at when there is nothing to ship.
const IDLE: Duration = Duration::from_millis(200);
/// At most this much is read from a file per round.
const READ_CHUNK: usize = 4 << 20;
/// Reading pauses while this many events wait.
const MAX_QUEUED: usize = 2 * batch::MAX_BATCH_EVENTS;
/// A pending batch is reconciled no sooner than this after it was sent, so that a request
/// the service is still storing (its sender was killed) is counted.
const RECONCILE_GRACE_MS: u64 = 2_000;

/// The batch sent but not (yet) known to be stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingBatch {
    pub first_ts: u64,
    pub events: u64,
    /// Per file, where the batch ends (the cursor after it).
    pub ends: Vec<u64>,
    /// The cursor's `last_ts`/`last_ts_count` after it.
    pub last_ts: u64,
    pub last_ts_count: u64,
    /// When it was sent (ms since the epoch).
    #[serde(default)]
    pub sent_at_ms: u64,
}

/// What `<state dir>/awslogs/<container id>.json` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cursor {
    /// Per file (stdout, stderr), the offset up to which everything is shipped.
    pub offsets: Vec<u64>,
    /// The newest timestamp shipped, and how many shipped events carry it.
    pub last_ts: u64,
    pub last_ts_count: u64,
    #[serde(default)]
    pub pending: Option<PendingBatch>,
    /// Events shipped and lines dropped (non-blocking mode) so far.
    #[serde(default)]
    pub shipped: u64,
    #[serde(default)]
    pub dropped_bytes: u64,
}

impl Cursor {
    /// Reads a cursor; a missing or unreadable one starts from the beginning.
    pub fn load(path: &Path, files: usize) -> Cursor {
        let mut c: Cursor = std::fs::read(path)
            .ok()
            .and_then(|d| serde_json::from_slice(&d).ok())
            .unwrap_or_default();
        c.offsets.resize(files, 0);
        c
    }

    fn save(&self, path: &Path) {
        match serde_json::to_vec(self) {
            Ok(data) => {
                if let Err(e) = crate::write_atomic(path, &data) {
                    tracing::warn!(%e, "cannot save the awslogs cursor");
                }
            }
            Err(e) => tracing::warn!(%e, "cannot encode the awslogs cursor"),
        }
    }

    /// The events already acknowledged at `t0` or later (all at `t0`: nothing shipped is
    /// newer than `last_ts`, and a batch never starts before it).
    pub fn acked_from(&self, t0: u64) -> u64 {
        if t0 == self.last_ts {
            self.last_ts_count
        } else {
            0
        }
    }
}

/// How a shipper ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The container is over and everything it wrote is shipped (or dropped as its options
    /// allow).
    Drained,
    /// The agent is shutting down; the cursor says where to resume.
    Shutdown,
}

/// What a shipper works on.
#[derive(Debug, Clone)]
pub struct ShipperSpec {
    pub scope: LogsScope,
    pub options: AwslogsOptions,
    /// The container's log files, stdout first.
    pub files: Vec<PathBuf>,
    /// Its cursor file.
    pub cursor_path: PathBuf,
}

/// Whether the container is over (its files will not grow any more).
pub type EndedFn = Arc<dyn Fn() -> bool + Send + Sync>;

fn aws_code(e: &ControlPlaneError) -> Option<&str> {
    match e {
        ControlPlaneError::Aws { code, .. } => Some(code.as_str()),
        _ => None,
    }
}

/// Creates the log group (with `awslogs-create-group`) and the stream; existing ones are
/// fine.
pub async fn init(
    cp: &dyn ControlPlane,
    scope: &LogsScope,
    o: &AwslogsOptions,
) -> Result<(), ControlPlaneError> {
    let exists = |r: Result<LogsReply, ControlPlaneError>| match r {
        Ok(_) => Ok(()),
        Err(e) if aws_code(&e) == Some("ResourceAlreadyExistsException") => Ok(()),
        Err(e) => Err(e),
    };
    let group = || {
        LogsCall::CreateLogGroup(logs::CreateLogGroupRequest {
            log_group_name: o.group.clone(),
            ..Default::default()
        })
    };
    if o.create_group {
        exists(cp.logs(scope.clone(), group()).await)?;
    }
    let stream = || {
        LogsCall::CreateLogStream(logs::CreateLogStreamRequest {
            log_group_name: o.group.clone(),
            log_stream_name: o.stream.clone(),
        })
    };
    exists(cp.logs(scope.clone(), stream()).await)
}

/// One log file being read.
struct Source {
    path: PathBuf,
    read_at: u64,
    grouper: Grouper,
    queue: VecDeque<Event>,
    last_ts: u64,
    at_eof: bool,
}

impl Source {
    /// Reads what was appended (complete lines; the rest too once `ended`). In non-blocking
    /// mode, output more than `max_backlog` bytes behind the end of the file is dropped;
    /// returns the bytes dropped.
    fn read(
        &mut self,
        acked: &mut u64,
        ended: bool,
        max_backlog: Option<u64>,
    ) -> std::io::Result<u64> {
        let mut f = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.at_eof = true;
                return Ok(0);
            }
            Err(e) => return Err(e),
        };
        let len = f.metadata()?.len();
        let mut dropped = 0;
        if let Some(max) = max_backlog
            && len.saturating_sub(*acked) > max
        {
            // Keep the newest `max` bytes, from the first whole line in them.
            let from = len - max;
            f.seek(SeekFrom::Start(from.saturating_sub(1)))?;
            let mut probe = vec![0u8; usize::try_from(max.min(1 << 20)).unwrap_or(1 << 20) + 1];
            let n = f.read(&mut probe)?;
            let skip = probe[..n]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(n, |p| p + 1);
            let start = from.saturating_sub(1) + skip as u64;
            dropped = start - *acked;
            self.queue.clear();
            self.grouper.reset();
            self.read_at = start;
            *acked = start;
        }
        if self.queue.len() >= MAX_QUEUED {
            self.at_eof = false;
            return Ok(dropped);
        }
        f.seek(SeekFrom::Start(self.read_at))?;
        let mut buf = Vec::new();
        (&mut f).take(READ_CHUNK as u64).read_to_end(&mut buf)?;
        // A line without its newline is complete only at the very end of a finished file.
        let complete = if ended && self.read_at + buf.len() as u64 >= len {
            buf.len()
        } else {
            buf.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1)
        };
        let base = self.read_at;
        let mut pos = 0usize;
        while pos < complete {
            let stop = buf[pos..complete]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(complete, |p| pos + p);
            let raw = &buf[pos..stop];
            let next = (stop + 1).min(complete);
            let (ts, text) = parse_line(raw, self.last_ts);
            self.last_ts = ts;
            let end = base + next as u64;
            self.queue.extend(self.grouper.push(Line {
                timestamp_ms: ts,
                text,
                end,
            }));
            pos = next;
        }
        self.read_at = base + complete as u64;
        self.at_eof = self.read_at >= len;
        Ok(dropped)
    }
}

/// Splits a shim line `<unix ms> <text>`; a line without a timestamp gets `fallback_ts`.
fn parse_line(raw: &[u8], fallback_ts: u64) -> (u64, String) {
    let text = String::from_utf8_lossy(raw);
    match text.split_once(' ') {
        Some((ts, rest)) if ts.bytes().all(|b| b.is_ascii_digit()) && !ts.is_empty() => {
            match ts.parse() {
                Ok(t) => (t, rest.to_string()),
                Err(_) => (fallback_ts, text.into_owned()),
            }
        }
        None if text.bytes().all(|b| b.is_ascii_digit()) && !text.is_empty() => {
            (text.parse().unwrap_or(fallback_ts), String::new())
        }
        _ => (fallback_ts, text.into_owned()),
    }
}

fn now_ms() -> u64 {
    berth_wire::Timestamp::now().0.max(0) as u64
}

/// Ships one container's output until it is drained or the agent shuts down.
pub struct Shipper {
    cp: Arc<dyn ControlPlane>,
    spec: ShipperSpec,
    ended: EndedFn,
    shutdown: watch::Receiver<bool>,
    cursor: Cursor,
    sources: Vec<Source>,
    stream_ready: bool,
}

impl Shipper {
    pub fn new(
        cp: Arc<dyn ControlPlane>,
        spec: ShipperSpec,
        ended: EndedFn,
        shutdown: watch::Receiver<bool>,
    ) -> Shipper {
        let cursor = Cursor::load(&spec.cursor_path, spec.files.len());
        let sources = spec
            .files
            .iter()
            .zip(&cursor.offsets)
            .map(|(p, &off)| Source {
                path: p.clone(),
                read_at: off,
                grouper: Grouper::new(spec.options.multiline_start.clone()),
                queue: VecDeque::new(),
                last_ts: cursor.last_ts,
                at_eof: false,
            })
            .collect();
        Shipper {
            cp,
            spec,
            ended,
            shutdown,
            cursor,
            sources,
            stream_ready: false,
        }
    }

    fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Waits `d`; false if the agent is shutting down.
    async fn pause(&mut self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = self.shutdown.changed() => {}
        }
        !self.stopping()
    }

    pub async fn run(mut self) -> Outcome {
        let mut backoff = Duration::from_millis(200);
        let what = format!("{}/{}", self.spec.options.group, self.spec.options.stream);
        loop {
            if self.stopping() {
                return Outcome::Shutdown;
            }
            if let Some(p) = self.cursor.pending.clone() {
                match self.reconcile(&p).await {
                    Ok(stored) => {
                        tracing::info!(stream = %what, stored, events = p.events, "reconciled an unacknowledged batch");
                        if stored {
                            self.acknowledge(&p, None);
                        } else {
                            self.cursor.pending = None;
                            self.cursor.save(&self.spec.cursor_path);
                        }
                        backoff = Duration::from_millis(200);
                    }
                    Err(e) => {
                        tracing::warn!(stream = %what, %e, ?backoff, "cannot reconcile the last batch yet");
                        if !self.pause(backoff).await {
                            return Outcome::Shutdown;
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                        continue;
                    }
                }
            }
            let ended = (self.ended)();
            let read_time = now_ms();
            let max_backlog = (self.spec.options.mode == Mode::NonBlocking)
                .then_some(self.spec.options.max_buffer_bytes);
            for i in 0..self.sources.len() {
                let mut acked = self.cursor.offsets[i];
                match self.sources[i].read(&mut acked, ended, max_backlog) {
                    Ok(0) => {}
                    Ok(dropped) => {
                        tracing::warn!(stream = %what, dropped_bytes = dropped, "non-blocking awslogs buffer full: oldest unshipped output dropped");
                        self.cursor.offsets[i] = acked;
                        self.cursor.dropped_bytes += dropped;
                    }
                    Err(e) => {
                        tracing::warn!(file = %self.sources[i].path.display(), %e, "reading container output")
                    }
                }
                let s = &mut self.sources[i];
                let all_read = ended && s.at_eof;
                if let Some(e) = s.grouper.flush(read_time, all_read) {
                    s.queue.push_back(e);
                }
            }
            let everything_read = ended && self.sources.iter().all(|s| s.at_eof);
            let below = if everything_read {
                u64::MAX
            } else {
                self.sources
                    .iter()
                    .filter_map(|s| s.grouper.open_since())
                    .fold(read_time.saturating_sub(WATERMARK_MS), u64::min)
            };
            let queues: Vec<&VecDeque<Event>> = self.sources.iter().map(|s| &s.queue).collect();
            let batch = batch::next_batch(&queues, below, self.cursor.last_ts);
            if batch.is_empty() {
                let idle = self.sources.iter().all(|s| s.queue.is_empty());
                if everything_read && idle {
                    tracing::debug!(stream = %what, shipped = self.cursor.shipped, "container output drained");
                    return Outcome::Drained;
                }
                if !self.pause(IDLE).await {
                    return Outcome::Shutdown;
                }
                continue;
            }
            let pending = self.pending_of(&batch);
            if batch.events.is_empty() {
                // Only empty lines: nothing to send.
                self.acknowledge(&pending, Some(&batch));
                continue;
            }
            match self.send(&batch, &pending).await {
                Ok(()) => {
                    self.acknowledge(&pending, Some(&batch));
                    backoff = Duration::from_millis(200);
                }
                Err(e) if e.is_retryable() => {
                    tracing::warn!(stream = %what, %e, ?backoff, "PutLogEvents failed; retrying");
                    if !self.pause(backoff).await {
                        return Outcome::Shutdown;
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
                Err(e) if aws_code(&e) == Some("ResourceNotFoundException") => {
                    // The group or stream was deleted: make them again (as Docker does for the
                    // stream), then reconcile and send.
                    tracing::warn!(stream = %what, %e, "log stream missing; creating it again");
                    self.stream_ready = false;
                    if !self.pause(backoff).await {
                        return Outcome::Shutdown;
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
                Err(e) => {
                    // A batch the service refuses would be refused forever: it is dropped.
                    tracing::error!(stream = %what, %e, events = batch.events.len(), "PutLogEvents refused the batch; dropping it");
                    let kept = PendingBatch {
                        last_ts: self.cursor.last_ts,
                        last_ts_count: self.cursor.last_ts_count,
                        ..pending
                    };
                    self.acknowledge(&kept, Some(&batch));
                }
            }
        }
    }

    fn pending_of(&self, b: &Batch) -> PendingBatch {
        let (last_ts, last_ts_count) =
            b.last_after((self.cursor.last_ts, self.cursor.last_ts_count));
        PendingBatch {
            first_ts: b
                .events
                .first()
                .map_or(self.cursor.last_ts, |e| e.timestamp as u64),
            events: b.events.len() as u64,
            ends: b
                .ends
                .iter()
                .zip(&self.cursor.offsets)
                .map(|(e, &o)| e.unwrap_or(o))
                .collect(),
            last_ts,
            last_ts_count,
            sent_at_ms: 0,
        }
    }

    /// Records the batch as pending, makes sure the stream exists, and sends it.
    async fn send(&mut self, b: &Batch, pending: &PendingBatch) -> Result<(), ControlPlaneError> {
        if !self.stream_ready {
            init(self.cp.as_ref(), &self.spec.scope, &self.spec.options).await?;
            self.stream_ready = true;
        }
        self.cursor.pending = Some(PendingBatch {
            sent_at_ms: now_ms(),
            ..pending.clone()
        });
        self.cursor.save(&self.spec.cursor_path);
        let call = LogsCall::PutLogEvents(logs::PutLogEventsRequest {
            log_group_name: self.spec.options.group.clone(),
            log_stream_name: self.spec.options.stream.clone(),
            log_events: b.events.clone(),
            ..Default::default()
        });
        match self.cp.logs(self.spec.scope.clone(), call).await? {
            LogsReply::PutLogEvents(r) => {
                if let Some(rej) = r.rejected_log_events_info {
                    tracing::warn!(?rej, "CloudWatch Logs rejected some events");
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Moves the cursor past a batch known to be stored (or deliberately skipped), and
    /// drops its events from the queues.
    fn acknowledge(&mut self, p: &PendingBatch, taken: Option<&Batch>) {
        for (i, s) in self.sources.iter_mut().enumerate() {
            match taken {
                Some(b) => {
                    s.queue.drain(..b.taken[i].min(s.queue.len()));
                }
                None => {
                    // A reconciled batch: whatever ends within it is shipped.
                    while s.queue.front().is_some_and(|e| e.end <= p.ends[i]) {
                        s.queue.pop_front();
                    }
                    if s.read_at < p.ends[i] {
                        s.read_at = p.ends[i];
                        s.grouper.reset();
                    }
                }
            }
        }
        self.cursor.offsets.clone_from(&p.ends);
        self.cursor.last_ts = p.last_ts;
        self.cursor.last_ts_count = p.last_ts_count;
        self.cursor.shipped += p.events;
        self.cursor.pending = None;
        self.cursor.save(&self.spec.cursor_path);
    }

    /// Whether the pending batch `p` was stored: the stream holds more events from `p`'s first
    /// timestamp on than were acknowledged there.
    async fn reconcile(&mut self, p: &PendingBatch) -> Result<bool, ControlPlaneError> {
        let wait = (p.sent_at_ms + RECONCILE_GRACE_MS).saturating_sub(now_ms());
        if wait > 0 {
            tokio::time::sleep(Duration::from_millis(wait.min(RECONCILE_GRACE_MS))).await;
        }
        let mut seen = 0u64;
        let mut token: Option<String> = None;
        loop {
            let call = LogsCall::GetLogEvents(logs::GetLogEventsRequest {
                log_group_name: Some(self.spec.options.group.clone()),
                log_stream_name: self.spec.options.stream.clone(),
                start_time: Some(p.first_ts as i64),
                start_from_head: Some(true),
                limit: Some(10_000),
                next_token: token.clone(),
                ..Default::default()
            });
            let reply = match self.cp.logs(self.spec.scope.clone(), call).await {
                Ok(LogsReply::GetLogEvents(r)) => r,
                Ok(_) => return Ok(false),
                Err(e) if aws_code(&e) == Some("ResourceNotFoundException") => return Ok(false),
                Err(e) => return Err(e),
            };
            let n = reply.events.as_ref().map_or(0, Vec::len) as u64;
            seen += n;
            if seen > self.cursor.acked_from(p.first_ts) {
                return Ok(true);
            }
            if n == 0 || reply.next_forward_token == token {
                return Ok(false);
            }
            token = reply.next_forward_token;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn shim_lines_parse() {
        assert_eq!(
            parse_line(b"1700000000000 hello world", 5),
            (1_700_000_000_000, "hello world".into())
        );
        assert_eq!(
            parse_line(b"1700000000000 ", 5),
            (1_700_000_000_000, String::new())
        );
        assert_eq!(
            parse_line(b"1700000000000", 5),
            (1_700_000_000_000, String::new())
        );
        assert_eq!(parse_line(b"garbage here", 5), (5, "garbage here".into()));
        assert_eq!(parse_line(b"12 \xff", 5), (12, "\u{fffd}".into()));
    }

    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    use berth_wire::agent::{PollRequest, PollResponse};
    use berth_wire::ecs::shapes as ecs;

    use crate::control_plane::BoxFuture;

    /// One in-memory stream. `lose` PutLogEvents calls store their batch but answer with a
    /// connection error; with `hang`, a PutLogEvents stores its batch and never answers (the
    /// agent dies there).
    #[derive(Default)]
    struct FakeLogs {
        events: Mutex<Vec<logs::InputLogEvent>>,
        puts: AtomicU32,
        lose: AtomicU32,
        hang: AtomicBool,
        down: AtomicBool,
    }

    fn gone() -> ControlPlaneError {
        ControlPlaneError::Unreachable {
            endpoint: "fake".into(),
            reason: "connection reset".into(),
        }
    }

    impl ControlPlane for FakeLogs {
        fn register(
            &self,
            _: ecs::RegisterContainerInstanceRequest,
        ) -> BoxFuture<'_, Result<ecs::RegisterContainerInstanceResponse, ControlPlaneError>>
        {
            Box::pin(async { Err(gone()) })
        }
        fn poll(&self, _: PollRequest) -> BoxFuture<'_, Result<PollResponse, ControlPlaneError>> {
            Box::pin(async { Err(gone()) })
        }
        fn submit_task_state(
            &self,
            _: ecs::SubmitTaskStateChangeRequest,
        ) -> BoxFuture<'_, Result<(), ControlPlaneError>> {
            Box::pin(async { Err(gone()) })
        }
        fn submit_container_state(
            &self,
            _: ecs::SubmitContainerStateChangeRequest,
        ) -> BoxFuture<'_, Result<(), ControlPlaneError>> {
            Box::pin(async { Err(gone()) })
        }
        fn logs(
            &self,
            _: LogsScope,
            call: LogsCall,
        ) -> BoxFuture<'_, Result<LogsReply, ControlPlaneError>> {
            Box::pin(async move {
                if self.down.load(Ordering::SeqCst) {
                    return Err(gone());
                }
                match call {
                    LogsCall::PutLogEvents(r) => {
                        self.puts.fetch_add(1, Ordering::SeqCst);
                        assert!(r.log_events.len() <= batch::MAX_BATCH_EVENTS);
                        self.events.lock().unwrap().extend(r.log_events);
                        if self.hang.load(Ordering::SeqCst) {
                            std::future::pending::<()>().await;
                        }
                        if self.lose.load(Ordering::SeqCst) > 0 {
                            self.lose.fetch_sub(1, Ordering::SeqCst);
                            return Err(gone());
                        }
                        Ok(LogsReply::PutLogEvents(Default::default()))
                    }
                    LogsCall::GetLogEvents(r) => {
                        let from: usize = r.next_token.as_deref().map_or(0, |t| t.parse().unwrap());
                        let all: Vec<_> = self
                            .events
                            .lock()
                            .unwrap()
                            .iter()
                            .filter(|e| e.timestamp >= r.start_time.unwrap_or(0))
                            .cloned()
                            .collect();
                        let page: Vec<_> = all.iter().skip(from).take(1000).collect();
                        Ok(LogsReply::GetLogEvents(logs::GetLogEventsResponse {
                            next_forward_token: Some((from + page.len()).to_string()),
                            events: Some(
                                page.into_iter()
                                    .map(|e| logs::OutputLogEvent {
                                        timestamp: Some(e.timestamp),
                                        message: Some(e.message.clone()),
                                        ingestion_time: None,
                                    })
                                    .collect(),
                            ),
                            next_backward_token: None,
                        }))
                    }
                    _ => Ok(LogsReply::Done),
                }
            })
        }
    }

    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        fn new() -> Files {
            Files {
                dir: tempfile::tempdir().unwrap(),
            }
        }
        fn append(&self, name: &str, lines: &[(u64, &str)]) {
            use std::io::Write as _;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.path().join(name))
                .unwrap();
            for (ts, text) in lines {
                writeln!(f, "{ts} {text}").unwrap();
            }
        }
        fn spec(&self, multiline: Option<&str>) -> ShipperSpec {
            let mut opts: std::collections::BTreeMap<String, String> =
                [("awslogs-group".to_string(), "g".to_string())].into();
            if let Some(p) = multiline {
                opts.insert("awslogs-multiline-pattern".into(), p.into());
            }
            ShipperSpec {
                scope: LogsScope {
                    task_arn: "arn:aws:ecs:us-east-1:000000000000:task/c/t".into(),
                    region: "us-east-1".into(),
                    execution_role: Default::default(),
                },
                options: super::super::options::parse(&opts, "us-east-1", "web", "t", "t-web")
                    .unwrap(),
                files: vec![
                    self.dir.path().join("stdout.log"),
                    self.dir.path().join("stderr.log"),
                ],
                cursor_path: self.dir.path().join("cursor.json"),
            }
        }
    }

    fn shipper(cp: &Arc<FakeLogs>, spec: ShipperSpec) -> (Shipper, watch::Sender<bool>) {
        let (tx, rx) = watch::channel(false);
        let ended: EndedFn = Arc::new(|| true);
        (Shipper::new(cp.clone(), spec, ended, rx), tx)
    }

    fn messages(cp: &FakeLogs) -> Vec<String> {
        cp.events
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.message.clone())
            .collect()
    }

    #[tokio::test]
    async fn both_streams_ship_in_time_order_with_multiline_events() {
        let files = Files::new();
        files.append(
            "stdout.log",
            &[
                (1, "INFO start"),
                (3, "ERROR boom"),
                (3, "  at a()"),
                (4, "  at b()"),
                (6, "INFO end"),
            ],
        );
        files.append("stderr.log", &[(2, "INFO warn"), (5, ""), (5, "INFO late")]);
        let cp = Arc::new(FakeLogs::default());
        let (s, _tx) = shipper(&cp, files.spec(Some("INFO|ERROR")));
        assert_eq!(s.run().await, Outcome::Drained);
        assert_eq!(
            messages(&cp),
            // With a start pattern an empty line belongs to the event before it.
            [
                "INFO start",
                "INFO warn\n",
                "ERROR boom\n  at a()\n  at b()",
                "INFO late",
                "INFO end"
            ]
        );
        let c = Cursor::load(&files.spec(None).cursor_path, 2);
        assert!(c.pending.is_none());
        assert_eq!(c.last_ts, 6);
    }

    fn burst(n: usize) -> Vec<(u64, String)> {
        (0..n)
            .map(|i| (1_000 + i as u64 / 7, format!("line {i:06}")))
            .collect()
    }

    fn append_burst(files: &Files, lines: &[(u64, String)]) {
        let refs: Vec<(u64, &str)> = lines.iter().map(|(t, s)| (*t, s.as_str())).collect();
        files.append("stdout.log", &refs);
    }

    #[tokio::test]
    async fn lost_answers_are_reconciled_not_doubled() {
        let files = Files::new();
        let lines = burst(25_000);
        append_burst(&files, &lines);
        let cp = Arc::new(FakeLogs::default());
        cp.lose.store(2, Ordering::SeqCst);
        let (s, _tx) = shipper(&cp, files.spec(None));
        assert_eq!(s.run().await, Outcome::Drained);
        let want: Vec<String> = lines.iter().map(|(_, s)| s.clone()).collect();
        assert_eq!(messages(&cp), want);
    }

    #[tokio::test]
    async fn a_shipper_killed_after_a_store_resumes_exactly_once() {
        let files = Files::new();
        let lines = burst(25_000);
        append_burst(&files, &lines);
        let cp = Arc::new(FakeLogs::default());
        // The first PutLogEvents stores its batch and the agent dies before the answer.
        cp.hang.store(true, Ordering::SeqCst);
        let (s, _tx) = shipper(&cp, files.spec(None));
        let h = tokio::spawn(s.run());
        while cp.puts.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        h.abort();
        let _ = h.await;
        assert!(
            Cursor::load(&files.spec(None).cursor_path, 2)
                .pending
                .is_some()
        );
        // A control plane outage at restart: the new shipper waits, then reconciles.
        cp.hang.store(false, Ordering::SeqCst);
        cp.down.store(true, Ordering::SeqCst);
        let (s, _tx) = shipper(&cp, files.spec(None));
        let h = tokio::spawn(s.run());
        tokio::time::sleep(Duration::from_millis(300)).await;
        cp.down.store(false, Ordering::SeqCst);
        assert_eq!(h.await.unwrap(), Outcome::Drained);
        let want: Vec<String> = lines.iter().map(|(_, s)| s.clone()).collect();
        assert_eq!(messages(&cp), want);
        // A batch that was never stored is sent again after a restart.
        let files = Files::new();
        append_burst(&files, &lines);
        let cp = Arc::new(FakeLogs::default());
        cp.down.store(true, Ordering::SeqCst);
        let (s, tx) = shipper(&cp, files.spec(None));
        let h = tokio::spawn(s.run());
        tokio::time::sleep(Duration::from_millis(300)).await;
        tx.send(true).unwrap();
        assert_eq!(h.await.unwrap(), Outcome::Shutdown);
        cp.down.store(false, Ordering::SeqCst);
        let (s, _tx) = shipper(&cp, files.spec(None));
        assert_eq!(s.run().await, Outcome::Drained);
        assert_eq!(messages(&cp), want);
    }

    #[tokio::test]
    async fn non_blocking_mode_drops_the_oldest_output_beyond_the_buffer() {
        let files = Files::new();
        let lines = burst(10_000);
        append_burst(&files, &lines);
        let mut spec = files.spec(None);
        spec.options.mode = Mode::NonBlocking;
        spec.options.max_buffer_bytes = 4096;
        let cp = Arc::new(FakeLogs::default());
        let (s, _tx) = shipper(&cp, spec);
        assert_eq!(s.run().await, Outcome::Drained);
        let got = messages(&cp);
        assert!(!got.is_empty() && got.len() < 4096 / 10, "{}", got.len());
        assert_eq!(got.last(), lines.last().map(|(_, s)| s));
        let c = Cursor::load(&files.spec(None).cursor_path, 2);
        assert!(c.dropped_bytes > 0);
    }

    #[test]
    fn acknowledged_events_at_the_first_timestamp_count() {
        let c = Cursor {
            last_ts: 10,
            last_ts_count: 3,
            ..Default::default()
        };
        assert_eq!(c.acked_from(10), 3);
        assert_eq!(c.acked_from(11), 0);
    }
}
