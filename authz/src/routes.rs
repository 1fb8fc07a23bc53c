//! The one router every edge serves: token service, certificate issuance, discovery, JWKS,
//! introspection and revocation.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use base64::Engine;
use kairos_issuer::{
    IssueError, KeySource, KeyType, TransactionContext, TransactionRequest, VerifiedCsr,
};
use serde::Deserialize;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::audit::{AuditError, AuditEvent, AuditMeta};
use crate::authn::{AuthenticatedClient, ClientCertificate, authenticate};
use crate::error::{ErrorCode, OAuthError, no_store};
use crate::form::parse_form;
use crate::state::AppState;
use crate::token::{ACCESS_TOKEN_TYP, AccessTokenClaims, Confirmation};

/// Largest form body accepted by OAuth endpoints.
pub const MAX_FORM_BODY: usize = 16 * 1024;
/// Largest JSON body accepted by `/certificates`.
pub const MAX_JSON_BODY: usize = 64 * 1024;

/// Builds the router. The edge must insert a [`ClientCertificate`] extension for connections
/// that presented one.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/token", post(token))
        .route("/introspect", post(introspect))
        .route("/revoke", post(revoke))
        .route("/jwks", get(jwks))
        .route("/ledger/jwks", get(ledger_jwks))
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/.well-known/openid-configuration", get(metadata))
        .layer(DefaultBodyLimit::max(MAX_FORM_BODY))
        .merge(
            Router::new()
                .route("/certificates", post(certificates))
                .layer(DefaultBodyLimit::max(MAX_JSON_BODY)),
        )
        .fallback(not_found)
        .with_state(state)
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": "not_found", "error_description": "no such endpoint"})),
    )
        .into_response()
}

fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_owned)
}

/// The base64url characters in ASCII order, so that encoded ids sort as their bytes do (the
/// standard base64url order, `A–Z a–z 0–9 - _`, does not).
const SORTABLE_B64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &match base64::alphabet::Alphabet::new(
        "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz",
    ) {
        Ok(a) => a,
        Err(_) => panic!("the sortable alphabet is 64 distinct printable characters"),
    },
    base64::engine::general_purpose::NO_PAD,
);

/// A token id that sorts by issuance time: 48-bit Unix milliseconds, then 80 random bits,
/// 22 URL-safe characters from an alphabet in ASCII order. The random part keeps ids
/// unguessable and unique; the time prefix makes ledger index inserts land at the end of the
/// `jti` index instead of on a random page (kairos/BENCH.md, section E). The token already
/// states its issuance time in `iat`, so the prefix reveals nothing new. `None` only when the
/// OS random number generator fails.
fn token_id(now: time::OffsetDateTime) -> Option<String> {
    use aws_lc_rs::rand::SecureRandom;
    let ms = u64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut b[6..])
        .ok()?;
    Some(SORTABLE_B64.encode(b))
}

type Cert = Option<Extension<ClientCertificate>>;

/// The parsed form of an OAuth endpoint request and the context its records carry.
fn oauth_request(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(std::collections::HashMap<String, String>, AuditMeta), OAuthError> {
    let form = parse_form(headers, body)?;
    let meta = AuditMeta {
        request_id: request_id(headers),
        time: state.0.clock.now(),
    };
    Ok((form, meta))
}

/// Authenticates the caller of an OAuth endpoint; failures are recorded.
async fn client_auth(
    state: &AppState,
    form: &std::collections::HashMap<String, String>,
    cert: &Cert,
    meta: &AuditMeta,
) -> Result<AuthenticatedClient, OAuthError> {
    let s = &state.0;
    let presented = cert
        .as_ref()
        .map(|c| c.0.leaf().thumbprint().to_base64url());
    let record_failure =
        |client_id: Option<String>, reason_code: &'static str| AuditEvent::ClientAuthFailed {
            client_id,
            reason_code,
            presented_x5t_s256: presented.clone(),
        };
    let Some(client_id) = form.get("client_id") else {
        let _ = s
            .audit
            .record(record_failure(None, "missing_client_id"), meta.clone())
            .await;
        return Err(OAuthError::invalid_client(
            "client_id is required with mutual-TLS client authentication",
        ));
    };
    let Some(client) = s.registry.get(client_id) else {
        let _ = s
            .audit
            .record(record_failure(None, "unknown_client"), meta.clone())
            .await;
        return Err(OAuthError::invalid_client("client authentication failed"));
    };
    match authenticate(client, cert.as_ref().map(|c| &c.0), &s.trust, meta.time) {
        Ok(a) => Ok(a),
        Err(f) => {
            // Failures are recorded best effort: the answer is a refusal either way.
            if let Err(e) = s
                .audit
                .record(
                    record_failure(Some(client_id.clone()), f.reason_code),
                    meta.clone(),
                )
                .await
            {
                tracing::warn!(error = %e, "could not record a client-authentication failure");
            }
            Err(f.error)
        }
    }
}

