//! Verification of records, chains and checkpoints — needs only public keys.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::checkpoint::{CHECKPOINT_VERSION, Checkpoint};
use crate::key::PublicKeySet;
use crate::record::{GENESIS_PREV, RECORD_VERSION, Record, SEALED_RECORD_VERSION, sha256_hex};
use crate::seal::{SEAL_VERSION, Seal};

/// What is wrong with a record or checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Problem {
    /// The stored data could not be decoded.
    Unreadable {
        /// Decoder message.
        reason: String,
    },
    /// Unknown format version.
    UnsupportedVersion {
        /// Version found.
        version: u32,
    },
    /// The record names another chain than the one it is stored in.
    WrongChain {
        /// Chain named in the record.
        found: String,
    },
    /// Records are missing before this one (`expected..found` absent).
    MissingRecords {
        /// First missing seq.
        expected: u64,
        /// Seq of the record found instead.
        found: u64,
    },
    /// The record's signed seq is not its position (records reordered or moved).
    SequenceMismatch {
        /// Position in the chain.
        expected: u64,
        /// Seq inside the signed record.
        found: u64,
    },
    /// Two different records claim the same position (fork).
    Fork,
    /// The stored hash is not the SHA-256 of the canonical bytes (content altered).
    HashMismatch,
    /// Signed by a key that is not in the trusted set.
    UnknownKey {
        /// The key id.
        kid: String,
    },
    /// The signature does not verify (altered or replaced).
    BadSignature,
    /// `prev` is not the hash of the preceding record.
    BrokenLink,
    /// A checkpoint's signature does not verify or its key is unknown.
    CheckpointBadSignature {
        /// Checkpointed seq.
        seq: u64,
    },
    /// A checkpointed record is gone (records removed from the chain's end or middle).
    CheckpointedRecordMissing {
        /// Checkpointed seq.
        seq: u64,
    },
    /// The record at a checkpointed seq has another hash than the checkpoint says.
    CheckpointHashMismatch {
        /// Checkpointed seq.
        seq: u64,
    },
    /// A sealed-format record that no valid seal lists (forged, or its seal removed).
    Unsealed,
    /// A seal listing this record does not verify (forged or altered). A seal by a key not in
    /// the trusted set is reported as [`Problem::UnknownKey`].
    SealBadSignature,
    /// A seal lists another hash for this record (the record was altered).
    SealHashMismatch,
    /// A valid seal lists a record at this seq that is not in the chain (removed).
    SealedRecordMissing {
        /// The sealed seq.
        seq: u64,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Unreadable { reason } => write!(f, "unreadable record: {reason}"),
            Problem::UnsupportedVersion { version } => write!(f, "unsupported version {version}"),
            Problem::WrongChain { found } => write!(f, "record belongs to chain {found}"),
            Problem::MissingRecords { expected, found } => {
                write!(
                    f,
                    "records {expected}..={} missing (deleted?)",
                    found.saturating_sub(1)
                )
            }
            Problem::SequenceMismatch { expected, found } => write!(
                f,
                "record signed as seq {found} found at position {expected} (reordered?)"
            ),
            Problem::Fork => write!(f, "two different records at the same seq (fork)"),
            Problem::HashMismatch => write!(f, "hash does not match content (altered)"),
            Problem::UnknownKey { kid } => write!(f, "signed by unknown key {kid}"),
            Problem::BadSignature => write!(f, "bad signature"),
            Problem::BrokenLink => write!(f, "prev hash does not match the preceding record"),
            Problem::CheckpointBadSignature { seq } => {
                write!(f, "checkpoint at seq {seq} has a bad signature")
            }
            Problem::CheckpointedRecordMissing { seq } => {
                write!(f, "checkpointed record at seq {seq} is missing (removed?)")
            }
            Problem::CheckpointHashMismatch { seq } => {
                write!(f, "record at seq {seq} differs from the checkpointed hash")
            }
            Problem::Unsealed => write!(f, "no valid seal lists this record (forged?)"),
            Problem::SealBadSignature => write!(f, "the seal listing it has a bad signature"),
            Problem::SealHashMismatch => {
                write!(f, "the seal lists another hash for this record (altered)")
            }
            Problem::SealedRecordMissing { seq } => {
                write!(f, "sealed record at seq {seq} is missing (removed?)")
            }
        }
    }
}

