//! Benchmark harness, not a product: `kairos serve` with its ledger store replaced by the
//! cheapest durable store we could build on the same architecture, to measure what *any* store
//! that writes every token's record durably before answering must cost (kairos/BENCH.md,
//! section H).
//!
//! Everything above the store is the real thing: the same server (TLS, router, client
//! authentication, ES256 JWT), the same `LedgerAudit` and `Ledger` (record built, hashed and
//! chained per token), the same writer-thread batching (`CommitQueue`, `GroupCommit`). The store
//! only does what no durable, sealed store can skip: per commit, it signs one seal over the
//! commit's records and writes records and seal with **one** `O_DIRECT | O_DSYNC` write to a
//! preallocated file (on this machine the cheapest durable write there is, measured against
//! buffered `pwrite` + `fdatasync`). No SQLite, no index, no read path: it cannot be queried,
//! and it overwrites itself after 64 MiB. Never use it for anything but measuring.
//!
//! ```sh
//! cargo build --release --example durable_floor_server
//! kairos serve --data-dir DATA_DIR   # once, to create the CA and keys; then stop it
//! taskset -c 0 target/release/examples/durable_floor_server DATA_DIR 127.0.0.1:18444 &
//! taskset -c 1 target/release/kairos bench --data-dir DATA_DIR \
//!     --target https://127.0.0.1:18444 --mode keepalive --connections 4 --server-pid PID
//! ```

use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use kairos_ledger::{
    AppendFuture, ChainHead, Checkpoint, CommitQueue, GroupCommit, Ledger, LedgerKey,
    MAX_COMMIT_DELAY, Page, Query, Record, SEAL_VERSION, SealContent, SealEntry, Store, StoreError,
};
use tokio::sync::oneshot;

/// Size of the preallocated log; commits wrap around at its end.
const LOG_BYTES: u64 = 64 << 20;
/// Direct I/O wants block-aligned buffers, offsets and lengths.
const BLOCK: usize = 4096;
/// Largest commit written in one piece; a bigger one (more than ~300 records) takes several.
const BUF_BYTES: usize = 256 << 10;

#[repr(align(4096))]
struct Aligned([u8; BUF_BYTES]);

type Reply = oneshot::Sender<Result<(), StoreError>>;

/// One record waiting for the writer: its entry in the seal, its canonical JSON, the reply.
#[derive(Debug)]
struct Pending {
    entry: SealEntry,
    json: String,
    reply: Reply,
}

#[derive(Debug)]
struct FloorStore {
    queue: Arc<CommitQueue<Pending>>,
    sealer: Arc<OnceLock<Arc<LedgerKey>>>,
}

impl FloorStore {
    fn open(path: &Path) -> anyhow::Result<Self> {
        // preallocate with real zeros, so that no write later changes the file's metadata
        let mut f = File::create(path)?;
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..(LOG_BYTES >> 20) {
            f.write_all(&zeros)?;
        }
        f.sync_all()?;
        drop(f);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT | libc::O_DSYNC)
            .open(path)?;
        let queue = Arc::new(CommitQueue::new());
        let sealer: Arc<OnceLock<Arc<LedgerKey>>> = Arc::new(OnceLock::new());
        let (q, s) = (queue.clone(), sealer.clone());
        std::thread::Builder::new()
            .name("floor-writer".into())
            .spawn(move || writer(&file, &q, &s))?;
        Ok(Self { queue, sealer })
    }
}

fn writer(file: &File, queue: &CommitQueue<Pending>, sealer: &OnceLock<Arc<LedgerKey>>) {
    let mut buf = Box::new(Aligned([0; BUF_BYTES]));
    let mut offset = 0u64;
    let mut group = GroupCommit::default();
    while let Some((batch, ran_out)) = queue.next_batch(&mut group, MAX_COMMIT_DELAY) {
        group.observe(batch.len(), ran_out);
        let result = commit(file, &mut buf.0, &mut offset, &batch, sealer.get());
        for p in batch {
            let _ = p
                .reply
                .send(result.clone().map_err(|e| StoreError::Unavailable {
                    message: e,
                    source: None,
                }));
        }
    }
}

/// Records, then the signed seal, in one durable write (several if it is very large).
fn commit(
    file: &File,
    buf: &mut [u8],
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
        time: 0,
        kid: key.kid().to_owned(),
        records: batch.iter().map(|p| p.entry.clone()).collect(),
    };
    let signed = seal.canonical_bytes().map_err(|e| e.to_string())?;
    let signature = key.sign(&signed).map_err(|e| e.to_string())?;
    bytes.extend_from_slice(&signed);
    bytes.push(b'\n');
    bytes.extend_from_slice(signature.as_bytes());
    for chunk in bytes.chunks(BUF_BYTES) {
        let len = chunk.len().div_ceil(BLOCK) * BLOCK;
        if *offset + len as u64 > LOG_BYTES {
            *offset = 0;
        }
        let block = buf
            .get_mut(..len)
            .ok_or("commit chunk larger than the buffer")?;
        let (head, tail) = block.split_at_mut(chunk.len());
        head.copy_from_slice(chunk);
        tail.fill(0);
        file.write_all_at(block, *offset)
            .map_err(|e| e.to_string())?;
        *offset += len as u64;
    }
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
                return Err(StoreError::Invalid("writer stopped".into()));
            }
            rx.await
                .unwrap_or_else(|_| Err(StoreError::Invalid("writer stopped".into())))
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

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(data_dir), Some(listen)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: durable_floor_server DATA_DIR LISTEN_ADDR");
    };
    let data_dir = PathBuf::from(data_dir);
    let cfg = kairos::config::RawConfig::default()
        .validate(Some(listen.parse()?))
        .map_err(|e| anyhow::anyhow!("{}", e.0))?;
    let key = kairos::ledger_audit::load_or_create_key(&data_dir)?;
    let store: Arc<dyn Store> = Arc::new(FloorStore::open(&data_dir.join("durable-floor.log"))?);
    let ledger = Arc::new(Ledger::new(store, key, kairos_ledger::DEFAULT_SHARDS));
    anyhow::ensure!(ledger.is_sealed(), "the floor store must seal its commits");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let audit = Arc::new(kairos::ledger_audit::LedgerAudit::new(ledger));
        let running = kairos::serve::start(&cfg, &data_dir, audit, vec![]).await?;
        println!(
            "durable floor (sealed O_DIRECT log, NOT a ledger): {}",
            running.state.settings().issuer
        );
        tokio::signal::ctrl_c().await?;
        running.stop().await;
        Ok(())
    })
}
