//! A tower layer that admits a request only with a valid access token bound to the certificate
//! of the request's TLS connection. On success the [`BoundToken`] is put in the request
//! extensions; otherwise the client gets the RFC 6750 answer (status, `WWW-Authenticate`, JSON).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response, StatusCode, header};
use tower_layer::Layer;
use tower_service::Service;

use crate::{BearerError, BoundToken, Verifier};

/// A boxed future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Something that checks a bearer token against the presented certificate: a static
/// [`Verifier`], or a JWKS cache that refreshes keys.
pub trait CheckBearer: Send + Sync + 'static {
    /// Checks the `Authorization` header, the query string and the TLS peer certificate.
    fn check<'a>(
        &'a self,
        authorization: Option<&'a str>,
        query: Option<&'a str>,
        peer_cert_der: Option<&'a [u8]>,
        now: i64,
    ) -> BoxFuture<'a, Result<BoundToken, BearerError>>;
}

impl CheckBearer for Verifier {
    fn check<'a>(
        &'a self,
        authorization: Option<&'a str>,
        query: Option<&'a str>,
        peer_cert_der: Option<&'a [u8]>,
        now: i64,
    ) -> BoxFuture<'a, Result<BoundToken, BearerError>> {
        let r = self.verify(authorization, query, peer_cert_der, now);
        Box::pin(std::future::ready(r))
    }
}

/// A JWKS cache that refreshes on an unknown `kid`: when no key set can be obtained, requests
/// are refused (`invalid_token`, fail closed).
impl<F: crate::JwksFetch + 'static> CheckBearer for crate::JwksCache<F> {
    fn check<'a>(
        &'a self,
        authorization: Option<&'a str>,
        query: Option<&'a str>,
        peer_cert_der: Option<&'a [u8]>,
        now: i64,
    ) -> BoxFuture<'a, Result<BoundToken, BearerError>> {
        Box::pin(async move {
            self.verify(authorization, query, peer_cert_der, now)
                .await
                .map_err(|e| match e {
                    crate::CachedVerifyError::Bearer(b) => b,
                    _ => BearerError::InvalidToken("the issuer's signing keys are unavailable"),
                })
        })
    }
}

/// Reads the DER of the TLS peer certificate from a request (the edge put it there).
pub type CertFn<B> = Arc<dyn Fn(&Request<B>) -> Option<Vec<u8>> + Send + Sync>;
/// The clock (unix seconds).
pub type ClockFn = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The layer.
pub struct BoundTokenLayer<B> {
    check: Arc<dyn CheckBearer>,
    cert: CertFn<B>,
    clock: ClockFn,
    scope: Option<Arc<str>>,
}

impl<B> Clone for BoundTokenLayer<B> {
    fn clone(&self) -> Self {
        Self {
            check: self.check.clone(),
            cert: self.cert.clone(),
            clock: self.clock.clone(),
            scope: self.scope.clone(),
        }
    }
}

impl<B> BoundTokenLayer<B> {
    /// `cert` reads the peer certificate the edge attached to the request; `clock` gives unix
    /// seconds.
    pub fn new(check: Arc<dyn CheckBearer>, cert: CertFn<B>, clock: ClockFn) -> Self {
        Self {
            check,
            cert,
            clock,
            scope: None,
        }
    }

    /// Also require this scope (403 `insufficient_scope` without it).
    pub fn require_scope(mut self, scope: &str) -> Self {
        self.scope = Some(Arc::from(scope));
        self
    }
}

impl<S, B> Layer<S> for BoundTokenLayer<B> {
    type Service = BoundTokenService<S, B>;
    fn layer(&self, inner: S) -> Self::Service {
        BoundTokenService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service the layer wraps around the protected one.
pub struct BoundTokenService<S, B> {
    inner: S,
    layer: BoundTokenLayer<B>,
}

impl<S: Clone, B> Clone for BoundTokenService<S, B> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

/// The RFC 6750 answer for a refusal.
pub fn refusal<RB: From<String>>(e: &BearerError) -> Response<RB> {
    let body = serde_json::json!({
        "error": match e {
            BearerError::Missing => "invalid_token",
            BearerError::InvalidRequest(_) => "invalid_request",
            BearerError::InvalidToken(_) => "invalid_token",
            BearerError::InsufficientScope(_) => "insufficient_scope",
        },
        "error_description": e.to_string(),
    });
    let mut r = Response::new(RB::from(body.to_string()));
    *r.status_mut() = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&e.www_authenticate()) {
        h.insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

impl<S, B, RB> Service<Request<B>> for BoundTokenService<S, B>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    RB: From<String> + Send + 'static,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // the clone that was polled ready serves this request
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let cert = (layer.cert)(&req);
            let auth = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let query = req.uri().query().map(str::to_owned);
            let now = (layer.clock)();
            let checked = layer
                .check
                .check(auth.as_deref(), query.as_deref(), cert.as_deref(), now)
                .await
                .and_then(|t| match &layer.scope {
                    Some(s) if !t.has_scope(s) => {
                        Err(BearerError::InsufficientScope(s.to_string()))
                    }
                    _ => Ok(t),
                });
            match checked {
                Ok(token) => {
                    req.extensions_mut().insert(token);
                    inner.call(req).await
                }
                Err(e) => Ok(refusal(&e)),
            }
        })
    }
}
