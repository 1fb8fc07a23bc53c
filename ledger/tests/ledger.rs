//! One integration-test binary for the ledger: the store contract suite and the tamper tests
//! run against both backends (embedded SQLite and a real DynamoDB Local started here), plus a
//! DynamoDB fault test and offline verification.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "ledger/common.rs"]
mod common;
#[path = "ledger/contract.rs"]
mod contract;
#[cfg(feature = "dynamodb")]
#[path = "ledger/dynamo_backend.rs"]
mod dynamo_backend;
#[cfg(feature = "dynamodb")]
#[path = "ledger/dynamo_local.rs"]
mod dynamo_local;
#[path = "ledger/sqlite_backend.rs"]
mod sqlite_backend;
