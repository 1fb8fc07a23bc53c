//! OAuth errors as data, and the one place they become HTTP responses.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// RFC 6749 §5.2 / RFC 7009 / RFC 7591 / RFC 6750 error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// Malformed request.
    InvalidRequest,
    /// Client authentication failed.
    InvalidClient,
    /// Grant invalid, expired or revoked.
    InvalidGrant,
    /// Client not allowed to use this grant or endpoint.
    UnauthorizedClient,
    /// Grant type not supported.
    UnsupportedGrantType,
    /// Scope invalid or beyond what the client may have.
    InvalidScope,
    /// RFC 7009 §2.2.1.
    UnsupportedTokenType,
    /// The ledger (or another dependency) cannot durably record: nothing was issued.
    TemporarilyUnavailable,
    /// Unexpected internal failure.
    ServerError,
    /// RFC 6750 §3.1.
    InvalidToken,
}

impl ErrorCode {
    /// The RFC string.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::UnsupportedTokenType => "unsupported_token_type",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::ServerError => "server_error",
            ErrorCode::InvalidToken => "invalid_token",
        }
    }

    /// The HTTP status this code is sent with.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidClient | ErrorCode::InvalidToken => StatusCode::UNAUTHORIZED,
            ErrorCode::UnauthorizedClient => StatusCode::FORBIDDEN,
            ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// An OAuth error response. `description` is a fixed, client-safe sentence (RFC 6749 §5.2
/// charset: no quotes, backslashes or control characters); internal causes are logged, never
/// sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {description}", code.as_str())]
pub struct OAuthError {
    /// The error code.
    pub code: ErrorCode,
    /// Human-readable, client-safe description.
    pub description: &'static str,
}

impl OAuthError {
    /// Builds an error.
    pub const fn new(code: ErrorCode, description: &'static str) -> Self {
        Self { code, description }
    }
    /// `invalid_request`.
    pub const fn invalid_request(description: &'static str) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }
    /// `invalid_client`.
    pub const fn invalid_client(description: &'static str) -> Self {
        Self::new(ErrorCode::InvalidClient, description)
    }
    /// `temporarily_unavailable` (HTTP 503): nothing was issued.
    pub const fn unavailable() -> Self {
        Self::new(
            ErrorCode::TemporarilyUnavailable,
            "the audit ledger cannot record this now; nothing was issued, retry later",
        )
    }
}

#[derive(Serialize)]
struct Body {
    error: &'static str,
    error_description: &'static str,
}

/// Headers every OAuth response carries (RFC 6749 §5.1).
pub(crate) fn no_store(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.code.status(),
            Json(Body {
                error: self.code.as_str(),
                error_description: self.description,
            }),
        )
            .into_response();
        no_store(&mut resp);
        if self.code == ErrorCode::InvalidToken {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_use_the_rfc6749_charset() {
        // every description constructed in this crate is checked by the router tests too;
        // here the helper constructors.
        let e = OAuthError::unavailable();
        assert!(
            e.description
                .bytes()
                .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\')
        );
        assert_eq!(ErrorCode::InvalidClient.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            ErrorCode::TemporarilyUnavailable.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
