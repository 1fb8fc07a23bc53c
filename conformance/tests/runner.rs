//! The runner against `kairos serve` (everything must pass or be listed in expectations.toml),
//! and against deliberately broken servers (the checks must be able to fail).

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::sync::Arc;

use axum::Json;
use axum::routing::{get, post};
use kairos_conformance::checks::Outcome;
use kairos_conformance::{Expectations, Report, RunnerConfig, run};
use kairos_issuer::{KeySource, KeyType, SpiffeId};
use serde_json::json;
use time::OffsetDateTime;

const TWO_CLIENTS: &str = r#"
[[clients]]
client_id = "payments-app"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_san_uri = "spiffe://kairos.local/payments-app"
scope = "payments accounts"

[[clients]]
client_id = "other-app"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_san_uri = "spiffe://kairos.local/other-app"
scope = "accounts"
"#;

fn write_identity(dir: &Path, name: &str, ca: &kairos_issuer::CertificateAuthority, path: &str) {
    let id = SpiffeId::parse(&format!("spiffe://kairos.local/{path}")).unwrap();
    let c = ca
        .issue_svid(
            &id,
            KeySource::Generate(KeyType::P256),
            None,
            OffsetDateTime::now_utc(),
        )
        .unwrap();
    std::fs::write(dir.join(format!("{name}.pem")), &c.pem).unwrap();
    std::fs::write(
        dir.join(format!("{name}.key")),
        c.private_key_pem().unwrap().as_bytes(),
    )
    .unwrap();
}

fn runner_config(dir: &Path, issuer: &str, a: &str, b: Option<&str>) -> RunnerConfig {
    let mut t = format!(
        "issuer = \"{issuer}\"\nca_file = \"ca.pem\"\n[[clients]]\nclient_id = \"{a}\"\ncert_file = \"a.pem\"\nkey_file = \"a.key\"\n"
    );
    if let Some(b) = b {
        t.push_str(&format!(
            "[[clients]]\nclient_id = \"{b}\"\ncert_file = \"b.pem\"\nkey_file = \"b.key\"\n"
        ));
    }
    std::fs::write(dir.join("runner.toml"), t).unwrap();
    RunnerConfig::read(&dir.join("runner.toml")).unwrap()
}

fn outcome<'a>(r: &'a Report, id: &str) -> &'a Outcome {
    &r.rows
        .iter()
        .find(|row| row.id == id)
        .unwrap_or_else(|| panic!("no row {id}"))
        .outcome
}

#[tokio::test]
async fn kairos_passes_everything_but_its_listed_expected_failures() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = kairos::config::RawConfig::parse(TWO_CLIENTS)
        .unwrap()
        .validate(Some(([127, 0, 0, 1], 0).into()))
        .unwrap();
    let audit = Arc::new(kairos_authz::MemoryAuditLog::default());
    let server = kairos::serve::start(&cfg, &dir.path().join("data"), audit, vec![])
        .await
        .unwrap();
    std::fs::write(dir.path().join("ca.pem"), server.data.ca.certificate_pem()).unwrap();
    write_identity(dir.path(), "a", &server.data.ca, "payments-app");
    write_identity(dir.path(), "b", &server.data.ca, "other-app");
    let issuer = server.state.settings().issuer.clone();
    let rc = runner_config(dir.path(), &issuer, "payments-app", Some("other-app"));
    let exp = Expectations::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("expectations.toml"))
        .unwrap();
    let report = run(&rc, &exp, None).await.unwrap();
    println!("{}", report.table());
    assert_eq!(report.unexpected_failures(), 0, "{}", report.table());
    assert_eq!(report.unexpected_passes(), 0, "{}", report.table());
    assert!(
        report
            .rows
            .iter()
            .all(|r| !matches!(r.outcome, Outcome::Skipped(_))),
        "nothing may be skipped against Kairos:\n{}",
        report.table()
    );
    server.stop().await;
}

