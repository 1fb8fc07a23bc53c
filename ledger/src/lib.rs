//! Kairos ledger: signed, hash-chained records of every certificate, token and decision.
//!
//! - [`RecordBody`] is what happened; [`Record`] is the signed, chained envelope with a
//!   documented canonical encoding (see `ledger/README.md`).
//! - [`Ledger`] signs with a [`LedgerKey`], chains (sharded by transaction id) and appends
//!   through a [`Store`]: [`SqliteStore`] (embedded default) or `DynamoStore` (feature
//!   `dynamodb`, on by default). A store that commits in groups may [`Seal`] each commit with
//!   one signature instead of one per record ([`Store::enable_sealing`]).
//! - [`Ledger::verify_all`] / [`verify_store`] / [`verify_records`] verify with public keys only.
//!
//! The crate never reads the clock: times are parameters.

mod checkpoint;
#[cfg(feature = "dynamodb")]
mod dynamo;

mod key;
mod ledger;
mod record;
mod seal;
mod sqlite;
mod store;
mod verify;

pub use checkpoint::{CHECKPOINT_PREFIX, CHECKPOINT_VERSION, Checkpoint, CheckpointContent};
#[cfg(feature = "dynamodb")]
pub use dynamo::{DynamoConfig, DynamoStore, TTL_ATTRIBUTE, create_table};

pub use key::{Jwk, Jwks, KeyError, LedgerKey, PublicKeySet, VerifyingKey};
pub use ledger::{
    AppendReceipt, DEFAULT_SHARDS, Ledger, LedgerError, MAX_APPEND_ATTEMPTS, RecordMeta,
    expected_chains, spawn_checkpoint_task, verify_store, verify_store_with,
};
pub use record::{
    GENESIS_PREV, MAX_RECORD_BYTES, RECORD_PREFIX, RECORD_VERSION, Record, RecordBody,
    RecordContent, SEALED_RECORD_VERSION, SYSTEM_CHAIN, chain_for, idempotency_key,
    normalize_serial, record_idempotency_key, revocation_key, sha256_hex,
};
pub use seal::{SEAL_PREFIX, SEAL_VERSION, Seal, SealContent, SealEntry};
pub use sqlite::{
    CommitMode, CommitQueue, GroupCommit, MAX_BATCH, MAX_COMMIT_DELAY, MAX_GATHER_YIELDS,
    SqliteStore,
};
pub use store::{AppendFuture, ChainHead, MAX_PAGE_SIZE, Page, Query, Store, StoreError};
pub use verify::{
    Completeness, Problem, VerifyFailure, VerifyReport, check_checkpoint_signature, check_record,
    check_seal_signature, verify_records,
};
