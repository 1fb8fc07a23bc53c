//! The token service over real mutual TLS.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kairos_issuer::PeerCertificate;
use serde_json::json;
use time::{Duration, OffsetDateTime};

use crate::support::*;

#[tokio::test]
async fn happy_path_binds_the_token_to_the_transaction_certificate() {
    let h = Harness::start().await;
    let txn = h
        .transaction_cert("txn-happy-1", json!({"ttl_seconds": 600}))
        .await;
    let r = h.token(&txn, "payments-app").await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.headers["cache-control"], "no-store");
    assert_eq!(r.headers["pragma"], "no-cache");
    let j = r.json();
    assert!(
        j["token_type"]
            .as_str()
            .unwrap()
            .eq_ignore_ascii_case("bearer")
    );
    let token = j["access_token"].as_str().unwrap();
    let c = claims(token);
    // RFC 8705 §3.1, computed independently by openssl
    let x5t = openssl_x5t(&txn.cert_pem);
    assert_eq!(c["cnf"]["x5t#S256"], x5t.as_str());
    assert_eq!(x5t.len(), 43);
    assert_eq!(c["txn"], "txn-happy-1");
    assert_eq!(c["client_id"], "payments-app");
    assert_eq!(c["iss"], h.issuer());
    assert_eq!(c["scope"], "accounts payments");
    let header: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    // exp never beyond the certificate (transaction cert: 600 s; token TTL 300 s)
    let cert = PeerCertificate::from_pem(txn.cert_pem.as_bytes()).unwrap();
    assert!(c["exp"].as_i64().unwrap() <= cert.not_after().unix_timestamp());
    assert!(j["expires_in"].as_i64().unwrap() <= 300);
    // the ledger port saw the certificate and the token, in that order
    let events = h.audit.events();
    assert!(matches!(
        events[0].0,
        kairos_authz::AuditEvent::CertificateIssued { .. }
    ));
    assert!(matches!(
        &events.last().unwrap().0,
        kairos_authz::AuditEvent::TokenIssued { jti, .. } if jti == c["jti"].as_str().unwrap()
    ));
}

#[tokio::test]
async fn token_exp_is_capped_at_the_certificate_not_after() {
    let h = Harness::start().await;
    let txn = h
        .transaction_cert("txn-short", json!({"ttl_seconds": 60}))
        .await;
    let r = h.token(&txn, "payments-app").await;
    let j = r.json();
    assert!(j["expires_in"].as_i64().unwrap() <= 60, "{j}");
    let cert = PeerCertificate::from_pem(txn.cert_pem.as_bytes()).unwrap();
    let c = claims(j["access_token"].as_str().unwrap());
    assert!(c["exp"].as_i64().unwrap() <= cert.not_after().unix_timestamp());
}

#[tokio::test]
async fn the_svid_itself_gets_a_bound_token_without_txn() {
    let h = Harness::start().await;
    let svid = h.svid("/payments-app");
    let r = h.token(&svid, "payments-app").await;
    assert_eq!(r.status, 200);
    let c = claims(r.json()["access_token"].as_str().unwrap());
    assert!(c.get("txn").is_none());
    assert_eq!(c["cnf"]["x5t#S256"], openssl_x5t(&svid.cert_pem).as_str());
}

