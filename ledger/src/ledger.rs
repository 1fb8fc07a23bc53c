//! The `Ledger` facade: builds, signs, chains and appends records; checkpoints; verifies.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::checkpoint::{CHECKPOINT_VERSION, Checkpoint, CheckpointContent};
use crate::key::{KeyError, LedgerKey, PublicKeySet};
use crate::record::{
    GENESIS_PREV, MAX_RECORD_BYTES, RECORD_PREFIX, RECORD_VERSION, Record, RecordBody,
    RecordContent, SEALED_RECORD_VERSION, chain_for, record_idempotency_key, sha256_hex_parts,
};
use crate::store::{ChainHead, Page, Query, Store, StoreError};
use crate::verify::{
    ChainVerifier, Problem, SealCache, VerifyFailure, VerifyReport, check_record, seal_key,
};

/// Default number of transaction shards (chains).
pub const DEFAULT_SHARDS: u32 = 16;

/// How many times an append is retried after losing a conditional write.
pub const MAX_APPEND_ATTEMPTS: u32 = 64;

/// Page size used when scanning chains for verification.
const SCAN_PAGE: u32 = 500;

/// Errors from the [`Ledger`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The store failed; for [`StoreError::Unavailable`] callers answer
    /// `503 temporarily_unavailable` and issue nothing.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Signing failed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The record could not be encoded.
    #[error("record encoding failed: {0}")]
    Encode(#[from] serde_json::Error),
    /// The record exceeds [`MAX_RECORD_BYTES`].
    #[error("record too large ({0} bytes)")]
    TooLarge(usize),
    /// Lost the conditional write [`MAX_APPEND_ATTEMPTS`] times.
    #[error("too many conflicts appending to chain {0}")]
    TooManyConflicts(String),
}

impl LedgerError {
    /// True when the store could not be reached or did not confirm the write (map to 503).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            LedgerError::Store(StoreError::Unavailable { .. }) | LedgerError::TooManyConflicts(_)
        )
    }
}

/// Envelope data supplied by the caller (time is a parameter, never read from the clock here).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordMeta {
    /// When, Unix milliseconds.
    pub time_ms: i64,
    /// Request id (with the transaction id and kind, the idempotency key).
    pub request_id: Option<String>,
    /// Transaction id, used when the body carries none.
    pub transaction_id: Option<String>,
    /// Client id, used when the body carries none.
    pub client_id: Option<String>,
}

impl RecordMeta {
    /// Meta with just a time.
    pub fn at(time_ms: i64) -> Self {
        Self {
            time_ms,
            ..Self::default()
        }
    }

    /// Set the request id.
    pub fn request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = Some(id.into());
        self
    }

    /// Set the transaction id (used when the body has none).
    pub fn transaction_id(mut self, id: impl Into<String>) -> Self {
        self.transaction_id = Some(id.into());
        self
    }

    /// Set the client id (used when the body has none).
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = Some(id.into());
        self
    }
}

/// Proof that a record is durably in the ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendReceipt {
    /// Chain.
    pub chain: String,
    /// Sequence number.
    pub seq: u64,
    /// Record id.
    pub record_id: String,
    /// Record hash.
    pub hash: String,
    /// Record time (Unix milliseconds).
    pub time_ms: i64,
    /// True when an earlier record with the same idempotency key was returned instead of
    /// writing a new one.
    pub duplicate: bool,
}

impl AppendReceipt {
    fn of(r: &Record, duplicate: bool) -> Self {
        Self {
            chain: r.content.chain.clone(),
            seq: r.content.seq,
            record_id: r.content.id.clone(),
            hash: r.hash.clone(),
            time_ms: r.content.time,
            duplicate,
        }
    }
}

#[derive(Debug, Default)]
struct ChainState {
    head: Option<ChainHead>,
    generation: u64,
}

/// The ledger: signs, chains and durably appends records through a [`Store`].
#[derive(Debug)]
pub struct Ledger {
    store: Arc<dyn Store>,
    key: Arc<LedgerKey>,
    /// The store seals its commits with `key`: records are not signed one by one.
    sealed: bool,
    shards: u32,
    chains: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<ChainState>>>>,
}

