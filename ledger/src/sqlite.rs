//! Embedded store: one SQLite file (WAL, `synchronous=FULL`), group commit led by the appending
//! tasks or on a writer thread ([`CommitMode`]), one seal (signature) per commit.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use rusqlite::types::Value;
use rusqlite::{Connection, ErrorCode, OptionalExtension as _, params};
use tokio::sync::oneshot;

use crate::checkpoint::{Checkpoint, CheckpointContent};
use crate::key::LedgerKey;
use crate::record::{GENESIS_PREV, Record, RecordContent, SEALED_RECORD_VERSION, normalize_serial};
use crate::seal::{SEAL_VERSION, Seal, SealContent, SealEntry};
use crate::store::{
    AppendFuture, ChainHead, MAX_CURSOR_LEN, Page, Query, Store, StoreError, check_limit,
};

/// Most operations one [`CommitQueue::next_batch`] returns (appends committed in one
/// transaction).
pub const MAX_BATCH: usize = 1024;

/// Longest group-commit wait [`CommitQueue::next_batch`] honours; longer ones are cut to it.
const MAX_GROUP_WAIT: Duration = Duration::from_secs(1);

/// Idle reader connections kept open.
const MAX_IDLE_READERS: usize = 8;

/// Schema, also documented in `ledger/README.md`.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS records (
    chain          TEXT    NOT NULL,
    seq            INTEGER NOT NULL,
    record_id      TEXT    NOT NULL,
    kind           TEXT    NOT NULL,
    time_ms        INTEGER NOT NULL,
    request_id     TEXT,
    transaction_id TEXT,
    client_id      TEXT,
    serial         TEXT,
    x5t            TEXT,
    jti            TEXT,
    idem_key       TEXT,
    kid            TEXT    NOT NULL,
    prev_hash      TEXT    NOT NULL,
    hash           TEXT    NOT NULL,
    signature      TEXT    NOT NULL,
    content        TEXT    NOT NULL,
    seal_id        INTEGER,
    UNIQUE (chain, seq)
);
CREATE INDEX IF NOT EXISTS records_by_txn ON records (transaction_id, time_ms, chain, seq)
    WHERE transaction_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_by_client ON records (client_id, time_ms, chain, seq)
    WHERE client_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_by_serial ON records (serial, time_ms, chain, seq)
    WHERE serial IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_by_x5t ON records (x5t, time_ms, chain, seq)
    WHERE x5t IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_by_jti ON records (jti, time_ms, chain, seq)
    WHERE jti IS NOT NULL;
CREATE TABLE IF NOT EXISTS chains (
    chain TEXT NOT NULL PRIMARY KEY
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    chain     TEXT    NOT NULL,
    seq       INTEGER NOT NULL,
    head_hash TEXT    NOT NULL,
    time_ms   INTEGER NOT NULL,
    kid       TEXT    NOT NULL,
    signature TEXT    NOT NULL,
    content   TEXT    NOT NULL,
    PRIMARY KEY (chain, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS seals (
    id        INTEGER PRIMARY KEY,
    content   TEXT    NOT NULL,
    signature TEXT    NOT NULL
);
";

/// Schema version (`PRAGMA user_version`): 2 added `seals` and `records.seal_id`.
const SCHEMA_VERSION: i64 = 2;

const RECORD_COLUMNS: &str = "chain, seq, content, hash, signature";

struct Row {
    record: Record,
    content_json: String,
    idem: Option<String>,
    serial: Option<String>,
}

enum Op {
    Append(Box<Row>, oneshot::Sender<Result<(), StoreError>>),
    Checkpoint(
        Box<(Checkpoint, String)>,
        oneshot::Sender<Result<(), StoreError>>,
    ),
}

/// The embedded SQLite store. Cheap to clone; all clones share one write connection and one
/// group-commit engine ([`CommitMode`]).
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    engine: Engine,
    /// The key commits are sealed with, once [`Store::enable_sealing`] gave one.
    sealer: Arc<OnceLock<Arc<LedgerKey>>>,
    readers: std::sync::Mutex<Vec<Connection>>,
}

/// Who commits (see [`CommitMode`]).
enum Engine {
    Thread(Arc<CommitQueue<Op>>),
    Inline(Arc<InlineCommitter>),
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Engine::Thread(queue) = &self.engine {
            queue.close();
        }
    }
}

/// Who commits the embedded store's appends. Either way appends are grouped as
/// [`GroupCommit`] expects, each group is one transaction with one seal and one fsync, appends
/// are applied in the order they were submitted, and no append is acknowledged before its group
/// is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommitMode {
    /// A dedicated writer thread takes groups from a [`CommitQueue`] (the default of
    /// [`SqliteStore::open`]). Appending tasks never block and need nothing of their runtime;
    /// every group costs hand-offs between threads. An append whose caller stopped waiting is
    /// still committed with the next group.
    #[default]
    WriterThread,
    /// The appending tasks themselves, no thread of the store's own (what `kairos serve` uses).
    /// The first append of a group to be awaited leads it: it waits, without blocking, for the
    /// group [`GroupCommit`] expects (at most the commit delay), yields to the runtime until a
    /// yield brings no more appends (at most [`MAX_GATHER_YIELDS`] times), takes the write lock
    /// (waiting for another process's transaction asynchronously, at most ten seconds), then
    /// commits the group on its own thread, **blocking that thread** for the transaction and
    /// its fsync (about 0.2 ms on the benchmark machine's virtual disk), and for SQLite's WAL
    /// checkpoint when one falls due. The other appends wait for it.
    ///
    /// What a caller must know:
    /// - it needs a Tokio runtime with its time driver enabled (`enable_all`), or the first
    ///   leader that waits for a group panics;
    /// - an append future that has been polled must be polled to completion or dropped: a
    ///   leader held without being polled holds up every other append;
    /// - a leader dropped before it commits hands the lead to another waiting append; an
    ///   append nobody waits for any more stays in memory until the next group is committed,
    ///   or until the store and every append future are dropped, and is lost if the process
    ///   dies first. Nobody was told it was written, and appends are committed in order, so no
    ///   later record of its chain can be durable without it.
    ///
    /// Measured with `kairos serve` (kairos/BENCH.md, section K): a few per cent less CPU per
    /// token over keep-alive in most pairs, within the machine's drift; 14–28 % less with a
    /// TLS handshake per request; lower p99 latency at 32 connections.
    Inline,
}

/// Most times an inline leader yields for more appends to join its group ([`CommitMode::Inline`]).
pub const MAX_GATHER_YIELDS: usize = 4;

