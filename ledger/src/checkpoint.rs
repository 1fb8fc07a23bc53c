//! Signed checkpoints of chain heads.

use serde::{Deserialize, Serialize};

/// Version of the checkpoint format.
pub const CHECKPOINT_VERSION: u32 = 1;

/// Domain-separation prefix of the canonical bytes of a version-1 checkpoint.
pub const CHECKPOINT_PREFIX: &[u8] = b"KAIROS-LEDGER-CHECKPOINT/1\n";

/// The signed part of a checkpoint. Field order is the canonical order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointContent {
    /// Format version ([`CHECKPOINT_VERSION`]).
    pub v: u32,
    /// Chain.
    pub chain: String,
    /// Sequence number of the head at checkpoint time.
    pub seq: u64,
    /// Hash of that record.
    pub head_hash: String,
    /// When the checkpoint was made, Unix milliseconds.
    pub time: i64,
    /// Key id of the signing key.
    pub kid: String,
}

impl CheckpointContent {
    /// [`CHECKPOINT_PREFIX`] followed by the compact JSON of this struct.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        crate::record::prefixed_json(CHECKPOINT_PREFIX, self, 256)
    }
}

/// A signed statement "chain C had head (seq, hash) at time T".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The signed content.
    pub content: CheckpointContent,
    /// ECDSA P-256 signature of the canonical bytes, `r || s`, base64url.
    pub signature: String,
}
