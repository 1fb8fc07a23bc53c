//! Benchmark harness, not a product: the token path (as `token_path_server`) plus a durable
//! write before every token is returned, and nothing else. Per group of tokens it makes one 4 KiB
//! `O_DIRECT | O_DSYNC` write to a preallocated file: no record, no hash, no seal, no index. The
//! write only stands for a record, so this is not a ledger. It bounds from below what a ledger
//! that batches the same way can cost on this machine (kairos/BENCH.md, section I). Linux only
//! (direct I/O).
//!
//! Two ways to batch, chosen by the third argument:
//!
//! - `thread` (default): a writer thread takes groups from the embedded store's own
//!   `CommitQueue` with its `GroupCommit` expectation, as `kairos serve --ledger-commit
//!   writer-thread` does;
//! - `inline`: no writer thread. The first token to wait leads the group: it waits (one delay
//!   at most) for the group `GroupCommit` expects, yields to the I/O driver (at most four times,
//!   until a yield brings no more tokens), then makes the write itself, blocking the worker while
//!   the disk answers. If the leader's request is cancelled before the write, the tokens of its
//!   group fail (the harness does not hand the lead on); no run of section I had an error.
//!
//! ```sh
//! cargo build --release --example bare_durable_server
//! kairos serve --data-dir DATA_DIR   # once, to create the CA and keys; then stop it
//! taskset -c 0 target/release/examples/bare_durable_server DATA_DIR 127.0.0.1:18444 inline &
//! taskset -c 1 target/release/kairos bench --data-dir DATA_DIR \
//!     --target https://127.0.0.1:18444 --mode keepalive --connections 4 --server-pid PID
//! ```
//!
//! Every 5,000 groups it prints how many tokens a group has held on average since the start.

#[cfg(target_os = "linux")]
fn main() -> anyhow::Result<()> {
    bare::main()
}

#[cfg(not(target_os = "linux"))]
fn main() -> anyhow::Result<()> {
    anyhow::bail!("bare_durable_server needs Linux (O_DIRECT)")
}

#[cfg(target_os = "linux")]
#[path = "support/direct_log.rs"]
mod direct_log;

#[cfg(target_os = "linux")]
#[path = "support/harness.rs"]
mod harness;

#[cfg(target_os = "linux")]
mod bare {
    use std::fs::File;
    use std::os::unix::fs::FileExt as _;
    use std::path::Path;
    use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

    use async_trait::async_trait;
    use kairos_authz::{AuditError, AuditEvent, AuditLog, AuditMeta};
    use kairos_ledger::{CommitQueue, GroupCommit, MAX_COMMIT_DELAY};
    use tokio::sync::{Notify, oneshot};

    use super::direct_log::{self, BLOCK, LOG_BYTES};
    use super::harness;

    /// Tokens waiting for a group's write are told whether it succeeded.
    type Reply = oneshot::Sender<bool>;

    /// The file and where the next write goes.
    #[derive(Debug)]
    struct Log {
        file: File,
        offset: u64,
        groups: u64,
        tokens: u64,
    }

    impl Log {
        fn open(path: &Path) -> anyhow::Result<Self> {
            let file = direct_log::preallocate(path)?;
            Ok(Self {
                file,
                offset: 0,
                groups: 0,
                tokens: 0,
            })
        }

        /// One durable 4 KiB write for a group of `tokens`; whether it was whole.
        fn write_group(&mut self, tokens: usize) -> bool {
            self.groups += 1;
            self.tokens += tokens as u64;
            if self.groups.is_multiple_of(5000) {
                eprintln!(
                    "groups {}, tokens per group {:.2}",
                    self.groups,
                    self.tokens as f64 / self.groups as f64
                );
            }
            let mut raw = [0u8; 2 * BLOCK];
            let start = raw.as_ptr().align_offset(BLOCK);
            let Some(block) = raw.get_mut(start..start + BLOCK) else {
                return false;
            };
            if let Some(stamp) = block.get_mut(..8) {
                stamp.copy_from_slice(&self.groups.to_le_bytes());
            }
            if self.offset + BLOCK as u64 > LOG_BYTES {
                self.offset = 0;
            }
            let whole = self.file.write_at(block, self.offset).ok() == Some(BLOCK);
            self.offset += BLOCK as u64;
            whole
        }
    }

    fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[derive(Debug)]
    enum BareDurable {
        Thread(Arc<CommitQueue<Reply>>),
        Inline(Inline),
    }

