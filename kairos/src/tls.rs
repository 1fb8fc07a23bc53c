//! The standalone edge: axum over tokio-rustls. TLS 1.3 and 1.2 with FAPI 2.0 / BCP 195 cipher
//! suites only; a client certificate is requested but optional; the peer certificate is parsed
//! once from the handshake and put in the request extensions.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use kairos_authz::ClientCertificate;
use kairos_issuer::PeerCertificate;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// Handshake deadline.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The cipher suites Kairos offers (FAPI 2.0 §5.2.1 / RFC 9325 §4.2 recommended): TLS 1.3 AEADs
/// and TLS 1.2 ECDHE with AES-GCM or ChaCha20-Poly1305. No CBC, no RSA key exchange, no DHE.
/// Key exchange groups are listed explicitly (X25519, P-256, P-384): a dependency that enables
/// rustls' `prefer-post-quantum` feature (the AWS SDK's HTTPS client does) would otherwise put
/// the hybrid X25519MLKEM768 first, which costs about 200 µs of server CPU per handshake.
pub fn fapi_provider() -> CryptoProvider {
    use rustls::crypto::aws_lc_rs::cipher_suite as cs;
    let mut p = rustls::crypto::aws_lc_rs::default_provider();
    p.cipher_suites = vec![
        cs::TLS13_AES_128_GCM_SHA256,
        cs::TLS13_AES_256_GCM_SHA384,
        cs::TLS13_CHACHA20_POLY1305_SHA256,
        cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ];
    use rustls::crypto::aws_lc_rs::kx_group;
    p.kx_groups = vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1];
    p
}

/// Requests a client certificate, accepts any one whose holder proves possession
/// of its key (CertificateVerify), and leaves trust decisions to the OAuth layer (RFC 8705
/// §6.1: needed for `self_signed_tls_client_auth`; the OAuth layer validates chains for
/// `tls_client_auth`).
#[derive(Debug)]
struct AnyClientCert {
    algs: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        false
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Parsing happens once, right after the handshake (`handle`), where a malformed
        // certificate closes the connection before any request is read.
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// TLS setup failed.
#[derive(Debug, thiserror::Error)]
#[error("TLS: {0}")]
pub struct TlsError(pub String);

/// Reads PEM certificates.
pub fn certs_from_pem(pem_text: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    kairos_issuer::pem_certificates(pem_text.as_bytes())
        .map(|v| v.into_iter().map(CertificateDer::from).collect())
        .map_err(|e| TlsError(e.to_string()))
}

/// Reads a PEM PKCS#8 key.
pub fn key_from_pem(pem_text: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    let block = pem::parse(pem_text).map_err(|e| TlsError(e.to_string()))?;
    PrivateKeyDer::try_from(block.into_contents()).map_err(|e| TlsError(e.to_string()))
}

/// The server TLS configuration.
pub fn server_config(
    chain_pem: &str,
    key_pem: &str,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(fapi_provider());
    let verifier = Arc::new(AnyClientCert {
        algs: provider.signature_verification_algorithms,
    });
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs_from_pem(chain_pem)?, key_from_pem(key_pem)?)
        .map_err(|e| TlsError(e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Serves `router` on `listener` until `shutdown` turns true; then lets open requests finish
/// (up to 10 s).
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            handle(tcp, peer, acceptor, router, watcher).await;
        });
    }
    tracing::info!("shutting down: waiting for open connections");
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
}

async fn handle(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    router: Router,
    watcher: hyper_util::server::graceful::Watcher,
) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let client_cert = {
        let (_, conn) = tls.get_ref();
        match conn.peer_certificates().and_then(|c| c.split_first()) {
            None => None,
            Some((leaf, rest)) => match PeerCertificate::from_der(leaf) {
                Ok(parsed) => Some(ClientCertificate::new(
                    parsed,
                    rest.iter().map(|c| c.to_vec()).collect(),
                )),
                Err(e) => {
                    // RFC 8705 §7.5: parse defensively; a certificate we cannot read is never
                    // an identity, and the connection ends here.
                    tracing::debug!(%peer, error = %e, "malformed client certificate");
                    return;
                }
            },
        }
    };
    let svc = tower::service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let mut req = req.map(axum::body::Body::new);
        if let Some(c) = &client_cert {
            req.extensions_mut().insert(c.clone());
        }
        router.clone().oneshot(req)
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .max_buf_size(64 * 1024);
    builder.http2().max_concurrent_streams(64);
    let conn = builder.serve_connection(TokioIo::new(tls), TowerToHyperService::new(svc));
    if let Err(e) = watcher.watch(conn.into_owned()).await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
