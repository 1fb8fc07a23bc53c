//! Shared by the benchmark harnesses (`token_path_server`, `durable_floor_server`,
//! `bare_durable_server`); not an example itself. Each runs `kairos serve`'s server, with one
//! worker, over an audit log of its own.

use std::path::PathBuf;
use std::sync::Arc;

use kairos::config::Config;
use kairos_authz::AuditLog;

/// The command line every harness takes: `DATA_DIR LISTEN_ADDR [...]` (`usage` says it in full
/// when it is wrong). Returns the data directory, the default configuration listening there,
/// and the arguments after those two.
pub fn args(usage: &str) -> anyhow::Result<(PathBuf, Config, std::iter::Skip<std::env::Args>)> {
    let mut args = std::env::args().skip(1);
    let (Some(data_dir), Some(listen)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: {usage}");
    };
    let cfg = kairos::config::RawConfig::default()
        .validate(Some(listen.parse()?))
        .map_err(|e| anyhow::anyhow!("{}", e.0))?;
    Ok((PathBuf::from(data_dir), cfg, args))
}

/// Serves with `audit` on a one-worker runtime until Ctrl-C, after printing `what` and the
/// issuer URL.
pub fn serve(
    cfg: &Config,
    data_dir: &std::path::Path,
    audit: Arc<dyn AuditLog>,
    what: &str,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let running = kairos::serve::start(cfg, data_dir, audit, vec![]).await?;
        println!("{what}: {}", running.state.settings().issuer);
        tokio::signal::ctrl_c().await?;
        running.stop().await;
        Ok(())
    })
}
