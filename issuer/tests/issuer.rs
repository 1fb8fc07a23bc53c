//! Issuer integration tests: every certificate is checked by independent verifiers (the
//! `openssl` CLI and x509-parser) as well as by this crate's own parser.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kairos_issuer::*;
use time::{Duration, OffsetDateTime};

fn openssl(args: &[&str], stdin: Option<&[u8]>) -> std::process::Output {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("the `openssl` CLI is required by these tests (apt-get install openssl): {e}")
        });
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn openssl_ok(args: &[&str], stdin: Option<&[u8]>) -> String {
    let out = openssl(args, stdin);
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Pki {
    dir: tempfile::TempDir,
    ca: CertificateAuthority,
    now: OffsetDateTime,
}

impl Pki {
    fn new() -> Self {
        let now = OffsetDateTime::now_utc();
        let signer = LocalSigner::generate_p256().unwrap().into_arc();
        let ca =
            CertificateAuthority::create(signer, "kairos.local", now, IssuancePolicy::default())
                .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.certificate_pem()).unwrap();
        Pki { dir, ca, now }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn write(&self, name: &str, contents: &str) -> String {
        std::fs::write(self.dir.path().join(name), contents).unwrap();
        self.path(name)
    }

    fn anchors(&self) -> TrustAnchors {
        TrustAnchors::from_ders(vec![self.ca.certificate_der().to_vec()]).unwrap()
    }

    fn svid(&self, path: &str) -> IssuedCertificate {
        let id = SpiffeId::parse(&format!("spiffe://kairos.local{path}")).unwrap();
        self.ca
            .issue_svid(&id, KeySource::Generate(KeyType::P256), None, self.now)
            .unwrap()
    }

    fn workload(&self) -> Workload {
        let svid = self.svid("/payments-app");
        let peer = PeerCertificate::from_der(&svid.der).unwrap();
        let verified = verify_client_cert(&peer, &[], &self.anchors(), self.now).unwrap();
        self.ca.workload(&verified).unwrap()
    }

    /// `openssl verify` against the CA, for the given purpose.
    fn openssl_verify(&self, cert_pem: &str, purpose: &str) {
        let cert = self.write("leaf.pem", cert_pem);
        let out = openssl_ok(
            &[
                "verify",
                "-CAfile",
                &self.path("ca.pem"),
                "-purpose",
                purpose,
                &cert,
            ],
            None,
        );
        assert!(out.contains(": OK"), "{out}");
    }

    fn text(&self, cert_pem: &str) -> String {
        openssl_ok(&["x509", "-noout", "-text"], Some(cert_pem.as_bytes()))
    }
}

fn ctx(txn: &str) -> TransactionContext {
    TransactionContext::new(
        txn,
        Some("sess-7".into()),
        BTreeMap::from([
            ("device".to_owned(), "pixel-8".to_owned()),
            ("geo".to_owned(), "GB-LND".to_owned()),
            ("user_agent".to_owned(), "bank-app/4.2".to_owned()),
        ]),
    )
    .unwrap()
}

fn openssl_thumbprint(cert_pem: &str) -> String {
    let der = openssl(&["x509", "-outform", "DER"], Some(cert_pem.as_bytes())).stdout;
    let digest = openssl(&["dgst", "-sha256", "-binary"], Some(&der)).stdout;
    URL_SAFE_NO_PAD.encode(digest)
}

#[test]
fn transaction_certificates_of_every_key_type_pass_openssl_and_show_the_profile() {
    let pki = Pki::new();
    let workload = pki.workload();
    for kt in [KeyType::P256, KeyType::Ed25519, KeyType::Rsa2048] {
        let issued = pki
            .ca
            .issue_transaction_cert(
                &workload,
                TransactionRequest {
                    context: ctx("txn-0001"),
                    key: KeySource::Generate(kt),
                    ttl: None,
                },
                pki.now,
            )
            .unwrap();
        pki.openssl_verify(&issued.pem, "sslclient");
        let text = pki.text(&issued.pem);
        for needle in [
            "Subject: CN = txn-0001",
            "URI:spiffe://kairos.local/payments-app",
            "TLS Web Client Authentication",
            "CA:FALSE",
            "Digital Signature",
            "X509v3 Authority Key Identifier",
            "X509v3 Subject Key Identifier",
            "1.3.6.1.4.1.32473.1.1:",
        ] {
            assert!(
                text.contains(needle),
                "{kt:?}: missing {needle:?} in\n{text}"
            );
        }
        assert!(
            !text.contains("1.3.6.1.4.1.32473.1.1: critical"),
            "context extension must be non-critical"
        );
        assert!(!text.contains("TLS Web Server Authentication"));
        // lifetime = default TTL
        assert_eq!(issued.not_after - issued.not_before, Duration::minutes(5));

        // the context reads back through the parser; thumbprints agree with openssl
        let peer = PeerCertificate::from_pem(issued.pem.as_bytes()).unwrap();
        let back = peer.transaction().expect("context extension");
        assert_eq!(back, &ctx("txn-0001"));
        assert_eq!(peer.thumbprint(), issued.thumbprint);
        assert_eq!(
            peer.thumbprint().to_base64url(),
            openssl_thumbprint(&issued.pem)
        );
        assert_eq!(
            peer.spiffe_id().unwrap().as_str(),
            "spiffe://kairos.local/payments-app"
        );
        assert!(!peer.is_ca());
        assert!(peer.allows_client_auth());
        assert_eq!(peer.subject().common_name(), Some("txn-0001"));

        // x509-parser directly (independent of our wrapper)
        let (_, x) = x509_parser::parse_x509_certificate(&issued.der).unwrap();
        let ext = x
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == TRANSACTION_CONTEXT_OID_STR)
            .unwrap();
        assert!(!ext.critical);
        assert!(x.raw_serial()[0] & 0x80 == 0, "serial must be positive");
        assert!(x.raw_serial().len() <= 20);

        // the returned key matches the certificate
        let key_pem = issued.private_key_pem().unwrap();
        let key_path = pki.write("leaf.key", &key_pem);
        let pub_from_key = openssl_ok(&["pkey", "-in", &key_path, "-pubout"], None);
        let pub_from_cert = openssl_ok(&["x509", "-noout", "-pubkey"], Some(issued.pem.as_bytes()));
        assert_eq!(pub_from_key, pub_from_cert, "{kt:?}");

        // and it chains with our own verifier
        verify_client_cert(&peer, &[], &pki.anchors(), pki.now).unwrap();
    }
}

