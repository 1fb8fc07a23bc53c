//! The real binaries under the real `lambda_http::run` / `lambda_runtime::run` loop, against a
//! mock Lambda Runtime API on loopback (AWS-LOCAL.md §2b), and the cold-start measurement.
//!
//! `KAIROS_LAMBDA_BIN_DIR` points the tests at other builds of the binaries (e.g. the release
//! build, for the cold-start figures in `lambda/README.md`).

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::routing::{get, post};
use kairos_lambda::app::Role;
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc};

use crate::authorizer::{authorizer_event, certificate_and_token, is_allow};
use crate::dynamo_local;
use crate::support::*;

/// What the function posted back.
#[derive(Debug)]
pub struct Posted {
    pub request_id: String,
    pub kind: &'static str,
    pub body: Value,
}

#[derive(Clone)]
struct MockState {
    events: Arc<Mutex<mpsc::UnboundedReceiver<(String, Value)>>>,
    posted: mpsc::UnboundedSender<Posted>,
}

/// A mock of the Lambda Runtime API: `next` hands out queued events (and pends when there are
/// none, as the real one does), responses and errors are captured.
pub struct MockRuntime {
    pub addr: SocketAddr,
    events: mpsc::UnboundedSender<(String, Value)>,
    posted: mpsc::UnboundedReceiver<Posted>,
    n: u32,
    task: tokio::task::JoinHandle<()>,
}

async fn next(State(s): State<MockState>) -> (HeaderMap, axum::Json<Value>) {
    let item = s.events.lock().await.recv().await;
    let Some((id, event)) = item else {
        return std::future::pending().await;
    };
    let mut h = HeaderMap::new();
    h.insert(
        "lambda-runtime-aws-request-id",
        HeaderValue::from_str(&id).unwrap(),
    );
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 60_000;
    h.insert(
        "lambda-runtime-deadline-ms",
        HeaderValue::from_str(&deadline.to_string()).unwrap(),
    );
    h.insert(
        "lambda-runtime-invoked-function-arn",
        HeaderValue::from_static("arn:aws:lambda:eu-west-1:123456789012:function:kairos"),
    );
    h.insert(
        "lambda-runtime-trace-id",
        HeaderValue::from_static(
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        ),
    );
    (h, axum::Json(event))
}

fn capture(
    kind: &'static str,
) -> impl Fn(State<MockState>, Path<String>, Bytes) -> std::future::Ready<&'static str> + Clone {
    move |State(s): State<MockState>, Path(id): Path<String>, body: Bytes| {
        let body = serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
        let _ = s.posted.send(Posted {
            request_id: id,
            kind,
            body,
        });
        std::future::ready("")
    }
}

impl MockRuntime {
    pub async fn start() -> Self {
        let (etx, erx) = mpsc::unbounded_channel();
        let (ptx, prx) = mpsc::unbounded_channel();
        let state = MockState {
            events: Arc::new(Mutex::new(erx)),
            posted: ptx.clone(),
        };
        let init_error = move |body: Bytes| {
            let _ = ptx.send(Posted {
                request_id: "init".into(),
                kind: "init-error",
                body: Value::String(String::from_utf8_lossy(&body).into_owned()),
            });
            std::future::ready("")
        };
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(capture("response")),
            )
            .route(
                "/2018-06-01/runtime/invocation/{id}/error",
                post(capture("error")),
            )
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            events: etx,
            posted: prx,
            n: 0,
            task,
        }
    }

    /// Queues an event; returns its request id.
    pub fn push(&mut self, event: Value) -> String {
        self.n += 1;
        let id = format!("req-{}", self.n);
        self.events.send((id.clone(), event)).unwrap();
        id
    }

    /// The next thing the function posted (30 s at most).
    pub async fn posted(&mut self) -> Posted {
        tokio::time::timeout(Duration::from_secs(30), self.posted.recv())
            .await
            .expect("the function posted nothing within 30 s")
            .expect("mock runtime closed")
    }

    /// Invokes and waits for the response.
    pub async fn invoke(&mut self, event: Value) -> Value {
        let id = self.push(event);
        let p = self.posted().await;
        assert_eq!(p.request_id, id);
        assert_eq!(p.kind, "response", "{:?}", p.body);
        p.body
    }

    /// The environment the Lambda service gives every function.
    pub fn lambda_env(&self, name: &str) -> Vec<(String, String)> {
        vec![
            ("AWS_LAMBDA_RUNTIME_API".into(), self.addr.to_string()),
            ("AWS_LAMBDA_FUNCTION_NAME".into(), name.into()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(), "512".into()),
            ("AWS_LAMBDA_FUNCTION_VERSION".into(), "$LATEST".into()),
            ("AWS_REGION".into(), "eu-west-1".into()),
            ("RUST_LOG".into(), "info".into()),
        ]
    }
}

