//! `kairos`: run the service, issue SVIDs, walk the demo.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use kairos::config::RawConfig;
use kairos_issuer::{KeySource, KeyType, SpiffeId, write_secret_file};
use time::{Duration, OffsetDateTime};

#[derive(Parser)]
#[command(
    name = "kairos",
    version,
    about = "Per-transaction mTLS identities and certificate-bound tokens"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the token service (TLS on loopback by default).
    Serve {
        /// Configuration file (default: kairos.toml when present).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data directory (CA, server certificate, keys, ledger).
        #[arg(long, default_value = "./kairos-data")]
        data_dir: PathBuf,
        /// Listen address (overrides the configuration).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Tokio worker threads (default: one per core).
        #[arg(long)]
        workers: Option<std::num::NonZeroUsize>,
        /// Ledger backend: `embedded` (SQLite in the data directory) or `dynamodb`.
        #[arg(long, default_value = "embedded")]
        store: String,
        /// DynamoDB table (with --store dynamodb).
        #[arg(long)]
        table: Option<String>,
        /// DynamoDB endpoint override (e.g. http://127.0.0.1:8000 for DynamoDB Local).
        #[arg(long)]
        endpoint: Option<String>,
        /// AWS region (default: from the environment).
        #[arg(long)]
        region: Option<String>,
        /// Ledger chain shards.
        #[arg(long, default_value_t = kairos_ledger::DEFAULT_SHARDS)]
        ledger_shards: u32,
        /// Seconds between signed checkpoints of the chain heads.
        #[arg(long, default_value_t = 60)]
        checkpoint_seconds: u64,
        /// Who commits the embedded ledger (`--store embedded` only): `inline`, the requests
        /// themselves, one leading each group (the default), or `writer-thread`, a thread of
        /// its own, so that no request task ever blocks on the disk.
        #[arg(long, value_enum, default_value_t = LedgerCommit::Inline)]
        ledger_commit: LedgerCommit,
    },
    /// The auditor's view of the ledger.
    Audit {
        /// Where the ledger is.
        #[command(flatten)]
        store: kairos::audit_cli::StoreArgs,
        /// What to do.
        #[command(subcommand)]
        cmd: kairos::audit_cli::AuditCmd,
    },
    /// Ledger administration.
    Ledger {
        /// What to do.
        #[command(subcommand)]
        cmd: LedgerCmd,
    },
    /// SPIFFE X509-SVIDs.
    Svid {
        #[command(subcommand)]
        cmd: SvidCmd,
    },
    /// Walk the whole flow on loopback and print each step.
    Demo,
    /// Load-test `POST /token` on a running server over mTLS.
    Bench(kairos::loadgen::BenchArgs),
}

#[derive(Subcommand)]
enum LedgerCmd {
    /// Create the DynamoDB ledger table (key schema, GSIs, TTL attribute).
    CreateTable {
        /// Table name.
        #[arg(long)]
        table: String,
        /// Endpoint override (DynamoDB Local).
        #[arg(long)]
        endpoint: Option<String>,
        /// AWS region.
        #[arg(long)]
        region: Option<String>,
    },
}

