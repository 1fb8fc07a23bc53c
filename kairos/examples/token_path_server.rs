//! Benchmark harness, not a product: `kairos serve` with the ledger replaced by an in-memory
//! audit log, to measure the token path alone (TLS, HTTP, client authentication, JWT) against
//! the issue-3 floor, which is "a bare rustls+hyper endpoint that does nothing but sign an ES256
//! JWT with `cnf`". The real server never runs without its durable ledger; this binary exists so
//! that the two costs, token path and ledger, can be measured apart (kairos/BENCH.md, section E).
//!
//! ```sh
//! cargo build --release --example token_path_server
//! taskset -c 0 target/release/examples/token_path_server DATA_DIR 127.0.0.1:18444 &
//! taskset -c 1 target/release/kairos bench --data-dir DATA_DIR \
//!     --target https://127.0.0.1:18444 --mode keepalive --connections 4 --server-pid PID
//! ```

use std::sync::Arc;

#[path = "support/harness.rs"]
mod harness;

fn main() -> anyhow::Result<()> {
    let (data_dir, cfg, _) = harness::args("token_path_server DATA_DIR LISTEN_ADDR")?;
    harness::serve(
        &cfg,
        &data_dir,
        Arc::new(kairos_authz::MemoryAuditLog::default()),
        "token path (in-memory audit, NOT durable)",
    )
}
