//! `kairos-lambda`: the Kairos router under `lambda_http::run`, behind API Gateway mutual TLS.
//!
//! Init (configuration, keys, CA, ledger, warmed DynamoDB connection) completes before the
//! runtime asks for the first event; a bad configuration exits with status 64 and fails the init
//! phase, not the first request.

use std::process::ExitCode;
use std::time::Instant;

use kairos_lambda::config::{Env, LambdaConfig};

fn main() -> ExitCode {
    let started = Instant::now();
    kairos_lambda::init_tracing();
    let cfg = match LambdaConfig::from_env(&Env::from_process()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kairos-lambda: {e}");
            return ExitCode::from(64);
        }
    };
    let rt = match kairos_lambda::current_thread_runtime("kairos-lambda") {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        let init = match kairos_lambda::init::init(&cfg).await {
            Ok(i) => i,
            Err(e) => {
                eprintln!("kairos-lambda: init failed: {e:#}");
                return ExitCode::FAILURE;
            }
        };
        let t = init.timings;
        tracing::info!(
            role = ?init.role,
            init_ms = started.elapsed().as_secs_f64() * 1e3,
            secrets_ms = t.secrets.as_secs_f64() * 1e3,
            keys_and_state_ms = t.keys_and_state.as_secs_f64() * 1e3,
            dynamodb_warmup_ms = t.dynamodb_warmup.as_secs_f64() * 1e3,
            "kairos-lambda ready"
        );
        let app = kairos_lambda::app::app(init.state, init.role);
        match lambda_http::run(app).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("kairos-lambda: runtime: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
