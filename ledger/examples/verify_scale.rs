//! How long `verify_all` takes, and how much memory it holds, on a large sealed ledger:
//! `cargo run --release -p kairos-ledger --no-default-features --example verify_scale -- N`
//! appends N token records (random transaction ids over 16 chains, 64 concurrent writers, so
//! commits and their seals span chains) to a temporary embedded store, then verifies it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;

use kairos_ledger::{Ledger, LedgerKey, PublicKeySet, RecordBody, RecordMeta, SqliteStore, Store};

/// Peak and current resident memory, from /proc/self/status.
fn memory() -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("VmHWM") || l.starts_with("VmRSS"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(", ")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map_or(100_000, |s| s.parse().expect("N: a number of records"));
    let dir = tempfile::tempdir().unwrap();
    let key = LedgerKey::generate().unwrap();
    let keys = PublicKeySet::new().with(key.verifying_key());
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("l.sqlite")).unwrap());
    let ledger = Arc::new(Ledger::new(store, key, 16));
    let writers = 64u64;
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let l = ledger.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..n / writers {
                let h = kairos_ledger::sha256_hex(&(w * 1_000_000_000 + i).to_le_bytes());
                let body = RecordBody::TokenIssued {
                    jti: h[..22].to_owned(),
                    client_id: "client".into(),
                    scope: "payments".into(),
                    cnf_x5t_s256: "x5t".into(),
                    txn: Some(format!("txn-{}", &h[22..40])),
                    exp: 1_750_000_600,
                    grant_type: "client_credentials".into(),
                };
                let at = RecordMeta::at(1_750_000_000_000 + i64::try_from(i).unwrap());
                l.append(body, at).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    println!(
        "appended {} records in {:.1} s ({})",
        n / writers * writers,
        t0.elapsed().as_secs_f64(),
        memory()
    );
    let t1 = Instant::now();
    let r = ledger.verify_all(&keys).await.unwrap();
    println!(
        "verified: ok={} records={} seals={} chains={} in {:.1} s ({})",
        r.is_ok(),
        r.records,
        r.seals,
        r.chains,
        t1.elapsed().as_secs_f64(),
        memory()
    );
}
