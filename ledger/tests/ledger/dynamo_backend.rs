//! The contract suite and tamper tests on a real DynamoDB Local, plus a fault test.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use kairos_ledger::{
    DynamoStore, Ledger, LedgerError, LedgerKey, PublicKeySet, RecordMeta, Store, StoreError,
    create_table,
};

use crate::common::{Harness, T0, Tamper, token};
use crate::dynamo_local::{DynamoLocal, shared, unique_table};

struct DynamoTamper {
    client: Client,
    table: String,
}

type Item = HashMap<String, AttributeValue>;

impl DynamoTamper {
    async fn get(&self, chain: &str, seq: u64) -> Item {
        self.client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(format!("C#{chain}")))
            .key("sk", AttributeValue::S(format!("R#{seq:020}")))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item()
            .cloned()
            .expect("tamper target not found")
    }

    async fn put(&self, item: Item) {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .unwrap();
    }
}

#[async_trait::async_trait]
impl Tamper for DynamoTamper {
    async fn edit_content(&self, chain: &str, seq: u64, from: &str, to: &str) {
        let mut item = self.get(chain, seq).await;
        let content = item["content"].as_s().unwrap().clone();
        assert!(content.contains(from), "tamper target not found");
        item.insert(
            "content".into(),
            AttributeValue::S(content.replacen(from, to, 1)),
        );
        self.put(item).await;
    }

    async fn delete(&self, chain: &str, seq: u64) {
        self.get(chain, seq).await;
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(format!("C#{chain}")))
            .key("sk", AttributeValue::S(format!("R#{seq:020}")))
            .send()
            .await
            .unwrap();
    }

    async fn delete_chain(&self, chain: &str) {
        let items = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(format!("C#{chain}")))
            .send()
            .await
            .unwrap();
        let mut keys: Vec<(String, String)> = items
            .items()
            .iter()
            .map(|i| {
                (
                    i["pk"].as_s().unwrap().clone(),
                    i["sk"].as_s().unwrap().clone(),
                )
            })
            .filter(|(_, sk)| !sk.starts_with("K#"))
            .collect();
        assert!(keys.len() > 1);
        keys.push(("CHAINS".to_owned(), chain.to_owned()));
        for (pk, sk) in keys {
            self.client
                .delete_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(pk))
                .key("sk", AttributeValue::S(sk))
                .send()
                .await
                .unwrap();
        }
    }

    async fn swap(&self, chain: &str, a: u64, b: u64) {
        let mut ia = self.get(chain, a).await;
        let mut ib = self.get(chain, b).await;
        let (ka, kb) = (ia["sk"].clone(), ib["sk"].clone());
        ia.insert("sk".into(), kb);
        ib.insert("sk".into(), ka);
        self.put(ia).await;
        self.put(ib).await;
    }

    async fn set_signature(&self, chain: &str, seq: u64, signature: &str) {
        self.get(chain, seq).await;
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(format!("C#{chain}")))
            .key("sk", AttributeValue::S(format!("R#{seq:020}")))
            .update_expression("SET sig = :s")
            .expression_attribute_values(":s", AttributeValue::S(signature.to_owned()))
            .send()
            .await
            .unwrap();
    }
}

pub async fn harness() -> Harness {
    let local = shared().await;
    let table = unique_table("ledger");
    let client = local.config(&table).client().await;
    assert!(create_table(&client, &table).await.unwrap());
    Harness {
        store: Arc::new(DynamoStore::new(client.clone(), table.clone())),
        tamper: Box::new(DynamoTamper { client, table }),
        _guard: Box::new(()),
    }
}

crate::contract_suite!(harness);

#[tokio::test]
async fn table_design_ttl_and_idempotent_create() {
    let local = shared().await;
    let table = unique_table("design");
    let client = local.config(&table).client().await;
    assert!(create_table(&client, &table).await.unwrap());
    assert!(
        !create_table(&client, &table).await.unwrap(),
        "second create is a no-op"
    );
    let d = client
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let t = d.table().unwrap();
    let mut gsis: Vec<&str> = t
        .global_secondary_indexes()
        .iter()
        .filter_map(|g| g.index_name())
        .collect();
    gsis.sort();
    assert_eq!(
        gsis,
        ["by_client", "by_jti", "by_serial", "by_txn", "by_x5t"]
    );
    let ttl = client
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let ttl = ttl.time_to_live_description().unwrap();
    assert_eq!(ttl.attribute_name(), Some(kairos_ledger::TTL_ATTRIBUTE));
    // No ledger item ever carries the TTL attribute.
    let store = DynamoStore::new(client.clone(), table.clone());
    let l = Ledger::new(Arc::new(store), LedgerKey::generate().unwrap(), 4);
    for i in 0..4 {
        l.append(
            token(&format!("j{i}"), "c", "x", Some("t")),
            RecordMeta::at(T0).request_id(format!("r{i}")),
        )
        .await
        .unwrap();
    }
    l.checkpoint(T0).await.unwrap();
    let items = client.scan().table_name(&table).send().await.unwrap();
    // 4 records, 1 head, 4 idempotency keys, 1 chain registry entry, 1 checkpoint.
    assert_eq!(items.items().len(), 11);
    for item in items.items() {
        assert!(!item.contains_key(kairos_ledger::TTL_ATTRIBUTE), "{item:?}");
    }
}

