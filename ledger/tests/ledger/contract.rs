//! The store contract suite: one set of async checks, run against every backend through
//! `contract_suite!`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use kairos_ledger::{
    AppendReceipt, Completeness, Ledger, LedgerKey, Page, Problem, PublicKeySet, Query, RecordMeta,
    StoreError, verify_records,
};

use crate::common::*;

/// Generate one `#[tokio::test]` per contract check for a backend. `$make` is an async fn
/// returning a fresh [`Harness`].
#[macro_export]
macro_rules! contract_suite {
    ($make:path) => {
        $crate::contract_suite!(@t $make;
            raw_append_conditions, ledger_append_and_receipts, queries_and_pagination,
            checkpoints_signed_and_incremental, concurrent_appends_no_gap_no_fork,
            concurrent_ledgers_share_store, idempotent_retries, offline_verification,
            tamper_changed_field, tamper_deleted_record, tamper_deleted_tail_after_checkpoint,
            tamper_reordered_records, tamper_replaced_signature, tamper_deleted_whole_chain);
    };
    (@t $make:path; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let h = $make().await;
                $crate::contract::$name(h).await;
            }
        )*
    };
}

fn ledger(h: &Harness, shards: u32) -> (Arc<Ledger>, PublicKeySet) {
    let key = LedgerKey::generate().unwrap();
    let keys = PublicKeySet::new().with(key.verifying_key());
    (Arc::new(Ledger::new(h.store.clone(), key, shards)), keys)
}

async fn all_pages(l: &Ledger, q: &Query, limit: u32) -> Vec<kairos_ledger::Record> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let Page {
            records,
            next_cursor,
        } = l.query(q, limit, cursor.as_deref()).await.unwrap();
        assert!(records.len() <= limit as usize);
        out.extend(records);
        match next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
    panic!("pagination did not terminate");
}

