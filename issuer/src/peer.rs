//! Peer certificates, parsed once into an owned, typed value.

use std::net::IpAddr;
use std::sync::Arc;

use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use crate::context::{TRANSACTION_CONTEXT_OID_STR, TransactionContext};
use crate::dn::DistinguishedName;
use crate::error::CertError;
use crate::psd2::{Psd2QcStatement, QC_STATEMENTS_OID, parse_qc_statements};
use crate::spiffe::{MAX_SPIFFE_ID_LEN, SpiffeId};
use crate::thumbprint::{CertThumbprint, SpkiSha256};

/// Largest certificate accepted, DER bytes.
pub const MAX_CERT_DER: usize = 16 * 1024;
/// Largest PEM input accepted, bytes.
pub const MAX_PEM: usize = 64 * 1024;
/// Most subjectAltName entries accepted.
pub const MAX_SANS: usize = 64;
/// Longest SAN value accepted (URI SANs carry SPIFFE IDs of up to 2048 bytes).
pub const MAX_SAN_LEN: usize = MAX_SPIFFE_ID_LEN;

/// One subjectAltName entry, typed (RFC 8705 §2.1.2 matches each type against its own kind).
#[derive(Clone, PartialEq, Eq, Debug, Hash)]
#[non_exhaustive]
pub enum SubjectAltName {
    /// dNSName.
    Dns(String),
    /// uniformResourceIdentifier.
    Uri(String),
    /// iPAddress, compared in binary.
    Ip(IpAddr),
    /// rfc822Name (e-mail).
    Email(String),
    /// Any other kind (directoryName, otherName, …), kept only as a count.
    Other,
}

/// A parsed peer certificate. Cheap to clone (the DER is shared).
#[derive(Clone, Debug)]
pub struct PeerCertificate {
    der: Arc<[u8]>,
    thumbprint: CertThumbprint,
    spki_sha256: SpkiSha256,
    serial: Vec<u8>,
    subject: DistinguishedName,
    issuer: DistinguishedName,
    self_issued: bool,
    sans: Vec<SubjectAltName>,
    spiffe_id: Option<SpiffeId>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    is_ca: bool,
    eku_client_auth: bool,
    transaction: Option<TransactionContext>,
    psd2: Option<Psd2QcStatement>,
}

impl PeerCertificate {
    /// Parses the first `CERTIFICATE` block of a PEM input.
    pub fn from_pem(pem_text: &[u8]) -> Result<Self, CertError> {
        if pem_text.len() > MAX_PEM {
            return Err(CertError::TooLarge { max: MAX_PEM });
        }
        let blocks = pem::parse_many(pem_text).map_err(|_| CertError::Pem)?;
        let block = blocks
            .into_iter()
            .find(|b| b.tag() == "CERTIFICATE")
            .ok_or(CertError::Pem)?;
        Self::from_der(block.contents())
    }

