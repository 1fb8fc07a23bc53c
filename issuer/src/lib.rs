//! # kairos-issuer
//!
//! The lightweight CA at the bottom of Kairos, and the one place peer certificates are parsed.
//!
//! - [`PeerCertificate`]: a certificate parsed once (x509-parser) into an owned, typed value:
//!   `x5t#S256` ([`CertThumbprint`]) and SPKI hash ([`SpkiSha256`]) as distinct types, serial,
//!   subject and issuer [`DistinguishedName`] (RFC 4514 rendering and canonical matching),
//!   typed [`SubjectAltName`]s, the [`SpiffeId`], validity, the PSD2 QCStatement
//!   ([`Psd2QcStatement`]) and the Kairos [`TransactionContext`].
//! - [`verify_client_cert`]: chain verification against [`TrustAnchors`] with EKU clientAuth
//!   (rustls-webpki), producing the [`VerifiedClientCert`] witness.
//! - [`CertificateAuthority`]: per-transaction client certificates, SPIFFE X509-SVIDs and TLS
//!   server certificates, signed through the [`Signer`] port ([`LocalSigner`] today, a KMS key
//!   later). A CSR ([`VerifiedCsr`]) contributes its public key and nothing else.
//!
//! No network IO, no clock: time is always a parameter.

mod ca;
mod context;
mod csr;
mod dn;
mod error;
mod keys;
mod peer;
mod psd2;
mod signer;
mod spiffe;
mod thumbprint;
mod verify;

pub use ca::{
    CertificateAuthority, IssuancePolicy, IssuedCertificate, KeySource, TransactionRequest,
    Workload, renewal_due,
};
pub use context::{
    MAX_CONTEXT_ENTRIES, MAX_CONTEXT_KEY, MAX_CONTEXT_VALUE, MAX_ID_LEN, MAX_SESSION_ID_LEN,
    TRANSACTION_CONTEXT_OID, TRANSACTION_CONTEXT_OID_STR, TransactionContext,
};
pub use csr::{MAX_CSR_DER, MAX_CSR_PEM, VerifiedCsr};
pub use dn::{CanonicalDn, DistinguishedName, DnParseError, NameAttribute};
pub use error::{
    CertError, ContextError, CsrError, IssueError, Psd2Error, SignerError, SpiffeError, VerifyError,
};
pub use keys::{GeneratedKey, KeyType};
pub use peer::{
    MAX_CERT_DER, MAX_PEM, MAX_SAN_LEN, MAX_SANS, PeerCertificate, SubjectAltName, pem_certificates,
};
pub use psd2::{Psd2QcStatement, Psd2Role, encode_qc_statements, parse_qc_statements};
pub use signer::{LocalSigner, SignatureAlgorithm, Signer, read_secret_file, write_secret_file};
pub use spiffe::{MAX_SPIFFE_ID_LEN, SpiffeId};
pub use thumbprint::{CertThumbprint, SpkiSha256};
pub use verify::{TrustAnchors, VerifiedClientCert, unix_time, verify_client_cert};