/// A named failure: which record (or checkpoint) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyFailure {
    /// Chain.
    pub chain: String,
    /// Position in the chain (or checkpointed seq).
    pub seq: u64,
    /// Id of the offending record, when there is one.
    pub record_id: Option<String>,
    /// What is wrong.
    pub problem: Problem,
}

impl fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "chain {} seq {}", self.chain, self.seq)?;
        if let Some(id) = &self.record_id {
            write!(f, " (record {id})")?;
        }
        write!(f, ": {}", self.problem)
    }
}

/// Result of a verification run. Failures are ordered by chain name then seq, at most one per
/// chain (later records of a broken chain cannot be trusted).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Chains examined.
    pub chains: u64,
    /// Records examined.
    pub records: u64,
    /// Checkpoints examined.
    pub checkpoints: u64,
    /// Seals examined (each counted once).
    #[serde(default)]
    pub seals: u64,
    /// What failed.
    pub failures: Vec<VerifyFailure>,
}

impl VerifyReport {
    /// True when nothing failed.
    pub fn is_ok(&self) -> bool {
        self.failures.is_empty()
    }

    /// The first bad record (by chain name, then seq).
    pub fn first_failure(&self) -> Option<&VerifyFailure> {
        self.failures.first()
    }
}

/// Check one record on its own: version, hash, and for a [`RECORD_VERSION`] record its
/// signature. Returns the problem, if any. A [`SEALED_RECORD_VERSION`] record carries no
/// signature: it is authentic only if a valid [`Seal`] lists its hash, which this does not check.
pub fn check_record(record: &Record, keys: &PublicKeySet) -> Option<Problem> {
    let c = &record.content;
    if c.v != RECORD_VERSION && c.v != SEALED_RECORD_VERSION {
        return Some(Problem::UnsupportedVersion { version: c.v });
    }
    let bytes = match c.canonical_bytes() {
        Ok(b) => b,
        Err(e) => {
            return Some(Problem::Unreadable {
                reason: e.to_string(),
            });
        }
    };
    if sha256_hex(&bytes) != record.hash {
        return Some(Problem::HashMismatch);
    }
    if c.v == SEALED_RECORD_VERSION {
        // nothing may ride along unauthenticated
        return (!record.signature.is_empty()).then_some(Problem::BadSignature);
    }
    let Some(key) = keys.get(&c.kid) else {
        return Some(Problem::UnknownKey { kid: c.kid.clone() });
    };
    if !key.verify(&bytes, &record.signature) {
        return Some(Problem::BadSignature);
    }
    None
}

/// Whether a signed statement (checkpoint, seal) of a `supported` version, with these
/// canonical `bytes` (encoded only for a supported version), carries a `signature` that the key
/// `kid` in `keys` verifies.
fn statement_verifies(
    supported: bool,
    bytes: impl FnOnce() -> Result<Vec<u8>, serde_json::Error>,
    kid: &str,
    signature: &str,
    keys: &PublicKeySet,
) -> bool {
    supported && bytes().is_ok_and(|b| keys.get(kid).is_some_and(|k| k.verify(&b, signature)))
}

/// Check a checkpoint's signature.
pub fn check_checkpoint_signature(cp: &Checkpoint, keys: &PublicKeySet) -> bool {
    let c = &cp.content;
    statement_verifies(
        c.v == CHECKPOINT_VERSION,
        || c.canonical_bytes(),
        &c.kid,
        &cp.signature,
        keys,
    )
}

/// Check a seal's signature.
pub fn check_seal_signature(seal: &Seal, keys: &PublicKeySet) -> bool {
    let c = &seal.content;
    statement_verifies(
        c.v == SEAL_VERSION,
        || c.canonical_bytes(),
        &c.kid,
        &seal.signature,
        keys,
    )
}

