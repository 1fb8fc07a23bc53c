//! `kairos bench`: a load generator for `POST /token` over mutual TLS.
//!
//! The tool signs itself an SVID with the data directory's CA (`ca.pem` + `ca.key`; nothing in
//! the directory is written), obtains a transaction certificate from the running server
//! (`POST /certificates`; `--certificates N`: N of them, or N SVIDs with `--svid`), makes one
//! checked token request with each, then drives `POST /token` (`grant_type=client_credentials`)
//! either over a fixed number of keep-alive connections or with a new TCP connection and a full
//! TLS handshake per request (session resumption off unless `--resumption`). It reports requests,
//! req/s, latency percentiles, errors, and — given `--server-pid` — the server's CPU time per
//! request from `/proc/<pid>/stat` (`utime + stime`), sampled around the measured window.
//!
//! For a meaningful CPU figure run the server in its own process pinned to one core and the
//! tool on another, e.g.
//! `taskset -c 0 kairos serve --workers 1 …` and `taskset -c 1 kairos bench --server-pid …`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::body::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use kairos_issuer::{
    CertificateAuthority, IssuancePolicy, KeySource, KeyType, LocalSigner, SpiffeId,
};
use rustls::pki_types::ServerName;
use serde_json::json;
use time::OffsetDateTime;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::client::MtlsClient;
use crate::tls::{certs_from_pem, fapi_provider, key_from_pem};

/// How requests reach the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Each connection stays open and carries request after request.
    Keepalive,
    /// A new TCP connection and TLS handshake for every request.
    Handshake,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Keepalive => "keepalive",
            Mode::Handshake => "handshake",
        }
    }
}

/// `kairos bench` options.
#[derive(Clone, Debug, clap::Args)]
pub struct BenchArgs {
    /// Data directory of the running server (its `ca.pem` and `ca.key` are read, never written).
    #[arg(long, default_value = "./kairos-data")]
    pub data_dir: PathBuf,
    /// The running server, `https://127.0.0.1:8443` or `127.0.0.1:8443`.
    #[arg(long, default_value = "https://127.0.0.1:8443")]
    pub target: String,
    /// `keepalive` (reuse connections) or `handshake` (a new TLS handshake per request).
    #[arg(long, value_enum, default_value_t = Mode::Keepalive)]
    pub mode: Mode,
    /// Concurrent connections (each one request at a time).
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// Unmeasured warm-up seconds before the measured window.
    #[arg(long, default_value_t = 2)]
    pub warmup: u64,
    /// The server's process id; enables the server CPU per request figure.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// The OAuth client to authenticate as.
    #[arg(long, default_value = "payments-app")]
    pub client_id: String,
    /// Trust domain of the CA (the SVID is `spiffe://<trust-domain>/<client-id>`).
    #[arg(long, default_value = "kairos.local")]
    pub trust_domain: String,
    /// `scope` parameter of the token request (default: none, i.e. the registered scope).
    #[arg(long)]
    pub scope: Option<String>,
    /// Present the SVID itself (with `--certificates N`, N SVIDs) to `/token` instead of a
    /// transaction certificate.
    #[arg(long)]
    pub svid: bool,
    /// Allow TLS session resumption in `handshake` mode (default: every handshake is full).
    #[arg(long)]
    pub resumption: bool,
    /// Distinct client certificates: transaction certificates, each for its own transaction, or
    /// SVIDs with `--svid` (same SPIFFE ID, distinct keys). With at most `--connections` of
    /// them, connection i presents the (i mod N)-th. More than `--connections` only with
    /// `--mode handshake`: each connection then has its own share (i, i + C, i + 2C, …) and
    /// presents the next one of it on every request; a kept-alive connection would leave all but
    /// one of its share idle, so that is refused. Load per certificate is even when one of N and
    /// `--connections` divides the other. With one (the default) every token is bound to the same
    /// certificate, as a single client's load is; with many, the server's records spread over as
    /// many certificates (and transactions) as many workloads' or transactions' would.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub certificates: u16,
    /// Print the result as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// A client certificate (PEM) to present instead of one issued from `--data-dir`. With
    /// `--key` and `--cacert` the tool drives any RFC 8705 token endpoint, e.g. a peer
    /// server's, with the same load and the same CPU accounting.
    #[arg(long, requires_all = ["key", "cacert"])]
    pub cert: Option<PathBuf>,
    /// The private key (PEM) of `--cert`.
    #[arg(long, requires_all = ["cert", "cacert"])]
    pub key: Option<PathBuf>,
    /// The CA (PEM) the server's certificate chains to, with `--cert`.
    #[arg(long, requires_all = ["cert", "key"])]
    pub cacert: Option<PathBuf>,
}