impl Drop for MockRuntime {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A mock of Secrets Manager's `GetSecretValue` (AWS JSON 1.1) on loopback.
pub struct MockSecretsManager {
    addr: SocketAddr,
    calls: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl MockSecretsManager {
    pub async fn start(secrets: Vec<(String, String)>) -> Self {
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let secrets: Arc<std::collections::HashMap<String, String>> =
            Arc::new(secrets.into_iter().collect());
        let c = calls.clone();
        let handler = move |headers: HeaderMap, body: Bytes| {
            let secrets = secrets.clone();
            c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                let target = headers
                    .get("x-amz-target")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let id = req["SecretId"].as_str().unwrap_or("");
                let ct = [("content-type", "application/x-amz-json-1.1")];
                match (target, secrets.get(id)) {
                    ("secretsmanager.GetSecretValue", Some(v)) => (
                        axum::http::StatusCode::OK,
                        ct,
                        json!({"ARN": format!("arn:aws:secretsmanager:eu-west-1:123456789012:secret:{id}-AbCdEf"),
                               "Name": id, "SecretString": v, "VersionId": "v1",
                               "VersionStages": ["AWSCURRENT"], "CreatedDate": 1.7e9})
                        .to_string(),
                    ),
                    _ => (
                        axum::http::StatusCode::BAD_REQUEST,
                        ct,
                        json!({"__type": "ResourceNotFoundException", "message": "no such secret"})
                            .to_string(),
                    ),
                }
            }
        };
        let app = Router::new().route("/", post(handler));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, calls, task }
    }

    pub fn calls(&self) -> usize {
        self.calls.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The function environment: secret names, the endpoint, static credentials.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("KAIROS_CA_KEY_SECRET_ARN".into(), "kairos/ca-key".into()),
            (
                "KAIROS_TOKEN_KEY_SECRET_ARN".into(),
                "kairos/token-key".into(),
            ),
            (
                "KAIROS_LEDGER_KEY_SECRET_ARN".into(),
                "kairos/ledger-key".into(),
            ),
            (
                "AWS_ENDPOINT_URL_SECRETS_MANAGER".into(),
                format!("http://{}", self.addr),
            ),
            ("AWS_ACCESS_KEY_ID".into(), "test".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
        ]
    }
}