pub async fn raw_append_conditions(h: Harness) {
    let key = LedgerKey::generate().unwrap();
    let s = h.store.as_ref();
    let chain = "shard-0007";
    assert_eq!(s.head(chain).await.unwrap(), None);
    let r1 = signed(
        &key,
        chain,
        1,
        None,
        token("j1", "c1", "x1", Some("t1")),
        Some("req-1"),
    );
    s.append(&r1).await.unwrap();
    let head = s.head(chain).await.unwrap().unwrap();
    assert_eq!((head.seq, head.hash.as_str()), (1, r1.hash.as_str()));

    // (chain, seq) taken.
    let r1b = signed(
        &key,
        chain,
        1,
        None,
        token("j1b", "c1", "x1", Some("t1")),
        None,
    );
    assert!(matches!(
        s.append(&r1b).await,
        Err(StoreError::Conflict { seq: 1, .. })
    ));
    // Wrong prev.
    let bad_prev = signed(
        &key,
        chain,
        2,
        Some(&r1b),
        token("j2", "c1", "x1", None),
        None,
    );
    assert!(matches!(
        s.append(&bad_prev).await,
        Err(StoreError::Conflict { seq: 2, .. })
    ));
    // Gap.
    let r2 = signed(
        &key,
        chain,
        2,
        Some(&r1),
        token("j2", "c1", "x1", None),
        None,
    );
    let gap = signed(
        &key,
        chain,
        3,
        Some(&r2),
        token("j3", "c1", "x1", None),
        None,
    );
    assert!(matches!(
        s.append(&gap).await,
        Err(StoreError::Conflict { seq: 3, .. })
    ));
    s.append(&r2).await.unwrap();
    // Same idempotency key (kind + txn + request id) as r1, even at a valid position.
    let dup = signed(
        &key,
        chain,
        3,
        Some(&r2),
        token("j1", "c1", "x1", Some("t1")),
        Some("req-1"),
    );
    assert_eq!(dup.idempotency_key(), r1.idempotency_key());
    assert!(matches!(
        s.append(&dup).await,
        Err(StoreError::Duplicate { .. })
    ));
    let found = s
        .find_by_idempotency_key(&r1.idempotency_key().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, r1);
    assert_eq!(s.find_by_idempotency_key("nope").await.unwrap(), None);
    // A rejected append changed nothing.
    assert_eq!(s.head(chain).await.unwrap().unwrap().seq, 2);
    assert_eq!(
        s.scan_chain(chain, 1, 10).await.unwrap(),
        vec![r1.clone(), r2.clone()]
    );
    assert_eq!(s.scan_chain(chain, 2, 1).await.unwrap(), vec![r2.clone()]);
    assert_eq!(s.scan_chain(chain, 1, 1).await.unwrap(), vec![r1]);
    assert!(s.scan_chain(chain, 3, 10).await.unwrap().is_empty());
    assert!(s.scan_chain("other", 1, 10).await.unwrap().is_empty());
    assert!(matches!(
        s.scan_chain(chain, 1, 0).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(s.chains().await.unwrap(), vec![chain.to_owned()]);
}

pub async fn ledger_append_and_receipts(h: Harness) {
    let (l, keys) = ledger(&h, 16);
    let a = l
        .append(
            cert("txn-A", "0a:1B", "x5t-A"),
            RecordMeta::at(T0).client_id("client-A"),
        )
        .await
        .unwrap();
    let b = l
        .append(
            token("jti-A", "client-A", "x5t-A", Some("txn-A")),
            RecordMeta::at(T0 + 1),
        )
        .await
        .unwrap();
    assert_eq!(a.chain, b.chain, "same transaction, same chain");
    assert_eq!(a.chain, l.chain_for(Some("txn-A"), None));
    assert_eq!((a.seq, b.seq), (1, 2));
    assert!(!a.duplicate && !b.duplicate);
    let sys = l.append(auditor(), RecordMeta::at(T0 + 2)).await.unwrap();
    assert_eq!(sys.chain, "system");
    let recs = all_records(h.store.as_ref(), &a.chain).await;
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].content.client_id.as_deref(), Some("client-A"));
    assert_eq!(recs[1].content.prev, recs[0].hash);
    assert_eq!(recs[1].hash, b.hash);
    assert_eq!(recs[1].content.id, b.record_id);
    let report = l.verify_all(&keys).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!((report.chains, report.records), (2, 3));
    // Verification really needs the right key.
    let other = PublicKeySet::new().with(LedgerKey::generate().unwrap().verifying_key());
    let bad = l.verify_all(&other).await.unwrap();
    assert!(matches!(
        bad.first_failure().unwrap().problem,
        Problem::UnknownKey { .. }
    ));
}

