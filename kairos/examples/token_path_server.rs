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

use std::path::PathBuf;
use std::sync::Arc;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(data_dir), Some(listen)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: token_path_server DATA_DIR LISTEN_ADDR");
    };
    let cfg = kairos::config::RawConfig::default()
        .validate(Some(listen.parse()?))
        .map_err(|e| anyhow::anyhow!("{}", e.0))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let audit = Arc::new(kairos_authz::MemoryAuditLog::default());
        let running = kairos::serve::start(&cfg, &PathBuf::from(data_dir), audit, vec![]).await?;
        println!(
            "token path (in-memory audit, NOT durable): {}",
            running.state.settings().issuer
        );
        tokio::signal::ctrl_c().await?;
        running.stop().await;
        Ok(())
    })
}
