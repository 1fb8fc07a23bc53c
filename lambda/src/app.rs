//! The Lambda edge around [`kairos_authz::router`]: one middleware that turns API Gateway's
//! request context into the router's [`ClientCertificate`] extension, strips the stage prefix,
//! and limits the routes to the function's [`Role`].

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use kairos_authz::{AppState, ClientCertificate};
use lambda_http::request::RequestContext;
use serde_json::json;

use crate::mtls;

/// Which endpoints a function serves. In AWS the issuer (the only holder of the CA key) and the
/// authorization server are separate functions with separate roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Every endpoint (one function; development).
    All,
    /// Token, introspection, revocation, discovery and JWKS; not `/certificates`.
    AuthorizationServer,
    /// `/certificates` only.
    Issuer,
}

impl Role {
    /// Parses `all`, `authorization-server` or `issuer`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "all" => Some(Role::All),
            "authorization-server" => Some(Role::AuthorizationServer),
            "issuer" => Some(Role::Issuer),
            _ => None,
        }
    }

    /// Whether this role serves `path`.
    pub fn serves(self, path: &str) -> bool {
        let issuance = path == "/certificates";
        match self {
            Role::All => true,
            Role::AuthorizationServer => !issuance,
            Role::Issuer => issuance,
        }
    }

    /// Whether this role needs the CA private key.
    pub fn issues_certificates(self) -> bool {
        matches!(self, Role::All | Role::Issuer)
    }

    /// Whether this role signs access tokens.
    pub fn issues_tokens(self) -> bool {
        matches!(self, Role::All | Role::AuthorizationServer)
    }
}

/// The router of a Lambda function: [`kairos_authz::router`] behind [`edge`].
///
/// The middleware wraps the whole inner router (as the outer router's fallback), so it runs
/// before routing: the stage prefix it strips is gone when the inner router matches paths.
pub fn app(state: AppState, role: Role) -> Router {
    Router::new()
        .fallback_service(kairos_authz::router(state))
        .layer(middleware::from_fn_with_state(role, edge))
}

fn error(status: StatusCode, code: &str, description: &str) -> Response {
    let mut resp = (
        status,
        axum::Json(json!({"error": code, "error_description": description})),
    )
        .into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn without_stage(uri: &Uri, stage: &str) -> Option<Uri> {
    let path = uri.path();
    let stripped = mtls::strip_stage(path, stage);
    if stripped.len() == path.len() {
        return None;
    }
    let pq = match uri.query() {
        Some(q) => format!("{stripped}?{q}"),
        None => stripped.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = pq.parse().ok();
    Uri::from_parts(parts).ok()
}

/// The middleware: the only place a [`ClientCertificate`] is made on the Lambda edge.
///
/// - Any `ClientCertificate` already in the extensions is removed (only this layer adds one).
/// - The `/{stage}` prefix is removed from the path.
/// - Paths outside the function's role get 404.
/// - `clientCertPem` from the request context is parsed into a `ClientCertificate`; a request
///   without one carries no identity; an unreadable one is refused (400).
pub async fn edge(State(role): State<Role>, mut req: Request, next: Next) -> Response {
    req.extensions_mut().remove::<ClientCertificate>();
    let (stage, cert) = match req.extensions().get::<RequestContext>() {
        Some(ctx) => (
            mtls::stage(ctx).map(str::to_owned),
            mtls::client_certificate(ctx),
        ),
        None => (None, Ok(None)),
    };
    if let Some(stage) = stage
        && let Some(uri) = without_stage(req.uri(), &stage)
    {
        *req.uri_mut() = uri;
    }
    if !role.serves(req.uri().path()) {
        return error(StatusCode::NOT_FOUND, "not_found", "no such endpoint");
    }
    match cert {
        Ok(Some(cert)) => {
            req.extensions_mut().insert(cert);
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(error = %e, "API Gateway passed an unreadable client certificate");
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the client certificate could not be read",
            );
        }
    }
    next.run(req).await
}