/// What the client is told when the ledger refuses a record: nothing is issued.
fn audit_refusal(e: &AuditError, what: &str) -> OAuthError {
    match e {
        AuditError::Duplicate => OAuthError::invalid_request(
            "this X-Request-Id was already used for this transaction; retry with a new one",
        ),
        other => {
            tracing::error!(error = %other, "ledger write failed; {what} withheld");
            OAuthError::unavailable()
        }
    }
}

fn set(v: &mut Value, key: &str, value: Value) {
    if let Some(o) = v.as_object_mut() {
        o.insert(key.to_owned(), value);
    }
}

fn json_no_store(status: StatusCode, body: Value) -> Response {
    let mut resp = (status, Json(body)).into_response();
    no_store(&mut resp);
    resp
}

async fn token(
    State(state): State<AppState>,
    cert: Cert,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let s = &state.0;
    let (form, meta) = oauth_request(&state, &headers, &body)?;
    let grant_type = form
        .get("grant_type")
        .ok_or(OAuthError::invalid_request("grant_type is required"))?;
    let authed = client_auth(&state, &form, &cert, &meta).await?;
    if grant_type != "client_credentials" {
        return Err(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            "only client_credentials is supported",
        ));
    }
    let registered = &authed.client().scope;
    let scope = match form.get("scope") {
        Some(s) => {
            let req = crate::client::Scope::parse(s).ok_or(OAuthError::new(
                ErrorCode::InvalidScope,
                "scope is malformed",
            ))?;
            if !req.is_subset(registered) {
                return Err(OAuthError::new(
                    ErrorCode::InvalidScope,
                    "scope exceeds what the client is registered for",
                ));
            }
            req
        }
        None => registered.clone(),
    };
    let cert = authed.certificate();
    let now = meta.time;
    let exp = (now + s.settings.token_ttl).min(cert.not_after());
    let expires_in = (exp - now).whole_seconds();
    if expires_in <= 0 {
        return Err(OAuthError::invalid_client("client certificate has expired"));
    }
    let txn = authed
        .kairos_issued()
        .then(|| cert.transaction().map(|t| t.transaction_id().to_owned()))
        .flatten();
    let claims = AccessTokenClaims {
        iss: s.settings.issuer.clone(),
        sub: authed.client().client_id.as_str().to_owned(),
        aud: s.settings.audience.clone(),
        exp: exp.unix_timestamp(),
        iat: now.unix_timestamp(),
        nbf: now.unix_timestamp(),
        jti: token_id(now).ok_or_else(|| {
            tracing::error!("the OS random number generator failed");
            OAuthError::new(ErrorCode::ServerError, "the token could not be issued")
        })?,
        client_id: authed.client().client_id.as_str().to_owned(),
        scope: scope.to_string_form(),
        cnf: Confirmation {
            x5t_s256: cert.thumbprint().to_base64url(),
        },
        txn,
    };
    let jwt = s
        .token_key
        .sign_jwt(ACCESS_TOKEN_TYP, &claims)
        .map_err(|e| {
            tracing::error!(error = %e, "token signing failed");
            OAuthError::new(ErrorCode::ServerError, "the token could not be issued")
        })?;
    s.audit
        .record(
            AuditEvent::TokenIssued {
                jti: claims.jti.clone(),
                client_id: claims.client_id.clone(),
                scope: claims.scope.clone(),
                cnf_x5t_s256: claims.cnf.x5t_s256.clone(),
                txn: claims.txn.clone(),
                exp,
                grant_type: "client_credentials".into(),
            },
            meta,
        )
        .await
        .map_err(|e| audit_refusal(&e, "token"))?;
    let mut body = json!({
        "access_token": jwt,
        "token_type": "Bearer",
        "expires_in": expires_in,
    });
    if !scope.is_empty() {
        set(&mut body, "scope", Value::String(claims.scope));
    }
    Ok(json_no_store(StatusCode::OK, body))
}

