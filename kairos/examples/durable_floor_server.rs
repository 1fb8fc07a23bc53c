//! Benchmark harness, not a product: `kairos serve` with its ledger store replaced by the
//! cheapest durable, sealed store we found for the same architecture, to measure what a store
//! that writes every token's record durably before answering costs at least here
//! (kairos/BENCH.md, section H). Linux only (direct I/O).
//!
//! Everything above the store is the real thing: the same server (TLS, router, client
//! authentication, ES256 JWT), the same `LedgerAudit` and `Ledger` (record built, hashed and
//! chained per token), the same batching as `kairos serve --ledger-commit writer-thread`
//! (`CommitQueue`, `GroupCommit`; `kairos serve` commits inline by default since section K). The store
//! only does what no durable, sealed store can skip: per commit, it signs one seal over the
//! commit's records and writes records and seal with **one** `O_DIRECT | O_DSYNC` write to a
//! preallocated file (the cheapest durable write `kairos/scripts/durable-write-cost.py` found
//! here). It leaves out what a real store also needs, which only makes it cheaper: no index and
//! no read path (it cannot be queried), no commit framing or checksum (a restart could not find
//! the end of the log), no check of the `Store` contract (chain heads, unique idempotency
//! keys), no growth (it overwrites itself after 64 MiB), no checkpoints. Never use it for
//! anything but measuring.
//!
//! ```sh
//! cargo build --release --example durable_floor_server
//! kairos serve --data-dir DATA_DIR   # once, to create the CA and keys; then stop it
//! taskset -c 0 target/release/examples/durable_floor_server DATA_DIR 127.0.0.1:18444 &
//! taskset -c 1 target/release/kairos bench --data-dir DATA_DIR \
//!     --target https://127.0.0.1:18444 --mode keepalive --connections 4 --server-pid PID
//! ```

#[cfg(target_os = "linux")]
fn main() -> anyhow::Result<()> {
    floor::main()
}

#[cfg(not(target_os = "linux"))]
fn main() -> anyhow::Result<()> {
    anyhow::bail!("durable_floor_server needs Linux (O_DIRECT)")
}

#[cfg(target_os = "linux")]
#[path = "support/direct_log.rs"]
mod direct_log;

#[cfg(target_os = "linux")]
#[path = "support/harness.rs"]
mod harness;

#[cfg(target_os = "linux")]
mod floor {
    use std::fs::File;
    use std::os::unix::fs::FileExt as _;
    use std::path::Path;
    use std::sync::{Arc, OnceLock};

    use async_trait::async_trait;
    use kairos_ledger::{
        AppendFuture, ChainHead, Checkpoint, CommitQueue, GroupCommit, Ledger, LedgerKey,
        MAX_COMMIT_DELAY, Page, Query, Record, SEAL_VERSION, SealContent, SealEntry, Store,
        StoreError,
    };
    use tokio::sync::oneshot;

    use super::direct_log::{self, BLOCK, LOG_BYTES};
    use super::harness;

    type Reply = oneshot::Sender<Result<(), StoreError>>;

    /// One record waiting for the writer: its time and entry in the seal, its canonical JSON,
    /// the reply.
    #[derive(Debug)]
    struct Pending {
        time: i64,
        entry: SealEntry,
        json: String,
        reply: Reply,
    }

    fn unavailable(message: impl Into<String>) -> StoreError {
        StoreError::Unavailable {
            message: message.into(),
            source: None,
        }
    }

    #[derive(Debug)]
    struct FloorStore {
        queue: Arc<CommitQueue<Pending>>,
        sealer: Arc<OnceLock<Arc<LedgerKey>>>,
    }

    impl FloorStore {
        fn open(path: &Path) -> anyhow::Result<Self> {
            let file = direct_log::preallocate(path)?;
            let queue = Arc::new(CommitQueue::new());
            let sealer: Arc<OnceLock<Arc<LedgerKey>>> = Arc::new(OnceLock::new());
            let (q, s) = (queue.clone(), sealer.clone());
            std::thread::Builder::new()
                .name("floor-writer".into())
                .spawn(move || writer(&file, &q, &s))?;
            Ok(Self { queue, sealer })
        }
    }