/// A seal's identity in a [`SealCache`]: SHA-256 of its canonical bytes and its signature.
pub(crate) type SealKey = [u8; 32];

/// A valid seal that lists chains whose verifier has not met it yet.
#[derive(Debug)]
pub(crate) struct PendingSeal {
    /// The chain and range of stored seqs it was found through: asking
    /// [`Store::seals_for`](crate::Store::seals_for) the same again fetches it again, so its
    /// entries need not be kept.
    pub(crate) via: (String, u64, u64),
    /// Chains it lists whose verifier has not met it.
    pub(crate) unmet: Vec<String>,
}

/// Seal signatures already checked (a seal covers records of several chains, and is met once
/// per chain), and the valid seals that list a chain whose verifier has not met them.
///
/// A record written legitimately points to its seal, so its own chain's verifier meets it.
/// A seal still pending at the end lists a record that is gone or was replaced — or, on a live
/// store, was appended after its chain was verified. Memory: a few dozen bytes per pending seal;
/// a seal holds many records.
#[derive(Debug, Default)]
pub(crate) struct SealCache {
    checked: HashMap<SealKey, Option<Problem>>,
    pending: HashMap<SealKey, PendingSeal>,
}

/// The [`SealKey`] of a seal whose canonical bytes are `bytes`.
pub(crate) fn seal_key(bytes: &[u8], seal: &Seal) -> SealKey {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(bytes);
    ctx.update(seal.signature.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

impl SealCache {
    /// The seal's key, and what is wrong with it: [`Problem::UnknownKey`],
    /// [`Problem::SealBadSignature`]. `via` is the chain and range it was found through.
    fn check(
        &mut self,
        seal: &Seal,
        keys: &PublicKeySet,
        via: (&str, u64, u64),
    ) -> (SealKey, Option<Problem>) {
        let Ok(bytes) = seal.content.canonical_bytes() else {
            return ([0; 32], Some(Problem::SealBadSignature));
        };
        let key = seal_key(&bytes, seal);
        let pending = &mut self.pending;
        let problem = self
            .checked
            .entry(key)
            .or_insert_with(|| {
                // the canonical bytes are at hand: verify them, not a second encoding
                let kid = &seal.content.kid;
                let Some(k) = keys.get(kid) else {
                    return Some(Problem::UnknownKey { kid: kid.clone() });
                };
                if seal.content.v != SEAL_VERSION || !k.verify(&bytes, &seal.signature) {
                    return Some(Problem::SealBadSignature);
                }
                let mut unmet: Vec<String> = Vec::new();
                for e in &seal.content.records {
                    if !unmet.contains(&e.chain) {
                        unmet.push(e.chain.clone());
                    }
                }
                pending.insert(
                    key,
                    PendingSeal {
                        via: (via.0.to_owned(), via.1, via.2),
                        unmet,
                    },
                );
                None
            })
            .clone();
        (key, problem)
    }

    /// `chain`'s verifier has met the seal with this key.
    fn seen(&mut self, key: &SealKey, chain: &str) {
        if let Some(p) = self.pending.get_mut(key) {
            p.unmet.retain(|c| c != chain);
            if p.unmet.is_empty() {
                self.pending.remove(key);
            }
        }
    }

    /// The valid seals listing chains whose verifier has not met them.
    pub(crate) fn take_pending(&mut self) -> Vec<(SealKey, PendingSeal)> {
        let mut out: Vec<_> = self.pending.drain().collect();
        out.sort_by(|a, b| a.1.via.cmp(&b.1.via));
        out
    }

    /// Distinct seals checked.
    pub(crate) fn len(&self) -> usize {
        self.checked.len()
    }
}

/// Incremental verifier of one complete chain, fed records in stored order.
#[derive(Debug)]
pub(crate) struct ChainVerifier<'k> {
    chain: String,
    keys: &'k PublicKeySet,
    expected: u64,
    prev: String,
    /// checkpointed seq -> (checkpoint hashes); filled with record hashes as they pass.
    checkpointed: BTreeMap<u64, Vec<String>>,
    /// seq -> hashes that valid seals list for it, not yet matched with a record.
    sealed: BTreeMap<u64, Vec<String>>,
    failure: Option<VerifyFailure>,
    records: u64,
    checkpoints: u64,
}

impl<'k> ChainVerifier<'k> {
    pub(crate) fn new(chain: &str, keys: &'k PublicKeySet, checkpoints: &[Checkpoint]) -> Self {
        let mut v = Self {
            chain: chain.to_owned(),
            keys,
            expected: 1,
            prev: GENESIS_PREV.to_owned(),
            checkpointed: BTreeMap::new(),
            sealed: BTreeMap::new(),
            failure: None,
            records: 0,
            checkpoints: 0,
        };
        for cp in checkpoints {
            v.checkpoints += 1;
            if v.failure.is_none()
                && (cp.content.chain != chain || !check_checkpoint_signature(cp, keys))
            {
                v.fail(
                    cp.content.seq,
                    None,
                    Problem::CheckpointBadSignature {
                        seq: cp.content.seq,
                    },
                );
            }
            v.checkpointed
                .entry(cp.content.seq)
                .or_default()
                .push(cp.content.head_hash.clone());
        }
        v
    }

    /// Learn what `seals` say about this chain (call before pushing the records they cover);
    /// `range` is the range of stored seqs they were fetched for. Entries for positions already
    /// verified are ignored: a seal is met again when it also covers records of a later page.
    pub(crate) fn add_seals(&mut self, seals: &[Seal], cache: &mut SealCache, range: (u64, u64)) {
        for seal in seals {
            let mut mine = seal
                .content
                .records
                .iter()
                .filter(|e| e.chain == self.chain)
                .peekable();
            let Some(first) = mine.peek() else { continue };
            let seq = first.seq;
            let via = (self.chain.as_str(), range.0, range.1);
            let (key, problem) = cache.check(seal, self.keys, via);
            if let Some(problem) = problem {
                return self.fail(seq, None, problem);
            }
            cache.seen(&key, &self.chain);
            for e in mine.filter(|e| e.seq >= self.expected) {
                let hashes = self.sealed.entry(e.seq).or_default();
                if !hashes.contains(&e.hash) {
                    hashes.push(e.hash.clone());
                }
            }
        }
    }

    fn fail(&mut self, seq: u64, record_id: Option<String>, problem: Problem) {
        if self.failure.is_none() {
            self.failure = Some(VerifyFailure {
                chain: self.chain.clone(),
                seq,
                record_id,
                problem,
            });
        }
    }

    pub(crate) fn failed(&self) -> bool {
        self.failure.is_some()
    }

    /// An undecodable stored record at position `seq`.
    pub(crate) fn unreadable(&mut self, seq: u64, reason: String) {
        self.fail(seq, None, Problem::Unreadable { reason });
    }

    /// Feed a page of records in stored order. A record whose signed seq is ahead of its
    /// position is a deletion, unless a later record of the page is behind (a reordering).
    pub(crate) fn push_page(&mut self, page: &[Record]) {
        let mut suffix_min = vec![u64::MAX; page.len() + 1];
        for (i, r) in page.iter().enumerate().rev() {
            let next = suffix_min.get(i + 1).copied().unwrap_or(u64::MAX);
            if let Some(slot) = suffix_min.get_mut(i) {
                *slot = next.min(r.content.seq);
            }
        }
        for (i, r) in page.iter().enumerate() {
            let later_min = suffix_min.get(i + 1).copied().unwrap_or(u64::MAX);
            self.push_with_lookahead(r, later_min);
        }
    }

    pub(crate) fn push(&mut self, record: &Record) {
        self.push_with_lookahead(record, u64::MAX);
    }

    fn push_with_lookahead(&mut self, record: &Record, later_min_seq: u64) {
        if self.failed() {
            return;
        }
        self.records += 1;
        let c = &record.content;
        let pos = self.expected;
        let id = Some(c.id.clone());
        if c.chain != self.chain {
            return self.fail(
                pos,
                id,
                Problem::WrongChain {
                    found: c.chain.clone(),
                },
            );
        }
        if c.seq != pos {
            let problem = if c.seq > pos && later_min_seq > c.seq {
                Problem::MissingRecords {
                    expected: pos,
                    found: c.seq,
                }
            } else {
                Problem::SequenceMismatch {
                    expected: pos,
                    found: c.seq,
                }
            };
            // Name the record found where `pos` should be.
            return self.fail(pos, id, problem);
        }
        if let Some(p) = check_record(record, self.keys) {
            return self.fail(pos, id, p);
        }
        if c.prev != self.prev {
            return self.fail(pos, id, Problem::BrokenLink);
        }
        if let Some(hashes) = self.checkpointed.remove(&pos)
            && hashes.iter().any(|h| *h != record.hash)
        {
            return self.fail(pos, id, Problem::CheckpointHashMismatch { seq: pos });
        }
        if let Some(p) = seal_problem(record, self.sealed.remove(&pos).as_deref()) {
            return self.fail(pos, id, p);
        }
        self.prev = record.hash.clone();
        self.expected += 1;
    }

    /// Finish: checkpoints or seals beyond the last record mean records were removed. Returns
    /// whether the chain verified.
    pub(crate) fn finish(mut self, report: &mut VerifyReport) -> bool {
        if self.failure.is_none()
            && let Some((&seq, _)) = self.checkpointed.iter().next()
        {
            self.fail(seq, None, Problem::CheckpointedRecordMissing { seq });
        }
        if self.failure.is_none()
            && let Some((&seq, _)) = self.sealed.iter().next()
        {
            self.fail(seq, None, Problem::SealedRecordMissing { seq });
        }
        report.chains += 1;
        report.records += self.records;
        report.checkpoints += self.checkpoints;
        match self.failure {
            Some(f) => {
                report.failures.push(f);
                false
            }
            None => true,
        }
    }
}

/// What the seals say about `record`: the hashes valid seals list for its position, if any.
fn seal_problem(record: &Record, sealed: Option<&[String]>) -> Option<Problem> {
    match sealed {
        Some(hashes) if hashes.iter().any(|h| *h != record.hash) => Some(Problem::SealHashMismatch),
        None if record.content.v == SEALED_RECORD_VERSION => Some(Problem::Unsealed),
        _ => None,
    }
}

/// How complete the records given to [`verify_records`] are.
///
/// With [`Completeness::FullChains`], every chain named by a record, a checkpoint or a seal is
/// expected in full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Completeness {
    /// Each chain is complete from seq 1: gaps are failures.
    FullChains,
    /// An excerpt (e.g. the records of one transaction in an evidence bundle): each record is
    /// checked on its own, links are checked between consecutive seqs present, and checkpoints
    /// are checked against the records present.
    Excerpt,
}