/// The inline engine: the write connection and the appends waiting for a leader.
struct InlineCommitter {
    conn: std::sync::Mutex<Connection>,
    state: std::sync::Mutex<InlineState>,
    /// Wakes waiting appends when a group was committed or a leader gave up the lead.
    committed: tokio::sync::Notify,
    /// Wakes the leader when an append completes the group it expects. Used with
    /// `notify_waiters`, which leaves no permit behind for a later leader.
    full: tokio::sync::Notify,
    sealer: Arc<OnceLock<Arc<LedgerKey>>>,
    max_delay: Duration,
}

struct InlineState {
    pending: Vec<Op>,
    leading: bool,
    expect: GroupCommit,
    /// When the last group was committed.
    last_commit: Option<Instant>,
}

/// Gives up the lead however the leading append ends, even cancelled while gathering.
struct Leading<'a>(&'a InlineCommitter);

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        lock(&self.0.state).leading = false;
        self.0.committed.notify_waiters();
    }
}

impl Drop for InlineCommitter {
    /// Commits appends whose callers stopped waiting before any group took them.
    fn drop(&mut self) {
        let orphans = std::mem::take(&mut lock(&self.state).pending);
        if !orphans.is_empty() {
            let sealer = self.sealer.get().map(AsRef::as_ref);
            let mut conn = lock(&self.conn);
            // no runtime to wait on here: let SQLite wait for another writer
            let _ = conn.busy_timeout(BUSY_WAIT);
            commit_batch(&mut conn, orphans, sealer);
        }
    }
}

/// The answer to an append, once its group has been committed.
fn answered(rx: &mut oneshot::Receiver<Result<(), StoreError>>) -> Option<Result<(), StoreError>> {
    match rx.try_recv() {
        Ok(r) => Some(r),
        Err(oneshot::error::TryRecvError::Closed) => Some(Err(writer_stopped())),
        Err(oneshot::error::TryRecvError::Empty) => None,
    }
}

impl InlineCommitter {
    fn push(&self, op: Op) {
        let mut s = lock(&self.state);
        s.pending.push(op);
        let complete = s.leading && !s.expect.should_wait(s.pending.len());
        drop(s);
        if complete {
            self.full.notify_waiters();
        }
    }

    /// Starts the write transaction. When another connection (`kairos audit`, a `sqlite3`
    /// shell) holds the write lock, waits for it asynchronously, for at most [`BUSY_WAIT`],
    /// instead of in SQLite's busy handler, which would block the runtime's thread.
    async fn begin(&self) -> rusqlite::Result<()> {
        let started = Instant::now();
        let mut pause = Duration::from_micros(200);
        loop {
            match begin_immediate(&lock(&self.conn)) {
                Err(e) if is_busy(&e) && started.elapsed() < BUSY_WAIT => {}
                done => return done,
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// Waits until the append answering on `rx` is committed, leading a group when no one
    /// else does.
    async fn wait(
        &self,
        mut rx: oneshot::Receiver<Result<(), StoreError>>,
    ) -> Result<(), StoreError> {
        loop {
            // registered before the checks below, so that a commit or a lead given up in
            // between still wakes this append
            let committed = self.committed.notified();
            tokio::pin!(committed);
            committed.as_mut().enable();
            if let Some(r) = answered(&mut rx) {
                return r;
            }
            if std::mem::replace(&mut lock(&self.state).leading, true) {
                committed.await;
                continue;
            }
            let lead = Leading(self);
            // the group before may have taken this append while the lead was changing hands
            if let Some(r) = answered(&mut rx) {
                return r;
            }
            let full = self.full.notified();
            tokio::pin!(full);
            full.as_mut().enable();
            let wait = {
                let mut s = lock(&self.state);
                // nothing committed for longer than a delay: the load has stopped, and the
                // group expected from it will not come (as the writer thread's idle timeout)
                if s.last_commit.is_some_and(|t| t.elapsed() > self.max_delay) {
                    s.expect = GroupCommit::default();
                }
                s.expect.should_wait(s.pending.len())
            };
            let ran_out = wait
                && !self.max_delay.is_zero()
                && tokio::time::timeout(self.max_delay, full).await.is_err();
            // let the appends whose requests the runtime has ready join
            let mut seen = 0;
            for _ in 0..MAX_GATHER_YIELDS {
                tokio::task::yield_now().await;
                let now = lock(&self.state).pending.len();
                if now == seen {
                    break;
                }
                seen = now;
            }
            // the write lock first, so that a leader cancelled while another process holds it
            // has taken nothing; from here to the commit there is no await
            let begun = self.begin().await;
            let batch: Vec<Op> = {
                let mut s = lock(&self.state);
                let take = s.pending.len().min(MAX_BATCH);
                let batch: Vec<Op> = s.pending.drain(..take).collect();
                if !batch.is_empty() {
                    s.expect.observe(batch.len(), ran_out);
                }
                batch
            };
            let mut conn = lock(&self.conn);
            if batch.is_empty() {
                if begun.is_ok() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
            } else {
                commit_begun(
                    &mut conn,
                    batch,
                    self.sealer.get().map(AsRef::as_ref),
                    begun,
                );
                lock(&self.state).last_commit = Some(Instant::now());
            }
            drop(conn);
            drop(lead);
        }
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish()
    }
}

fn unavailable(what: &str) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError::unavailable(format!("sqlite {what}"), e)
}

/// Longest wait for another connection's write lock.
const BUSY_WAIT: Duration = Duration::from_secs(10);

fn open_conn(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(unavailable("open"))?;
    conn.busy_timeout(BUSY_WAIT)
        .map_err(unavailable("busy_timeout"))?;
    Ok(conn)
}

impl SqliteStore {
    /// Open (creating if needed) the ledger database at `path`, committing on a writer thread
    /// ([`CommitMode::WriterThread`]) with the default [`MAX_COMMIT_DELAY`].
    ///
    /// Durability: WAL with `synchronous=FULL`, so every commit is fsynced before any append
    /// in it is acknowledged.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, CommitMode::WriterThread, MAX_COMMIT_DELAY)
    }

    /// [`SqliteStore::open`] committing as `commit` says, with another longest group-commit
    /// delay (see [`GroupCommit`]), at most one second; zero commits whatever has arrived,
    /// never waiting.
    pub fn open_with(
        path: &Path,
        commit: CommitMode,
        max_commit_delay: Duration,
    ) -> Result<Self, StoreError> {
        // a wait longer than this would only hide a stuck writer
        let max_commit_delay = max_commit_delay.min(Duration::from_secs(1));
        let conn = open_conn(path)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(unavailable("journal_mode"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend {
                message: format!("could not enable WAL (journal_mode={mode})"),
                source: None,
            });
        }
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA cache_size=-8192; PRAGMA wal_autocheckpoint=10000; PRAGMA mmap_size=268435456;")
            .map_err(unavailable("synchronous"))?;
        migrate(&conn).map_err(|e| StoreError::backend("sqlite schema", e))?;
        let sealer = Arc::new(OnceLock::new());
        let engine = match commit {
            CommitMode::WriterThread => {
                let queue = Arc::new(CommitQueue::new());
                let writer_queue = queue.clone();
                let writer_sealer = sealer.clone();
                std::thread::Builder::new()
                    .name("kairos-ledger-sqlite".into())
                    .spawn(move || {
                        writer_loop(conn, &writer_queue, &writer_sealer, max_commit_delay);
                    })
                    .map_err(|e| StoreError::backend("spawn writer thread", e))?;
                Engine::Thread(queue)
            }
            CommitMode::Inline => Engine::Inline(Arc::new(InlineCommitter {
                // the leader waits for other writers itself, without blocking (`begin`)
                conn: {
                    conn.busy_timeout(Duration::ZERO)
                        .map_err(unavailable("busy_timeout"))?;
                    std::sync::Mutex::new(conn)
                },
                state: std::sync::Mutex::new(InlineState {
                    pending: Vec::new(),
                    leading: false,
                    expect: GroupCommit::default(),
                    last_commit: None,
                }),
                committed: tokio::sync::Notify::new(),
                full: tokio::sync::Notify::new(),
                sealer: sealer.clone(),
                max_delay: max_commit_delay,
            })),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                engine,
                sealer,
                readers: std::sync::Mutex::new(Vec::new()),
            }),
        })
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = lock(&inner.readers).pop();
            let conn = match pooled {
                Some(c) => c,
                None => {
                    let c = open_conn(&inner.path)?;
                    c.execute_batch("PRAGMA query_only=1;")
                        .map_err(unavailable("query_only"))?;
                    c
                }
            };
            let out = f(&conn);
            let mut pool = lock(&inner.readers);
            if pool.len() < MAX_IDLE_READERS {
                pool.push(conn);
            }
            out
        })
        .await
        .map_err(|e| StoreError::backend("reader task", e))?
    }

    fn submit(
        &self,
        op_fn: impl FnOnce(oneshot::Sender<Result<(), StoreError>>) -> Op,
    ) -> AppendFuture<'static> {
        let (tx, rx) = oneshot::channel();
        match &self.inner.engine {
            Engine::Thread(queue) => {
                let sent = queue.push(op_fn(tx));
                Box::pin(async move {
                    if sent.is_err() {
                        return Err(writer_stopped());
                    }
                    rx.await.unwrap_or_else(|_| Err(writer_stopped()))
                })
            }
            Engine::Inline(committer) => {
                committer.push(op_fn(tx));
                let committer = committer.clone();
                Box::pin(async move { committer.wait(rx).await })
            }
        }
    }
}

