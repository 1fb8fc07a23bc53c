//! End-to-end tests of `kairos serve`: real TLS handshakes on loopback, real clients with
//! client certificates, independent checks with the `openssl` CLI and Python's PyJWT.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

mod dynamo_fault;
#[allow(dead_code)]
#[path = "../../../ledger/tests/ledger/dynamo_local.rs"]
mod dynamo_local;

mod ledger;
mod load;
mod oauth;
mod resource;
mod tls;
