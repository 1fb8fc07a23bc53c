//! Issuance and parsing benchmarks (`cargo bench -p kairos-issuer`).
//!
//! Targets (issue 2): CSR path ≤ 60 µs median, keygen path (P-256) ≤ 100 µs, parse + thumbprint
//! ≤ 10 µs.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use kairos_issuer::*;
use time::OffsetDateTime;

fn setup() -> (CertificateAuthority, Workload, OffsetDateTime) {
    let now = OffsetDateTime::now_utc();
    let ca = CertificateAuthority::create(
        LocalSigner::generate_p256().unwrap().into_arc(),
        "kairos.local",
        now,
        IssuancePolicy::default(),
    )
    .unwrap();
    let id = SpiffeId::parse("spiffe://kairos.local/bench").unwrap();
    let svid = ca
        .issue_svid(&id, KeySource::Generate(KeyType::P256), None, now)
        .unwrap();
    let peer = PeerCertificate::from_der(&svid.der).unwrap();
    let anchors = TrustAnchors::from_ders(vec![ca.certificate_der().to_vec()]).unwrap();
    let verified = verify_client_cert(&peer, &[], &anchors, now).unwrap();
    let workload = ca.workload(&verified).unwrap();
    (ca, workload, now)
}

fn context() -> TransactionContext {
    TransactionContext::new(
        "txn-bench-0001",
        Some("sess-1".into()),
        BTreeMap::from([
            ("device".to_owned(), "pixel-8".to_owned()),
            ("geo".to_owned(), "GB-LND".to_owned()),
        ]),
    )
    .unwrap()
}

fn csr_der() -> Vec<u8> {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec![]).unwrap();
    params.serialize_request(&key).unwrap().der().to_vec()
}

fn benches(c: &mut Criterion) {
    let (ca, workload, now) = setup();
    let csr = csr_der();
    c.bench_function("issue/csr_p256 (parse+PoP+sign)", |b| {
        b.iter(|| {
            let verified = VerifiedCsr::from_der(black_box(&csr)).unwrap();
            ca.issue_transaction_cert(
                &workload,
                TransactionRequest {
                    context: context(),
                    key: KeySource::Csr(verified),
                    ttl: None,
                },
                now,
            )
            .unwrap()
        })
    });
    for (name, kt) in [
        ("issue/keygen_p256", KeyType::P256),
        ("issue/keygen_ed25519", KeyType::Ed25519),
        ("issue/keygen_rsa2048", KeyType::Rsa2048),
    ] {
        let mut group = c.benchmark_group(name);
        if kt == KeyType::Rsa2048 {
            group.sample_size(20);
        }
        group.bench_function(name, |b| {
            b.iter(|| {
                ca.issue_transaction_cert(
                    &workload,
                    TransactionRequest {
                        context: context(),
                        key: KeySource::Generate(kt),
                        ttl: None,
                    },
                    now,
                )
                .unwrap()
            })
        });
        group.finish();
    }
    let cert = ca
        .issue_transaction_cert(
            &workload,
            TransactionRequest {
                context: context(),
                key: KeySource::Generate(KeyType::P256),
                ttl: None,
            },
            now,
        )
        .unwrap();
    c.bench_function("peer/parse+thumbprint", |b| {
        b.iter(|| {
            let p = PeerCertificate::from_der(black_box(&cert.der)).unwrap();
            p.thumbprint().to_base64url()
        })
    });
}

criterion_group!(issuer, benches);
criterion_main!(issuer);
