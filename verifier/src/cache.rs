//! A JWKS cache around [`Verifier`]: the key set is fetched by a caller-supplied function (no
//! HTTP client here), refreshed when it is older than `max_age_seconds` and when a token names a
//! key id the cached set does not hold (key rotation), at most once per
//! `min_refresh_interval_seconds` so that tokens with made-up `kid`s cannot make the cache hammer
//! the issuer. When a refresh fails, the previous key set keeps being used. Time is a parameter.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use crate::{BearerError, BoundToken, KeySetError, Verifier};

/// The future a [`JwksFetch`] returns: the JWK Set JSON text, or why it could not be fetched.
pub type JwksFuture<'a> = Pin<Box<dyn Future<Output = Result<String, String>> + Send + 'a>>;

/// Fetches the issuer's JWK Set (e.g. an HTTPS GET of its `jwks_uri`).
pub trait JwksFetch: Send + Sync {
    /// Fetch the current key set.
    fn fetch(&self) -> JwksFuture<'_>;
}

impl<F, Fut> JwksFetch for F
where
    F: Fn() -> Fut + Send + Sync,
    Fut: Future<Output = Result<String, String>> + Send + 'static,
{
    fn fetch(&self) -> JwksFuture<'_> {
        Box::pin(self())
    }
}

/// When the cache refreshes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    /// A key set older than this is refreshed before use (seconds).
    pub max_age_seconds: i64,
    /// At most one fetch per this many seconds (unknown `kid`, staleness or failures).
    pub min_refresh_interval_seconds: i64,
}

impl Default for CachePolicy {
    /// One hour, and at most one fetch every 30 seconds.
    fn default() -> Self {
        Self {
            max_age_seconds: 3600,
            min_refresh_interval_seconds: 30,
        }
    }
}

/// Why a request was refused by [`JwksCache::verify`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CachedVerifyError {
    /// The token or the request is not acceptable (RFC 6750).
    #[error(transparent)]
    Bearer(#[from] BearerError),
    /// No key set could be obtained: nothing can be verified (fail closed).
    #[error("signing keys unavailable: {0}")]
    KeysUnavailable(String),
}

#[derive(Debug, Default)]
struct CacheState {
    verifier: Option<Arc<Verifier>>,
    fetched_at: Option<i64>,
    last_attempt: Option<i64>,
}

/// A [`Verifier`] whose key set is fetched and refreshed on demand.
pub struct JwksCache<F> {
    fetch: F,
    issuer: String,
    audience: String,
    policy: CachePolicy,
    state: RwLock<CacheState>,
}

impl<F> std::fmt::Debug for JwksCache<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// The `kid` in the header of the bearer token in an `Authorization` value, if it has one.
pub fn bearer_kid(authorization: Option<&str>) -> Option<String> {
    let (scheme, token) = authorization?.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    if token.len() > crate::MAX_TOKEN_LEN {
        return None;
    }
    jsonwebtoken::decode_header(token).ok()?.kid
}

impl<F: JwksFetch> JwksCache<F> {
    /// A cache for tokens of `issuer` with audience `audience`; nothing is fetched yet.
    pub fn new(
        fetch: F,
        issuer: impl Into<String>,
        audience: impl Into<String>,
        policy: CachePolicy,
    ) -> Self {
        Self {
            fetch,
            issuer: issuer.into(),
            audience: audience.into(),
            policy,
            state: RwLock::new(CacheState::default()),
        }
    }

    fn snapshot(&self) -> (Option<Arc<Verifier>>, Option<i64>, Option<i64>) {
        match self.state.read() {
            Ok(s) => (s.verifier.clone(), s.fetched_at, s.last_attempt),
            Err(p) => {
                let s = p.into_inner();
                (s.verifier.clone(), s.fetched_at, s.last_attempt)
            }
        }
    }