/// Verifies one of our access tokens: signature, `typ`, `iss`, `exp`. Revocation is checked
/// by [`active_claims`].
fn valid_claims(state: &AppState, token: &str, now: OffsetDateTime) -> Option<AccessTokenClaims> {
    let s = &state.0;
    let (payload, typ) = s.token_key.verify_jwt(token)?;
    if typ.as_deref() != Some(ACCESS_TOKEN_TYP) {
        return None;
    }
    let claims: AccessTokenClaims = serde_json::from_slice(&payload).ok()?;
    if claims.iss != s.settings.issuer || claims.exp <= now.unix_timestamp() {
        return None;
    }
    Some(claims)
}

/// True when this process already knows `jti` is revoked (a revocation never expires before
/// the token does, so a positive answer can be kept; a negative one never is).
fn known_revoked(state: &AppState, jti: &str) -> bool {
    state
        .0
        .revoked
        .lock()
        .map(|r| r.contains_key(jti))
        .unwrap_or(false)
}

fn remember_revoked(state: &AppState, jti: String, exp: i64, now: OffsetDateTime) {
    if let Ok(mut r) = state.0.revoked.lock() {
        let now = now.unix_timestamp();
        r.retain(|_, e| *e > now);
        r.insert(jti, exp);
    }
}

/// [`valid_claims`] and not revoked, asking the ledger (shared by every instance and kept
/// across restarts) unless this process already knows. When the ledger cannot answer, the
/// caller gets `503 temporarily_unavailable`, never `active: true`.
async fn active_claims(
    state: &AppState,
    token: &str,
    now: OffsetDateTime,
) -> Result<Option<AccessTokenClaims>, OAuthError> {
    let Some(c) = valid_claims(state, token, now) else {
        return Ok(None);
    };
    if known_revoked(state, &c.jti) {
        return Ok(None);
    }
    match state.0.audit.is_revoked(&c.jti).await {
        Ok(false) => Ok(Some(c)),
        Ok(true) => {
            remember_revoked(state, c.jti, c.exp, now);
            Ok(None)
        }
        Err(e) => {
            tracing::error!(error = %e, "revocation lookup failed; introspection withheld");
            Err(OAuthError::unavailable())
        }
    }
}

async fn introspect(
    State(state): State<AppState>,
    cert: Cert,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let (form, meta) = oauth_request(&state, &headers, &body)?;
    let token = form
        .get("token")
        .ok_or(OAuthError::invalid_request("token is required"))?
        .clone();
    client_auth(&state, &form, &cert, &meta).await?;
    let body = match active_claims(&state, &token, meta.time).await? {
        Some(c) => {
            let mut v = json!({
                "active": true,
                "iss": c.iss, "sub": c.sub, "aud": c.aud, "exp": c.exp, "iat": c.iat,
                "nbf": c.nbf, "jti": c.jti, "client_id": c.client_id, "scope": c.scope,
                "token_type": "Bearer", "cnf": c.cnf,
            });
            if let Some(t) = c.txn {
                set(&mut v, "txn", Value::String(t));
            }
            v
        }
        None => json!({"active": false}),
    };
    Ok(json_no_store(StatusCode::OK, body))
}

async fn revoke(
    State(state): State<AppState>,
    cert: Cert,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let s = &state.0;
    let (form, meta) = oauth_request(&state, &headers, &body)?;
    let token = form
        .get("token")
        .ok_or(OAuthError::invalid_request("token is required"))?
        .clone();
    let authed = client_auth(&state, &form, &cert, &meta).await?;
    // RFC 7009 §2.2: unknown or invalid tokens, and tokens of other clients, get 200 and no
    // effect. Refresh tokens are not issued, so every hint is satisfied by an access token.
    // A revocation is recorded once per token: one already known here is not offered again,
    // and the ledger refuses a second one (keyed by the jti) from any other instance.
    if let Some(c) = valid_claims(&state, &token, meta.time)
        && c.client_id == authed.client().client_id.as_str()
        && !known_revoked(&state, &c.jti)
    {
        s.audit
            .record(
                AuditEvent::TokenRevoked {
                    jti: c.jti.clone(),
                    client_id: c.client_id.clone(),
                    reason: "revoked_by_client".into(),
                },
                meta.clone(),
            )
            .await
            .or_else(|e| match e {
                // already revoked (a revocation is keyed by its token): RFC 7009 §2.2, 200
                AuditError::Duplicate => Ok(()),
                other => Err(audit_refusal(&other, "revocation")),
            })?;
        remember_revoked(&state, c.jti, c.exp, meta.time);
    }
    Ok(json_no_store(StatusCode::OK, json!({})))
}