fn openssl_csr(dir: &Path, extra: &[&str]) -> String {
    let key = dir.join("csr.key").display().to_string();
    let csr = dir.join("csr.pem").display().to_string();
    let mut args = vec![
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &key,
        "-out",
        &csr,
        "-subj",
        "/CN=evil.example/O=Mallory",
    ];
    args.extend_from_slice(extra);
    openssl_ok(&args, None);
    std::fs::read_to_string(&csr).unwrap()
}

#[test]
fn a_greedy_csr_gets_only_its_public_key_certified() {
    let pki = Pki::new();
    let workload = pki.workload();
    let csr_pem = openssl_csr(
        pki.dir.path(),
        &[
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "subjectAltName=DNS:bank.example,URI:spiffe://kairos.local/admin,email:a@b.c",
            "-addext",
            "extendedKeyUsage=serverAuth,codeSigning",
            "-addext",
            "keyUsage=keyCertSign,cRLSign",
            "-days",
            "3650",
        ],
    );
    let csr = VerifiedCsr::from_pem(&csr_pem).unwrap();
    let issued = pki
        .ca
        .issue_transaction_cert(
            &workload,
            TransactionRequest {
                context: ctx("txn-csr"),
                key: KeySource::Csr(csr),
                ttl: Some(Duration::days(3650)),
            },
            pki.now,
        )
        .unwrap();
    assert!(issued.private_key.is_none());
    pki.openssl_verify(&issued.pem, "sslclient");
    let text = pki.text(&issued.pem);
    assert!(text.contains("CA:FALSE"));
    for absent in [
        "CA:TRUE",
        "bank.example",
        "spiffe://kairos.local/admin",
        "a@b.c",
        "Code Signing",
        "TLS Web Server Authentication",
        "Certificate Sign",
        "Mallory",
        "evil.example",
    ] {
        assert!(
            !text.contains(absent),
            "{absent:?} leaked from the CSR:\n{text}"
        );
    }
    // 10 years requested: clamped to the 15-minute policy maximum
    assert_eq!(issued.not_after - issued.not_before, Duration::minutes(15));
    // the certificate carries the CSR's key
    let csr_pub = openssl_ok(&["req", "-noout", "-pubkey"], Some(csr_pem.as_bytes()));
    let cert_pub = openssl_ok(&["x509", "-noout", "-pubkey"], Some(issued.pem.as_bytes()));
    assert_eq!(csr_pub, cert_pub);
}