/// Verify an exported list of records (with the checkpoints and the seals of sealed records)
/// offline, with public keys only.
pub fn verify_records(
    records: &[Record],
    checkpoints: &[Checkpoint],
    seals: &[Seal],
    keys: &PublicKeySet,
    completeness: Completeness,
) -> VerifyReport {
    let mut by_chain: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    for r in records {
        by_chain.entry(&r.content.chain).or_default().push(r);
    }
    let mut cps: BTreeMap<&str, Vec<Checkpoint>> = BTreeMap::new();
    for cp in checkpoints {
        cps.entry(&cp.content.chain).or_default().push(cp.clone());
        by_chain.entry(&cp.content.chain).or_default();
    }
    if completeness == Completeness::FullChains {
        // a chain a seal names must be there too
        for e in seals.iter().flat_map(|s| &s.content.records) {
            by_chain.entry(&e.chain).or_default();
        }
    }
    let mut report = VerifyReport::default();
    let mut cache = SealCache::default();
    for (chain, mut recs) in by_chain {
        recs.sort_by_key(|r| r.content.seq);
        let chain_cps = cps.remove(chain).unwrap_or_default();
        match completeness {
            Completeness::FullChains => {
                let mut v = ChainVerifier::new(chain, keys, &chain_cps);
                v.add_seals(seals, &mut cache, (0, u64::MAX));
                let mut last: Option<&Record> = None;
                for r in recs {
                    if let Some(prev) = last
                        && prev.content.seq == r.content.seq
                    {
                        if prev != r {
                            v.fail(r.content.seq, Some(r.content.id.clone()), Problem::Fork);
                        }
                        continue;
                    }
                    v.push(r);
                    last = Some(r);
                }
                v.finish(&mut report);
            }
            Completeness::Excerpt => {
                verify_excerpt(
                    chain,
                    &recs,
                    &chain_cps,
                    seals,
                    &mut cache,
                    keys,
                    &mut report,
                );
            }
        }
    }
    report.seals = cache.len() as u64;
    report
}