    fn update(&self, f: impl FnOnce(&mut CacheState)) {
        match self.state.write() {
            Ok(mut s) => f(&mut s),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    /// Fetches the key set now (unconditionally) and replaces the cached one on success.
    pub async fn refresh(&self, now: i64) -> Result<(), KeySetError> {
        self.update(|s| s.last_attempt = Some(now));
        let text = self.fetch.fetch().await.map_err(KeySetError)?;
        let v = Verifier::from_jwks_json(&text, self.issuer.clone(), self.audience.clone())?;
        self.update(|s| {
            s.verifier = Some(Arc::new(v));
            s.fetched_at = Some(now);
        });
        Ok(())
    }

    /// Whether a key set is cached.
    pub fn has_keys(&self) -> bool {
        self.snapshot().0.is_some()
    }

    /// [`Verifier::verify`] with the cached key set, refreshing it first when it is stale, absent
    /// or does not know the token's `kid` (rate-limited by the policy).
    pub async fn verify(
        &self,
        authorization: Option<&str>,
        query: Option<&str>,
        peer_cert_der: Option<&[u8]>,
        now: i64,
    ) -> Result<BoundToken, CachedVerifyError> {
        let (current, fetched_at, last_attempt) = self.snapshot();
        let stale = fetched_at.is_none_or(|t| now - t >= self.policy.max_age_seconds);
        let unknown_kid = match (&current, bearer_kid(authorization)) {
            (Some(v), Some(kid)) => !v.knows_kid(&kid),
            _ => false,
        };
        let may_fetch =
            last_attempt.is_none_or(|t| now - t >= self.policy.min_refresh_interval_seconds);
        let mut refresh_error = None;
        if (stale || unknown_kid || current.is_none())
            && may_fetch
            && let Err(e) = self.refresh(now).await
        {
            refresh_error = Some(e.to_string());
        }
        let verifier = self.snapshot().0.ok_or_else(|| {
            CachedVerifyError::KeysUnavailable(
                refresh_error.unwrap_or_else(|| "no key set fetched yet".into()),
            )
        })?;
        Ok(verifier.verify(authorization, query, peer_cert_der, now)?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll, Waker};

    use super::*;

    /// The futures here never pend: poll once.
    fn ready<T>(f: impl Future<Output = T>) -> T {
        let mut f = std::pin::pin!(f);
        match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("pending"),
        }
    }

    const JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","alg":"ES256","use":"sig",
        "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;

    /// `Bearer <header>.e30.c2ln` with the given kid.
    fn bearer(kid: &str) -> String {
        use base64::Engine;
        let h = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!(r#"{{"alg":"ES256","typ":"at+jwt","kid":"{kid}"}}"#));
        format!("Bearer {h}.e30.c2ln")
    }

    fn counting(n: Arc<AtomicUsize>, ok: bool) -> impl JwksFetch {
        move || {
            n.fetch_add(1, Ordering::SeqCst);
            async move {
                if ok {
                    Ok(JWKS.to_owned())
                } else {
                    Err("down".to_owned())
                }
            }
        }
    }

    #[test]
    fn fetches_once_then_on_unknown_kid_rate_limited_and_when_stale() {
        let n = Arc::new(AtomicUsize::new(0));
        let c = JwksCache::new(counting(n.clone(), true), "i", "a", CachePolicy::default());
        // first use fetches; the forged token fails on its signature, not on the keys
        let e = ready(c.verify(Some(&bearer("k1")), None, None, 1000)).unwrap_err();
        assert!(matches!(e, CachedVerifyError::Bearer(_)), "{e:?}");
        assert_eq!(n.load(Ordering::SeqCst), 1);
        ready(c.verify(Some(&bearer("k1")), None, None, 1001)).unwrap_err();
        assert_eq!(n.load(Ordering::SeqCst), 1, "known kid: no fetch");
        ready(c.verify(Some(&bearer("k9")), None, None, 1002)).unwrap_err();
        assert_eq!(
            n.load(Ordering::SeqCst),
            1,
            "unknown kid within 30 s: no fetch"
        );
        ready(c.verify(Some(&bearer("k9")), None, None, 1031)).unwrap_err();
        assert_eq!(n.load(Ordering::SeqCst), 2, "unknown kid after 30 s: fetch");
        ready(c.verify(Some(&bearer("k1")), None, None, 1031 + 3600)).unwrap_err();
        assert_eq!(n.load(Ordering::SeqCst), 3, "stale: fetch");
    }

    #[test]
    fn no_keys_fails_closed_and_failed_fetches_are_rate_limited() {
        let n = Arc::new(AtomicUsize::new(0));
        let c = JwksCache::new(counting(n.clone(), false), "i", "a", CachePolicy::default());
        let e = ready(c.verify(Some(&bearer("k1")), None, None, 1000)).unwrap_err();
        assert_eq!(
            e,
            CachedVerifyError::KeysUnavailable("key set: down".into())
        );
        ready(c.verify(Some(&bearer("k1")), None, None, 1010)).unwrap_err();
        assert_eq!(n.load(Ordering::SeqCst), 1);
        assert!(!c.has_keys());
    }

    #[test]
    fn bearer_kid_reads_only_bearer_headers() {
        assert_eq!(bearer_kid(Some(&bearer("abc"))).as_deref(), Some("abc"));
        assert_eq!(bearer_kid(Some("Basic abc")), None);
        assert_eq!(bearer_kid(Some("Bearer not-a-jwt")), None);
        assert_eq!(bearer_kid(None), None);
    }
}
