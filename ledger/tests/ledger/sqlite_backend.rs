//! The contract suite and tamper tests on the embedded SQLite store, plus SQLite specifics.

use std::path::PathBuf;
use std::sync::Arc;

use kairos_ledger::{SqliteStore, Store};
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