fn verify_excerpt(
    chain: &str,
    recs: &[&Record],
    cps: &[Checkpoint],
    seals: &[Seal],
    cache: &mut SealCache,
    keys: &PublicKeySet,
    report: &mut VerifyReport,
) {
    report.chains += 1;
    report.checkpoints += cps.len() as u64;
    let mut failure: Option<VerifyFailure> = None;
    // seq -> hashes the valid seals list; seq -> what is wrong with a bad seal listing it
    let mut sealed: HashMap<u64, Vec<String>> = HashMap::new();
    let mut badly_sealed: HashMap<u64, Problem> = HashMap::new();
    for seal in seals {
        let (_, problem) = cache.check(seal, keys, (chain, 0, u64::MAX));
        for e in seal.content.records.iter().filter(|e| e.chain == chain) {
            match &problem {
                None => sealed.entry(e.seq).or_default().push(e.hash.clone()),
                Some(p) => {
                    badly_sealed.insert(e.seq, p.clone());
                }
            }
        }
    }
    let mut by_seq: HashMap<u64, &Record> = HashMap::new();
    let mut prev: Option<&Record> = None;
    for r in recs {
        report.records += 1;
        let c = &r.content;
        let problem = if c.chain != chain {
            Some(Problem::WrongChain {
                found: c.chain.clone(),
            })
        } else if let Some(p) = check_record(r, keys) {
            Some(p)
        } else {
            match prev {
                Some(p) if p.content.seq == c.seq && *p != **r => Some(Problem::Fork),
                Some(p) if p.content.seq + 1 == c.seq && c.prev != p.hash => {
                    Some(Problem::BrokenLink)
                }
                _ if c.seq == 1 && c.prev != GENESIS_PREV => Some(Problem::BrokenLink),
                _ => badly_sealed
                    .get(&c.seq)
                    .cloned()
                    .or_else(|| seal_problem(r, sealed.get(&c.seq).map(Vec::as_slice))),
            }
        };
        if let Some(problem) = problem {
            failure = Some(VerifyFailure {
                chain: chain.to_owned(),
                seq: c.seq,
                record_id: Some(c.id.clone()),
                problem,
            });
            break;
        }
        by_seq.insert(c.seq, r);
        prev = Some(r);
    }
    if failure.is_none() {
        for cp in cps {
            let seq = cp.content.seq;
            let problem = if cp.content.chain != chain || !check_checkpoint_signature(cp, keys) {
                Some(Problem::CheckpointBadSignature { seq })
            } else {
                match by_seq.get(&seq) {
                    Some(r) if r.hash != cp.content.head_hash => {
                        Some(Problem::CheckpointHashMismatch { seq })
                    }
                    _ => None,
                }
            };
            if let Some(problem) = problem {
                failure = Some(VerifyFailure {
                    chain: chain.to_owned(),
                    seq,
                    record_id: by_seq.get(&seq).map(|r| r.content.id.clone()),
                    problem,
                });
                break;
            }
        }
    }
    if let Some(f) = failure {
        report.failures.push(f);
    }
}
