//! The `Store` port: where records, chain heads and checkpoints live.

use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::checkpoint::Checkpoint;
use crate::key::LedgerKey;
use crate::record::Record;
use crate::seal::Seal;

/// Largest page size a query may ask for.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// Errors from a [`Store`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The conditional write lost: `(chain, seq)` exists, or the chain head is not
    /// `(seq - 1, prev)`. Re-read the head and retry.
    #[error("conflict on chain {chain} at seq {seq}")]
    Conflict {
        /// Chain.
        chain: String,
        /// Sequence number that was attempted.
        seq: u64,
    },
    /// A record with the same idempotency key already exists.
    #[error("a record with this idempotency key already exists")]
    Duplicate {
        /// The idempotency key.
        idempotency_key: String,
    },
    /// The store could not be reached or did not confirm the write (fail closed).
    #[error("store unavailable: {message}")]
    Unavailable {
        /// What failed.
        message: String,
        /// The cause.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// Stored data could not be decoded.
    #[error("corrupt data in chain {chain} at seq {seq}: {reason}")]
    Corrupt {
        /// Chain.
        chain: String,
        /// Sequence number (0 when unknown).
        seq: u64,
        /// What is wrong.
        reason: String,
    },
    /// A request parameter was rejected (bad cursor, page too large, …).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// Any other backend failure.
    #[error("store error: {message}")]
    Backend {
        /// What failed.
        message: String,
        /// The cause.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl StoreError {
    /// An [`StoreError::Unavailable`] with a cause.
    pub fn unavailable(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StoreError::Unavailable {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// A [`StoreError::Backend`] with a cause.
    pub fn backend(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StoreError::Backend {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

/// The last record of a chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    /// Its sequence number.
    pub seq: u64,
    /// Its hash (lowercase hex).
    pub hash: String,
}

/// What to look records up by.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Query {
    /// All records of a transaction.
    Transaction(String),
    /// Records of a client with `since <= time <= until` (Unix milliseconds).
    Client {
        /// Client id.
        client_id: String,
        /// Lower bound, inclusive.
        since_ms: i64,
        /// Upper bound, inclusive.
        until_ms: i64,
    },
    /// The issuance of a certificate, by serial (hex; case and `:` ignored).
    Serial(String),
    /// Records about a certificate thumbprint (`x5t#S256`): its issuance, tokens bound to it,
    /// authentication failures presenting it.
    Thumbprint(String),
    /// Records about a token id.
    Jti(String),
}

/// One page of query results, in ascending `(time, chain, seq)` order.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Page {
    /// The records.
    pub records: Vec<Record>,
    /// Opaque cursor for the next page; `None` when there is none.
    pub next_cursor: Option<String>,
}

/// Future returned by [`Store::submit_append`].
pub type AppendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>>;

/// Persistence for the ledger. Implementations: [`crate::SqliteStore`] (embedded default) and
/// `DynamoStore` (feature `dynamodb`). Every implementation passes the same contract test suite.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// The committed head of `chain`, or `None` for an empty chain.
    async fn head(&self, chain: &str) -> Result<Option<ChainHead>, StoreError>;

    /// Durably append `record`, conditional on the chain's head being
    /// `(record.seq - 1, record.prev)` (for seq 1: the chain being empty) and on no record having
    /// the same idempotency key. Returns only after the write is durable.
    ///
    /// Errors: [`StoreError::Conflict`] when the condition fails, [`StoreError::Duplicate`] on an
    /// idempotency-key clash, [`StoreError::Unavailable`] when the store cannot confirm the write.
    async fn append(&self, record: &Record) -> Result<(), StoreError>;

    /// Like [`Store::append`], but the write is *ordered at call time* when
    /// [`Store::ordered_submission`] is true: appends submitted in sequence are applied in that
    /// sequence, so a caller may submit seq `n + 1` before `n` is confirmed (pipelining).
    fn submit_append<'a>(&'a self, record: Record) -> AppendFuture<'a> {
        Box::pin(async move { self.append(&record).await })
    }

    /// [`Store::submit_append`] of a record whose canonical JSON (the canonical bytes without
    /// the prefix, [`RecordContent::canonical_json`](crate::RecordContent::canonical_json)) the
    /// caller already has, so that a store keeping it need not encode it again. The caller
    /// guarantees that `canonical_json` is exactly that encoding of `record.content`; anything
    /// else would be stored as is and fail verification.
    fn submit_append_encoded<'a>(
        &'a self,
        record: Record,
        canonical_json: String,
    ) -> AppendFuture<'a> {
        let _ = canonical_json;
        self.submit_append(record)
    }

    /// Whether [`Store::submit_append`] orders writes at call time.
    fn ordered_submission(&self) -> bool {
        false
    }

    /// Ask the store to [`Seal`] every commit with `key`: one signature over all the records a
    /// commit writes, written in the same transaction. Returns true when it will (then the
    /// ledger appends [`SEALED_RECORD_VERSION`](crate::SEALED_RECORD_VERSION) records, without
    /// a signature of their own); false when the store does not seal, or already seals with
    /// another key (then the ledger signs every record). A store that seals refuses a sealed
    /// record while it has no key ([`StoreError::Invalid`]).
    fn enable_sealing(&self, key: std::sync::Arc<LedgerKey>) -> bool {
        let _ = key;
        false
    }

    /// The seals covering records of `chain` stored at `from_seq..=to_seq` (each once, in any
    /// order); none for a store that does not seal.
    async fn seals_for(
        &self,
        chain: &str,
        from_seq: u64,
        to_seq: u64,
    ) -> Result<Vec<Seal>, StoreError> {
        let _ = (chain, from_seq, to_seq);
        Ok(Vec::new())
    }

    /// The record with this idempotency key, if any.
    async fn find_by_idempotency_key(&self, key: &str) -> Result<Option<Record>, StoreError>;

    /// Store a checkpoint. Writing the same `(chain, seq)` again is a no-op.
    async fn put_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError>;

    /// The newest checkpoint of every chain that has one.
    async fn latest_checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError>;

    /// All checkpoints of `chain`, ascending by seq.
    async fn checkpoints(&self, chain: &str) -> Result<Vec<Checkpoint>, StoreError>;

    /// Records matching `query`, at most `limit` (1..=[`MAX_PAGE_SIZE`]), after `cursor`.
    async fn query(
        &self,
        query: &Query,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page, StoreError>;

    /// Up to `limit` records of `chain` with `seq >= from_seq`, ascending by stored seq.
    async fn scan_chain(
        &self,
        chain: &str,
        from_seq: u64,
        limit: u32,
    ) -> Result<Vec<Record>, StoreError>;

    /// Names of all chains that have records or checkpoints, sorted.
    async fn chains(&self) -> Result<Vec<String>, StoreError>;
}

/// Check a page size.
pub(crate) fn check_limit(limit: u32) -> Result<(), StoreError> {
    if limit == 0 || limit > MAX_PAGE_SIZE {
        return Err(StoreError::Invalid(format!(
            "limit must be 1..={MAX_PAGE_SIZE}"
        )));
    }
    Ok(())
}

/// Upper bound on a cursor's length.
pub(crate) const MAX_CURSOR_LEN: usize = 2048;