pub async fn queries_and_pagination(h: Harness) {
    let (l, _) = ledger(&h, 4);
    let m = |t: i64| RecordMeta::at(T0 + t);
    l.append(cert("txn-Q", "0A:FF:01", "x5t-Q"), m(0).client_id("cq"))
        .await
        .unwrap();
    l.append(token("jti-Q1", "cq", "x5t-Q", Some("txn-Q")), m(10))
        .await
        .unwrap();
    l.append(token("jti-Q2", "cq", "x5t-Q", None), m(20))
        .await
        .unwrap();
    l.append(revoked("jti-Q1", "cq"), m(30)).await.unwrap();
    l.append(auth_failed(Some("cq"), Some("x5t-Q")), m(40))
        .await
        .unwrap();
    l.append(auth_failed(None, Some("x5t-other")), m(50))
        .await
        .unwrap();
    l.append(token("jti-Z", "cz", "x5t-Z", Some("txn-Z")), m(60))
        .await
        .unwrap();

    let kinds =
        |rs: &[kairos_ledger::Record]| rs.iter().map(|r| r.content.body.kind()).collect::<Vec<_>>();
    let by_txn = all_pages(&l, &Query::Transaction("txn-Q".into()), 10).await;
    assert_eq!(kinds(&by_txn), ["certificate_issued", "token_issued"]);

    let client = |since, until| Query::Client {
        client_id: "cq".into(),
        since_ms: T0 + since,
        until_ms: T0 + until,
    };
    assert_eq!(all_pages(&l, &client(0, 1000), 10).await.len(), 5);
    let window = all_pages(&l, &client(10, 30), 10).await;
    assert_eq!(
        window
            .iter()
            .map(|r| r.content.time - T0)
            .collect::<Vec<_>>(),
        [10, 20, 30],
        "inclusive bounds, ascending time"
    );
    assert!(all_pages(&l, &client(41, 1000), 10).await.is_empty());

    for serial in ["0aff01", "0A:FF:01", "0AFF01"] {
        let r = all_pages(&l, &Query::Serial(serial.into()), 10).await;
        assert_eq!(kinds(&r), ["certificate_issued"], "serial {serial}");
    }
    let thumb = all_pages(&l, &Query::Thumbprint("x5t-Q".into()), 10).await;
    assert_eq!(
        kinds(&thumb),
        [
            "certificate_issued",
            "token_issued",
            "token_issued",
            "client_auth_failed"
        ]
    );
    let jti = all_pages(&l, &Query::Jti("jti-Q1".into()), 10).await;
    assert_eq!(kinds(&jti), ["token_issued", "token_revoked"]);
    assert!(
        all_pages(&l, &Query::Jti("none".into()), 10)
            .await
            .is_empty()
    );

    // Pagination: many records, small pages, nothing lost or repeated, in order.
    for i in 0..23 {
        l.append(
            token(
                &format!("p{i}"),
                "cp",
                "x5t-P",
                Some(&format!("tp{}", i % 5)),
            ),
            m(100 + i),
        )
        .await
        .unwrap();
    }
    let q = Query::Client {
        client_id: "cp".into(),
        since_ms: 0,
        until_ms: i64::MAX,
    };
    for limit in [1, 4, 7, 100] {
        let got = all_pages(&l, &q, limit).await;
        let times: Vec<i64> = got.iter().map(|r| r.content.time - T0).collect();
        assert_eq!(times, (100..123).collect::<Vec<_>>(), "limit {limit}");
    }
    let first = l.query(&q, 5, None).await.unwrap();
    assert_eq!(first.records.len(), 5);
    assert!(first.next_cursor.is_some());
    assert!(matches!(
        l.query(&q, 5, Some("not a cursor!")).await,
        Err(kairos_ledger::LedgerError::Store(StoreError::Invalid(_)))
    ));
    assert!(l.query(&q, 0, None).await.is_err());
    assert!(l.query(&q, 100_000, None).await.is_err());
}

pub async fn checkpoints_signed_and_incremental(h: Harness) {
    let (l, keys) = ledger(&h, 8);
    for t in ["a", "b", "c"] {
        l.append(
            token(&format!("j{t}"), "c", "x", Some(t)),
            RecordMeta::at(T0),
        )
        .await
        .unwrap();
    }
    let chains = h.store.chains().await.unwrap();
    let cps = l.checkpoint(T0 + 1).await.unwrap();
    assert_eq!(cps.len(), chains.len());
    assert!(
        l.checkpoint(T0 + 2).await.unwrap().is_empty(),
        "unchanged heads: no checkpoint"
    );
    let r = l
        .append(token("jd", "c", "x", Some("a")), RecordMeta::at(T0))
        .await
        .unwrap();
    let cps2 = l.checkpoint(T0 + 3).await.unwrap();
    assert_eq!(cps2.len(), 1);
    assert_eq!(
        (cps2[0].content.chain.as_str(), cps2[0].content.seq),
        (r.chain.as_str(), r.seq)
    );
    assert_eq!(cps2[0].content.head_hash, r.hash);
    assert!(kairos_ledger::check_checkpoint_signature(&cps2[0], &keys));
    let latest = h.store.latest_checkpoints().await.unwrap();
    assert_eq!(latest.len(), chains.len());
    assert!(latest.contains(&cps2[0]));
    let of_chain = h.store.checkpoints(&r.chain).await.unwrap();
    assert_eq!(of_chain.len(), 2);
    assert!(of_chain[0].content.seq < of_chain[1].content.seq);
    // Writing the same checkpoint again is a no-op.
    h.store.put_checkpoint(&cps2[0]).await.unwrap();
    assert_eq!(h.store.checkpoints(&r.chain).await.unwrap().len(), 2);
    let report = l.verify_all(&keys).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.checkpoints, chains.len() as u64 + 1);

    // A forged checkpoint (content changed, signature kept) is reported.
    let mut forged = cps2[0].clone();
    forged.content.seq = r.seq + 5;
    h.store.put_checkpoint(&forged).await.unwrap();
    let report = l.verify_all(&keys).await.unwrap();
    let f = report
        .first_failure()
        .expect("forged checkpoint must be reported");
    assert_eq!(f.chain, r.chain);
    assert_eq!(
        f.problem,
        Problem::CheckpointBadSignature { seq: r.seq + 5 }
    );
}

