//! Chain verification of client certificates against configured trust anchors (rustls-webpki).

use std::time::Duration;

use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use time::OffsetDateTime;

use crate::error::VerifyError;
use crate::peer::PeerCertificate;

/// A set of trust anchors (root CA certificates).
#[derive(Debug, Clone)]
pub struct TrustAnchors {
    anchors: Vec<TrustAnchor<'static>>,
    ders: Vec<Vec<u8>>,
}

impl TrustAnchors {
    /// Builds anchors from DER CA certificates.
    pub fn from_ders(ders: Vec<Vec<u8>>) -> Result<Self, VerifyError> {
        if ders.is_empty() {
            return Err(VerifyError::NoTrustAnchors);
        }
        let anchors = ders
            .iter()
            .map(|d| {
                webpki::anchor_from_trusted_cert(&CertificateDer::from(d.as_slice()))
                    .map(|a| a.to_owned())
                    .map_err(|e| VerifyError::BadTrustAnchor(format!("{e:?}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { anchors, ders })
    }

    /// Builds anchors from a PEM bundle.
    pub fn from_pem(pem_text: &[u8]) -> Result<Self, VerifyError> {
        let ders = crate::peer::pem_certificates(pem_text)
            .map_err(|e| VerifyError::BadTrustAnchor(e.to_string()))?;
        Self::from_ders(ders)
    }

    /// The anchors' DER certificates.
    pub fn certificates(&self) -> &[Vec<u8>] {
        &self.ders
    }

    /// The anchors as rustls-webpki values (for building TLS verifiers).
    pub fn webpki_anchors(&self) -> &[TrustAnchor<'static>] {
        &self.anchors
    }
}

/// A client certificate whose chain verified to a trust anchor at a given time, with EKU
/// clientAuth. Only [`verify_client_cert`] makes one.
#[derive(Debug, Clone)]
pub struct VerifiedClientCert {
    cert: PeerCertificate,
}

impl VerifiedClientCert {
    /// The verified certificate.
    pub fn certificate(&self) -> &PeerCertificate {
        &self.cert
    }
}

/// Converts a time to webpki's.
pub fn unix_time(now: OffsetDateTime) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(
        u64::try_from(now.unix_timestamp()).unwrap_or(0),
    ))
}

/// Verifies `cert` (with optional intermediates, DER) to one of `anchors` at `now`, for
/// client authentication.
pub fn verify_client_cert(
    cert: &PeerCertificate,
    intermediates: &[Vec<u8>],
    anchors: &TrustAnchors,
    now: OffsetDateTime,
) -> Result<VerifiedClientCert, VerifyError> {
    let der = CertificateDer::from(cert.der());
    let ee = webpki::EndEntityCert::try_from(&der)
        .map_err(|e| VerifyError::Invalid(format!("{e:?}")))?;
    let inter: Vec<CertificateDer<'_>> = intermediates
        .iter()
        .map(|d| CertificateDer::from(d.as_slice()))
        .collect();
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors.anchors,
        &inter,
        unix_time(now),
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )
    .map_err(|e| VerifyError::Invalid(format!("{e:?}")))?;
    Ok(VerifiedClientCert { cert: cert.clone() })
}
