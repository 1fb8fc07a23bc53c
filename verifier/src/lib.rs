//! # kairos-verifier
//!
//! What a resource server embeds to accept a Kairos access token: given the `Authorization`
//! header and the DER of the certificate of the **current TLS connection**, it verifies the JWT
//! (signature against a key set, `typ`, `iss`, `aud`, `exp`/`nbf` with bounded skew) and that
//! `cnf.x5t#S256` is the SHA-256 of that certificate (RFC 8705 §3). Errors map to RFC 6750:
//! `invalid_token` (401, with `WWW-Authenticate`), `invalid_request` (400), missing token (401),
//! `insufficient_scope` (403).
//!
//! JWT verification uses `jsonwebtoken`, a JOSE implementation independent of the one Kairos
//! signs with. Time is a parameter. Few dependencies: no HTTP server, no AWS SDK.
//!
//! [`JwksCache`] keeps the issuer's key set, fetched by a caller-supplied function and refreshed
//! on an unknown `kid` (rate-limited) or when stale.

mod cache;
pub mod layer;

use std::collections::HashMap;

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

pub use cache::{CachePolicy, CachedVerifyError, JwksCache, JwksFetch, JwksFuture, bearer_kid};
pub use layer::{BoundTokenLayer, BoundTokenService, CheckBearer};

/// Allowed clock skew for `exp` and `nbf`, seconds.
pub const MAX_SKEW_SECONDS: i64 = 30;
/// Largest token accepted.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// The `cnf` claim.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Cnf {
    /// base64url SHA-256 of the bound certificate.
    #[serde(rename = "x5t#S256")]
    pub x5t_s256: String,
}

/// The claims a resource server uses.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct BoundToken {
    /// Issuer.
    pub iss: String,
    /// Subject.
    pub sub: String,
    /// Client.
    pub client_id: String,
    /// Granted scope, space-delimited.
    #[serde(default)]
    pub scope: String,
    /// Expiry.
    pub exp: i64,
    /// Not before.
    #[serde(default)]
    pub nbf: Option<i64>,
    /// Token id.
    pub jti: String,
    /// The binding.
    pub cnf: Cnf,
    /// Transaction id, for tokens bound to a transaction certificate.
    #[serde(default)]
    pub txn: Option<String>,
}

impl BoundToken {
    /// Does the token carry `scope`?
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.split(' ').any(|s| s == scope)
    }
}

/// Why a request is refused (RFC 6750 §3.1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BearerError {
    /// No token at all: 401 with a bare `WWW-Authenticate: Bearer` challenge.
    #[error("no access token")]
    Missing,
    /// Malformed request (token in the query, repeated, unknown scheme): 400.
    #[error("invalid_request: {0}")]
    InvalidRequest(&'static str),
    /// Bad, expired or unbound token, or wrong certificate: 401.
    #[error("invalid_token: {0}")]
    InvalidToken(&'static str),
    /// Token lacks the scope: 403.
    #[error("insufficient_scope")]
    InsufficientScope(String),
}

impl BearerError {
    /// HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            BearerError::Missing | BearerError::InvalidToken(_) => 401,
            BearerError::InvalidRequest(_) => 400,
            BearerError::InsufficientScope(_) => 403,
        }
    }
    /// The `WWW-Authenticate` header value.
    pub fn www_authenticate(&self) -> String {
        match self {
            BearerError::Missing => "Bearer".into(),
            BearerError::InvalidRequest(d) => {
                format!("Bearer error=\"invalid_request\", error_description=\"{d}\"")
            }
            BearerError::InvalidToken(d) => {
                format!("Bearer error=\"invalid_token\", error_description=\"{d}\"")
            }
            BearerError::InsufficientScope(s) => {
                format!("Bearer error=\"insufficient_scope\", scope=\"{s}\"")
            }
        }
    }
}

/// The key set could not be used.
#[derive(Debug, thiserror::Error)]
#[error("key set: {0}")]
pub struct KeySetError(String);

/// Verifies bound tokens of one issuer for one audience.
#[derive(Clone)]
pub struct Verifier {
    keys: HashMap<String, (DecodingKey, Algorithm)>,
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The SHA-256 thumbprint of a certificate, base64url (RFC 8705 §3.1).
pub fn x5t_s256(cert_der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, cert_der))
}