async fn jwks(State(state): State<AppState>) -> Response {
    Json(json!({ "keys": [state.0.token_key.public_jwk()] })).into_response()
}

/// The ledger's public keys, kept apart from the token keys so that a resource server that
/// trusts `/jwks` never trusts a ledger key.
async fn ledger_jwks(State(state): State<AppState>) -> Response {
    Json(json!({ "keys": state.0.extra_jwks })).into_response()
}

async fn metadata(State(state): State<AppState>) -> Response {
    let s = &state.0;
    let iss = &s.settings.issuer;
    let mut scopes: Vec<&str> = s.registry.iter().flat_map(|c| c.scope.iter()).collect();
    scopes.sort_unstable();
    scopes.dedup();
    let methods = ["tls_client_auth", "self_signed_tls_client_auth"];
    Json(json!({
        "issuer": iss,
        "token_endpoint": format!("{iss}/token"),
        "jwks_uri": format!("{iss}/jwks"),
        "introspection_endpoint": format!("{iss}/introspect"),
        "revocation_endpoint": format!("{iss}/revoke"),
        "mtls_endpoint_aliases": {
            "token_endpoint": format!("{iss}/token"),
            "introspection_endpoint": format!("{iss}/introspect"),
            "revocation_endpoint": format!("{iss}/revoke"),
        },
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": methods,
        "introspection_endpoint_auth_methods_supported": methods,
        "revocation_endpoint_auth_methods_supported": methods,
        "tls_client_certificate_bound_access_tokens": true,
        "scopes_supported": scopes,
        "access_token_signing_alg_values_supported": [s.token_key.algorithm().as_str()],
        "kairos_certificates_endpoint": format!("{iss}/certificates"),
    }))
    .into_response()
}

/// `POST /certificates` request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CertificateRequestBody {
    transaction_id: String,
    session_id: Option<String>,
    #[serde(default)]
    context: BTreeMap<String, String>,
    csr: Option<String>,
    key_type: Option<String>,
    ttl_seconds: Option<i64>,
}