/// Many tasks append to the same and to different chains at once.
pub async fn concurrent_appends_no_gap_no_fork(h: Harness) {
    let (l, keys) = ledger(&h, 4);
    let tasks = 24;
    let per_task = 15;
    let mut handles = Vec::new();
    for t in 0..tasks {
        let l = l.clone();
        handles.push(tokio::spawn(async move {
            let mut receipts = Vec::new();
            for i in 0..per_task {
                // Half the tasks hammer one transaction (one chain); the rest spread out.
                let txn = if t % 2 == 0 {
                    "hot".to_owned()
                } else {
                    format!("txn-{t}-{i}")
                };
                let body = token(&format!("j-{t}-{i}"), &format!("c{t}"), "x", Some(&txn));
                let meta = RecordMeta::at(T0 + i64::from(i)).request_id(format!("r-{t}-{i}"));
                receipts.push(l.append(body, meta).await.unwrap());
            }
            receipts
        }));
    }
    let mut receipts: Vec<AppendReceipt> = Vec::new();
    for h in handles {
        receipts.extend(h.await.unwrap());
    }
    let total = (tasks * per_task) as usize;
    assert_eq!(receipts.len(), total);
    assert!(receipts.iter().all(|r| !r.duplicate));
    let positions: HashSet<(String, u64)> =
        receipts.iter().map(|r| (r.chain.clone(), r.seq)).collect();
    assert_eq!(
        positions.len(),
        total,
        "two appends got the same (chain, seq)"
    );
    let mut seen_ids = HashSet::new();
    let mut count = 0;
    let by_hash: BTreeMap<&str, &AppendReceipt> =
        receipts.iter().map(|r| (r.hash.as_str(), r)).collect();
    for chain in h.store.chains().await.unwrap() {
        let recs = all_records(h.store.as_ref(), &chain).await;
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(r.content.seq, i as u64 + 1, "gap in {chain}");
            if i > 0 {
                assert_eq!(r.content.prev, recs[i - 1].hash, "fork in {chain}");
            }
            assert!(seen_ids.insert(r.content.id.clone()), "duplicate record");
            let rc = by_hash
                .get(r.hash.as_str())
                .expect("record without receipt");
            assert_eq!((rc.chain.as_str(), rc.seq), (chain.as_str(), r.content.seq));
        }
        count += recs.len();
    }
    assert_eq!(count, total, "records lost or duplicated");
    let hot = l.chain_for(Some("hot"), None);
    assert!(all_records(h.store.as_ref(), &hot).await.len() >= total / 2);
    let report = l.verify_all(&keys).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.records, total as u64);
}

