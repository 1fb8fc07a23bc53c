//! `kairos serve`: wires configuration, data directory, ledger and router to the TLS edge.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use kairos_authz::{
    AppState, AppStateBuilder, AuditLog, AuthzSettings, ClientRegistry, ClientTrust, SystemClock,
    router,
};
use kairos_issuer::TrustAnchors;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::bootstrap::{self, DataDir};
use crate::config::Config;

/// A server running in this process.
pub struct Running {
    /// The bound address.
    pub addr: SocketAddr,
    /// The data directory in use.
    pub data: DataDir,
    /// The router state.
    pub state: AppState,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops accepting, lets open requests finish, and waits.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

/// Names the server certificate must carry for `listen`.
fn server_names(cfg: &Config) -> (Vec<String>, Vec<IpAddr>) {
    let mut names = vec!["localhost".to_owned()];
    let mut ips: Vec<IpAddr> = vec![[127, 0, 0, 1].into()];
    if let Some(host) = cfg
        .issuer
        .strip_prefix("https://")
        .and_then(|h| h.split('/').next())
    {
        let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        match host.parse::<IpAddr>() {
            Ok(ip) if !ips.contains(&ip) => ips.push(ip),
            Ok(_) => {}
            Err(_) if !names.iter().any(|n| n == host) => names.push(host.to_owned()),
            Err(_) => {}
        }
    }
    (names, ips)
}

/// Builds the router state from a configuration and a data directory.
pub fn build_state(
    cfg: &Config,
    data: &DataDir,
    audit: Arc<dyn AuditLog>,
    extra_jwks: Vec<serde_json::Value>,
) -> anyhow::Result<AppState> {
    let kairos = TrustAnchors::from_ders(vec![data.ca.certificate_der().to_vec()])?;
    let external = if cfg.client_ca_files.is_empty() {
        None
    } else {
        let mut ders = Vec::new();
        for f in &cfg.client_ca_files {
            let text = std::fs::read(f)
                .map_err(|e| anyhow::anyhow!("client_ca_files {}: {e}", f.display()))?;
            ders.extend(kairos_issuer::pem_certificates(&text)?);
        }
        Some(TrustAnchors::from_ders(ders)?)
    };
    Ok(AppStateBuilder {
        settings: AuthzSettings {
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
            token_ttl: cfg.token_ttl,
        },
        registry: ClientRegistry::new(cfg.clients.clone())?,
        ca: data.ca.clone(),
        trust: ClientTrust::new(kairos, external),
        token_key: data.token_key.clone(),
        extra_jwks,
        audit,
        clock: Arc::new(SystemClock),
    }
    .build())
}

/// Opens the data directory, binds `cfg.listen` and starts serving.
pub async fn start(
    cfg: &Config,
    data_dir: &Path,
    audit: Arc<dyn AuditLog>,
    extra_jwks: Vec<serde_json::Value>,
) -> anyhow::Result<Running> {
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let mut cfg = cfg.clone();
    if !cfg.issuer_explicit {
        // the issuer follows the bound address (matters when listening on port 0)
        let audience_followed = cfg.audience == cfg.issuer;
        cfg.issuer = format!("https://{}", crate::config::issuer_host(addr));
        if audience_followed {
            cfg.audience = cfg.issuer.clone();
        }
    }
    let cfg = &cfg;
    let (names, ips) = server_names(cfg);
    let data = bootstrap::open(
        data_dir,
        &cfg.trust_domain,
        cfg.token_alg,
        &names,
        &ips,
        OffsetDateTime::now_utc(),
    )?;
    let state = build_state(cfg, &data, audit, extra_jwks)?;
    let tls = crate::tls::server_config(&data.server_chain_pem, &data.server_key_pem)?;
    let (tx, rx) = watch::channel(false);
    let app = router(state.clone());
    let task = tokio::spawn(crate::tls::serve(listener, tls, app, rx));
    Ok(Running {
        addr,
        data,
        state,
        shutdown: tx,
        task,
    })
}