/// A deliberately broken authorization server: valid TLS and metadata, but tokens with
/// `x5t#S256` in hex (or no `cnf` at all), a non-JSON error, and a header-trusting token
/// endpoint.
async fn broken_server(
    mode: &'static str,
) -> (
    std::net::SocketAddr,
    tempfile::TempDir,
    kairos::bootstrap::DataDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let data = kairos::bootstrap::open(
        &dir.path().join("data"),
        "kairos.local",
        kairos_authz::JwsAlgorithm::Es256,
        &["localhost".into()],
        &["127.0.0.1".parse().unwrap()],
        OffsetDateTime::now_utc(),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let iss = format!("https://localhost:{}", addr.port());
    let key = data.token_key.clone();
    let jwk = key.public_jwk().clone();
    let meta = json!({
        "issuer": iss,
        "token_endpoint": format!("{iss}/token"),
        "jwks_uri": format!("{iss}/jwks"),
        "response_types_supported": ["code"],
        "token_endpoint_auth_methods_supported": ["tls_client_auth", "client_secret_basic"],
        "tls_client_certificate_bound_access_tokens": "true",
    });
    let iss2 = iss.clone();
    let app = axum::Router::new()
        .route("/.well-known/oauth-authorization-server", get(move || { let m = meta.clone(); async move { Json(m) } }))
        .route("/jwks", get(move || { let j = jwk.clone(); async move { Json(json!({"keys": [j]})) } }))
        .route(
            "/token",
            post(move |cert: Option<axum::Extension<kairos_authz::ClientCertificate>>| {
                let key = key.clone();
                let iss = iss2.clone();
                async move {
                    let now = OffsetDateTime::now_utc().unix_timestamp();
                    let mut claims = json!({"iss": iss, "sub": "x", "exp": now + 3600, "iat": now, "jti": "j", "client_id": "x"});
                    if mode == "hex" {
                        let hex = cert.map(|c| hex_encode(c.0.leaf().thumbprint().as_bytes())).unwrap_or_default();
                        claims["cnf"] = json!({"x5t#S256": hex});
                    }
                    let at = key.sign_jwt("JWT", &claims).unwrap();
                    Json(json!({"access_token": at, "token_type": "Bearer"}))
                }
            }),
        );
    let tls = kairos::tls::server_config(&data.server_chain_pem, &data.server_key_pem).unwrap();
    let (_tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _keep = _tx;
        kairos::tls::serve(listener, tls, app, rx).await
    });
    (addr, dir, data)
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test]
async fn the_checks_fail_against_broken_servers() {
    for mode in ["hex", "unbound"] {
        let (addr, dir, data) = broken_server(mode).await;
        std::fs::write(dir.path().join("ca.pem"), data.ca.certificate_pem()).unwrap();
        write_identity(dir.path(), "a", &data.ca, "payments-app");
        let rc = runner_config(
            dir.path(),
            &format!("https://localhost:{}", addr.port()),
            "payments-app",
            None,
        );
        let report = run(&rc, &Expectations::default(), None).await.unwrap();
        println!("{}", report.table());
        assert!(report.unexpected_failures() > 0);
        for id in [
            "R8705-3.5",
            "R8414-fapi-auth",
            "R6749-5.1",
            "R9068-2.1",
            "R8705-2.2a",
            "R8705-2.9",
            "R6749-5.2",
            "TOP-14",
        ] {
            assert!(
                matches!(outcome(&report, id), Outcome::Fail(_)),
                "{mode}: {id} should fail\n{}",
                report.table()
            );
        }
        match mode {
            "hex" => assert!(
                matches!(outcome(&report, "R8705-3.2"), Outcome::Fail(d) if d.contains("64 characters")),
                "{}",
                report.table()
            ),
            _ => assert!(
                matches!(outcome(&report, "R8705-3.1"), Outcome::Fail(_)),
                "{}",
                report.table()
            ),
        }
        // what this broken server does right still passes
        assert_eq!(outcome(&report, "TLS-1.3"), &Outcome::Pass);
        assert_eq!(outcome(&report, "R8414-3.3"), &Outcome::Pass);
        // cross-client checks need client B
        assert!(matches!(
            outcome(&report, "R8705-2.2b"),
            Outcome::Skipped(_)
        ));
    }
}