/// Several ledger instances (think: several processes) on one store race on the same chains;
/// the conditional write must keep every chain linear.
pub async fn concurrent_ledgers_share_store(h: Harness) {
    let key = LedgerKey::generate().unwrap();
    let pem = key.to_pkcs8_pem();
    let keys = PublicKeySet::new().with(key.verifying_key());
    let ledgers: Vec<Arc<Ledger>> = (0..3)
        .map(|_| {
            Arc::new(Ledger::new(
                h.store.clone(),
                LedgerKey::from_pkcs8_pem(&pem).unwrap(),
                2,
            ))
        })
        .collect();
    let mut handles = Vec::new();
    for t in 0..12 {
        let l = ledgers[t % 3].clone();
        handles.push(tokio::spawn(async move {
            for i in 0..10 {
                let body = token(&format!("j{t}-{i}"), "c", "x", Some(&format!("t{}", i % 2)));
                l.append(body, RecordMeta::at(T0)).await.unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let mut count = 0;
    for chain in h.store.chains().await.unwrap() {
        let recs = all_records(h.store.as_ref(), &chain).await;
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(r.content.seq, i as u64 + 1);
            if i > 0 {
                assert_eq!(r.content.prev, recs[i - 1].hash);
            }
        }
        count += recs.len();
    }
    assert_eq!(count, 120);
    assert!(ledgers[0].verify_all(&keys).await.unwrap().is_ok());
}

pub async fn idempotent_retries(h: Harness) {
    let (l, keys) = ledger(&h, 16);
    let body = token("jti-I", "client-I", "x5t-I", Some("txn-I"));
    let meta = RecordMeta::at(T0).request_id("req-I");
    let first = l.append(body.clone(), meta.clone()).await.unwrap();
    let again = l
        .append(body.clone(), RecordMeta::at(T0 + 99).request_id("req-I"))
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(
        (
            again.chain.as_str(),
            again.seq,
            again.hash.as_str(),
            again.record_id.as_str()
        ),
        (
            first.chain.as_str(),
            first.seq,
            first.hash.as_str(),
            first.record_id.as_str()
        )
    );
    let rec = l
        .get_record(&again.chain, again.seq)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.hash, first.hash);
    assert_eq!(l.get_record(&again.chain, 999).await.unwrap(), None);
    // Concurrent retries of one request: exactly one record.
    let mut handles = Vec::new();
    for _ in 0..8 {
        let l = l.clone();
        let body = token("jti-J", "client-I", "x5t-I", Some("txn-I"));
        handles.push(tokio::spawn(async move {
            l.append(body, RecordMeta::at(T0).request_id("req-J"))
                .await
                .unwrap()
        }));
    }
    let mut rs = Vec::new();
    for h in handles {
        rs.push(h.await.unwrap());
    }
    assert_eq!(rs.iter().filter(|r| !r.duplicate).count(), 1);
    assert!(
        rs.iter()
            .all(|r| r.seq == rs[0].seq && r.hash == rs[0].hash)
    );
    // Same request id, other kind: a different record.
    let rev = l
        .append(
            revoked("jti-I", "client-I"),
            meta.clone().transaction_id("txn-I"),
        )
        .await
        .unwrap();
    assert!(!rev.duplicate);
    let recs = all_pages(&l, &Query::Transaction("txn-I".into()), 50).await;
    assert_eq!(recs.len(), 3, "{recs:?}");
    // A token is revoked once, whatever the request id: the second revocation is the first.
    let rev_again = l
        .append(
            revoked("jti-I", "client-I"),
            RecordMeta::at(T0 + 5).request_id("req-other"),
        )
        .await
        .unwrap();
    assert!(rev_again.duplicate);
    assert_eq!((rev_again.seq, &rev_again.hash), (rev.seq, &rev.hash));
    // ... and "is it revoked?" is one read by key (a consistent GetItem on DynamoDB)
    let found = l
        .store()
        .find_by_idempotency_key(&kairos_ledger::revocation_key("jti-I"))
        .await
        .unwrap()
        .expect("the revocation, by its key");
    assert_eq!(found.hash, rev.hash);
    assert_eq!(
        l.store()
            .find_by_idempotency_key(&kairos_ledger::revocation_key("jti-other"))
            .await
            .unwrap(),
        None
    );
    // Without a request id there is no deduplication.
    let x = l.append(body.clone(), RecordMeta::at(T0)).await.unwrap();
    let y = l.append(body, RecordMeta::at(T0)).await.unwrap();
    assert_ne!(x.seq, y.seq);
    assert!(l.verify_all(&keys).await.unwrap().is_ok());
}

pub async fn offline_verification(h: Harness) {
    let (l, keys) = ledger(&h, 2);
    for i in 0..6 {
        let txn = if i % 2 == 0 { "txn-E" } else { "txn-F" };
        l.append(
            token(&format!("j{i}"), "c", "x", Some(txn)),
            RecordMeta::at(T0 + i),
        )
        .await
        .unwrap();
    }
    let cps = l.checkpoint(T0 + 10).await.unwrap();
    // Evidence bundle for one transaction: an excerpt of its chain.
    let excerpt = l.by_transaction("txn-E", 100, None).await.unwrap().records;
    assert_eq!(excerpt.len(), 3);
    // (with the seals of a sealing store; none from one that signs every record)
    let seals = all_seals(h.store.as_ref()).await;
    assert_eq!(seals.is_empty(), !l.is_sealed());
    let report = verify_records(&excerpt, &cps, &seals, &keys, Completeness::Excerpt);
    assert!(report.is_ok(), "{report:?}");
    // Through JSON, as an auditor receives it.
    let json = serde_json::to_string(&(&excerpt, &cps, &seals)).unwrap();
    #[allow(clippy::type_complexity)]
    let (excerpt2, cps2, seals2): (
        Vec<kairos_ledger::Record>,
        Vec<kairos_ledger::Checkpoint>,
        Vec<kairos_ledger::Seal>,
    ) = serde_json::from_str(&json).unwrap();
    assert!(verify_records(&excerpt2, &cps2, &seals2, &keys, Completeness::Excerpt).is_ok());
    let mut altered = excerpt.clone();
    if let kairos_ledger::RecordBody::TokenIssued { scope, .. } = &mut altered[1].content.body {
        *scope = "payments admin".into();
    }
    let bad = verify_records(&altered, &cps, &seals, &keys, Completeness::Excerpt);
    let f = bad.first_failure().unwrap();
    assert_eq!(
        (f.problem.clone(), f.record_id.as_deref()),
        (Problem::HashMismatch, Some(altered[1].content.id.as_str()))
    );
    // Full chains export.
    let mut full = Vec::new();
    for chain in h.store.chains().await.unwrap() {
        full.extend(all_records(h.store.as_ref(), &chain).await);
    }
    assert!(verify_records(&full, &cps, &seals, &keys, Completeness::FullChains).is_ok());
    let mut missing = full.clone();
    missing.retain(|r| r.content.seq != 2);
    let bad = verify_records(&missing, &[], &seals, &keys, Completeness::FullChains);
    assert!(matches!(
        bad.first_failure().unwrap().problem,
        Problem::MissingRecords {
            expected: 2,
            found: 3
        }
    ));
    let bad = verify_records(
        &full,
        &cps,
        &seals,
        &PublicKeySet::new(),
        Completeness::FullChains,
    );
    assert!(!bad.is_ok());
}

/// A ledger with three chains of five records each (checkpointed), and the chain to attack.
async fn tamper_setup(
    h: &Harness,
) -> (
    Arc<Ledger>,
    PublicKeySet,
    String,
    Vec<kairos_ledger::Record>,
) {
    let (l, keys) = ledger(h, 16);
    for t in ["txn-1", "txn-2", "txn-3"] {
        for i in 0..5 {
            l.append(
                token(&format!("{t}-{i}"), "client-T", "x5t-T", Some(t)),
                RecordMeta::at(T0 + i),
            )
            .await
            .unwrap();
        }
    }
    l.checkpoint(T0 + 100).await.unwrap();
    let report = l.verify_all(&keys).await.unwrap();
    assert!(report.is_ok(), "clean ledger must verify: {report:?}");
    assert_eq!(report.records, 15);
    let chain = l.chain_for(Some("txn-2"), None);
    let recs = all_records(h.store.as_ref(), &chain).await;
    assert_eq!(recs.len(), 5);
    (l, keys, chain, recs)
}

async fn assert_first_failure(
    l: &Ledger,
    keys: &PublicKeySet,
    chain: &str,
    seq: u64,
    record_id: Option<&str>,
    problem: Problem,
) {
    let report = l.verify_all(keys).await.unwrap();
    assert!(!report.is_ok(), "tampering not detected");
    assert_eq!(
        report.failures.len(),
        1,
        "only the attacked chain fails: {report:?}"
    );
    let f = report.first_failure().unwrap();
    assert_eq!(f.chain, chain, "{f}");
    assert_eq!(f.seq, seq, "{f}");
    assert_eq!(f.record_id.as_deref(), record_id, "{f}");
    assert_eq!(f.problem, problem, "{f}");
    assert!(f.to_string().contains(chain));
}

pub async fn tamper_changed_field(h: Harness) {
    let (l, keys, chain, recs) = tamper_setup(&h).await;
    h.tamper
        .edit_content(&chain, 3, "\"payments\"", "\"payments admin\"")
        .await;
    assert_first_failure(
        &l,
        &keys,
        &chain,
        3,
        Some(&recs[2].content.id),
        Problem::HashMismatch,
    )
    .await;
}

pub async fn tamper_deleted_record(h: Harness) {
    let (l, keys, chain, recs) = tamper_setup(&h).await;
    h.tamper.delete(&chain, 3).await;
    assert_first_failure(
        &l,
        &keys,
        &chain,
        3,
        Some(&recs[3].content.id),
        Problem::MissingRecords {
            expected: 3,
            found: 4,
        },
    )
    .await;
}

pub async fn tamper_deleted_tail_after_checkpoint(h: Harness) {
    let (l, keys, chain, _) = tamper_setup(&h).await;
    h.tamper.delete(&chain, 5).await;
    assert_first_failure(
        &l,
        &keys,
        &chain,
        5,
        None,
        Problem::CheckpointedRecordMissing { seq: 5 },
    )
    .await;
}

pub async fn tamper_reordered_records(h: Harness) {
    let (l, keys, chain, recs) = tamper_setup(&h).await;
    h.tamper.swap(&chain, 2, 4).await;
    assert_first_failure(
        &l,
        &keys,
        &chain,
        2,
        Some(&recs[3].content.id),
        Problem::SequenceMismatch {
            expected: 2,
            found: 4,
        },
    )
    .await;
}

pub async fn tamper_replaced_signature(h: Harness) {
    let (l, keys, chain, recs) = tamper_setup(&h).await;
    // another record's signature; a sealed record has none, so a valid one by another key
    let other = if recs[1].signature.is_empty() {
        let bytes = recs[2].content.canonical_bytes().unwrap();
        LedgerKey::generate().unwrap().sign(&bytes).unwrap()
    } else {
        recs[1].signature.clone()
    };
    h.tamper.set_signature(&chain, 3, &other).await;
    assert_first_failure(
        &l,
        &keys,
        &chain,
        3,
        Some(&recs[2].content.id),
        Problem::BadSignature,
    )
    .await;
}

pub async fn tamper_deleted_whole_chain(h: Harness) {
    let (l, keys, chain, _) = tamper_setup(&h).await;
    h.tamper.delete_chain(&chain).await;
    // (SQLite still lists the chain through its checkpoints; DynamoDB no longer does.)
    assert_first_failure(
        &l,
        &keys,
        &chain,
        5,
        None,
        Problem::CheckpointedRecordMissing { seq: 5 },
    )
    .await;
}
