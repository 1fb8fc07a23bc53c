//! # kairos-conformance
//!
//! A black-box runner of RFC 8705 / RFC 6749 / RFC 8414 / RFC 7662 / RFC 7009 / FAPI 2.0 TLS
//! checks (the rows of `standards.md`) against any authorization server: real TLS, real HTTP,
//! no access to the server's code or storage. Point it at an issuer URL with a CA bundle and
//! one or two client identities.

pub mod checks;
pub mod http;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::checks::{CHECKS, Client, Ctx, Outcome};
use crate::http::{Http, Identity};

/// One client identity as configured.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// The client id registered at the server.
    pub client_id: String,
    /// `tls_client_auth` or `self_signed_tls_client_auth` (informational).
    #[serde(default)]
    pub auth_method: Option<String>,
    /// Certificate (PEM, leaf first).
    pub cert_file: PathBuf,
    /// Private key (PEM).
    pub key_file: PathBuf,
}

/// The runner's configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunnerConfig {
    /// The issuer URL (discovery is built from it, RFC 8414 §3).
    pub issuer: String,
    /// CA bundle (PEM) the server certificate chains to.
    pub ca_file: PathBuf,
    /// Client A (required) and B (optional, for cross-client checks).
    pub clients: Vec<ClientConfig>,
}

impl RunnerConfig {
    /// Reads a TOML file; relative paths are taken from the file's directory.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let mut c: RunnerConfig = toml::from_str(&text)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut c.ca_file);
        for cl in &mut c.clients {
            fix(&mut cl.cert_file);
            fix(&mut cl.key_file);
        }
        Ok(c)
    }
}

/// A known failure, with its reason and the issue that will fix it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedFailure {
    /// Check id.
    pub id: String,
    /// Why it fails.
    pub reason: String,
    /// The issue that tracks the fix.
    pub issue: String,
}

/// The expectations file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectations {
    /// Known failures.
    #[serde(default)]
    pub expected_failure: Vec<ExpectedFailure>,
}

impl Expectations {
    /// Reads a TOML file.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        Ok(toml::from_str(&std::fs::read_to_string(path)?)?)
    }
}

/// One row of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Check id.
    pub id: &'static str,
    /// Title.
    pub title: &'static str,
    /// Outcome.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Whether the failure was expected (listed in the expectations file).
    pub expected_failure: bool,
    /// Listed as expected to fail, but passed.
    pub unexpected_pass: bool,
}

/// The report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The issuer tested.
    pub issuer: String,
    /// All rows.
    pub rows: Vec<Row>,
}

impl Report {
    /// Unexpected failures.
    pub fn unexpected_failures(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Fail(_)) && !r.expected_failure)
            .count()
    }
    /// Unexpected passes.
    pub fn unexpected_passes(&self) -> usize {
        self.rows.iter().filter(|r| r.unexpected_pass).count()
    }
    /// A readable table.
    pub fn table(&self) -> String {
        let mut s = format!("Conformance of {}\n\n", self.issuer);
        s.push_str(&format!(
            "| {:<18} | {:<8} | {} |\n",
            "id", "result", "check (detail)"
        ));
        s.push_str(&format!("|{:-<20}|{:-<10}|{:-<60}|\n", "", "", ""));
        for r in &self.rows {
            let (res, detail) = match &r.outcome {
                Outcome::Pass if r.unexpected_pass => {
                    ("PASS!", " — listed as an expected failure".to_owned())
                }
                Outcome::Pass => ("pass", String::new()),
                Outcome::Fail(d) if r.expected_failure => ("xfail", format!(" — {d}")),
                Outcome::Fail(d) => ("FAIL", format!(" — {d}")),
                Outcome::Skipped(d) => ("skipped", format!(" — {d}")),
            };
            s.push_str(&format!(
                "| {:<18} | {:<8} | {}{} |\n",
                r.id, res, r.title, detail
            ));
        }
        let count = |f: fn(&Row) -> bool| self.rows.iter().filter(|r| f(r)).count();
        s.push_str(&format!(
            "\n{} pass, {} fail ({} expected), {} skipped, {} unexpected pass\n",
            count(|r| matches!(r.outcome, Outcome::Pass)),
            count(|r| matches!(r.outcome, Outcome::Fail(_))),
            count(|r| matches!(r.outcome, Outcome::Fail(_)) && r.expected_failure),
            count(|r| matches!(r.outcome, Outcome::Skipped(_))),
            self.unexpected_passes()
        ));
        s
    }
}

/// Discovers the server and runs every check (or only those whose id starts with `only`).
pub async fn run(
    cfg: &RunnerConfig,
    expectations: &Expectations,
    only: Option<&str>,
) -> anyhow::Result<Report> {
    let ca = std::fs::read_to_string(&cfg.ca_file)
        .map_err(|e| anyhow::anyhow!("{}: {e}", cfg.ca_file.display()))?;
    let http = Http::new(&ca)?;
    let load = |c: &ClientConfig| -> anyhow::Result<Client> {
        let cert = std::fs::read_to_string(&c.cert_file)
            .map_err(|e| anyhow::anyhow!("{}: {e}", c.cert_file.display()))?;
        let key = std::fs::read_to_string(&c.key_file)
            .map_err(|e| anyhow::anyhow!("{}: {e}", c.key_file.display()))?;
        Ok(Client {
            client_id: c.client_id.clone(),
            identity: Identity::from_pem(&cert, &key)?,
        })
    };
    let mut clients = cfg.clients.iter();
    let a = load(
        clients
            .next()
            .ok_or_else(|| anyhow::anyhow!("no client configured"))?,
    )?;
    let b = clients.next().map(load).transpose()?;
    let issuer = cfg.issuer.trim_end_matches('/').to_owned();
    // RFC 8414 first, OpenID discovery as the fallback
    let mut metadata = serde_json::Value::Null;
    for wk in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        if let Ok(r) = http
            .request("GET", &format!("{issuer}{wk}"), None, &[], "")
            .await
            && r.status == 200
        {
            metadata = r.json();
            break;
        }
    }
    anyhow::ensure!(!metadata.is_null(), "no metadata at {issuer}/.well-known/*");
    let mut ctx = Ctx {
        http,
        issuer: issuer.clone(),
        metadata,
        a,
        b,
        token_a: None,
    };
    let mut rows = Vec::new();
    for c in CHECKS {
        if let Some(o) = only
            && !c.id.starts_with(o)
        {
            continue;
        }
        let outcome = checks::run(&mut ctx, c.id).await;
        let expected = expectations.expected_failure.iter().any(|e| e.id == c.id);
        rows.push(Row {
            id: c.id,
            title: c.title,
            unexpected_pass: expected && outcome == Outcome::Pass,
            expected_failure: expected && matches!(outcome, Outcome::Fail(_)),
            outcome,
        });
    }
    Ok(Report { issuer, rows })
}