#[test]
fn bad_csrs_are_typed_errors() {
    let pki = Pki::new();
    let csr_pem = openssl_csr(pki.dir.path(), &[]);
    let der = pem::parse(&csr_pem).unwrap().into_contents();
    // flip the last byte of the signature
    let mut bad = der.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x01;
    assert!(matches!(
        VerifiedCsr::from_der(&bad),
        Err(CsrError::BadSignature) | Err(CsrError::Malformed)
    ));
    // flip a byte inside the subject: the signature no longer covers it
    let mut tampered = der.clone();
    let pos = tampered.windows(7).position(|w| w == b"Mallory").unwrap();
    tampered[pos] = b'N';
    assert_eq!(
        VerifiedCsr::from_der(&tampered).unwrap_err(),
        CsrError::BadSignature
    );
    assert_eq!(
        VerifiedCsr::from_der(b"garbage").unwrap_err(),
        CsrError::Malformed
    );
    assert_eq!(VerifiedCsr::from_pem("garbage").unwrap_err(), CsrError::Pem);
    let huge = "A".repeat(1024 * 1024);
    assert!(matches!(
        VerifiedCsr::from_pem(&huge),
        Err(CsrError::TooLarge { .. })
    ));
    assert!(matches!(
        VerifiedCsr::from_der(huge.as_bytes()),
        Err(CsrError::TooLarge { .. })
    ));
    // a certificate is not a CSR
    assert!(VerifiedCsr::from_pem(pki.ca.certificate_pem()).is_err());
    // every truncation is an error, never a panic
    for n in 0..der.len() {
        assert!(VerifiedCsr::from_der(&der[..n]).is_err());
    }
}

#[test]
fn svids_follow_the_x509_svid_profile_and_renew_at_half_life() {
    let pki = Pki::new();
    let svid = pki.svid("/payments-app");
    pki.openssl_verify(&svid.pem, "sslclient");
    pki.openssl_verify(&svid.pem, "sslserver");
    let text = pki.text(&svid.pem);
    assert!(text.contains("CA:FALSE"));
    assert!(text.contains("X509v3 Key Usage: critical"));
    assert!(text.contains("Digital Signature"));
    assert!(!text.contains("Certificate Sign"));
    assert!(text.contains("TLS Web Server Authentication, TLS Web Client Authentication"));
    let peer = PeerCertificate::from_der(&svid.der).unwrap();
    let uris: Vec<_> = peer
        .sans()
        .iter()
        .filter(|s| matches!(s, SubjectAltName::Uri(_)))
        .collect();
    assert_eq!(uris.len(), 1);
    assert_eq!(peer.not_after() - peer.not_before(), Duration::hours(24));
    assert!(peer.transaction().is_none());

    assert!(!renewal_due(&peer, peer.not_before(), 0.5));
    assert!(!renewal_due(
        &peer,
        peer.not_before() + Duration::hours(11),
        0.5
    ));
    assert!(renewal_due(
        &peer,
        peer.not_before() + Duration::hours(12),
        0.5
    ));
    assert!(renewal_due(
        &peer,
        peer.not_after() + Duration::hours(1),
        0.5
    ));
    assert!(!renewal_due(
        &peer,
        peer.not_before() + Duration::hours(17),
        0.75
    ));
    assert!(renewal_due(
        &peer,
        peer.not_before() + Duration::hours(18),
        0.75
    ));

    // a foreign trust domain is refused
    let foreign = SpiffeId::parse("spiffe://other.example/x").unwrap();
    assert!(matches!(
        pki.ca
            .issue_svid(&foreign, KeySource::Generate(KeyType::P256), None, pki.now),
        Err(IssueError::ForeignTrustDomain(_))
    ));
}