#[tokio::test]
async fn unreachable_server_is_unavailable() {
    // Nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = kairos_ledger::DynamoConfig::local("t", format!("http://127.0.0.1:{port}"));
    cfg.max_attempts = 1;
    cfg.connect_timeout = Duration::from_millis(300);
    let store: Arc<dyn Store> = Arc::new(DynamoStore::connect(&cfg).await);
    let l = Ledger::new(store, LedgerKey::generate().unwrap(), 4);
    let err = l
        .append(token("j", "c", "x", None), RecordMeta::at(T0))
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(matches!(
        err,
        LedgerError::Store(StoreError::Unavailable { .. })
    ));
}

/// Stop DynamoDB Local in the middle of a stream of appends (freeze, then SIGTERM): every
/// append either returned Ok (and its record is there after a restart) or Unavailable; the
/// chains verify afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_killed_mid_stream() {
    let dir = tempfile::tempdir().unwrap();
    let mut local = DynamoLocal::start(Some(dir.path()));
    local.wait_ready().await;
    let table = "fault";
    let cfg = local.fault_config(table);
    let client = cfg.client().await;
    assert!(create_table(&client, table).await.unwrap());
    let key = LedgerKey::generate().unwrap();
    let pem = key.to_pkcs8_pem();
    let keys = PublicKeySet::new().with(key.verifying_key());
    let ledger = Arc::new(Ledger::new(
        Arc::new(DynamoStore::new(client, table)),
        key,
        4,
    ));

    let ok_count = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for t in 0..6 {
        let (l, ok_count, stop) = (ledger.clone(), ok_count.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut results = Vec::new();
            let mut errors = 0;
            for i in 0..2000 {
                let body = token(
                    &format!("j{t}-{i}"),
                    "c",
                    "x",
                    Some(&format!("txn-{t}-{}", i % 3)),
                );
                let r = l
                    .append(body, RecordMeta::at(T0 + i).request_id(format!("r{t}-{i}")))
                    .await;
                if r.is_ok() {
                    ok_count.fetch_add(1, Ordering::SeqCst);
                } else {
                    errors += 1;
                }
                results.push(r);
                if errors >= 3 || (stop.load(Ordering::SeqCst) && errors > 0) {
                    break;
                }
            }
            results
        }));
    }
    let t0 = std::time::Instant::now();
    while ok_count.load(Ordering::SeqCst) < 120 {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "appends too slow before the fault"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The outage: the server stops answering mid-stream (SIGSTOP). Once every writer has seen
    // it, the server is stopped for good (SIGCONT, a moment to settle, SIGTERM): DynamoDB Local
    // with -dbPath was observed to lose writes it had already acknowledged when stopped while
    // busy, with SIGKILL often and with SIGTERM now and then (an emulator property, see
    // ledger/README.md); what is tested is Kairos, not the emulator.
    local.pause();
    stop.store(true, Ordering::SeqCst);
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    local.stop();
    let mut oks = Vec::new();
    let mut unavailable = 0;
    for rs in results {
        for r in rs {
            match r {
                Ok(receipt) => oks.push(receipt),
                Err(e) => {
                    assert!(
                        matches!(e, LedgerError::Store(StoreError::Unavailable { .. })),
                        "only Unavailable is acceptable, got {e:?}"
                    );
                    unavailable += 1;
                }
            }
        }
    }
    assert!(unavailable > 0, "the fault was not observed");
    assert!(oks.len() >= 120);

    // Restart on the same files; every acknowledged record is there and everything verifies.
    let mut local2 = DynamoLocal::start(Some(dir.path()));
    local2.wait_ready().await;
    let store: Arc<dyn Store> = Arc::new(DynamoStore::connect(&local2.config(table)).await);
    for r in &oks {
        let got = store.scan_chain(&r.chain, r.seq, 1).await.unwrap();
        assert_eq!(
            got.len(),
            1,
            "acknowledged record {}/{} lost",
            r.chain,
            r.seq
        );
        assert_eq!(
            got[0].hash, r.hash,
            "acknowledged record {}/{} differs",
            r.chain, r.seq
        );
    }
    let ledger2 = Ledger::new(store, LedgerKey::from_pkcs8_pem(&pem).unwrap(), 4);
    let report = ledger2.verify_all(&keys).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert!(report.records >= oks.len() as u64);
    // And the ledger carries on where it stopped.
    let more = ledger2
        .append(
            token("after", "c", "x", Some("txn-0-0")),
            RecordMeta::at(T0),
        )
        .await
        .unwrap();
    assert!(more.seq > 1);
    assert!(ledger2.verify_all(&keys).await.unwrap().is_ok());
    drop(local2);
}