    /// Fails whatever is still queued when the writer ends, however it ends.
    struct WriterExit<'a>(&'a CommitQueue<Pending>);

    impl Drop for WriterExit<'_> {
        fn drop(&mut self) {
            for p in self.0.close_and_take() {
                let _ = p.reply.send(Err(unavailable("floor writer stopped")));
            }
        }
    }

    fn writer(file: &File, queue: &CommitQueue<Pending>, sealer: &OnceLock<Arc<LedgerKey>>) {
        let _exit = WriterExit(queue);
        let mut raw: Vec<u8> = Vec::new();
        let mut offset = 0u64;
        let mut group = GroupCommit::default();
        while let Some((batch, ran_out)) = queue.next_batch(&mut group, MAX_COMMIT_DELAY) {
            group.observe(batch.len(), ran_out);
            let result = commit(file, &mut raw, &mut offset, &batch, sealer.get());
            for p in batch {
                let _ = p.reply.send(result.clone().map_err(unavailable));
            }
        }
    }

    /// Records, then the signed seal, in one durable write.
    fn commit(
        file: &File,
        raw: &mut Vec<u8>,
        offset: &mut u64,
        batch: &[Pending],
        key: Option<&Arc<LedgerKey>>,
    ) -> Result<(), String> {
        let key = key.ok_or("no sealing key")?;
        let mut bytes = Vec::with_capacity(batch.len() * 700 + 1024);
        for p in batch {
            bytes.extend_from_slice(p.json.as_bytes());
            bytes.push(b'\n');
        }
        let seal = SealContent {
            v: SEAL_VERSION,
            time: batch.iter().map(|p| p.time).max().unwrap_or(0),
            kid: key.kid().to_owned(),
            records: batch.iter().map(|p| p.entry.clone()).collect(),
        };
        let signed = seal.canonical_bytes().map_err(|e| e.to_string())?;
        let signature = key.sign(&signed).map_err(|e| e.to_string())?;
        bytes.extend_from_slice(&signed);
        bytes.push(b'\n');
        bytes.extend_from_slice(signature.as_bytes());

        let len = bytes.len().div_ceil(BLOCK) * BLOCK;
        if len as u64 > LOG_BYTES {
            return Err("commit larger than the log".into());
        }
        // a block-aligned window of `raw`, grown when a commit needs more
        if raw.len() < len + BLOCK {
            raw.resize(len + BLOCK, 0);
        }
        let start = raw.as_ptr().align_offset(BLOCK);
        let block = raw.get_mut(start..start + len).ok_or("no aligned window")?;
        let (head, tail) = block.split_at_mut(bytes.len());
        head.copy_from_slice(&bytes);
        tail.fill(0);
        if *offset + len as u64 > LOG_BYTES {
            *offset = 0;
        }
        // one write; a short direct write is an error, not something to resume unaligned
        let written = file.write_at(block, *offset).map_err(|e| e.to_string())?;
        if written != len {
            return Err(format!("short direct write: {written} of {len} bytes"));
        }
        *offset += len as u64;
        Ok(())
    }

    #[async_trait]
    impl Store for FloorStore {
        async fn head(&self, _chain: &str) -> Result<Option<ChainHead>, StoreError> {
            Ok(None)
        }

        async fn append(&self, record: &Record) -> Result<(), StoreError> {
            let json = record
                .content
                .canonical_json()
                .map_err(|e| StoreError::Invalid(e.to_string()))?;
            self.submit_append_encoded(record.clone(), json).await
        }

        fn submit_append_encoded<'a>(&'a self, record: Record, json: String) -> AppendFuture<'a> {
            let (tx, rx) = oneshot::channel();
            let c = &record.content;
            let pending = Pending {
                time: c.time,
                entry: SealEntry {
                    chain: c.chain.clone(),
                    seq: c.seq,
                    hash: record.hash.clone(),
                },
                json,
                reply: tx,
            };
            let pushed = self.queue.push(pending).is_ok();
            Box::pin(async move {
                if !pushed {
                    return Err(unavailable("floor writer stopped"));
                }
                rx.await
                    .unwrap_or_else(|_| Err(unavailable("floor writer stopped")))
            })
        }

        fn ordered_submission(&self) -> bool {
            true
        }

        fn enable_sealing(&self, key: Arc<LedgerKey>) -> bool {
            self.sealer.set(key).is_ok()
        }

        async fn find_by_idempotency_key(&self, _key: &str) -> Result<Option<Record>, StoreError> {
            Ok(None)
        }

        async fn put_checkpoint(&self, _checkpoint: &Checkpoint) -> Result<(), StoreError> {
            Ok(())
        }

        async fn latest_checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
            Ok(Vec::new())
        }

        async fn checkpoints(&self, _chain: &str) -> Result<Vec<Checkpoint>, StoreError> {
            Ok(Vec::new())
        }

        async fn query(
            &self,
            _query: &Query,
            _limit: u32,
            _cursor: Option<&str>,
        ) -> Result<Page, StoreError> {
            Err(StoreError::Invalid(
                "the durable-floor harness cannot be queried".into(),
            ))
        }

        async fn scan_chain(
            &self,
            _chain: &str,
            _from_seq: u64,
            _limit: u32,
        ) -> Result<Vec<Record>, StoreError> {
            Ok(Vec::new())
        }

        async fn chains(&self) -> Result<Vec<String>, StoreError> {
            Ok(Vec::new())
        }
    }

    pub fn main() -> anyhow::Result<()> {
        let (data_dir, cfg, _) = harness::args("durable_floor_server DATA_DIR LISTEN_ADDR")?;
        let key = kairos::ledger_audit::load_or_create_key(&data_dir)?;
        let store: Arc<dyn Store> =
            Arc::new(FloorStore::open(&data_dir.join("durable-floor.log"))?);
        let ledger = Arc::new(Ledger::new(store, key, kairos_ledger::DEFAULT_SHARDS));
        anyhow::ensure!(ledger.is_sealed(), "the floor store must seal its commits");
        harness::serve(
            &cfg,
            &data_dir,
            Arc::new(kairos::ledger_audit::LedgerAudit::new(ledger)),
            "durable floor (sealed O_DIRECT log, NOT a ledger)",
        )
    }
}