#[test]
fn ttl_never_exceeds_the_requesters_certificate() {
    let pki = Pki::new();
    let id = SpiffeId::parse("spiffe://kairos.local/short-lived").unwrap();
    let svid = pki
        .ca
        .issue_svid(
            &id,
            KeySource::Generate(KeyType::P256),
            Some(Duration::minutes(2)),
            pki.now,
        )
        .unwrap();
    let peer = PeerCertificate::from_der(&svid.der).unwrap();
    let verified = verify_client_cert(&peer, &[], &pki.anchors(), pki.now).unwrap();
    let workload = pki.ca.workload(&verified).unwrap();
    let issued = pki
        .ca
        .issue_transaction_cert(
            &workload,
            TransactionRequest {
                context: ctx("txn-short"),
                key: KeySource::Generate(KeyType::P256),
                ttl: Some(Duration::minutes(10)),
            },
            pki.now,
        )
        .unwrap();
    assert_eq!(issued.not_after, peer.not_after());
    // a requester about to expire gets nothing
    let late = pki.now + Duration::minutes(2) - Duration::seconds(1);
    assert!(matches!(
        pki.ca.issue_transaction_cert(
            &workload,
            TransactionRequest {
                context: ctx("txn-late"),
                key: KeySource::Generate(KeyType::P256),
                ttl: None,
            },
            late,
        ),
        Err(IssueError::RequesterExpiring)
    ));
    assert!(matches!(
        pki.ca.issue_transaction_cert(
            &workload,
            TransactionRequest {
                context: ctx("txn-zero"),
                key: KeySource::Generate(KeyType::P256),
                ttl: Some(Duration::ZERO),
            },
            pki.now,
        ),
        Err(IssueError::BadTtl)
    ));
}

#[test]
fn a_transaction_certificate_cannot_request_another() {
    let pki = Pki::new();
    let workload = pki.workload();
    let issued = pki
        .ca
        .issue_transaction_cert(
            &workload,
            TransactionRequest {
                context: ctx("txn-a"),
                key: KeySource::Generate(KeyType::P256),
                ttl: None,
            },
            pki.now,
        )
        .unwrap();
    let peer = PeerCertificate::from_der(&issued.der).unwrap();
    let verified = verify_client_cert(&peer, &[], &pki.anchors(), pki.now).unwrap();
    assert!(matches!(
        pki.ca.workload(&verified),
        Err(IssueError::TransactionCertAsRequester)
    ));
}

#[test]
fn serials_are_random_positive_and_unique() {
    let pki = Pki::new();
    let id = SpiffeId::parse("spiffe://kairos.local/serials").unwrap();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..1000 {
        let c = pki
            .ca
            .issue_svid(&id, KeySource::Generate(KeyType::P256), None, pki.now)
            .unwrap();
        let (_, x) = x509_parser::parse_x509_certificate(&c.der).unwrap();
        assert!(x.raw_serial()[0] & 0x80 == 0, "serial must be positive");
        assert!(x.raw_serial().len() <= 20);
        assert!(c.serial.len() >= 8);
        assert!(seen.insert(c.serial));
    }
}

#[test]
fn chain_verification_rejects_untrusted_expired_and_wrong_usage() {
    let pki = Pki::new();
    let other = Pki::new();
    let svid = other.svid("/payments-app");
    let peer = PeerCertificate::from_der(&svid.der).unwrap();
    assert!(matches!(
        verify_client_cert(&peer, &[], &pki.anchors(), pki.now),
        Err(VerifyError::Invalid(_))
    ));
    let mine = PeerCertificate::from_der(&pki.svid("/payments-app").der).unwrap();
    verify_client_cert(&mine, &[], &pki.anchors(), pki.now).unwrap();
    assert!(verify_client_cert(&mine, &[], &pki.anchors(), pki.now + Duration::days(2)).is_err());
    assert!(verify_client_cert(&mine, &[], &pki.anchors(), pki.now - Duration::days(1)).is_err());
    let server = pki
        .ca
        .issue_server_cert(
            &["localhost".into()],
            &["127.0.0.1".parse().unwrap()],
            KeySource::Generate(KeyType::P256),
            pki.now,
        )
        .unwrap();
    pki.openssl_verify(&server.pem, "sslserver");
    let server_peer = PeerCertificate::from_der(&server.der).unwrap();
    assert!(
        verify_client_cert(&server_peer, &[], &pki.anchors(), pki.now).is_err(),
        "a serverAuth-only certificate must not authenticate a client"
    );
    assert!(server_peer.has_san(&SubjectAltName::Ip("127.0.0.1".parse().unwrap())));
    assert!(server_peer.has_san(&SubjectAltName::Dns("LOCALHOST".into())));
}

