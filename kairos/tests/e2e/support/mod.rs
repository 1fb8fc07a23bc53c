//! A server per test, identities, and helpers.

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kairos::client::{MtlsClient, Reply};
use kairos::config::RawConfig;
use kairos::serve::Running;
use kairos_authz::MemoryAuditLog;
use kairos_issuer::{KeySource, KeyType, SpiffeId};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

pub struct Identity {
    pub cert_pem: String,
    pub key_pem: String,
}

pub struct Harness {
    pub server: Option<Running>,
    pub addr: SocketAddr,
    pub audit: Arc<MemoryAuditLog>,
    pub ca_pem: String,
    pub _dir: tempfile::TempDir,
}

impl Harness {
    pub async fn start() -> Self {
        Self::with_config("").await
    }

    pub async fn with_config(toml: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cfg = RawConfig::parse(toml)
            .unwrap()
            .validate(Some(([127, 0, 0, 1], 0).into()))
            .unwrap();
        let audit = Arc::new(MemoryAuditLog::default());
        let server = kairos::serve::start(&cfg, dir.path(), audit.clone(), vec![])
            .await
            .unwrap();
        Harness {
            addr: server.addr,
            ca_pem: server.data.ca.certificate_pem().to_owned(),
            server: Some(server),
            audit,
            _dir: dir,
        }
    }

    pub fn running(&self) -> &Running {
        self.server.as_ref().unwrap()
    }

    pub fn issuer(&self) -> String {
        self.running().state.settings().issuer.clone()
    }

    pub fn svid_at(&self, path: &str, ttl: Duration, now: OffsetDateTime) -> Identity {
        issue_svid(&self.running().data.ca, path, ttl, now)
    }

    pub fn svid(&self, path: &str) -> Identity {
        self.svid_at(path, Duration::hours(24), OffsetDateTime::now_utc())
    }

    pub fn client(&self, id: Option<&Identity>) -> MtlsClient {
        MtlsClient::new(
            &self.ca_pem,
            id.map(|i| (i.cert_pem.as_str(), i.key_pem.as_str())),
            self.addr,
        )
        .unwrap()
    }

    /// A transaction certificate for the payments-app workload.
    pub async fn transaction_cert(&self, txn: &str, extra: Value) -> Identity {
        let svid = self.svid("/payments-app");
        let mut body = json!({"transaction_id": txn, "context": {"device": "test"}});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        let r = self
            .client(Some(&svid))
            .send(
                "POST",
                "/certificates",
                &[("content-type", "application/json")],
                body.to_string(),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.json());
        let j = r.json();
        Identity {
            cert_pem: j["certificate"].as_str().unwrap().to_owned(),
            key_pem: j["private_key"].as_str().unwrap().to_owned(),
        }
    }

    pub async fn token(&self, id: &Identity, client_id: &str) -> Reply {
        self.client(Some(id))
            .post_form(
                "/token",
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id),
                ],
            )
            .await
            .unwrap()
    }
}

/// An SVID for `spiffe://kairos.local{path}` from `ca`.
pub fn issue_svid(
    ca: &kairos_issuer::CertificateAuthority,
    path: &str,
    ttl: Duration,
    now: OffsetDateTime,
) -> Identity {
    let id = SpiffeId::parse(&format!("spiffe://kairos.local{path}")).unwrap();
    let c = ca
        .issue_svid(&id, KeySource::Generate(KeyType::P256), Some(ttl), now)
        .unwrap();
    Identity {
        key_pem: c.private_key_pem().unwrap().to_string(),
        cert_pem: c.pem,
    }
}

/// `kairos serve` with the default configuration on a free loopback port, behind `audit`.
pub async fn start_with_audit(
    dir: &std::path::Path,
    audit: Arc<dyn kairos_authz::AuditLog>,
    ledger_jwks: Vec<Value>,
) -> Running {
    start_configured(dir, "", audit, ledger_jwks).await
}

/// [`start_with_audit`] with a TOML configuration.
pub async fn start_configured(
    dir: &std::path::Path,
    toml: &str,
    audit: Arc<dyn kairos_authz::AuditLog>,
    ledger_jwks: Vec<Value>,
) -> Running {
    let cfg = RawConfig::parse(toml)
        .unwrap()
        .validate(Some(([127, 0, 0, 1], 0).into()))
        .unwrap();
    kairos::serve::start(&cfg, dir, audit, ledger_jwks)
        .await
        .unwrap()
}

/// A client of `server` presenting `id`.
pub fn client_of(server: &Running, id: &Identity) -> MtlsClient {
    MtlsClient::new(
        server.data.ca.certificate_pem(),
        Some((&id.cert_pem, &id.key_pem)),
        server.addr,
    )
    .unwrap()
}

/// `POST /introspect` of `token` over `c`, as the default client `payments-app`.
pub async fn introspect(c: &MtlsClient, token: &str) -> Reply {
    c.post_form(
        "/introspect",
        &[("token", token), ("client_id", "payments-app")],
    )
    .await
    .unwrap()
}

pub fn claims(jwt: &str) -> Value {
    let p = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
}

pub fn assert_oauth_error(r: &Reply, status: u16, code: &str) {
    assert_eq!(
        r.status.as_u16(),
        status,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let j = r.json();
    assert_eq!(j["error"], code, "{j}");
    let d = j["error_description"].as_str().unwrap_or("");
    assert!(
        d.bytes().all(|b| b == 0x20
            || b == 0x21
            || (0x23..=0x5b).contains(&b)
            || (0x5d..=0x7e).contains(&b)),
        "error_description charset: {d:?}"
    );
}

pub fn run(cmd: &str, args: &[&str], stdin: Option<&[u8]>) -> std::process::Output {
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("`{cmd}` is required by these tests (install it): {e}"));
    if let Some(i) = stdin {
        child.stdin.take().unwrap().write_all(i).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

/// `x5t#S256` computed by openssl, independently of Kairos.
pub fn openssl_x5t(cert_pem: &str) -> String {
    let der = run(
        "openssl",
        &["x509", "-outform", "DER"],
        Some(cert_pem.as_bytes()),
    )
    .stdout;
    let digest = run("openssl", &["dgst", "-sha256", "-binary"], Some(&der)).stdout;
    assert_eq!(digest.len(), 32);
    URL_SAFE_NO_PAD.encode(digest)
}

/// A Python virtualenv with PyJWT + cryptography, created once under target/.
pub fn python_with_pyjwt() -> std::path::PathBuf {
    let venv = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("pyjwt-venv");
    let py = venv.join("bin/python");
    let marker = venv.join(".installed");
    if !marker.exists() {
        let out = run("python3", &["-m", "venv", venv.to_str().unwrap()], None);
        assert!(
            out.status.success(),
            "python3 -m venv failed (install python3 and python3-venv): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = run(
            py.to_str().unwrap(),
            &[
                "-m",
                "pip",
                "install",
                "--quiet",
                "pyjwt[crypto]==2.10.1",
                "cryptography",
            ],
            None,
        );
        assert!(
            out.status.success(),
            "pip install pyjwt failed (needs PyPI access): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(&marker, b"ok").unwrap();
    }
    py
}

/// Runs `script` with the venv's Python ([`python_with_pyjwt`]) and requires it to succeed and
/// print `marker`; `what` names the check in the failure message.
pub fn python_ok(script: &str, marker: &str, what: &str) {
    let py = python_with_pyjwt();
    let out = run(py.to_str().unwrap(), &["-c", script], None);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains(marker),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