/// Creates the schema, or brings a version-1 file up to [`SCHEMA_VERSION`].
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        conn.execute_batch(SCHEMA)?;
        let has_seal_id: bool = conn
            .prepare("SELECT 1 FROM pragma_table_info('records') WHERE name = 'seal_id'")?
            .exists([])?;
        if !has_seal_id {
            conn.execute_batch("ALTER TABLE records ADD COLUMN seal_id INTEGER")?;
        }
        // Idempotency keys are unique. A version-1 file has a UNIQUE column for that, which
        // also indexes every record without a key (most records); newer files index only the
        // records that have one.
        let idem_unique: bool = conn
            .prepare(
                "SELECT 1 FROM pragma_index_list('records') AS l, pragma_index_info(l.name) AS i \
                 WHERE l.\"unique\" = 1 AND i.name = 'idem_key'",
            )?
            .exists([])?;
        if !idem_unique {
            conn.execute_batch(
                "CREATE UNIQUE INDEX records_by_idem ON records (idem_key) \
                 WHERE idem_key IS NOT NULL",
            )?;
        }
        conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT"),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Longest time a commit waits for more appends to share its fsync (see [`GroupCommit`]).
pub const MAX_COMMIT_DELAY: Duration = Duration::from_millis(2);

/// Adaptive group-commit delay, in the spirit of PostgreSQL's `commit_delay` and MySQL's
/// `binlog_group_commit_sync_delay`: the fsync at the end of each commit costs about as much
/// CPU as the rest of a token request, so when several requests are steadily in flight it pays
/// to let a commit wait, a little, for the ones about to arrive.
///
/// Whoever commits remembers the sizes of the last eight commits. A commit holding fewer operations
/// than their lower median waits for the rest, at most the configured delay; whatever else has
/// arrived by then joins too. Because it is a median, a chance overlap of independent requests,
/// or a burst, does not make later commits wait; sustained concurrency does. When a wait runs
/// out, the expectation drops at once to what came, and when nothing at all arrives within one
/// delay after a commit (the writer thread), or nothing was committed for longer than one delay
/// when a group starts (inline), it drops to one, so a fall in load costs at most one delay. Writers
/// that never overlap never wait.
///
/// Measured with `kairos serve` (kairos/BENCH.md, section E): with four keep-alive clients on
/// one saturated core, server CPU per token and median latency both fell, because the core no
/// longer spends itself on fsyncs. The price is up to one delay of latency per commit when
/// load is concurrent but irregular.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommit {
    /// Sizes of the last [`GROUP_HISTORY`] commits (a ring).
    recent: [usize; GROUP_HISTORY],
    next: usize,
}

/// How many recent commits [`GroupCommit`] remembers.
const GROUP_HISTORY: usize = 8;

impl Default for GroupCommit {
    fn default() -> Self {
        Self {
            recent: [1; GROUP_HISTORY],
            next: 0,
        }
    }
}

impl GroupCommit {
    /// The lower median of the recent commit sizes: bursts among lone commits do not move it,
    /// sustained concurrency (more than half of the recent commits) does.
    fn target(&self) -> usize {
        let mut sorted = self.recent;
        sorted.sort_unstable();
        sorted[GROUP_HISTORY / 2 - 1].clamp(1, MAX_BATCH)
    }

    /// Whether a commit holding `have` operations should wait for more.
    pub fn should_wait(&self, have: usize) -> bool {
        have < self.target()
    }

    /// Learn from a commit that held `got` operations after waiting (`waited`) or not.
    pub fn observe(&mut self, got: usize, waited: bool) {
        let got = got.clamp(1, MAX_BATCH);
        if waited && got < self.target() {
            // the wait ran out: believe what arrived
            self.recent = [got; GROUP_HISTORY];
        } else {
            if let Some(slot) = self.recent.get_mut(self.next) {
                *slot = got;
            }
            self.next = (self.next + 1) % GROUP_HISTORY;
        }
    }
}

