//! `kairos demo`: the whole flow on loopback, printed step by step — SVID, transaction
//! certificate, bound token, a protected resource that checks `cnf` against its TLS peer, and
//! the same token refused with another certificate.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kairos_authz::ClientCertificate;
use kairos_issuer::{KeySource, KeyType, PeerCertificate, SpiffeId};
use kairos_verifier::Verifier;
use serde_json::json;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::client::MtlsClient;
use crate::config::RawConfig;

/// A protected resource (`GET /accounts`, scope `accounts`) that accepts a Kairos token only
/// over a TLS connection with the certificate the token is bound to. The check is the
/// verifier crate's tower layer — the same implementation the Lambda authorizer uses.
pub fn resource_router(verifier: Arc<dyn kairos_verifier::CheckBearer>) -> Router {
    async fn accounts(
        axum::Extension(t): axum::Extension<kairos_verifier::BoundToken>,
    ) -> Response {
        axum::Json(json!({
            "accounts": [{"id": "GB29NWBK60161331926819", "balance": "1250.00"}],
            "client_id": t.client_id,
            "txn": t.txn,
        }))
        .into_response()
    }
    let layer = kairos_verifier::BoundTokenLayer::new(
        verifier,
        Arc::new(|req: &axum::http::Request<axum::body::Body>| {
            req.extensions()
                .get::<ClientCertificate>()
                .map(|c| c.leaf().der().to_vec())
        }),
        Arc::new(|| OffsetDateTime::now_utc().unix_timestamp()),
    )
    .require_scope("accounts");
    Router::new().route("/accounts", get(accounts).layer(layer))
}

fn jwt_claims(jwt: &str) -> serde_json::Value {
    jwt.split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null)
}

fn field<'a>(v: &'a serde_json::Value, k: &str) -> anyhow::Result<&'a str> {
    v.get(k)
        .and_then(|x| x.as_str())
        .ok_or_else(|| anyhow::anyhow!("response has no {k}: {v}"))
}

/// Runs the demo.
pub async fn run() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cfg = RawConfig::default().validate(Some(([127, 0, 0, 1], 0).into()))?;
    let audit = Arc::new(kairos_authz::MemoryAuditLog::default());
    let server = crate::serve::start(&cfg, dir.path(), audit.clone(), vec![]).await?;
    let issuer = server.state.settings().issuer.clone();
    let ca_pem = server.data.ca.certificate_pem().to_owned();
    println!(
        "== Kairos is listening at {issuer} (data in {})",
        dir.path().display()
    );

    // 1. an SVID for the workload (offline bootstrap, as `kairos svid issue` does)
    let id = SpiffeId::parse(&format!("spiffe://{}/payments-app", cfg.trust_domain))?;
    let svid = server.data.ca.issue_svid(
        &id,
        KeySource::Generate(KeyType::P256),
        None,
        OffsetDateTime::now_utc(),
    )?;
    let svid_key = svid
        .private_key_pem()
        .ok_or_else(|| anyhow::anyhow!("no SVID key"))?;
    println!(
        "\n1. SVID for {id}: serial {}, valid until {}",
        svid.serial_hex(),
        svid.not_after
    );

    // 2. a transaction certificate
    let as_workload = MtlsClient::new(&ca_pem, Some((&svid.pem, &svid_key)), server.addr)?;
    let req = json!({
        "transaction_id": "txn-demo-0001",
        "session_id": "sess-42",
        "context": {"device": "pixel-8", "geo": "GB-LND", "user_agent": "bank-app/4.2"},
        "ttl_seconds": 300,
    });
    let t = as_workload.transaction_certificate(&req).await?;
    let issued = t.response;
    let txn_cert = t.certificate;
    let txn_key = t.private_key;
    let parsed = PeerCertificate::from_pem(txn_cert.as_bytes())?;
    println!("\n2. POST /certificates (mTLS with the SVID) -> transaction certificate");
    println!("   subject      {}", parsed.subject());
    println!(
        "   SAN URI      {}",
        parsed
            .spiffe_id()
            .map(|s| s.to_string())
            .unwrap_or_default()
    );
    println!("   serial       {}", field(&issued, "serial")?);
    println!("   x5t#S256     {}", field(&issued, "x5t#S256")?);
    println!("   not after    {}", field(&issued, "not_after")?);
    if let Some(t) = parsed.transaction() {
        let ctx: BTreeMap<_, _> = t.entries().clone();
        println!(
            "   context ext  {} = {{transaction_id: {}, session_id: {:?}, context: {:?}}}",
            kairos_issuer::TRANSACTION_CONTEXT_OID_STR,
            t.transaction_id(),
            t.session_id(),
            ctx
        );
    }

    // 3. a token bound to it
    let as_txn = MtlsClient::new(&ca_pem, Some((&txn_cert, &txn_key)), server.addr)?;
    let r = as_txn
        .post_form(
            "/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "payments-app"),
                ("scope", "accounts"),
            ],
        )
        .await?;
    anyhow::ensure!(
        r.status == StatusCode::OK,
        "POST /token: {} {}",
        r.status,
        r.json()
    );
    let token = field(&r.json(), "access_token")?.to_owned();
    println!("\n3. POST /token (mTLS with the transaction certificate) -> bound access token");
    println!("{}", serde_json::to_string_pretty(&jwt_claims(&token))?);

    // 4. a protected resource checks the binding against its own TLS peer
    let jwks = as_txn.send("GET", "/jwks", &[], "").await?;
    let verifier = Arc::new(Verifier::from_jwks_json(
        std::str::from_utf8(&jwks.body)?,
        issuer.clone(),
        server.state.settings().audience.clone(),
    )?);
    let tls =
        crate::tls::server_config(&server.data.server_chain_pem, &server.data.server_key_pem)?;
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let rs_addr = listener.local_addr()?;
    let (stop_rs, rx) = watch::channel(false);
    let rs = tokio::spawn(crate::tls::serve(
        listener,
        tls,
        resource_router(verifier),
        rx,
    ));
    let bearer = format!("Bearer {token}");
    let ok = MtlsClient::new(&ca_pem, Some((&txn_cert, &txn_key)), rs_addr)?
        .send("GET", "/accounts", &[("authorization", &bearer)], "")
        .await?;
    println!(
        "\n4. GET https://{rs_addr}/accounts with the same certificate -> {} {}",
        ok.status,
        String::from_utf8_lossy(&ok.body)
    );

    // 5. the same token with another certificate
    let other = as_workload
        .transaction_certificate(&json!({"transaction_id": "txn-demo-0002"}))
        .await?;
    let refused = MtlsClient::new(
        &ca_pem,
        Some((&other.certificate, &other.private_key)),
        rs_addr,
    )?
    .send("GET", "/accounts", &[("authorization", &bearer)], "")
    .await?;
    println!(
        "\n5. the same token over a connection with another certificate -> {} {}\n   WWW-Authenticate: {}",
        refused.status,
        String::from_utf8_lossy(&refused.body),
        refused
            .headers
            .get(header::WWW_AUTHENTICATE)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
    );
    println!("\n{} ledger records written", audit.events().len());
    let _ = stop_rs.send(true);
    let _ = rs.await;
    server.stop().await;
    anyhow::ensure!(ok.status == StatusCode::OK, "the bound token was refused");
    anyhow::ensure!(
        refused.status == StatusCode::UNAUTHORIZED,
        "the token was accepted with another certificate"
    );
    Ok(())
}
