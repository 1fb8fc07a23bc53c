//! A Lambda REQUEST authorizer for resource servers behind API Gateway mutual TLS.
//!
//! It reads the `Authorization` header and the client certificate API Gateway verified
//! (`requestContext.identity.clientCert` for REST APIs, `requestContext.authentication.clientCert`
//! for HTTP APIs), and runs the one resource-server check, [`kairos_verifier`]: signature against
//! Kairos's JWKS (cached, refreshed on an unknown `kid`), `typ`, `iss`, `aud`, `exp`/`nbf`, and
//! `cnf.x5t#S256` against the certificate. It answers Allow with the client id, scope and `txn`
//! in the authorizer context, or Deny.
//!
//! Responses: REST APIs get an IAM policy for the `methodArn`; HTTP APIs (payload 2.0) get the
//! simple response (`isAuthorized`). API Gateway must not cache the result (TTL 0): the
//! certificate is not part of the cache key, so a cached Allow would outlive the binding.

use std::collections::HashMap;

use kairos_verifier::{BearerError, BoundToken, CachedVerifyError, JwksCache, JwksFetch};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::mtls;

/// The parts of an authorizer event that are read. Everything else is ignored, in particular the
/// pre-rendered DN / serial / validity strings.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizerEvent {
    /// `REQUEST` (REST) or `REQUEST` (HTTP API); `TOKEN` authorizers are not supported.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// `"2.0"` for HTTP API payload 2.0; absent or `"1.0"` otherwise.
    #[serde(default)]
    pub version: Option<String>,
    /// REST: the method being authorized.
    #[serde(default)]
    pub method_arn: Option<String>,
    /// HTTP API: the route being authorized.
    #[serde(default)]
    pub route_arn: Option<String>,
    /// Request headers (REST: as sent; HTTP API: lower-case, repeated values comma-joined).
    #[serde(default)]
    pub headers: Option<HashMap<String, String>>,
    /// REST: every value of every header.
    #[serde(default)]
    pub multi_value_headers: Option<HashMap<String, Vec<String>>>,
    /// REST: query parameters.
    #[serde(default)]
    pub query_string_parameters: Option<HashMap<String, String>>,
    /// REST: every value of every query parameter.
    #[serde(default)]
    pub multi_value_query_string_parameters: Option<HashMap<String, Vec<String>>>,
    /// HTTP API: the raw query string.
    #[serde(default)]
    pub raw_query_string: Option<String>,
    /// The request context.
    #[serde(default)]
    pub request_context: Option<AuthorizerRequestContext>,
}

/// `requestContext` of an authorizer event.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizerRequestContext {
    /// REST: `identity.clientCert`.
    #[serde(default)]
    pub identity: Option<CertHolder>,
    /// HTTP API: `authentication.clientCert`.
    #[serde(default)]
    pub authentication: Option<CertHolder>,
    /// API Gateway's request id (logged).
    #[serde(default)]
    pub request_id: Option<String>,
}

/// An object with a `clientCert`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertHolder {
    /// The client certificate, if the connection had one.
    #[serde(default)]
    pub client_cert: Option<ClientCertPem>,
}

/// `clientCert`: only the PEM is read.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientCertPem {
    /// The certificate, PEM.
    #[serde(default)]
    pub client_cert_pem: Option<String>,
}

impl AuthorizerEvent {
    /// Whether this is an HTTP API payload 2.0 event.
    pub fn is_v2(&self) -> bool {
        self.version.as_deref() == Some("2.0")
    }

    /// The client certificate PEM, from where this payload format puts it.
    pub fn client_cert_pem(&self) -> Option<&str> {
        let ctx = self.request_context.as_ref()?;
        let holder = if self.is_v2() {
            ctx.authentication.as_ref()
        } else {
            ctx.identity.as_ref()
        }?;
        holder.client_cert.as_ref()?.client_cert_pem.as_deref()
    }

    /// The `Authorization` header; `Err` when it is repeated.
    pub fn authorization(&self) -> Result<Option<&str>, BearerError> {
        if let Some(m) = &self.multi_value_headers {
            let n: usize = m
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("authorization"))
                .map(|(_, v)| v.len())
                .sum();
            if n > 1 {
                return Err(BearerError::InvalidRequest(
                    "more than one Authorization header",
                ));
            }
        }
        let Some(h) = &self.headers else {
            return Ok(None);
        };
        let mut found = h
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("authorization"))
            .map(|(_, v)| v.as_str());
        let first = found.next();
        if found.next().is_some() {
            return Err(BearerError::InvalidRequest(
                "more than one Authorization header",
            ));
        }
        Ok(first)
    }

    /// The query string, as far as the check needs it (parameter names).
    pub fn query(&self) -> Option<String> {
        if self.is_v2() {
            return self.raw_query_string.clone().filter(|q| !q.is_empty());
        }
        let mut names: Vec<&str> = Vec::new();
        if let Some(q) = &self.query_string_parameters {
            names.extend(q.keys().map(String::as_str));
        }
        if let Some(q) = &self.multi_value_query_string_parameters {
            names.extend(q.keys().map(String::as_str));
        }
        (!names.is_empty()).then(|| {
            names
                .iter()
                .map(|n| format!("{n}="))
                .collect::<Vec<_>>()
                .join("&")
        })
    }
}

