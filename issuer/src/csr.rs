//! PKCS#10 requests: proof of possession is checked, and only the public key is ever used.

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

use crate::error::CsrError;
use crate::keys::SubjectKey;

/// Largest CSR accepted (DER bytes).
pub const MAX_CSR_DER: usize = 8 * 1024;
/// Largest PEM CSR accepted (bytes).
pub const MAX_CSR_PEM: usize = 16 * 1024;

const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const P256: &str = "1.2.840.10045.3.1.7";
const P384: &str = "1.3.132.0.34";
const ED25519: &str = "1.3.101.112";
const RSA: &str = "1.2.840.113549.1.1.1";

/// A CSR whose signature verified. Only this module can make one, and it exposes nothing of the
/// request but its public key: subject, extensions, requested CA flags and validity are dropped.
#[derive(Clone, Debug)]
pub struct VerifiedCsr {
    pub(crate) key: SubjectKey,
}

impl VerifiedCsr {
    /// Parses a PEM `CERTIFICATE REQUEST` and verifies its self-signature.
    pub fn from_pem(pem_text: &str) -> Result<Self, CsrError> {
        if pem_text.len() > MAX_CSR_PEM {
            return Err(CsrError::TooLarge { max: MAX_CSR_PEM });
        }
        let block = pem::parse(pem_text).map_err(|_| CsrError::Pem)?;
        if block.tag() != "CERTIFICATE REQUEST" && block.tag() != "NEW CERTIFICATE REQUEST" {
            return Err(CsrError::Pem);
        }
        Self::from_der(block.contents())
    }

    /// Parses a DER CSR and verifies its self-signature.
    pub fn from_der(der: &[u8]) -> Result<Self, CsrError> {
        if der.len() > MAX_CSR_DER {
            return Err(CsrError::TooLarge { max: MAX_CSR_DER });
        }
        let (rest, csr) =
            X509CertificationRequest::from_der(der).map_err(|_| CsrError::Malformed)?;
        if !rest.is_empty() {
            return Err(CsrError::Malformed);
        }
        csr.verify_signature().map_err(|_| CsrError::BadSignature)?;
        let spki = &csr.certification_request_info.subject_pki;
        let alg_oid = spki.algorithm.algorithm.to_id_string();
        let raw = spki.subject_public_key.data.to_vec();
        let alg: &'static rcgen::SignatureAlgorithm = match alg_oid.as_str() {
            EC_PUBLIC_KEY => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.as_oid().ok())
                    .map(|o| o.to_id_string());
                match curve.as_deref() {
                    Some(P256) => &rcgen::PKCS_ECDSA_P256_SHA256,
                    Some(P384) => &rcgen::PKCS_ECDSA_P384_SHA384,
                    _ => return Err(CsrError::UnsupportedKey),
                }
            }
            ED25519 => &rcgen::PKCS_ED25519,
            RSA => match spki.parsed() {
                Ok(PublicKey::RSA(k)) if (2048..=8192).contains(&k.key_size()) => {
                    &rcgen::PKCS_RSA_SHA256
                }
                _ => return Err(CsrError::UnsupportedKey),
            },
            _ => return Err(CsrError::UnsupportedKey),
        };
        Ok(Self {
            key: SubjectKey { alg, raw },
        })
    }
}