impl Verifier {
    /// Builds a verifier from a JWK Set (`{"keys": [...]}`); only keys with a `kid` and a FAPI
    /// algorithm (ES256, PS256, EdDSA) are used.
    pub fn from_jwks_json(
        jwks: &str,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Result<Self, KeySetError> {
        let set: JwkSet = serde_json::from_str(jwks).map_err(|e| KeySetError(e.to_string()))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let (Some(kid), Some(alg)) = (&jwk.common.key_id, jwk.common.key_algorithm) else {
                continue;
            };
            let alg = match alg {
                jsonwebtoken::jwk::KeyAlgorithm::ES256 => Algorithm::ES256,
                jsonwebtoken::jwk::KeyAlgorithm::PS256 => Algorithm::PS256,
                jsonwebtoken::jwk::KeyAlgorithm::EdDSA => Algorithm::EdDSA,
                _ => continue,
            };
            let key = DecodingKey::from_jwk(jwk).map_err(|e| KeySetError(e.to_string()))?;
            keys.insert(kid.clone(), (key, alg));
        }
        if keys.is_empty() {
            return Err(KeySetError("no usable signing key".into()));
        }
        Ok(Self {
            keys,
            issuer: issuer.into(),
            audience: audience.into(),
        })
    }

    /// Does the key set know `kid`? (A caller that caches JWKS refreshes when it does not.)
    pub fn knows_kid(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    /// Checks a request: `authorization` is the `Authorization` header, `query` the request's
    /// query string (a token there is refused, RFC 6750 §2.3 / FAPI), `peer_cert_der` the
    /// certificate of the current TLS connection, `now` unix seconds.
    pub fn verify(
        &self,
        authorization: Option<&str>,
        query: Option<&str>,
        peer_cert_der: Option<&[u8]>,
        now: i64,
    ) -> Result<BoundToken, BearerError> {
        if let Some(q) = query
            && q.split('&')
                .any(|kv| kv.split('=').next() == Some("access_token"))
        {
            return Err(BearerError::InvalidRequest(
                "access tokens are not accepted in the query string",
            ));
        }
        let header = authorization.ok_or(BearerError::Missing)?;
        let (scheme, token) = header.split_once(' ').ok_or(BearerError::InvalidRequest(
            "malformed Authorization header",
        ))?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(BearerError::Missing);
        }
        let token = token.trim();
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(BearerError::InvalidToken("malformed token"));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| BearerError::InvalidToken("malformed token"))?;
        if header.typ.as_deref() != Some("at+jwt") {
            return Err(BearerError::InvalidToken("not an access token"));
        }
        let kid = header
            .kid
            .ok_or(BearerError::InvalidToken("token has no key id"))?;
        let (key, alg) = self
            .keys
            .get(&kid)
            .ok_or(BearerError::InvalidToken("unknown signing key"))?;
        if header.alg != *alg {
            return Err(BearerError::InvalidToken("wrong algorithm"));
        }
        let mut v = Validation::new(*alg);
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.audience]);
        // time is checked below against the caller's clock
        v.validate_exp = false;
        v.validate_nbf = false;
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = jsonwebtoken::decode::<BoundToken>(token, key, &v)
            .map_err(|_| BearerError::InvalidToken("signature, issuer or audience is not valid"))?;
        let claims = data.claims;
        if claims.exp + MAX_SKEW_SECONDS <= now {
            return Err(BearerError::InvalidToken("token has expired"));
        }
        if let Some(nbf) = claims.nbf
            && nbf - MAX_SKEW_SECONDS > now
        {
            return Err(BearerError::InvalidToken("token is not yet valid"));
        }
        let der = peer_cert_der.ok_or(BearerError::InvalidToken(
            "token is bound to a certificate: use mutual TLS with it",
        ))?;
        let presented = x5t_s256(der);
        // constant time: the thumbprint is not secret, but there is no reason to leak timing
        if aws_lc_rs::constant_time::verify_slices_are_equal(
            presented.as_bytes(),
            claims.cnf.x5t_s256.as_bytes(),
        )
        .is_err()
        {
            return Err(BearerError::InvalidToken(
                "token is bound to a different certificate",
            ));
        }
        Ok(claims)
    }

    /// [`Self::verify`] and require `scope`.
    pub fn verify_with_scope(
        &self,
        authorization: Option<&str>,
        query: Option<&str>,
        peer_cert_der: Option<&[u8]>,
        now: i64,
        scope: &str,
    ) -> Result<BoundToken, BearerError> {
        let t = self.verify(authorization, query, peer_cert_der, now)?;
        if !t.has_scope(scope) {
            return Err(BearerError::InsufficientScope(scope.to_owned()));
        }
        Ok(t)
    }
}
