//! The contract suite and tamper tests on the embedded SQLite store, plus SQLite specifics.

use std::path::PathBuf;
use std::sync::Arc;

use kairos_ledger::{CommitMode, MAX_COMMIT_DELAY, SqliteStore, Store};
use rusqlite::{Connection, params};

use crate::common::{Harness, Tamper};

struct SqliteTamper {
    path: PathBuf,
}

impl SqliteTamper {
    fn conn(&self) -> Connection {
        let c = Connection::open(&self.path).unwrap();
        c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
        c
    }
}

#[async_trait::async_trait]
impl Tamper for SqliteTamper {
    async fn edit_content(&self, chain: &str, seq: u64, from: &str, to: &str) {
        let n = self
            .conn()
            .execute(
                "UPDATE records SET content = replace(content, ?1, ?2) WHERE chain = ?3 AND seq = ?4 \
                 AND instr(content, ?1) > 0",
                params![from, to, chain, seq as i64],
            )
            .unwrap();
        assert_eq!(n, 1, "tamper target not found");
    }

    async fn delete(&self, chain: &str, seq: u64) {
        let n = self
            .conn()
            .execute(
                "DELETE FROM records WHERE chain = ?1 AND seq = ?2",
                params![chain, seq as i64],
            )
            .unwrap();
        assert_eq!(n, 1);
    }

    async fn delete_chain(&self, chain: &str) {
        let c = self.conn();
        let n = c
            .execute("DELETE FROM records WHERE chain = ?1", params![chain])
            .unwrap();
        assert!(n > 0);
        c.execute("DELETE FROM chains WHERE chain = ?1", params![chain])
            .unwrap();
    }

    async fn swap(&self, chain: &str, a: u64, b: u64) {
        let mut c = self.conn();
        let tx = c.transaction().unwrap();
        for (from, to) in [(a as i64, -1i64), (b as i64, a as i64), (-1, b as i64)] {
            let n = tx
                .execute(
                    "UPDATE records SET seq = ?1 WHERE chain = ?2 AND seq = ?3",
                    params![to, chain, from],
                )
                .unwrap();
            assert_eq!(n, 1);
        }
        tx.commit().unwrap();
    }

    async fn set_signature(&self, chain: &str, seq: u64, signature: &str) {
        let n = self
            .conn()
            .execute(
                "UPDATE records SET signature = ?1 WHERE chain = ?2 AND seq = ?3",
                params![signature, chain, seq as i64],
            )
            .unwrap();
        assert_eq!(n, 1);
    }
}

pub async fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    let store = SqliteStore::open(&path).unwrap();
    Harness {
        store: Arc::new(store),
        tamper: Box::new(SqliteTamper { path }),
        _guard: Box::new(dir),
    }
}

crate::contract_suite!(harness);

/// An embedded store that commits inline ([`CommitMode::Inline`], what `kairos serve` uses).
fn open_inline(path: &std::path::Path) -> SqliteStore {
    SqliteStore::open_with(path, CommitMode::Inline, MAX_COMMIT_DELAY).unwrap()
}

/// The contract suite again, committing inline instead of on the writer thread.
mod inline {
    use super::*;

    pub async fn harness() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.sqlite");
        let store = open_inline(&path);
        Harness {
            store: Arc::new(store),
            tamper: Box::new(SqliteTamper { path }),
            _guard: Box::new(dir),
        }
    }

    crate::contract_suite!(harness);
}

/// A signed `token_issued` record of client `c` (for the raw store tests below).
fn token_record(
    key: &kairos_ledger::LedgerKey,
    chain: &str,
    seq: u64,
    prev: Option<&kairos_ledger::Record>,
    jti: &str,
) -> kairos_ledger::Record {
    crate::common::signed(
        key,
        chain,
        seq,
        prev,
        crate::common::token(jti, "c", "x", None),
        None,
    )
}

/// Polls `f` once, as a runtime would, and reports whether it finished.
async fn poll_once<F: std::future::Future + Unpin>(f: &mut F) -> std::task::Poll<F::Output> {
    std::future::poll_fn(|cx| std::task::Poll::Ready(std::pin::Pin::new(&mut *f).poll(cx))).await
}

