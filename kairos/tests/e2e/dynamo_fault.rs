//! DynamoDB Local stopped in the middle of a load of `POST /token` requests: every request
//! either got a token whose record exists, or a 503 `temporarily_unavailable`; after a restart
//! on the same files the chains verify.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use kairos_ledger::{DynamoStore, Ledger, LedgerKey, PublicKeySet, Query, Store, create_table};
use serde_json::json;

use crate::dynamo_local::DynamoLocal;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamodb_stopped_under_token_load_fails_closed() {
    let db = tempfile::tempdir().unwrap();
    let mut local = DynamoLocal::start(Some(db.path()));
    local.wait_ready().await;
    let table = "kairos-fault";
    let dcfg = local.fault_config(table);
    let client = dcfg.client().await;
    assert!(create_table(&client, table).await.unwrap());
    let key = LedgerKey::generate().unwrap();
    let pem = key.to_pkcs8_pem();
    let keys = PublicKeySet::new().with(key.verifying_key());
    let ledger = Arc::new(Ledger::new(
        Arc::new(DynamoStore::new(client, table)),
        key,
        4,
    ));

    let dir = tempfile::tempdir().unwrap();
    let audit = Arc::new(kairos::ledger_audit::LedgerAudit::new(ledger.clone()));
    let server = start_with_audit(dir.path(), audit, vec![]).await;
    let ca_pem = server.data.ca.certificate_pem().to_owned();
    let svid = issue_svid(
        &server.data.ca,
        "/payments-app",
        Duration::from_secs(86_400).try_into().unwrap(),
        time::OffsetDateTime::now_utc(),
    );
    let txn = client_of(&server, &svid)
        .transaction_certificate(&json!({"transaction_id": "txn-fault"}))
        .await
        .unwrap();
    let client = kairos::client::MtlsClient::new(
        &ca_pem,
        Some((&txn.certificate, &txn.private_key)),
        server.addr,
    )
    .unwrap();

    let ok = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (c, ok, stop) = (client.clone(), ok.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = c.connect().await.unwrap();
            let mut jtis = Vec::new();
            let mut unavailable = 0;
            for _ in 0..5000 {
                let body = kairos::client::form_body(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", "payments-app"),
                ]);
                let r = conn
                    .send(
                        "POST",
                        "/token",
                        &[("content-type", "application/x-www-form-urlencoded")],
                        body,
                    )
                    .await
                    .unwrap();
                match r.status.as_u16() {
                    200 => {
                        let at = r.json()["access_token"].as_str().unwrap().to_owned();
                        jtis.push(claims(&at)["jti"].as_str().unwrap().to_owned());
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                    503 => {
                        assert_oauth_error(&r, 503, "temporarily_unavailable");
                        assert!(r.json().get("access_token").is_none());
                        unavailable += 1;
                    }
                    s => panic!("only 200 or 503 are acceptable, got {s}: {}", r.json()),
                }
                if unavailable >= 3 || (stop.load(Ordering::SeqCst) && unavailable > 0) {
                    break;
                }
            }
            (jtis, unavailable)
        }));
    }
    let t0 = std::time::Instant::now();
    while ok.load(Ordering::SeqCst) < 60 {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "tokens too slow before the fault"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The outage: DynamoDB stops answering mid-load (SIGSTOP); once every client has seen it,
    // it is stopped for good (SIGCONT, a moment to settle, SIGTERM; see ledger/README.md on
    // DynamoDB Local losing acknowledged writes when stopped while busy).
    local.pause();
    stop.store(true, Ordering::SeqCst);
    let mut jtis = Vec::new();
    let mut unavailable = 0;
    for t in tasks {
        let (j, u) = t.await.unwrap();
        jtis.extend(j);
        unavailable += u;
    }
    local.stop();
    assert!(unavailable > 0, "the outage was not observed");
    assert!(jtis.len() >= 60);
    server.stop().await;

    let mut local2 = DynamoLocal::start(Some(db.path()));
    local2.wait_ready().await;
    let store: Arc<dyn Store> = Arc::new(DynamoStore::connect(&local2.config(table)).await);
    for jti in &jtis {
        let page = store
            .query(&Query::Jti(jti.clone()), 10, None)
            .await
            .unwrap();
        assert!(
            page.records
                .iter()
                .any(|r| r.content.body.kind() == "token_issued"),
            "token {jti} was returned but has no ledger record"
        );
    }
    let ledger2 = Ledger::new(store, LedgerKey::from_pkcs8_pem(&pem).unwrap(), 4);
    let report = ledger2.verify_all(&keys).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert!(report.records >= jtis.len() as u64);

    // the auditor's CLI against DynamoDB, with only the public key
    let audit_dir = tempfile::tempdir().unwrap();
    std::fs::write(
        audit_dir.path().join("ledger-public.pem"),
        ledger2.key().public_spki_pem().unwrap(),
    )
    .unwrap();
    let d = audit_dir.path().to_str().unwrap().to_owned();
    let endpoint = local2.endpoint.clone();
    let common = [
        "audit",
        "--data-dir",
        &d,
        "--store",
        "dynamodb",
        "--table",
        table,
        "--endpoint",
        &endpoint,
        "--region",
        "us-east-1",
    ];
    let cli = |extra: &[&str]| {
        let mut args: Vec<&str> = common.to_vec();
        args.extend_from_slice(extra);
        let out = run(env!("CARGO_BIN_EXE_kairos"), &args, None);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    // (blocking is fine here: nothing else runs on this runtime any more)
    let (code, out) = cli(&["verify"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("OK:"), "{out}");
    let (code, out) = cli(&["query", "--jti", &jtis[0]]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("token_issued") && out.contains(&jtis[0]),
        "{out}"
    );
}
