//! Seals: one signature over every record a commit wrote.
//!
//! A store that commits in groups (the embedded SQLite store) signs, per commit, one seal
//! listing `(chain, seq, hash)` of each record in it, and writes it in the same transaction.
//! Records it seals have format version [`SEALED_RECORD_VERSION`](crate::SEALED_RECORD_VERSION)
//! and no signature of their own: a record is authentic when its hash is listed in a seal whose
//! signature verifies. A seal names every record's hash, so one record can be proven with that
//! record and its seal alone (as an inclusion proof does in Certificate Transparency), without
//! the other records of the commit.

use serde::{Deserialize, Serialize};

/// Version of the seal format.
pub const SEAL_VERSION: u32 = 1;

/// Domain-separation prefix of the canonical bytes of a version-1 seal.
pub const SEAL_PREFIX: &[u8] = b"KAIROS-LEDGER-SEAL/1\n";

/// One sealed record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealEntry {
    /// Chain of the record.
    pub chain: String,
    /// Its position in the chain.
    pub seq: u64,
    /// Its hash (lowercase hex SHA-256 of its canonical bytes).
    pub hash: String,
}

/// The signed part of a seal. Field order is the canonical order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealContent {
    /// Format version ([`SEAL_VERSION`]).
    pub v: u32,
    /// The latest `time` among the sealed records, Unix milliseconds.
    pub time: i64,
    /// Key id of the signing key.
    pub kid: String,
    /// The records the commit wrote, in commit order.
    pub records: Vec<SealEntry>,
}

impl SealContent {
    /// [`SEAL_PREFIX`] followed by the compact JSON of this struct.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        crate::record::prefixed_json(SEAL_PREFIX, self, 64 + self.records.len() * 112)
    }
}

/// A signed statement "these records were committed together".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seal {
    /// The signed content.
    pub content: SealContent,
    /// ECDSA P-256 signature of the canonical bytes, `r || s`, base64url.
    pub signature: String,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn canonical_bytes_are_exact() {
        let c = SealContent {
            v: 1,
            time: 1_750_000_000_123,
            kid: "k".into(),
            records: vec![SealEntry {
                chain: "shard-0003".into(),
                seq: 7,
                hash: "ab".into(),
            }],
        };
        assert_eq!(
            String::from_utf8(c.canonical_bytes().unwrap()).unwrap(),
            "KAIROS-LEDGER-SEAL/1\n{\"v\":1,\"time\":1750000000123,\"kid\":\"k\",\
             \"records\":[{\"chain\":\"shard-0003\",\"seq\":7,\"hash\":\"ab\"}]}"
        );
    }
}
