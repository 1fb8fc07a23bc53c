//! Fetches the issuer's JWK Set over HTTPS (rustls with aws-lc-rs, the system's root
//! certificates), for [`kairos_verifier::JwksCache`]. Plain `http://` is accepted only for a
//! loopback URL (tests, local runs); the configuration refuses anything else.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::body::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kairos_verifier::{JwksFetch, JwksFuture};

/// Largest JWK Set accepted.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;
/// Time allowed for one fetch.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(3);

/// An HTTP(S) JWKS fetcher with one connection pool.
#[derive(Clone, Debug)]
pub struct HttpJwks {
    url: hyper::Uri,
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl HttpJwks {
    /// A fetcher for `url` (validated by [`crate::config::AuthorizerConfig`]).
    pub fn new(url: &str) -> anyhow::Result<Self> {
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| anyhow::anyhow!("JWKS URL {url:?}: {e}"))?;
        let builder = hyper_rustls::HttpsConnectorBuilder::new().with_provider_and_native_roots(
            Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        )?;
        let connector = if crate::config::is_loopback_http(url) {
            builder.https_or_http().enable_http1().build()
        } else {
            builder.https_only().enable_http1().build()
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Ok(Self { url: uri, client })
    }

    /// One GET of the JWK Set.
    pub async fn get(&self) -> Result<String, String> {
        let req = hyper::Request::get(self.url.clone())
            .header(hyper::header::ACCEPT, "application/json")
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let resp = tokio::time::timeout(FETCH_TIMEOUT, self.client.request(req))
            .await
            .map_err(|_| "JWKS fetch timed out".to_owned())?
            .map_err(|e| format!("JWKS fetch: {e}"))?;
        if resp.status() != hyper::StatusCode::OK {
            return Err(format!("JWKS fetch: HTTP {}", resp.status()));
        }
        let body = tokio::time::timeout(
            FETCH_TIMEOUT,
            Limited::new(resp.into_body(), MAX_JWKS_BYTES).collect(),
        )
        .await
        .map_err(|_| "JWKS body timed out".to_owned())?
        .map_err(|e| format!("JWKS body: {e}"))?
        .to_bytes();
        String::from_utf8(body.to_vec()).map_err(|_| "JWKS is not UTF-8".to_owned())
    }
}

impl JwksFetch for HttpJwks {
    fn fetch(&self) -> JwksFuture<'_> {
        Box::pin(self.get())
    }
}