impl Ledger {
    /// A ledger over `store`, signing with `key`, with `shards` transaction chains (min 1).
    ///
    /// When the store seals its commits ([`Store::enable_sealing`]; the embedded store does),
    /// records are [`SEALED_RECORD_VERSION`] and the store signs one seal per commit with
    /// `key`; otherwise every record is signed on its own.
    pub fn new(store: Arc<dyn Store>, key: impl Into<Arc<LedgerKey>>, shards: u32) -> Self {
        let key = key.into();
        let sealed = store.enable_sealing(key.clone());
        Self {
            store,
            key,
            sealed,
            shards: shards.max(1),
            chains: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The signing key (its public parts are what the JWKS endpoint publishes).
    pub fn key(&self) -> &LedgerKey {
        &self.key
    }

    /// Whether the store seals commits (records are then not signed one by one).
    pub fn is_sealed(&self) -> bool {
        self.sealed
    }

    /// A key set holding this ledger's own public key.
    pub fn public_keys(&self) -> PublicKeySet {
        PublicKeySet::new().with(self.key.verifying_key())
    }

    /// The chain a record with these ids goes to.
    pub fn chain_for(&self, transaction_id: Option<&str>, client_id: Option<&str>) -> String {
        chain_for(transaction_id, client_id, self.shards)
    }

    fn slot(&self, chain: &str) -> Arc<tokio::sync::Mutex<ChainState>> {
        let mut map = match self.chains.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        map.entry(chain.to_owned()).or_default().clone()
    }

    fn build(
        &self,
        chain: &str,
        head: Option<&ChainHead>,
        body: &RecordBody,
        meta: &RecordMeta,
        transaction_id: Option<&str>,
        client_id: Option<&str>,
    ) -> Result<(Record, String), LedgerError> {
        let mut id = [0u8; 16];
        aws_lc_rs::rand::fill(&mut id).map_err(|_| KeyError::Generate)?;
        let content = RecordContent {
            v: if self.sealed {
                SEALED_RECORD_VERSION
            } else {
                RECORD_VERSION
            },
            chain: chain.to_owned(),
            seq: head.map_or(1, |h| h.seq + 1),
            id: hex::encode(id),
            time: meta.time_ms,
            kid: self.key.kid().to_owned(),
            request_id: meta.request_id.clone(),
            transaction_id: transaction_id.map(str::to_owned),
            client_id: client_id.map(str::to_owned),
            prev: head.map_or_else(|| GENESIS_PREV.to_owned(), |h| h.hash.clone()),
            body: body.clone(),
        };
        let json = content.canonical_json()?;
        let len = RECORD_PREFIX.len() + json.len();
        if len > MAX_RECORD_BYTES {
            return Err(LedgerError::TooLarge(len));
        }
        let hash = sha256_hex_parts(&[RECORD_PREFIX, json.as_bytes()]);
        // sealed: the store signs the commit's seal instead
        let signature = if self.sealed {
            String::new()
        } else {
            let mut bytes = Vec::with_capacity(len);
            bytes.extend_from_slice(RECORD_PREFIX);
            bytes.extend_from_slice(json.as_bytes());
            self.key.sign(&bytes)?
        };
        let record = Record {
            content,
            hash,
            signature,
        };
        Ok((record, json))
    }

    /// Sign, chain and durably append a record. Returns only after the store has accepted the
    /// write. A record with the same request id, transaction id and kind as an existing one is
    /// not written again: the existing record's receipt is returned (`duplicate = true`).
    pub async fn append(
        &self,
        body: RecordBody,
        meta: RecordMeta,
    ) -> Result<AppendReceipt, LedgerError> {
        let transaction_id = body
            .transaction_id()
            .map(str::to_owned)
            .or_else(|| meta.transaction_id.clone());
        let client_id = body
            .client_id()
            .map(str::to_owned)
            .or_else(|| meta.client_id.clone());
        let chain = self.chain_for(transaction_id.as_deref(), client_id.as_deref());
        let idem =
            record_idempotency_key(&body, transaction_id.as_deref(), meta.request_id.as_deref());
        let slot = self.slot(&chain);
        let ordered = self.store.ordered_submission();

        for _ in 0..MAX_APPEND_ATTEMPTS {
            let mut state = slot.lock().await;
            if state.head.is_none() {
                state.head = self.store.head(&chain).await?;
                if state.head.is_none() {
                    state.head = Some(ChainHead {
                        seq: 0,
                        hash: GENESIS_PREV.to_owned(),
                    });
                }
            }
            let head = state.head.clone().filter(|h| h.seq > 0);
            let (record, json) = self.build(
                &chain,
                head.as_ref(),
                &body,
                &meta,
                transaction_id.as_deref(),
                client_id.as_deref(),
            )?;
            let receipt = AppendReceipt::of(&record, false);
            let generation = state.generation;
            state.head = Some(ChainHead {
                seq: record.content.seq,
                hash: record.hash.clone(),
            });
            let fut = self.store.submit_append_encoded(record, json);
            let result = if ordered {
                drop(state);
                fut.await
            } else {
                let r = fut.await;
                if r.is_err() {
                    state.head = None;
                    state.generation += 1;
                }
                drop(state);
                r
            };
            match result {
                Ok(()) => return Ok(receipt),
                Err(err) => {
                    if ordered {
                        let mut state = slot.lock().await;
                        if state.generation == generation {
                            state.head = None;
                            state.generation += 1;
                        }
                    }
                    match err {
                        StoreError::Conflict { .. } => continue,
                        StoreError::Duplicate { .. } => {
                            if let Some(key) = &idem
                                && let Some(existing) =
                                    self.store.find_by_idempotency_key(key).await?
                            {
                                return Ok(AppendReceipt::of(&existing, true));
                            }
                            continue;
                        }
                        other => return Err(other.into()),
                    }
                }
            }
        }
        Err(LedgerError::TooManyConflicts(chain))
    }

    /// Sign and store a checkpoint of every chain whose head moved since its last checkpoint.
    pub async fn checkpoint(&self, time_ms: i64) -> Result<Vec<Checkpoint>, LedgerError> {
        let latest: HashMap<String, u64> = self
            .store
            .latest_checkpoints()
            .await?
            .into_iter()
            .map(|c| (c.content.chain, c.content.seq))
            .collect();
        let mut out = Vec::new();
        for chain in self.store.chains().await? {
            let Some(head) = self.store.head(&chain).await? else {
                continue;
            };
            if latest.get(&chain) == Some(&head.seq) {
                continue;
            }
            let content = CheckpointContent {
                v: CHECKPOINT_VERSION,
                chain,
                seq: head.seq,
                head_hash: head.hash,
                time: time_ms,
                kid: self.key.kid().to_owned(),
            };
            let signature = self.key.sign(&content.canonical_bytes()?)?;
            let cp = Checkpoint { content, signature };
            self.store.put_checkpoint(&cp).await?;
            out.push(cp);
        }
        Ok(out)
    }

    /// Re-check every record's signature and hash, every chain link (seq contiguous from 1,
    /// `prev` matches) and every checkpoint, with only `keys`. Store errors are returned as
    /// errors; integrity problems are reported, naming the first bad record of each chain.
    ///
    /// Besides the chains the store lists, every chain this ledger's sharding can produce is
    /// examined, so a chain whose records *and* registry entry were deleted is still caught by
    /// its checkpoints.
    pub async fn verify_all(&self, keys: &PublicKeySet) -> Result<VerifyReport, LedgerError> {
        verify_store_with(self.store.as_ref(), keys, &expected_chains(self.shards)).await
    }

    /// The record at `(chain, seq)`, e.g. the one an [`AppendReceipt`] with
    /// `duplicate = true` points to (its body may differ from the one just offered, e.g. an
    /// earlier `jti`).
    pub async fn get_record(&self, chain: &str, seq: u64) -> Result<Option<Record>, LedgerError> {
        let mut page = self.store.scan_chain(chain, seq, 1).await?;
        Ok(page.pop().filter(|r| r.content.seq == seq))
    }

    /// Query records (see [`Query`]), paginated.
    pub async fn query(
        &self,
        query: &Query,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page, LedgerError> {
        Ok(self.store.query(query, limit, cursor).await?)
    }

    /// Records of a transaction (one page).
    pub async fn by_transaction(
        &self,
        transaction_id: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page, LedgerError> {
        self.query(
            &Query::Transaction(transaction_id.to_owned()),
            limit,
            cursor,
        )
        .await
    }

    /// Records of a client within `[since_ms, until_ms]` (one page).
    pub async fn by_client(
        &self,
        client_id: &str,
        since_ms: i64,
        until_ms: i64,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page, LedgerError> {
        let q = Query::Client {
            client_id: client_id.to_owned(),
            since_ms,
            until_ms,
        };
        self.query(&q, limit, cursor).await
    }

    /// The issuance record of a certificate serial (one page).
    pub async fn by_serial(
        &self,
        serial_hex: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page, LedgerError> {
        self.query(&Query::Serial(serial_hex.to_owned()), limit, cursor)
            .await
    }

    /// Records about a certificate thumbprint: issuance, bound tokens, failures (one page).
    pub async fn by_thumbprint(
        &self,
        x5t_s256: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page, LedgerError> {
        self.query(&Query::Thumbprint(x5t_s256.to_owned()), limit, cursor)
            .await
    }

    /// Records about a token id (one page).
    pub async fn by_jti(
        &self,
        jti: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page, LedgerError> {
        self.query(&Query::Jti(jti.to_owned()), limit, cursor).await
    }
}

/// Every chain name a ledger with `shards` shards can write: `shard-0000`… and `system`.
pub fn expected_chains(shards: u32) -> Vec<String> {
    (0..shards.max(1))
        .map(|i| format!("shard-{i:04}"))
        .chain(std::iter::once(crate::record::SYSTEM_CHAIN.to_owned()))
        .collect()
}

/// [`Ledger::verify_all`] over any store, without a signing key (for the auditor's CLI): the
/// chains the store lists.
pub async fn verify_store(
    store: &dyn Store,
    keys: &PublicKeySet,
) -> Result<VerifyReport, LedgerError> {
    verify_store_with(store, keys, &[]).await
}

/// [`verify_store`], also examining the chains in `also` (e.g. [`expected_chains`]) even if
/// the store does not list them. Chains without records or checkpoints are not counted.
pub async fn verify_store_with(
    store: &dyn Store,
    keys: &PublicKeySet,
    also: &[String],
) -> Result<VerifyReport, LedgerError> {
    let mut report = VerifyReport::default();
    let mut seals = SealCache::default();
    let mut failed = std::collections::BTreeSet::new();
    let mut chains: std::collections::BTreeSet<String> =
        store.chains().await?.into_iter().collect();
    chains.extend(also.iter().cloned());
    for chain in chains {
        let cps = store.checkpoints(&chain).await?;
        if cps.is_empty() && store.scan_chain(&chain, 1, 1).await?.is_empty() {
            continue;
        }
        let mut v = ChainVerifier::new(&chain, keys, &cps);
        let mut from = 1u64;
        while !v.failed() {
            let page = match store.scan_chain(&chain, from, SCAN_PAGE).await {
                Ok(p) => p,
                Err(StoreError::Corrupt { seq, reason, .. }) => {
                    // Check the records before the unreadable one first, so the *first* bad
                    // record is named.
                    if seq > from {
                        let n = u32::try_from(seq - from)
                            .unwrap_or(SCAN_PAGE)
                            .min(SCAN_PAGE);
                        if let Ok(before) = store.scan_chain(&chain, from, n).await {
                            let (lo, hi) = seal_range(&before, from, seq - 1);
                            let found = store.seals_for(&chain, lo, hi).await?;
                            v.add_seals(&found, &mut seals, (lo, hi));
                            v.push_page(&before);
                        }
                    }
                    v.unreadable(seq, reason);
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            let Some(last) = page.last() else { break };
            // Continue after the highest *stored* position, which scan_chain orders by.
            let next = page_next(last, from, page.len());
            let (lo, hi) = seal_range(&page, from, next - 1);
            let found = store.seals_for(&chain, lo, hi).await?;
            v.add_seals(&found, &mut seals, (lo, hi));
            v.push_page(&page);
            from = next;
            if page.len() < SCAN_PAGE as usize {
                break;
            }
        }
        if !v.finish(&mut report) {
            failed.insert(chain);
        }
    }
    check_unseen_seal_entries(store, keys, &mut seals, &failed, &mut report).await?;
    report.seals = seals.len() as u64;
    Ok(report)
}

/// A valid seal may list records of chains other than the one it was found through. A
/// record written legitimately points to its seal, so its chain's verifier meets that seal;
/// what no chain's verifier met is a record deleted (perhaps replaced since by a new one at
/// the same seq) — or, on a live store (`kairos audit verify` while the server appends), one
/// appended after its chain was verified. Each such entry is looked up: it must be there, with
/// the listed hash, and check out on its own. Chains that already failed are left alone.
async fn check_unseen_seal_entries(
    store: &dyn Store,
    keys: &PublicKeySet,
    seals: &mut SealCache,
    failed: &std::collections::BTreeSet<String>,
    report: &mut VerifyReport,
) -> Result<(), LedgerError> {
    // chain -> seq -> hashes listed, from the pending seals, fetched again
    let mut listed: BTreeMap<String, BTreeMap<u64, Vec<String>>> = BTreeMap::new();
    for (key, pending) in seals.take_pending() {
        let (via, lo, hi) = &pending.via;
        for seal in store.seals_for(via, *lo, *hi).await? {
            let Ok(bytes) = seal.content.canonical_bytes() else {
                continue;
            };
            if seal_key(&bytes, &seal) != key {
                continue;
            }
            for e in seal.content.records {
                if pending.unmet.contains(&e.chain) && !failed.contains(&e.chain) {
                    let by_seq = listed.entry(e.chain).or_default();
                    by_seq.entry(e.seq).or_default().push(e.hash);
                }
            }
        }
    }
    for (chain, by_seq) in listed {
        for (seq, hashes) in by_seq {
            let found = match store.scan_chain(&chain, seq, 1).await {
                Ok(page) => page.into_iter().next().filter(|r| r.content.seq == seq),
                Err(StoreError::Corrupt { reason, .. }) => {
                    report.failures.push(VerifyFailure {
                        chain: chain.clone(),
                        seq,
                        record_id: None,
                        problem: Problem::Unreadable { reason },
                    });
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            let problem = match &found {
                None => Some(Problem::SealedRecordMissing { seq }),
                Some(r) if hashes.iter().any(|h| *h != r.hash) => Some(Problem::SealHashMismatch),
                Some(r) => check_record(r, keys),
            };
            if let Some(problem) = problem {
                report.failures.push(VerifyFailure {
                    chain: chain.clone(),
                    seq,
                    record_id: found.map(|r| r.content.id),
                    problem,
                });
                break;
            }
        }
    }
    report.failures.sort_by(|a, b| a.chain.cmp(&b.chain));
    Ok(())
}

/// The stored positions a page of a chain may occupy: `from..=to` by position, widened to the
/// seqs its records claim (a tampered page may claim others).
fn seal_range(page: &[Record], from: u64, to: u64) -> (u64, u64) {
    page.iter().fold((from, to.max(from)), |(lo, hi), r| {
        (lo.min(r.content.seq), hi.max(r.content.seq))
    })
}

/// Next `from_seq` after a full page: stores order by their own seq key, and a well-formed
/// page's last record carries it; a tampered one may not, so never go backwards.
fn page_next(last: &Record, from: u64, len: usize) -> u64 {
    let by_count = from.saturating_add(len as u64);
    last.content.seq.saturating_add(1).max(by_count)
}

/// Spawn a task that calls [`Ledger::checkpoint`] every `period`, with the time from `clock`
/// (Unix milliseconds). Errors are passed to `on_error` and the task keeps going.
pub fn spawn_checkpoint_task<C, E>(
    ledger: Arc<Ledger>,
    period: Duration,
    clock: C,
    on_error: E,
) -> tokio::task::JoinHandle<()>
where
    C: Fn() -> i64 + Send + Sync + 'static,
    E: Fn(LedgerError) + Send + Sync + 'static,
{
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval.tick().await;
        loop {
            interval.tick().await;
            if let Err(e) = ledger.checkpoint(clock()).await {
                on_error(e);
            }
        }
    })
}
