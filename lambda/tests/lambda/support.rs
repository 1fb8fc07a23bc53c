//! Test PKI, environments, fixtures and a way to call a router with an API Gateway event.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use http_body_util::BodyExt as _;
use kairos_authz::{JwsAlgorithm, MemoryAuditLog, TokenKey};
use kairos_issuer::{
    CertificateAuthority, IssuancePolicy, KeySource, KeyType, LocalSigner, SpiffeId,
};
use kairos_lambda::app::{self, Role};
use kairos_lambda::config::{Env, LambdaConfig};
use kairos_ledger::LedgerKey;
use serde_json::Value;
use time::{Duration, OffsetDateTime};
use tower::ServiceExt as _;

pub const ISSUER: &str = "https://auth.example.com";

/// A CA, token key and ledger key, as the deployment would hold them.
pub struct Pki {
    pub ca: CertificateAuthority,
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    pub token_key_pem: String,
    pub ledger_key_pem: String,
}

pub struct Identity {
    pub cert_pem: String,
}

impl Pki {
    pub fn new() -> Self {
        let signer = LocalSigner::generate_p256().unwrap();
        let ca_key_pem = signer.to_pkcs8_pem().to_string();
        let ca = CertificateAuthority::create(
            Arc::new(signer),
            "kairos.local",
            OffsetDateTime::now_utc(),
            IssuancePolicy::default(),
        )
        .unwrap();
        let token = TokenKey::generate(JwsAlgorithm::Es256).unwrap();
        let token_key_pem = pem::encode(&pem::Pem::new("PRIVATE KEY", token.pkcs8_der().to_vec()));
        let ledger_key_pem = LedgerKey::generate().unwrap().to_pkcs8_pem().to_string();
        Self {
            ca_cert_pem: ca.certificate_pem().to_owned(),
            ca,
            ca_key_pem,
            token_key_pem,
            ledger_key_pem,
        }
    }

    /// An SVID for `spiffe://kairos.local{path}`.
    pub fn svid(&self, path: &str) -> Identity {
        let id = SpiffeId::parse(&format!("spiffe://kairos.local{path}")).unwrap();
        let c = self
            .ca
            .issue_svid(
                &id,
                KeySource::Generate(KeyType::P256),
                Some(Duration::hours(24)),
                OffsetDateTime::now_utc(),
            )
            .unwrap();
        Identity { cert_pem: c.pem }
    }

    /// The function environment for `role` (keys inline, as a test or local run gives them).
    pub fn env(&self, role: Role, table: &str, endpoint: Option<&str>) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = vec![
            ("KAIROS_ISSUER".into(), ISSUER.into()),
            ("KAIROS_LEDGER_TABLE".into(), table.into()),
            ("KAIROS_CA_CERT_PEM".into(), self.ca_cert_pem.clone()),
            ("KAIROS_LEDGER_KEY_PEM".into(), self.ledger_key_pem.clone()),
        ];
        let role_name = match role {
            Role::All => "all",
            Role::AuthorizationServer => "authorization-server",
            Role::Issuer => "issuer",
        };
        v.push(("KAIROS_ROLE".into(), role_name.into()));
        if role.issues_certificates() {
            v.push(("KAIROS_CA_KEY_PEM".into(), self.ca_key_pem.clone()));
        }
        if role.issues_tokens() {
            v.push(("KAIROS_TOKEN_KEY_PEM".into(), self.token_key_pem.clone()));
        }
        if let Some(e) = endpoint {
            v.push(("KAIROS_DYNAMODB_ENDPOINT".into(), e.into()));
        }
        v
    }

    pub fn config(&self, role: Role, table: &str, endpoint: Option<&str>) -> LambdaConfig {
        LambdaConfig::from_env(&Env::from_pairs(self.env(role, table, endpoint))).unwrap()
    }

    /// The Lambda router with an in-memory audit log (no DynamoDB).
    pub async fn memory_app(&self, role: Role) -> (Router, Arc<MemoryAuditLog>) {
        let cfg = self.config(role, "unused", None);
        let (keys, _) = kairos_lambda::init::load_keys(&cfg).await.unwrap();
        let audit = Arc::new(MemoryAuditLog::default());
        let state =
            kairos_lambda::init::router_state(&cfg, keys.ca, keys.token_key, audit.clone(), vec![])
                .unwrap();
        (app::app(state, role), audit)
    }
}

pub fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/events")
}

/// A fixture's text.
pub fn fixture(name: &str) -> String {
    let p = events_dir().join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap()
}

/// The committed fixture client certificate.
pub fn fixture_cert_pem() -> String {
    fixture("fixture-client.pem")
}

/// Sets (or removes) the client certificate of an event, where its payload format puts it.
pub fn set_cert(event: &mut Value, pem: Option<&str>) {
    let v2 = event["version"] == "2.0";
    let holder = if v2 { "authentication" } else { "identity" };
    let ctx = event["requestContext"].as_object_mut().unwrap();
    if v2 && pem.is_none() {
        ctx.remove("authentication");
        return;
    }
    let h = ctx
        .entry(holder)
        .or_insert_with(|| serde_json::json!({}))
        .as_object_mut()
        .unwrap();
    match pem {
        None => {
            h.remove("clientCert");
        }
        Some(p) => {
            let cc = h
                .entry("clientCert")
                .or_insert_with(|| {
                    serde_json::json!({"subjectDN": "CN=ignored", "issuerDN": "CN=ignored",
                        "serialNumber": "1",
                        "validity": {"notBefore": "x", "notAfter": "y"}})
                })
                .as_object_mut()
                .unwrap();
            cc.insert("clientCertPem".into(), Value::String(p.to_owned()));
        }
    }
}

/// Sets the body (and content type) of a proxy event.
pub fn set_body(event: &mut Value, content_type: &str, body: &str) {
    let v2 = event["version"] == "2.0";
    event["body"] = Value::String(body.to_owned());
    let (name, multi) = if v2 {
        ("content-type", false)
    } else {
        ("Content-Type", true)
    };
    event["headers"][name] = Value::String(content_type.to_owned());
    if multi {
        event["multiValueHeaders"][name] = serde_json::json!([content_type]);
    }
}

/// A proxy response, decoded.
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Value,
}

/// Converts the event exactly as `lambda_http` does in production and calls the router.
pub async fn call(app: &Router, event: &Value) -> Reply {
    let req = lambda_http::request::from_str(&event.to_string()).unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Reply {
        status,
        headers,
        body,
    }
}

/// A form body for `/token`.
pub fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// A REST v1 proxy event for `method path` on stage `prod` (built from a fixture).
pub fn rest_event(method: &str, path: &str, cert: Option<&str>) -> Value {
    let mut e = fixture_json("rest-v1-mtls-stage.json");
    e["httpMethod"] = Value::String(method.into());
    e["path"] = Value::String(path.into());
    e["requestContext"]["httpMethod"] = Value::String(method.into());
    e["requestContext"]["path"] = Value::String(format!("/prod{path}"));
    e["body"] = Value::Null;
    set_cert(&mut e, cert);
    e
}

/// An HTTP API v2 event for `method path` on `$default` (built from a fixture).
pub fn http_event(method: &str, path: &str, cert: Option<&str>) -> Value {
    let mut e = fixture_json("http-v2-mtls-default-stage.json");
    e["rawPath"] = Value::String(path.into());
    e["requestContext"]["http"]["method"] = Value::String(method.into());
    e["requestContext"]["http"]["path"] = Value::String(path.into());
    e["body"] = Value::Null;
    set_cert(&mut e, cert);
    e
}