#[tokio::test]
async fn client_authentication_failures_are_invalid_client() {
    let h = Harness::start().await;
    let other_ca = Harness::start().await;
    // no certificate
    let r = h
        .client(None)
        .post_form(
            "/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "payments-app"),
            ],
        )
        .await
        .unwrap();
    assert_oauth_error(&r, 401, "invalid_client");
    // untrusted CA, right SAN
    let foreign = other_ca.svid("/payments-app");
    assert_oauth_error(
        &h.token(&foreign, "payments-app").await,
        401,
        "invalid_client",
    );
    // right CA, wrong SAN
    let wrong = h.svid("/other-app");
    assert_oauth_error(
        &h.token(&wrong, "payments-app").await,
        401,
        "invalid_client",
    );
    // expired certificate
    let expired = h.svid_at(
        "/payments-app",
        Duration::hours(1),
        OffsetDateTime::now_utc() - Duration::hours(3),
    );
    assert_oauth_error(
        &h.token(&expired, "payments-app").await,
        401,
        "invalid_client",
    );
    // unknown client, missing client_id
    let good = h.svid("/payments-app");
    assert_oauth_error(&h.token(&good, "nobody").await, 401, "invalid_client");
    let r = h
        .client(Some(&good))
        .post_form("/token", &[("grant_type", "client_credentials")])
        .await
        .unwrap();
    assert_oauth_error(&r, 401, "invalid_client");
    // a certificate in a header is never a client certificate (RFC 8705 §6.5, TOP-1)
    let der = STANDARD
        .encode(kairos_issuer::pem_certificates(good.cert_pem.as_bytes()).unwrap()[0].clone());
    let spoof = format!(":{der}:");
    let r = h
        .client(None)
        .send(
            "POST",
            "/token",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("client-cert", &spoof),
                ("x-client-cert", &good.cert_pem.replace('\n', "")),
            ],
            "grant_type=client_credentials&client_id=payments-app",
        )
        .await
        .unwrap();
    assert_oauth_error(&r, 401, "invalid_client");
    // every failure is on the record
    let failures = h
        .audit
        .events()
        .iter()
        .filter(|(e, _)| matches!(e, kairos_authz::AuditEvent::ClientAuthFailed { .. }))
        .count();
    assert!(failures >= 7, "{failures}");
}

fn self_signed(cn: &str) -> (Identity, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(vec![format!("{cn}.example")]).unwrap();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    let cert = p.self_signed(&key).unwrap();
    let x5c = STANDARD.encode(cert.der());
    (
        Identity {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        },
        x5c,
    )
}

#[tokio::test]
async fn self_signed_clients_match_their_jwks() {
    let (s1, x5c) = self_signed("tpp-s");
    let (s2, _) = self_signed("tpp-s");
    let cfg = format!(
        r#"
[[clients]]
client_id = "payments-app"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_san_uri = "spiffe://kairos.local/payments-app"
scope = "payments accounts"

[[clients]]
client_id = "tpp-s"
token_endpoint_auth_method = "self_signed_tls_client_auth"
jwks = {{ keys = [ {{ kty = "EC", x5c = ["{x5c}"] }} ] }}
scope = "accounts"
"#
    );
    let h = Harness::with_config(&cfg).await;
    let r = h.token(&s1, "tpp-s").await;
    assert_eq!(r.status, 200, "{}", r.json());
    let c = claims(r.json()["access_token"].as_str().unwrap());
    assert_eq!(c["cnf"]["x5t#S256"], openssl_x5t(&s1.cert_pem).as_str());
    // same DN, other key: not registered
    assert_oauth_error(&h.token(&s2, "tpp-s").await, 401, "invalid_client");
    // a Kairos SVID is not this client's credential either
    assert_oauth_error(
        &h.token(&h.svid("/payments-app"), "tpp-s").await,
        401,
        "invalid_client",
    );
}

#[tokio::test]
async fn subject_dn_clients_authenticate_by_canonical_dn() {
    // A tls_client_auth client registered by subject DN, with the Kairos CA as its issuer:
    // the transaction certificate's subject is CN=<txn id>.
    let cfg = r#"
[[clients]]
client_id = "payments-app"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_san_uri = "spiffe://kairos.local/payments-app"
scope = "payments accounts"

[[clients]]
client_id = "by-dn"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "cn=TXN-DN-1"
"#;
    let h = Harness::with_config(cfg).await;
    let txn = h.transaction_cert("txn-dn-1", json!({})).await;
    assert_eq!(h.token(&txn, "by-dn").await.status, 200);
    let other = h.transaction_cert("txn-dn-2", json!({})).await;
    assert_oauth_error(&h.token(&other, "by-dn").await, 401, "invalid_client");
}

