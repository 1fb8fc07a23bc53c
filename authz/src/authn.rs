//! Client authentication (RFC 8705 §2) into the [`AuthenticatedClient`] witness.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use kairos_issuer::{
    CertThumbprint, PeerCertificate, TrustAnchors, VerifiedClientCert, verify_client_cert,
};
use time::OffsetDateTime;

use crate::client::{Client, ClientAuth};
use crate::error::OAuthError;

/// The certificate of the current TLS connection (or API Gateway's verified copy), parsed once
/// by the edge and put in the request extensions. Nothing else is ever a client certificate.
#[derive(Clone, Debug)]
pub struct ClientCertificate(Arc<ConnectionCert>);

#[derive(Debug)]
struct ConnectionCert {
    leaf: PeerCertificate,
    intermediates: Vec<Vec<u8>>,
    /// Chain verification is cached per connection: the chain cannot change on it.
    kairos: OnceLock<Option<VerifiedClientCert>>,
    external: OnceLock<Option<VerifiedClientCert>>,
}

impl ClientCertificate {
    /// Wraps the leaf and the intermediates the peer sent.
    pub fn new(leaf: PeerCertificate, intermediates: Vec<Vec<u8>>) -> Self {
        Self(Arc::new(ConnectionCert {
            leaf,
            intermediates,
            kairos: OnceLock::new(),
            external: OnceLock::new(),
        }))
    }

    /// The parsed leaf certificate.
    pub fn leaf(&self) -> &PeerCertificate {
        &self.0.leaf
    }

    fn verified(
        &self,
        cell: &OnceLock<Option<VerifiedClientCert>>,
        anchors: Option<&TrustAnchors>,
        cache: &VerifyCache,
        kind: u8,
        now: OffsetDateTime,
    ) -> Option<VerifiedClientCert> {
        let anchors = anchors?;
        let v = cell
            .get_or_init(|| {
                let key = (self.0.leaf.thumbprint(), kind);
                if let Some(v) = cache.get(&key) {
                    return Some(v);
                }
                let v =
                    verify_client_cert(&self.0.leaf, &self.0.intermediates, anchors, now).ok()?;
                cache.put(key, v.clone());
                Some(v)
            })
            .clone()?;
        // a cached chain result still needs the leaf to be valid now
        v.certificate().is_valid_at(now).then_some(v)
    }

    /// The chain verified to the Kairos CA.
    pub fn verified_by_kairos(
        &self,
        trust: &ClientTrust,
        now: OffsetDateTime,
    ) -> Option<VerifiedClientCert> {
        self.verified(&self.0.kairos, Some(&trust.kairos), &trust.cache, 0, now)
    }

    /// The chain verified to the other configured anchors (TPP CAs).
    pub fn verified_by_external(
        &self,
        trust: &ClientTrust,
        now: OffsetDateTime,
    ) -> Option<VerifiedClientCert> {
        self.verified(
            &self.0.external,
            trust.external.as_ref(),
            &trust.cache,
            1,
            now,
        )
    }
}

/// Successful chain verifications, shared across connections and keyed by the leaf's
/// `x5t#S256`: a workload that opens a new connection per request pays the chain's signature
/// check once per certificate, not once per handshake. Only successes are kept (the anchors do
/// not change while the process runs); each use re-checks the leaf's validity period. Bounded:
/// the map is cleared when full.
#[derive(Debug, Default)]
pub struct VerifyCache {
    map: Mutex<HashMap<(CertThumbprint, u8), VerifiedClientCert>>,
}

/// Most entries kept by [`VerifyCache`].
pub const VERIFY_CACHE_MAX: usize = 10_000;

impl VerifyCache {
    fn get(&self, key: &(CertThumbprint, u8)) -> Option<VerifiedClientCert> {
        self.map.lock().ok()?.get(key).cloned()
    }
    fn put(&self, key: (CertThumbprint, u8), v: VerifiedClientCert) {
        if let Ok(mut m) = self.map.lock() {
            if m.len() >= VERIFY_CACHE_MAX {
                m.clear();
            }
            m.insert(key, v);
        }
    }
}

