//! `kairos audit …`: the auditor's view of the ledger — show, query, verify, export — against
//! the embedded file or DynamoDB. Every use is itself recorded (`auditor_access`).

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};
use kairos_ledger::{
    DynamoConfig, DynamoStore, Ledger, PublicKeySet, Query, Record, RecordBody, RecordMeta, Seal,
    SqliteStore, Store, VerifyReport, verify_store,
};
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Where the ledger lives.
#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// Data directory of the embedded ledger (`ledger.sqlite`, `ledger.key`).
    #[arg(long, default_value = "./kairos-data")]
    pub data_dir: PathBuf,
    /// `embedded` (default) or `dynamodb`.
    #[arg(long, default_value = "embedded")]
    pub store: String,
    /// DynamoDB table.
    #[arg(long)]
    pub table: Option<String>,
    /// DynamoDB endpoint override (e.g. DynamoDB Local).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// AWS region.
    #[arg(long)]
    pub region: Option<String>,
}

impl StoreArgs {
    /// Opens the store.
    pub async fn open(&self) -> anyhow::Result<Arc<dyn Store>> {
        match self.store.as_str() {
            "embedded" => {
                let path = self.data_dir.join("ledger.sqlite");
                if !path.exists() {
                    anyhow::bail!("{} does not exist", path.display());
                }
                Ok(Arc::new(SqliteStore::open(&path)?))
            }
            "dynamodb" => {
                let table = self
                    .table
                    .clone()
                    .ok_or_else(|| anyhow::anyhow!("--store dynamodb needs --table"))?;
                Ok(Arc::new(
                    DynamoStore::connect(&self.dynamo_config(table)).await,
                ))
            }
            other => anyhow::bail!("--store must be embedded or dynamodb, not {other:?}"),
        }
    }

    /// The DynamoDB settings.
    pub fn dynamo_config(&self, table: String) -> DynamoConfig {
        let mut c = DynamoConfig::new(table);
        c.region = self.region.clone();
        if let Some(e) = &self.endpoint {
            c.endpoint_url = Some(e.clone());
            // a local endpoint (DynamoDB Local) takes dummy credentials
            c.local_credentials =
                e.starts_with("http://127.0.0.1") || e.starts_with("http://localhost");
        }
        c
    }
}

/// Auditor commands.
#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// Every record of a transaction.
    Show {
        /// Transaction id.
        #[arg(long, allow_hyphen_values = true)]
        transaction: String,
        /// Output options.
        #[command(flatten)]
        out: Out,
    },
    /// Records by client and time range, serial, thumbprint or jti.
    Query {
        /// Client id (with --since/--until).
        #[arg(long, allow_hyphen_values = true)]
        client: Option<String>,
        /// RFC 3339 lower bound (default: the epoch).
        #[arg(long)]
        since: Option<String>,
        /// RFC 3339 upper bound (default: now).
        #[arg(long)]
        until: Option<String>,
        /// Certificate serial (hex).
        #[arg(long, allow_hyphen_values = true)]
        serial: Option<String>,
        /// Certificate thumbprint (`x5t#S256`).
        #[arg(long, allow_hyphen_values = true)]
        thumbprint: Option<String>,
        /// Token id.
        #[arg(long, allow_hyphen_values = true)]
        jti: Option<String>,
        /// Output options.
        #[command(flatten)]
        out: Out,
    },
    /// Re-check every signature, seal, chain link and checkpoint; exit 1 naming the first bad
    /// record.
    Verify {
        /// Output options.
        #[command(flatten)]
        out: Out,
    },
    /// A self-contained evidence bundle for a transaction (records, the seals that prove the
    /// sealed ones, public keys, CA certificate, verification result), as JSON.
    Export {
        /// Transaction id.
        #[arg(long, allow_hyphen_values = true)]
        transaction: String,
        /// Output file (default: stdout).
        #[arg(long)]
        out_file: Option<PathBuf>,
    },
}

/// Output options.
#[derive(Args, Debug, Clone)]
pub struct Out {
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// Who is asking (recorded).
    #[arg(long, default_value = "auditor")]
    pub actor: String,
}

fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

fn parse_time(s: &str) -> anyhow::Result<i64> {
    let t = OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| anyhow::anyhow!("{s:?} is not an RFC 3339 time: {e}"))?;
    Ok(i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0))
}

