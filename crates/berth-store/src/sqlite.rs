//! The SQLite backend: one writer connection, a small pool of reader connections (WAL lets
//! readers run beside the writer), every call a transaction.
//!
//! **Group commit.** Writes share the writer's transaction while others wait for it: each
//! write runs its closure (on its own thread, holding the writer) inside a savepoint of the
//! open transaction, which is committed by the first write that finishes with nobody waiting
//! (or when the group holds [`GROUP_MAX_WRITES`] writes or is [`GROUP_MAX_AGE`] old). A write
//! returns once its group committed, so what it acknowledged is in the WAL as before. A
//! closure that fails is rolled back to its savepoint alone: it never takes its group's other
//! writes with it. (The group's first write needs no savepoint: failing, it rolls back the
//! transaction, which holds nothing else.) Under load one commit (its WAL pages, its B-tree
//! pages written once) serves dozens of calls; alone, a write commits at once as it always
//! did.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::hot::{self, Body, Dirty, HotEntry, HotRecord, HotState, HotWork, Op};
use crate::migrations::MIGRATIONS;
use crate::{
    AccessKey, Change, HostEntry, LogEvent, LogRange, LogStreams, Record, Scope, StoreError,
    TrailAttribute, TrailEvent, TrailQuery, TrailResource,
};

/// Readers kept open beside the writer.
const READERS: usize = 4;

/// At most this many writes share one commit.
pub const GROUP_MAX_WRITES: usize = 256;
/// A group open this long commits at the next write's end even if others wait.
pub const GROUP_MAX_AGE: Duration = Duration::from_millis(20);

pub struct Store {
    writer: Mutex<Writer>,
    /// Writes waiting for the writer: while some are, a finished write leaves its group's
    /// transaction open for them.
    waiting: AtomicUsize,
    readers: Vec<Mutex<Connection>>,
    observer: RwLock<Option<Observer>>,
    /// Writes committed and commits made (their ratio is the mean group size).
    committed_writes: AtomicU64,
    commits: AtomicU64,
    /// Nanoseconds the writer was held, in total (how busy the one serial path is).
    writer_held_ns: AtomicU64,
    /// Copies the WAL back into the database file beside the writer (`None` in memory).
    _checkpointer: Option<Checkpointer>,
    /// The checkpointer asks the writer to start the WAL over (see [`Checkpointer`]).
    restart_wal: Arc<AtomicBool>,
    /// WAL restarts done.
    wal_restarts: AtomicU64,
    /// Whether the thread holding the writer runs at a raised priority (see
    /// [`crate::priority`]); off for a store whose writer nobody waits for.
    raise_writer: AtomicBool,
    /// Each host's highest entry sequence this process wrote or read (see
    /// [`Store::host_sequence_seen`]).
    host_sequences_seen: Mutex<HashMap<String, i64>>,
    /// Access keys the gateway looked up, with when (see [`Store::access_key`]).
    access_keys: Mutex<HashMap<String, (AccessKey, Instant)>>,
    /// Moved (and the cache emptied) by every write that changes access keys, before its
    /// commit and again once committed: a lookup caches what it read only if no such write
    /// began meanwhile.
    access_keys_generation: AtomicU64,
    /// The committed hot states readers pick from, when the store holds kinds in memory
    /// (see [`crate::hot`]).
    hot: Option<Published>,
    /// What [`Store::hot_stats`] reports, kept by the writer.
    hot_counters: HotCounters,
}

/// Counters of the hot state's writer side.
#[derive(Default)]
struct HotCounters {
    group: std::sync::atomic::AtomicI64,
    unfolded_keys: AtomicU64,
    folds: AtomicU64,
    fold_failures: AtomicU64,
}

/// How the hot state stands (see [`Store::hot_stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HotStats {
    /// The last group committed with changes to it (its log row's number).
    pub group: i64,
    /// Keys changed that the tables do not hold yet (the log does).
    pub unfolded_keys: u64,
    /// Folds completed since the store was opened.
    pub folds: u64,
    /// Fold steps that failed (each retried after the next commit).
    pub fold_failures: u64,
}

/// The hot states of the last groups committed, oldest first: a reader takes the one of the
/// group its SQLite snapshot sees (the `hot_log`'s last row), so that what it reads in
/// memory and in the tables is the state of one commit.
struct Published {
    states: Mutex<VecDeque<Arc<HotState>>>,
    /// Signalled when a state is published (a reader whose snapshot saw a group committed
    /// a moment ago waits for its state).
    more: Condvar,
}

/// Drops `state` on a thread of its own when this is its last reference. The oldest
/// published state is mostly released by the writer, in its commit, and dropping it frees
/// what the groups since replaced (records' old bodies, the map nodes they copied on write):
/// about a twentieth of the writer's time under load, off the one serial path this way.
/// Should the thread be missing or behind, the caller drops it.
fn drop_elsewhere(state: Arc<HotState>) {
    static DROPPER: std::sync::OnceLock<Option<SyncSender<Arc<HotState>>>> =
        std::sync::OnceLock::new();
    if Arc::strong_count(&state) > 1 {
        return;
    }
    let dropper = DROPPER.get_or_init(|| {
        let (tx, rx) = sync_channel::<Arc<HotState>>(64);
        std::thread::Builder::new()
            .name("berth-hot-drop".into())
            .spawn(move || rx.into_iter().for_each(drop))
            .ok()
            .map(|_| tx)
    });
    if let Some(tx) = dropper {
        // Full or gone: dropped here when the error (holding it) goes.
        let _ = tx.try_send(state);
    }
}

/// Hot states kept for readers: a reader looks its state up right after its snapshot is
/// fixed, while the writer publishes a group at most every few hundred microseconds.
const PUBLISHED_KEPT: usize = 16;

/// How long a reader waits for the state of a group its snapshot saw committed (published
/// by the committing writer right after its COMMIT returned).
const PUBLISH_WAIT: Duration = Duration::from_secs(10);

impl Published {
    fn publish(&self, state: Arc<HotState>) {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        let oldest = if states.len() >= PUBLISHED_KEPT {
            states.pop_front()
        } else {
            None
        };
        states.push_back(state);
        drop(states);
        self.more.notify_all();
        if let Some(oldest) = oldest {
            drop_elsewhere(oldest);
        }
    }

    /// The state as of `group`; `None` if it is no longer kept (the reader starts over).
    fn at(&self, group: i64) -> Result<Option<Arc<HotState>>, StoreError> {
        let deadline = Instant::now() + PUBLISH_WAIT;
        let mut states = lock(&self.states)?;
        loop {
            if let Some(s) = states.iter().rev().find(|s| s.group == group) {
                return Ok(Some(s.clone()));
            }
            let newest = states.back().map_or(i64::MIN, |s| s.group);
            if newest > group {
                return Ok(None);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StoreError::Commit(format!(
                    "the hot state of group {group} was never published"
                )));
            }
            states = self
                .more
                .wait_timeout(states, left)
                .map_err(|_| StoreError::Poisoned)?
                .0;
        }
    }
}

/// The writer's side of the hot state.
struct WriterHot {
    /// The last committed state.
    committed: Arc<HotState>,
    /// The open group's state and ops (`None` between groups).
    work: Option<HotWork>,
    /// The open write's savepoint: the group's state and op count before it.
    saved: Option<(HotState, usize)>,
    /// Keys changed since the last fold began (what the tables lack).
    dirty: HashSet<Dirty>,
    /// The fold under way, if any.
    fold: Option<Fold>,
    last_fold: Instant,
    /// When a fold starts and how much it writes a step ([`FOLD_DIRTY_KEYS`],
    /// [`FOLD_EVERY`], [`FOLD_CHUNK`]; smaller in tests).
    fold_keys: usize,
    fold_every: Duration,
    fold_chunk: usize,
}

/// Bringing the tables up to a group's state: the keys left to write, and the group whose
/// log rows (and those before it) are no longer needed once they are written. Each key is
/// written at its latest value (the group's or a later one, which the log also holds).
struct Fold {
    /// In reverse key order: the next key to write is the last.
    pending: Vec<Dirty>,
    upto: i64,
}

/// A fold starts when this many keys changed since the last one (about 80,000 placements:
/// each changes its task, its host entry and its instance's usage)...
///
/// A wider window folds less per placement: a task created and reported RUNNING within it
/// is written once, an instance's usage once however many tasks it took, and the host
/// entries' pages (in host order, so a placement's lands anywhere) once for many entries.
/// At 1,000,000 tasks on 10,000 instances this window placed 7,239 and 7,544 a second
/// against 6,581 and 6,630 for 50,000 keys and 5 s, run in alternation; 150,000 and 600,000
/// keys did worse than 250,000 (BENCHMARKS, nineteenth session). The price: the log keeps
/// up to a window of changes (a few hundred MB at full rate) until its fold ends, and an
/// open after a crash replays them.
const FOLD_DIRTY_KEYS: usize = 250_000;
/// ...or this long after the last one began, if any did.
const FOLD_EVERY: Duration = Duration::from_secs(20);
/// Keys a fold writes after each commit at least (and twice as many as the group changed,
/// so that it outpaces the changes).
const FOLD_CHUNK: usize = 256;

/// How long a cached access key is trusted without a read: what another process (not this
/// store's writes, which empty the cache) changed in the file shows within it.
const ACCESS_KEY_CACHE_FOR: Duration = Duration::from_secs(5);

/// Access keys cached at most (emptied when full).
const ACCESS_KEY_CACHE_ENTRIES: usize = 4096;

/// WAL frames (pages) past which the writer starts the WAL over: 64 MiB of 4 KiB pages.
const WAL_RESTART_FRAMES: i64 = 16 * 1024;

/// How often the checkpointer looks at the WAL. A checkpoint copies each page the WAL holds
/// once, however many commits wrote it since the last: the same hot pages (the ends of
/// growing indexes, counters) are copied five times less often than at 100 ms, which cost
/// the checkpoint threads a third more CPU at 10,000 instances (fifteenth benchmark session).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// A thread with its own connection that checkpoints the WAL (PASSIVE: it never blocks the
/// writer or a reader). SQLite's automatic checkpoint would run inside the commit that crossed
/// the WAL's threshold, holding the writer for the copy of every page: a tenth of the server's
/// time under load. Stopped (and joined) when the store is dropped.
///
/// A PASSIVE checkpoint copies the WAL back, but the WAL starts over only when a writer finds
/// it all copied and no reader in it, which under steady load never happens. Past
/// [`WAL_RESTART_FRAMES`] the thread asks the writer to restart it: the writer's holder does,
/// between two groups (see [`Holding::commit`]). The thread used to do it itself (a TRUNCATE
/// checkpoint), but it needs SQLite's write lock, which a busy writer's back-to-back groups
/// hold almost always: it got it about once in ten seconds, and the WAL grew past a GiB, every
/// read probing a hash table per 4,096 of its frames.
struct Checkpointer {
    /// Dropped to stop the thread (it sees the channel disconnect).
    stop: Option<SyncSender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    fn start(path: &Path, restart: Arc<AtomicBool>) -> Result<Checkpointer, StoreError> {
        let conn = open_connection(path)?;
        let (stop, stopped) = sync_channel::<()>(0);
        let thread = std::thread::Builder::new()
            .name("berth-checkpoint".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY) {
                    // Busy or failed checkpoints are retried at the next turn; the WAL only
                    // grows meanwhile, nothing is lost.
                    let log_frames = conn
                        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1))
                        .unwrap_or(0);
                    if log_frames > WAL_RESTART_FRAMES {
                        restart.store(true, Ordering::Relaxed);
                    }
                }
            })
            .map_err(|e| StoreError::Open {
                path: path.display().to_string(),
                reason: format!("cannot start the checkpoint thread: {e}"),
            })?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The writer connection and the group of writes its open transaction holds, if any.
struct Writer {
    conn: Connection,
    group: Option<Group>,
    /// The hot state's writer side, when the store holds kinds in memory.
    hot: Option<WriterHot>,
}

/// Writes done in the open transaction, waiting for its commit.
struct Group {
    opened: Instant,
    /// Each write's way to hear the commit's outcome.
    members: Vec<CommitListener>,
}

/// How a group's commit went (the reason when it failed).
type CommitOutcome = Result<(), String>;

/// Where a write hears its group's [`CommitOutcome`].
type CommitListener = SyncSender<CommitOutcome>;

/// Told, after each commit, which records of the kinds it watches the commit changed.
#[derive(Clone)]
struct Observer {
    kinds: Arc<[String]>,
    call: ObserverFn,
}

type ObserverFn = Arc<dyn Fn(&[Change]) + Send + Sync>;

/// Work to run once the write's changes are the store's state (see [`Tx::after_commit`]).
type Effect = Box<dyn FnOnce() + Send>;

/// A transaction. Reads see one consistent snapshot; writes (through [`Store::write`]) commit
/// together or not at all.
pub struct Tx<'c> {
    conn: &'c Connection,
    /// The hot state this transaction sees (and, writing, changes).
    hot: HotTx<'c>,
    watched: Option<Arc<[String]>>,
    changes: Vec<Change>,
    effects: Vec<Effect>,
    /// The host-entry counter as this write moves it: (last value handed out, value stored).
    /// Read at the write's first entry, stored once at its end (see [`Tx::next_host_sequence`]).
    host_sequence: Option<(i64, i64)>,
    /// The hosts this write filed entries under, with each one's highest sequence.
    hosts_written: Vec<(String, i64)>,
    /// This write changed access keys.
    access_keys_changed: bool,
}

/// The hot state as a transaction sees it.
enum HotTx<'c> {
    /// The store holds nothing in memory.
    Off,
    /// A reader's state, of the group its snapshot sees.
    Read(Arc<HotState>),
    /// The writer's group in progress.
    Write(&'c mut HotWork),
}

fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>, StoreError> {
    m.lock().map_err(|_| StoreError::Poisoned)
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|e| StoreError::Open {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Only a new, empty database takes it (an existing one keeps the page size it has): a
    // task record and a container instance record fit in place on pages of this size.
    conn.pragma_update(None, "page_size", PAGE_BYTES)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // NORMAL in WAL mode: a commit is in the WAL (the OS's page cache) when it returns, so
    // a killed process loses nothing; only a power cut may drop the last commits.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // A write runs in a savepoint of its group's transaction (all but a group's first): the
    // original of every page it changes goes to the savepoint's sub-journal, which past
    // 64 KiB spilled into a temporary file (a write() per page, inside the writer). In
    // memory, it is a copy.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // Reads map the database file instead of copying each page in (pread) and caching it per
    // connection: a write elsewhere empties a reader's page cache, a mapping stays valid.
    conn.pragma_update(None, "mmap_size", MMAP_BYTES)?;
    keep_statements(&conn)?;
    Ok(conn)
}

/// Makes a connection's prepared statements last: room in its cache for every statement the
/// handlers prepare (rusqlite keeps 16 by default, fewer than one busy connection cycles
/// through), and plans that do not depend on bound values. Without the latter, SQLite reads
/// the value bound to `LIMIT ?` while planning, so every new binding expired the statement
/// and each run compiled it again (in every RunTask's lookup of its family's latest revision,
/// inside the writer, and in every listing). Our statements' plans follow their indexes,
/// never a bound value.
fn keep_statements(conn: &Connection) -> Result<(), StoreError> {
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

/// How long a connection waits for a lock another one holds.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the writer waits for readers to leave the WAL it restarts.
const RESTART_WAIT: Duration = Duration::from_millis(50);

/// The page size of a new database.
const PAGE_BYTES: i64 = 4096;

/// Prepared statements each connection keeps.
const STATEMENT_CACHE: usize = 128;

/// How much of the database file connections map (SQLite caps it at its own limit, 2 GiB by
/// default); the rest is read with pread.
const MMAP_BYTES: i64 = 1 << 31;

/// The writer, held: ends the group when due, including when a write's closure panics (its
/// savepoint rolled back, the group committed so nobody waits forever).
struct Holding<'s> {
    store: &'s Store,
    w: MutexGuard<'s, Writer>,
    /// A write is under way.
    in_write: bool,
    /// The write under way has a savepoint of its own. Its group's first write has none: if
    /// it fails, the group's transaction, which holds nothing else, is rolled back whole.
    /// (A savepoint keeps a copy of every page the write changes, in memory: for a CloudTrail
    /// batch, hundreds of pages and a sixth of its thread's CPU.)
    savepoint: bool,
    observer: Option<Observer>,
    since: Instant,
    /// Outcomes of ended groups, told to their members once the writer is released (each
    /// one wakes a thread: woken while the writer is held, they preempted its holder).
    outcomes: Vec<(CommitListener, CommitOutcome)>,
    /// The holding thread's raised priority (see [`crate::priority`]).
    _raised: crate::priority::Raised,
}

impl Holding<'_> {
    /// Opens the group's transaction if none is open.
    fn begin(&mut self) -> Result<(), StoreError> {
        if self.w.group.is_none() {
            control(&self.w.conn, "BEGIN IMMEDIATE")?;
            self.w.group = Some(Group {
                opened: Instant::now(),
                members: Vec::new(),
            });
            if let Some(h) = self.w.hot.as_mut() {
                h.work = Some(HotWork {
                    state: (*h.committed).clone(),
                    ops: Vec::new(),
                });
            }
        }
        Ok(())
    }

    /// Notes the hot state at the start of a write (its savepoint).
    fn save_hot(&mut self) {
        if let Some(h) = self.w.hot.as_mut() {
            h.saved = h.work.as_ref().map(|w| (w.state.clone(), w.ops.len()));
        }
    }

    /// Appends the open group's hot ops to the log (in its transaction); the group's state
    /// and its ops, if it changed anything held in memory.
    fn log_hot(&mut self) -> Result<Option<(HotState, Vec<Op>)>, StoreError> {
        let Some(h) = self.w.hot.as_mut() else {
            return Ok(None);
        };
        h.saved = None;
        let Some(mut work) = h.work.take().filter(|w| !w.ops.is_empty()) else {
            return Ok(None);
        };
        work.state.group = h.committed.group + 1;
        self.w
            .conn
            .prepare_cached("INSERT INTO hot_log (group_no, ops) VALUES (?1, ?2)")?
            .execute(params![work.state.group, hot::encode_ops(&work.ops)])?;
        Ok(Some((work.state, work.ops)))
    }

    /// Makes a committed group's hot state the one later groups and readers start from.
    fn publish_hot(&mut self, state: HotState, ops: &[Op]) {
        let Some(h) = self.w.hot.as_mut() else {
            return;
        };
        let state = Arc::new(state);
        h.committed = state.clone();
        h.dirty.extend(ops.iter().filter_map(Op::dirty));
        let c = &self.store.hot_counters;
        c.group.store(state.group, Ordering::Relaxed);
        let pending = h.fold.as_ref().map_or(0, |f| f.pending.len());
        c.unfolded_keys
            .store((h.dirty.len() + pending) as u64, Ordering::Relaxed);
        if let Some(p) = &self.store.hot {
            p.publish(state);
        }
    }

    /// Brings the tables closer to the hot state, between two groups: starts a fold when
    /// enough changed, then writes the next keys of the fold under way (about twice as many
    /// as the group that just committed changed) in a transaction of their own. Once a fold
    /// wrote its last key, the log rows it covers are deleted. A failed step is retried
    /// after the next commit; the log keeps everything meanwhile.
    fn fold_hot(&mut self, changed: usize) {
        let w = &mut *self.w;
        let Some(h) = w.hot.as_mut() else {
            return;
        };
        if h.fold.is_none() {
            let due = h.dirty.len() >= h.fold_keys
                || (!h.dirty.is_empty() && h.last_fold.elapsed() >= h.fold_every);
            if !due {
                return;
            }
            // The next window's set starts at this one's size: grown from empty, it was
            // rehashed a dozen times on the writer's path on the way to the fold's threshold.
            let next = HashSet::with_capacity(h.dirty.len());
            let mut pending: Vec<Dirty> =
                std::mem::replace(&mut h.dirty, next).into_iter().collect();
            pending.sort_unstable_by(|a, b| b.cmp(a));
            h.fold = Some(Fold {
                pending,
                upto: h.committed.group,
            });
            h.last_fold = Instant::now();
        }
        let Some(fold) = h.fold.as_mut() else {
            return;
        };
        let n = h.fold_chunk.max(changed.saturating_mul(2));
        let mut keys = Vec::with_capacity(n.min(fold.pending.len()));
        while keys.len() < n {
            match fold.pending.pop() {
                Some(k) => keys.push(k),
                None => break,
            }
        }
        let last = fold.pending.is_empty();
        let upto = fold.upto;
        let written = (|| -> Result<(), StoreError> {
            control(&w.conn, "BEGIN IMMEDIATE")?;
            for k in &keys {
                write_back(&w.conn, &h.committed, k)?;
            }
            if last {
                w.conn
                    .prepare_cached("DELETE FROM hot_log WHERE group_no < ?1")?
                    .execute(params![upto])?;
            }
            control(&w.conn, "COMMIT")?;
            Ok(())
        })();
        let c = &self.store.hot_counters;
        match written {
            Ok(()) if last => {
                h.fold = None;
                c.folds.fetch_add(1, Ordering::Relaxed);
            }
            Ok(()) => {}
            Err(_) => {
                c.fold_failures.fetch_add(1, Ordering::Relaxed);
                if !w.conn.is_autocommit() {
                    let _ = w.conn.execute_batch("ROLLBACK");
                }
                if let Some(f) = h.fold.as_mut() {
                    f.pending.extend(keys.into_iter().rev());
                }
            }
        }
    }

    /// Commits the open group (or, if the commit fails, rolls it back and tells its members
    /// and the observer).
    fn commit(&mut self) {
        let Some(g) = self.w.group.take() else {
            return;
        };
        let committed = match self.log_hot() {
            Ok(hot) => control(&self.w.conn, "COMMIT")
                .map(|()| hot)
                .map_err(StoreError::from),
            Err(e) => Err(e),
        };
        let outcome = match committed {
            Ok(hot) => {
                let changed = hot.as_ref().map_or(0, |(_, ops)| ops.len());
                if let Some((state, ops)) = hot {
                    self.publish_hot(state, &ops);
                }
                self.fold_hot(changed);
                if !g.members.is_empty() {
                    self.store.commits.fetch_add(1, Ordering::Relaxed);
                }
                self.store
                    .committed_writes
                    .fetch_add(g.members.len() as u64, Ordering::Relaxed);
                if self.store.restart_wal.swap(false, Ordering::Relaxed) {
                    self.restart_wal();
                }
                Ok(())
            }
            Err(e) => {
                if !self.w.conn.is_autocommit() {
                    let _ = self.w.conn.execute_batch("ROLLBACK");
                }
                self.reset_observer();
                Err(format!("the commit failed: {e}"))
            }
        };
        self.outcomes
            .extend(g.members.into_iter().map(|m| (m, outcome.clone())));
    }

    /// Starts the WAL over, between two groups (no transaction open, so SQLite's write lock
    /// is free): what the checkpointer has not copied yet is copied, the readers still in the
    /// WAL are waited for (briefly: a long one only postpones the restart to a later request),
    /// and the next commit writes from the WAL's start.
    fn restart_wal(&mut self) {
        let conn = &self.w.conn;
        if conn.busy_timeout(RESTART_WAIT).is_err() {
            return;
        }
        let restarted = conn
            .query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| r.get::<_, i64>(0))
            .is_ok_and(|busy| busy == 0);
        if restarted {
            self.store.wal_restarts.fetch_add(1, Ordering::Relaxed);
        }
        let _ = conn.busy_timeout(BUSY_TIMEOUT);
    }

    /// The open transaction was lost (SQLite rolled it back): its members fail.
    fn lost(&mut self, why: &str) {
        if let Some(g) = self.discard_group() {
            self.reset_observer();
            self.outcomes
                .extend(g.members.into_iter().map(|m| (m, Err(why.to_string()))));
        }
    }

    /// Forgets the open group and its hot state (its transaction is already rolled back).
    fn discard_group(&mut self) -> Option<Group> {
        if let Some(h) = self.w.hot.as_mut() {
            h.work = None;
            h.saved = None;
        }
        self.w.group.take()
    }

    fn reset_observer(&self) {
        if let Some(o) = &self.observer {
            (o.call)(&[Change::Reset]);
        }
    }

    /// Commits when nobody waits for the writer, or the group is full or old.
    fn commit_if_due(&mut self) {
        let due = match &self.w.group {
            None => return,
            Some(g) => {
                self.store.waiting.load(Ordering::SeqCst) == 0
                    || g.members.len() >= GROUP_MAX_WRITES
                    || g.opened.elapsed() >= GROUP_MAX_AGE
            }
        };
        if due {
            self.commit();
        }
    }

    /// Undoes the current write (its savepoint); a transaction SQLite already rolled back
    /// takes its group with it.
    fn undo_write(&mut self) {
        if !self.in_write {
            return;
        }
        self.in_write = false;
        if !self.savepoint {
            // The group's first write: nothing else to keep, nothing told to observers yet.
            if !self.w.conn.is_autocommit() {
                let _ = self.w.conn.execute_batch("ROLLBACK");
            }
            self.discard_group();
            return;
        }
        if self.w.conn.is_autocommit() {
            self.lost("the transaction was rolled back by a failed write");
            return;
        }
        if self
            .w
            .conn
            .execute_batch("ROLLBACK TO w; RELEASE w")
            .is_err()
        {
            let _ = self.w.conn.execute_batch("ROLLBACK");
            self.lost("the transaction was rolled back by a failed write");
            return;
        }
        if let Some(h) = self.w.hot.as_mut()
            && let Some((state, ops)) = h.saved.take()
            && let Some(work) = h.work.as_mut()
        {
            work.state = state;
            work.ops.truncate(ops);
        }
    }
}

impl Drop for Holding<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.undo_write();
            self.commit();
        }
        let held = u64::try_from(self.since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.store.writer_held_ns.fetch_add(held, Ordering::Relaxed);
        // Outcomes [`release`] did not take (a panic, a read on the writer): told now.
        tell(std::mem::take(&mut self.outcomes));
    }
}

/// Releases the writer, then tells the members of the groups it ended how their commit went.
fn release(mut h: Holding<'_>) {
    let outcomes = std::mem::take(&mut h.outcomes);
    drop(h);
    tell(outcomes);
}

/// Tells each member its group's outcome (a member that stopped listening is skipped).
fn tell(outcomes: Vec<(CommitListener, CommitOutcome)>) {
    for (m, outcome) in outcomes {
        let _ = m.send(outcome);
    }
}

impl Store {
    fn new(
        writer: Connection,
        readers: Vec<Mutex<Connection>>,
        checkpointer: Option<Checkpointer>,
        restart_wal: Arc<AtomicBool>,
        hot: Option<HotState>,
    ) -> Store {
        let hot = hot.map(Arc::new);
        Store {
            hot: hot.as_ref().map(|state| Published {
                states: Mutex::new(VecDeque::from([state.clone()])),
                more: Condvar::new(),
            }),
            writer: Mutex::new(Writer {
                conn: writer,
                group: None,
                hot: hot.map(|committed| WriterHot {
                    committed,
                    work: None,
                    saved: None,
                    dirty: HashSet::new(),
                    fold: None,
                    last_fold: Instant::now(),
                    fold_keys: FOLD_DIRTY_KEYS,
                    fold_every: FOLD_EVERY,
                    fold_chunk: FOLD_CHUNK,
                }),
            }),
            waiting: AtomicUsize::new(0),
            readers,
            observer: RwLock::new(None),
            committed_writes: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            writer_held_ns: AtomicU64::new(0),
            _checkpointer: checkpointer,
            restart_wal,
            wal_restarts: AtomicU64::new(0),
            raise_writer: AtomicBool::new(true),
            host_sequences_seen: Mutex::new(HashMap::new()),
            access_keys: Mutex::new(HashMap::new()),
            access_keys_generation: AtomicU64::new(0),
            hot_counters: HotCounters::default(),
        }
    }

    /// Opens (creating if needed) the store in the SQLite file `path` and migrates it.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_holding(path, None)
    }

    /// [`Store::open`], holding the records of `kinds`, every counter and every host entry
    /// in memory (see [`crate::hot`]): reads of them touch no table, and a write's changes
    /// to them are one log row a group. Opening replays the log into the tables, then loads
    /// them. One process may use the file at a time: another writer's changes to these
    /// records would not be seen.
    pub fn open_holding_in_memory(path: &Path, kinds: &[&str]) -> Result<Store, StoreError> {
        Store::open_holding(path, Some(kinds))
    }

    fn open_holding(path: &Path, kinds: Option<&[&str]>) -> Result<Store, StoreError> {
        let mut writer = open_connection(path)?;
        migrate(&mut writer)?;
        replay_hot_log(&writer)?;
        let hot = kinds.map(|k| load_hot(&writer, k)).transpose()?;
        // The checkpointer copies the WAL back, not the commits (see [`Checkpointer`]).
        writer.pragma_update(None, "wal_autocheckpoint", 0)?;
        // A restarted WAL keeps its file (no truncation and growth again), up to this size.
        writer.pragma_update(None, "journal_size_limit", WAL_RESTART_FRAMES * PAGE_BYTES)?;
        let readers = (0..READERS)
            .map(|_| open_connection(path).map(Mutex::new))
            .collect::<Result<_, _>>()?;
        let restart_wal = Arc::new(AtomicBool::new(false));
        Ok(Store::new(
            writer,
            readers,
            Some(Checkpointer::start(path, restart_wal.clone())?),
            restart_wal,
            hot,
        ))
    }

    /// An in-memory store for unit tests (a shared-cache database private to this store).
    pub fn open_in_memory() -> Result<Store, StoreError> {
        Store::in_memory(None)
    }

    /// [`Store::open_in_memory`] holding `kinds` in memory, as
    /// [`Store::open_holding_in_memory`] does.
    pub fn open_in_memory_holding(kinds: &[&str]) -> Result<Store, StoreError> {
        Store::in_memory(Some(kinds))
    }

    fn in_memory(kinds: Option<&[&str]>) -> Result<Store, StoreError> {
        let name = format!(
            "file:berth-mem-{}?mode=memory&cache=shared",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
                ^ (std::process::id() as u128) << 64
                ^ next_id()
        );
        let open = || -> Result<Connection, StoreError> {
            let c = Connection::open_with_flags(
                &name,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
                    | rusqlite::OpenFlags::SQLITE_OPEN_CREATE
                    | rusqlite::OpenFlags::SQLITE_OPEN_URI,
            )?;
            c.busy_timeout(std::time::Duration::from_secs(10))?;
            keep_statements(&c)?;
            Ok(c)
        };
        let mut writer = open()?;
        migrate(&mut writer)?;
        replay_hot_log(&writer)?;
        let hot = kinds.map(|k| load_hot(&writer, k)).transpose()?;
        // Shared-cache memory databases lock at table level; one connection serves all.
        Ok(Store::new(writer, Vec::new(), None, Arc::default(), hot))
    }

    fn hold(&self, observer: Option<Observer>) -> Holding<'_> {
        // A panic inside a write is cleaned up by its Holding before the lock is released.
        let w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        Holding {
            store: self,
            w,
            in_write: false,
            savepoint: false,
            observer,
            since: Instant::now(),
            outcomes: Vec::new(),
            _raised: if self.raise_writer.load(Ordering::Relaxed) {
                crate::priority::raise()
            } else {
                crate::priority::Raised::none()
            },
        }
    }

    /// Whether the thread holding the writer runs at a raised priority (on by default): a
    /// store written by one thread alone (CloudTrail's) gains nothing from it, and its holder
    /// would only take cores from request handlers.
    pub fn set_raise_writer(&self, raise: bool) {
        self.raise_writer.store(raise, Ordering::Relaxed);
    }

    /// Runs `f` in a read-only snapshot.
    pub fn read<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        // Take the first reader that is free; wait on one only when all are busy.
        let mut guard = None;
        for r in &self.readers {
            if let Ok(g) = r.try_lock() {
                guard = Some(g);
                break;
            }
        }
        let guard = match guard {
            Some(g) => g,
            None => match self
                .readers
                .get(next_id() as usize % self.readers.len().max(1))
            {
                Some(r) => lock(r)?,
                None => {
                    // No readers (in memory): read on the writer, its open group committed.
                    let observer = self.observer_now()?;
                    let mut h = self.hold(observer);
                    h.commit();
                    return read_on(&h.w.conn, self.hot.as_ref(), f);
                }
            },
        };
        read_on(&guard, self.hot.as_ref(), f)
    }

    /// Writes committed and commits made since the store was opened.
    pub fn commit_stats(&self) -> (u64, u64) {
        (
            self.committed_writes.load(Ordering::Relaxed),
            self.commits.load(Ordering::Relaxed),
        )
    }

    /// Moves the CloudTrail events this store holds into the store at `trail` (a database of
    /// their own, so that recording calls never takes this store's writer): copied in one
    /// transaction of the trail's database, then deleted here in another. An event is known
    /// by its id: one already there (a move cut between its two transactions) is not copied
    /// twice; the others get sequence numbers after the trail's own (which may have been
    /// taken by events recorded there meanwhile), their resources with them. How many
    /// events left this store.
    pub fn move_trail_events_to(&self, trail: &Path) -> Result<usize, StoreError> {
        let mut h = self.hold(None);
        h.commit();
        let conn = &h.w.conn;
        let any: bool = conn.query_row("SELECT EXISTS (SELECT 1 FROM trail_events)", [], |r| {
            r.get(0)
        })?;
        if !any {
            release(h);
            return Ok(0);
        }
        let path = trail.to_str().ok_or_else(|| StoreError::Open {
            path: trail.display().to_string(),
            reason: "the path is not UTF-8".to_string(),
        })?;
        conn.execute("ATTACH DATABASE ?1 AS trail", params![path])?;
        let moved = (|| -> Result<usize, StoreError> {
            conn.execute_batch(
                "BEGIN IMMEDIATE;
                 CREATE TEMP TABLE trail_move AS
                   SELECT m.seq AS old_seq,
                          max((SELECT coalesce(max(seq), 0) FROM trail.trail_events),
                              (SELECT through_seq FROM trail.trail_keys_through))
                            + row_number() OVER (ORDER BY m.seq) AS new_seq
                   FROM main.trail_events m
                   WHERE NOT EXISTS (
                     SELECT 1 FROM trail.trail_events t
                     WHERE t.account = m.account AND t.region = m.region
                       AND t.event_id = m.event_id);
                 INSERT INTO trail.trail_events (seq, account, region, event_time_ms, event_id,
                     event_name, event_source, read_only, username, access_key_id, resources,
                     body)
                   SELECT mv.new_seq, m.account, m.region, m.event_time_ms, m.event_id,
                          m.event_name, m.event_source, m.read_only, m.username,
                          m.access_key_id, m.resources, m.body
                   FROM trail_move mv JOIN main.trail_events m ON m.seq = mv.old_seq;
                 INSERT INTO trail.trail_keys (account, region, key, event_time_ms, seq)
                   SELECT k.account, k.region, k.key, k.event_time_ms, mv.new_seq
                   FROM main.trail_keys k JOIN trail_move mv ON mv.old_seq = k.seq;
                 DROP TABLE temp.trail_move;
                 COMMIT;",
            )?;
            conn.execute_batch("BEGIN IMMEDIATE")?;
            conn.execute("DELETE FROM main.trail_keys", [])?;
            let n = conn.execute("DELETE FROM main.trail_events", [])?;
            conn.execute_batch("COMMIT")?;
            Ok(n)
        })();
        if moved.is_err() && !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        let detached = conn.execute_batch("DETACH DATABASE trail");
        release(h);
        let n = moved?;
        detached?;
        Ok(n)
    }

    /// Folds the hot state into the tables after every commit, a key a step (tests).
    #[cfg(test)]
    pub(crate) fn fold_eagerly(&self) {
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = w.hot.as_mut() {
            h.fold_keys = 1;
            h.fold_chunk = 1;
        }
    }

    /// The log rows not yet folded into the tables (tests).
    #[cfg(test)]
    pub(crate) fn hot_log_rows(&self) -> i64 {
        let w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        w.conn
            .query_row("SELECT count(*) FROM hot_log", [], |r| r.get(0))
            .unwrap_or(-1)
    }

    /// How the hot state stands, if the store holds kinds in memory.
    pub fn hot_stats(&self) -> Option<HotStats> {
        self.hot.as_ref()?;
        let c = &self.hot_counters;
        Some(HotStats {
            group: c.group.load(Ordering::Relaxed),
            unfolded_keys: c.unfolded_keys.load(Ordering::Relaxed),
            folds: c.folds.load(Ordering::Relaxed),
            fold_failures: c.fold_failures.load(Ordering::Relaxed),
        })
    }

    /// How many times the writer started the WAL over (see [`Checkpointer`]).
    pub fn wal_restarts(&self) -> u64 {
        self.wal_restarts.load(Ordering::Relaxed)
    }

    /// How long, in total, the writer was held since the store was opened: against the
    /// elapsed time, the share of it the one serial path was busy.
    pub fn writer_held(&self) -> Duration {
        Duration::from_nanos(self.writer_held_ns.load(Ordering::Relaxed))
    }

    fn observer_now(&self) -> Result<Option<Observer>, StoreError> {
        Ok(self
            .observer
            .read()
            .map_err(|_| StoreError::Poisoned)?
            .clone())
    }

    /// Runs `f` in a write transaction: its writes are committed when `f` returns `Ok` (the
    /// call returns once they are), and undone when it returns an error. Writes that overlap
    /// in time share one commit (group commit, see the module's documentation).
    pub fn write<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let observer = self.observer_now()?;
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut h = self.hold(observer);
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        if let Err(e) = h.begin() {
            release(h);
            return Err(e.into());
        }
        // No successful write yet: the transaction holds nothing (a failed write left nothing).
        let first = h.w.group.as_ref().is_some_and(|g| g.members.is_empty());
        if !first && let Err(e) = control(&h.w.conn, "SAVEPOINT w") {
            h.commit_if_due();
            release(h);
            return Err(StoreError::from(e).into());
        }
        h.in_write = true;
        h.savepoint = !first;
        h.save_hot();
        let watched = h.observer.as_ref().map(|o| o.kinds.clone());
        let w = &mut *h.w;
        let mut tx = Tx {
            conn: &w.conn,
            hot: match w.hot.as_mut().and_then(|h| h.work.as_mut()) {
                Some(work) => HotTx::Write(work),
                None => HotTx::Off,
            },
            watched,
            changes: Vec::new(),
            effects: Vec::new(),
            host_sequence: None,
            hosts_written: Vec::new(),
            access_keys_changed: false,
        };
        let mut out = f(&mut tx);
        if out.is_ok()
            && let Err(e) = tx.store_host_sequence()
        {
            out = Err(e.into());
        }
        let Tx {
            changes,
            effects,
            hosts_written,
            access_keys_changed,
            ..
        } = tx;
        let out = match out {
            Ok(v) if !h.savepoint => Ok(v),
            Ok(v) => match control(&h.w.conn, "RELEASE w") {
                Ok(()) => Ok(v),
                Err(e) => Err(StoreError::from(e).into()),
            },
            Err(e) => Err(e),
        };
        let v = match out {
            Ok(v) => v,
            Err(e) => {
                h.undo_write();
                h.commit_if_due();
                release(h);
                return Err(e);
            }
        };
        h.in_write = false;
        // Before the group's commit makes the entries visible (and before anyone is woken
        // for them): a poll that finds its host's sequence no higher than it has seen may
        // skip its read only if no entry it cannot see yet is missing from the count.
        self.saw_host_sequences(hosts_written.iter().map(|(h, s)| (h.as_str(), *s)));
        if access_keys_changed {
            self.forget_access_keys();
        }
        // Still holding the writer: effects and observers see writes in the order later
        // writes see them. (If the group's commit fails they are told with `Change::Reset`.)
        for e in effects {
            e();
        }
        if let Some(o) = &h.observer
            && !changes.is_empty()
        {
            (o.call)(&changes);
        }
        let (done, outcome) = sync_channel(1);
        if let Some(g) = h.w.group.as_mut() {
            g.members.push(done);
        }
        h.commit_if_due();
        release(h);
        let outcome = outcome.recv();
        if access_keys_changed {
            // Committed (or not): lookups that read before this may not cache what they read.
            self.forget_access_keys();
        }
        match outcome {
            Ok(Ok(())) => Ok(v),
            Ok(Err(why)) => Err(StoreError::Commit(why).into()),
            Err(_) => Err(StoreError::Commit("the group's commit was abandoned".into()).into()),
        }
    }

    /// The highest sequence this process has filed an entry of `host` under (in a write that
    /// succeeded, whose group's commit may still be under way) or read as `host`'s sequence
    /// ([`Store::see_host_sequence`]); `None` if neither happened since the store was opened.
    /// Never below the sequence of any entry of `host` committed since: when it is no higher
    /// than what a reader saw, no entry has been filed for `host` since (a failed commit
    /// leaves it higher than the store's, which only costs a read).
    pub fn host_sequence_seen(&self, host: &str) -> Option<i64> {
        lock(&self.host_sequences_seen)
            .ok()
            .and_then(|m| m.get(host).copied())
    }

    /// Notes `seq` as `host`'s sequence, as a read found it.
    pub fn see_host_sequence(&self, host: &str, seq: i64) {
        self.saw_host_sequences([(host, seq)]);
    }

    fn saw_host_sequences<'h>(&self, seen: impl IntoIterator<Item = (&'h str, i64)>) {
        let mut seen = seen.into_iter().peekable();
        if seen.peek().is_none() {
            return;
        }
        // A poisoned map only loses the hint: polls then read.
        if let Ok(mut m) = lock(&self.host_sequences_seen) {
            for (host, seq) in seen {
                // A host already known (every poll's read) costs no allocation.
                match m.get_mut(host) {
                    Some(known) => *known = (*known).max(seq),
                    None => {
                        m.insert(host.to_string(), seq);
                    }
                }
            }
        }
    }

    /// Calls `observer` after every committed write transaction that changed records of
    /// `kinds` (created, overwritten or deleted) or wiped an account, with what changed, in
    /// commit order. In-memory indexes over the store stay coherent with it this way, whatever
    /// handler wrote. Replaces any earlier observer.
    pub fn observe(
        &self,
        kinds: &[&str],
        observer: impl Fn(&[Change]) + Send + Sync + 'static,
    ) -> Result<(), StoreError> {
        let mut o = self.observer.write().map_err(|_| StoreError::Poisoned)?;
        *o = Some(Observer {
            kinds: kinds.iter().map(|k| k.to_string()).collect(),
            call: Arc::new(observer),
        });
        Ok(())
    }

    /// Looks up an access key (the gateway's hot path, every request): from the cache when
    /// looked up less than [`ACCESS_KEY_CACHE_FOR`] ago, else with one indexed read (which
    /// also starts a read transaction: after any commit, with the connection's page cache
    /// emptied). A key that is not found is not cached.
    pub fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKey>, StoreError> {
        // (A poisoned cache is bypassed: every lookup reads.)
        if let Ok(cache) = self.access_keys.lock()
            && let Some((key, at)) = cache.get(access_key_id)
            && at.elapsed() < ACCESS_KEY_CACHE_FOR
        {
            return Ok(Some(key.clone()));
        }
        let generation = self.access_keys_generation.load(Ordering::SeqCst);
        let found = self.read(|tx| tx.access_key(access_key_id))?;
        if let Some(key) = &found
            && let Ok(mut cache) = self.access_keys.lock()
        {
            // Checked under the cache's lock, which a write's forgetting takes too.
            if self.access_keys_generation.load(Ordering::SeqCst) == generation {
                if cache.len() >= ACCESS_KEY_CACHE_ENTRIES {
                    cache.clear();
                }
                cache.insert(access_key_id.to_string(), (key.clone(), Instant::now()));
            }
        }
        Ok(found)
    }

    fn forget_access_keys(&self) {
        // A poisoned cache is emptied all the same.
        let mut cache = self.access_keys.lock().unwrap_or_else(|p| p.into_inner());
        self.access_keys_generation.fetch_add(1, Ordering::SeqCst);
        cache.clear();
    }
}