#[test]
fn ca_round_trips_through_pem_and_refuses_a_foreign_key() {
    let dir = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let signer = LocalSigner::generate_p256().unwrap();
    let key_path = dir.path().join("ca.key");
    signer.write_pem_file(&key_path).unwrap();
    let ca = CertificateAuthority::create(
        Arc::new(signer),
        "kairos.local",
        now,
        IssuancePolicy::default(),
    )
    .unwrap();
    let text = openssl_ok(
        &["x509", "-noout", "-text"],
        Some(ca.certificate_pem().as_bytes()),
    );
    assert!(text.contains("CA:TRUE, pathlen:0"), "{text}");
    assert!(text.contains("Certificate Sign"));
    let reloaded = CertificateAuthority::from_pem(
        ca.certificate_pem(),
        LocalSigner::read_pem_file(&key_path).unwrap().into_arc(),
        "kairos.local",
        IssuancePolicy::default(),
    )
    .unwrap();
    // certificates from the reloaded CA verify against the original CA certificate
    let id = SpiffeId::parse("spiffe://kairos.local/w").unwrap();
    let c = reloaded
        .issue_svid(&id, KeySource::Generate(KeyType::Ed25519), None, now)
        .unwrap();
    let peer = PeerCertificate::from_der(&c.der).unwrap();
    let anchors = TrustAnchors::from_ders(vec![ca.certificate_der().to_vec()]).unwrap();
    verify_client_cert(&peer, &[], &anchors, now).unwrap();
    assert!(
        CertificateAuthority::from_pem(
            ca.certificate_pem(),
            LocalSigner::generate_p256().unwrap().into_arc(),
            "kairos.local",
            IssuancePolicy::default(),
        )
        .is_err()
    );
    assert!(format!("{ca:?}").contains("[redacted]"));
}

#[test]
fn psd2_qwac_subject_and_roles_are_parsed_and_matched() {
    use rcgen::{CertificateParams, CustomExtension, DnType, DnValue, KeyPair};
    let stmt = Psd2QcStatement {
        roles: vec![Psd2Role::AccountInformation, Psd2Role::PaymentInitiation],
        nca_name: "Financial Conduct Authority".into(),
        nca_id: "GB-FCA".into(),
    };
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CountryName, "GB");
    p.distinguished_name
        .push(DnType::OrganizationName, "Test TPP Ltd");
    p.distinguished_name.push(
        DnType::CustomDnType(vec![2, 5, 4, 97]),
        DnValue::Utf8String("PSDGB-FCA-123456".into()),
    );
    p.distinguished_name.push(DnType::CommonName, "tpp-client");
    p.custom_extensions = vec![CustomExtension::from_oid_content(
        &[1, 3, 6, 1, 5, 5, 7, 1, 3],
        encode_qc_statements(&stmt),
    )];
    let key = KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    let peer = PeerCertificate::from_der(cert.der()).unwrap();
    assert_eq!(peer.psd2(), Some(&stmt));
    assert_eq!(
        peer.subject().organization_identifier(),
        Some("PSDGB-FCA-123456")
    );
    assert!(peer.is_self_issued());
    let rendered = peer.subject().to_rfc4514();
    assert_eq!(
        rendered,
        "CN=tpp-client,2.5.4.97=#0c1050534447422d4643412d313233343536,O=Test TPP Ltd,C=GB"
    );
    for registered in [
        rendered.as_str(),
        "CN=tpp-client, organizationIdentifier=PSDGB-FCA-123456, O=Test TPP Ltd, C=GB",
        "cn=TPP-client,2.5.4.97=#131050534447422d4643412d313233343536,o=test tpp ltd,c=gb",
    ] {
        let dn = CanonicalDn::parse_rfc4514(registered).unwrap();
        assert!(peer.subject().matches(&dn), "{registered}");
    }
    for other in [
        "C=GB,O=Test TPP Ltd,2.5.4.97=PSDGB-FCA-123456,CN=tpp-client",
        "CN=tpp-client,O=Test TPP Ltd,C=GB",
        "CN=tpp-client,2.5.4.97=PSDGB-FCA-999999,O=Test TPP Ltd,C=GB",
    ] {
        let dn = CanonicalDn::parse_rfc4514(other).unwrap();
        assert!(!peer.subject().matches(&dn), "{other}");
    }
    // openssl can read it too
    let text = openssl_ok(
        &["x509", "-noout", "-subject", "-nameopt", "RFC2253"],
        Some(cert.pem().as_bytes()),
    );
    assert!(
        text.contains("CN=tpp-client,organizationIdentifier=PSDGB-FCA-123456,O=Test TPP Ltd,C=GB"),
        "{text}"
    );
}

