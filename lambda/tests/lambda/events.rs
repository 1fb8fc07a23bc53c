//! JSON event fixtures through `lambda_http::request::from_str` and the router (`oneshot`).

use axum::Router;
use axum::extract::Request;
use axum::routing::any;
use kairos_authz::ClientCertificate;
use kairos_lambda::app::{Role, edge};
use serde_json::{Value, json};

use crate::support::*;

/// A router that reports what the edge middleware handed it: the path and the identity.
fn probe() -> Router {
    async fn whoami(req: Request) -> axum::Json<Value> {
        let cert = req.extensions().get::<ClientCertificate>().map(|c| {
            json!({
                "subject": c.leaf().subject().to_string(),
                "x5t": c.leaf().thumbprint().to_base64url(),
                "serial": c.leaf().serial_hex(),
            })
        });
        axum::Json(json!({"path": req.uri().path(), "query": req.uri().query(), "cert": cert}))
    }
    Router::new()
        .fallback_service(Router::new().fallback(any(whoami)))
        .layer(axum::middleware::from_fn_with_state(Role::All, edge))
}

fn fixture_x5t() -> String {
    let c = kairos_issuer::PeerCertificate::from_pem(fixture_cert_pem().as_bytes()).unwrap();
    c.thumbprint().to_base64url()
}

#[tokio::test]
async fn rest_v1_certificate_is_parsed_once_and_the_stage_prefix_removed() {
    let r = call(&probe(), &fixture_json("rest-v1-mtls-stage.json")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["path"], "/certificates", "{}", r.body);
    assert_eq!(r.body["cert"]["x5t"], fixture_x5t());
    // the event's subjectDN says CN=admin: only the certificate is believed
    let subject = r.body["cert"]["subject"].as_str().unwrap();
    assert!(subject.contains("fixture-client"), "{subject}");
    assert!(!subject.contains("admin"));
}

#[tokio::test]
async fn http_v2_certificate_on_default_and_named_stages() {
    let r = call(&probe(), &fixture_json("http-v2-mtls-default-stage.json")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["path"], "/certificates");
    assert_eq!(r.body["cert"]["x5t"], fixture_x5t());

    let r = call(&probe(), &fixture_json("http-v2-mtls-named-stage.json")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["path"], "/jwks", "{}", r.body);
    assert_eq!(r.body["cert"]["x5t"], fixture_x5t());
}

#[tokio::test]
async fn events_without_a_certificate_get_no_identity_whatever_the_headers_say() {
    for f in [
        "rest-v1-no-cert-forged-header.json",
        "http-v2-no-cert-forged-header.json",
    ] {
        let r = call(&probe(), &fixture_json(f)).await;
        assert_eq!(r.status, 200, "{f}");
        assert_eq!(r.body["cert"], Value::Null, "{f}: {}", r.body);
    }
    let r = call(
        &probe(),
        &fixture_json("rest-v1-no-cert-forged-header.json"),
    )
    .await;
    assert_eq!(r.body["path"], "/jwks");
}

#[tokio::test]
async fn an_unreadable_certificate_is_refused() {
    let r = call(&probe(), &fixture_json("rest-v1-unreadable-cert.json")).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"], "invalid_request");
    assert_eq!(r.headers["cache-control"], "no-store");
}

#[tokio::test]
async fn the_kairos_router_sees_the_certificate_of_the_event() {
    let pki = Pki::new();
    let (app, _) = pki.memory_app(Role::All).await;
    // a certificate, but not a Kairos SVID: refused for what it is
    let r = call(&app, &fixture_json("rest-v1-mtls-stage.json")).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(
        r.body["error_description"],
        "client certificate is not a valid Kairos workload identity"
    );
    // no certificate at all
    let mut e = fixture_json("rest-v1-mtls-stage.json");
    set_cert(&mut e, None);
    let r = call(&app, &e).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.body["error_description"],
        "a Kairos SVID is required: use mutual TLS"
    );
    // an SVID of the CA in the HTTP API event: issued
    let svid = pki.svid("/payments-app");
    let mut e = fixture_json("http-v2-mtls-default-stage.json");
    set_cert(&mut e, Some(&svid.cert_pem));
    let r = call(&app, &e).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body["certificate"]
            .as_str()
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );
}

#[tokio::test]
async fn discovery_and_jwks_through_both_payload_formats() {
    let pki = Pki::new();
    let (app, _) = pki.memory_app(Role::All).await;
    let r = call(&app, &fixture_json("rest-v1-no-cert-forged-header.json")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["keys"][0]["kty"], "EC");
    let r = call(&app, &fixture_json("http-v2-no-cert-forged-header.json")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["issuer"], ISSUER);
    assert_eq!(r.body["tls_client_certificate_bound_access_tokens"], true);
}

