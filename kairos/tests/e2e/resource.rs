//! A resource server on real rustls with the verifier's tower layer: the token is accepted only
//! over a connection with the certificate it is bound to (standards.md R8705-3.4, R8705-7.2,
//! R6750-2.3, R6750-case).

use std::sync::Arc;

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn the_resource_checks_cnf_against_its_own_tls_peer() {
    let h = Harness::start().await;
    let txn = h.transaction_cert("txn-rs-1", json!({})).await;
    let token = h.token(&txn, "payments-app").await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // the resource fetches Kairos's JWKS itself, over TLS, on first use (empty cache)
    let jwks_client = h.client(None);
    let fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = fetches.clone();
    let fetch = move || {
        let c = jwks_client.clone();
        let n = counter.clone();
        async move {
            n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let r = c
                .send("GET", "/jwks", &[], "")
                .await
                .map_err(|e| e.to_string())?;
            String::from_utf8(r.body.to_vec()).map_err(|e| e.to_string())
        }
    };
    let verifier: Arc<dyn kairos_verifier::CheckBearer> =
        Arc::new(kairos_verifier::JwksCache::new(
            fetch,
            h.issuer(),
            h.issuer(),
            kairos_verifier::CachePolicy::default(),
        ));
    let data = &h.running().data;
    let tls = kairos::tls::server_config(&data.server_chain_pem, &data.server_key_pem).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let rs = tokio::spawn(kairos::tls::serve(
        listener,
        tls,
        kairos::demo::resource_router(verifier),
        rx,
    ));
    let client = |id: Option<&Identity>| {
        kairos::client::MtlsClient::new(
            &h.ca_pem,
            id.map(|i| (i.cert_pem.as_str(), i.key_pem.as_str())),
            addr,
        )
        .unwrap()
    };
    let bearer = format!("Bearer {token}");

    // the bound certificate: 200, also with the scheme in another case
    for scheme in ["Bearer", "bEARER"] {
        let auth = format!("{scheme} {token}");
        let r = client(Some(&txn))
            .send("GET", "/accounts", &[("authorization", &auth)], "")
            .await
            .unwrap();
        assert_eq!(
            r.status,
            200,
            "{scheme}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json()["txn"], "txn-rs-1");
    }
    // R8705-3.4: another certificate, and no certificate: 401 invalid_token
    let other = h.transaction_cert("txn-rs-2", json!({})).await;
    for id in [Some(&other), None] {
        let r = client(id)
            .send("GET", "/accounts", &[("authorization", &bearer)], "")
            .await
            .unwrap();
        assert_eq!(r.status, 401);
        assert!(
            r.headers["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("error=\"invalid_token\"")
        );
    }
    // R8705-7.2: same subject and SAN (same transaction id), new key: still refused
    let rekeyed = h.transaction_cert("txn-rs-1", json!({})).await;
    let r = client(Some(&rekeyed))
        .send("GET", "/accounts", &[("authorization", &bearer)], "")
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    // R6750-2.3: the token in the query string is refused even with the right certificate
    let r = client(Some(&txn))
        .send("GET", &format!("/accounts?access_token={token}"), &[], "")
        .await
        .unwrap();
    assert!(r.status == 400 || r.status == 401, "{}", r.status);
    let r = client(Some(&txn))
        .send(
            "GET",
            &format!("/accounts?access_token={token}"),
            &[("authorization", &bearer)],
            "",
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    // no token at all: 401 with a bare challenge
    let r = client(Some(&txn))
        .send("GET", "/accounts", &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.headers["www-authenticate"], "Bearer");
    // a tampered token
    let mut bad = token.clone();
    bad.pop();
    bad.push(if token.ends_with('A') { 'B' } else { 'A' });
    let r = client(Some(&txn))
        .send(
            "GET",
            "/accounts",
            &[("authorization", &format!("Bearer {bad}"))],
            "",
        )
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    // insufficient scope: a token for "payments" only
    let pay = h
        .client(Some(&txn))
        .post_form(
            "/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "payments-app"),
                ("scope", "payments"),
            ],
        )
        .await
        .unwrap()
        .json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = client(Some(&txn))
        .send(
            "GET",
            "/accounts",
            &[("authorization", &format!("Bearer {pay}"))],
            "",
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    assert!(
        r.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_scope")
    );
    // one fetch served every check above
    assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 1);
    let _ = stop.send(true);
    let _ = rs.await;
}
