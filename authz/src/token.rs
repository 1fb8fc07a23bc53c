//! Access tokens: RFC 9068 JWTs bound to a certificate (RFC 8705 §3.1).

use serde::{Deserialize, Serialize};

/// RFC 8705 §3.1 confirmation claim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// base64url SHA-256 of the certificate DER.
    #[serde(rename = "x5t#S256")]
    pub x5t_s256: String,
}

/// The claims of a Kairos access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    /// Issuer.
    pub iss: String,
    /// Subject (the client id for `client_credentials`).
    pub sub: String,
    /// Audience.
    pub aud: String,
    /// Expiry (unix seconds), never beyond the bound certificate's `notAfter`.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Token id.
    pub jti: String,
    /// The client.
    pub client_id: String,
    /// Granted scope (space-delimited).
    pub scope: String,
    /// The certificate binding.
    pub cnf: Confirmation,
    /// The transaction id, when bound to a Kairos transaction certificate.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub txn: Option<String>,
}

/// The JWT `typ` of access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