/// A client that proved possession of a registered credential on this connection. Only
/// [`authenticate`] makes one.
#[derive(Clone, Debug)]
pub struct AuthenticatedClient {
    client: Client,
    cert: ClientCertificate,
    kairos_issued: bool,
}

impl AuthenticatedClient {
    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }
    /// The certificate it authenticated with (the one tokens are bound to).
    pub fn certificate(&self) -> &PeerCertificate {
        self.cert.leaf()
    }
    /// Whether that certificate chains to the Kairos CA (its transaction context is then
    /// trusted).
    pub fn kairos_issued(&self) -> bool {
        self.kairos_issued
    }
}

/// Why authentication failed: a reason code for the ledger, `invalid_client` for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFailure {
    /// Machine-readable reason (recorded, never sent).
    pub reason_code: &'static str,
    /// What the client is told.
    pub error: OAuthError,
}

fn fail(reason_code: &'static str, description: &'static str) -> AuthFailure {
    AuthFailure {
        reason_code,
        error: OAuthError::invalid_client(description),
    }
}

/// Trust configuration for client authentication.
#[derive(Debug, Clone)]
pub struct ClientTrust {
    /// The Kairos CA (SVIDs and transaction certificates).
    pub kairos: TrustAnchors,
    /// Other CAs trusted for `tls_client_auth` (e.g. eIDAS QWAC issuers).
    pub external: Option<TrustAnchors>,
    /// Verified chains, across connections.
    pub cache: Arc<VerifyCache>,
}

impl ClientTrust {
    /// Trust in the Kairos CA and, optionally, other client CAs.
    pub fn new(kairos: TrustAnchors, external: Option<TrustAnchors>) -> Self {
        Self {
            kairos,
            external,
            cache: Arc::default(),
        }
    }
}

/// Authenticates `client` with the connection's certificate (RFC 8705 §2.1, §2.2).
pub fn authenticate(
    client: &Client,
    cert: Option<&ClientCertificate>,
    trust: &ClientTrust,
    now: OffsetDateTime,
) -> Result<AuthenticatedClient, AuthFailure> {
    let cert = cert.ok_or_else(|| {
        fail(
            "no_certificate",
            "client certificate required: use mutual TLS with the registered certificate",
        )
    })?;
    match &client.auth {
        ClientAuth::TlsClientAuth(subject) => {
            let (verified, kairos_issued) = match cert.verified_by_kairos(trust, now) {
                Some(v) => (v, true),
                None => match cert.verified_by_external(trust, now) {
                    Some(v) => (v, false),
                    None => {
                        return Err(fail(
                            "untrusted_certificate",
                            "client certificate is not trusted, expired, or not for client authentication",
                        ));
                    }
                },
            };
            if !subject.matches(verified.certificate()) {
                return Err(fail(
                    "subject_mismatch",
                    "client certificate does not match the registered subject",
                ));
            }
            Ok(AuthenticatedClient {
                client: client.clone(),
                cert: cert.clone(),
                kairos_issued,
            })
        }
        ClientAuth::SelfSignedTlsClientAuth(registered) => {
            let presented = cert.leaf().thumbprint();
            // constant-time against each registered value; no early exit
            let found = registered
                .iter()
                .fold(false, |acc, t| acc | t.ct_eq(&presented));
            if !found {
                return Err(fail(
                    "certificate_not_registered",
                    "client certificate is not one registered for this client",
                ));
            }
            if !cert.leaf().is_valid_at(now) {
                return Err(fail(
                    "certificate_expired",
                    "client certificate has expired",
                ));
            }
            Ok(AuthenticatedClient {
                client: client.clone(),
                cert: cert.clone(),
                kairos_issued: false,
            })
        }
    }
}
