//! # kairos
//!
//! The Kairos binary's library: configuration, the data directory, the standalone TLS edge,
//! the demo and a small mTLS client. Business logic lives in `kairos-issuer`, `kairos-authz`
//! and `kairos-ledger`; this crate only wires them.

pub mod audit_cli;
pub mod bootstrap;
pub mod client;
pub mod config;
pub mod demo;
pub mod ledger_audit;
pub mod loadgen;
pub mod serve;
pub mod tls;
