//! The TLS edge: protocol versions and cipher suites (standards.md §3.3), optional client
//! certificates, malformed certificates.

use crate::support::*;

fn s_client(addr: std::net::SocketAddr, args: &[&str]) -> (bool, String) {
    let connect = addr.to_string();
    let mut a = vec![
        "s_client",
        "-connect",
        connect.as_str(),
        "-servername",
        "localhost",
    ];
    a.extend_from_slice(args);
    let out = run("openssl", &a, Some(b"Q\n"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let ok = text.contains("Cipher is ") && !text.contains("Cipher is (NONE)");
    (ok, text)
}

#[tokio::test]
async fn only_fapi_protocols_and_suites_are_negotiated() {
    let h = Harness::start().await;
    let addr = h.addr;
    tokio::task::spawn_blocking(move || {
        let (ok, t) = s_client(addr, &["-tls1_3"]);
        assert!(ok, "TLS 1.3 must work: {t}");
        let (ok, t) = s_client(
            addr,
            &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"],
        );
        assert!(ok, "TLS 1.2 ECDHE-GCM must work: {t}");
        // TLS 1.3 is preferred when both are offered
        let (ok, t) = s_client(addr, &[]);
        assert!(ok && t.contains("TLSv1.3"), "{t}");
        for cipher in [
            "ECDHE-ECDSA-AES128-SHA",
            "AES128-GCM-SHA256",
            "ECDHE-ECDSA-AES256-SHA384",
        ] {
            let (ok, t) = s_client(addr, &["-tls1_2", "-cipher", cipher]);
            assert!(!ok, "{cipher} must be refused: {t}");
        }
        for v in ["-tls1", "-tls1_1"] {
            let (ok, _) = s_client(addr, &[v, "-cipher", "DEFAULT@SECLEVEL=0"]);
            assert!(!ok, "{v} must be refused");
        }
        // a client certificate is requested (CertificateRequest) but optional
        let (ok, t) = s_client(
            addr,
            &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"],
        );
        assert!(
            ok && (t.contains("No client certificate CA names sent")
                || t.contains("Acceptable client certificate CA names")),
            "no CertificateRequest: {t}"
        );
    })
    .await
    .unwrap();
    // discovery works without a client certificate
    let r = h.client(None).send("GET", "/jwks", &[], "").await.unwrap();
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn graceful_stop_refuses_new_connections() {
    let mut h = Harness::start().await;
    h.server.take().unwrap().stop().await;
    // Nothing of this server answers any more. (If another test's server happened to get the
    // freed port, its certificate is from another CA and the handshake fails just the same.)
    assert!(h.client(None).send("GET", "/jwks", &[], "").await.is_err());
}

#[tokio::test]
async fn a_client_certificate_kairos_cannot_parse_ends_the_connection() {
    // 100 SANs: valid X.509 (rustls and webpki accept it), beyond Kairos's bounds
    let h = Harness::start().await;
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(
        (0..100)
            .map(|i| format!("h{i}.example"))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "too-many-sans");
    let cert = p.self_signed(&key).unwrap();
    let id = Identity {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    };
    let r = h
        .client(Some(&id))
        .post_form(
            "/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "payments-app"),
            ],
        )
        .await;
    assert!(
        r.is_err(),
        "expected the connection to be closed, got {r:?}"
    );
    // the server is still fine
    assert_eq!(
        h.client(None)
            .send("GET", "/jwks", &[], "")
            .await
            .unwrap()
            .status,
        200
    );
}
