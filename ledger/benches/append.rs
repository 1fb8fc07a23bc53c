//! Embedded-store append benchmarks (`cargo bench -p kairos-ledger --bench append`).
//!
//! Targets (issue 4): ≥ 5,000 durable appends/s on 2 cores (group commit allowed) and ≤ 100 µs
//! median CPU added per record. The database lives on the real disk (a temp dir under the
//! system temp dir; ext4 here), WAL + `synchronous=FULL`, so every acknowledged append has been
//! fsynced.
//!
//! Besides criterion's timings (time per element; see "thrpt" for appends/s), `main` prints
//! the median process CPU (user + sys, all threads) per append over several rounds.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use kairos_ledger::{Ledger, LedgerKey, RecordBody, RecordMeta, SqliteStore, Store};

static N: AtomicU64 = AtomicU64::new(0);

fn body() -> (RecordBody, RecordMeta) {
    let n = N.fetch_add(1, Ordering::Relaxed);
    // Random-looking ids (as UUIDs are): every index insert lands on a random page.
    let h = kairos_ledger::sha256_hex(&n.to_le_bytes());
    let txn = format!("txn-{}", &h[..32]);
    let body = RecordBody::TokenIssued {
        jti: h[32..].to_owned(),
        client_id: format!("client-{}", n % 50),
        scope: "payments accounts".into(),
        cnf_x5t_s256: format!("x5t-{}", n % 500),
        txn: Some(txn),
        exp: 1_750_000_600,
        grant_type: "client_credentials".into(),
    };
    let meta = RecordMeta::at(1_750_000_000_000 + n as i64).request_id(format!("req-{}", &h[..16]));
    (body, meta)
}

fn setup() -> (tempfile::TempDir, Arc<Ledger>) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("l.sqlite")).unwrap());
    let ledger = Arc::new(Ledger::new(store, LedgerKey::generate().unwrap(), 16));
    (dir, ledger)
}

async fn run_writers(ledger: &Arc<Ledger>, writers: u64, per_writer: u64) {
    let mut tasks = Vec::with_capacity(writers as usize);
    for _ in 0..writers {
        let l = ledger.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_writer {
                let (b, m) = body();
                l.append(b, m).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn benches(c: &mut Criterion) {
    let rt = runtime();
    let (_dir, ledger) = setup();
    let mut g = c.benchmark_group("sqlite_append");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(1));
    g.bench_function("one_writer", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                run_writers(&ledger, 1, iters).await;
                start.elapsed()
            })
        })
    });
    for writers in [16u64, 64, 256] {
        g.throughput(Throughput::Elements(writers));
        g.bench_function(format!("{writers}_writers"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    run_writers(&ledger, writers, iters).await;
                    start.elapsed()
                })
            })
        });
    }
    g.finish();
}

/// Process CPU time (user + sys) in seconds, from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat(5) are at 11 and 12 after the ")" (state is field 3).
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn cpu_report() {
    let rt = runtime();
    // `LEDGER_BENCH_WRITERS=1,4,64` picks the writer counts (default 1, 4 and 64).
    let counts: Vec<u64> = std::env::var("LEDGER_BENCH_WRITERS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 4, 64]);
    for writers in counts {
        let (_dir, ledger) = setup();
        let per_round = if writers == 1 { 1_000 } else { 6_400 };
        let mut cpu = Vec::new();
        let mut rate = Vec::new();
        for _ in 0..7 {
            let c0 = cpu_seconds();
            let t0 = Instant::now();
            rt.block_on(run_writers(&ledger, writers, per_round / writers));
            let wall = t0.elapsed().as_secs_f64();
            cpu.push((cpu_seconds() - c0) / per_round as f64 * 1e6);
            rate.push(per_round as f64 / wall);
        }
        cpu.sort_by(f64::total_cmp);
        rate.sort_by(f64::total_cmp);
        println!(
            "cpu_report writers={writers}: median CPU per append {:.1} us (min {:.1}, max {:.1}); \
             median {:.0} appends/s",
            cpu[3], cpu[0], cpu[6], rate[3]
        );
    }
}

fn main() {
    // `LEDGER_BENCH_CPU_ONLY=1` skips criterion and prints only the CPU report.
    if std::env::var_os("LEDGER_BENCH_CPU_ONLY").is_none() {
        let mut c = Criterion::default().configure_from_args();
        benches(&mut c);
        c.final_summary();
    }
    if !std::env::args().any(|a| a == "--test" || a == "--list") {
        cpu_report();
    }
}