    /// Parses a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, CertError> {
        if der.len() > MAX_CERT_DER {
            return Err(CertError::TooLarge { max: MAX_CERT_DER });
        }
        let (rest, cert) =
            X509Certificate::from_der(der).map_err(|e| CertError::Der(e.to_string()))?;
        if !rest.is_empty() {
            return Err(CertError::TrailingData);
        }
        Self::from_parsed(der, &cert)
    }

    fn from_parsed(der: &[u8], cert: &X509Certificate<'_>) -> Result<Self, CertError> {
        let subject = DistinguishedName::from_x509(cert.subject())?;
        let issuer = DistinguishedName::from_x509(cert.issuer())?;
        let self_issued = cert.subject().as_raw() == cert.issuer().as_raw();

        let mut sans = Vec::new();
        let san_ext = cert
            .subject_alternative_name()
            .map_err(|_| CertError::MalformedExtension("subjectAltName"))?;
        if let Some(ext) = san_ext {
            if ext.value.general_names.len() > MAX_SANS {
                return Err(CertError::TooManySans { max: MAX_SANS });
            }
            for gn in &ext.value.general_names {
                let san = match gn {
                    GeneralName::DNSName(s) => SubjectAltName::Dns(bounded(s)?),
                    GeneralName::URI(s) => SubjectAltName::Uri(bounded(s)?),
                    GeneralName::RFC822Name(s) => SubjectAltName::Email(bounded(s)?),
                    GeneralName::IPAddress(b) => match b.len() {
                        4 => {
                            let mut a = [0u8; 4];
                            a.copy_from_slice(b);
                            SubjectAltName::Ip(IpAddr::from(a))
                        }
                        16 => {
                            let mut a = [0u8; 16];
                            a.copy_from_slice(b);
                            SubjectAltName::Ip(IpAddr::from(a))
                        }
                        _ => return Err(CertError::MalformedExtension("subjectAltName")),
                    },
                    GeneralName::Invalid(..) => {
                        return Err(CertError::MalformedExtension("subjectAltName"));
                    }
                    _ => SubjectAltName::Other,
                };
                sans.push(san);
            }
        }

        // X509-SVID §2: exactly one URI SAN, and it is the SPIFFE ID.
        let uris: Vec<&str> = sans
            .iter()
            .filter_map(|s| match s {
                SubjectAltName::Uri(u) => Some(u.as_str()),
                _ => None,
            })
            .collect();
        let spiffe_id = match uris.as_slice() {
            [one] if one.starts_with("spiffe://") => Some(SpiffeId::parse(one)?),
            _ => None,
        };

        let is_ca = cert
            .basic_constraints()
            .map_err(|_| CertError::MalformedExtension("basicConstraints"))?
            .is_some_and(|bc| bc.value.ca);
        let eku_client_auth = cert
            .extended_key_usage()
            .map_err(|_| CertError::MalformedExtension("extendedKeyUsage"))?
            .is_some_and(|e| e.value.client_auth || e.value.any);

        let mut transaction = None;
        let mut psd2 = None;
        for ext in cert.extensions() {
            let oid = ext.oid.to_id_string();
            if oid == TRANSACTION_CONTEXT_OID_STR {
                if transaction.is_some() {
                    return Err(CertError::MalformedExtension("transactionContext"));
                }
                transaction = Some(TransactionContext::from_der(ext.value)?);
            } else if oid == QC_STATEMENTS_OID {
                if psd2.is_some() {
                    return Err(CertError::MalformedExtension("qcStatements"));
                }
                psd2 = Some(parse_qc_statements(ext.value)?);
            }
        }

        let validity = cert.validity();
        Ok(PeerCertificate {
            der: Arc::from(der),
            thumbprint: CertThumbprint::of_der(der),
            spki_sha256: SpkiSha256::of_spki_der(cert.public_key().raw),
            serial: strip_leading_zeros(cert.raw_serial()),
            subject,
            issuer,
            self_issued,
            sans,
            spiffe_id,
            not_before: validity.not_before.to_datetime(),
            not_after: validity.not_after.to_datetime(),
            is_ca,
            eku_client_auth,
            transaction,
            psd2: psd2.flatten(),
        })
    }

    /// The certificate DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }
    /// RFC 8705 `x5t#S256`.
    pub fn thumbprint(&self) -> CertThumbprint {
        self.thumbprint
    }
    /// SHA-256 of the SubjectPublicKeyInfo.
    pub fn spki_sha256(&self) -> SpkiSha256 {
        self.spki_sha256
    }
    /// Serial number, big-endian magnitude without leading zero bytes.
    pub fn serial(&self) -> &[u8] {
        &self.serial
    }
    /// Serial number as lowercase hex.
    pub fn serial_hex(&self) -> String {
        hex::encode(&self.serial)
    }
    /// Subject name.
    pub fn subject(&self) -> &DistinguishedName {
        &self.subject
    }
    /// Issuer name.
    pub fn issuer(&self) -> &DistinguishedName {
        &self.issuer
    }
    /// Subject and issuer are the same name (a self-signed client certificate, RFC 8705 §2.2).
    pub fn is_self_issued(&self) -> bool {
        self.self_issued
    }
    /// Typed subjectAltName entries.
    pub fn sans(&self) -> &[SubjectAltName] {
        &self.sans
    }
    /// The SPIFFE ID, when the certificate has exactly one URI SAN and it is a SPIFFE ID.
    pub fn spiffe_id(&self) -> Option<&SpiffeId> {
        self.spiffe_id.as_ref()
    }
    /// Start of validity.
    pub fn not_before(&self) -> OffsetDateTime {
        self.not_before
    }
    /// End of validity.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }
    /// Whether `now` lies within the validity period.
    pub fn is_valid_at(&self, now: OffsetDateTime) -> bool {
        self.not_before <= now && now <= self.not_after
    }
    /// basicConstraints cA.
    pub fn is_ca(&self) -> bool {
        self.is_ca
    }
    /// extendedKeyUsage allows clientAuth.
    pub fn allows_client_auth(&self) -> bool {
        self.eku_client_auth
    }
    /// The Kairos transaction context, when this is a per-transaction certificate.
    pub fn transaction(&self) -> Option<&TransactionContext> {
        self.transaction.as_ref()
    }
    /// The PSD2 QCStatement, when present.
    pub fn psd2(&self) -> Option<&Psd2QcStatement> {
        self.psd2.as_ref()
    }
    /// Does any SAN of the given kind equal `value`? (typed, per RFC 8705 §2.1.2)
    pub fn has_san(&self, wanted: &SubjectAltName) -> bool {
        self.sans.iter().any(|s| match (s, wanted) {
            (SubjectAltName::Dns(a), SubjectAltName::Dns(b)) => a.eq_ignore_ascii_case(b),
            (SubjectAltName::Email(a), SubjectAltName::Email(b)) => a == b,
            (SubjectAltName::Uri(a), SubjectAltName::Uri(b)) => a == b,
            (SubjectAltName::Ip(a), SubjectAltName::Ip(b)) => a == b,
            _ => false,
        })
    }
}

fn bounded(s: &str) -> Result<String, CertError> {
    if s.len() > MAX_SAN_LEN {
        return Err(CertError::SanTooLong { max: MAX_SAN_LEN });
    }
    Ok(s.to_owned())
}

fn strip_leading_zeros(b: &[u8]) -> Vec<u8> {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    b.get(first..).unwrap_or(&[]).to_vec()
}

/// Parses every `CERTIFICATE` block of a PEM bundle into DER (for chains and trust bundles).
pub fn pem_certificates(pem_text: &[u8]) -> Result<Vec<Vec<u8>>, CertError> {
    if pem_text.len() > MAX_PEM {
        return Err(CertError::TooLarge { max: MAX_PEM });
    }
    let blocks = pem::parse_many(pem_text).map_err(|_| CertError::Pem)?;
    let certs: Vec<Vec<u8>> = blocks
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(pem::Pem::into_contents)
        .collect();
    if certs.is_empty() {
        return Err(CertError::Pem);
    }
    Ok(certs)
}
