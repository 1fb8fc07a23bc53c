//! `kairos-authorizer`: a REQUEST authorizer (REST API and HTTP API payloads) that allows a
//! request only with a Kairos access token bound to the mTLS certificate of the connection.

use std::process::ExitCode;
use std::sync::Arc;

use kairos_lambda::authorizer::Authorizer;
use kairos_lambda::config::{AuthorizerConfig, Env};
use kairos_lambda::jwks_http::HttpJwks;
use kairos_verifier::{CachePolicy, JwksCache};
use lambda_http::{LambdaEvent, service_fn};
use serde_json::Value;

fn main() -> ExitCode {
    kairos_lambda::init_tracing();
    let cfg = match AuthorizerConfig::from_env(&Env::from_process()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kairos-authorizer: {e}");
            return ExitCode::from(64);
        }
    };
    let rt = match kairos_lambda::current_thread_runtime("kairos-authorizer") {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        let fetch = match HttpJwks::new(&cfg.jwks_url) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("kairos-authorizer: {e:#}");
                return ExitCode::from(64);
            }
        };
        let policy = CachePolicy {
            min_refresh_interval_seconds: cfg.jwks_min_refresh_seconds,
            ..CachePolicy::default()
        };
        let cache = JwksCache::new(fetch, cfg.issuer.clone(), cfg.audience.clone(), policy);
        // Warm the key set during init; if the issuer is unreachable now, the first request
        // retries (and is denied while no key set is available).
        if let Err(e) = cache.refresh(kairos_lambda::unix_now()).await {
            tracing::warn!(error = %e, "JWKS not fetched at init");
        }
        let authorizer = Arc::new(Authorizer::new(cache, cfg.required_scope.clone()));
        let handler = service_fn(move |event: LambdaEvent<Value>| {
            let authorizer = authorizer.clone();
            async move {
                Ok::<Value, lambda_http::Error>(
                    authorizer
                        .handle(event.payload, kairos_lambda::unix_now())
                        .await,
                )
            }
        });
        match lambda_http::lambda_runtime::run(handler).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("kairos-authorizer: runtime: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
