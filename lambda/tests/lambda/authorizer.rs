//! The REQUEST authorizer on fixture events (in memory; the DynamoDB-backed flow is in `e2e`).

use std::sync::Arc;

use axum::Router;
use kairos_lambda::app::Role;
use kairos_lambda::authorizer::Authorizer;
use kairos_verifier::{CachePolicy, JwksCache, JwksFetch};
use serde_json::{Value, json};

use crate::support::*;

/// A JWKS fetch that asks the router in process.
pub fn router_jwks(app: Router) -> impl JwksFetch {
    move || {
        let app = app.clone();
        async move {
            let r = call(&app, &http_event("GET", "/jwks", None)).await;
            if r.status == 200 {
                Ok(r.body.to_string())
            } else {
                Err(format!("HTTP {}", r.status))
            }
        }
    }
}

/// A transaction certificate and a token bound to it, from `app`.
pub async fn certificate_and_token(app: &Router, pki: &Pki, txn: &str) -> (Identity, String) {
    let svid = pki.svid("/payments-app");
    let mut e = rest_event("POST", "/certificates", Some(&svid.cert_pem));
    set_body(
        &mut e,
        "application/json",
        &json!({"transaction_id": txn, "context": {"amount": "12.00"}}).to_string(),
    );
    let r = call(app, &e).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body["private_key"].is_string(),
        "server-side key generation"
    );
    let id = Identity {
        cert_pem: r.body["certificate"].as_str().unwrap().to_owned(),
    };
    let mut t = http_event("POST", "/token", Some(&id.cert_pem));
    set_body(
        &mut t,
        "application/x-www-form-urlencoded",
        &form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "payments-app"),
        ]),
    );
    let r = call(app, &t).await;
    assert_eq!(r.status, 200, "{}", r.body);
    (id, r.body["access_token"].as_str().unwrap().to_owned())
}

/// The REST (v1) or HTTP API (v2) authorizer fixture with this token and certificate.
pub fn authorizer_event(v2: bool, token: Option<&str>, cert: Option<&str>) -> Value {
    let mut e = fixture_json(if v2 {
        "authorizer-http-v2.json"
    } else {
        "authorizer-rest-v1.json"
    });
    let (name, multi) = if v2 {
        ("authorization", false)
    } else {
        ("Authorization", true)
    };
    match token {
        Some(t) => {
            e["headers"][name] = Value::String(format!("Bearer {t}"));
            if multi {
                e["multiValueHeaders"][name] = json!([format!("Bearer {t}")]);
            }
        }
        None => {
            e["headers"].as_object_mut().unwrap().remove(name);
            if multi {
                e["multiValueHeaders"].as_object_mut().unwrap().remove(name);
            }
        }
    }
    set_cert(&mut e, cert);
    e
}

pub fn is_allow(v: &Value) -> bool {
    v["isAuthorized"] == true || v["policyDocument"]["Statement"][0]["Effect"] == "Allow"
}

#[tokio::test]
async fn allow_and_deny_in_both_payload_formats() {
    let pki = Pki::new();
    let (app, _) = pki.memory_app(Role::All).await;
    let (id, token) = certificate_and_token(&app, &pki, "txn-authz-1").await;
    let a = Authorizer::new(
        JwksCache::new(
            router_jwks(app.clone()),
            ISSUER,
            ISSUER,
            CachePolicy::default(),
        ),
        Some("payments".into()),
    );
    let now = kairos_lambda::unix_now();

    let v1 = a
        .handle(
            authorizer_event(false, Some(&token), Some(&id.cert_pem)),
            now,
        )
        .await;
    assert_eq!(
        v1["policyDocument"]["Statement"][0]["Effect"], "Allow",
        "{v1}"
    );
    assert_eq!(
        v1["policyDocument"]["Statement"][0]["Resource"],
        "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/GET/payments"
    );
    assert_eq!(v1["principalId"], "payments-app");
    assert_eq!(v1["context"]["client_id"], "payments-app");
    assert_eq!(v1["context"]["txn"], "txn-authz-1");
    assert!(
        v1["context"]["scope"]
            .as_str()
            .unwrap()
            .contains("payments")
    );

    let v2 = a
        .handle(
            authorizer_event(true, Some(&token), Some(&id.cert_pem)),
            now,
        )
        .await;
    assert_eq!(v2["isAuthorized"], true, "{v2}");
    assert_eq!(v2["context"]["txn"], "txn-authz-1");

    // the fixture certificate is not the one the token is bound to
    let fixture_cert = fixture_cert_pem();
    for v2 in [false, true] {
        let d = a
            .handle(authorizer_event(v2, Some(&token), Some(&fixture_cert)), now)
            .await;
        assert!(!is_allow(&d), "{d}");
        assert_eq!(d["context"]["error"], "invalid_token");
    }
}

#[tokio::test]
async fn malformed_requests_are_denied() {
    let pki = Pki::new();
    let (app, _) = pki.memory_app(Role::All).await;
    let (id, token) = certificate_and_token(&app, &pki, "txn-authz-2").await;
    let a = Authorizer::new(
        JwksCache::new(
            router_jwks(app.clone()),
            ISSUER,
            ISSUER,
            CachePolicy::default(),
        ),
        None,
    );
    let now = kairos_lambda::unix_now();

    // repeated Authorization header
    let mut e = authorizer_event(false, Some(&token), Some(&id.cert_pem));
    e["multiValueHeaders"]["Authorization"] =
        json!([format!("Bearer {token}"), format!("Bearer {token}")]);
    let d = a.handle(e, now).await;
    assert_eq!(d["context"]["error"], "invalid_request", "{d}");

    // token in the query string
    let mut e = authorizer_event(true, Some(&token), Some(&id.cert_pem));
    e["rawQueryString"] = Value::String(format!("access_token={token}"));
    let d = a.handle(e, now).await;
    assert_eq!(d["isAuthorized"], false);
    assert_eq!(d["context"]["error"], "invalid_request");

    // a TOKEN authorizer event carries no certificate: not supported
    let d = a
        .handle(
            json!({"type": "TOKEN", "authorizationToken": format!("Bearer {token}"),
                   "methodArn": "arn:aws:execute-api:eu-west-1:1:a/prod/GET/x"}),
            now,
        )
        .await;
    assert_eq!(d["policyDocument"]["Statement"][0]["Effect"], "Deny");

    // garbage event
    let d = a.handle(json!([1, 2, 3]), now).await;
    assert!(!is_allow(&d));

    // unreadable certificate
    let d = a
        .handle(authorizer_event(false, Some(&token), Some("garbage")), now)
        .await;
    assert_eq!(d["context"]["error"], "invalid_token");
}

#[tokio::test]
async fn no_key_set_means_deny() {
    let fetch = || async { Err::<String, String>("issuer unreachable".into()) };
    let a = Arc::new(Authorizer::new(
        JwksCache::new(fetch, ISSUER, ISSUER, CachePolicy::default()),
        None,
    ));
    let d = a
        .handle(
            authorizer_event(true, Some("a.b.c"), Some(&fixture_cert_pem())),
            kairos_lambda::unix_now(),
        )
        .await;
    assert_eq!(d["isAuthorized"], false);
    assert_eq!(d["context"]["error"], "temporarily_unavailable");
}