#[tokio::test]
async fn an_inline_leader_cancelled_while_gathering_hands_the_lead_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_inline(&dir.path().join("l.sqlite"));
    let key = kairos_ledger::LedgerKey::generate().unwrap();
    let chain = "shard-0001";
    let r1 = token_record(&key, chain, 1, None, "j1");
    let r2 = token_record(&key, chain, 2, Some(&r1), "j2");
    let mut first = store.submit_append(r1.clone());
    // the first append leads, and yields to let others join before it commits
    assert!(poll_once(&mut first).await.is_pending());
    let mut second = store.submit_append(r2.clone());
    assert!(poll_once(&mut second).await.is_pending());
    // its request is cancelled before the commit: the lead must pass to the second append,
    // which commits both, in order
    drop(first);
    tokio::time::timeout(std::time::Duration::from_secs(10), second)
        .await
        .expect("the waiting append was left without a leader")
        .unwrap();
    let head = store.head(chain).await.unwrap().unwrap();
    assert_eq!((head.seq, head.hash.as_str()), (2, r2.hash.as_str()));
}

#[tokio::test]
async fn appends_nobody_waits_for_any_more_are_committed_when_the_store_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.sqlite");
    let key = kairos_ledger::LedgerKey::generate().unwrap();
    let r1 = token_record(&key, "shard-0002", 1, None, "j1");
    {
        let store = open_inline(&path);
        let mut orphan = store.submit_append(r1.clone());
        assert!(poll_once(&mut orphan).await.is_pending());
        drop(orphan);
        assert_eq!(
            store.head("shard-0002").await.unwrap(),
            None,
            "committed too early"
        );
    }
    let store = SqliteStore::open(&path).unwrap();
    let head = store.head("shard-0002").await.unwrap().unwrap();
    assert_eq!((head.seq, head.hash.as_str()), (1, r1.hash.as_str()));
}

/// While another process holds the write lock (`kairos audit` recording its own use, a
/// `sqlite3` shell), an inline leader waits for it without blocking the runtime's thread.
#[tokio::test(flavor = "current_thread")]
async fn an_inline_commit_waits_for_another_writer_without_blocking_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.sqlite");
    let store = open_inline(&path);
    let key = kairos_ledger::LedgerKey::generate().unwrap();
    let r1 = token_record(&key, "shard-0003", 1, None, "j1");
    let other = Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let writer = store.clone();
    let append = tokio::spawn(async move { writer.append(&r1).await });
    // one thread runs both tasks: if the append blocked it until the lock came free (SQLite's
    // busy handler waits up to ten seconds), this short sleep would end that late
    let started = std::time::Instant::now();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "the runtime was blocked for {:?}",
        started.elapsed()
    );
    assert!(
        !append.is_finished(),
        "committed while another writer held the lock"
    );
    other.execute_batch("ROLLBACK").unwrap();
    append.await.unwrap().unwrap();
    assert_eq!(store.head("shard-0003").await.unwrap().unwrap().seq, 1);
}

#[tokio::test]
async fn durable_file_is_readable_with_plain_sqlite_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    let key = kairos_ledger::LedgerKey::generate().unwrap();
    let keys = kairos_ledger::PublicKeySet::new().with(key.verifying_key());
    {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
        let l = kairos_ledger::Ledger::new(store, key, 16);
        for i in 0..5 {
            let body = crate::common::token(&format!("j{i}"), "c", "x", Some("t"));
            l.append(body, kairos_ledger::RecordMeta::at(crate::common::T0))
                .await
                .unwrap();
        }
        l.checkpoint(crate::common::T0).await.unwrap();
    }
    // An auditor's view: plain SQL on the file.
    let c = Connection::open(&path).unwrap();
    let mode: String = c
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let (n, jti): (i64, String) = c
        .query_row(
            "SELECT count(*), max(jti) FROM records WHERE kind = 'token_issued'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((n, jti.as_str()), (5, "j4"));
    let cps: i64 = c
        .query_row("SELECT count(*) FROM checkpoints", [], |r| r.get(0))
        .unwrap();
    assert_eq!(cps, 1);
    // Reopen: the chain continues.
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    let l = kairos_ledger::Ledger::new(store, kairos_ledger::LedgerKey::generate().unwrap(), 16);
    let r = l
        .append(
            crate::common::token("j5", "c", "x", Some("t")),
            kairos_ledger::RecordMeta::at(0),
        )
        .await
        .unwrap();
    assert_eq!(r.seq, 6);
    // Old records verify with the old key, new ones need the new key too (rotation).
    assert!(!l.verify_all(&keys).await.unwrap().is_ok());
    let both = keys.with(l.key().verifying_key());
    assert!(l.verify_all(&both).await.unwrap().is_ok());
}