#[tokio::test]
async fn malformed_requests_get_clear_4xx() {
    let h = Harness::start().await;
    let id = h.svid("/payments-app");
    let c = h.client(Some(&id));
    let form = "application/x-www-form-urlencoded";
    let cases: Vec<(&str, &str, u16, &str)> = vec![
        (
            form,
            "grant_type=password&client_id=payments-app",
            400,
            "unsupported_grant_type",
        ),
        (form, "client_id=payments-app", 400, "invalid_request"),
        (
            form,
            "grant_type=client_credentials&client_id=payments-app&scope=admin",
            400,
            "invalid_scope",
        ),
        (
            form,
            "grant_type=client_credentials&grant_type=client_credentials&client_id=payments-app",
            400,
            "invalid_request",
        ),
        (
            "application/json",
            r#"{"grant_type":"client_credentials"}"#,
            400,
            "invalid_request",
        ),
        (form, "%%%%=&&&===", 400, "invalid_request"),
    ];
    for (ct, body, status, code) in cases {
        let r = c
            .send("POST", "/token", &[("content-type", ct)], body.to_owned())
            .await
            .unwrap();
        assert_oauth_error(&r, status, code);
    }
    // a huge body: 413, not 500
    let r = c
        .send(
            "POST",
            "/token",
            &[("content-type", form)],
            "a=".to_owned() + &"x".repeat(1 << 20),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 413);
    // GET on a POST endpoint
    let r = c.send("GET", "/token", &[], "").await.unwrap();
    assert_eq!(r.status, 405);
}