    #[derive(Debug)]
    struct Inline {
        state: Mutex<Group>,
        /// Wakes the waiting leader when a token completes the expected group. Used with
        /// `notify_waiters`, which leaves no permit behind for a later leader.
        full: Notify,
    }

    #[derive(Debug)]
    struct Group {
        log: Log,
        pending: Vec<Reply>,
        leading: bool,
        expect: GroupCommit,
    }

    /// Fails the group if its leader is dropped (its request cancelled) before writing.
    struct Lead<'a>(Option<&'a Inline>);

    impl Drop for Lead<'_> {
        fn drop(&mut self) {
            if let Some(inline) = self.0.take() {
                let mut g = lock(&inline.state);
                g.leading = false;
                for r in g.pending.drain(..) {
                    let _ = r.send(false);
                }
            }
        }
    }

    impl Inline {
        async fn record(&self) -> bool {
            let (tx, rx) = oneshot::channel();
            let lead = {
                let mut g = lock(&self.state);
                g.pending.push(tx);
                let lead = !std::mem::replace(&mut g.leading, true);
                if !lead && !g.expect.should_wait(g.pending.len()) {
                    self.full.notify_waiters();
                }
                lead
            };
            if lead {
                let mut guard = Lead(Some(self));
                let mut ran_out = false;
                // registered before the check, so that a token completing the group in between
                // still wakes it
                let full = self.full.notified();
                tokio::pin!(full);
                full.as_mut().enable();
                let wait = {
                    let g = lock(&self.state);
                    g.expect.should_wait(g.pending.len())
                };
                if wait {
                    ran_out = tokio::time::timeout(MAX_COMMIT_DELAY, full).await.is_err();
                }
                // let the tokens the driver has ready join
                let mut seen = 0;
                for _ in 0..4 {
                    tokio::task::yield_now().await;
                    let n = lock(&self.state).pending.len();
                    if n == seen {
                        break;
                    }
                    seen = n;
                }
                guard.0 = None;
                let mut g = lock(&self.state);
                let batch = std::mem::take(&mut g.pending);
                g.leading = false;
                g.expect.observe(batch.len(), ran_out);
                let whole = g.log.write_group(batch.len());
                drop(g);
                for r in batch {
                    let _ = r.send(whole);
                }
            }
            rx.await.unwrap_or(false)
        }
    }

    #[async_trait]
    impl AuditLog for BareDurable {
        async fn record(&self, _event: AuditEvent, _meta: AuditMeta) -> Result<(), AuditError> {
            let whole = match self {
                Self::Inline(inline) => inline.record().await,
                Self::Thread(queue) => {
                    let (tx, rx) = oneshot::channel();
                    queue.push(tx).is_ok() && rx.await.unwrap_or(false)
                }
            };
            if whole {
                Ok(())
            } else {
                Err(AuditError::Unavailable("durable write failed".into()))
            }
        }

        async fn is_revoked(&self, _jti: &str) -> Result<bool, AuditError> {
            Ok(false)
        }
    }

    fn writer(mut log: Log, queue: &CommitQueue<Reply>) {
        let mut expect = GroupCommit::default();
        while let Some((batch, ran_out)) = queue.next_batch(&mut expect, MAX_COMMIT_DELAY) {
            expect.observe(batch.len(), ran_out);
            let whole = log.write_group(batch.len());
            for r in batch {
                let _ = r.send(whole);
            }
        }
        for r in queue.close_and_take() {
            let _ = r.send(false);
        }
    }

    pub fn main() -> anyhow::Result<()> {
        let (data_dir, cfg, mut args) =
            harness::args("bare_durable_server DATA_DIR LISTEN_ADDR [thread|inline]")?;
        let log = Log::open(&data_dir.join("bare-durable.log"))?;
        let audit = match args.next().as_deref() {
            None | Some("thread") => {
                let queue = Arc::new(CommitQueue::new());
                let q = queue.clone();
                std::thread::Builder::new()
                    .name("bare-writer".into())
                    .spawn(move || writer(log, &q))?;
                BareDurable::Thread(queue)
            }
            Some("inline") => BareDurable::Inline(Inline {
                state: Mutex::new(Group {
                    log,
                    pending: Vec::new(),
                    leading: false,
                    expect: GroupCommit::default(),
                }),
                full: Notify::new(),
            }),
            Some(other) => anyhow::bail!("unknown batching {other:?}: thread or inline"),
        };
        harness::serve(
            &cfg,
            &data_dir,
            Arc::new(audit),
            "bare durable (one 4 KiB O_DSYNC write per group, NOT a ledger)",
        )
    }
}