/// Operations waiting for the writer, and when the writer wants to hear about them.
///
/// The writer is woken only when the group it is waiting for is complete (or, when idle with
/// no group expected, by the first operation), or when the oldest operation has waited the
/// group-commit delay; not by every operation. On a busy core each wake-up is a context
/// switch: with four clients, a commit of four records used to cost about ten
/// (kairos/BENCH.md, section F).
///
/// Public so that a benchmark harness can batch exactly as the embedded store's writer thread does
/// (`kairos/examples/durable_floor_server.rs`). The contract:
///
/// - **one consumer**: a single thread calls [`next_batch`](Self::next_batch) in a loop; two
///   consumers can leave operations queued with nobody woken for them;
/// - `next_batch` **blocks** the calling thread (a `std` condition variable): never call it
///   from an async task;
/// - after each batch the consumer calls [`GroupCommit::observe`] with the batch's size and
///   whether its wait ran out, or no group ever forms;
/// - when the consumer stops, however it stops, it calls
///   [`close_and_take`](Self::close_and_take) and fails what that returns (a drop guard does
///   this for the embedded store), so that no producer waits forever; producers see
///   [`push`](Self::push) give their operation back once the queue is closed.
#[derive(Debug)]
pub struct CommitQueue<T> {
    state: std::sync::Mutex<QueueState<T>>,
    wake: std::sync::Condvar,
}

#[derive(Debug)]
struct QueueState<T> {
    ops: Vec<T>,
    /// When the oldest waiting operation arrived.
    first_at: Option<Instant>,
    /// Wake the writer when this many operations wait; `usize::MAX` while it is committing.
    wake_at: usize,
    /// No more operations are accepted: the store was dropped or the writer stopped.
    closed: bool,
}

impl<T> Default for CommitQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> CommitQueue<T> {
    /// An empty, open queue.
    pub fn new() -> Self {
        Self {
            state: std::sync::Mutex::new(QueueState {
                ops: Vec::new(),
                first_at: None,
                wake_at: 1,
                closed: false,
            }),
            wake: std::sync::Condvar::new(),
        }
    }

    /// Queue `op` for the writer; gives it back when the writer has stopped.
    pub fn push(&self, op: T) -> Result<(), T> {
        let mut q = lock(&self.state);
        if q.closed {
            return Err(op);
        }
        if q.ops.is_empty() {
            q.first_at = Some(Instant::now());
        }
        q.ops.push(op);
        let wake = q.ops.len() >= q.wake_at;
        drop(q);
        if wake {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Stop accepting operations; the writer commits what is queued and exits.
    pub fn close(&self) {
        lock(&self.state).closed = true;
        self.wake.notify_one();
    }

    /// Stop accepting operations and take what is queued, for the consumer to fail when it
    /// cannot commit any more.
    pub fn close_and_take(&self) -> Vec<T> {
        let mut q = lock(&self.state);
        q.closed = true;
        q.first_at = None;
        std::mem::take(&mut q.ops)
    }

    /// Wait for the next group: at least the group's expected size, or what has come when the
    /// oldest operation has waited `max_delay` (at most one second); at most [`MAX_BATCH`]
    /// operations, oldest first.
    /// Once closed, what is queued is returned without waiting. Returns the batch and whether a
    /// wait ran out; `None` once closed and drained.
    pub fn next_batch(
        &self,
        group: &mut GroupCommit,
        max_delay: Duration,
    ) -> Option<(Vec<T>, bool)> {
        let max_delay = max_delay.min(MAX_GROUP_WAIT);
        let mut q = lock(&self.state);
        let mut ran_out = false;
        loop {
            let target = if max_delay.is_zero() {
                1
            } else {
                group.target()
            };
            if q.ops.len() >= target || (q.closed && !q.ops.is_empty()) {
                break;
            }
            if q.closed {
                return None;
            }
            q.wake_at = target;
            match q.first_at {
                None if target == 1 => {
                    q = self
                        .wake
                        .wait(q)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
                None => {
                    // a group is expected: let its last member wake us; if nothing at all
                    // comes within one delay the load has stopped
                    let (guard, timeout) = self
                        .wake
                        .wait_timeout(q, max_delay)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    q = guard;
                    if timeout.timed_out() && q.ops.is_empty() {
                        *group = GroupCommit::default();
                    }
                }
                Some(first) => {
                    let left = (first + max_delay).saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        ran_out = true;
                        break;
                    }
                    q = self
                        .wake
                        .wait_timeout(q, left)
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0;
                }
            }
        }
        q.wake_at = usize::MAX;
        let take = q.ops.len().min(MAX_BATCH);
        let batch: Vec<T> = q.ops.drain(..take).collect();
        if q.ops.is_empty() {
            q.first_at = None;
        }
        // else: what is left arrived no earlier than the old first_at, which keeps their bound
        Some((batch, ran_out))
    }
}

/// Closes the queue when the writer thread ends, however it ends, and fails what is left.
struct WriterExit<'a>(&'a CommitQueue<Op>);

impl Drop for WriterExit<'_> {
    fn drop(&mut self) {
        for op in self.0.close_and_take() {
            let _ = reply_of(op).send(Err(writer_stopped()));
        }
    }
}

fn writer_stopped() -> StoreError {
    StoreError::Unavailable {
        message: "sqlite writer stopped".into(),
        source: None,
    }
}

fn reply_of(op: Op) -> oneshot::Sender<Result<(), StoreError>> {
    match op {
        Op::Append(_, r) | Op::Checkpoint(_, r) => r,
    }
}

fn writer_loop(
    mut conn: Connection,
    queue: &CommitQueue<Op>,
    sealer: &OnceLock<Arc<LedgerKey>>,
    max_delay: Duration,
) {
    let _exit = WriterExit(queue);
    let mut group = GroupCommit::default();
    while let Some((batch, ran_out)) = queue.next_batch(&mut group, max_delay) {
        group.observe(batch.len(), ran_out);
        commit_batch(&mut conn, batch, sealer.get().map(AsRef::as_ref));
    }
}

enum Outcome {
    Done(Result<(), StoreError>),
    Fatal(rusqlite::Error),
}

/// Applies a batch in one transaction and answers every operation. With a sealing key, the
/// records written are listed in one seal, signed and written in the same transaction.
fn commit_batch(conn: &mut Connection, batch: Vec<Op>, sealer: Option<&LedgerKey>) {
    let begun = begin_immediate(conn);
    commit_begun(conn, batch, sealer, begun);
}

/// Starts the write transaction, first rolling back one that a panic may have left open.
fn begin_immediate(conn: &Connection) -> rusqlite::Result<()> {
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    conn.execute_batch("BEGIN IMMEDIATE")
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::DatabaseBusy)
}