/// The outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The token is valid and bound to the presented certificate.
    Allow(BoundToken),
    /// Refused, with the RFC 6750 error code (for the authorizer context and the log).
    Deny {
        /// `invalid_token`, `invalid_request`, `insufficient_scope` or `temporarily_unavailable`.
        error: &'static str,
        /// Why (logged; sent only as the context's `error_description`).
        reason: String,
    },
}

fn deny(error: &'static str, reason: impl Into<String>) -> Decision {
    Decision::Deny {
        error,
        reason: reason.into(),
    }
}

fn bearer_deny(e: &BearerError) -> Decision {
    let code = match e {
        BearerError::InvalidRequest(_) => "invalid_request",
        BearerError::InsufficientScope(_) => "insufficient_scope",
        _ => "invalid_token",
    };
    deny(code, e.to_string())
}

/// The authorizer: a JWKS cache and an optional required scope.
#[derive(Debug)]
pub struct Authorizer<F> {
    cache: JwksCache<F>,
    required_scope: Option<String>,
}

impl<F: JwksFetch> Authorizer<F> {
    /// An authorizer over a JWKS cache.
    pub fn new(cache: JwksCache<F>, required_scope: Option<String>) -> Self {
        Self {
            cache,
            required_scope,
        }
    }

    /// The cache (to warm it at init).
    pub fn cache(&self) -> &JwksCache<F> {
        &self.cache
    }

    /// Decides on an event at `now` (unix seconds).
    pub async fn decide(&self, event: &AuthorizerEvent, now: i64) -> Decision {
        if event.kind.as_deref() != Some("REQUEST") {
            return deny(
                "invalid_request",
                "only REQUEST authorizers are supported (the certificate is needed)",
            );
        }
        let authorization = match event.authorization() {
            Ok(a) => a,
            Err(e) => return bearer_deny(&e),
        };
        let cert = match event.client_cert_pem().map(mtls::parse_chain).transpose() {
            Ok(c) => c,
            Err(e) => return deny("invalid_token", format!("client certificate: {e}")),
        };
        let query = event.query();
        let verified = self
            .cache
            .verify(
                authorization,
                query.as_deref(),
                cert.as_ref().map(|(leaf, _)| leaf.der()),
                now,
            )
            .await;
        match verified {
            Ok(t) => match &self.required_scope {
                Some(s) if !t.has_scope(s) => {
                    bearer_deny(&BearerError::InsufficientScope(s.clone()))
                }
                _ => Decision::Allow(t),
            },
            Err(CachedVerifyError::Bearer(e)) => bearer_deny(&e),
            Err(e) => deny("temporarily_unavailable", e.to_string()),
        }
    }

    /// Handles a raw event: decides, logs the decision (never the token) and renders the response
    /// for the event's payload format.
    pub async fn handle(&self, event: Value, now: i64) -> Value {
        let parsed: AuthorizerEvent = match serde_json::from_value(event) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable authorizer event");
                AuthorizerEvent::default()
            }
        };
        let decision = self.decide(&parsed, now).await;
        let request_id = parsed
            .request_context
            .as_ref()
            .and_then(|c| c.request_id.as_deref())
            .unwrap_or("");
        match &decision {
            Decision::Allow(t) => tracing::info!(
                request_id,
                decision = "allow",
                client_id = %t.client_id,
                jti = %t.jti,
                txn = t.txn.as_deref().unwrap_or(""),
            ),
            Decision::Deny { error, reason } => tracing::info!(
                request_id,
                decision = "deny",
                error = *error,
                reason = %reason,
            ),
        }
        render(&parsed, &decision)
    }
}

/// The authorizer context of an Allow (strings only, as API Gateway requires).
pub fn allow_context(t: &BoundToken) -> Value {
    json!({
        "client_id": t.client_id,
        "sub": t.sub,
        "scope": t.scope,
        "txn": t.txn.clone().unwrap_or_default(),
        "jti": t.jti,
        "x5t_s256": t.cnf.x5t_s256,
    })
}

/// Renders a decision in the event's payload format.
pub fn render(event: &AuthorizerEvent, decision: &Decision) -> Value {
    if event.is_v2() {
        return match decision {
            Decision::Allow(t) => json!({"isAuthorized": true, "context": allow_context(t)}),
            Decision::Deny { error, .. } => {
                json!({"isAuthorized": false, "context": {"error": error}})
            }
        };
    }
    let resource = event.method_arn.clone().unwrap_or_default();
    let (principal, effect, context) = match decision {
        Decision::Allow(t) => (t.client_id.clone(), "Allow", allow_context(t)),
        Decision::Deny { error, .. } => ("anonymous".to_owned(), "Deny", json!({"error": error})),
    };
    json!({
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{
                "Action": "execute-api:Invoke",
                "Effect": effect,
                "Resource": resource,
            }],
        },
        "context": context,
    })
}