#[derive(Subcommand)]
enum SvidCmd {
    /// Issue an SVID for a workload (writes svid.pem and svid.key into --out).
    Issue {
        /// Data directory holding the CA.
        #[arg(long, default_value = "./kairos-data")]
        data_dir: PathBuf,
        /// The workload's SPIFFE ID.
        #[arg(long)]
        spiffe_id: String,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Lifetime in hours.
        #[arg(long, default_value_t = 24)]
        ttl_hours: i64,
        /// Configuration file (for the trust domain).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// Exit code for bad configuration (sysexits EX_USAGE).
const EXIT_CONFIG: u8 = 64;

fn load_config(
    path: Option<PathBuf>,
    listen: Option<SocketAddr>,
) -> Result<kairos::config::Config, String> {
    let raw = match path {
        Some(p) => RawConfig::read(&p).map_err(|e| e.to_string())?,
        None if std::path::Path::new("kairos.toml").exists() => {
            RawConfig::read(std::path::Path::new("kairos.toml")).map_err(|e| e.to_string())?
        }
        None => RawConfig::default(),
    };
    raw.validate(listen).map_err(|e| e.to_string())
}

/// mimalloc instead of glibc's allocator: with the ledger committing inline, 1–33 µs less server
/// CPU per token in 15 of 15 pairs at 32 and 64 keep-alive connections (kairos/BENCH.md,
/// section K).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let mut rt_builder = tokio::runtime::Builder::new_multi_thread();
    if let Cmd::Serve {
        workers: Some(n), ..
    } = &cli.cmd
    {
        rt_builder.worker_threads(n.get());
    }
    let rt = match rt_builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kairos: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.cmd {
        Cmd::Serve {
            config,
            data_dir,
            listen,
            store,
            table,
            endpoint,
            region,
            ledger_shards,
            checkpoint_seconds,
            ledger_commit,
            ..
        } => {
            let ledger_args = LedgerArgs {
                store: kairos::audit_cli::StoreArgs {
                    data_dir: data_dir.clone(),
                    store,
                    table,
                    endpoint,
                    region,
                },
                shards: ledger_shards,
                checkpoint_seconds,
                commit: match ledger_commit {
                    LedgerCommit::Inline => kairos_ledger::CommitMode::Inline,
                    LedgerCommit::WriterThread => kairos_ledger::CommitMode::WriterThread,
                },
            };
            let cfg = match load_config(config, listen) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("kairos: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            match rt.block_on(serve(cfg, data_dir, ledger_args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("kairos: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Svid {
            cmd:
                SvidCmd::Issue {
                    data_dir,
                    spiffe_id,
                    out,
                    ttl_hours,
                    config,
                },
        } => {
            let cfg = match load_config(config, None) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("kairos: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            match svid_issue(&cfg, &data_dir, &spiffe_id, &out, ttl_hours) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("kairos: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Audit { store, cmd } => match rt.block_on(kairos::audit_cli::run(&store, cmd)) {
            Ok(code) => ExitCode::from(code),
            Err(e) => {
                eprintln!("kairos audit: {e:#}");
                ExitCode::from(2)
            }
        },
        Cmd::Ledger {
            cmd:
                LedgerCmd::CreateTable {
                    table,
                    endpoint,
                    region,
                },
        } => {
            let args = kairos::audit_cli::StoreArgs {
                data_dir: PathBuf::from("."),
                store: "dynamodb".into(),
                table: Some(table.clone()),
                endpoint,
                region,
            };
            let r = rt.block_on(async {
                let client = args.dynamo_config(table.clone()).client().await;
                kairos_ledger::create_table(&client, &table).await
            });
            match r {
                Ok(created) => {
                    println!(
                        "table {table}: {}",
                        if created { "created" } else { "already exists" }
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("kairos ledger create-table: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Demo => match rt.block_on(kairos::demo::run()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("kairos demo: {e:#}");
                ExitCode::FAILURE
            }
        },
        Cmd::Bench(args) => match rt.block_on(kairos::loadgen::run(args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("kairos bench: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// `kairos serve --ledger-commit` (see `kairos_ledger::CommitMode`).
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LedgerCommit {
    /// The requests themselves.
    Inline,
    /// A thread of the store's own.
    WriterThread,
}

struct LedgerArgs {
    store: kairos::audit_cli::StoreArgs,
    shards: u32,
    checkpoint_seconds: u64,
    commit: kairos_ledger::CommitMode,
}

async fn serve(
    cfg: kairos::config::Config,
    data_dir: PathBuf,
    ledger_args: LedgerArgs,
) -> anyhow::Result<()> {
    let ledger = match ledger_args.store.store.as_str() {
        "embedded" => kairos::ledger_audit::open_embedded_with(
            &data_dir,
            ledger_args.shards,
            ledger_args.commit,
        )?,
        "dynamodb" => {
            let table = ledger_args
                .store
                .table
                .clone()
                .ok_or_else(|| anyhow::anyhow!("--store dynamodb needs --table"))?;
            std::fs::create_dir_all(&data_dir)?;
            let key = kairos::ledger_audit::load_or_create_key(&data_dir)?;
            let store =
                kairos_ledger::DynamoStore::connect(&ledger_args.store.dynamo_config(table)).await;
            Arc::new(kairos_ledger::Ledger::new(
                Arc::new(store),
                key,
                ledger_args.shards,
            ))
        }
        other => anyhow::bail!("--store must be embedded or dynamodb, not {other:?}"),
    };
    // the public key, for auditors (also served at /ledger/jwks)
    std::fs::write(
        data_dir.join("ledger-public.pem"),
        ledger.key().public_spki_pem()?,
    )?;
    let ledger_jwk = serde_json::to_value(ledger.key().public_jwk())?;
    let checkpoints = kairos_ledger::spawn_checkpoint_task(
        ledger.clone(),
        std::time::Duration::from_secs(ledger_args.checkpoint_seconds.max(1)),
        || {
            i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
                .unwrap_or(0)
        },
        |e| tracing::warn!(error = %e, "ledger checkpoint failed"),
    );
    let audit = Arc::new(kairos::ledger_audit::LedgerAudit::new(ledger.clone()));
    let running = kairos::serve::start(&cfg, &data_dir, audit, vec![ledger_jwk]).await?;
    let issuer = running.state.settings().issuer.clone();
    if running.data.created {
        println!(
            "Created {} (dev CA, server certificate, token key)",
            data_dir.display()
        );
    }
    println!("Kairos issuer: {issuer}");
    println!("  discovery:   {issuer}/.well-known/oauth-authorization-server");
    println!("  CA bundle:   {}", data_dir.join("ca.pem").display());
    println!(
        "  ledger:      {} ({})",
        ledger_args.store.store,
        data_dir.join("ledger-public.pem").display()
    );
    shutdown_signal().await;
    running.stop().await;
    checkpoints.abort();
    let now_ms = i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(0);
    if let Err(e) = ledger.checkpoint(now_ms).await {
        tracing::warn!(error = %e, "final ledger checkpoint failed");
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn svid_issue(
    cfg: &kairos::config::Config,
    data_dir: &std::path::Path,
    spiffe_id: &str,
    out: &std::path::Path,
    ttl_hours: i64,
) -> anyhow::Result<()> {
    if !data_dir.join("ca.pem").exists() {
        anyhow::bail!(
            "{} holds no CA: run `kairos serve --data-dir {}` once first",
            data_dir.display(),
            data_dir.display()
        );
    }
    let data = kairos::bootstrap::open(
        data_dir,
        &cfg.trust_domain,
        cfg.token_alg,
        &["localhost".to_owned()],
        &[[127, 0, 0, 1].into()],
        OffsetDateTime::now_utc(),
    )?;
    let id = SpiffeId::parse(spiffe_id)?;
    let issued = data.ca.issue_svid(
        &id,
        KeySource::Generate(KeyType::P256),
        Some(Duration::hours(ttl_hours)),
        OffsetDateTime::now_utc(),
    )?;
    std::fs::create_dir_all(out)?;
    std::fs::write(
        out.join("svid.pem"),
        format!("{}{}", issued.pem, issued.chain_pem),
    )?;
    let key = issued
        .private_key_pem()
        .ok_or_else(|| anyhow::anyhow!("no key generated"))?;
    write_secret_file(&out.join("svid.key"), key.as_bytes())?;
    println!(
        "Wrote {} and {} for {id} (valid until {})",
        out.join("svid.pem").display(),
        out.join("svid.key").display(),
        issued.not_after
    );
    Ok(())
}