/// [`commit_batch`] in the transaction `begun` started (or failing every operation with its
/// error).
fn commit_begun(
    conn: &mut Connection,
    batch: Vec<Op>,
    sealer: Option<&LedgerKey>,
    begun: rusqlite::Result<()>,
) {
    let fail_all = |batch: Vec<Op>, msg: &str, err: Option<rusqlite::Error>| {
        let msg = msg.to_owned();
        let err = err.map(|e| e.to_string());
        for op in batch {
            let e = StoreError::Unavailable {
                message: match &err {
                    Some(e) => format!("{msg}: {e}"),
                    None => msg.clone(),
                },
                source: None,
            };
            let _ = reply_of(op).send(Err(e));
        }
    };
    if let Err(e) = begun {
        return fail_all(batch, "sqlite begin", Some(e));
    }
    // The next seal id, read under the write lock: other processes may write to the file too
    // (`kairos audit` records each use), so no id kept from an earlier commit is safe.
    let seal = match sealer {
        None => None,
        Some(key) => match conn
            .prepare_cached("SELECT COALESCE(MAX(id), 0) + 1 FROM seals")
            .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)))
        {
            Ok(id) => Some((key, id)),
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return fail_all(batch, "sqlite seal id", Some(e));
            }
        },
    };
    let mut results = Vec::with_capacity(batch.len());
    let mut sealed = Vec::new();
    for op in &batch {
        let outcome = match op {
            Op::Append(row, _) => apply_append(conn, row, seal.map(|(_, id)| id)),
            Op::Checkpoint(cp, _) => apply_checkpoint(conn, &cp.0, &cp.1),
        };
        match outcome {
            Outcome::Done(r) => {
                if let (Ok(()), Op::Append(row, _)) = (&r, op) {
                    let c = &row.record.content;
                    sealed.push((c.time, c.chain.as_str(), c.seq, row.record.hash.as_str()));
                }
                results.push(r);
            }
            Outcome::Fatal(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return fail_all(batch, "sqlite write", Some(e));
            }
        }
    }
    if let Some((key, id)) = seal
        && !sealed.is_empty()
        && let Err(e) = write_seal(conn, key, id, &sealed)
    {
        let _ = conn.execute_batch("ROLLBACK");
        return fail_all(batch, &format!("sqlite seal: {e}"), None);
    }
    if let Err(e) = conn.execute_batch("COMMIT") {
        let _ = conn.execute_batch("ROLLBACK");
        return fail_all(batch, "sqlite commit", Some(e));
    }
    for (op, r) in batch.into_iter().zip(results) {
        let _ = reply_of(op).send(r);
    }
}

/// Signs and inserts seal `id` over `records` (time, chain, seq, hash).
fn write_seal(
    conn: &Connection,
    key: &LedgerKey,
    id: i64,
    records: &[(i64, &str, u64, &str)],
) -> Result<(), String> {
    let content = SealContent {
        v: SEAL_VERSION,
        time: records.iter().map(|r| r.0).max().unwrap_or(0),
        kid: key.kid().to_owned(),
        records: records
            .iter()
            .map(|&(_, chain, seq, hash)| SealEntry {
                chain: chain.to_owned(),
                seq,
                hash: hash.to_owned(),
            })
            .collect(),
    };
    let bytes = content.canonical_bytes().map_err(|e| e.to_string())?;
    let signature = key.sign(&bytes).map_err(|e| e.to_string())?;
    let json = std::str::from_utf8(
        bytes
            .get(crate::seal::SEAL_PREFIX.len()..)
            .unwrap_or_default(),
    )
    .map_err(|e| e.to_string())?;
    conn.prepare_cached("INSERT INTO seals (id, content, signature) VALUES (?1, ?2, ?3)")
        .and_then(|mut s| s.execute(params![id, json, signature]))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn apply_append(conn: &Connection, row: &Row, seal_id: Option<i64>) -> Outcome {
    let c = &row.record.content;
    if c.v == SEALED_RECORD_VERSION && seal_id.is_none() {
        return Outcome::Done(Err(StoreError::Invalid(
            "a sealed record needs a store that seals (no sealing key)".into(),
        )));
    }
    let conflict = || {
        Outcome::Done(Err(StoreError::Conflict {
            chain: c.chain.clone(),
            seq: c.seq,
        }))
    };
    let Ok(seq) = i64::try_from(c.seq) else {
        return conflict();
    };
    if seq < 1 {
        return conflict();
    }
    if seq == 1 {
        if c.prev != GENESIS_PREV {
            return conflict();
        }
    } else {
        let prev: Option<String> = match conn
            .prepare_cached("SELECT hash FROM records WHERE chain = ?1 AND seq = ?2")
            .and_then(|mut s| {
                s.query_row(params![c.chain, seq - 1], |r| r.get(0))
                    .optional()
            }) {
            Ok(p) => p,
            Err(e) => return Outcome::Fatal(e),
        };
        if prev.as_deref() != Some(c.prev.as_str()) {
            return conflict();
        }
    }
    if let Some(idem) = &row.idem {
        let exists = conn
            .prepare_cached("SELECT 1 FROM records WHERE idem_key = ?1")
            .and_then(|mut s| s.exists(params![idem]));
        match exists {
            Ok(true) => {
                return Outcome::Done(Err(StoreError::Duplicate {
                    idempotency_key: idem.clone(),
                }));
            }
            Ok(false) => {}
            Err(e) => return Outcome::Fatal(e),
        }
    }
    let inserted = conn
        .prepare_cached(
            "INSERT INTO records (chain, seq, record_id, kind, time_ms, request_id, \
             transaction_id, client_id, serial, x5t, jti, idem_key, kid, prev_hash, hash, \
             signature, content, seal_id) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
             ?18)",
        )
        .and_then(|mut s| {
            s.execute(params![
                c.chain,
                seq,
                c.id,
                c.body.kind(),
                c.time,
                c.request_id,
                c.transaction_id,
                c.client_id,
                row.serial,
                c.body.x5t_s256(),
                c.body.jti(),
                row.idem,
                c.kid,
                c.prev,
                row.record.hash,
                row.record.signature,
                row.content_json,
                seal_id,
            ])
        });
    match inserted {
        Ok(_) => {}
        Err(e) if is_constraint(&e) => return conflict(),
        Err(e) => return Outcome::Fatal(e),
    }
    if seq == 1
        && let Err(e) = conn
            .prepare_cached("INSERT OR IGNORE INTO chains (chain) VALUES (?1)")
            .and_then(|mut s| s.execute(params![c.chain]))
    {
        return Outcome::Fatal(e);
    }
    Outcome::Done(Ok(()))
}