#[tokio::test]
async fn corrupt_row_is_reported_not_fatal() {
    let h = harness().await;
    let key = kairos_ledger::LedgerKey::generate().unwrap();
    let keys = kairos_ledger::PublicKeySet::new().with(key.verifying_key());
    let l = kairos_ledger::Ledger::new(h.store.clone(), key, 1);
    for i in 0..3 {
        l.append(
            crate::common::token(&format!("j{i}"), "c", "x", Some("t")),
            kairos_ledger::RecordMeta::at(0),
        )
        .await
        .unwrap();
    }
    h.tamper.edit_content("shard-0000", 3, "{", "[").await;
    let report = l.verify_all(&keys).await.unwrap();
    let f = report.first_failure().unwrap();
    assert_eq!((f.chain.as_str(), f.seq), ("shard-0000", 3));
    assert!(matches!(
        f.problem,
        kairos_ledger::Problem::Unreadable { .. }
    ));
    // An earlier bad record is still named first.
    h.tamper.set_signature("shard-0000", 2, "AAAA").await;
    let report = l.verify_all(&keys).await.unwrap();
    let f = report.first_failure().unwrap();
    assert_eq!(
        (f.seq, &f.problem),
        (2, &kairos_ledger::Problem::BadSignature)
    );
}

#[tokio::test]
async fn periodic_checkpoint_task() {
    let h = harness().await;
    let key = kairos_ledger::LedgerKey::generate().unwrap();
    let keys = kairos_ledger::PublicKeySet::new().with(key.verifying_key());
    let l = Arc::new(kairos_ledger::Ledger::new(h.store.clone(), key, 4));
    l.append(
        crate::common::token("j", "c", "x", Some("t")),
        kairos_ledger::RecordMeta::at(0),
    )
    .await
    .unwrap();
    let errors = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let e2 = errors.clone();
    let task = kairos_ledger::spawn_checkpoint_task(
        l.clone(),
        std::time::Duration::from_millis(20),
        || 42,
        move |_| {
            e2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        },
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while h.store.latest_checkpoints().await.unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint written"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    task.abort();
    let cps = h.store.latest_checkpoints().await.unwrap();
    assert_eq!(
        (cps.len(), cps[0].content.time, cps[0].content.seq),
        (1, 42, 1)
    );
    assert_eq!(errors.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert!(l.verify_all(&keys).await.unwrap().is_ok());
}

/// A ledger over a fresh embedded store, and the file's path.
fn sealed_ledger() -> (
    tempfile::TempDir,
    PathBuf,
    Arc<kairos_ledger::Ledger>,
    kairos_ledger::PublicKeySet,
) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    let key = kairos_ledger::LedgerKey::generate().unwrap();
    let keys = kairos_ledger::PublicKeySet::new().with(key.verifying_key());
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    let l = Arc::new(kairos_ledger::Ledger::new(store, key, 4));
    (dir, path, l, keys)
}

/// The hash of a record whose stored (canonical) JSON is `json`, as an attacker recomputes it.
fn hash_of(json: &str) -> String {
    let mut bytes = kairos_ledger::RECORD_PREFIX.to_vec();
    bytes.extend_from_slice(json.as_bytes());
    kairos_ledger::sha256_hex(&bytes)
}

async fn append_tokens(l: &kairos_ledger::Ledger, txn: &str, n: u64) -> String {
    let mut chain = String::new();
    for i in 0..n {
        let body = crate::common::token(&format!("{txn}-{i}"), "c", "x", Some(txn));
        let at = kairos_ledger::RecordMeta::at(crate::common::T0 + i as i64);
        chain = l.append(body, at).await.unwrap().chain;
    }
    chain
}

async fn first_failure(
    l: &kairos_ledger::Ledger,
    keys: &kairos_ledger::PublicKeySet,
) -> (String, u64, kairos_ledger::Problem) {
    let report = l.verify_all(keys).await.unwrap();
    let f = report.first_failure().expect("tampering not detected");
    (f.chain.clone(), f.seq, f.problem.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_commit_is_sealed_and_records_carry_no_signature() {
    use kairos_ledger::{Completeness, Problem, SEALED_RECORD_VERSION, verify_records};
    let (_dir, _path, l, keys) = sealed_ledger();
    assert!(l.is_sealed());
    // concurrent appends share commits, and so seals
    let mut tasks = Vec::new();
    for t in 0..8 {
        let l = l.clone();
        tasks.push(tokio::spawn(async move {
            append_tokens(&l, &format!("txn-{t}"), 5).await
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let seals = crate::common::all_seals(l.store().as_ref()).await;
    let mut records = Vec::new();
    for chain in l.store().chains().await.unwrap() {
        records.extend(crate::common::all_records(l.store().as_ref(), &chain).await);
    }
    assert_eq!(records.len(), 40);
    assert!(
        !seals.is_empty() && seals.len() <= 40,
        "{} seals",
        seals.len()
    );
    for r in &records {
        assert_eq!(r.content.v, SEALED_RECORD_VERSION);
        assert!(r.signature.is_empty());
        let listing: Vec<_> = seals
            .iter()
            .filter(|s| {
                s.content.records.iter().any(|e| {
                    (e.chain.as_str(), e.seq, e.hash.as_str())
                        == (r.content.chain.as_str(), r.content.seq, r.hash.as_str())
                })
            })
            .collect();
        assert_eq!(listing.len(), 1, "each record is in exactly one seal");
    }
    for s in &seals {
        assert!(kairos_ledger::check_seal_signature(s, &keys));
        assert!(s.content.time >= crate::common::T0);
    }
    let report = l.verify_all(&keys).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!((report.records, report.seals), (40, seals.len() as u64));
    // offline: a record with its seal verifies; without it, it does not
    let one = std::slice::from_ref(&records[0]);
    let report = verify_records(one, &[], &seals, &keys, Completeness::Excerpt);
    assert!(report.is_ok(), "{report:?}");
    let report = verify_records(one, &[], &[], &keys, Completeness::Excerpt);
    assert_eq!(report.first_failure().unwrap().problem, Problem::Unsealed);
}

#[tokio::test]
async fn a_record_rewritten_with_a_consistent_hash_no_longer_matches_its_seal() {
    let (_dir, path, l, keys) = sealed_ledger();
    let chain = append_tokens(&l, "txn-R", 3).await;
    // The attacker rewrites the newest record and recomputes its hash (no later record links
    // to it, and no checkpoint names it): only the seal can tell.
    let c = Connection::open(&path).unwrap();
    let content: String = c
        .query_row(
            "SELECT content FROM records WHERE chain = ?1 AND seq = 3",
            params![chain],
            |r| r.get(0),
        )
        .unwrap();
    let forged = content.replace("\"payments\"", "\"payments admin\"");
    assert_ne!(forged, content);
    c.execute(
        "UPDATE records SET content = ?1, hash = ?2 WHERE chain = ?3 AND seq = 3",
        params![forged, hash_of(&forged), chain],
    )
    .unwrap();
    assert_eq!(
        first_failure(&l, &keys).await,
        (chain, 3, kairos_ledger::Problem::SealHashMismatch)
    );
}

#[tokio::test]
async fn records_whose_seal_is_gone_or_forged_are_reported() {
    let (_dir, path, l, keys) = sealed_ledger();
    let chain = append_tokens(&l, "txn-S", 3).await;
    let c = Connection::open(&path).unwrap();
    // a seal altered (one listed hash changed): its signature no longer verifies
    let n = c
        .execute(
            "UPDATE seals SET content = replace(content, '\"hash\":\"', '\"hash\":\"0') \
             WHERE id = (SELECT seal_id FROM records WHERE chain = ?1 AND seq = 2)",
            params![chain],
        )
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(
        first_failure(&l, &keys).await,
        (chain.clone(), 2, kairos_ledger::Problem::SealBadSignature)
    );
    // every seal deleted: the first record is no longer authenticated
    c.execute("DELETE FROM seals", []).unwrap();
    assert_eq!(
        first_failure(&l, &keys).await,
        (chain, 1, kairos_ledger::Problem::Unsealed)
    );
}

#[tokio::test]
async fn a_record_slipped_in_without_a_seal_is_reported() {
    let (_dir, path, l, keys) = sealed_ledger();
    let chain = append_tokens(&l, "txn-U", 2).await;
    let recs = crate::common::all_records(l.store().as_ref(), &chain).await;
    // A well-formed next record (right seq, right prev, right hash), written by hand: all an
    // attacker without the key can produce.
    let mut forged = recs[1].clone();
    forged.content.seq = 3;
    forged.content.id = format!("{:032x}", crate::common::rand_u128());
    forged.content.prev = recs[1].hash.clone();
    let json = forged.content.canonical_json().unwrap();
    let c = Connection::open(&path).unwrap();
    c.execute(
        "INSERT INTO records (chain, seq, record_id, kind, time_ms, kid, prev_hash, hash, \
         signature, content) VALUES (?1, 3, ?2, 'token_issued', ?3, ?4, ?5, ?6, '', ?7)",
        params![
            chain,
            forged.content.id,
            forged.content.time,
            forged.content.kid,
            forged.content.prev,
            hash_of(&json),
            json
        ],
    )
    .unwrap();
    assert_eq!(
        first_failure(&l, &keys).await,
        (chain, 3, kairos_ledger::Problem::Unsealed)
    );
}

#[tokio::test]
async fn a_store_without_a_sealing_key_refuses_sealed_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("l.sqlite")).unwrap();
    let key = kairos_ledger::LedgerKey::generate().unwrap();
    let mut r = crate::common::signed(&key, "shard-0000", 1, None, crate::common::auditor(), None);
    r.content.v = kairos_ledger::SEALED_RECORD_VERSION;
    r.signature.clear();
    assert!(matches!(
        store.append(&r).await,
        Err(kairos_ledger::StoreError::Invalid(_))
    ));
    assert!(
        store
            .scan_chain("shard-0000", 1, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_version_1_file_is_upgraded_and_its_signed_records_still_verify() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    let key = kairos_ledger::LedgerKey::generate().unwrap();
    let keys = kairos_ledger::PublicKeySet::new().with(key.verifying_key());
    let chain = kairos_ledger::chain_for(Some("txn-V"), None, 4);
    {
        // records signed one by one, as before seals
        let store = SqliteStore::open(&path).unwrap();
        let r1 = crate::common::signed(
            &key,
            &chain,
            1,
            None,
            crate::common::token("v1", "c", "x", Some("txn-V")),
            None,
        );
        store.append(&r1).await.unwrap();
    }
    // ... in a file of the first schema
    let c = Connection::open(&path).unwrap();
    c.execute_batch(
        "ALTER TABLE records DROP COLUMN seal_id; DROP TABLE seals; PRAGMA user_version = 1;",
    )
    .unwrap();
    drop(c);
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    let l = kairos_ledger::Ledger::new(store, key, 4);
    assert_eq!(append_tokens(&l, "txn-V", 2).await, chain);
    let recs = crate::common::all_records(l.store().as_ref(), &chain).await;
    let versions: Vec<u32> = recs.iter().map(|r| r.content.v).collect();
    assert_eq!(versions, [1, 2, 2]);
    let report = l.verify_all(&keys).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    let c = Connection::open(&path).unwrap();
    let v: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 2);
}

#[tokio::test]
async fn two_processes_writing_one_file_both_keep_sealing() {
    // `kairos serve` and `kairos audit …` (which records each use) on the same file
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    let key = Arc::new(kairos_ledger::LedgerKey::generate().unwrap());
    let keys = kairos_ledger::PublicKeySet::new().with(key.verifying_key());
    let open = || {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
        kairos_ledger::Ledger::new(store, key.clone(), 4)
    };
    let server = open();
    append_tokens(&server, "txn-P", 1).await;
    {
        let cli = open();
        cli.append(
            crate::common::auditor(),
            kairos_ledger::RecordMeta::at(crate::common::T0),
        )
        .await
        .unwrap();
    }
    // the server's next seal id must not be the one the other process took
    append_tokens(&server, "txn-Q", 5).await;
    let report = server.verify_all(&keys).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!((report.records, report.seals), (7, 7));
}

#[tokio::test]
async fn deleting_a_chains_newest_records_is_caught_by_a_seal_found_through_another_chain() {
    use kairos_ledger::{Completeness, Problem, verify_records};
    // A:1, A:2 and B:1, with one seal listing A:2 and B:1
    let (_dir, path, l, keys, a, b) = cosealed().await;
    let c = Connection::open(&path).unwrap();
    let seals = crate::common::all_seals(l.store().as_ref()).await;
    // The attacker deletes A's newest record: nothing of A points to the seal any more, B does.
    c.execute(
        "DELETE FROM records WHERE chain = ?1 AND seq = 2",
        params![a],
    )
    .unwrap();
    assert_eq!(
        first_failure(&l, &keys).await,
        (a.clone(), 2, Problem::SealedRecordMissing { seq: 2 })
    );
    // offline, with every chain and seal, the same
    let mut rest = crate::common::all_records(l.store().as_ref(), &a).await;
    rest.extend(crate::common::all_records(l.store().as_ref(), &b).await);
    let report = verify_records(&rest, &[], &seals, &keys, Completeness::FullChains);
    let f = report.first_failure().unwrap();
    assert_eq!((&f.chain, f.seq), (&a, 2));
    assert!(matches!(f.problem, Problem::SealedRecordMissing { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verifying_a_live_ledger_reports_nothing_while_commits_span_chains() {
    // an auditor's `kairos audit verify` while the server appends: a seal found through a
    // chain verified late may list records appended to a chain verified early
    let (_dir, _path, l, keys) = sealed_ledger();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for t in 0..8 {
        let l = l.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..40 {
                append_tokens(&l, &format!("txn-live-{t}-{i}"), 1).await;
            }
        }));
    }
    let verifier = {
        let (l, done) = (l.clone(), done.clone());
        tokio::spawn(async move {
            let mut runs = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) || runs == 0 {
                let report = l.verify_all(&keys).await.unwrap();
                assert!(report.is_ok(), "live ledger reported: {report:?}");
                runs += 1;
            }
            runs
        })
    };
    for w in writers {
        w.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(verifier.await.unwrap() >= 1);
}

/// A:1, A:2 and B:1 with one seal (id 100) listing A:2 and B:1, as one group commit would;
/// `a < b` so that A is verified first.
async fn cosealed() -> (
    tempfile::TempDir,
    PathBuf,
    kairos_ledger::Ledger,
    kairos_ledger::PublicKeySet,
    String,
    String,
) {
    use kairos_ledger::{SealContent, SealEntry};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    let key = Arc::new(kairos_ledger::LedgerKey::generate().unwrap());
    let keys = kairos_ledger::PublicKeySet::new().with(key.verifying_key());
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    let l = kairos_ledger::Ledger::new(store, key.clone(), 4);
    let a_txn = (0..)
        .map(|i| format!("txn-A{i}"))
        .find(|t| l.chain_for(Some(t), None) == "shard-0000")
        .unwrap();
    let b_txn = (0..)
        .map(|i| format!("txn-B{i}"))
        .find(|t| l.chain_for(Some(t), None) == "shard-0001")
        .unwrap();
    let a = append_tokens(&l, &a_txn, 2).await;
    let b = append_tokens(&l, &b_txn, 1).await;
    let a2 = crate::common::all_records(l.store().as_ref(), &a).await[1].clone();
    let b1 = crate::common::all_records(l.store().as_ref(), &b).await[0].clone();
    let content = SealContent {
        v: kairos_ledger::SEAL_VERSION,
        time: b1.content.time,
        kid: key.kid().to_owned(),
        records: [&a2, &b1]
            .iter()
            .map(|r| SealEntry {
                chain: r.content.chain.clone(),
                seq: r.content.seq,
                hash: r.hash.clone(),
            })
            .collect(),
    };
    let bytes = content.canonical_bytes().unwrap();
    let json = std::str::from_utf8(&bytes[kairos_ledger::SEAL_PREFIX.len()..]).unwrap();
    let c = Connection::open(&path).unwrap();
    c.execute(
        "INSERT INTO seals (id, content, signature) VALUES (100, ?1, ?2)",
        params![json, key.sign(&bytes).unwrap()],
    )
    .unwrap();
    c.execute(
        "UPDATE records SET seal_id = 100 WHERE (chain = ?1 AND seq = 2) OR (chain = ?2 AND seq = 1)",
        params![a, b],
    )
    .unwrap();
    assert!(l.verify_all(&keys).await.unwrap().is_ok());
    (dir, path, l, keys, a, b)
}

/// Attacker deletes A's sealed tail; the server's next append to A conflicts, re-reads the
/// head and legitimately re-fills A:2. Seal 100 (found through B) still lists A:2 with the
/// deleted record's hash.
#[tokio::test]
async fn a_deleted_tail_refilled_by_the_server_is_caught_by_the_seal_listing_it() {
    let (_dir, path, l, keys, a, _b) = cosealed().await;
    let c = Connection::open(&path).unwrap();
    c.execute(
        "DELETE FROM records WHERE chain = ?1 AND seq = 2",
        params![a],
    )
    .unwrap();
    assert!(
        !l.verify_all(&keys).await.unwrap().is_ok(),
        "caught before re-fill"
    );
    let txn = (0..)
        .map(|i| format!("txn-A{i}"))
        .find(|t| l.chain_for(Some(t), None) == a)
        .unwrap();
    let refill = crate::common::token("refill", "c", "x", Some(&txn));
    let r = l
        .append(
            refill,
            kairos_ledger::RecordMeta::at(crate::common::T0 + 99),
        )
        .await
        .unwrap();
    assert_eq!(r.seq, 2);
    assert_eq!(
        first_failure(&l, &keys).await,
        (a, 2, kairos_ledger::Problem::SealHashMismatch)
    );
}

/// A store that lets the "attacker" act between A's verification and the tail check.
#[derive(Debug)]
struct Racy {
    inner: SqliteStore,
    path: PathBuf,
    b: String,
    row: std::sync::Mutex<Option<String>>,
}

#[async_trait::async_trait]
impl Store for Racy {
    async fn head(
        &self,
        c: &str,
    ) -> Result<Option<kairos_ledger::ChainHead>, kairos_ledger::StoreError> {
        self.inner.head(c).await
    }
    async fn append(&self, r: &kairos_ledger::Record) -> Result<(), kairos_ledger::StoreError> {
        self.inner.append(r).await
    }
    async fn seals_for(
        &self,
        c: &str,
        f: u64,
        t: u64,
    ) -> Result<Vec<kairos_ledger::Seal>, kairos_ledger::StoreError> {
        if c == self.b
            && let Some(json) = self.row.lock().unwrap().take()
        {
            // any decodable row claiming A:2 will do: garbage hash, no seal
            Connection::open(&self.path).unwrap().execute(
                "INSERT INTO records (chain, seq, record_id, kind, time_ms, kid, prev_hash, hash, \
                 signature, content) VALUES ('shard-0000', 2, 'x', 'token', 0, 'k', 'p', 'junk', '', ?1)",
                params![json],
            ).unwrap();
        }
        self.inner.seals_for(c, f, t).await
    }
    async fn find_by_idempotency_key(
        &self,
        k: &str,
    ) -> Result<Option<kairos_ledger::Record>, kairos_ledger::StoreError> {
        self.inner.find_by_idempotency_key(k).await
    }
    async fn put_checkpoint(
        &self,
        cp: &kairos_ledger::Checkpoint,
    ) -> Result<(), kairos_ledger::StoreError> {
        self.inner.put_checkpoint(cp).await
    }
    async fn latest_checkpoints(
        &self,
    ) -> Result<Vec<kairos_ledger::Checkpoint>, kairos_ledger::StoreError> {
        self.inner.latest_checkpoints().await
    }
    async fn checkpoints(
        &self,
        c: &str,
    ) -> Result<Vec<kairos_ledger::Checkpoint>, kairos_ledger::StoreError> {
        self.inner.checkpoints(c).await
    }
    async fn query(
        &self,
        q: &kairos_ledger::Query,
        l: u32,
        c: Option<&str>,
    ) -> Result<kairos_ledger::Page, kairos_ledger::StoreError> {
        self.inner.query(q, l, c).await
    }
    async fn scan_chain(
        &self,
        c: &str,
        f: u64,
        l: u32,
    ) -> Result<Vec<kairos_ledger::Record>, kairos_ledger::StoreError> {
        self.inner.scan_chain(c, f, l).await
    }
    async fn chains(&self) -> Result<Vec<String>, kairos_ledger::StoreError> {
        self.inner.chains().await
    }
}

/// Attacker deletes A:2; while `kairos audit verify` runs, after A was verified, inserts an
/// unsealed junk row claiming A:2.
#[tokio::test]
async fn a_row_slipped_in_after_its_chain_was_verified_is_caught_by_the_seal_listing_it() {
    let (_dir, path, l, keys, a, b) = cosealed().await;
    let c = Connection::open(&path).unwrap();
    let json: String = c
        .query_row(
            "SELECT content FROM records WHERE chain = ?1 AND seq = 2",
            params![a],
            |r| r.get(0),
        )
        .unwrap();
    c.execute(
        "DELETE FROM records WHERE chain = ?1 AND seq = 2",
        params![a],
    )
    .unwrap();
    drop(l);
    let racy = Racy {
        inner: SqliteStore::open(&path).unwrap(),
        path: path.clone(),
        b,
        row: std::sync::Mutex::new(Some(json)),
    };
    let report = kairos_ledger::verify_store(&racy, &keys).await.unwrap();
    let f = report
        .first_failure()
        .expect("A:2 deleted and replaced, not reported");
    assert_eq!(
        (&f.chain, f.seq, &f.problem),
        (&a, 2, &kairos_ledger::Problem::SealHashMismatch)
    );
}

/// The unique indexes of `records` that cover `idem_key`: (name, partial).
fn idem_indexes(path: &std::path::Path) -> Vec<(String, bool)> {
    let c = Connection::open(path).unwrap();
    let mut s = c
        .prepare(
            "SELECT l.name, l.partial FROM pragma_index_list('records') AS l, \
             pragma_index_info(l.name) AS i WHERE l.\"unique\" = 1 AND i.name = 'idem_key'",
        )
        .unwrap();
    s.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? == 1)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test]
async fn idempotency_keys_stay_unique_in_new_and_version_1_files() {
    for old in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.sqlite");
        if old {
            // the `records` table as the first schema made it: a UNIQUE idem_key column
            Connection::open(&path)
                .unwrap()
                .execute_batch(
                    "CREATE TABLE records (chain TEXT NOT NULL, seq INTEGER NOT NULL, \
                     record_id TEXT NOT NULL, kind TEXT NOT NULL, time_ms INTEGER NOT NULL, \
                     request_id TEXT, transaction_id TEXT, client_id TEXT, serial TEXT, \
                     x5t TEXT, jti TEXT, idem_key TEXT UNIQUE, kid TEXT NOT NULL, \
                     prev_hash TEXT NOT NULL, hash TEXT NOT NULL, signature TEXT NOT NULL, \
                     content TEXT NOT NULL, UNIQUE (chain, seq)); PRAGMA user_version = 1;",
                )
                .unwrap();
        }
        // opened twice: the migration is idempotent
        for _ in 0..2 {
            drop(SqliteStore::open(&path).unwrap());
        }
        let indexes = idem_indexes(&path);
        // exactly one: the old column's, or (new files) one covering only records with a key
        assert_eq!(indexes.len(), 1, "{indexes:?}");
        assert_eq!(indexes[0].1, !old, "{indexes:?}");
        let key = kairos_ledger::LedgerKey::generate().unwrap();
        let keys = kairos_ledger::PublicKeySet::new().with(key.verifying_key());
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
        let l = kairos_ledger::Ledger::new(store, key, 4);
        let body = crate::common::token("j-idem", "c", "x", Some("txn-I"));
        let at = || kairos_ledger::RecordMeta::at(crate::common::T0).request_id("req-1");
        let first = l.append(body.clone(), at()).await.unwrap();
        let again = l.append(body, at()).await.unwrap();
        assert!(!first.duplicate && again.duplicate, "old file: {old}");
        assert_eq!((again.chain, again.seq), (first.chain, first.seq));
        assert!(l.verify_all(&keys).await.unwrap().is_ok());
    }
}