#[tokio::test]
async fn certificate_endpoint_validates_its_input() {
    let h = Harness::start().await;
    let svid = h.svid("/payments-app");
    let c = h.client(Some(&svid));
    let json_ct = [("content-type", "application/json")];
    for body in [
        "not json".to_owned(),
        json!({"transaction_id": "t", "bogus": 1}).to_string(),
        json!({"transaction_id": ""}).to_string(),
        json!({"transaction_id": "t", "context": (0..20).map(|i| (format!("k{i}"), "v")).collect::<std::collections::BTreeMap<_, _>>()}).to_string(),
        json!({"transaction_id": "t", "context": {"geo": "x".repeat(300)}}).to_string(),
        json!({"transaction_id": "t", "csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"}).to_string(),
        json!({"transaction_id": "t", "key_type": "dsa"}).to_string(),
        json!({"transaction_id": "t", "ttl_seconds": -5}).to_string(),
    ] {
        let r = c.send("POST", "/certificates", &json_ct, body.clone()).await.unwrap();
        assert_oauth_error(&r, 400, "invalid_request");
    }
    // no certificate / foreign certificate
    let r = h
        .client(None)
        .send(
            "POST",
            "/certificates",
            &json_ct,
            json!({"transaction_id": "t"}).to_string(),
        )
        .await
        .unwrap();
    assert_oauth_error(&r, 401, "invalid_client");
    // an unregistered workload
    let stranger = h.svid("/stranger");
    let r = h
        .client(Some(&stranger))
        .send(
            "POST",
            "/certificates",
            &json_ct,
            json!({"transaction_id": "t"}).to_string(),
        )
        .await
        .unwrap();
    assert_oauth_error(&r, 403, "unauthorized_client");
    // a transaction certificate cannot obtain another
    let txn = h.transaction_cert("txn-a", json!({})).await;
    let r = h
        .client(Some(&txn))
        .send(
            "POST",
            "/certificates",
            &json_ct,
            json!({"transaction_id": "t2"}).to_string(),
        )
        .await
        .unwrap();
    assert_oauth_error(&r, 403, "unauthorized_client");
    // a CSR path: the certificate carries the CSR's key, and no private key is returned
    let key = rcgen::KeyPair::generate().unwrap();
    let csr = rcgen::CertificateParams::new(vec!["evil.example".into()])
        .unwrap()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap();
    let r = c
        .send(
            "POST",
            "/certificates",
            &json_ct,
            json!({"transaction_id": "txn-csr", "csr": csr}).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.json());
    let j = r.json();
    assert!(j.get("private_key").is_none());
    let cert = PeerCertificate::from_pem(j["certificate"].as_str().unwrap().as_bytes()).unwrap();
    assert!(!cert.has_san(&kairos_issuer::SubjectAltName::Dns("evil.example".into())));
    assert_eq!(j["x5t#S256"], cert.thumbprint().to_base64url().as_str());
    for kt in ["ed25519", "rsa2048"] {
        let r = c
            .send(
                "POST",
                "/certificates",
                &json_ct,
                json!({"transaction_id": "txn-kt", "key_type": kt}).to_string(),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{kt}: {}", r.json());
    }
}

#[tokio::test]
async fn introspection_and_revocation() {
    let h = Harness::start().await;
    let txn = h.transaction_cert("txn-intro", json!({})).await;
    let token = h.token(&txn, "payments-app").await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let rs = h.svid("/payments-app");
    let c = h.client(Some(&rs));
    let r = introspect(&c, &token).await;
    assert_eq!(r.status, 200);
    let j = r.json();
    assert_eq!(j["active"], true);
    assert_eq!(j["cnf"]["x5t#S256"], openssl_x5t(&txn.cert_pem).as_str());
    assert_eq!(j["txn"], "txn-intro");
    // unknown token: exactly {"active": false}
    let r = introspect(&c, "nonsense").await;
    assert_eq!(r.json(), json!({"active": false}));
    // unauthenticated callers are refused (RFC 7662 §2.1)
    let r = h
        .client(None)
        .post_form("/introspect", &[("token", &token)])
        .await
        .unwrap();
    assert_oauth_error(&r, 401, "invalid_client");
    let r = c
        .post_form("/introspect", &[("client_id", "payments-app")])
        .await
        .unwrap();
    assert_oauth_error(&r, 400, "invalid_request");
    // revoke: unknown tokens are fine, then the real one
    let r = c
        .post_form(
            "/revoke",
            &[("token", "garbage"), ("client_id", "payments-app")],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let r = c
        .post_form(
            "/revoke",
            &[
                ("token", &token),
                ("client_id", "payments-app"),
                ("token_type_hint", "access_token"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let r = introspect(&c, &token).await;
    assert_eq!(r.json(), json!({"active": false}));
    assert!(
        h.audit
            .events()
            .iter()
            .any(|(e, _)| matches!(e, kairos_authz::AuditEvent::TokenRevoked { .. }))
    );
    // When the ledger cannot say whether a token was revoked, introspection fails closed: 503,
    // never "active": true (this token was never revoked).
    let fresh = h.token(&txn, "payments-app").await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    h.audit.set_failing(true);
    let r = introspect(&c, &fresh).await;
    h.audit.set_failing(false);
    assert_oauth_error(&r, 503, "temporarily_unavailable");
    let r = introspect(&c, &fresh).await;
    assert_eq!(r.json()["active"], true);
}

#[tokio::test]
async fn discovery_and_jwks() {
    let h = Harness::start().await;
    let c = h.client(None);
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let r = c.send("GET", path, &[], "").await.unwrap();
        assert_eq!(r.status, 200);
        let m = r.json();
        assert_eq!(m["issuer"], h.issuer().as_str());
        assert_eq!(m["tls_client_certificate_bound_access_tokens"], json!(true));
        assert_eq!(
            m["token_endpoint"],
            format!("{}/token", h.issuer()).as_str()
        );
        assert!(
            m["mtls_endpoint_aliases"]["token_endpoint"]
                .as_str()
                .unwrap()
                .starts_with("https://")
        );
        let methods = m["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap();
        assert!(
            methods
                .iter()
                .all(|x| !x.as_str().unwrap().starts_with("client_secret"))
        );
        assert!(m.get("response_types_supported").is_some());
    }
    let jwks = c.send("GET", "/jwks", &[], "").await.unwrap().json();
    let k = &jwks["keys"][0];
    assert_eq!(k["kty"], "EC");
    assert_eq!(k["alg"], "ES256");
    assert!(k.get("d").is_none(), "private key material in JWKS");
}

#[tokio::test]
async fn fail_closed_when_the_ledger_cannot_record() {
    let h = Harness::start().await;
    let txn = h.transaction_cert("txn-fc", json!({})).await;
    h.audit.set_failing(true);
    let r = h.token(&txn, "payments-app").await;
    assert_oauth_error(&r, 503, "temporarily_unavailable");
    assert!(r.json().get("access_token").is_none());
    let svid = h.svid("/payments-app");
    let r = h
        .client(Some(&svid))
        .send(
            "POST",
            "/certificates",
            &[("content-type", "application/json")],
            json!({"transaction_id": "t"}).to_string(),
        )
        .await
        .unwrap();
    assert_oauth_error(&r, 503, "temporarily_unavailable");
    assert!(r.json().get("certificate").is_none());
}

#[tokio::test]
async fn tokens_verify_with_independent_jose_libraries() {
    let h = Harness::start().await;
    let txn = h.transaction_cert("txn-jose", json!({})).await;
    let token = h.token(&txn, "payments-app").await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let jwks = h.client(None).send("GET", "/jwks", &[], "").await.unwrap();
    let jwks_text = String::from_utf8(jwks.body.to_vec()).unwrap();

    // Rust: jsonwebtoken (through kairos-verifier), with the certificate of "this connection"
    let v = kairos_verifier::Verifier::from_jwks_json(&jwks_text, h.issuer(), h.issuer()).unwrap();
    let der = kairos_issuer::pem_certificates(txn.cert_pem.as_bytes())
        .unwrap()
        .remove(0);
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let bearer = format!("bEARER {token}");
    let t = v.verify(Some(&bearer), None, Some(&der), now).unwrap();
    assert_eq!(t.txn.as_deref(), Some("txn-jose"));
    let other = h.transaction_cert("txn-jose-2", json!({})).await;
    let other_der = kairos_issuer::pem_certificates(other.cert_pem.as_bytes())
        .unwrap()
        .remove(0);
    assert!(
        v.verify(Some(&bearer), None, Some(&other_der), now)
            .is_err()
    );
    assert!(v.verify(Some(&bearer), None, None, now).is_err());
    assert!(
        v.verify(
            Some(&bearer),
            Some(&format!("access_token={token}")),
            Some(&der),
            now
        )
        .is_err()
    );
    assert!(
        v.verify(Some(&bearer), None, Some(&der), now + 3600)
            .is_err()
    );

    // Python: PyJWT + cryptography, thumbprint recomputed from the PEM
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("jwks.json"), &jwks_text).unwrap();
    std::fs::write(dir.path().join("token"), &token).unwrap();
    std::fs::write(dir.path().join("cert.pem"), &txn.cert_pem).unwrap();
    let script = format!(
        r#"
import json, hashlib, base64, jwt
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
d = "{dir}"
jwks = json.load(open(d + "/jwks.json"))
token = open(d + "/token").read()
header = jwt.get_unverified_header(token)
assert header["typ"] == "at+jwt", header
key = next(jwt.PyJWK(k) for k in jwks["keys"] if k["kid"] == header["kid"])
claims = jwt.decode(token, key=key, algorithms=["ES256"], audience="{iss}", issuer="{iss}")
cert = x509.load_pem_x509_certificate(open(d + "/cert.pem", "rb").read())
x5t = base64.urlsafe_b64encode(hashlib.sha256(cert.public_bytes(Encoding.DER)).digest()).rstrip(b"=").decode()
assert claims["cnf"]["x5t#S256"] == x5t, (claims, x5t)
print("pyjwt-ok", claims["jti"])
"#,
        dir = dir.path().display(),
        iss = h.issuer()
    );
    python_ok(&script, "pyjwt-ok", "PyJWT rejected the token");
}