#[test]
fn hostile_certificates_are_typed_errors() {
    use rcgen::{CertificateParams, KeyPair, SanType};
    let key = KeyPair::generate().unwrap();
    // two URI SANs: no SPIFFE ID
    let mut p = CertificateParams::default();
    p.subject_alt_names = vec![
        SanType::URI("spiffe://kairos.local/a".try_into().unwrap()),
        SanType::URI("spiffe://kairos.local/b".try_into().unwrap()),
    ];
    let c = p.self_signed(&key).unwrap();
    assert!(
        PeerCertificate::from_der(c.der())
            .unwrap()
            .spiffe_id()
            .is_none()
    );
    // too many SANs
    let mut p = CertificateParams::default();
    p.subject_alt_names = (0..100)
        .map(|i| SanType::DnsName(format!("h{i}.example").try_into().unwrap()))
        .collect();
    let c = p.self_signed(&key).unwrap();
    assert!(matches!(
        PeerCertificate::from_der(c.der()),
        Err(CertError::TooManySans { .. })
    ));
    // an invalid spiffe URI
    let mut p = CertificateParams::default();
    p.subject_alt_names = vec![SanType::URI("spiffe://BAD/x".try_into().unwrap())];
    let c = p.self_signed(&key).unwrap();
    assert!(matches!(
        PeerCertificate::from_der(c.der()),
        Err(CertError::Spiffe(_))
    ));
    // a malformed transaction context extension
    let mut p = CertificateParams::default();
    p.custom_extensions = vec![rcgen::CustomExtension::from_oid_content(
        TRANSACTION_CONTEXT_OID,
        b"\x30\x03\x02\x01\x02".to_vec(),
    )];
    let c = p.self_signed(&key).unwrap();
    assert!(matches!(
        PeerCertificate::from_der(c.der()),
        Err(CertError::Context(_))
    ));
    // garbage, truncation, oversize, trailing bytes
    assert!(PeerCertificate::from_der(b"").is_err());
    assert!(
        PeerCertificate::from_pem(
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        )
        .is_err()
    );
    assert!(matches!(
        PeerCertificate::from_der(&vec![0x30; 1024 * 1024]),
        Err(CertError::TooLarge { .. })
    ));
    let good = Pki::new().svid("/x").der;
    for n in 0..good.len() {
        assert!(PeerCertificate::from_der(&good[..n]).is_err());
    }
    let mut trailing = good.clone();
    trailing.push(0);
    assert_eq!(
        PeerCertificate::from_der(&trailing).unwrap_err(),
        CertError::TrailingData
    );
}

/// The fuzz corpus (issuer/fuzz/corpus) replays through the parsers: nothing may panic.
#[test]
fn fuzz_corpus_replays() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut n = 0;
    for target in ["parse_cert", "parse_csr"] {
        let dir = root.join(target);
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            let _ = PeerCertificate::from_der(&data);
            let _ = PeerCertificate::from_pem(&data);
            let _ = VerifiedCsr::from_der(&data);
            if let Ok(s) = std::str::from_utf8(&data) {
                let _ = VerifiedCsr::from_pem(s);
                let _ = CanonicalDn::parse_rfc4514(s);
            }
            n += 1;
        }
    }
    assert!(n >= 4, "corpus is missing ({n} files)");
}
