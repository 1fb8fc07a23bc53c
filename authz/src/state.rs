//! Shared state of the router.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kairos_issuer::CertificateAuthority;
use serde_json::Value;
use time::{Duration, OffsetDateTime};

use crate::audit::AuditLog;
use crate::authn::ClientTrust;
use crate::client::ClientRegistry;
use crate::keys::TokenKey;

/// The clock, a parameter like everything else that varies.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now.
    fn now(&self) -> OffsetDateTime;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// Settings of the authorization server.
#[derive(Debug, Clone)]
pub struct AuthzSettings {
    /// The issuer URL (`https://host:port`, no trailing slash).
    pub issuer: String,
    /// `aud` of access tokens.
    pub audience: String,
    /// Access-token lifetime (capped at the bound certificate's `notAfter`).
    pub token_ttl: Duration,
}

/// Everything the handlers need. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState(pub(crate) Arc<Inner>);

#[derive(Debug)]
pub(crate) struct Inner {
    pub settings: AuthzSettings,
    pub registry: ClientRegistry,
    pub ca: Arc<CertificateAuthority>,
    pub trust: ClientTrust,
    pub token_key: Arc<TokenKey>,
    pub extra_jwks: Vec<Value>,
    pub audit: Arc<dyn AuditLog>,
    pub clock: Arc<dyn Clock>,
    /// Revocations this process already knows of (token id → expiry, unix seconds): a cache
    /// of positive answers only. The ledger, through [`AuditLog::is_revoked`], is the record.
    pub revoked: Mutex<HashMap<String, i64>>,
}

/// Builds an [`AppState`].
#[derive(Debug)]
pub struct AppStateBuilder {
    /// Settings.
    pub settings: AuthzSettings,
    /// Registered clients.
    pub registry: ClientRegistry,
    /// The CA (issues transaction certificates).
    pub ca: Arc<CertificateAuthority>,
    /// Client trust anchors.
    pub trust: ClientTrust,
    /// The token-signing key.
    pub token_key: Arc<TokenKey>,
    /// The ledger's public JWKs, published at `/ledger/jwks`.
    pub extra_jwks: Vec<Value>,
    /// The audit port.
    pub audit: Arc<dyn AuditLog>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
}

impl AppStateBuilder {
    /// Finishes the state.
    pub fn build(self) -> AppState {
        AppState(Arc::new(Inner {
            settings: self.settings,
            registry: self.registry,
            ca: self.ca,
            trust: self.trust,
            token_key: self.token_key,
            extra_jwks: self.extra_jwks,
            audit: self.audit,
            clock: self.clock,
            revoked: Mutex::new(HashMap::new()),
        }))
    }
}

impl AppState {
    /// The settings.
    pub fn settings(&self) -> &AuthzSettings {
        &self.0.settings
    }
    /// The token key.
    pub fn token_key(&self) -> &TokenKey {
        &self.0.token_key
    }
    /// The registered clients.
    pub fn registry(&self) -> &ClientRegistry {
        &self.0.registry
    }
}
