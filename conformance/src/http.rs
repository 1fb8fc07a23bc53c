//! Real TLS, real HTTP: a fresh connection per request, with exactly the client identity and
//! TLS parameters a check asks for.

use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, SupportedCipherSuite, SupportedProtocolVersion};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A client identity: certificate chain and key, DER.
#[derive(Clone, Debug)]
pub struct Identity {
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// PKCS#8 (or SEC1/PKCS#1) key.
    pub key: Arc<PrivateKeyDer<'static>>,
}

impl Identity {
    /// Reads PEM files' contents.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> anyhow::Result<Self> {
        let chain: Vec<CertificateDer<'static>> = pem::parse_many(cert_pem)?
            .into_iter()
            .filter(|p| p.tag() == "CERTIFICATE")
            .map(|p| CertificateDer::from(p.into_contents()))
            .collect();
        anyhow::ensure!(!chain.is_empty(), "no certificate in PEM");
        let block = pem::parse(key_pem)?;
        let key = PrivateKeyDer::try_from(block.into_contents())
            .map_err(|e| anyhow::anyhow!("key: {e}"))?;
        Ok(Self {
            chain,
            key: Arc::new(key),
        })
    }

    /// The leaf certificate's DER.
    pub fn leaf_der(&self) -> &[u8] {
        self.chain.first().map(|c| c.as_ref()).unwrap_or(&[])
    }

    /// A fresh self-signed P-256 certificate (for "an unregistered certificate" checks).
    pub fn ephemeral(cn: &str) -> anyhow::Result<Self> {
        let key = rcgen::KeyPair::generate()?;
        let mut p = rcgen::CertificateParams::new(vec![format!("{cn}.invalid")])?;
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let cert = p.self_signed(&key)?;
        Self::from_pem(&cert.pem(), &key.serialize_pem())
    }
}

/// TLS parameters of one connection.
#[derive(Clone, Default)]
pub struct TlsParams {
    /// Offer only these suites (default: all of the provider's).
    pub suites: Option<Vec<SupportedCipherSuite>>,
    /// Offer only these versions (default: 1.3 and 1.2).
    pub versions: Option<Vec<&'static SupportedProtocolVersion>>,
}

/// A reply.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: http::HeaderMap,
    /// Body.
    pub body: Bytes,
    /// Negotiated protocol version.
    pub version: Option<rustls::ProtocolVersion>,
}

impl Reply {
    /// Body as JSON (Null when not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Everything needed to reach the server.
#[derive(Clone)]
pub struct Http {
    roots: Arc<RootCertStore>,
}

impl Http {
    /// Trusts the CA certificates in `ca_pem`.
    pub fn new(ca_pem: &str) -> anyhow::Result<Self> {
        let mut roots = RootCertStore::empty();
        for p in pem::parse_many(ca_pem)? {
            if p.tag() == "CERTIFICATE" {
                roots.add(CertificateDer::from(p.into_contents()))?;
            }
        }
        anyhow::ensure!(!roots.is_empty(), "no CA certificate");
        Ok(Self {
            roots: Arc::new(roots),
        })
    }

    fn config(&self, id: Option<&Identity>, tls: &TlsParams) -> anyhow::Result<ClientConfig> {
        let mut provider = rustls::crypto::aws_lc_rs::default_provider();
        if let Some(s) = &tls.suites {
            provider.cipher_suites = s.clone();
        }
        let versions: Vec<&'static SupportedProtocolVersion> = tls
            .versions
            .clone()
            .unwrap_or_else(|| vec![&rustls::version::TLS13, &rustls::version::TLS12]);
        let b = ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&versions)?
            .with_root_certificates(self.roots.clone());
        Ok(match id {
            Some(i) => b.with_client_auth_cert(i.chain.clone(), i.key.clone_key())?,
            None => b.with_no_client_auth(),
        })
    }

    /// Opens a TLS connection and returns the negotiated version (a handshake probe).
    pub async fn handshake(
        &self,
        url: &str,
        id: Option<&Identity>,
        tls: &TlsParams,
    ) -> anyhow::Result<rustls::ProtocolVersion> {
        let (host, port, _) = split_url(url)?;
        let connector = TlsConnector::from(Arc::new(self.config(id, tls)?));
        let tcp = TcpStream::connect((host.as_str(), port)).await?;
        let name = ServerName::try_from(host.clone())?;
        let s = connector.connect(name, tcp).await?;
        s.get_ref()
            .1
            .protocol_version()
            .ok_or_else(|| anyhow::anyhow!("no protocol version"))
    }

    /// One request on a fresh connection.
    pub async fn request(
        &self,
        method: &str,
        url: &str,
        id: Option<&Identity>,
        headers: &[(&str, &str)],
        body: &str,
    ) -> anyhow::Result<Reply> {
        let (host, port, path) = split_url(url)?;
        let connector = TlsConnector::from(Arc::new(self.config(id, &TlsParams::default())?));
        let tcp = TcpStream::connect((host.as_str(), port)).await?;
        let name = ServerName::try_from(host.clone())?;
        let tls = connector.connect(name, tcp).await?;
        let version = tls.get_ref().1.protocol_version();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", format!("{host}:{port}"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = sender
            .send_request(req.body(Full::new(Bytes::from(body.to_owned())))?)
            .await?;
        let (parts, b) = resp.into_parts();
        Ok(Reply {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: b.collect().await?.to_bytes(),
            version,
        })
    }

    /// `POST` a form.
    pub async fn post_form(
        &self,
        url: &str,
        id: Option<&Identity>,
        form: &[(&str, &str)],
    ) -> anyhow::Result<Reply> {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in form {
            s.append_pair(k, v);
        }
        self.request(
            "POST",
            url,
            id,
            &[("content-type", "application/x-www-form-urlencoded")],
            &s.finish(),
        )
        .await
    }
}

/// `https://host:port/path` → (host, port, path).
pub fn split_url(url: &str) -> anyhow::Result<(String, u16, String)> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| anyhow::anyhow!("{url} is not an https URL"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
            (h.to_owned(), p.parse::<u16>()?)
        }
        _ => (authority.to_owned(), 443),
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    Ok((host, port, path.to_owned()))
}