fn fmt_time(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

fn summary(body: &RecordBody) -> String {
    match body {
        RecordBody::CertificateIssued {
            serial_hex,
            x5t_s256,
            spiffe_id,
            not_after,
            ..
        } => {
            format!(
                "serial={serial_hex} x5t={x5t_s256} spiffe={spiffe_id} not_after={}",
                fmt_time(not_after * 1000)
            )
        }
        RecordBody::TokenIssued {
            jti,
            scope,
            cnf_x5t_s256,
            exp,
            ..
        } => {
            format!(
                "jti={jti} scope=\"{scope}\" cnf={cnf_x5t_s256} exp={}",
                fmt_time(exp * 1000)
            )
        }
        RecordBody::TokenRefreshed {
            jti, cnf_x5t_s256, ..
        } => format!("jti={jti} cnf={cnf_x5t_s256}"),
        RecordBody::TokenRevoked { jti, reason, .. } => format!("jti={jti} reason={reason}"),
        RecordBody::ClientAuthFailed {
            reason_code,
            presented_x5t_s256,
            ..
        } => format!(
            "reason={reason_code} presented={}",
            presented_x5t_s256.as_deref().unwrap_or("-")
        ),
        RecordBody::AuditorAccess {
            actor,
            action,
            query,
        } => {
            format!("actor={actor} action={action} query={query}")
        }
        other => other.kind().to_owned(),
    }
}

fn print_records(records: &[Record], json_out: bool) -> anyhow::Result<()> {
    if json_out {
        println!("{}", serde_json::to_string_pretty(records)?);
        return Ok(());
    }
    println!(
        "{:<24} {:<10} {:>5}  {:<18} {:<20} {:<14} details",
        "time", "chain", "seq", "kind", "transaction", "client"
    );
    for r in records {
        let c = &r.content;
        println!(
            "{:<24} {:<10} {:>5}  {:<18} {:<20} {:<14} {}",
            fmt_time(c.time),
            c.chain,
            c.seq,
            c.body.kind(),
            c.transaction_id.as_deref().unwrap_or("-"),
            c.client_id.as_deref().unwrap_or("-"),
            summary(&c.body)
        );
    }
    println!("{} record(s)", records.len());
    Ok(())
}

async fn all_pages(store: &dyn Store, q: &Query) -> anyhow::Result<Vec<Record>> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store.query(q, 500, cursor.as_deref()).await?;
        out.extend(page.records);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(out),
        }
    }
}

/// Records the auditor's access, when the ledger key is at hand (embedded data directory).
async fn record_access(
    args: &StoreArgs,
    store: Arc<dyn Store>,
    actor: &str,
    action: &str,
    query: String,
) {
    let Ok(key) = kairos_ledger::LedgerKey::load(&args.data_dir.join("ledger.key")) else {
        return;
    };
    let ledger = Ledger::new(store, key, kairos_ledger::DEFAULT_SHARDS);
    let body = RecordBody::AuditorAccess {
        actor: actor.to_owned(),
        action: action.to_owned(),
        query,
    };
    if let Err(e) = ledger.append(body, RecordMeta::at(now_ms())).await {
        eprintln!("warning: could not record this access: {e}");
    }
}

fn public_keys(args: &StoreArgs) -> anyhow::Result<PublicKeySet> {
    let mut set = PublicKeySet::new();
    let key_path = args.data_dir.join("ledger.key");
    let pub_path = args.data_dir.join("ledger-public.pem");
    if key_path.exists() {
        set.insert(kairos_ledger::LedgerKey::load(&key_path)?.verifying_key());
    } else if pub_path.exists() {
        set.insert(kairos_ledger::VerifyingKey::from_spki_pem(
            &std::fs::read_to_string(&pub_path)?,
        )?);
    } else {
        anyhow::bail!(
            "no ledger public key: put ledger-public.pem (from `GET /ledger/jwks` or the data directory) in {}",
            args.data_dir.display()
        );
    }
    Ok(set)
}

fn print_report(report: &VerifyReport, json_out: bool) -> anyhow::Result<()> {
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "ok": report.is_ok(),
                "chains": report.chains,
                "records": report.records,
                "checkpoints": report.checkpoints,
                "seals": report.seals,
                "failures": report.failures.iter().map(|f| f.to_string()).collect::<Vec<_>>(),
            }))?
        );
    } else if let Some(f) = report.first_failure() {
        println!("FAILED: {f}");
        for other in report.failures.iter().skip(1) {
            println!("  also: {other}");
        }
    } else {
        println!(
            "OK: {} records in {} chains, {} checkpoints, {} seals: every signature, seal, link and \
             checkpoint verifies",
            report.records, report.chains, report.checkpoints, report.seals
        );
    }
    Ok(())
}