fn apply_checkpoint(conn: &Connection, cp: &Checkpoint, json: &str) -> Outcome {
    let c = &cp.content;
    let Ok(seq) = i64::try_from(c.seq) else {
        return Outcome::Done(Err(StoreError::Invalid("seq out of range".into())));
    };
    let r = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO checkpoints (chain, seq, head_hash, time_ms, kid, signature, \
             content) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .and_then(|mut s| {
            s.execute(params![
                c.chain,
                seq,
                c.head_hash,
                c.time,
                c.kid,
                cp.signature,
                json
            ])
        })
        .and_then(|_| {
            conn.prepare_cached("INSERT OR IGNORE INTO chains (chain) VALUES (?1)")
                .and_then(|mut s| s.execute(params![c.chain]))
        });
    match r {
        Ok(_) => Outcome::Done(Ok(())),
        Err(e) => Outcome::Fatal(e),
    }
}

fn is_constraint(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::ConstraintViolation)
}

fn read_err(e: rusqlite::Error) -> StoreError {
    StoreError::unavailable("sqlite read", e)
}

fn row_to_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Record, StoreError>> {
    let chain: String = r.get(0)?;
    let seq: i64 = r.get(1)?;
    let content: String = r.get(2)?;
    let hash: String = r.get(3)?;
    let signature: String = r.get(4)?;
    Ok(match serde_json::from_str::<RecordContent>(&content) {
        Ok(content) => Ok(Record {
            content,
            hash,
            signature,
        }),
        Err(e) => Err(StoreError::Corrupt {
            chain,
            seq: u64::try_from(seq).unwrap_or(0),
            reason: e.to_string(),
        }),
    })
}

fn row_to_checkpoint(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Checkpoint, StoreError>> {
    let chain: String = r.get(0)?;
    let seq: i64 = r.get(1)?;
    let content: String = r.get(2)?;
    let signature: String = r.get(3)?;
    Ok(match serde_json::from_str::<CheckpointContent>(&content) {
        Ok(content) => Ok(Checkpoint { content, signature }),
        Err(e) => Err(StoreError::Corrupt {
            chain,
            seq: u64::try_from(seq).unwrap_or(0),
            reason: format!("checkpoint: {e}"),
        }),
    })
}

fn collect<T>(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
    f: fn(&rusqlite::Row<'_>) -> rusqlite::Result<Result<T, StoreError>>,
) -> Result<Vec<T>, StoreError> {
    let rows = stmt.query_map(params, f).map_err(read_err)?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row.map_err(read_err)??);
    }
    Ok(out)
}

fn encode_cursor(r: &Record) -> String {
    let (t, c, s) = r.query_order_key();
    B64.encode(serde_json::json!([t, c, s]).to_string())
}

fn decode_cursor(cursor: &str) -> Result<(i64, String, i64), StoreError> {
    let bad = || StoreError::Invalid("bad cursor".into());
    if cursor.len() > MAX_CURSOR_LEN {
        return Err(bad());
    }
    let bytes = B64.decode(cursor).map_err(|_| bad())?;
    let (t, c, s): (i64, String, i64) = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    Ok((t, c, s))
}