#[tokio::test]
async fn roles_limit_the_routes() {
    let pki = Pki::new();
    let (issuer, _) = pki.memory_app(Role::Issuer).await;
    let (authz, _) = pki.memory_app(Role::AuthorizationServer).await;
    let jwks = fixture_json("rest-v1-no-cert-forged-header.json");
    assert_eq!(call(&issuer, &jwks).await.status, 404);
    assert_eq!(call(&authz, &jwks).await.status, 200);
    let svid = pki.svid("/payments-app");
    let mut cert_req = fixture_json("rest-v1-mtls-stage.json");
    set_cert(&mut cert_req, Some(&svid.cert_pem));
    assert_eq!(call(&authz, &cert_req).await.status, 404);
    assert_eq!(call(&issuer, &cert_req).await.status, 200);
}

#[tokio::test]
async fn token_with_a_transaction_certificate_in_memory() {
    let pki = Pki::new();
    let (app, audit) = pki.memory_app(Role::All).await;
    let svid = pki.svid("/payments-app");
    let mut e = fixture_json("rest-v1-mtls-stage.json");
    set_cert(&mut e, Some(&svid.cert_pem));
    let r = call(&app, &e).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let txn_cert = r.body["certificate"].as_str().unwrap().to_owned();

    let mut t = rest_event("POST", "/token", Some(&txn_cert));
    set_body(
        &mut t,
        "application/x-www-form-urlencoded",
        &form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "payments-app"),
        ]),
    );
    let r = call(&app, &t).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.headers["cache-control"], "no-store");
    assert_eq!(audit.events().len(), 2, "certificate and token recorded");
}

#[tokio::test]
async fn the_authorization_server_role_holds_no_ca_key() {
    let pki = Pki::new();
    let cfg = pki.config(Role::AuthorizationServer, "unused", None);
    assert!(cfg.ca_key.is_none());
    let (keys, _) = kairos_lambda::init::load_keys(&cfg).await.unwrap();
    // it verifies chains to the CA (the certificate is enough) but cannot sign with it
    let id = kairos_issuer::SpiffeId::parse("spiffe://kairos.local/payments-app").unwrap();
    let r = keys.ca.issue_svid(
        &id,
        kairos_issuer::KeySource::Generate(kairos_issuer::KeyType::P256),
        None,
        time::OffsetDateTime::now_utc(),
    );
    assert!(r.is_err(), "issued without the CA key");
    // and configuring it with the CA key is refused
    let mut env = pki.env(Role::AuthorizationServer, "t", None);
    env.push(("KAIROS_CA_KEY_PEM".into(), pki.ca_key_pem.clone()));
    let e =
        kairos_lambda::config::LambdaConfig::from_env(&kairos_lambda::config::Env::from_pairs(env))
            .unwrap_err();
    assert!(e.to_string().contains("must not hold the CA key"), "{e}");
}

/// deploy/README.md §2: the files `kairos serve` bootstraps are what the functions load.
#[tokio::test]
async fn keys_bootstrapped_by_kairos_serve_load_in_the_lambda() {
    let dir = tempfile::tempdir().unwrap();
    let data = kairos::bootstrap::open(
        dir.path(),
        "kairos.local",
        kairos_authz::JwsAlgorithm::Es256,
        &["localhost".to_owned()],
        &[],
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    kairos::ledger_audit::load_or_create_key(dir.path()).unwrap();
    let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
    let env = vec![
        ("KAIROS_ISSUER", ISSUER.to_owned()),
        ("KAIROS_LEDGER_TABLE", "t".to_owned()),
        ("KAIROS_CA_CERT_PEM", read("ca.pem")),
        ("KAIROS_CA_KEY_PEM", read("ca.key")),
        ("KAIROS_TOKEN_KEY_PEM", read("token-es256.key")),
        ("KAIROS_LEDGER_KEY_PEM", read("ledger.key")),
    ];
    let cfg =
        kairos_lambda::config::LambdaConfig::from_env(&kairos_lambda::config::Env::from_pairs(env))
            .unwrap();
    let (keys, _) = kairos_lambda::init::load_keys(&cfg).await.unwrap();
    assert_eq!(keys.ca.certificate_der(), data.ca.certificate_der());
    assert_eq!(keys.token_key.kid(), data.token_key.kid());
}
