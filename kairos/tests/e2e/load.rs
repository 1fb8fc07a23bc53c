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