/// Runs `f` in a deferred (snapshot) transaction on `conn`, with the hot state of the same
/// commit if the store holds one.
fn read_on<T, E: From<StoreError>>(
    conn: &Connection,
    published: Option<&Published>,
    f: impl FnOnce(&Tx<'_>) -> Result<T, E>,
) -> Result<T, E> {
    // A panic in an earlier read may have left its transaction open.
    if !conn.is_autocommit() {
        conn.execute_batch("ROLLBACK").map_err(StoreError::from)?;
    }
    let hot = loop {
        control(conn, "BEGIN DEFERRED").map_err(StoreError::from)?;
        let Some(p) = published else {
            break HotTx::Off;
        };
        // Fixes the snapshot, and names the last group it holds.
        let group: i64 = conn
            .prepare_cached("SELECT coalesce(max(group_no), 0) FROM hot_log")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(StoreError::from)?;
        match p.at(group) {
            Ok(Some(state)) => break HotTx::Read(state),
            // Groups moved on past the states kept: a newer snapshot.
            Ok(None) => control(conn, "ROLLBACK").map_err(StoreError::from)?,
            Err(e) => {
                let _ = control(conn, "ROLLBACK");
                return Err(e.into());
            }
        }
    };
    let tx = Tx {
        conn,
        hot,
        watched: None,
        changes: Vec::new(),
        effects: Vec::new(),
        host_sequence: None,
        hosts_written: Vec::new(),
        access_keys_changed: false,
    };
    let out = f(&tx);
    let end = if out.is_ok() { "COMMIT" } else { "ROLLBACK" };
    control(conn, end).map_err(StoreError::from)?;
    out
}

/// Runs one transaction-control statement (BEGIN, COMMIT, SAVEPOINT, RELEASE...) from the
/// connection's statement cache: each write and each read runs two, and `execute_batch`
/// compiled them every time.
fn control(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

fn next_id() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    u128::from(N.fetch_add(1, Ordering::Relaxed))
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at_ms INTEGER NOT NULL)",
    )?;
    let current: i64 = conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?;
    let known = MIGRATIONS.last().map(|(v, _)| *v).unwrap_or(0);
    if current > known {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known,
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at_ms) VALUES (?1, ?2)",
            params![version, now],
        )?;
        tx.commit()?;
    }
    Ok(())
}

/// What [`encode`] calls a host entry in its errors.
const HOST_ENTRY: &str = "host entry";

/// The counter host entries take their sequence from (account-wide, migration 7).
const HOST_SEQUENCE: &str = "host-seq";

fn host_entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<HostEntry> {
    Ok(HostEntry {
        task: r.get(0)?,
        seq: r.get(1)?,
        body: r.get(2)?,
    })
}

/// The entries of `m` owned by `owner` (the key's leading fields: account and region, or a
/// host) whose last field is from `lower` (past it when `strict`) to before `upper` (to the
/// owner's last when `None`): the maps' counterpart of the tables' range scans.
fn owned_range<'m, V: Clone>(
    m: &'m imbl::OrdMap<hot::Key, V>,
    owner: &[&str],
    lower: &str,
    strict: bool,
    upper: Option<&str>,
) -> impl DoubleEndedIterator<Item = (&'m hot::Key, &'m V)> + 'm {
    let field = |last: &str| {
        let mut fields = owner.to_vec();
        fields.push(last);
        hot::key(&fields)
    };
    let start = field(lower);
    let end = match upper {
        Some(u) => field(u),
        None => prefix_end(&field("")).unwrap_or_default(),
    };
    let lo = if strict {
        Bound::Excluded(start.as_str())
    } else {
        Bound::Included(start.as_str())
    };
    // An empty range (a map's `range` panics on bounds in the wrong order).
    let range = (start < end).then(|| m.range::<_, str>((lo, Bound::Excluded(end.as_str()))));
    range.into_iter().flatten()
}

/// A host entry held in memory, as [`Tx::host_entries`] returns it.
fn hot_host_entry(key: &hot::Key, e: &Arc<HotEntry>) -> HostEntry {
    HostEntry {
        task: hot::split::<2>(key).map_or("", |[_, t]| t).to_string(),
        seq: e.seq,
        body: e.body.to_string(),
    }
}

/// Writes a key's value in `state` (or its absence) to its table: a fold's step.
fn write_back(conn: &Connection, state: &HotState, key: &Dirty) -> Result<(), StoreError> {
    match key {
        Dirty::Record(kind, k) => {
            let record = state.kind(kind).and_then(|m| m.get(&**k)).cloned();
            write_record(conn, kind, k, record.as_deref())
        }
        Dirty::Sequence(k) => write_sequence(conn, k, state.sequences.get(&**k).copied()),
        Dirty::HostEntry(k) => {
            write_host_entry(conn, k, state.host_entries.get(&**k).map(|e| &**e))
        }
    }
}

fn bad_key(k: &str) -> StoreError {
    StoreError::Decode {
        kind: "hot key".into(),
        id: k.replace('\0', "/"),
        reason: "the key does not have the fields of its map".into(),
    }
}

fn write_record(
    conn: &Connection,
    kind: &str,
    key: &str,
    record: Option<&HotRecord>,
) -> Result<(), StoreError> {
    let [account, region, id] = hot::split::<3>(key).ok_or_else(|| bad_key(key))?;
    match record {
        Some(r) => conn
            .prepare_cached(
                "INSERT INTO records (account, region, kind, id, version, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (account, region, kind, id) DO UPDATE SET version = excluded.version, body = excluded.body",
            )?
            .execute(params![account, region, kind, id, r.version, &r.body])?,
        None => conn
            .prepare_cached(
                "DELETE FROM records WHERE account = ?1 AND region = ?2 AND kind = ?3 AND id = ?4",
            )?
            .execute(params![account, region, kind, id])?,
    };
    Ok(())
}

