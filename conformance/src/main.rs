//! `kairos-conformance`: run the checks against a server and print the table (or JSON).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "kairos-conformance",
    about = "Black-box RFC 8705 / FAPI checks against an authorization server"
)]
struct Cli {
    /// Runner configuration (issuer, CA bundle, client identities).
    #[arg(long)]
    config: PathBuf,
    /// Known failures (each with a reason and an issue).
    #[arg(long)]
    expectations: Option<PathBuf>,
    /// Only checks whose id starts with this.
    #[arg(long)]
    only: Option<String>,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kairos-conformance: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        let cfg = kairos_conformance::RunnerConfig::read(&cli.config)?;
        let exp = match &cli.expectations {
            Some(p) => kairos_conformance::Expectations::read(p)?,
            None => kairos_conformance::Expectations::default(),
        };
        kairos_conformance::run(&cfg, &exp, cli.only.as_deref()).await
    });
    match result {
        Ok(report) => {
            if cli.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
            } else {
                print!("{}", report.table());
            }
            if report.unexpected_failures() > 0 || report.unexpected_passes() > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("kairos-conformance: {e:#}");
            ExitCode::from(2)
        }
    }
}
