//! The load tool (`kairos bench`) against a real server: both modes, and with a given identity
//! (`--cert/--key/--cacert`, the way it drives a peer server).

use kairos::loadgen::{BenchArgs, Mode, bench};

use crate::support::*;

fn args(h: &Harness) -> BenchArgs {
    BenchArgs {
        data_dir: h._dir.path().to_owned(),
        target: h.addr.to_string(),
        mode: Mode::Keepalive,
        connections: 2,
        duration: 1,
        warmup: 0,
        server_pid: Some(std::process::id()),
        client_id: "payments-app".into(),
        trust_domain: "kairos.local".into(),
        scope: None,
        svid: false,
        resumption: false,
        certificates: 1,
        json: true,
        cert: None,
        key: None,
        cacert: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_tool_reports_tokens_latency_and_server_cpu() {
    let h = Harness::start().await;
    for mode in [Mode::Keepalive, Mode::Handshake] {
        let r = bench(&BenchArgs { mode, ..args(&h) }).await.unwrap();
        assert!(r.requests > 0, "{mode:?}: no token");
        assert_eq!(r.errors, 0, "{mode:?}: {:?}", r.first_error);
        assert!(r.latency_us.p50 > 0.0 && r.latency_us.p99 >= r.latency_us.p50);
        assert!(r.server_cpu_per_request_us.is_some());
        assert!(r.tls.starts_with("TLSv1_3"), "{}", r.tls);
    }
    // every token the tool obtained went through the audit log
    let issued = h
        .audit
        .events()
        .iter()
        .filter(|(e, _)| matches!(e, kairos_authz::AuditEvent::TokenIssued { .. }))
        .count();
    assert!(issued > 0);
}

/// Runs the tool against a fresh server with `tweak` applied to the default arguments, checks
/// that every certificate carried load (more than the one checked request the tool makes with
/// each before the run), and returns the transactions the tokens were issued for.
async fn spread_over_certificates(
    tweak: impl FnOnce(BenchArgs) -> BenchArgs,
) -> std::collections::BTreeSet<Option<String>> {
    let h = Harness::start().await;
    let a = tweak(args(&h));
    let want = usize::from(a.certificates);
    let r = bench(&a).await.unwrap();
    assert_eq!((r.errors, r.certificates), (0, want), "{:?}", r.first_error);
    let mut bound = std::collections::BTreeMap::<String, usize>::new();
    let mut txns = std::collections::BTreeSet::new();
    for (e, _) in h.audit.events() {
        if let kairos_authz::AuditEvent::TokenIssued {
            cnf_x5t_s256, txn, ..
        } = e
        {
            *bound.entry(cnf_x5t_s256).or_default() += 1;
            txns.insert(txn);
        }
    }
    assert_eq!(bound.len(), want, "{bound:?}");
    assert!(bound.values().all(|&n| n > 1), "{bound:?}");
    txns
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_tool_spreads_connections_over_distinct_transaction_certificates() {
    // a transaction certificate per connection, each for its own transaction
    let txns = spread_over_certificates(|a| BenchArgs {
        connections: 3,
        certificates: 3,
        ..a
    })
    .await;
    assert_eq!(txns.len(), 3, "{txns:?}");
    assert!(txns.iter().all(Option::is_some), "{txns:?}");
    // more certificates than connections, a handshake per request: each connection cycles
    // through its share
    let txns = spread_over_certificates(|a| BenchArgs {
        mode: Mode::Handshake,
        connections: 2,
        certificates: 4,
        ..a
    })
    .await;
    assert_eq!(txns.len(), 4, "{txns:?}");
    // with --svid: as many SVIDs, distinct keys, no transaction
    let txns = spread_over_certificates(|a| BenchArgs {
        svid: true,
        connections: 2,
        certificates: 2,
        ..a
    })
    .await;
    assert_eq!(txns.into_iter().collect::<Vec<_>>(), vec![None]);
    // refused before anything is issued or loaded: several certificates with a given one (one
    // identity), more certificates than kept-alive connections (each connection keeps its
    // first), and none at all
    let h = Harness::start().await;
    let files = tempfile::tempdir().unwrap();
    let p = files.path().join("x.pem");
    std::fs::write(&p, "").unwrap();
    let given = BenchArgs {
        cert: Some(p.clone()),
        key: Some(p.clone()),
        cacert: Some(p),
        connections: 3,
        certificates: 3,
        ..args(&h)
    };
    let idle = BenchArgs {
        connections: 2,
        certificates: 3,
        ..args(&h)
    };
    let none = BenchArgs {
        certificates: 0,
        ..args(&h)
    };
    for (refused, says) in [
        (given, "--certificates applies"),
        (idle, "only 2 of them would carry load"),
        (none, "--certificates must be at least 1"),
    ] {
        let err = format!("{:#}", bench(&refused).await.unwrap_err());
        assert!(err.contains(says), "{err}");
    }
    assert!(h.audit.events().is_empty(), "{:?}", h.audit.events());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_tool_drives_any_endpoint_with_a_given_identity() {
    let h = Harness::start().await;
    let svid = h.svid("/payments-app");
    let files = tempfile::tempdir().unwrap();
    let path = |name: &str, text: &str| {
        let p = files.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let given = BenchArgs {
        // nothing is read from a data directory in this mode
        data_dir: files.path().join("absent"),
        cert: Some(path("client.pem", &svid.cert_pem)),
        key: Some(path("client.key", &svid.key_pem)),
        cacert: Some(path("ca.pem", &h.ca_pem)),
        ..args(&h)
    };
    let r = bench(&given).await.unwrap();
    assert!(r.requests > 0);
    assert_eq!(r.errors, 0, "{:?}", r.first_error);
    // a certificate from another CA: the first, checked request fails loudly, naming /token
    let other = Harness::start().await;
    let stranger = other.svid("/payments-app");
    let refused = BenchArgs {
        cert: Some(path("stranger.pem", &stranger.cert_pem)),
        key: Some(path("stranger.key", &stranger.key_pem)),
        ..given
    };
    let err = bench(&refused).await.unwrap_err().to_string();
    assert!(err.contains("/token"), "{err}");
}