/// Per-request timeout; a request slower than this counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

const PHASE_WARMUP: u8 = 0;
const PHASE_MEASURE: u8 = 1;
const PHASE_STOP: u8 = 2;

/// Result of a run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchReport {
    /// `keepalive` or `handshake`.
    pub mode: &'static str,
    /// Concurrent connections.
    pub connections: usize,
    /// Distinct client certificates issued, each in some connection's share.
    pub certificates: usize,
    /// Measured window, seconds.
    pub seconds: f64,
    /// Successful requests (200 with an access token) in the window.
    pub requests: u64,
    /// Failed requests in the window.
    pub errors: u64,
    /// The first error seen, if any.
    pub first_error: Option<String>,
    /// Successful requests per second.
    pub req_per_sec: f64,
    /// Latency percentiles of successful requests, microseconds.
    pub latency_us: Latency,
    /// Server CPU (user + system) over the window, seconds, when `--server-pid` was given.
    pub server_cpu_seconds: Option<f64>,
    /// Server CPU per successful request, microseconds.
    pub server_cpu_per_request_us: Option<f64>,
    /// This tool's own CPU per successful request, microseconds.
    pub client_cpu_per_request_us: Option<f64>,
    /// Negotiated TLS version, cipher suite and key exchange group.
    pub tls: String,
    /// Whether TLS session resumption was allowed.
    pub resumption: bool,
    /// `/proc/loadavg` just before the run.
    pub loadavg_before: String,
    /// Clock ticks per second used for `/proc/<pid>/stat`.
    pub clk_tck: u64,
}

/// Latency percentiles, microseconds.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

/// Parses `https://host:port[/]` or `host:port`.
fn parse_target(t: &str) -> anyhow::Result<SocketAddr> {
    let s = t
        .strip_prefix("https://")
        .unwrap_or(t)
        .trim_end_matches('/');
    s.parse()
        .with_context(|| format!("--target {t}: expected https://IP:PORT"))
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 when unavailable).
fn clk_tck() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(100)
}

/// `utime + stime` of a process, clock ticks (all threads).
fn cpu_ticks(stat_path: &Path) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(stat_path)
        .with_context(|| format!("cannot read {}", stat_path.display()))?;
    // fields after the parenthesised command name: state is field 3, utime 14, stime 15
    let rest = text
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow::anyhow!("{}: unexpected format", stat_path.display()))?;
    let mut fields = rest.split_whitespace().skip(11);
    let mut next = || -> anyhow::Result<u64> {
        fields
            .next()
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("{}: unexpected format", stat_path.display()))
    };
    let utime = next()?;
    let stime = next()?;
    Ok(utime + stime)
}

/// Everything a worker needs.
struct Target {
    /// One per client certificate; [`shares`] hands them out to the connections.
    connectors: Vec<TlsConnector>,
    addr: SocketAddr,
    name: ServerName<'static>,
    body: Bytes,
    close: bool,
    phase: AtomicU8,
}

#[derive(Default)]
struct WorkerStats {
    latencies_ns: Vec<u64>,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
}

impl WorkerStats {
    fn error(&mut self, measuring: bool, e: String) {
        if measuring {
            self.errors += 1;
            if self.first_error.is_none() {
                self.first_error = Some(e);
            }
        }
    }
}