fn write_sequence(conn: &Connection, key: &str, value: Option<i64>) -> Result<(), StoreError> {
    let [account, region, name] = hot::split::<3>(key).ok_or_else(|| bad_key(key))?;
    match value {
        Some(v) => conn
            .prepare_cached(
                "INSERT INTO sequences (account, region, name, value) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (account, region, name) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![account, region, name, v])?,
        None => conn
            .prepare_cached(
                "DELETE FROM sequences WHERE account = ?1 AND region = ?2 AND name = ?3",
            )?
            .execute(params![account, region, name])?,
    };
    Ok(())
}

fn write_host_entry(
    conn: &Connection,
    key: &str,
    entry: Option<&HotEntry>,
) -> Result<(), StoreError> {
    let [host, task] = hot::split::<2>(key).ok_or_else(|| bad_key(key))?;
    match entry {
        Some(e) => conn
            .prepare_cached(
                "INSERT INTO host_entries (host, task, seq, body) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (host, task) DO UPDATE SET seq = excluded.seq, body = excluded.body",
            )?
            .execute(params![host, task, e.seq, &*e.body])?,
        None => conn
            .prepare_cached("DELETE FROM host_entries WHERE host = ?1 AND task = ?2")?
            .execute(params![host, task])?,
    };
    Ok(())
}

/// Removes an account's records (of `kinds` only, when given: a wipe replayed from the
/// log, whose other kinds' later records are in the tables alone), counters and host
/// entries from the tables.
fn wipe_tables(
    conn: &Connection,
    account: &str,
    kinds: Option<&[Arc<str>]>,
) -> Result<(), StoreError> {
    match kinds {
        Some(kinds) => {
            for kind in kinds {
                conn.prepare_cached("DELETE FROM records WHERE account = ?1 AND kind = ?2")?
                    .execute(params![account, &**kind])?;
            }
        }
        None => {
            conn.execute("DELETE FROM records WHERE account = ?1", params![account])?;
        }
    }
    conn.execute("DELETE FROM sequences WHERE account = ?1", params![account])?;
    // Host entries name their task `{account}|{region}|...` ('}' follows '|').
    conn.execute(
        "DELETE FROM host_entries WHERE task >= ?1 || '|' AND task < ?1 || '}'",
        params![account],
    )?;
    Ok(())
}

/// Replays the hot state's log into the tables and empties it, in one transaction: at every
/// open, so that the tables are whole whether or not this process holds kinds in memory
/// (the rows a process that held them left are its changes the tables lack).
fn replay_hot_log(conn: &Connection) -> Result<(), StoreError> {
    let any: bool = conn.query_row("SELECT EXISTS (SELECT 1 FROM hot_log)", [], |r| r.get(0))?;
    if !any {
        return Ok(());
    }
    control(conn, "BEGIN IMMEDIATE")?;
    let replayed = (|| -> Result<(), StoreError> {
        {
            let mut rows = conn.prepare("SELECT ops FROM hot_log ORDER BY group_no")?;
            let mut rows = rows.query([])?;
            while let Some(row) = rows.next()? {
                let ops =
                    hot::decode_ops(row.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?)?;
                for op in &ops {
                    match op {
                        Op::Record { kind, key, value } => {
                            write_record(conn, kind, key, value.as_deref())?
                        }
                        Op::Sequence { key, value } => write_sequence(conn, key, Some(*value))?,
                        Op::HostEntry { key, value } => {
                            write_host_entry(conn, key, value.as_deref())?
                        }
                        Op::Wipe { account, kinds } => wipe_tables(conn, account, Some(kinds))?,
                    }
                }
            }
        }
        conn.execute("DELETE FROM hot_log", [])?;
        Ok(())
    })();
    match replayed {
        Ok(()) => Ok(control(conn, "COMMIT")?),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Loads the hot state: the records of `kinds`, every counter and every host entry (after
/// [`replay_hot_log`], at group 0).
fn load_hot(conn: &Connection, kinds: &[&str]) -> Result<HotState, StoreError> {
    fn text<'r>(row: &'r rusqlite::Row<'_>, i: usize) -> Result<&'r str, StoreError> {
        Ok(row.get_ref(i)?.as_str().map_err(rusqlite::Error::from)?)
    }
    control(conn, "BEGIN DEFERRED")?;
    let loaded = (|| -> Result<HotState, StoreError> {
        let mut state = HotState::new(kinds);
        for (kind, map) in &mut state.kinds {
            let mut stmt = conn.prepare(
                "SELECT account, region, id, version, body FROM records WHERE kind = ?1",
            )?;
            let mut rows = stmt.query(params![&**kind])?;
            while let Some(row) = rows.next()? {
                let key = hot::key(&[text(row, 0)?, text(row, 1)?, text(row, 2)?]);
                let record = HotRecord {
                    version: row.get(3)?,
                    body: Body::from_sql(row.get_ref(4)?)?,
                };
                map.insert(key.into(), Arc::new(record));
            }
        }
        let mut stmt = conn.prepare("SELECT account, region, name, value FROM sequences")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let key = hot::key(&[text(row, 0)?, text(row, 1)?, text(row, 2)?]);
            state.sequences.insert(key.into(), row.get(3)?);
        }
        let mut stmt = conn.prepare("SELECT host, task, seq, body FROM host_entries")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let key = hot::key(&[text(row, 0)?, text(row, 1)?]);
            let entry = HotEntry {
                seq: row.get(2)?,
                body: text(row, 3)?.into(),
            };
            state.host_entries.insert(key.into(), Arc::new(entry));
        }
        Ok(state)
    })();
    match loaded {
        Ok(state) => {
            control(conn, "COMMIT")?;
            Ok(state)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// The smallest string greater than every string starting with `prefix`, for range scans.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(c) = chars.pop() {
        if let Some(next) = char::from_u32(c as u32 + 1) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

impl Tx<'_> {
    /// Runs `f` once this write's changes are the store's state, before the next write runs
    /// (in write order); never when the write fails. With group commit that is before the
    /// group's commit: if that commit fails, the observer hears [`Change::Reset`]. For
    /// write-through caches.
    pub fn after_commit(&mut self, f: impl FnOnce() + Send + 'static) {
        self.effects.push(Box::new(f));
    }

    /// The hot state this transaction sees, if the store holds one.
    fn hot(&self) -> Option<&HotState> {
        match &self.hot {
            HotTx::Off => None,
            HotTx::Read(s) => Some(s),
            HotTx::Write(w) => Some(&w.state),
        }
    }

    /// The records of `kind` in memory, if it is a hot kind.
    fn hot_kind(&self, kind: &str) -> Option<&hot::KindMap> {
        self.hot()?.kind(kind)
    }

    /// The writer's hot state, if the store holds one.
    fn hot_work(&mut self) -> Option<&mut HotWork> {
        match &mut self.hot {
            HotTx::Write(w) => Some(w),
            _ => None,
        }
    }

    /// Writes (or with `None` deletes) a record of the hot `kind` in the group's state.
    fn put_hot(&mut self, kind: &str, scope: Scope<'_>, id: &str, value: Option<HotRecord>) {
        let key = hot::key(&[scope.account, scope.region, id]);
        self.put_hot_at(kind, key.into(), value);
    }

    /// [`Tx::put_hot`] of a key already made.
    fn put_hot_at(&mut self, kind: &str, key: hot::Key, value: Option<HotRecord>) {
        if let Some(w) = self.hot_work()
            && let Some(name) = w.state.kind_name(kind)
        {
            w.record(name, key, value.map(Arc::new));
        }
    }

    /// The key of record `id` of `scope` in a hot kind's map, and the record's version there.
    fn hot_version(
        &self,
        kind: &str,
        scope: Scope<'_>,
        id: &str,
    ) -> Option<(hot::Key, Option<i64>)> {
        let m = self.hot_kind(kind)?;
        let key: hot::Key = hot::key(&[scope.account, scope.region, id]).into();
        let version = m.get(&*key).map(|r| r.version);
        Some((key, version))
    }

    fn changed(&mut self, scope: Scope<'_>, kind: &str, id: &str, version: Option<i64>) {
        if self
            .watched
            .as_ref()
            .is_some_and(|w| w.iter().any(|k| k == kind))
        {
            self.changes.push(Change::Record {
                account: scope.account.to_string(),
                region: scope.region.to_string(),
                kind: kind.to_string(),
                id: id.to_string(),
                version,
            });
        }
    }

    /// The version of record `kind/id`, if it exists, without reading its body.
    pub fn version(
        &self,
        scope: Scope<'_>,
        kind: &str,
        id: &str,
    ) -> Result<Option<i64>, StoreError> {
        if let Some(m) = self.hot_kind(kind) {
            let key = hot::key(&[scope.account, scope.region, id]);
            return Ok(m.get(key.as_str()).map(|r| r.version));
        }
        Ok(self
            .conn
            .prepare_cached("SELECT version FROM records WHERE account = ?1 AND region = ?2 AND kind = ?3 AND id = ?4")?
            .query_row(params![scope.account, scope.region, kind, id], |r| r.get(0))
            .optional()?)
    }

    /// The record `kind/id`, if any.
    pub fn get(
        &self,
        scope: Scope<'_>,
        kind: &str,
        id: &str,
    ) -> Result<Option<Record>, StoreError> {
        if let Some(m) = self.hot_kind(kind) {
            let key = hot::key(&[scope.account, scope.region, id]);
            return m
                .get(key.as_str())
                .map(|r| {
                    Ok(Record {
                        id: id.to_string(),
                        version: r.version,
                        body: r.body.json(kind, id)?,
                    })
                })
                .transpose();
        }
        Ok(self
            .conn
            .prepare_cached("SELECT version, body FROM records WHERE account = ?1 AND region = ?2 AND kind = ?3 AND id = ?4")?
            .query_row(params![scope.account, scope.region, kind, id], |r| {
                Ok(Record { id: id.to_string(), version: r.get(0)?, body: stored_body(r, 1)? })
            })
            .optional()?)
    }

    /// The record `kind/id` decoded as `T`, with its version.
    pub fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        scope: Scope<'_>,
        kind: &str,
        id: &str,
    ) -> Result<Option<(T, i64)>, StoreError> {
        match self.get(scope, kind, id)? {
            Some(r) => Ok(Some((r.decode(kind)?, r.version))),
            None => Ok(None),
        }
    }

    /// Records of `kind` whose id starts with `prefix` and sorts after `after` (exclusive),
    /// in id order, at most `limit`.
    pub fn list(
        &self,
        scope: Scope<'_>,
        kind: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        let lower = match after {
            Some(a) if a >= prefix => a.to_string(),
            _ => prefix.to_string(),
        };
        let strict = after.is_some_and(|a| a >= prefix);
        self.records_in_range(
            scope,
            kind,
            &lower,
            strict,
            prefix_end(prefix),
            false,
            limit,
        )
    }

    /// Records of `kind` whose id starts with `prefix` and sorts before `before` (exclusive),
    /// the last first, at most `limit`: [`Tx::list`] backwards, for "the latest of" lookups
    /// that would otherwise read every record of the prefix to keep one.
    pub fn list_backwards(
        &self,
        scope: Scope<'_>,
        kind: &str,
        prefix: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        let end = prefix_end(prefix);
        let upper = match (before, end) {
            (Some(b), Some(e)) if b > e.as_str() => Some(e),
            (Some(b), _) => Some(b.to_string()),
            (None, e) => e,
        };
        self.records_in_range(scope, kind, prefix, false, upper, true, limit)
    }

    /// Records of `kind` whose id is from `lower` (past it when `strict`) to before `upper`,
    /// in id order or `backwards`, at most `limit`.
    #[allow(clippy::too_many_arguments)]
    fn records_in_range(
        &self,
        scope: Scope<'_>,
        kind: &str,
        lower: &str,
        strict: bool,
        upper: Option<String>,
        backwards: bool,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        if let Some(m) = self.hot_kind(kind) {
            let owner = [scope.account, scope.region];
            let range = owned_range(m, &owner, lower, strict, upper.as_deref());
            let record = |(k, r): (&hot::Key, &Arc<HotRecord>)| -> Result<Record, StoreError> {
                let id = hot::split::<3>(k).map_or("", |[_, _, id]| id);
                Ok(Record {
                    id: id.to_string(),
                    version: r.version,
                    body: r.body.json(kind, id)?,
                })
            };
            return if backwards {
                range.rev().take(limit).map(record).collect()
            } else {
                range.take(limit).map(record).collect()
            };
        }
        // A statement per shape: with `?5 IS NULL OR id < ?5` SQLite would not bound the index
        // range above (and a backwards read would start at the kind's last record).
        let sql = format!(
            "SELECT id, version, body FROM records WHERE account = ?1 AND region = ?2 AND kind = ?3 AND id {} ?4 {} ORDER BY id {} LIMIT ?6",
            if strict { ">" } else { ">=" },
            if upper.is_some() {
                "AND id < ?5"
            } else {
                "AND ?5 IS NULL"
            },
            if backwards { "DESC" } else { "ASC" }
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(
            params![scope.account, scope.region, kind, lower, upper, limit],
            record_row,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every record of `kind` whose id starts with `prefix`, decoded.
    pub fn list_json<T: serde::de::DeserializeOwned>(
        &self,
        scope: Scope<'_>,
        kind: &str,
        prefix: &str,
    ) -> Result<Vec<(String, T)>, StoreError> {
        self.list(scope, kind, prefix, None, usize::MAX)?
            .into_iter()
            .map(|r| Ok((r.id.clone(), r.decode(kind)?)))
            .collect()
    }

    /// `host`'s entries whose task starts with `prefix`, in task order.
    pub fn host_entries(&self, host: &str, prefix: &str) -> Result<Vec<HostEntry>, StoreError> {
        if let Some(h) = self.hot() {
            let upper = prefix_end(prefix);
            return Ok(
                owned_range(&h.host_entries, &[host], prefix, false, upper.as_deref())
                    .map(|(k, e)| hot_host_entry(k, e))
                    .collect(),
            );
        }
        let upper = prefix_end(prefix);
        let mut stmt = self.conn.prepare_cached(
            "SELECT task, seq, body FROM host_entries WHERE host = ?1 AND task >= ?2 AND (?3 IS NULL OR task < ?3) ORDER BY task",
        )?;
        let rows = stmt.query_map(params![host, prefix, upper], host_entry)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// `host`'s sequence: that of its latest entry, 0 when it has none. It moves whenever
    /// one of its entries is filed (each takes [`Tx::next_host_sequence`]), so an agent that
    /// saw a host at sequence `s` has seen everything filed for it unless this is past `s`.
    pub fn host_sequence(&self, host: &str) -> Result<i64, StoreError> {
        if let Some(h) = self.hot() {
            return Ok(owned_range(&h.host_entries, &[host], "", false, None)
                .map(|(_, e)| e.seq)
                .max()
                .unwrap_or(0));
        }
        Ok(self
            .conn
            .prepare_cached("SELECT coalesce(max(seq), 0) FROM host_entries WHERE host = ?1")?
            .query_row(params![host], |r| r.get(0))?)
    }

    /// `host`'s entries that changed after its sequence `since`, in sequence order (read
    /// from the host's entries, which lie together: a container instance holds tens of
    /// tasks; the managed host, which holds every Fargate task, asks for its whole set).
    pub fn host_entries_since(&self, host: &str, since: i64) -> Result<Vec<HostEntry>, StoreError> {
        if let Some(h) = self.hot() {
            let mut entries: Vec<HostEntry> =
                owned_range(&h.host_entries, &[host], "", false, None)
                    .filter(|(_, e)| e.seq > since)
                    .map(|(k, e)| hot_host_entry(k, e))
                    .collect();
            entries.sort_by_key(|e| e.seq);
            return Ok(entries);
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT task, seq, body FROM host_entries WHERE host = ?1 AND seq > ?2 ORDER BY seq",
        )?;
        let rows = stmt.query_map(params![host, since], host_entry)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many records of `kind` start with `prefix`.
    pub fn count(&self, scope: Scope<'_>, kind: &str, prefix: &str) -> Result<i64, StoreError> {
        if let Some(m) = self.hot_kind(kind) {
            let owner = [scope.account, scope.region];
            let upper = prefix_end(prefix);
            let n = owned_range(m, &owner, prefix, false, upper.as_deref()).count();
            return Ok(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let upper = prefix_end(prefix);
        Ok(self.conn.prepare_cached(
            "SELECT COUNT(*) FROM records WHERE account = ?1 AND region = ?2 AND kind = ?3 AND id >= ?4 AND (?5 IS NULL OR id < ?5)",
        )?
        .query_row(params![scope.account, scope.region, kind, prefix, upper], |r| r.get(0))?)
    }
}

impl Tx<'_> {
    /// Creates `kind/id`; fails with [`StoreError::AlreadyExists`] if it exists.
    pub fn insert<T: serde::Serialize>(
        &mut self,
        scope: Scope<'_>,
        kind: &str,
        id: &str,
        value: &T,
    ) -> Result<i64, StoreError> {
        if let Some((key, current)) = self.hot_version(kind, scope, id) {
            if current.is_some() {
                return Err(StoreError::AlreadyExists {
                    kind: kind.into(),
                    id: id.into(),
                });
            }
            let body = encode_body(kind, id, value)?;
            self.put_hot_at(kind, key, Some(HotRecord { version: 1, body }));
            self.changed(scope, kind, id, Some(1));
            return Ok(1);
        }
        let body = encode_body(kind, id, value)?;
        let n = self.conn.prepare_cached(
            "INSERT INTO records (account, region, kind, id, version, body) VALUES (?1, ?2, ?3, ?4, 1, ?5) ON CONFLICT DO NOTHING",
        )?
        .execute(params![scope.account, scope.region, kind, id, body])?;
        if n == 0 {
            return Err(StoreError::AlreadyExists {
                kind: kind.into(),
                id: id.into(),
            });
        }
        self.changed(scope, kind, id, Some(1));
        Ok(1)
    }

    /// Writes `kind/id`. With `expected = Some(v)` the record must still be at version `v`
    /// (else [`StoreError::Conflict`]); with `None` it is created or overwritten. Returns the
    /// new version.
    pub fn put<T: serde::Serialize>(
        &mut self,
        scope: Scope<'_>,
        kind: &str,
        id: &str,
        expected: Option<i64>,
        value: &T,
    ) -> Result<i64, StoreError> {
        if let Some((key, current)) = self.hot_version(kind, scope, id) {
            if let Some(v) = expected
                && current != Some(v)
            {
                return Err(StoreError::Conflict {
                    kind: kind.into(),
                    id: id.into(),
                    expected: v,
                });
            }
            let version = current.map_or(1, |c| c + 1);
            let body = encode_body(kind, id, value)?;
            self.put_hot_at(kind, key, Some(HotRecord { version, body }));
            self.changed(scope, kind, id, Some(version));
            return Ok(version);
        }
        let body = encode_body(kind, id, value)?;
        match expected {
            Some(v) => {
                let n = self.conn.prepare_cached(
                    "UPDATE records SET version = version + 1, body = ?6 WHERE account = ?1 AND region = ?2 AND kind = ?3 AND id = ?4 AND version = ?5",
                )?
                .execute(params![scope.account, scope.region, kind, id, v, body])?;
                if n == 0 {
                    return Err(StoreError::Conflict {
                        kind: kind.into(),
                        id: id.into(),
                        expected: v,
                    });
                }
                self.changed(scope, kind, id, Some(v + 1));
                Ok(v + 1)
            }
            None => {
                let version: i64 = self.conn.prepare_cached(
                    "INSERT INTO records (account, region, kind, id, version, body) VALUES (?1, ?2, ?3, ?4, 1, ?5)
                     ON CONFLICT (account, region, kind, id) DO UPDATE SET version = version + 1, body = excluded.body
                     RETURNING version",
                )?
                .query_row(params![scope.account, scope.region, kind, id, body], |r| r.get(0))?;
                self.changed(scope, kind, id, Some(version));
                Ok(version)
            }
        }
    }

    /// Deletes `kind/id`; true if it existed.
    pub fn delete(&mut self, scope: Scope<'_>, kind: &str, id: &str) -> Result<bool, StoreError> {
        if self.hot_kind(kind).is_some() {
            let existed = self.version(scope, kind, id)?.is_some();
            if existed {
                self.put_hot(kind, scope, id, None);
                self.changed(scope, kind, id, None);
            }
            return Ok(existed);
        }
        let existed = self
            .conn
            .prepare_cached(
                "DELETE FROM records WHERE account = ?1 AND region = ?2 AND kind = ?3 AND id = ?4",
            )?
            .execute(params![scope.account, scope.region, kind, id])?
            > 0;
        if existed {
            self.changed(scope, kind, id, None);
        }
        Ok(existed)
    }

    /// Increments and returns the named counter (starting at 1), e.g. a family's revision.
    pub fn next_sequence(&mut self, scope: Scope<'_>, name: &str) -> Result<i64, StoreError> {
        if self.hot_work().is_some() {
            return self.add_to_sequence(scope, name, 1);
        }
        Ok(self
            .conn
            .prepare_cached(
                "INSERT INTO sequences (account, region, name, value) VALUES (?1, ?2, ?3, 1)
             ON CONFLICT (account, region, name) DO UPDATE SET value = value + 1 RETURNING value",
            )?
            .query_row(params![scope.account, scope.region, name], |r| r.get(0))?)
    }

    /// Adds `delta` to the named counter (created at 0 first); returns its new value.
    pub fn add_to_sequence(
        &mut self,
        scope: Scope<'_>,
        name: &str,
        delta: i64,
    ) -> Result<i64, StoreError> {
        if let Some(w) = self.hot_work() {
            let key = hot::key(&[scope.account, scope.region, name]);
            let value = w.state.sequences.get(key.as_str()).copied().unwrap_or(0) + delta;
            w.sequence(key.into(), value);
            return Ok(value);
        }
        Ok(self
            .conn
            .prepare_cached(
                "INSERT INTO sequences (account, region, name, value) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (account, region, name) DO UPDATE SET value = value + ?4 RETURNING value",
            )?
            .query_row(params![scope.account, scope.region, name, delta], |r| {
                r.get(0)
            })?)
    }

    /// The named counter's current value, if it ever counted.
    pub fn sequence_if_any(&self, scope: Scope<'_>, name: &str) -> Result<Option<i64>, StoreError> {
        if let Some(h) = self.hot() {
            let key = hot::key(&[scope.account, scope.region, name]);
            return Ok(h.sequences.get(key.as_str()).copied());
        }
        Ok(self
            .conn
            .prepare_cached(
                "SELECT value FROM sequences WHERE account = ?1 AND region = ?2 AND name = ?3",
            )?
            .query_row(params![scope.account, scope.region, name], |r| r.get(0))
            .optional()?)
    }

    /// The named counter's current value (0 if it never counted).
    pub fn sequence(&self, scope: Scope<'_>, name: &str) -> Result<i64, StoreError> {
        Ok(self.sequence_if_any(scope, name)?.unwrap_or(0))
    }

    /// Records of `kind` in every account and region, in (account, region, id) order, at most
    /// `limit` after the position `after` (exclusive): for sweeps over the whole store.
    pub fn list_everywhere(
        &self,
        kind: &str,
        after: Option<(&str, &str, &str)>,
        limit: usize,
    ) -> Result<Vec<(String, String, Record)>, StoreError> {
        if let Some(m) = self.hot_kind(kind) {
            let start = after.map(|(a, r, i)| hot::key(&[a, r, i]));
            let lo = match &start {
                Some(k) => Bound::Excluded(k.as_str()),
                None => Bound::Unbounded,
            };
            return m
                .range::<_, str>((lo, Bound::Unbounded))
                .take(limit)
                .map(|(k, rec)| {
                    let [a, r, id] = hot::split::<3>(k).unwrap_or(["", "", ""]);
                    Ok((
                        a.to_string(),
                        r.to_string(),
                        Record {
                            id: id.to_string(),
                            version: rec.version,
                            body: rec.body.json(kind, id)?,
                        },
                    ))
                })
                .collect();
        }
        let (a, r, i) = after.unwrap_or(("", "", ""));
        let strict = after.is_some();
        let sql = format!(
            "SELECT account, region, id, version, body FROM records WHERE kind = ?1 AND (account, region, id) {} (?2, ?3, ?4) ORDER BY account, region, id LIMIT ?5",
            if strict { ">" } else { ">=" }
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![kind, a, r, i, limit], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                Record {
                    id: row.get(2)?,
                    version: row.get(3)?,
                    body: stored_body(row, 4)?,
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The sequence of the next host entry filed: one counter shared by every host (the
    /// sequences of one host's entries increase with it, and filing an entry writes no row of
    /// its host's own).
    pub fn next_host_sequence(&mut self) -> Result<i64, StoreError> {
        // Counted in memory and stored once when the write ends: a RunTask files ten
        // entries, and each upsert of the counter's row was a statement of its own.
        let (handed, stored) = match self.host_sequence {
            Some(counter) => counter,
            None => {
                let stored = self.sequence(Scope::new("", ""), HOST_SEQUENCE)?;
                (stored, stored)
            }
        };
        self.host_sequence = Some((handed + 1, stored));
        Ok(handed + 1)
    }

    /// Stores the host-entry counter if this write moved it.
    fn store_host_sequence(&mut self) -> Result<(), StoreError> {
        if let Some((handed, stored)) = self.host_sequence
            && handed > stored
        {
            // Only this write moved the row since it was read (the writer is one).
            self.add_to_sequence(Scope::new("", ""), HOST_SEQUENCE, handed - stored)?;
            self.host_sequence = Some((handed, handed));
        }
        Ok(())
    }

    /// Files `task` under `host` as changed at sequence `seq` (created or overwritten; `seq`
    /// from [`Tx::next_host_sequence`]), with `value` as its body.
    pub fn put_host_entry<T: serde::Serialize>(
        &mut self,
        host: &str,
        task: &str,
        seq: i64,
        value: &T,
    ) -> Result<(), StoreError> {
        let body = encode(HOST_ENTRY, task, value)?;
        match self.hosts_written.iter_mut().find(|(h, _)| h == host) {
            Some((_, highest)) => *highest = (*highest).max(seq),
            None => self.hosts_written.push((host.to_string(), seq)),
        }
        if let Some(w) = self.hot_work() {
            let entry = HotEntry {
                seq,
                body: body.into(),
            };
            w.host_entry(hot::key(&[host, task]).into(), Some(Arc::new(entry)));
            return Ok(());
        }
        self.conn
            .prepare_cached(
                "INSERT INTO host_entries (host, task, seq, body) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (host, task) DO UPDATE SET seq = excluded.seq, body = excluded.body",
            )?
            .execute(params![host, task, seq, body])?;
        Ok(())
    }

    /// Removes `task` from `host`'s entries; true if it was there.
    pub fn delete_host_entry(&mut self, host: &str, task: &str) -> Result<bool, StoreError> {
        if let Some(w) = self.hot_work() {
            let key = hot::key(&[host, task]);
            let existed = w.state.host_entries.contains_key(key.as_str());
            if existed {
                w.host_entry(key.into(), None);
            }
            return Ok(existed);
        }
        Ok(self
            .conn
            .prepare_cached("DELETE FROM host_entries WHERE host = ?1 AND task = ?2")?
            .execute(params![host, task])?
            > 0)
    }

    /// Removes every record and counter of `account` in every region; access keys stay.
    pub fn wipe_account(&mut self, account: &str) -> Result<(), StoreError> {
        if self.watched.is_some() {
            self.changes.push(Change::Account {
                account: account.to_string(),
            });
        }
        if let Some(w) = self.hot_work() {
            w.wipe(account);
        }
        wipe_tables(self.conn, account, None)?;
        self.conn.execute(
            "DELETE FROM log_events WHERE account = ?1",
            params![account],
        )?;
        self.conn.execute(
            "DELETE FROM trail_keys WHERE account = ?1",
            params![account],
        )?;
        self.conn.execute(
            "DELETE FROM trail_events WHERE account = ?1",
            params![account],
        )?;
        Ok(())
    }

    /// Appends CloudTrail events (their `seq` is assigned here) with their resources: one
    /// row each. Their [`trail_keys`] follow once [`TRAIL_KEYS_AFTER`] events wait for
    /// theirs ([`Tx::index_trail_events`]); until then a lookup reads the waiting rows.
    pub fn append_trail_events(&mut self, events: &[TrailEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        // Numbered past the mark even when the events after it were all pruned (a number
        // at or before it would say the event's keys are written).
        let through = trail_keys_through(self.conn)?;
        let last: i64 =
            self.conn
                .query_row("SELECT coalesce(max(seq), 0) FROM trail_events", [], |r| {
                    r.get(0)
                })?;
        let mut insert = self.conn.prepare_cached(
            "INSERT INTO trail_events (seq, account, region, event_time_ms, event_id, event_name, event_source, read_only, username, access_key_id, resources, body)
             VALUES (?12, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        let mut seq = last.max(through);
        for e in events {
            seq += 1;
            insert.execute(params![
                e.account,
                e.region,
                e.event_time_ms,
                e.event_id,
                e.event_name,
                e.event_source,
                e.read_only,
                e.username,
                e.access_key_id,
                encode_trail_resources(&e.resources),
                Body::of_json(&e.body),
                seq
            ])?;
        }
        if seq - through >= TRAIL_KEYS_AFTER {
            self.index_trail_events()?;
        }
        Ok(())
    }

    /// Writes the lookup keys of every event stored without them, all at once in key order,
    /// and moves the mark past them; how many events that indexed.
    ///
    /// Why not an event's keys with its row: an event has some thirty keys, a dozen of them
    /// (the container instances a RunTask placed on, say) at the end of a range of their own
    /// somewhere in the index. Written a batch at a time, each such key dirtied a page of
    /// its own, and a commit wrote every page it dirtied to the WAL again: about 100 KB for
    /// each event. Thousands of events at once share those pages.
    pub fn index_trail_events(&mut self) -> Result<usize, StoreError> {
        let through = trail_keys_through(self.conn)?;
        let waiting: Vec<TrailEvent> = self
            .conn
            .prepare_cached(&format!(
                "SELECT {}, '' FROM trail_events WHERE seq > ?1 ORDER BY seq",
                trail_columns("")
            ))?
            .query_map(params![through], trail_event_row)?
            .collect::<Result<_, _>>()?;
        let Some(last) = waiting.last().map(|e| e.seq) else {
            return Ok(0);
        };
        // Each key as (event, part) numbers, in key order: each leaf page of the index then
        // changes once. The keys themselves are built only to be written, one at a time.
        let mut keys: Vec<(u32, u16)> = Vec::new();
        for (n, e) in waiting.iter().enumerate() {
            let n = u32::try_from(n).map_err(|_| StoreError::Commit("too many events".into()))?;
            keys.extend((0..trail_key_count(e)).map(|p| (n, p)));
        }
        let part = |&(n, p): &(u32, u16)| {
            let e = &waiting[n as usize];
            let (letter, value) = trail_key_spelling(trail_key_attribute(e, p));
            (
                e,
                (&e.account, &e.region, letter, value, e.event_time_ms, e.seq),
            )
        };
        keys.sort_unstable_by(|a, b| part(a).1.cmp(&part(b).1));
        keys.dedup_by(|a, b| part(a).1 == part(b).1);
        let mut key = self.conn.prepare_cached(
            "INSERT OR IGNORE INTO trail_keys (account, region, key, event_time_ms, seq)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let mut text = String::new();
        for k in &keys {
            let (e, (_, _, letter, value, _, _)) = part(k);
            text.clear();
            text.push(letter);
            text.push_str(value);
            key.execute(params![e.account, e.region, text, e.event_time_ms, e.seq])?;
        }
        self.conn.execute(
            "UPDATE trail_keys_through SET through_seq = ?1",
            params![last],
        )?;
        Ok(waiting.len())
    }

    /// The trail events `query` selects, newest first, at most `query.limit`.
    pub fn trail_events(
        &self,
        scope: Scope<'_>,
        query: &TrailQuery<'_>,
    ) -> Result<Vec<TrailEvent>, StoreError> {
        use rusqlite::types::Value;
        let mut args: Vec<Value> = vec![
            Value::Text(scope.account.to_string()),
            Value::Text(scope.region.to_string()),
        ];
        let columns = trail_columns("e.");
        // With an attribute, its keys (in time order) select the events; without, the events'
        // own index by time does. `o` is the table whose (time, seq) orders the result.
        let through = trail_keys_through(self.conn)?;
        let (mut sql, o) = match query.attribute {
            Some(attribute) => {
                args.push(Value::Text(trail_key(attribute)));
                args.push(Value::Integer(through));
                (
                    format!(
                        "SELECT {columns}, e.body FROM trail_keys o JOIN trail_events e ON e.seq = o.seq
                         WHERE o.account = ?1 AND o.region = ?2 AND o.key = ?3 AND o.seq <= ?4"
                    ),
                    "o",
                )
            }
            None => (
                format!(
                    "SELECT {columns}, e.body FROM trail_events e WHERE e.account = ?1 AND e.region = ?2"
                ),
                "e",
            ),
        };
        let mut push = |sql: &mut String, clause: &str, v: Value| {
            args.push(v);
            // `#` marks where the clause's one new parameter goes.
            sql.push_str(&clause.replace('#', &format!("?{}", args.len())));
        };
        if let Some(start) = query.start_ms {
            push(
                &mut sql,
                &format!(" AND {o}.event_time_ms >= #"),
                Value::Integer(start),
            );
        }
        if let Some(end) = query.end_ms {
            push(
                &mut sql,
                &format!(" AND {o}.event_time_ms <= #"),
                Value::Integer(end),
            );
        }
        if let Some((t, q)) = query.before {
            args.push(Value::Integer(t));
            args.push(Value::Integer(q));
            sql.push_str(&format!(
                " AND ({o}.event_time_ms, {o}.seq) < (?{}, ?{})",
                args.len() - 1,
                args.len()
            ));
        }
        args.push(Value::Integer(
            i64::try_from(query.limit).unwrap_or(i64::MAX),
        ));
        sql.push_str(&format!(
            " ORDER BY {o}.event_time_ms DESC, {o}.seq DESC LIMIT ?{}",
            args.len()
        ));
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args), trail_event_row)?;
        let indexed: Vec<TrailEvent> = rows.collect::<Result<_, _>>()?;
        match query.attribute {
            Some(attribute) => {
                let waiting = self.trail_events_waiting(scope, query, attribute, through)?;
                Ok(newest_of(indexed, waiting, query.limit))
            }
            None => Ok(indexed),
        }
    }

    /// The events after `through` (stored, their keys not yet written) that `attribute`
    /// selects within `query`'s bounds, newest first, at most `query.limit`.
    fn trail_events_waiting(
        &self,
        scope: Scope<'_>,
        query: &TrailQuery<'_>,
        attribute: TrailAttribute<'_>,
        through: i64,
    ) -> Result<Vec<TrailEvent>, StoreError> {
        use rusqlite::types::Value;
        // The attribute narrows the rows in SQL (a resource by its name's JSON inside the
        // row's list); each candidate is then checked against its keys.
        let (column, value) = match attribute {
            TrailAttribute::EventId(v) => ("event_id = ?", Value::Text(v.into())),
            TrailAttribute::EventName(v) => ("event_name = ?", Value::Text(v.into())),
            TrailAttribute::EventSource(v) => ("event_source = ?", Value::Text(v.into())),
            TrailAttribute::ReadOnly(v) => ("read_only = ?", Value::Integer(i64::from(v))),
            TrailAttribute::Username(v) => ("username = ?", Value::Text(v.into())),
            TrailAttribute::AccessKeyId(v) => ("access_key_id = ?", Value::Text(v.into())),
            TrailAttribute::ResourceType(v) | TrailAttribute::ResourceName(v) => (
                "instr(resources, ?) > 0",
                Value::Text(serde_json::to_string(v).unwrap_or_default()),
            ),
        };
        let start = query.start_ms.unwrap_or(i64::MIN);
        let end = query.end_ms.unwrap_or(i64::MAX);
        let (before_ms, before_seq) = query.before.unwrap_or((i64::MAX, i64::MAX));
        let sql = trail_waiting_sql(column);
        let args = [
            Value::Integer(through),
            Value::Text(scope.account.to_string()),
            Value::Text(scope.region.to_string()),
            Value::Integer(start),
            Value::Integer(end),
            Value::Integer(before_ms),
            Value::Integer(before_seq),
            value,
        ];
        let mut found = Vec::new();
        let mut stmt = self.conn.prepare_cached(&sql)?;
        for e in stmt.query_map(rusqlite::params_from_iter(args), trail_event_row)? {
            let e = e?;
            if (0..trail_key_count(&e)).any(|p| trail_key_attribute(&e, p) == attribute) {
                found.push(e);
                if found.len() >= query.limit {
                    break;
                }
            }
        }
        drop(stmt);
        let mut body = self
            .conn
            .prepare_cached("SELECT body FROM trail_events WHERE seq = ?1")?;
        for e in &mut found {
            e.body = body.query_row(params![e.seq], |r| stored_body(r, 0))?;
        }
        Ok(found)
    }

    /// Deletes the oldest trail events (of every account) older than `before_ms`, at most
    /// `most` of them, with their keys; how many went (fewer than `most`: none is left).
    pub fn prune_trail_events(&mut self, before_ms: i64, most: usize) -> Result<usize, StoreError> {
        // An event's keys are found from the event itself, so pruning reads only what goes.
        let old: Vec<TrailEvent> = self
            .conn
            .prepare_cached(&format!(
                "SELECT {}, '' FROM trail_events WHERE event_time_ms < ?1 ORDER BY event_time_ms LIMIT ?2",
                trail_columns("")
            ))?
            .query_map(
                params![before_ms, i64::try_from(most).unwrap_or(i64::MAX)],
                trail_event_row,
            )?
            .collect::<Result<_, _>>()?;
        let mut key = self.conn.prepare_cached(
            "DELETE FROM trail_keys
             WHERE account = ?1 AND region = ?2 AND key = ?3 AND event_time_ms = ?4 AND seq = ?5",
        )?;
        let mut event = self
            .conn
            .prepare_cached("DELETE FROM trail_events WHERE seq = ?1")?;
        for e in &old {
            for k in trail_keys(e) {
                key.execute(params![e.account, e.region, k, e.event_time_ms, e.seq])?;
            }
            event.execute(params![e.seq])?;
        }
        Ok(old.len())
    }

    /// Appends log events `(timestamp_ms, message)` to `group`/`stream`, in the given order,
    /// all ingested at `ingestion_ms`. Returns the seq of the last one (0 for none).
    pub fn append_log_events(
        &mut self,
        scope: Scope<'_>,
        group: &str,
        stream: &str,
        ingestion_ms: i64,
        events: &[(i64, &str)],
    ) -> Result<i64, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO log_events (account, region, log_group, log_stream, timestamp_ms, ingestion_ms, message)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        let mut last = 0;
        for (timestamp_ms, message) in events {
            stmt.execute(params![
                scope.account,
                scope.region,
                group,
                stream,
                timestamp_ms,
                ingestion_ms,
                message
            ])?;
            last = self.conn.last_insert_rowid();
        }
        Ok(last)
    }

    /// The log events `range` selects, at most `range.limit`, in (timestamp, seq) order
    /// (descending when `range.descending`).
    pub fn log_events(
        &self,
        scope: Scope<'_>,
        range: &LogRange<'_>,
    ) -> Result<Vec<LogEvent>, StoreError> {
        use rusqlite::types::Value;
        let mut sql = String::from(
            "SELECT seq, log_stream, timestamp_ms, ingestion_ms, message FROM log_events
             WHERE account = ?1 AND region = ?2 AND log_group = ?3",
        );
        let mut args: Vec<Value> = vec![
            Value::Text(scope.account.to_string()),
            Value::Text(scope.region.to_string()),
            Value::Text(range.group.to_string()),
        ];
        let mut arg = |sql: &mut String, clause: &str, values: Vec<Value>| {
            // Each `?` of the clause becomes the numbered parameter of its value.
            sql.push_str(" AND ");
            let mut values = values.into_iter();
            for (i, part) in clause.split('?').enumerate() {
                if i > 0
                    && let Some(v) = values.next()
                {
                    args.push(v);
                    sql.push_str(&format!("?{}", args.len()));
                }
                sql.push_str(part);
            }
        };
        match range.streams {
            LogStreams::All => {}
            LogStreams::One(name) => {
                arg(&mut sql, "log_stream = ?", vec![Value::Text(name.into())])
            }
            LogStreams::Named(names) => {
                let marks = vec!["?"; names.len()].join(", ");
                arg(
                    &mut sql,
                    &format!("log_stream IN ({marks})"),
                    names.iter().map(|n| Value::Text(n.clone())).collect(),
                );
            }
            LogStreams::Prefix(prefix) => {
                arg(
                    &mut sql,
                    "log_stream >= ?",
                    vec![Value::Text(prefix.into())],
                );
                if let Some(end) = prefix_end(prefix) {
                    arg(&mut sql, "log_stream < ?", vec![Value::Text(end)]);
                }
            }
        }
        if let Some(start) = range.start_ms {
            arg(&mut sql, "timestamp_ms >= ?", vec![Value::Integer(start)]);
        }
        if let Some(end) = range.end_ms {
            arg(&mut sql, "timestamp_ms < ?", vec![Value::Integer(end)]);
        }
        if let Some((t, q)) = range.after {
            arg(
                &mut sql,
                "(timestamp_ms, seq) > (?, ?)",
                vec![Value::Integer(t), Value::Integer(q)],
            );
        }
        if let Some((t, q)) = range.before {
            arg(
                &mut sql,
                "(timestamp_ms, seq) < (?, ?)",
                vec![Value::Integer(t), Value::Integer(q)],
            );
        }
        let dir = if range.descending { "DESC" } else { "ASC" };
        let limit = i64::try_from(range.limit).unwrap_or(i64::MAX);
        args.push(Value::Integer(limit));
        sql.push_str(&format!(
            " ORDER BY timestamp_ms {dir}, seq {dir} LIMIT ?{}",
            args.len()
        ));
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args), |r| {
            Ok(LogEvent {
                seq: r.get(0)?,
                stream: r.get(1)?,
                timestamp_ms: r.get(2)?,
                ingestion_ms: r.get(3)?,
                message: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes the events of `group` (of one `stream` of it when given); how many went.
    pub fn delete_log_events(
        &mut self,
        scope: Scope<'_>,
        group: &str,
        stream: Option<&str>,
    ) -> Result<usize, StoreError> {
        Ok(self.conn.prepare_cached(
            "DELETE FROM log_events WHERE account = ?1 AND region = ?2 AND log_group = ?3 AND (?4 IS NULL OR log_stream = ?4)",
        )?
        .execute(params![scope.account, scope.region, group, stream])?)
    }

    /// Deletes the events of `group` older than `before_ms` (retention); how many went.
    pub fn prune_log_events(
        &mut self,
        scope: Scope<'_>,
        group: &str,
        before_ms: i64,
    ) -> Result<usize, StoreError> {
        Ok(self.conn.prepare_cached(
            "DELETE FROM log_events WHERE account = ?1 AND region = ?2 AND log_group = ?3 AND timestamp_ms < ?4",
        )?
        .execute(params![scope.account, scope.region, group, before_ms])?)
    }

    pub fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKey>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT access_key_id, secret_access_key, account, principal_arn, status, created_at_ms FROM access_keys WHERE access_key_id = ?1",
            )?
            .query_row(params![access_key_id], |r| {
                Ok(AccessKey {
                    access_key_id: r.get(0)?,
                    secret_access_key: r.get(1)?,
                    account: r.get(2)?,
                    principal_arn: r.get(3)?,
                    status: r.get(4)?,
                    created_at_ms: r.get(5)?,
                })
            })
            .optional()?)
    }

    /// The access keys of a principal, oldest first.
    pub fn access_keys_of(
        &self,
        account: &str,
        principal_arn: &str,
    ) -> Result<Vec<AccessKey>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT access_key_id, secret_access_key, account, principal_arn, status, created_at_ms FROM access_keys
             WHERE account = ?1 AND principal_arn = ?2 ORDER BY created_at_ms, access_key_id",
        )?;
        let rows = stmt.query_map(params![account, principal_arn], |r| {
            Ok(AccessKey {
                access_key_id: r.get(0)?,
                secret_access_key: r.get(1)?,
                account: r.get(2)?,
                principal_arn: r.get(3)?,
                status: r.get(4)?,
                created_at_ms: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn insert_access_key(&mut self, key: &AccessKey) -> Result<(), StoreError> {
        self.access_keys_changed = true;
        let n = self.conn.execute(
            "INSERT INTO access_keys (access_key_id, secret_access_key, account, principal_arn, status, created_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
            params![key.access_key_id, key.secret_access_key, key.account, key.principal_arn, key.status, key.created_at_ms],
        )?;
        if n == 0 {
            return Err(StoreError::AlreadyExists {
                kind: "access-key".into(),
                id: key.access_key_id.clone(),
            });
        }
        Ok(())
    }

    /// Sets a key's status (`Active` / `Inactive`); false when no such key exists.
    pub fn set_access_key_status(
        &mut self,
        access_key_id: &str,
        status: &str,
    ) -> Result<bool, StoreError> {
        self.access_keys_changed = true;
        Ok(self.conn.execute(
            "UPDATE access_keys SET status = ?2 WHERE access_key_id = ?1",
            params![access_key_id, status],
        )? > 0)
    }

    /// Deletes a key; false when no such key exists.
    pub fn delete_access_key(&mut self, access_key_id: &str) -> Result<bool, StoreError> {
        self.access_keys_changed = true;
        Ok(self.conn.execute(
            "DELETE FROM access_keys WHERE access_key_id = ?1",
            params![access_key_id],
        )? > 0)
    }

    /// Points every key of a principal at its new ARN (a renamed IAM user).
    pub fn move_access_keys(
        &mut self,
        account: &str,
        from_principal: &str,
        to_principal: &str,
    ) -> Result<usize, StoreError> {
        self.access_keys_changed = true;
        Ok(self.conn.execute(
            "UPDATE access_keys SET principal_arn = ?3 WHERE account = ?1 AND principal_arn = ?2",
            params![account, from_principal, to_principal],
        )?)
    }
}

/// Events waiting for their lookup keys at which an append writes them all
/// ([`Tx::index_trail_events`]): a lookup reads at most these rows besides the index.
pub(crate) const TRAIL_KEYS_AFTER: i64 = 4096;

/// The last event whose lookup keys `trail_keys` holds (those after it wait for theirs).
fn trail_keys_through(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached("SELECT through_seq FROM trail_keys_through")?
        .query_row([], |r| r.get(0))?)
}

/// The query of the events after the mark that `column` (a condition on one parameter)
/// selects, newest first. `NOT INDEXED`: the rows after the mark by their numbers, then
/// sorted (at most a few thousand); the index by time matches the order, and SQLite chose
/// it, walking every event of the account instead.
fn trail_waiting_sql(column: &str) -> String {
    format!(
        "SELECT {}, '' FROM trail_events NOT INDEXED
         WHERE seq > ?1 AND account = ?2 AND region = ?3 AND event_time_ms >= ?4
           AND event_time_ms <= ?5 AND (event_time_ms, seq) < (?6, ?7) AND {column}
         ORDER BY event_time_ms DESC, seq DESC",
        trail_columns("")
    )
}

/// Two lists of events, each newest first and with no event in both, as one, newest first,
/// at most `limit` long.
fn newest_of(a: Vec<TrailEvent>, b: Vec<TrailEvent>, limit: usize) -> Vec<TrailEvent> {
    if b.is_empty() {
        return a;
    }
    let mut out = Vec::with_capacity(limit.min(a.len() + b.len()));
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    while out.len() < limit {
        let take_a = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => (x.event_time_ms, x.seq) > (y.event_time_ms, y.seq),
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        out.extend(if take_a { a.next() } else { b.next() });
    }
    out
}

/// What LookupEvents can find a trail event by, as rows of `trail_keys`: a letter naming the
/// attribute, then its value; each resource type and name once. [`trail_key`] spells a
/// lookup's the same way.
fn trail_keys(e: &TrailEvent) -> Vec<String> {
    let mut keys: Vec<String> = (0..trail_key_count(e))
        .map(|p| trail_key(trail_key_attribute(e, p)))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// How many attributes [`trail_key_attribute`] numbers for `e` (some may repeat).
fn trail_key_count(e: &TrailEvent) -> u16 {
    u16::try_from(6 + 2 * e.resources.len()).unwrap_or(u16::MAX)
}

/// Attribute `p` (below [`trail_key_count`]) that `e` can be looked up by.
fn trail_key_attribute(e: &TrailEvent, p: u16) -> TrailAttribute<'_> {
    match p {
        0 => TrailAttribute::EventId(&e.event_id),
        1 => TrailAttribute::EventName(&e.event_name),
        2 => TrailAttribute::EventSource(&e.event_source),
        3 => TrailAttribute::ReadOnly(e.read_only),
        4 => TrailAttribute::Username(&e.username),
        5 => TrailAttribute::AccessKeyId(&e.access_key_id),
        _ => {
            let i = usize::from(p - 6);
            match e.resources.get(i / 2) {
                Some(r) if i % 2 == 0 => TrailAttribute::ResourceType(&r.resource_type),
                Some(r) => TrailAttribute::ResourceName(&r.name),
                // Past the count: the event's id again (a repeat, as keys may be).
                None => TrailAttribute::EventId(&e.event_id),
            }
        }
    }
}

/// A lookup attribute's `trail_keys` key as its letter and value (migration 10 writes the
/// same).
fn trail_key_spelling(attribute: TrailAttribute<'_>) -> (char, &str) {
    match attribute {
        TrailAttribute::EventId(v) => ('i', v),
        TrailAttribute::EventName(v) => ('n', v),
        TrailAttribute::EventSource(v) => ('s', v),
        TrailAttribute::ReadOnly(v) => ('r', if v { "1" } else { "0" }),
        TrailAttribute::Username(v) => ('u', v),
        TrailAttribute::AccessKeyId(v) => ('k', v),
        TrailAttribute::ResourceType(v) => ('t', v),
        TrailAttribute::ResourceName(v) => ('R', v),
    }
}

/// The `trail_keys` key of a lookup attribute.
fn trail_key(attribute: TrailAttribute<'_>) -> String {
    let (letter, value) = trail_key_spelling(attribute);
    format!("{letter}{value}")
}

/// The columns of a trail event's row [`trail_event_row`] reads first (its body follows),
/// each after `alias`.
fn trail_columns(alias: &str) -> String {
    [
        "seq",
        "account",
        "region",
        "event_time_ms",
        "event_id",
        "event_name",
        "event_source",
        "read_only",
        "username",
        "access_key_id",
        "resources",
    ]
    .map(|c| format!("{alias}{c}"))
    .join(", ")
}

/// A row of [`trail_columns`] and a body as a [`TrailEvent`].
fn trail_event_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TrailEvent> {
    Ok(TrailEvent {
        seq: r.get(0)?,
        account: r.get(1)?,
        region: r.get(2)?,
        event_time_ms: r.get(3)?,
        event_id: r.get(4)?,
        event_name: r.get(5)?,
        event_source: r.get(6)?,
        read_only: r.get(7)?,
        username: r.get(8)?,
        access_key_id: r.get(9)?,
        resources: decode_trail_resources(&r.get::<_, String>(10)?),
        body: stored_body(r, 11)?,
    })
}

/// An event's resources as its row keeps them: a JSON array of `[type, name]`, in order.
fn encode_trail_resources(resources: &[TrailResource]) -> String {
    let pairs: Vec<[&str; 2]> = resources
        .iter()
        .map(|r| [r.resource_type.as_str(), r.name.as_str()])
        .collect();
    // Serializing strings into a `String` cannot fail.
    serde_json::to_string(&pairs).unwrap_or_else(|_| "[]".to_string())
}

/// [`encode_trail_resources`] read back; anything else reads as none.
fn decode_trail_resources(json: &str) -> Vec<TrailResource> {
    serde_json::from_str::<Vec<(String, String)>>(json)
        .unwrap_or_default()
        .into_iter()
        .map(|(resource_type, name)| TrailResource {
            resource_type,
            name,
        })
        .collect()
}

/// A `SELECT id, version, body` row as a [`Record`].
fn record_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Record> {
    Ok(Record {
        id: r.get(0)?,
        version: r.get(1)?,
        body: stored_body(r, 2)?,
    })
}

/// Column `i` of `r`, a body as [`Body::of_json`] stores it, as JSON text.
fn stored_body(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<String> {
    use rusqlite::types::{Type, ValueRef};
    let failed = |t, e: Box<dyn std::error::Error + Send + Sync>| {
        rusqlite::Error::FromSqlConversionFailure(i, t, e)
    };
    match r.get_ref(i)? {
        ValueRef::Blob(b) => {
            let json = crate::compress::decompress(b).map_err(|e| failed(Type::Blob, e.into()))?;
            String::from_utf8(json).map_err(|e| failed(Type::Blob, Box::new(e)))
        }
        _ => r.get(i),
    }
}

/// `value` as a record's stored body ([`Body::of_json`]). The JSON is written into a buffer
/// the thread keeps: a body is mostly compressed, so its text was a string allocated, grown
/// a few times (a task's is about 2 KiB) and dropped for each record, inside the writer.
fn encode_body<T: serde::Serialize>(kind: &str, id: &str, value: &T) -> Result<Body, StoreError> {
    crate::scratch::with(&JSON, |buf| {
        buf.clear();
        serde_json::to_writer(&mut *buf, value).map_err(|e| encode_failed(kind, id, e))?;
        let json = std::str::from_utf8(buf).map_err(|e| encode_failed(kind, id, e))?;
        Ok(Body::of_json(json))
    })
}

thread_local! {
    /// [`encode_body`]'s buffer.
    static JSON: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn encode<T: serde::Serialize>(kind: &str, id: &str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| encode_failed(kind, id, e))
}

fn encode_failed(kind: &str, id: &str, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Encode {
        kind: kind.into(),
        id: id.into(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Scope<'static> = Scope {
        account: "111122223333",
        region: "us-east-1",
    };

    #[test]
    fn host_entries_list_by_task_and_by_sequence() {
        let store = Store::open_in_memory().unwrap();
        store
            .write(|tx| -> Result<(), StoreError> {
                tx.put_host_entry("h1", "111|r|c/a", 1, &"a")?;
                tx.put_host_entry("h1", "111|r|c/b", 2, &"b")?;
                tx.put_host_entry("h1", "222|r|c/c", 3, &"c")?;
                tx.put_host_entry("h2", "111|r|c/d", 1, &"d")?;
                // `a` changes again: it moves after `c` in sequence order.
                tx.put_host_entry("h1", "111|r|c/a", 4, &"a2")?;
                Ok(())
            })
            .unwrap();
        let (all, mine, since, gone, after_wipe) = store
            .write(|tx| -> Result<_, StoreError> {
                let all = tx.host_entries("h1", "")?;
                let mine = tx.host_entries("h1", "111|r|")?;
                let since = tx.host_entries_since("h1", 2)?;
                let gone = tx.delete_host_entry("h1", "111|r|c/b")?
                    && !tx.delete_host_entry("h1", "111|r|c/b")?;
                tx.wipe_account("111")?;
                let after_wipe = (tx.host_entries("h1", "")?, tx.host_entries("h2", "")?);
                Ok((all, mine, since, gone, after_wipe))
            })
            .unwrap();
        let tasks = |v: &[HostEntry]| v.iter().map(|e| e.task.clone()).collect::<Vec<_>>();
        assert_eq!(tasks(&all), ["111|r|c/a", "111|r|c/b", "222|r|c/c"]);
        assert_eq!(tasks(&mine), ["111|r|c/a", "111|r|c/b"]);
        assert_eq!(tasks(&since), ["222|r|c/c", "111|r|c/a"]);
        assert_eq!(since[1].seq, 4);
        assert_eq!(since[1].decode::<String>().unwrap(), "a2");
        assert!(gone);
        assert_eq!(tasks(&after_wipe.0), ["222|r|c/c"]);
        assert!(after_wipe.1.is_empty());
    }

    /// Long bodies are stored compressed and read back as the JSON they were; short ones,
    /// and text bodies of stores from before compression, are text.
    #[test]
    fn long_bodies_are_stored_compressed() {
        let store = Store::open_in_memory().unwrap();
        let long = serde_json::json!({ "name": "x".repeat(4000), "n": 1 });
        store
            .write(|tx| -> Result<(), StoreError> {
                tx.put(S, "k", "long", None, &long)?;
                tx.put(S, "k", "short", None, &7)?;
                tx.conn.execute(
                    "INSERT INTO records (account, region, kind, id, version, body) VALUES (?1, ?2, 'k', 'old', 1, ?3)",
                    params![S.account, S.region, serde_json::to_string(&long).unwrap()],
                )?;
                Ok(())
            })
            .unwrap();
        let (types, long_back, old_back, listed) = store
            .read(|tx| -> Result<_, StoreError> {
                let types: Vec<(String, String, i64)> = tx
                    .conn
                    .prepare("SELECT id, typeof(body), length(body) FROM records WHERE kind = 'k' ORDER BY id")?
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect::<Result<_, _>>()?;
                Ok((
                    types,
                    tx.get_json::<serde_json::Value>(S, "k", "long")?,
                    tx.get_json::<serde_json::Value>(S, "k", "old")?,
                    tx.list(S, "k", "", None, 10)?.len(),
                ))
            })
            .unwrap();
        assert_eq!(types[0].0, "long");
        assert_eq!(types[0].1, "blob");
        assert!(
            types[0].2 < 200,
            "4 KiB of repeated text compresses: {}",
            types[0].2
        );
        assert_eq!((types[1].1.as_str(), types[2].1.as_str()), ("text", "text"));
        assert_eq!(long_back.unwrap().0, long);
        assert_eq!(old_back.unwrap().0, long);
        assert_eq!(listed, 3);
    }

    /// A statement with `LIMIT ?` runs again with another limit without being compiled again
    /// (SQLite expired it at each new binding until plans stopped reading bound values).
    #[test]
    fn statements_with_a_bound_limit_are_not_compiled_again() {
        let dir = temp_dir("reprepare");
        let conn = open_connection(&dir.join("berth.db")).unwrap();
        conn.execute_batch(
            "CREATE TABLE t (k TEXT PRIMARY KEY); INSERT INTO t VALUES ('a'), ('b'), ('c');",
        )
        .unwrap();
        let sql = "SELECT k FROM t WHERE k >= ?1 ORDER BY k DESC LIMIT ?2";
        for limit in [1_i64, 8, 2, 1] {
            let mut stmt = conn.prepare_cached(sql).unwrap();
            let rows: Vec<String> = stmt
                .query_map(params!["a", limit], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(rows.len(), limit.min(3) as usize);
            assert_eq!(
                stmt.get_status(rusqlite::StatementStatus::RePrepare),
                0,
                "compiled again at limit {limit}"
            );
        }
        drop(conn);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Asked by the checkpointer, the writer starts the WAL over after a group's commit, and
    /// what was written stays readable.
    #[test]
    fn the_writer_restarts_the_wal_when_asked() {
        let dir = temp_dir("wal-restart");
        let store = Store::open(&dir.join("berth.db")).unwrap();
        let put = |n: i64| {
            store
                .write(|tx| tx.put(S, "cluster", &format!("c{n}"), None, &n))
                .unwrap()
        };
        put(1);
        assert_eq!(store.wal_restarts(), 0);
        store.restart_wal.store(true, Ordering::Relaxed);
        put(2);
        assert_eq!(store.wal_restarts(), 1);
        put(3);
        let listed = store
            .read(|tx| tx.list(S, "cluster", "", None, 10))
            .unwrap()
            .len();
        assert_eq!(listed, 3);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn host_entries_move_out_of_records() {
        // A store whose host entries are still records (before migration 6) keeps them.
        let (dir, path) = database_before(
            "host-entries",
            6,
            "INSERT INTO records (account, region, kind, id, version, body) VALUES ('', '', 'ecs/host-task', 'instance|111|r|c/i#111|r|c/t', 1, '{\"seq\":7,\"family\":\"f\"}');",
        );
        let store = Store::open(&path).unwrap();
        let (entries, left) = store
            .read(|tx| -> Result<_, StoreError> {
                Ok((
                    tx.host_entries_since("instance|111|r|c/i", 6)?,
                    tx.count(Scope::new("", ""), "ecs/host-task", "")?,
                ))
            })
            .unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].task, "111|r|c/t");
        assert_eq!(entries[0].seq, 7);
        assert_eq!(left, 0);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Every entry takes the next of one counter; a host's sequence is its latest entry's.
    #[test]
    fn host_sequences_move_with_their_own_entries_only() {
        let store = Store::open_in_memory().unwrap();
        let seqs = store
            .write(|tx| -> Result<_, StoreError> {
                let before = tx.host_sequence("h1")?;
                let a = tx.next_host_sequence()?;
                tx.put_host_entry("h1", "111|r|c/a", a, &"a")?;
                let b = tx.next_host_sequence()?;
                tx.put_host_entry("h2", "111|r|c/b", b, &"b")?;
                let h1_after_h2 = tx.host_sequence("h1")?;
                let c = tx.next_host_sequence()?;
                tx.put_host_entry("h1", "111|r|c/a", c, &"a2")?;
                Ok((before, a, b, h1_after_h2, c, tx.host_sequence("h1")?))
            })
            .unwrap();
        let (before, a, b, h1_after_h2, c, h1) = seqs;
        assert_eq!(before, 0);
        assert!(a < b && b < c);
        assert_eq!(h1_after_h2, a, "another host's entry does not move h1");
        assert_eq!(h1, c);
        // The counter is stored when a write ends: the next write goes on from it; a write
        // that fails takes its entries and its numbers back with it.
        let failed = store.write(|tx| -> Result<(), StoreError> {
            let d = tx.next_host_sequence()?;
            tx.put_host_entry("h2", "111|r|c/d", d, &"d")?;
            Err(StoreError::Commit("refused".into()))
        });
        assert!(failed.is_err());
        let (e, h2) = store
            .write(|tx| -> Result<_, StoreError> {
                let e = tx.next_host_sequence()?;
                tx.put_host_entry("h1", "111|r|c/e", e, &"e")?;
                Ok((e, tx.host_sequence("h2")?))
            })
            .unwrap();
        assert_eq!(e, c + 1);
        assert_eq!(h2, b, "the failed write's entry is gone");
        let stored = store
            .read(|tx| tx.sequence(Scope::new("", ""), HOST_SEQUENCE))
            .unwrap();
        assert_eq!(stored, e);
    }

    /// The gateway's cached lookups see every change a write makes to a key at once.
    #[test]
    fn cached_access_keys_follow_every_change() {
        let store = Store::open_in_memory().unwrap();
        let key = AccessKey {
            access_key_id: "AKIAEXAMPLE".into(),
            secret_access_key: "secret".into(),
            account: "111122223333".into(),
            principal_arn: "arn:aws:iam::111122223333:user/a".into(),
            status: "Active".into(),
            created_at_ms: 1,
        };
        assert_eq!(store.access_key("AKIAEXAMPLE").unwrap(), None);
        store.write(|tx| tx.insert_access_key(&key)).unwrap();
        assert_eq!(store.access_key("AKIAEXAMPLE").unwrap(), Some(key.clone()));
        // Cached now: each change is seen by the next lookup.
        store
            .write(|tx| tx.set_access_key_status("AKIAEXAMPLE", "Inactive"))
            .unwrap();
        let status = |store: &Store| store.access_key("AKIAEXAMPLE").unwrap().map(|k| k.status);
        assert_eq!(status(&store).as_deref(), Some("Inactive"));
        store
            .write(|tx| {
                tx.move_access_keys(
                    "111122223333",
                    &key.principal_arn,
                    "arn:aws:iam::111122223333:user/b",
                )
            })
            .unwrap();
        assert_eq!(
            store
                .access_key("AKIAEXAMPLE")
                .unwrap()
                .map(|k| k.principal_arn)
                .as_deref(),
            Some("arn:aws:iam::111122223333:user/b")
        );
        store
            .write(|tx| tx.delete_access_key("AKIAEXAMPLE"))
            .unwrap();
        assert_eq!(store.access_key("AKIAEXAMPLE").unwrap(), None);
        // A write that fails changes nothing, cached or not.
        store.write(|tx| tx.insert_access_key(&key)).unwrap();
        assert!(store.access_key("AKIAEXAMPLE").unwrap().is_some());
        let failed = store.write(|tx| -> Result<(), StoreError> {
            tx.delete_access_key("AKIAEXAMPLE")?;
            Err(StoreError::Commit("refused".into()))
        });
        assert!(failed.is_err());
        assert_eq!(status(&store).as_deref(), Some("Active"));
    }

    /// What the store tells polls about a host's sequence without a read: never below an
    /// entry a write filed, whatever reads reported since.
    #[test]
    fn host_sequences_seen_count_every_written_entry() {
        let store = Store::open_in_memory().unwrap();
        assert_eq!(store.host_sequence_seen("h1"), None);
        let (a, b) = store
            .write(|tx| -> Result<_, StoreError> {
                let a = tx.next_host_sequence()?;
                tx.put_host_entry("h1", "111|r|c/a", a, &"a")?;
                let b = tx.next_host_sequence()?;
                tx.put_host_entry("h1", "111|r|c/b", b, &"b")?;
                Ok((a, b))
            })
            .unwrap();
        assert!(a < b);
        assert_eq!(store.host_sequence_seen("h1"), Some(b));
        assert_eq!(store.host_sequence_seen("h2"), None);
        // A read that found less (an older snapshot) does not lower it; one that found more
        // raises it.
        store.see_host_sequence("h1", a);
        assert_eq!(store.host_sequence_seen("h1"), Some(b));
        store.see_host_sequence("h2", 7);
        assert_eq!(store.host_sequence_seen("h2"), Some(7));
        // A write that fails files nothing.
        let failed = store.write(|tx| -> Result<(), StoreError> {
            let c = tx.next_host_sequence()?;
            tx.put_host_entry("h3", "111|r|c/c", c, &"c")?;
            Err(StoreError::Commit("refused".into()))
        });
        assert!(failed.is_err());
        assert_eq!(store.host_sequence_seen("h3"), None);
    }

    /// A store from before migration 7 (a counter per host): the shared counter starts past
    /// every host's, so a new entry is after anything an agent acknowledged.
    #[test]
    fn host_counters_fold_into_one() {
        let (dir, path) = database_before(
            "host-seq",
            7,
            "INSERT INTO sequences (account, region, name, value) VALUES
                ('', '', 'host-seq/instance|111|r|c/i', 41),
                ('', '', 'host-seq/instance|111|r|c/j', 9),
                ('', '', 'other', 500),
                ('111', 'r', 'host-seq/x', 900);
             INSERT INTO host_entries (host, task, seq, body)
                VALUES ('instance|111|r|c/i', '111|r|c/t', 41, '{}');",
        );
        let store = Store::open(&path).unwrap();
        let (i, next, left) = store
            .write(|tx| -> Result<_, StoreError> {
                Ok((
                    tx.host_sequence("instance|111|r|c/i")?,
                    tx.next_host_sequence()?,
                    tx.sequence_if_any(Scope::new("", ""), "host-seq/instance|111|r|c/i")?,
                ))
            })
            .unwrap();
        assert_eq!(i, 41);
        assert_eq!(
            next, 42,
            "past the highest host counter, not another account's"
        );
        assert_eq!(left, None);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A store from before migration 8 keeps each event's resources, in their order, and
    /// finds events by them.
    #[test]
    fn trail_resources_move_to_a_table_keyed_by_event() {
        let (dir, path) = database_before(
            "trail-resources",
            8,
            "INSERT INTO trail_events (seq, account, region, event_time_ms, event_id, event_name, event_source, read_only, username, access_key_id, body)
                VALUES (3, '111122223333', 'us-east-1', 10, 'e', 'RunTask', 'ecs.amazonaws.com', 0, 'root', 'AKIA', '{}');
             INSERT INTO trail_resources (seq, account, region, event_time_ms, resource_type, resource_name) VALUES
                (3, '111122223333', 'us-east-1', 10, 'AWS::ECS::TaskDefinition', 'web:1'),
                (3, '111122223333', 'us-east-1', 10, 'AWS::ECS::Cluster', 'web');",
        );
        let store = Store::open(&path).unwrap();
        let found = store
            .read(|tx| tx.trail_events(S, &newest(Some(TrailAttribute::ResourceName("web")), 10)))
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(
            resource_pairs(&found[0]),
            [
                ("AWS::ECS::TaskDefinition", "web:1"),
                ("AWS::ECS::Cluster", "web")
            ]
        );
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn insert_get_put_with_versions() {
        let store = Store::open_in_memory().unwrap();
        store
            .write(|tx| -> Result<(), StoreError> {
                assert_eq!(
                    tx.insert(S, "cluster", "a", &serde_json::json!({"n": 1}))?,
                    1
                );
                assert!(matches!(
                    tx.insert(S, "cluster", "a", &1),
                    Err(StoreError::AlreadyExists { .. })
                ));
                assert_eq!(
                    tx.put(S, "cluster", "a", Some(1), &serde_json::json!({"n": 2}))?,
                    2
                );
                assert!(matches!(
                    tx.put(S, "cluster", "a", Some(1), &3),
                    Err(StoreError::Conflict { .. })
                ));
                Ok(())
            })
            .unwrap();
        let (v, version): (serde_json::Value, i64) = store
            .read(|tx| tx.get_json(S, "cluster", "a"))
            .unwrap()
            .unwrap();
        assert_eq!((v["n"].as_i64(), version), (Some(2), 2));
        // Other regions do not see it.
        let other = Scope {
            account: S.account,
            region: "eu-west-1",
        };
        assert!(
            store
                .read(|tx| tx.get(other, "cluster", "a"))
                .unwrap()
                .is_none()
        );
    }

    /// Many threads writing at once: every write that succeeds is committed and visible when
    /// its call returns, the failing ones (and a panicking one) undo only themselves, and
    /// writes share commits.
    #[test]
    fn group_commit_isolates_failures_and_shares_commits() {
        let dir = std::env::temp_dir().join(format!(
            "berth-store-group-{}-{}",
            std::process::id(),
            next_id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Arc::new(Store::open(&dir.join("db.sqlite")).unwrap());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for k in 0..200 {
                        let id = format!("{t}-{k}");
                        let fail = k % 7 == 3;
                        let r: Result<(), StoreError> = store.write(|tx| {
                            tx.insert(S, "k", &id, &k)?;
                            if fail {
                                return Err(StoreError::Poisoned);
                            }
                            tx.insert(S, "k", &format!("{id}-second"), &k)?;
                            Ok(())
                        });
                        assert_eq!(r.is_ok(), !fail, "{id}: {r:?}");
                        // Read-your-writes through another connection.
                        let seen = store.read(|tx| tx.get(S, "k", &id)).unwrap();
                        assert_eq!(seen.is_some(), !fail, "{id}");
                        if t == 0 && k == 100 {
                            let p = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                let _: Result<(), StoreError> = store.write(|tx| {
                                    tx.insert(S, "k", "panicked", &1)?;
                                    panic!("a write panics");
                                });
                            }));
                            assert!(p.is_err());
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let n = store.read(|tx| tx.count(S, "k", "")).unwrap();
        let ok_per_thread = (0..200).filter(|k| k % 7 != 3).count() as i64;
        assert_eq!(n, 8 * ok_per_thread * 2);
        assert!(
            store
                .read(|tx| tx.get(S, "k", "panicked"))
                .unwrap()
                .is_none()
        );
        let (writes, commits) = store.commit_stats();
        assert!(writes >= 8 * ok_per_thread as u64, "{writes} {commits}");
        assert!(commits <= writes, "{writes} {commits}");
        eprintln!("{writes} writes in {commits} commits");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn failed_write_rolls_back() {
        let store = Store::open_in_memory().unwrap();
        let r: Result<(), StoreError> = store.write(|tx| {
            tx.insert(S, "k", "x", &1)?;
            Err(StoreError::Poisoned)
        });
        assert!(r.is_err());
        assert!(store.read(|tx| tx.get(S, "k", "x")).unwrap().is_none());
    }

    #[test]
    fn observers_and_effects_see_commits_only() {
        let store = Store::open_in_memory().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        store
            .observe(&["watched"], move |c| {
                s2.lock().unwrap().extend_from_slice(c)
            })
            .unwrap();
        let ran = Arc::new(Mutex::new(0));
        let r2 = ran.clone();
        store
            .write(|tx| -> Result<(), StoreError> {
                tx.insert(S, "watched", "a", &1)?;
                tx.put(S, "watched", "a", Some(1), &2)?;
                tx.put(S, "other", "b", None, &2)?;
                tx.delete(S, "watched", "a")?;
                tx.after_commit(move || *r2.lock().unwrap() += 1);
                Ok(())
            })
            .unwrap();
        let r3 = ran.clone();
        let failed: Result<(), StoreError> = store.write(|tx| {
            tx.insert(S, "watched", "z", &1)?;
            tx.after_commit(move || *r3.lock().unwrap() += 10);
            Err(StoreError::Poisoned)
        });
        assert!(failed.is_err());
        assert_eq!(*ran.lock().unwrap(), 1);
        let rec = |id: &str, version| Change::Record {
            account: S.account.into(),
            region: S.region.into(),
            kind: "watched".into(),
            id: id.into(),
            version,
        };
        assert_eq!(
            *seen.lock().unwrap(),
            vec![rec("a", Some(1)), rec("a", Some(2)), rec("a", None)]
        );
    }

    #[test]
    fn list_pages_by_prefix() {
        let store = Store::open_in_memory().unwrap();
        store
            .write(|tx| -> Result<(), StoreError> {
                for id in [
                    "web:0001",
                    "web:0002",
                    "web-2:0001",
                    "webx:0001",
                    "api:0001",
                ] {
                    tx.insert(S, "td", id, &id)?;
                }
                Ok(())
            })
            .unwrap();
        let ids = |prefix: &str, after: Option<&str>, limit| -> Vec<String> {
            store
                .read(|tx| tx.list(S, "td", prefix, after, limit))
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect()
        };
        assert_eq!(ids("web:", None, 10), vec!["web:0001", "web:0002"]);
        assert_eq!(ids("web:", Some("web:0001"), 10), vec!["web:0002"]);
        assert_eq!(ids("", None, 2), vec!["api:0001", "web-2:0001"]);
        assert_eq!(ids("", Some("web-2:0001"), 2), vec!["web:0001", "web:0002"]);
        assert_eq!(store.read(|tx| tx.count(S, "td", "web")).unwrap(), 4);
        let backwards = |prefix: &str, before: Option<&str>, limit| -> Vec<String> {
            store
                .read(|tx| tx.list_backwards(S, "td", prefix, before, limit))
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect()
        };
        assert_eq!(backwards("web:", None, 10), vec!["web:0002", "web:0001"]);
        assert_eq!(backwards("web:", None, 1), vec!["web:0002"]);
        assert_eq!(backwards("web:", Some("web:0002"), 10), vec!["web:0001"]);
        assert_eq!(
            backwards("web:", Some("zzz"), 10),
            vec!["web:0002", "web:0001"]
        );
        assert_eq!(backwards("web:", Some("web:"), 10), Vec::<String>::new());
        assert_eq!(
            backwards("", Some("web:0001"), 10),
            vec!["web-2:0001", "api:0001"]
        );
    }

    #[test]
    fn sequences_count_up_and_wipe_resets() {
        let store = Store::open_in_memory().unwrap();
        let next = || store.write(|tx| tx.next_sequence(S, "family/web")).unwrap();
        assert_eq!((next(), next(), next()), (1, 2, 3));
        assert_eq!(store.read(|tx| tx.sequence(S, "family/web")).unwrap(), 3);
        assert_eq!(store.read(|tx| tx.sequence(S, "other")).unwrap(), 0);
        store.write(|tx| tx.wipe_account(S.account)).unwrap();
        assert_eq!(next(), 1);
    }

    #[test]
    fn log_events_append_and_range_read() {
        let store = Store::open_in_memory().unwrap();
        store
            .write(|tx| -> Result<(), StoreError> {
                tx.append_log_events(S, "g", "a", 100, &[(10, "a1"), (20, "a2"), (20, "a3")])?;
                tx.append_log_events(S, "g", "b", 100, &[(15, "b1"), (30, "b2")])?;
                tx.append_log_events(S, "h", "a", 100, &[(10, "other group")])?;
                Ok(())
            })
            .unwrap();
        let read = |range: LogRange<'_>| -> Vec<String> {
            store
                .read(|tx| tx.log_events(S, &range))
                .unwrap()
                .into_iter()
                .map(|e| e.message)
                .collect()
        };
        let all = LogRange {
            group: "g",
            streams: LogStreams::All,
            start_ms: None,
            end_ms: None,
            after: None,
            before: None,
            descending: false,
            limit: 100,
        };
        assert_eq!(read(all), vec!["a1", "b1", "a2", "a3", "b2"]);
        assert_eq!(
            read(LogRange {
                streams: LogStreams::One("a"),
                ..all
            }),
            vec!["a1", "a2", "a3"]
        );
        let names = vec!["b".to_string()];
        assert_eq!(
            read(LogRange {
                streams: LogStreams::Named(&names),
                ..all
            }),
            vec!["b1", "b2"]
        );
        assert_eq!(
            read(LogRange {
                start_ms: Some(15),
                end_ms: Some(30),
                ..all
            }),
            vec!["b1", "a2", "a3"]
        );
        assert_eq!(
            read(LogRange {
                descending: true,
                limit: 2,
                ..all
            }),
            vec!["b2", "a3"]
        );
        let a2 = store
            .read(|tx| tx.log_events(S, &LogRange { limit: 3, ..all }))
            .unwrap()[2]
            .clone();
        assert_eq!(a2.message, "a2");
        assert_eq!(
            read(LogRange {
                after: Some((a2.timestamp_ms, a2.seq)),
                ..all
            }),
            vec!["a3", "b2"]
        );
        assert_eq!(
            read(LogRange {
                before: Some((a2.timestamp_ms, a2.seq)),
                ..all
            }),
            vec!["a1", "b1"]
        );
        assert_eq!(
            read(LogRange {
                streams: LogStreams::Prefix("b"),
                ..all
            }),
            vec!["b1", "b2"]
        );
        store
            .write(|tx| -> Result<(), StoreError> {
                assert_eq!(tx.prune_log_events(S, "g", 20)?, 2);
                assert_eq!(tx.delete_log_events(S, "g", Some("b"))?, 1);
                Ok(())
            })
            .unwrap();
        assert_eq!(read(all), vec!["a2", "a3"]);
        store.write(|tx| tx.wipe_account(S.account)).unwrap();
        assert!(read(LogRange { group: "h", ..all }).is_empty());
    }

    /// A CloudTrail event of account S at `t` with `resources` (type, name).
    fn trail_event(t: i64, name: &str, resources: &[(&str, &str)]) -> TrailEvent {
        TrailEvent {
            seq: 0,
            account: S.account.into(),
            region: S.region.into(),
            event_time_ms: t,
            event_id: format!("id-{t}"),
            event_name: name.into(),
            event_source: "ecs.amazonaws.com".into(),
            read_only: name.starts_with("Describe"),
            username: "root".into(),
            access_key_id: "AKIA1".into(),
            resources: resources
                .iter()
                .map(|(t, n)| TrailResource {
                    resource_type: (*t).into(),
                    name: (*n).into(),
                })
                .collect(),
            body: "{}".into(),
        }
    }

    /// A lookup of the newest `limit` events `attribute` selects, over all time.
    fn newest(attribute: Option<TrailAttribute<'_>>, limit: usize) -> TrailQuery<'_> {
        TrailQuery {
            attribute,
            start_ms: None,
            end_ms: None,
            before: None,
            limit,
        }
    }

    /// How many rows `trail_keys` holds.
    fn trail_key_rows(store: &Store) -> usize {
        let n: i64 = store
            .read(|tx| {
                Ok::<_, StoreError>(tx.conn.query_row(
                    "SELECT count(*) FROM trail_keys",
                    [],
                    |r| r.get(0),
                )?)
            })
            .unwrap();
        n.try_into().unwrap()
    }

    /// An event's resources as (type, name) pairs, in order.
    fn resource_pairs(e: &TrailEvent) -> Vec<(&str, &str)> {
        e.resources
            .iter()
            .map(|r| (r.resource_type.as_str(), r.name.as_str()))
            .collect()
    }

    /// Events move to a trail database of their own with their resources: one a cut move
    /// had copied already is not copied twice, and those whose sequence number the trail
    /// has given to an event of its own meanwhile get new ones.
    #[test]
    fn trail_events_move_to_their_own_database() {
        let dir = temp_dir("trail-move");
        let main = Store::open(&dir.join("berth.db")).unwrap();
        let trail = Store::open(&dir.join("trail.db")).unwrap();
        assert_eq!(main.move_trail_events_to(&dir.join("trail.db")).unwrap(), 0);
        let append = |store: &Store, events: Vec<TrailEvent>| {
            store.write(|tx| tx.append_trail_events(&events)).unwrap()
        };
        let all = TrailQuery {
            attribute: None,
            start_ms: None,
            end_ms: None,
            before: None,
            limit: 10,
        };
        append(
            &main,
            vec![
                trail_event(10, "RunTask", &[("AWS::ECS::Cluster", "web")]),
                trail_event(20, "CreateCluster", &[("AWS::ECS::Cluster", "api")]),
            ],
        );
        // Recorded in the trail meanwhile: it takes sequence number 1, RunTask's in `main`.
        append(&trail, vec![trail_event(5, "DescribeClusters", &[])]);
        // As if an earlier move had copied CreateCluster and stopped before deleting.
        let created = main
            .read(|tx| tx.trail_events(S, &all))
            .unwrap()
            .into_iter()
            .find(|e| e.event_name == "CreateCluster")
            .unwrap();
        trail
            .write(|t| {
                t.conn.execute(
                    "INSERT INTO trail_events (seq, account, region, event_time_ms, event_id, event_name, event_source, read_only, username, access_key_id, resources, body) VALUES (7, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, '{}')",
                    params![created.account, created.region, created.event_time_ms, created.event_id, created.event_name, created.event_source, created.read_only, created.username, created.access_key_id, encode_trail_resources(&created.resources)],
                )?;
                for k in trail_keys(&created) {
                    t.conn.execute(
                        "INSERT INTO trail_keys (account, region, key, event_time_ms, seq) VALUES (?1, ?2, ?3, ?4, 7)",
                        params![created.account, created.region, k, created.event_time_ms],
                    )?;
                }
                Ok::<_, StoreError>(())
            })
            .unwrap();
        assert_eq!(main.move_trail_events_to(&dir.join("trail.db")).unwrap(), 2);
        assert!(main.read(|tx| tx.trail_events(S, &all)).unwrap().is_empty());
        let names = |attribute| -> Vec<String> {
            trail
                .read(|tx| tx.trail_events(S, &TrailQuery { attribute, ..all }))
                .unwrap()
                .into_iter()
                .map(|e| e.event_name)
                .collect()
        };
        assert_eq!(
            names(None),
            vec!["CreateCluster", "RunTask", "DescribeClusters"]
        );
        assert_eq!(
            names(Some(TrailAttribute::ResourceName("web"))),
            vec!["RunTask"]
        );
        assert_eq!(
            names(Some(TrailAttribute::ResourceName("api"))),
            vec!["CreateCluster"]
        );
        // New events follow the moved ones.
        append(&trail, vec![trail_event(30, "DeleteCluster", &[])]);
        assert_eq!(
            names(None),
            vec![
                "DeleteCluster",
                "CreateCluster",
                "RunTask",
                "DescribeClusters"
            ]
        );
        drop((main, trail));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A store from before migration 10 (a row per resource, an index per attribute) finds
    /// its events by every attribute afterwards, with their resources in order, and pruning
    /// leaves no key behind.
    #[test]
    fn trail_events_become_one_row_each_with_their_keys() {
        let (dir, path) = database_before(
            "trail-compact",
            10,
            "INSERT INTO trail_events (seq, account, region, event_time_ms, event_id, event_name, event_source, read_only, username, access_key_id, body)
                VALUES (4, '111122223333', 'us-east-1', 10, 'e4', 'RunTask', 'ecs.amazonaws.com', 0, 'root', 'AKIA', '{}'),
                       (5, '111122223333', 'us-east-1', 20, 'e5', 'ListTasks', 'ecs.amazonaws.com', 1, 'ana', 'AKIB', '{}');
             INSERT INTO trail_resources (seq, n, account, region, event_time_ms, resource_type, resource_name) VALUES
                (4, 2, '111122223333', 'us-east-1', 10, 'AWS::ECS::Cluster', 'web'),
                (4, 1, '111122223333', 'us-east-1', 10, 'AWS::ECS::TaskDefinition', 'web:1'),
                (4, 3, '111122223333', 'us-east-1', 10, 'AWS::ECS::Cluster', 'api');",
        );
        let store = Store::open(&path).unwrap();
        let found = |attribute| -> Vec<i64> {
            store
                .read(|tx| tx.trail_events(S, &newest(attribute, 10)))
                .unwrap()
                .into_iter()
                .map(|e| e.seq)
                .collect()
        };
        assert_eq!(found(None), [5, 4]);
        for (attribute, seqs) in [
            (TrailAttribute::EventId("e4"), vec![4]),
            (TrailAttribute::EventName("ListTasks"), vec![5]),
            (TrailAttribute::EventSource("ecs.amazonaws.com"), vec![5, 4]),
            (TrailAttribute::ReadOnly(true), vec![5]),
            (TrailAttribute::ReadOnly(false), vec![4]),
            (TrailAttribute::Username("root"), vec![4]),
            (TrailAttribute::AccessKeyId("AKIB"), vec![5]),
            (TrailAttribute::ResourceType("AWS::ECS::Cluster"), vec![4]),
            (TrailAttribute::ResourceName("api"), vec![4]),
            (TrailAttribute::ResourceName("web:1"), vec![4]),
            (TrailAttribute::ResourceName("nothing"), vec![]),
        ] {
            assert_eq!(found(Some(attribute)), seqs, "{attribute:?}");
        }
        let run_task = store
            .read(|tx| tx.trail_events(S, &newest(Some(TrailAttribute::EventId("e4")), 1)))
            .unwrap();
        assert_eq!(
            resource_pairs(&run_task[0]),
            [
                ("AWS::ECS::TaskDefinition", "web:1"),
                ("AWS::ECS::Cluster", "web"),
                ("AWS::ECS::Cluster", "api")
            ]
        );
        assert_eq!(store.write(|tx| tx.prune_trail_events(100, 1)).unwrap(), 1);
        assert_eq!(store.write(|tx| tx.prune_trail_events(100, 5)).unwrap(), 1);
        assert_eq!(
            trail_key_rows(&store),
            0,
            "pruning leaves no key of a pruned event"
        );
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// Every lookup of random events (a few names, users, resources, times; some in
        /// another account) returns exactly what filtering them would, newest first, page by
        /// page; pruning keeps exactly the events at or after its time and the keys of those.
        #[test]
        fn trail_lookups_match_filtering_the_events(
            raw in proptest::collection::vec(
                (0_i64..6, 0_usize..3, 0_usize..2, proptest::bool::ANY, 0_usize..2,
                 proptest::collection::vec((0_usize..2, 0_usize..4), 0..4)),
                1..24,
            ),
            attribute_pick in 0_usize..9,
            value_pick in 0_usize..4,
            limit in 1_usize..5,
            prune_at in 0_i64..7,
            indexed in 0_usize..25,
        ) {
            const NAMES: [&str; 3] = ["RunTask", "ListTasks", "StopTask"];
            const USERS: [&str; 2] = ["root", "ana"];
            const TYPES: [&str; 2] = ["AWS::ECS::Cluster", "AWS::ECS::Task"];
            const RESOURCES: [&str; 4] = ["web", "api", "arn:t/1", "arn:t/2"];
            let store = Store::open_in_memory().unwrap();
            let mut events: Vec<TrailEvent> = raw
                .iter()
                .enumerate()
                .map(|(i, (t, name, user, read_only, account, resources))| TrailEvent {
                    seq: 0,
                    account: if *account == 0 { S.account.into() } else { "999988887777".into() },
                    region: S.region.into(),
                    event_time_ms: *t,
                    event_id: format!("e{i}"),
                    event_name: NAMES[*name].into(),
                    event_source: "ecs.amazonaws.com".into(),
                    read_only: *read_only,
                    username: USERS[*user].into(),
                    access_key_id: format!("AKIA{user}"),
                    resources: resources
                        .iter()
                        .map(|(t, n)| TrailResource {
                            resource_type: TYPES[*t].into(),
                            name: RESOURCES[*n].into(),
                        })
                        .collect(),
                    body: format!("{{\"n\":{i}}}"),
                })
                .collect();
            // The first `indexed` events have their lookup keys written, the rest wait.
            let indexed = indexed.min(events.len());
            store.write(|tx| tx.append_trail_events(&events[..indexed])).unwrap();
            store.write(|tx| tx.index_trail_events()).unwrap();
            store.write(|tx| tx.append_trail_events(&events[indexed..])).unwrap();
            for (e, seq) in events.iter_mut().zip(1..) {
                e.seq = seq;
            }
            let value = |pool: &[&'static str]| pool[value_pick % pool.len()];
            let attribute = match attribute_pick {
                0 => None,
                1 => Some(TrailAttribute::EventId(["e0", "e3", "e7", "e30"][value_pick])),
                2 => Some(TrailAttribute::EventName(value(&NAMES))),
                3 => Some(TrailAttribute::EventSource(value(&["ecs.amazonaws.com", "iam.amazonaws.com"]))),
                4 => Some(TrailAttribute::ReadOnly(value_pick % 2 == 0)),
                5 => Some(TrailAttribute::Username(value(&USERS))),
                6 => Some(TrailAttribute::AccessKeyId(value(&["AKIA0", "AKIA1"]))),
                7 => Some(TrailAttribute::ResourceType(value(&TYPES))),
                _ => Some(TrailAttribute::ResourceName(value(&RESOURCES))),
            };
            let matches = |e: &TrailEvent| -> bool {
                e.account == S.account
                    && match attribute {
                        None => true,
                        Some(TrailAttribute::EventId(v)) => e.event_id == v,
                        Some(TrailAttribute::EventName(v)) => e.event_name == v,
                        Some(TrailAttribute::EventSource(v)) => e.event_source == v,
                        Some(TrailAttribute::ReadOnly(v)) => e.read_only == v,
                        Some(TrailAttribute::Username(v)) => e.username == v,
                        Some(TrailAttribute::AccessKeyId(v)) => e.access_key_id == v,
                        Some(TrailAttribute::ResourceType(v)) => {
                            e.resources.iter().any(|r| r.resource_type == v)
                        }
                        Some(TrailAttribute::ResourceName(v)) => {
                            e.resources.iter().any(|r| r.name == v)
                        }
                    }
            };
            let check = |events: &[TrailEvent]| {
                let mut expected: Vec<&TrailEvent> = events.iter().filter(|e| matches(e)).collect();
                expected.sort_by_key(|e| std::cmp::Reverse((e.event_time_ms, e.seq)));
                // Page through, as LookupEvents does.
                let mut got: Vec<TrailEvent> = Vec::new();
                let mut before = None;
                loop {
                    let page = store
                        .read(|tx| {
                            tx.trail_events(
                                S,
                                &TrailQuery { attribute, start_ms: None, end_ms: None, before, limit },
                            )
                        })
                        .unwrap();
                    let full = page.len() == limit;
                    before = page.last().map(|e| (e.event_time_ms, e.seq));
                    got.extend(page);
                    if !full {
                        break;
                    }
                }
                let expected: Vec<TrailEvent> = expected.into_iter().cloned().collect();
                assert_eq!(got, expected);
            };
            check(&events);
            while store.write(|tx| tx.prune_trail_events(prune_at, 3)).unwrap() == 3 {}
            events.retain(|e| e.event_time_ms >= prune_at);
            check(&events);
            let with_keys = |events: &[TrailEvent]| -> usize {
                events
                    .iter()
                    .filter(|e| e.seq <= i64::try_from(indexed).unwrap())
                    .map(|e| trail_keys(e).len())
                    .sum()
            };
            assert_eq!(trail_key_rows(&store), with_keys(&events));
            // Written later, the waiting events' keys select what the rows did.
            store.write(|tx| tx.index_trail_events()).unwrap();
            check(&events);
            assert_eq!(
                trail_key_rows(&store),
                events.iter().map(|e| trail_keys(e).len()).sum::<usize>()
            );
        }
    }

    /// Keys are written many events at a time: past [`TRAIL_KEYS_AFTER`] waiting events an
    /// append writes them all; an event stored after every indexed one was pruned is found
    /// by its row until then, never taken for one whose keys are written.
    #[test]
    fn trail_keys_follow_in_batches() {
        let store = Store::open_in_memory().unwrap();
        let cluster = |name| Some(TrailAttribute::ResourceName(name));
        let found = |attribute, limit| -> Vec<i64> {
            store
                .read(|tx| tx.trail_events(S, &newest(attribute, limit)))
                .unwrap()
                .iter()
                .map(|e| e.event_time_ms)
                .collect()
        };
        let many: Vec<TrailEvent> = (0..TRAIL_KEYS_AFTER - 1)
            .map(|t| trail_event(t, "RunTask", &[("AWS::ECS::Cluster", "web")]))
            .collect();
        store.write(|tx| tx.append_trail_events(&many)).unwrap();
        assert_eq!(trail_key_rows(&store), 0);
        assert_eq!(
            found(cluster("web"), 2),
            [TRAIL_KEYS_AFTER - 2, TRAIL_KEYS_AFTER - 3]
        );
        // The one that makes them enough: every event's keys are written.
        store
            .write(|tx| {
                tx.append_trail_events(&[trail_event(
                    TRAIL_KEYS_AFTER,
                    "RunTask",
                    &[("AWS::ECS::Cluster", "api")],
                )])
            })
            .unwrap();
        let per_event = trail_keys(&many[0]).len();
        assert_eq!(
            trail_key_rows(&store),
            per_event * usize::try_from(TRAIL_KEYS_AFTER).unwrap()
        );
        assert_eq!(found(cluster("api"), 5), [TRAIL_KEYS_AFTER]);
        assert_eq!(found(cluster("web"), 1), [TRAIL_KEYS_AFTER - 2]);
        // Pruned to nothing, then one more: numbered past the mark, found by its row.
        while store
            .write(|tx| tx.prune_trail_events(i64::MAX, 1000))
            .unwrap()
            > 0
        {}
        assert_eq!(trail_key_rows(&store), 0);
        store
            .write(|tx| {
                tx.append_trail_events(&[trail_event(
                    5,
                    "RunTask",
                    &[("AWS::ECS::Cluster", "web")],
                )])
            })
            .unwrap();
        assert_eq!(found(cluster("web"), 5), [5]);
        assert_eq!(found(Some(TrailAttribute::EventId("id-5")), 5), [5]);
        assert_eq!(found(None, 5), [5]);
    }

    /// The waiting events are read by their numbers, never by walking the index by time.
    #[test]
    fn trail_waiting_events_are_read_by_number() {
        let store = Store::open_in_memory().unwrap();
        let plan: Vec<String> = store
            .read(|tx| {
                let sql = format!(
                    "EXPLAIN QUERY PLAN {}",
                    trail_waiting_sql("instr(resources, ?8) > 0")
                );
                let mut stmt = tx.conn.prepare(&sql)?;
                let rows = stmt.query_map(params![0, "a", "r", 0, 9, 9, 9, "x"], |r| {
                    r.get::<_, String>(3)
                })?;
                Ok::<_, StoreError>(rows.collect::<Result<_, _>>()?)
            })
            .unwrap();
        assert!(
            plan.iter().any(|p| p.contains("INTEGER PRIMARY KEY")),
            "{plan:?}"
        );
        assert!(
            !plan.iter().any(|p| p.contains("trail_events_by")),
            "{plan:?}"
        );
    }

    #[test]
    fn trail_events_lookup_by_attribute_newest_first() {
        let store = Store::open_in_memory().unwrap();
        store
            .write(|tx| {
                tx.append_trail_events(&[
                    trail_event(10, "RunTask", &[("AWS::ECS::Cluster", "web")]),
                    trail_event(20, "DescribeTasks", &[("AWS::ECS::Cluster", "web")]),
                    trail_event(30, "RunTask", &[("AWS::ECS::Cluster", "api")]),
                    trail_event(30, "CreateCluster", &[]),
                ])
            })
            .unwrap();
        let names = |attribute, before, limit| -> Vec<(String, i64)> {
            store
                .read(|tx| {
                    tx.trail_events(
                        S,
                        &TrailQuery {
                            attribute,
                            start_ms: None,
                            end_ms: None,
                            before,
                            limit,
                        },
                    )
                })
                .unwrap()
                .into_iter()
                .map(|e| (e.event_name, e.event_time_ms))
                .collect()
        };
        let all = names(None, None, 10);
        assert_eq!(
            all,
            vec![
                ("CreateCluster".into(), 30),
                ("RunTask".into(), 30),
                ("DescribeTasks".into(), 20),
                ("RunTask".into(), 10)
            ]
        );
        assert_eq!(
            names(Some(TrailAttribute::EventName("RunTask")), None, 10).len(),
            2
        );
        assert_eq!(
            names(Some(TrailAttribute::ResourceName("web")), None, 10),
            vec![("DescribeTasks".into(), 20), ("RunTask".into(), 10)]
        );
        assert_eq!(
            names(
                Some(TrailAttribute::ResourceType("AWS::ECS::Cluster")),
                None,
                10
            )
            .len(),
            3
        );
        assert_eq!(
            names(Some(TrailAttribute::ReadOnly(true)), None, 10),
            vec![("DescribeTasks".into(), 20)]
        );
        // Paging: after the first two, the rest.
        let first = store
            .read(|tx| {
                tx.trail_events(
                    S,
                    &TrailQuery {
                        attribute: None,
                        start_ms: None,
                        end_ms: None,
                        before: None,
                        limit: 2,
                    },
                )
            })
            .unwrap();
        let last = first.last().unwrap();
        assert_eq!(
            names(None, Some((last.event_time_ms, last.seq)), 10),
            vec![("DescribeTasks".into(), 20), ("RunTask".into(), 10)]
        );
        assert_eq!(first[0].resources, vec![]);
        store.write(|tx| tx.prune_trail_events(20, 100)).unwrap();
        assert_eq!(names(None, None, 10).len(), 3);
        assert!(names(Some(TrailAttribute::ResourceName("web")), None, 10).len() == 1);
        store.write(|tx| tx.wipe_account(S.account)).unwrap();
        assert!(names(None, None, 10).is_empty());
    }

    #[test]
    fn reopen_keeps_state_and_migrations_are_idempotent() {
        let dir = std::env::temp_dir().join(format!("berth-store-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.db");
        {
            let s = Store::open(&path).unwrap();
            s.write(|tx| tx.insert(S, "k", "x", &42)).unwrap();
        }
        let s = Store::open(&path).unwrap();
        let (v, _): (i64, i64) = s.read(|tx| tx.get_json(S, "k", "x")).unwrap().unwrap();
        assert_eq!(v, 42);
        drop(s);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A new, empty directory for one test's database files.
    /// Makes a database (in a directory of its own for `test`) as a Berth from before
    /// migration `version` left it (the migrations before it applied and recorded), with
    /// `rows` (SQL) in it; the directory and the database's path.
    fn database_before(
        test: &str,
        version: i64,
        rows: &str,
    ) -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = temp_dir(test);
        let path = dir.join("berth.db");
        let mut conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at_ms INTEGER NOT NULL);",
        )
        .unwrap();
        let tx = conn.transaction().unwrap();
        for (v, sql) in MIGRATIONS.iter().filter(|(v, _)| *v < version) {
            tx.execute_batch(sql).unwrap();
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at_ms) VALUES (?1, 0)",
                params![v],
            )
            .unwrap();
        }
        tx.execute_batch(rows).unwrap();
        tx.commit().unwrap();
        (dir, path)
    }

    fn temp_dir(test: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "berth-store-{test}-{}-{}",
            std::process::id(),
            next_id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A database made before records became a rowid table (schema 4) opens with its
    /// records, and they are read, replaced and listed by kind as before.
    #[test]
    fn records_survive_the_move_to_a_rowid_table() {
        let (dir, path) = database_before(
            "migrate",
            5,
            "INSERT INTO records (account, region, kind, id, version, body) VALUES ('111122223333', 'us-east-1', 'k', 'old', 3, '7');",
        );
        let s = Store::open(&path).unwrap();
        let (v, version): (i64, i64) = s.read(|tx| tx.get_json(S, "k", "old")).unwrap().unwrap();
        assert_eq!((v, version), (7, 3));
        s.write(|tx| tx.put(S, "k", "old", Some(3), &8)).unwrap();
        s.write(|tx| tx.insert(S, "k", "new", &9)).unwrap();
        assert!(s.write(|tx| tx.insert(S, "k", "new", &10)).is_err());
        let (v, version): (i64, i64) = s.read(|tx| tx.get_json(S, "k", "old")).unwrap().unwrap();
        assert_eq!((v, version), (8, 4));
        let kinds = s.read(|tx| tx.list_everywhere("k", None, 10)).unwrap();
        assert_eq!(kinds.len(), 2);
        drop(s);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Readers that never stop must not keep the WAL from starting over: it stays bounded
    /// while writes far larger than its limit go through.
    #[test]
    fn the_wal_stays_bounded_under_steady_reads() {
        let dir = temp_dir("wal");
        let path = dir.join("db.sqlite");
        let store = Arc::new(Store::open(&path).unwrap());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (store, stop) = (store.clone(), stop.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        store
                            .read(|tx| -> Result<usize, StoreError> {
                                Ok(tx.list(S, "blob", "", None, 5)?.len())
                            })
                            .unwrap();
                    }
                })
            })
            .collect();
        // 192 MiB written, three times the WAL's limit.
        let body = "x".repeat(256 * 1024);
        let wal = dir.join("db.sqlite-wal");
        let mut largest = 0;
        for k in 0..768 {
            store
                .write(|tx| tx.put(S, "blob", &format!("{}", k % 64), None, &body))
                .unwrap();
            largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            r.join().unwrap();
        }
        assert!(
            largest < 160 * 1024 * 1024,
            "the WAL grew to {largest} bytes"
        );
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