impl Drop for MockSecretsManager {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn binary(name: &str) -> PathBuf {
    match std::env::var_os("KAIROS_LAMBDA_BIN_DIR") {
        Some(d) => PathBuf::from(d).join(name),
        None => PathBuf::from(match name {
            "kairos-lambda" => env!("CARGO_BIN_EXE_kairos-lambda"),
            _ => env!("CARGO_BIN_EXE_kairos-authorizer"),
        }),
    }
}

/// A function process; killed on drop. Its log lines are collected.
struct Function {
    child: Child,
    log: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Function {
    fn spawn(name: &str, env: Vec<(String, String)>) -> Self {
        let mut child = Command::new(binary(name))
            .env_clear()
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", binary(name).display()));
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    log.lock().unwrap().push(line);
                }
            });
        }
        Self { child, log }
    }

    /// The first log line containing `needle`, waiting up to 10 s for it: the child's output
    /// reaches the reader threads asynchronously, possibly after the response it logs about.
    fn log_line(&self, needle: &str) -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = self
                .log
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
                .cloned();
            if found.is_some() || Instant::now() >= deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn field(line: &str, name: &str) -> Option<f64> {
    let rest = line.split(&format!("{name}=")).nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

fn status_and_body(resp: &Value) -> (u64, Value) {
    let status = resp["statusCode"].as_u64().unwrap();
    let body = resp["body"]
        .as_str()
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kairos_lambda_binary_through_the_runtime_loop_with_cold_start_figures() {
    let ddb = dynamo_local::shared().await;
    let table = dynamo_local::unique_table("lambda-rt");
    let client = ddb.config(&table).client().await;
    kairos_ledger::create_table(&client, &table).await.unwrap();
    let pki = Pki::new();
    let mut rt = MockRuntime::start().await;
    let mut env = rt.lambda_env("kairos");
    // keys from Secrets Manager, as deployed (a mock of its JSON API on loopback)
    let secrets = MockSecretsManager::start(vec![
        ("kairos/ca-key".into(), pki.ca_key_pem.clone()),
        ("kairos/token-key".into(), pki.token_key_pem.clone()),
        ("kairos/ledger-key".into(), pki.ledger_key_pem.clone()),
    ])
    .await;
    env.extend(
        pki.env(Role::All, &table, Some(&ddb.endpoint))
            .into_iter()
            .filter(|(k, _)| !k.ends_with("_KEY_PEM")),
    );
    env.extend(secrets.env());

    // the first event is queued before the process starts: process start -> first response
    let first = rest_event("GET", "/jwks", None);
    let id = rt.push(first);
    let started = Instant::now();
    let f = Function::spawn("kairos-lambda", env);
    let p = rt.posted().await;
    let first_response = started.elapsed();
    assert_eq!(p.request_id, id);
    assert_eq!(p.kind, "response", "{:?}\n{}", p.body, f.log());
    let (status, body) = status_and_body(&p.body);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["keys"][0]["kty"], "EC");

    // the warm path: issuance (HTTP API, SVID), no certificate, unreadable certificate
    let svid = pki.svid("/payments-app");
    let mut e = fixture_json("http-v2-mtls-default-stage.json");
    set_cert(&mut e, Some(&svid.cert_pem));
    let warm_started = Instant::now();
    let (status, body) = status_and_body(&rt.invoke(e).await);
    let warm_issue = warm_started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert!(
        body["certificate"]
            .as_str()
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );

    let mut e = http_event("POST", "/token", None);
    set_body(
        &mut e,
        "application/x-www-form-urlencoded",
        &form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "payments-app"),
        ]),
    );
    let (status, body) = status_and_body(&rt.invoke(e).await);
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "invalid_client");

    let (status, _) = status_and_body(
        &rt.invoke(fixture_json("rest-v1-unreadable-cert.json"))
            .await,
    );
    assert_eq!(status, 400);

    let ready = f
        .log_line("kairos-lambda ready")
        .unwrap_or_else(|| panic!("no ready line in the log:\n{}", f.log()));
    let init_ms = field(&ready, "init_ms").unwrap();
    let warm_ms = field(&ready, "dynamodb_warmup_ms").unwrap();
    let secrets_ms = field(&ready, "secrets_ms").unwrap();
    assert_eq!(
        secrets.calls(),
        3,
        "each secret fetched once per cold start"
    );
    println!(
        "COLD START kairos-lambda ({}): first response {:.1} ms after spawn; init {:.1} ms in \
         process, of which DynamoDB warm-up (network) {:.1} ms and Secrets Manager {:.1} ms => \
         init excluding network {:.1} ms; warm POST /certificates {:.1} ms",
        binary("kairos-lambda").display(),
        first_response.as_secs_f64() * 1e3,
        init_ms,
        warm_ms,
        secrets_ms,
        init_ms - warm_ms - secrets_ms,
        warm_issue.as_secs_f64() * 1e3,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_configuration_fails_the_init_phase() {
    let rt = MockRuntime::start().await;
    let pki = Pki::new();
    let mut env = rt.lambda_env("kairos");
    env.extend(
        pki.env(Role::All, "t", None)
            .into_iter()
            .filter(|(k, _)| k != "KAIROS_LEDGER_TABLE"),
    );
    let mut f = Function::spawn("kairos-lambda", env);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = f.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "still running:\n{}", f.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status.code(), Some(64));
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        f.log().contains("KAIROS_LEDGER_TABLE is required"),
        "{}",
        f.log()
    );

    // an unreachable DynamoDB fails init too (not the first request)
    let mut env = rt.lambda_env("kairos");
    env.extend(pki.env(Role::All, "t", Some("http://127.0.0.1:9")));
    let mut f = Function::spawn("kairos-lambda", env);
    let deadline = Instant::now() + Duration::from_secs(40);
    let status = loop {
        if let Some(s) = f.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "still running:\n{}", f.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!status.success());
    std::thread::sleep(Duration::from_millis(100));
    assert!(f.log().contains("init failed"), "{}", f.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorizer_binary_through_the_runtime_loop() {
    let pki = Pki::new();
    let (app, _) = pki.memory_app(Role::All).await;
    let (id, token) = certificate_and_token(&app, &pki, "txn-rt-authz").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let mut rt = MockRuntime::start().await;
    let mut env = rt.lambda_env("kairos-authorizer");
    env.push(("KAIROS_ISSUER".into(), ISSUER.into()));
    env.push(("KAIROS_JWKS_URL".into(), format!("http://{addr}/jwks")));
    env.push(("KAIROS_REQUIRED_SCOPE".into(), "payments".into()));
    let started = Instant::now();
    let id1 = rt.push(authorizer_event(false, Some(&token), Some(&id.cert_pem)));
    let f = Function::spawn("kairos-authorizer", env);
    let p = rt.posted().await;
    let first_response = started.elapsed();
    assert_eq!(p.request_id, id1);
    assert!(is_allow(&p.body), "{}\n{}", p.body, f.log());
    assert_eq!(p.body["context"]["txn"], "txn-rt-authz");

    let d = rt
        .invoke(authorizer_event(
            true,
            Some(&token),
            Some(&fixture_cert_pem()),
        ))
        .await;
    assert_eq!(
        d,
        json!({"isAuthorized": false, "context": {"error": "invalid_token"}})
    );
    println!(
        "COLD START kairos-authorizer ({}): first decision {:.1} ms after spawn (JWKS fetched \
         over loopback during init)",
        binary("kairos-authorizer").display(),
        first_response.as_secs_f64() * 1e3
    );
    assert!(
        f.log_line("decision=").is_some_and(|l| l.contains("allow")),
        "no allow decision in the log:\n{}",
        f.log()
    );
    assert!(!f.log().contains(&token), "the token is never logged");
    server.abort();
}
