//! A small mutual-TLS HTTP/1.1 client (rustls + hyper) for the demo, the load tool and the
//! tests.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::tls::{TlsError, certs_from_pem, fapi_provider, key_from_pem};

/// A response, fully read.
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Client error.
#[derive(Debug, thiserror::Error)]
#[error("client: {0}")]
pub struct ClientError(pub String);

fn ce(e: impl std::fmt::Display) -> ClientError {
    ClientError(e.to_string())
}

/// A client with a fixed identity (or none) for one server.
#[derive(Clone)]
pub struct MtlsClient {
    connector: TlsConnector,
    addr: SocketAddr,
    host: String,
}

impl MtlsClient {
    /// Trusts `ca_pem`; presents `identity` (certificate chain PEM, key PEM) when given.
    pub fn new(
        ca_pem: &str,
        identity: Option<(&str, &str)>,
        addr: SocketAddr,
    ) -> Result<Self, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        for c in certs_from_pem(ca_pem)? {
            roots.add(c).map_err(|e| TlsError(e.to_string()))?;
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(fapi_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(e.to_string()))?
            .with_root_certificates(roots);
        let cfg = match identity {
            Some((cert, key)) => builder
                .with_client_auth_cert(certs_from_pem(cert)?, key_from_pem(key)?)
                .map_err(|e| TlsError(e.to_string()))?,
            None => builder.with_no_client_auth(),
        };
        Ok(Self {
            connector: TlsConnector::from(Arc::new(cfg)),
            addr,
            host: "localhost".into(),
        })
    }

    /// Opens a keep-alive connection.
    pub async fn connect(&self) -> Result<Connection, ClientError> {
        let tcp = TcpStream::connect(self.addr).await.map_err(ce)?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(self.host.clone()).map_err(ce)?;
        let tls = self.connector.connect(name, tcp).await.map_err(ce)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(ce)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Connection {
            sender,
            host: self.host.clone(),
        })
    }

    /// One request on a fresh connection.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<Reply, ClientError> {
        self.connect()
            .await?
            .send(method, path, headers, body)
            .await
    }

    /// `POST` a form on a fresh connection.
    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Result<Reply, ClientError> {
        let body = form_body(form);
        self.send(
            "POST",
            path,
            &[("content-type", "application/x-www-form-urlencoded")],
            body,
        )
        .await
    }
}

/// Encodes a form body.
pub fn form_body(form: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form {
        s.append_pair(k, v);
    }
    s.finish()
}

/// A keep-alive connection.
pub struct Connection {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    host: String,
}

impl Connection {
    /// Sends a request and reads the whole reply.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<Reply, ClientError> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(body.into())).map_err(ce)?;
        self.sender.ready().await.map_err(ce)?;
        let resp = self.sender.send_request(req).await.map_err(ce)?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.map_err(ce)?.to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}