async fn connect(
    t: &Target,
    connector: &TlsConnector,
) -> Result<(SendRequest<Full<Bytes>>, String), String> {
    let tcp = TcpStream::connect(t.addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let tls = connector
        .connect(t.name.clone(), tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    let info = {
        let (_, c) = tls.get_ref();
        format!(
            "{} / {} / {}",
            c.protocol_version()
                .map_or_else(|| "?".to_owned(), |v| format!("{v:?}")),
            c.negotiated_cipher_suite()
                .map_or_else(|| "?".to_owned(), |s| format!("{:?}", s.suite())),
            c.negotiated_key_exchange_group()
                .map_or_else(|| "?".to_owned(), |g| format!("{:?}", g.name())),
        )
    };
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok((sender, info))
}

async fn token_request(t: &Target, sender: &mut SendRequest<Full<Bytes>>) -> Result<(), String> {
    let mut req = Request::post("/token")
        .header(header::HOST, "localhost")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if t.close {
        req = req.header(header::CONNECTION, "close");
    }
    let req = req
        .body(Full::new(t.body.clone()))
        .map_err(|e| e.to_string())?;
    sender.ready().await.map_err(|e| format!("send: {e}"))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("read: {e}"))?
        .to_bytes();
    if status != StatusCode::OK || !body.windows(14).any(|w| w == b"\"access_token\"") {
        return Err(format!("{status} {}", String::from_utf8_lossy(&body)));
    }
    Ok(())
}

/// One connection's loop. Each new connection presents the next certificate of `share` (empty
/// only if no certificate was issued, which [`bench`] refuses), so in `handshake` mode a worker
/// cycles through its share.
async fn worker(t: Arc<Target>, mode: Mode, share: Vec<TlsConnector>) -> WorkerStats {
    let mut certs = share.iter().cycle();
    let mut st = WorkerStats::default();
    let mut conn: Option<SendRequest<Full<Bytes>>> = None;
    loop {
        if t.phase.load(Ordering::Acquire) == PHASE_STOP {
            break;
        }
        let start = Instant::now();
        let result = tokio::time::timeout(REQUEST_TIMEOUT, async {
            let mut sender = match conn.take() {
                Some(s) => s,
                None => {
                    let connector = certs.next().ok_or("no client certificate")?;
                    connect(&t, connector).await?.0
                }
            };
            token_request(&t, &mut sender).await?;
            Ok::<_, String>(sender)
        })
        .await
        .unwrap_or_else(|_| Err("timeout".to_owned()));
        let elapsed = start.elapsed();
        let measuring = t.phase.load(Ordering::Acquire) == PHASE_MEASURE;
        match result {
            Ok(sender) => {
                if measuring {
                    st.ok += 1;
                    st.latencies_ns
                        .push(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
                }
                if mode == Mode::Keepalive {
                    conn = Some(sender);
                }
            }
            Err(e) => {
                st.error(measuring, e);
                // do not spin on a dead server
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    st
}

fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted.get(rank - 1).map_or(0.0, |&ns| ns as f64 / 1000.0)
}

/// The tool's client identities: the CA (PEM) and one or more (certificate PEM, key PEM), from
/// `--cert`/`--key`/`--cacert` or issued by the data directory's CA.
async fn identities(
    args: &BenchArgs,
    addr: SocketAddr,
) -> anyhow::Result<(String, Vec<(String, String)>)> {
    let n = args.certificates;
    if let (Some(cert), Some(key), Some(ca)) = (&args.cert, &args.key, &args.cacert) {
        let read = |p: &PathBuf| {
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))
        };
        return Ok((read(ca)?, vec![(read(cert)?, read(key)?)]));
    }
    let ca_pem_path = args.data_dir.join("ca.pem");
    let ca_pem = std::fs::read_to_string(&ca_pem_path)
        .with_context(|| format!("cannot read {}", ca_pem_path.display()))?;
    let signer = LocalSigner::read_pem_file(&args.data_dir.join("ca.key"))
        .with_context(|| format!("cannot read {}/ca.key", args.data_dir.display()))?;
    let ca = CertificateAuthority::from_pem(
        &ca_pem,
        Arc::new(signer),
        &args.trust_domain,
        IssuancePolicy::default(),
    )?;
    let id = SpiffeId::parse(&format!(
        "spiffe://{}/{}",
        args.trust_domain, args.client_id
    ))?;
    let issue_svid = || -> anyhow::Result<(String, String)> {
        let svid = ca.issue_svid(
            &id,
            KeySource::Generate(KeyType::P256),
            None,
            OffsetDateTime::now_utc(),
        )?;
        let key = svid
            .private_key_pem()
            .ok_or_else(|| anyhow::anyhow!("no SVID key"))?
            .to_string();
        Ok((svid.pem, key))
    };
    if args.svid {
        return Ok((
            ca_pem,
            (0..n)
                .map(|_| issue_svid())
                .collect::<anyhow::Result<_>>()?,
        ));
    }
    let (svid_pem, svid_key) = issue_svid()?;
    let as_workload = MtlsClient::new(&ca_pem, Some((&svid_pem, &svid_key)), addr)?;
    let run = OffsetDateTime::now_utc().unix_timestamp_nanos();
    let mut issued = Vec::with_capacity(usize::from(n));
    for i in 0..n {
        let txn = format!("bench-{run}-{i}");
        let req = json!({ "transaction_id": txn, "ttl_seconds": 900 });
        let c = tokio::time::timeout(REQUEST_TIMEOUT, as_workload.transaction_certificate(&req))
            .await
            .map_err(|_| anyhow::anyhow!("timed out"))
            .and_then(|r| Ok(r?))
            .with_context(|| format!("transaction certificate {} of {n} ({txn})", i + 1))?;
        issued.push((c.certificate, c.private_key));
    }
    Ok((ca_pem, issued))
}

/// Runs the benchmark and prints the report.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let report = bench(&args).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    anyhow::ensure!(report.requests > 0, "no request succeeded");
    Ok(())
}

/// Runs the benchmark.
pub async fn bench(args: &BenchArgs) -> anyhow::Result<BenchReport> {
    anyhow::ensure!(args.connections > 0, "--connections must be at least 1");
    anyhow::ensure!(args.duration > 0, "--duration must be at least 1");
    anyhow::ensure!(args.certificates > 0, "--certificates must be at least 1");
    anyhow::ensure!(
        args.certificates == 1 || args.cert.is_none(),
        "--certificates applies to certificates issued from --data-dir, not to --cert"
    );
    anyhow::ensure!(
        args.mode == Mode::Handshake || usize::from(args.certificates) <= args.connections,
        "--certificates {} with {} keep-alive connections: each connection keeps its first \
         certificate, so only {} of them would carry load (use --mode handshake, or at most \
         --connections certificates)",
        args.certificates,
        args.connections,
        args.connections
    );
    let addr = parse_target(&args.target)?;
    let server_stat = args
        .server_pid
        .map(|pid| PathBuf::from(format!("/proc/{pid}/stat")));
    if let Some(p) = &server_stat {
        cpu_ticks(p)?;
    }
    let self_stat = PathBuf::from("/proc/self/stat");
    let tck = clk_tck();

    let (ca_pem, identities) = identities(args, addr).await?;
    let mut roots = rustls::RootCertStore::empty();
    for c in certs_from_pem(&ca_pem)? {
        roots.add(c)?;
    }
    let roots = Arc::new(roots);
    let provider = Arc::new(fapi_provider());
    let mut connectors = Vec::with_capacity(identities.len());
    for (cert_pem, key_pem) in &identities {
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots.clone())
            .with_client_auth_cert(certs_from_pem(cert_pem)?, key_from_pem(key_pem)?)?;
        if !args.resumption || args.mode == Mode::Keepalive {
            cfg.resumption = rustls::client::Resumption::disabled();
        }
        connectors.push(TlsConnector::from(Arc::new(cfg)));
    }
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_id", args.client_id.as_str()),
    ];
    if let Some(s) = &args.scope {
        form.push(("scope", s.as_str()));
    }
    let target = Arc::new(Target {
        connectors,
        addr,
        name: ServerName::try_from("localhost")?,
        body: Bytes::from(crate::client::form_body(&form)),
        close: args.mode == Mode::Handshake,
        phase: AtomicU8::new(PHASE_WARMUP),
    });

    // one checked request per certificate first: a misconfiguration fails loudly instead of
    // as N errors
    let mut tls = String::new();
    let n = target.connectors.len();
    for (i, connector) in target.connectors.iter().enumerate() {
        let checked = async {
            let (mut sender, info) = connect(&target, connector).await?;
            token_request(&target, &mut sender)
                .await
                .map_err(|e| format!("POST /token: {e}"))?;
            Ok::<_, String>(info)
        };
        let info = tokio::time::timeout(REQUEST_TIMEOUT, checked)
            .await
            .unwrap_or_else(|_| Err("timeout".to_owned()))
            .map_err(|e| anyhow::anyhow!("{addr}, certificate {} of {n}: {e}", i + 1))?;
        if tls.is_empty() {
            tls = info;
        }
    }

    let loadavg_before = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let tasks: Vec<_> = shares(&target.connectors, args.connections)
        .into_iter()
        .map(|share| tokio::spawn(worker(target.clone(), args.mode, share)))
        .collect();
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;

    let server_before = server_stat.as_deref().map(cpu_ticks).transpose()?;
    let self_before = cpu_ticks(&self_stat).ok();
    let t0 = Instant::now();
    target.phase.store(PHASE_MEASURE, Ordering::Release);
    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    target.phase.store(PHASE_STOP, Ordering::Release);
    let seconds = t0.elapsed().as_secs_f64();
    let server_after = server_stat.as_deref().map(cpu_ticks).transpose()?;
    let self_after = cpu_ticks(&self_stat).ok();

    let mut all = WorkerStats::default();
    for t in tasks {
        let st = t.await?;
        all.ok += st.ok;
        all.errors += st.errors;
        all.latencies_ns.extend(st.latencies_ns);
        if all.first_error.is_none() {
            all.first_error = st.first_error;
        }
    }
    all.latencies_ns.sort_unstable();
    let lat = &all.latencies_ns;
    let latency_us = Latency {
        p50: percentile(lat, 0.50),
        p90: percentile(lat, 0.90),
        p99: percentile(lat, 0.99),
        max: lat.last().map_or(0.0, |&n| n as f64 / 1000.0),
        mean: if lat.is_empty() {
            0.0
        } else {
            lat.iter().map(|&n| n as f64).sum::<f64>() / lat.len() as f64 / 1000.0
        },
    };
    let per_req =
        |ticks: u64| (all.ok > 0).then(|| ticks as f64 / tck as f64 * 1e6 / all.ok as f64);
    let server_ticks = server_before
        .zip(server_after)
        .map(|(b, a)| a.saturating_sub(b));
    let client_ticks = self_before
        .zip(self_after)
        .map(|(b, a)| a.saturating_sub(b));
    Ok(BenchReport {
        mode: args.mode.as_str(),
        connections: args.connections,
        certificates: target.connectors.len(),
        seconds,
        requests: all.ok,
        errors: all.errors,
        first_error: all.first_error,
        req_per_sec: all.ok as f64 / seconds,
        latency_us,
        server_cpu_seconds: server_ticks.map(|t| t as f64 / tck as f64),
        server_cpu_per_request_us: server_ticks.and_then(per_req),
        client_cpu_per_request_us: client_ticks.and_then(per_req),
        tls,
        resumption: args.resumption && args.mode == Mode::Handshake,
        loadavg_before,
        clk_tck: tck,
    })
}

