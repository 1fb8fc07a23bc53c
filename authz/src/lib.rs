//! # kairos-authz
//!
//! The OAuth 2.0 / FAPI engine of Kairos: the client registry (RFC 7591 metadata), mutual-TLS
//! client authentication (RFC 8705 `tls_client_auth`, `self_signed_tls_client_auth`) into the
//! [`AuthenticatedClient`] witness, certificate-bound access tokens (RFC 9068 JWTs with
//! `cnf.x5t#S256`), discovery (RFC 8414), JWKS, introspection (RFC 7662), revocation
//! (RFC 7009) and per-transaction certificate issuance — all behind one [`router`] that every
//! edge (standalone TLS, Lambda) and every test serves.
//!
//! The engine knows nothing of the edge it runs behind: the edge parses the connection's
//! certificate once and inserts a [`ClientCertificate`] into the request extensions. Nothing
//! else — no header — is ever a client certificate.

mod audit;
mod authn;
mod client;
mod error;
mod form;
mod keys;
mod routes;
mod state;
mod token;

pub use audit::{AuditError, AuditEvent, AuditLog, AuditMeta, MemoryAuditLog};
pub use authn::{
    AuthFailure, AuthenticatedClient, ClientCertificate, ClientTrust, VERIFY_CACHE_MAX,
    VerifyCache, authenticate,
};
pub use client::{
    Client, ClientAuth, ClientId, ClientMetadata, ClientRegistry, MetadataError, Scope,
    SubjectMatch,
};
pub use error::{ErrorCode, OAuthError};
pub use keys::{JwsAlgorithm, KeyError, TokenKey};
pub use routes::{MAX_FORM_BODY, MAX_JSON_BODY, router};
pub use state::{AppState, AppStateBuilder, AuthzSettings, Clock, SystemClock};
pub use token::{ACCESS_TOKEN_TYP, AccessTokenClaims, Confirmation};
