//! End to end on loopback: DynamoDB Local as the ledger, the issuer and authorization-server
//! functions as deployed (separate roles: only the issuer holds the CA key), and the authorizer
//! fetching the JWKS over HTTP.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kairos_lambda::app::{self, Role};
use kairos_lambda::authorizer::Authorizer;
use kairos_lambda::jwks_http::HttpJwks;
use kairos_verifier::{CachePolicy, JwksCache};
use serde_json::Value;

use crate::authorizer::{authorizer_event, certificate_and_token, is_allow};
use crate::dynamo_local;
use crate::support::*;

/// Flips one character in the middle of the token's signature.
fn tamper_signature(token: &str) -> String {
    let (head, sig) = token.rsplit_once('.').unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(sig).unwrap();
    bytes[10] ^= 0x01;
    format!("{head}.{}", URL_SAFE_NO_PAD.encode(bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_ledger_issue_then_authorize() {
    let ddb = dynamo_local::shared().await;
    let table = dynamo_local::unique_table("lambda-e2e");
    let client = ddb.config(&table).client().await;
    kairos_ledger::create_table(&client, &table).await.unwrap();

    let pki = Pki::new();
    // the two functions, initialised exactly as the binaries do (keys, DynamoDB warm-up)
    let issuer_init =
        kairos_lambda::init::init(&pki.config(Role::Issuer, &table, Some(&ddb.endpoint)))
            .await
            .unwrap();
    let authz_init = kairos_lambda::init::init(&pki.config(
        Role::AuthorizationServer,
        &table,
        Some(&ddb.endpoint),
    ))
    .await
    .unwrap();
    let issuer_app = app::app(issuer_init.state.clone(), Role::Issuer);
    let authz_app = app::app(authz_init.state.clone(), Role::AuthorizationServer);

    // transaction certificate from the issuer function (REST v1, stage prefix), token from the
    // authorization server (HTTP API v2): `certificate_and_token` uses one router, so route by
    // path to the function API Gateway would call
    let routed = axum::Router::new()
        .route_service(
            "/prod/certificates",
            issuer_app.clone().into_service::<axum::body::Body>(),
        )
        .fallback_service(authz_app.clone());
    let (id, token) = certificate_and_token(&routed, &pki, "txn-e2e-1").await;
    let (other, _) = certificate_and_token(&routed, &pki, "txn-e2e-2").await;

    // both records are in DynamoDB, signed and chained
    let x5t = kairos_issuer::PeerCertificate::from_pem(id.cert_pem.as_bytes())
        .unwrap()
        .thumbprint()
        .to_base64url();
    let page = authz_init
        .ledger
        .by_thumbprint(&x5t, 50, None)
        .await
        .unwrap();
    let kinds: Vec<&str> = page.records.iter().map(|r| r.content.body.kind()).collect();
    assert!(kinds.contains(&"certificate_issued"), "{kinds:?}");
    assert!(kinds.contains(&"token_issued"), "{kinds:?}");
    let report = authz_init
        .ledger
        .verify_all(&authz_init.ledger.public_keys())
        .await
        .unwrap();
    assert!(report.is_ok(), "{:?}", report.failures);

    // the authorization server serves its JWKS on loopback; the authorizer fetches it over HTTP
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, authz_app).await;
    });
    let fetch = HttpJwks::new(&format!("http://{addr}/jwks")).unwrap();
    let authorizer = Authorizer::new(
        JwksCache::new(fetch, ISSUER, ISSUER, CachePolicy::default()),
        Some("payments".into()),
    );
    let now = kairos_lambda::unix_now();

    // allowed: that token with that certificate, both payload formats
    for v2 in [false, true] {
        let d = authorizer
            .handle(authorizer_event(v2, Some(&token), Some(&id.cert_pem)), now)
            .await;
        assert!(is_allow(&d), "v2={v2}: {d}");
        assert_eq!(d["context"]["txn"], "txn-e2e-1");
        assert_eq!(d["context"]["client_id"], "payments-app");
        assert_eq!(d["context"]["x5t_s256"], Value::String(x5t.clone()));
    }

    let exp = {
        let payload = token.split('.').nth(1).unwrap();
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        claims["exp"].as_i64().unwrap()
    };
    let svid = pki.svid("/payments-app");
    let denials: Vec<(&str, Value, i64)> = vec![
        (
            "another transaction certificate",
            authorizer_event(false, Some(&token), Some(&other.cert_pem)),
            now,
        ),
        (
            "the workload's SVID",
            authorizer_event(true, Some(&token), Some(&svid.cert_pem)),
            now,
        ),
        (
            "no certificate (REST)",
            authorizer_event(false, Some(&token), None),
            now,
        ),
        (
            "no certificate (HTTP API)",
            authorizer_event(true, Some(&token), None),
            now,
        ),
        (
            "expired",
            authorizer_event(false, Some(&token), Some(&id.cert_pem)),
            exp + kairos_verifier::MAX_SKEW_SECONDS + 1,
        ),
        (
            "tampered signature",
            authorizer_event(true, Some(&tamper_signature(&token)), Some(&id.cert_pem)),
            now,
        ),
        (
            "no token",
            authorizer_event(false, None, Some(&id.cert_pem)),
            now,
        ),
    ];
    for (what, event, at) in denials {
        let d = authorizer.handle(event, at).await;
        assert!(!is_allow(&d), "{what}: {d}");
        assert_eq!(d["context"]["error"], "invalid_token", "{what}: {d}");
    }
    server.abort();
}