/// The certificates each of `connections` connections presents: with at most as many
/// certificates as connections, connection `i` has the `i % n`-th; with more, connection `i`
/// has the `i`-th, the `i + connections`-th, and so on, so that every certificate is in a share
/// (and carries load when each new connection takes the next of its share: `handshake` mode).
fn shares<T: Clone>(certs: &[T], connections: usize) -> Vec<Vec<T>> {
    // `i < connections`, so `step_by` never sees 0
    (0..connections)
        .map(|i| {
            certs
                .iter()
                .skip(i.checked_rem(certs.len()).unwrap_or(0))
                .step_by(connections)
                .cloned()
                .collect()
        })
        .collect()
}

fn fmt_us(us: f64) -> String {
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

fn print_table(r: &BenchReport) {
    println!(
        "kairos bench: POST /token, {} mode, {} connection(s), {} client certificate(s), \
         {:.1} s measured",
        r.mode, r.connections, r.certificates, r.seconds
    );
    println!(
        "  TLS              {}{}",
        r.tls,
        if r.mode == "handshake" {
            if r.resumption {
                ", resumption allowed"
            } else {
                ", full handshake per request"
            }
        } else {
            ""
        }
    );
    println!("  load before      {}", r.loadavg_before);
    println!("  requests         {} ok, {} errors", r.requests, r.errors);
    if let Some(e) = &r.first_error {
        println!("  first error      {e}");
    }
    println!("  throughput       {:.0} req/s", r.req_per_sec);
    println!(
        "  latency          p50 {}  p90 {}  p99 {}  max {}  mean {}",
        fmt_us(r.latency_us.p50),
        fmt_us(r.latency_us.p90),
        fmt_us(r.latency_us.p99),
        fmt_us(r.latency_us.max),
        fmt_us(r.latency_us.mean)
    );
    match (r.server_cpu_seconds, r.server_cpu_per_request_us) {
        (Some(s), Some(per)) => {
            println!(
                "  server CPU       {s:.2} s ({:.0}% of one core) = {} per request",
                s / r.seconds * 100.0,
                fmt_us(per)
            );
            if let Some(note) = saturation_note(s / r.seconds, r.connections) {
                println!("  note             {note}");
            }
        }
        _ => println!("  server CPU       n/a (pass --server-pid)"),
    }
    if let Some(per) = r.client_cpu_per_request_us {
        println!("  client CPU       {} per request", fmt_us(per));
    }
}

/// A reminder when the server's core was far from busy: CPU per request then also pays for
/// going idle and waking up, and for per-commit costs shared by fewer requests (a durable
/// ledger commits the requests in flight together), so it is not the cost of a request on a
/// loaded server.
fn saturation_note(cores_busy: f64, connections: usize) -> Option<String> {
    (cores_busy < 0.85).then(|| {
        format!(
            "the server was {:.0}% busy: with more connections than {connections} it would be \
             measured under load",
            cores_busy * 100.0
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            parse_target("https://127.0.0.1:18443/").ok(),
            Some(([127, 0, 0, 1], 18443).into())
        );
        assert!(parse_target("127.0.0.1:8443").is_ok());
        assert!(parse_target("https://localhost:8443").is_err());
    }

    #[test]
    fn every_certificate_is_in_a_share() {
        assert_eq!(shares(&[0, 1], 3), vec![vec![0], vec![1], vec![0]]);
        assert_eq!(shares(&[0, 1, 2], 3), vec![vec![0], vec![1], vec![2]]);
        assert_eq!(shares(&[0, 1, 2, 3, 4], 2), vec![vec![0, 2, 4], vec![1, 3]]);
        assert!(shares::<u8>(&[], 2).iter().all(Vec::is_empty));
        assert!(shares(&[1, 2], 0).is_empty());
    }

    #[test]
    fn percentiles() {
        let v: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile(&v, 0.50), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
        assert_eq!(percentile(&[7000], 0.99), 7.0);
    }

    #[test]
    fn an_idle_server_is_pointed_out() {
        assert!(saturation_note(0.75, 4).is_some_and(|n| n.contains("75% busy")));
        assert_eq!(saturation_note(0.91, 32), None);
    }

    #[test]
    fn own_cpu_ticks() {
        assert!(cpu_ticks(Path::new("/proc/self/stat")).is_ok());
    }
}