/// What `kairos audit export` writes. A struct, not a JSON map, so that records and seals keep
/// their canonical member order: compact re-serialisation of a record's `content` (or a seal's)
/// is then exactly its canonical JSON, which an auditor's own tools can hash and verify.
#[derive(serde::Serialize)]
struct EvidenceBundle<'a> {
    kind: &'static str,
    version: u32,
    transaction_id: &'a str,
    exported_at: String,
    records: &'a [Record],
    seals: &'a [Seal],
    ledger_public_keys: kairos_ledger::Jwks,
    ca_certificate_pem: Option<String>,
    verification: serde_json::Value,
}

/// Runs an audit command; returns the process exit code.
pub async fn run(args: &StoreArgs, cmd: AuditCmd) -> anyhow::Result<u8> {
    let store = args.open().await?;
    match cmd {
        AuditCmd::Show { transaction, out } => {
            let q = Query::Transaction(transaction.clone());
            let records = all_pages(store.as_ref(), &q).await?;
            record_access(
                args,
                store,
                &out.actor,
                "show",
                format!("transaction={transaction}"),
            )
            .await;
            print_records(&records, out.json)?;
            Ok(0)
        }
        AuditCmd::Query {
            client,
            since,
            until,
            serial,
            thumbprint,
            jti,
            out,
        } => {
            let q = match (client, serial, thumbprint, jti) {
                (Some(c), None, None, None) => Query::Client {
                    client_id: c,
                    since_ms: since.as_deref().map(parse_time).transpose()?.unwrap_or(0),
                    until_ms: until
                        .as_deref()
                        .map(parse_time)
                        .transpose()?
                        .unwrap_or_else(now_ms),
                },
                (None, Some(s), None, None) => Query::Serial(s),
                (None, None, Some(t), None) => Query::Thumbprint(t),
                (None, None, None, Some(j)) => Query::Jti(j),
                _ => anyhow::bail!("give exactly one of --client, --serial, --thumbprint, --jti"),
            };
            let records = all_pages(store.as_ref(), &q).await?;
            record_access(args, store, &out.actor, "query", format!("{q:?}")).await;
            print_records(&records, out.json)?;
            Ok(0)
        }
        AuditCmd::Verify { out } => {
            let keys = public_keys(args)?;
            let report = verify_store(store.as_ref(), &keys).await?;
            print_report(&report, out.json)?;
            Ok(if report.is_ok() { 0 } else { 1 })
        }
        AuditCmd::Export {
            transaction,
            out_file,
        } => {
            let keys = public_keys(args)?;
            let q = Query::Transaction(transaction.clone());
            let records = all_pages(store.as_ref(), &q).await?;
            // a sealed record is proven by the seal listing its hash: the bundle carries them
            let mut seals: Vec<Seal> = Vec::new();
            for r in &records {
                let c = &r.content;
                for seal in store.seals_for(&c.chain, c.seq, c.seq).await? {
                    if !seals.contains(&seal) {
                        seals.push(seal);
                    }
                }
            }
            let report = verify_store(store.as_ref(), &keys).await?;
            let ca = std::fs::read_to_string(args.data_dir.join("ca.pem")).ok();
            let bundle = EvidenceBundle {
                kind: "kairos-evidence-bundle",
                version: 2,
                transaction_id: &transaction,
                exported_at: fmt_time(now_ms()),
                records: &records,
                seals: &seals,
                ledger_public_keys: keys.to_jwks(),
                ca_certificate_pem: ca,
                verification: json!({
                    "ok": report.is_ok(),
                    "chains": report.chains,
                    "records": report.records,
                    "checkpoints": report.checkpoints,
                    "seals": report.seals,
                    "failures": report.failures.iter().map(|f| f.to_string()).collect::<Vec<_>>(),
                }),
            };
            let text = serde_json::to_string_pretty(&bundle)?;
            match out_file {
                Some(p) => std::fs::write(&p, text)?,
                None => println!("{text}"),
            }
            record_access(
                args,
                store,
                "auditor",
                "export",
                format!("transaction={transaction}"),
            )
            .await;
            Ok(if report.is_ok() { 0 } else { 1 })
        }
    }
}
