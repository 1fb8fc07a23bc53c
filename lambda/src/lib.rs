//! # kairos-lambda
//!
//! Kairos on AWS Lambda behind API Gateway mutual TLS.
//!
//! - [`app::app`]: [`kairos_authz::router`], the one router of every edge, behind the
//!   [`app::edge`] middleware, which turns the certificate API Gateway verified
//!   (`requestContext.identity.clientCert` / `requestContext.authentication.clientCert`) into the
//!   router's [`kairos_authz::ClientCertificate`] — parsed once, the pre-rendered DN / serial /
//!   validity strings never read — strips REST stage prefixes and limits routes to the function's
//!   [`app::Role`]. Nothing else, no header, ever becomes a client certificate.
//! - [`config`]: the environment, validated at init; [`init`]: keys (inline or Secrets Manager),
//!   CA, ledger on DynamoDB, the warmed connection, the router state.
//! - [`authorizer`]: a REQUEST authorizer for resource servers (REST and HTTP API payloads) that
//!   runs [`kairos_verifier`] with a cached JWKS ([`jwks_http`]).
//!
//! Binaries: `kairos-lambda` (the router under `lambda_http::run`) and `kairos-authorizer`.

pub mod app;
pub mod authorizer;
pub mod config;
pub mod init;
pub mod jwks_http;
pub mod mtls;

/// Sets up logging for a Lambda function: plain text without colours (CloudWatch), level from
/// `RUST_LOG` or `AWS_LAMBDA_LOG_LEVEL` (default `info`).
pub fn init_tracing() {
    let filter = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("AWS_LAMBDA_LOG_LEVEL").map(|l| l.to_lowercase()))
        .unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .try_init();
}

/// The runtime of a Lambda binary: one request at a time per execution environment, so a
/// current-thread runtime suffices. On failure the error is printed for a person, prefixed
/// with `name`.
pub fn current_thread_runtime(
    name: &str,
) -> Result<tokio::runtime::Runtime, std::process::ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("{name}: tokio runtime: {e}");
            std::process::ExitCode::FAILURE
        })
}

/// Now, unix seconds (the binaries' clock; the library takes time as a parameter).
pub fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