async fn certificates(
    State(state): State<AppState>,
    cert: Cert,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let s = &state.0;
    let now = s.clock.now();
    let meta = AuditMeta {
        request_id: request_id(&headers),
        time: now,
    };
    let cert = cert.ok_or(OAuthError::invalid_client(
        "a Kairos SVID is required: use mutual TLS",
    ))?;
    let verified = cert
        .0
        .verified_by_kairos(&s.trust, now)
        .ok_or(OAuthError::invalid_client(
            "client certificate is not a valid Kairos workload identity",
        ))?;
    let workload = s.ca.workload(&verified).map_err(|e| match e {
        IssueError::TransactionCertAsRequester => OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "a transaction certificate cannot be used to request another one",
        ),
        _ => OAuthError::invalid_client(
            "client certificate carries no SPIFFE ID of this trust domain",
        ),
    })?;
    let client = s
        .registry
        .by_spiffe_id(workload.spiffe_id())
        .ok_or(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "this workload is not a registered client",
        ))?;
    let ct = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .eq_ignore_ascii_case("application/json")
    {
        return Err(OAuthError::invalid_request(
            "content type must be application/json",
        ));
    }
    let req: CertificateRequestBody = serde_json::from_slice(&body).map_err(|_| {
        OAuthError::invalid_request("body must be a JSON object with known fields only")
    })?;
    let context = TransactionContext::new(req.transaction_id, req.session_id, req.context)
        .map_err(|e| {
            OAuthError::invalid_request(match e {
                kairos_issuer::ContextError::BadTransactionId => {
                    "transaction_id must be 1-64 characters of A-Z a-z 0-9 . _ : -"
                }
                kairos_issuer::ContextError::BadSessionId => {
                    "session_id must be 1-128 characters of A-Z a-z 0-9 . _ : -"
                }
                kairos_issuer::ContextError::TooManyEntries { .. } => {
                    "context has more than 16 entries"
                }
                kairos_issuer::ContextError::BadKey => {
                    "context keys must be 1-32 characters of a-z 0-9 _ -"
                }
                _ => "context values must be at most 256 characters without control characters",
            })
        })?;
    let key = match (&req.csr, &req.key_type) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request(
                "give either csr or key_type, not both",
            ));
        }
        (Some(pem), None) => KeySource::Csr(VerifiedCsr::from_pem(pem).map_err(|e| {
            OAuthError::invalid_request(match e {
                kairos_issuer::CsrError::BadSignature => {
                    "csr signature does not verify (no proof of possession)"
                }
                kairos_issuer::CsrError::UnsupportedKey => {
                    "csr key type is not accepted (P-256, P-384, Ed25519, RSA 2048+)"
                }
                kairos_issuer::CsrError::TooLarge { .. } => "csr is too large",
                _ => "csr is not a PEM PKCS#10 certificate request",
            })
        })?),
        (None, kt) => KeySource::Generate(match kt.as_deref() {
            None => KeyType::P256,
            Some(k) => KeyType::parse(k).ok_or(OAuthError::invalid_request(
                "key_type must be p256, ed25519 or rsa2048",
            ))?,
        }),
    };
    let ttl = match req.ttl_seconds {
        None => None,
        Some(t) if t > 0 => Some(Duration::seconds(t)),
        Some(_) => return Err(OAuthError::invalid_request("ttl_seconds must be positive")),
    };
    let key_generated = matches!(key, KeySource::Generate(_));
    let request = TransactionRequest {
        context: context.clone(),
        key,
        ttl,
    };
    let ca = s.ca.clone();
    let workload2 = workload.clone();
    let issued = if matches!(request.key, KeySource::Generate(KeyType::Rsa2048)) {
        tokio::task::spawn_blocking(move || ca.issue_transaction_cert(&workload2, request, now))
            .await
            .map_err(|_| OAuthError::new(ErrorCode::ServerError, "issuance failed"))?
    } else {
        ca.issue_transaction_cert(&workload2, request, now)
    }
    .map_err(|e| match e {
        IssueError::RequesterExpiring => OAuthError::invalid_client(
            "your SVID expires too soon; renew it before requesting certificates",
        ),
        IssueError::BadTtl => OAuthError::invalid_request("ttl_seconds must be positive"),
        other => {
            tracing::error!(error = %other, "issuance failed");
            OAuthError::new(ErrorCode::ServerError, "issuance failed")
        }
    })?;
    s.audit
        .record(
            AuditEvent::CertificateIssued {
                serial_hex: issued.serial_hex(),
                x5t_s256: issued.thumbprint.to_base64url(),
                spiffe_id: workload.spiffe_id().to_string(),
                client_id: client.client_id.as_str().to_owned(),
                transaction_id: context.transaction_id().to_owned(),
                session_id: context.session_id().map(str::to_owned),
                context: context.entries().clone(),
                not_before: issued.not_before,
                not_after: issued.not_after,
                key_generated,
                requester_x5t_s256: workload.thumbprint().to_base64url(),
            },
            meta,
        )
        .await
        .map_err(|e| audit_refusal(&e, "certificate"))?;
    let mut body = json!({
        "certificate": issued.pem,
        "chain": issued.chain_pem,
        "serial": issued.serial_hex(),
        "x5t#S256": issued.thumbprint.to_base64url(),
        "not_before": issued.not_before.format(&Rfc3339).unwrap_or_default(),
        "not_after": issued.not_after.format(&Rfc3339).unwrap_or_default(),
    });
    if let Some(k) = issued.private_key_pem() {
        set(&mut body, "private_key", Value::String(k.to_string()));
    }
    Ok(json_no_store(StatusCode::OK, body))
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::token_id;

    #[test]
    fn token_ids_sort_by_issuance_time_and_never_repeat() {
        let t = time::OffsetDateTime::from_unix_timestamp(1_750_000_000).expect("valid time");
        let a = token_id(t).expect("rng");
        let b = token_id(t).expect("rng");
        assert_eq!(a.len(), 22);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_ne!(a, b, "80 random bits must differ within one millisecond");
        // the first 8 characters carry the 48-bit millisecond prefix
        assert_eq!(a[..8], b[..8]);
        // every millisecond boundary over a span that crosses every character of the last
        // prefix positions (including the ones where standard base64url order would break)
        let mut prev = token_id(t).expect("rng");
        for ms in 1..200_000 {
            let next = token_id(t + time::Duration::milliseconds(ms)).expect("rng");
            assert!(prev < next, "{prev} then {next} at +{ms} ms");
            prev = next;
        }
    }
}
