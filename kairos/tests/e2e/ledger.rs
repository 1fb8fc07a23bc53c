//! The real embedded ledger behind the server, and the auditor's CLI against it.

use std::sync::Arc;

use serde_json::json;

use crate::support::*;

fn kairos_cli(args: &[&str]) -> (i32, String) {
    let out = run(env!("CARGO_BIN_EXE_kairos"), args, None);
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn every_issuance_is_on_the_ledger_and_tampering_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = kairos::ledger_audit::open_embedded(dir.path(), 4).unwrap();
    let audit = Arc::new(kairos::ledger_audit::LedgerAudit::new(ledger.clone()));
    let jwk = serde_json::to_value(ledger.key().public_jwk()).unwrap();
    let server = start_with_audit(dir.path(), audit, vec![jwk]).await;
    let ca_pem = server.data.ca.certificate_pem().to_owned();
    let svid = issue_svid(
        &server.data.ca,
        "/payments-app",
        time::Duration::hours(24),
        time::OffsetDateTime::now_utc(),
    );
    let c = client_of(&server, &svid);
    let r = c
        .send(
            "POST",
            "/certificates",
            &[
                ("content-type", "application/json"),
                ("x-request-id", "req-1"),
            ],
            json!({"transaction_id": "txn-ledger-1", "context": {"geo": "GB"}}).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.json());
    let issued = r.json();
    // the same request id again: refused, nothing new issued
    let again = c
        .send(
            "POST",
            "/certificates",
            &[
                ("content-type", "application/json"),
                ("x-request-id", "req-1"),
            ],
            json!({"transaction_id": "txn-ledger-1"}).to_string(),
        )
        .await
        .unwrap();
    assert_oauth_error(&again, 400, "invalid_request");
    let txn = Identity {
        cert_pem: issued["certificate"].as_str().unwrap().to_owned(),
        key_pem: issued["private_key"].as_str().unwrap().to_owned(),
    };
    let t =
        kairos::client::MtlsClient::new(&ca_pem, Some((&txn.cert_pem, &txn.key_pem)), server.addr)
            .unwrap()
            .post_form(
                "/token",
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", "payments-app"),
                ],
            )
            .await
            .unwrap();
    assert_eq!(t.status, 200);
    let jti = claims(t.json()["access_token"].as_str().unwrap())["jti"]
        .as_str()
        .unwrap()
        .to_owned();
    // the ledger key is published apart from the token keys
    let lj = c.send("GET", "/ledger/jwks", &[], "").await.unwrap().json();
    assert_eq!(lj["keys"][0]["kid"], ledger.key().kid());
    let tj = c.send("GET", "/jwks", &[], "").await.unwrap().json();
    assert_ne!(tj["keys"][0]["kid"], ledger.key().kid());
    ledger
        .checkpoint(time::OffsetDateTime::now_utc().unix_timestamp() * 1000)
        .await
        .unwrap();
    server.stop().await;

    let d = dir.path().to_str().unwrap().to_owned();
    let (code, out) = kairos_cli(&[
        "audit",
        "--data-dir",
        &d,
        "show",
        "--transaction",
        "txn-ledger-1",
        "--json",
    ]);
    assert_eq!(code, 0, "{out}");
    let records: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let kinds: Vec<_> = records
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["content"]["body"]["kind"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert!(
        kinds.contains(&"certificate_issued".to_owned())
            && kinds.contains(&"token_issued".to_owned()),
        "{kinds:?}\n{out}"
    );
    let (code, out) = kairos_cli(&["audit", "--data-dir", &d, "query", "--jti", &jti]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&jti), "{out}");
    let (code, out) = kairos_cli(&[
        "audit",
        "--data-dir",
        &d,
        "query",
        "--serial",
        issued["serial"].as_str().unwrap(),
    ]);
    assert!(code == 0 && out.contains("certificate_issued"), "{out}");
    let (code, out) = kairos_cli(&["audit", "--data-dir", &d, "verify"]);
    assert_eq!(code, 0, "{out}");
    // base64url ids may begin with '-': they are values, not flags
    let (code, out) = kairos_cli(&["audit", "--data-dir", &d, "query", "--jti", "-w3xYz"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 record(s)"), "{out}");
    let bundle = dir.path().join("evidence.json");
    let (code, out) = kairos_cli(&[
        "audit",
        "--data-dir",
        &d,
        "export",
        "--transaction",
        "txn-ledger-1",
        "--out-file",
        bundle.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    let b: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&bundle).unwrap()).unwrap();
    assert_eq!(b["verification"]["ok"], true);
    let sealed = b["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["content"]["v"] == 2)
        .count();
    assert!(sealed >= 2, "the embedded ledger seals its records: {b}");
    // An auditor without Kairos: Python's hashlib and cryptography recompute every record's
    // hash from its canonical bytes and check each is listed in a seal whose ES256 signature
    // verifies under the bundle's ledger key.
    let script = format!(
        r#"
import json, hashlib, base64
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
b = json.load(open("{bundle}"))
def b64(s): return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
def canon(o): return json.dumps(o, separators=(",", ":"), ensure_ascii=False).encode()
keys = {{}}
for k in b["ledger_public_keys"]["keys"]:
    n = lambda c: int.from_bytes(b64(k[c]), "big")
    keys[k["kid"]] = ec.EllipticCurvePublicNumbers(n("x"), n("y"), ec.SECP256R1()).public_key()
sealed = set()
for s in b["seals"]:
    sig = b64(s["signature"])
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    keys[s["content"]["kid"]].verify(der, b"KAIROS-LEDGER-SEAL/1\n" + canon(s["content"]), ec.ECDSA(hashes.SHA256()))
    sealed |= {{(e["chain"], e["seq"], e["hash"]) for e in s["content"]["records"]}}
for r in b["records"]:
    c = r["content"]
    h = hashlib.sha256(b"KAIROS-LEDGER-RECORD/1\n" + canon(c)).hexdigest()
    assert h == r["hash"], (h, r["hash"])
    assert c["v"] == 2 and r["signature"] == "" and (c["chain"], c["seq"], h) in sealed, r
print("seals-ok", len(b["records"]), len(b["seals"]))
"#,
        bundle = bundle.display()
    );
    python_ok(
        &script,
        "seals-ok",
        "independent verification of the bundle failed",
    );

    // tamper with the token record's content in the SQLite file (with Python's sqlite3, an
    // independent reader): verify must fail and name the record
    let db = dir.path().join("ledger.sqlite");
    let script = format!(
        "import sqlite3\nc=sqlite3.connect('{}')\nr=c.execute(\"select chain, seq, content from records where kind='token_issued'\").fetchone()\nc.execute('update records set content=? where chain=? and seq=?', (r[2].replace('client_credentials','authorization_code'), r[0], r[1]))\nc.commit()\nprint(r[0], r[1])",
        db.display()
    );
    let out = run("python3", &["-c", &script], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let named = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let (chain, seq) = named.split_once(' ').unwrap();
    let (code, out) = kairos_cli(&["audit", "--data-dir", &d, "verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAILED") && out.contains(chain) && out.contains(seq),
        "{out}"
    );
}

/// RFC 7009 revocation is a ledger fact, not process memory: a second instance on the same
/// ledger sees it at once, and so does a restarted one.
#[tokio::test]
async fn revocation_is_seen_by_other_instances_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = kairos::ledger_audit::open_embedded(dir.path(), 4).unwrap();
    let audit = || Arc::new(kairos::ledger_audit::LedgerAudit::new(ledger.clone()));
    // two instances behind one name, as behind a load balancer
    let cfg = r#"issuer = "https://kairos.test""#;
    let a = start_configured(dir.path(), cfg, audit(), vec![]).await;
    let b = start_configured(dir.path(), cfg, audit(), vec![]).await;
    let svid = issue_svid(
        &a.data.ca,
        "/payments-app",
        time::Duration::hours(24),
        time::OffsetDateTime::now_utc(),
    );
    let r = client_of(&a, &svid)
        .send(
            "POST",
            "/certificates",
            &[("content-type", "application/json")],
            json!({"transaction_id": "txn-revoke"}).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.json());
    let txn = Identity {
        cert_pem: r.json()["certificate"].as_str().unwrap().to_owned(),
        key_pem: r.json()["private_key"].as_str().unwrap().to_owned(),
    };
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "payments-app"),
    ];
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let t = client_of(&a, &txn)
            .post_form("/token", &form)
            .await
            .unwrap();
        assert_eq!(t.status, 200);
        tokens.push(t.json()["access_token"].as_str().unwrap().to_owned());
    }
    let (revoked, kept) = (&tokens[0], &tokens[1]);
    let active = |server: &kairos::serve::Running, token: &str| {
        let c = client_of(server, &svid);
        let token = token.to_owned();
        async move {
            let r = introspect(&c, &token).await;
            assert_eq!(r.status, 200, "{}", r.json());
            r.json()["active"].as_bool().unwrap()
        }
    };
    assert!(active(&b, revoked).await, "not revoked yet");
    let revoke = |server: &kairos::serve::Running, token: &str| {
        let c = client_of(server, &txn);
        let body = kairos::client::form_body(&[("token", token), ("client_id", "payments-app")]);
        async move {
            let r = c
                .send(
                    "POST",
                    "/revoke",
                    &[
                        ("content-type", "application/x-www-form-urlencoded"),
                        ("x-request-id", "revoke-1"),
                    ],
                    body,
                )
                .await
                .unwrap();
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        }
    };
    revoke(&a, revoked).await;
    assert!(!active(&a, revoked).await, "the revoking instance");
    assert!(
        !active(&b, revoked).await,
        "another instance on the same ledger"
    );
    assert!(active(&b, kept).await, "only the revoked token is affected");
    // no X-Request-Id was sent: none is invented, so the record carries no idempotency key
    let kept_jti = claims(kept)["jti"].as_str().unwrap().to_owned();
    let page = ledger.by_jti(&kept_jti, 10, None).await.unwrap();
    assert_eq!(page.records.len(), 1);
    assert_eq!(page.records[0].content.request_id, None);
    assert_eq!(page.records[0].idempotency_key(), None);
    a.stop().await;
    b.stop().await;
    drop(ledger);

    // a restart: a new process would open the same files
    let reopened = kairos::ledger_audit::open_embedded(dir.path(), 4).unwrap();
    let c = start_configured(
        dir.path(),
        cfg,
        Arc::new(kairos::ledger_audit::LedgerAudit::new(reopened.clone())),
        vec![],
    )
    .await;
    assert!(
        !active(&c, revoked).await,
        "revocation survives the restart"
    );
    assert!(active(&c, kept).await);
    // RFC 7009 §2.2: revoking again, even retrying with the same X-Request-Id on an instance
    // that does not know of the first revocation, is a 200; the ledger keeps one record
    let fresh = start_configured(
        dir.path(),
        cfg,
        Arc::new(kairos::ledger_audit::LedgerAudit::new(reopened.clone())),
        vec![],
    )
    .await;
    revoke(&fresh, revoked).await;
    let jti = claims(revoked)["jti"].as_str().unwrap().to_owned();
    let page = reopened.by_jti(&jti, 10, None).await.unwrap();
    let revocations = page
        .records
        .iter()
        .filter(|r| r.content.body.kind() == "token_revoked")
        .count();
    assert_eq!(revocations, 1);
}