#[async_trait]
impl Store for SqliteStore {
    async fn head(&self, chain: &str) -> Result<Option<ChainHead>, StoreError> {
        let chain = chain.to_owned();
        self.read(move |conn| {
            let row: Option<(i64, String)> = conn
                .prepare_cached(
                    "SELECT seq, hash FROM records WHERE chain = ?1 ORDER BY seq DESC LIMIT 1",
                )
                .and_then(|mut s| {
                    s.query_row(params![chain], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()
                })
                .map_err(read_err)?;
            Ok(row.map(|(seq, hash)| ChainHead {
                seq: u64::try_from(seq).unwrap_or(0),
                hash,
            }))
        })
        .await
    }

    async fn append(&self, record: &Record) -> Result<(), StoreError> {
        self.submit_append(record.clone()).await
    }

    fn submit_append<'a>(&'a self, record: Record) -> AppendFuture<'a> {
        match record.content.canonical_json() {
            Ok(json) => self.submit_append_encoded(record, json),
            Err(e) => Box::pin(async move { Err(StoreError::backend("encode record", e)) }),
        }
    }

    fn submit_append_encoded<'a>(
        &'a self,
        record: Record,
        content_json: String,
    ) -> AppendFuture<'a> {
        debug_assert_eq!(
            record.content.canonical_json().ok().as_deref(),
            Some(content_json.as_str())
        );
        let row = Row {
            idem: record.idempotency_key(),
            serial: record.content.body.serial().map(|s| normalize_serial(&s)),
            content_json,
            record,
        };
        self.submit(|tx| Op::Append(Box::new(row), tx))
    }

    fn ordered_submission(&self) -> bool {
        true
    }

    fn enable_sealing(&self, key: Arc<LedgerKey>) -> bool {
        let kid = key.kid().to_owned();
        let _ = self.inner.sealer.set(key);
        self.inner.sealer.get().is_some_and(|k| k.kid() == kid)
    }

    async fn seals_for(
        &self,
        chain: &str,
        from_seq: u64,
        to_seq: u64,
    ) -> Result<Vec<Seal>, StoreError> {
        let chain = chain.to_owned();
        let from = i64::try_from(from_seq).unwrap_or(i64::MAX);
        let to = i64::try_from(to_seq).unwrap_or(i64::MAX);
        self.read(move |conn| {
            let mut s = conn
                .prepare_cached(
                    "SELECT content, signature FROM seals WHERE id IN \
                     (SELECT seal_id FROM records WHERE chain = ?1 AND seq BETWEEN ?2 AND ?3) \
                     ORDER BY id",
                )
                .map_err(read_err)?;
            let rows = s
                .query_map(params![chain, from, to], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(read_err)?;
            let mut out = Vec::new();
            for row in rows {
                let (content, signature) = row.map_err(read_err)?;
                // an undecodable seal is as good as none: its records are reported unsealed
                if let Ok(content) = serde_json::from_str::<SealContent>(&content) {
                    out.push(Seal { content, signature });
                }
            }
            Ok(out)
        })
        .await
    }

    async fn find_by_idempotency_key(&self, key: &str) -> Result<Option<Record>, StoreError> {
        let key = key.to_owned();
        self.read(move |conn| {
            let mut s = conn
                .prepare_cached(&format!(
                    "SELECT {RECORD_COLUMNS} FROM records WHERE idem_key = ?1"
                ))
                .map_err(read_err)?;
            Ok(collect(&mut s, params![key], row_to_record)?
                .into_iter()
                .next())
        })
        .await
    }

    async fn put_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        let json = serde_json::to_string(&checkpoint.content)
            .map_err(|e| StoreError::backend("encode checkpoint", e))?;
        let cp = checkpoint.clone();
        self.submit(|tx| Op::Checkpoint(Box::new((cp, json)), tx))
            .await
    }

    async fn latest_checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        self.read(|conn| {
            let mut s = conn
                .prepare_cached(
                    "SELECT chain, seq, content, signature FROM checkpoints c \
                     WHERE seq = (SELECT MAX(seq) FROM checkpoints d WHERE d.chain = c.chain) \
                     ORDER BY chain",
                )
                .map_err(read_err)?;
            collect(&mut s, [], row_to_checkpoint)
        })
        .await
    }

    async fn checkpoints(&self, chain: &str) -> Result<Vec<Checkpoint>, StoreError> {
        let chain = chain.to_owned();
        self.read(move |conn| {
            let mut s = conn
                .prepare_cached(
                    "SELECT chain, seq, content, signature FROM checkpoints WHERE chain = ?1 \
                     ORDER BY seq",
                )
                .map_err(read_err)?;
            collect(&mut s, params![chain], row_to_checkpoint)
        })
        .await
    }

    async fn query(
        &self,
        query: &Query,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page, StoreError> {
        check_limit(limit)?;
        let after = cursor.map(decode_cursor).transpose()?;
        let (mut sql, mut args): (String, Vec<Value>) = match query {
            Query::Transaction(t) => ("transaction_id = ?".into(), vec![t.clone().into()]),
            Query::Client {
                client_id,
                since_ms,
                until_ms,
            } => (
                "client_id = ? AND time_ms >= ? AND time_ms <= ?".into(),
                vec![
                    client_id.clone().into(),
                    (*since_ms).into(),
                    (*until_ms).into(),
                ],
            ),
            Query::Serial(s) => ("serial = ?".into(), vec![normalize_serial(s).into()]),
            Query::Thumbprint(x) => ("x5t = ?".into(), vec![x.clone().into()]),
            Query::Jti(j) => ("jti = ?".into(), vec![j.clone().into()]),
        };
        if let Some((t, c, s)) = after {
            sql.push_str(" AND (time_ms, chain, seq) > (?, ?, ?)");
            args.extend([t.into(), c.into(), s.into()]);
        }
        args.push(i64::from(limit + 1).into());
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM records WHERE {sql} ORDER BY time_ms, chain, seq LIMIT ?"
        );
        let mut records = self
            .read(move |conn| {
                let mut s = conn.prepare_cached(&sql).map_err(read_err)?;
                collect(&mut s, rusqlite::params_from_iter(args), row_to_record)
            })
            .await?;
        let next_cursor = if records.len() > limit as usize {
            records.truncate(limit as usize);
            records.last().map(encode_cursor)
        } else {
            None
        };
        Ok(Page {
            records,
            next_cursor,
        })
    }

    async fn scan_chain(
        &self,
        chain: &str,
        from_seq: u64,
        limit: u32,
    ) -> Result<Vec<Record>, StoreError> {
        check_limit(limit)?;
        let chain = chain.to_owned();
        let from = i64::try_from(from_seq).unwrap_or(i64::MAX);
        self.read(move |conn| {
            let mut s = conn
                .prepare_cached(&format!(
                    "SELECT {RECORD_COLUMNS} FROM records WHERE chain = ?1 AND seq >= ?2 \
                     ORDER BY seq LIMIT ?3"
                ))
                .map_err(read_err)?;
            collect(&mut s, params![chain, from, limit], row_to_record)
        })
        .await
    }

    async fn chains(&self) -> Result<Vec<String>, StoreError> {
        self.read(|conn| {
            let mut s = conn
                .prepare_cached(
                    "SELECT chain FROM chains UNION SELECT DISTINCT chain FROM checkpoints \
                     ORDER BY 1",
                )
                .map_err(read_err)?;
            let rows = s
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(read_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(read_err)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::{CommitQueue, GroupCommit};

    /// The bundled SQLite is built with the options `.cargo/config.toml` sets
    /// (`LIBSQLITE3_FLAGS`); a build without them still works, but costs more per commit.
    #[test]
    fn sqlite_built_with_the_configured_options() {
        let conn = rusqlite::Connection::open_in_memory().expect("open");
        let options: Vec<String> = conn
            .prepare("PRAGMA compile_options")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .expect("compile_options");
        for wanted in [
            "DEFAULT_MEMSTATUS=0",
            "OMIT_SHARED_CACHE",
            "LIKE_DOESNT_MATCH_BLOBS",
        ] {
            assert!(
                options.iter().any(|o| o == wanted),
                "SQLite built without {wanted}: {options:?}"
            );
        }
    }

    /// An inline leader waits for the group the load has been bringing, but not once the load
    /// has stopped: then a lone append commits at once.
    #[tokio::test]
    async fn an_inline_leader_waits_for_a_group_only_while_the_load_lasts() {
        use crate::record::{GENESIS_PREV, RecordBody, RecordContent};
        use crate::store::Store as _;

        let dir = tempfile::tempdir().expect("dir");
        let delay = Duration::from_millis(800);
        let store = super::SqliteStore::open_with(
            &dir.path().join("l.sqlite"),
            super::CommitMode::Inline,
            delay,
        )
        .expect("open");
        let super::Engine::Inline(engine) = &store.inner.engine else {
            panic!("not inline");
        };
        let record = |seq: u64, prev: &str| {
            let content = RecordContent {
                v: 1,
                chain: "shard-0000".into(),
                seq,
                id: format!("{seq:032x}"),
                time: 1_750_000_000_000,
                kid: "k".into(),
                request_id: None,
                transaction_id: None,
                client_id: Some("c".into()),
                prev: prev.to_owned(),
                body: RecordBody::TokenIssued {
                    jti: format!("j{seq}"),
                    client_id: "c".into(),
                    scope: "s".into(),
                    cnf_x5t_s256: "x".into(),
                    txn: None,
                    exp: 0,
                    grant_type: "client_credentials".into(),
                },
            };
            let hash = crate::sha256_hex(&content.canonical_bytes().expect("bytes"));
            crate::Record {
                content,
                hash,
                signature: "s".into(),
            }
        };
        let expect_groups_of_eight = |last_commit: Instant| {
            let mut s = super::lock(&engine.state);
            for _ in 0..super::GROUP_HISTORY {
                s.expect.observe(8, false);
            }
            s.last_commit = Some(last_commit);
        };
        // load has just committed a group: a lone append waits for the rest of its group
        let first = record(1, GENESIS_PREV);
        expect_groups_of_eight(Instant::now());
        let started = Instant::now();
        store.append(&first).await.expect("append");
        assert!(started.elapsed() >= delay, "did not wait for the group");
        // nothing committed for longer than the delay: the load has stopped
        let second = record(2, &first.hash);
        let long_ago = Instant::now().checked_sub(delay * 2).expect("uptime");
        expect_groups_of_eight(long_ago);
        let started = Instant::now();
        store.append(&second).await.expect("append");
        assert!(
            started.elapsed() < delay / 2,
            "waited {:?} for a group after the load stopped",
            started.elapsed()
        );
    }

    /// A huge delay is cut to one second instead of overflowing `Instant` (a panic with the
    /// queue's lock held).
    #[test]
    fn next_batch_cuts_a_huge_delay() {
        let q = CommitQueue::new();
        let mut g = expecting(4);
        assert!(q.push(1).is_ok());
        let started = Instant::now();
        let (batch, ran_out) = q.next_batch(&mut g, Duration::MAX).expect("open queue");
        assert_eq!(batch, vec![1]);
        assert!(ran_out);
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    /// `close_and_take` hands back what is queued, and the queue refuses and returns nothing
    /// after it.
    #[test]
    fn close_and_take_drains_and_refuses() {
        let q = CommitQueue::new();
        assert!(q.push(1).is_ok());
        assert!(q.push(2).is_ok());
        assert_eq!(q.close_and_take(), vec![1, 2]);
        assert_eq!(q.push(3), Err(3));
        assert!(
            q.next_batch(&mut GroupCommit::default(), Duration::ZERO)
                .is_none()
        );
    }

    fn expecting(n: usize) -> GroupCommit {
        let mut g = GroupCommit::default();
        for _ in 0..10 {
            g.observe(n, false);
        }
        g
    }

    /// Pushes `values` from another thread, `gap` apart, while this one takes the next batch
    /// (longest group wait: one second). Returns the batch, whether its wait ran out, and how
    /// long taking it took.
    fn batch_of_pushed(
        mut group: GroupCommit,
        values: Vec<i32>,
        gap: Duration,
    ) -> (Vec<i32>, bool, Duration) {
        let q = Arc::new(CommitQueue::new());
        let pusher = q.clone();
        let t = std::thread::spawn(move || {
            for v in values {
                std::thread::sleep(gap);
                pusher.push(v).unwrap();
            }
        });
        let start = Instant::now();
        let (batch, ran_out) = q.next_batch(&mut group, Duration::from_secs(1)).unwrap();
        let took = start.elapsed();
        t.join().unwrap();
        (batch, ran_out, took)
    }

    #[test]
    fn an_idle_writer_takes_a_lone_operation_at_once() {
        let (batch, ran_out, took) =
            batch_of_pushed(GroupCommit::default(), vec![7], Duration::from_millis(50));
        assert_eq!(batch, vec![7]);
        assert!(!ran_out);
        assert!(took < Duration::from_millis(900), "no group wait: {took:?}");
    }

    #[test]
    fn the_last_member_of_an_expected_group_releases_it() {
        let (batch, ran_out, took) =
            batch_of_pushed(expecting(4), vec![0, 1, 2, 3], Duration::from_millis(20));
        assert_eq!(batch, vec![0, 1, 2, 3], "one commit for the whole group");
        assert!(!ran_out);
        assert!(
            took < Duration::from_millis(900),
            "released by the fourth: {took:?}"
        );
    }

    #[test]
    fn an_incomplete_group_waits_one_delay_from_its_first_member() {
        let q = CommitQueue::new();
        let start = Instant::now();
        q.push(1).unwrap();
        q.push(2).unwrap();
        let mut g = expecting(4);
        let (batch, ran_out) = q.next_batch(&mut g, Duration::from_millis(100)).unwrap();
        assert_eq!(batch, vec![1, 2]);
        assert!(ran_out);
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(100), "{waited:?}");
        g.observe(batch.len(), ran_out);
        assert!(!g.should_wait(2), "the expectation follows what came");
    }

    #[test]
    fn a_group_expectation_is_dropped_when_the_load_stops() {
        let q = Arc::new(CommitQueue::new());
        let mut g = expecting(4);
        let pusher = q.clone();
        let t = std::thread::spawn(move || {
            // many delays of silence, then a lone operation
            std::thread::sleep(Duration::from_millis(1500));
            pusher.push(9).unwrap();
        });
        let (batch, ran_out) = q.next_batch(&mut g, Duration::from_millis(100)).unwrap();
        assert_eq!(batch, vec![9]);
        // still expecting four, the lone operation would have waited a delay for three more
        assert!(!ran_out, "taken when it came, not after a group wait");
        assert!(!g.should_wait(1));
        t.join().unwrap();
    }

    #[test]
    fn a_closed_queue_refuses_work_and_drains_what_it_holds() {
        let q = CommitQueue::new();
        q.push(1).unwrap();
        q.close();
        assert_eq!(q.push(2), Err(2));
        let mut g = expecting(4);
        let (batch, _) = q.next_batch(&mut g, Duration::from_secs(1)).unwrap();
        assert_eq!(batch, vec![1], "committed without waiting for a group");
        assert!(q.next_batch(&mut g, Duration::from_secs(1)).is_none());
    }

    #[test]
    fn a_lone_writer_never_waits() {
        let mut g = GroupCommit::default();
        for _ in 0..10 {
            assert!(!g.should_wait(1));
            g.observe(1, false);
        }
    }

    #[test]
    fn a_chance_overlap_does_not_make_the_next_commit_wait() {
        let mut g = GroupCommit::default();
        g.observe(3, false);
        assert!(!g.should_wait(1), "one group of three among lone commits");
        g.observe(1, false);
        g.observe(8, false);
        g.observe(1, false);
        assert!(!g.should_wait(1));
    }

    #[test]
    fn sustained_concurrency_makes_commits_wait_for_the_others() {
        let mut g = GroupCommit::default();
        for _ in 0..10 {
            g.observe(4, false);
        }
        assert!(g.should_wait(1));
        assert!(g.should_wait(3));
        assert!(!g.should_wait(4));
        // the others arrived while waiting: keep expecting four
        g.observe(4, true);
        assert!(g.should_wait(3));
    }

    #[test]
    fn a_wait_that_runs_out_lowers_the_expectation_to_what_came() {
        let mut g = GroupCommit::default();
        for _ in 0..20 {
            g.observe(32, false);
        }
        assert!(g.should_wait(31));
        g.observe(3, true);
        assert!(
            !g.should_wait(3),
            "the load dropped: one wasted delay, not one per commit"
        );
        assert!(g.should_wait(2));
        g.observe(0, true);
        assert!(!g.should_wait(1), "never expects fewer than one");
    }

    #[test]
    fn never_waits_for_more_than_one_commit_may_hold() {
        let mut g = GroupCommit::default();
        for _ in 0..100 {
            g.observe(usize::MAX, false);
        }
        assert!(!g.should_wait(super::MAX_BATCH));
    }
}
