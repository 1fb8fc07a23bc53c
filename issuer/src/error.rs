//! Typed errors, one enum per family of operation.

use thiserror::Error;

/// A SPIFFE ID that is not valid (SPIFFE-ID.md §2).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SpiffeError {
    /// The scheme is not `spiffe://`.
    #[error("SPIFFE ID must start with spiffe://")]
    WrongScheme,
    /// Nothing between `spiffe://` and the path.
    #[error("SPIFFE ID has an empty trust domain")]
    EmptyTrustDomain,
    /// The trust domain has characters outside `[a-z0-9._-]` (upper case, port, userinfo, …).
    #[error("SPIFFE trust domain may only contain lowercase letters, digits, '.', '_' and '-'")]
    BadTrustDomain,
    /// An empty, `.` or `..` segment, a trailing `/`, or characters outside `[A-Za-z0-9._-]`.
    #[error("SPIFFE ID path is not valid")]
    BadPath,
    /// A workload ID needs a path.
    #[error("SPIFFE ID of a workload must have a path")]
    MissingPath,
    /// Longer than 2048 bytes (or trust domain longer than 255).
    #[error("SPIFFE ID is too long")]
    TooLong,
}

/// The transaction-context extension could not be built or read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ContextError {
    /// The transaction id is empty, too long, or has characters outside the allowed set.
    #[error("transaction id must be 1-64 characters of [A-Za-z0-9._:-]")]
    BadTransactionId,
    /// The session id is empty, too long, or has characters outside the allowed set.
    #[error("session id must be 1-128 characters of [A-Za-z0-9._:-]")]
    BadSessionId,
    /// More context entries than allowed.
    #[error("too many context entries (at most {max})")]
    TooManyEntries {
        /// The limit.
        max: usize,
    },
    /// A context key is empty, too long or not `[a-z0-9_-]`.
    #[error("context keys must be 1-32 characters of [a-z0-9_-]")]
    BadKey,
    /// A context value is too long or holds control characters.
    #[error("context values must be at most 256 characters without control characters")]
    BadValue,
    /// The extension's bytes are not the DER this crate writes.
    #[error("transaction context extension is malformed")]
    Malformed,
}

/// The PSD2 QCStatement (ETSI TS 119 495 Annex A) is malformed or not conformant.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Psd2Error {
    /// Not the DER structure of TS 119 495 Annex A.
    #[error("PSD2 QCStatement is not valid DER of the TS 119 495 structure")]
    Malformed,
    /// RolesOfPSP is empty.
    #[error("PSD2 QCStatement lists no role")]
    NoRole,
    /// A role's name does not match its OID.
    #[error("PSD2 role name does not match its OID")]
    RoleNameMismatch,
    /// NCAId is not `CC-NCA` (`^[A-Z]{{2}}-[A-Z]{{2,8}}$`).
    #[error("PSD2 NCAId is not of the form CC-NCA")]
    BadNcaId,
    /// NCAName is empty or longer than 256 characters.
    #[error("PSD2 NCAName is empty or too long")]
    BadNcaName,
}

/// A peer certificate could not be parsed into a [`crate::PeerCertificate`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CertError {
    /// Input larger than the bound.
    #[error("certificate input is larger than {max} bytes")]
    TooLarge {
        /// The limit in bytes.
        max: usize,
    },
    /// Not a PEM `CERTIFICATE` block.
    #[error("input is not a PEM certificate")]
    Pem,
    /// Not a DER X.509 certificate.
    #[error("certificate is not valid DER X.509: {0}")]
    Der(String),
    /// Bytes follow the certificate.
    #[error("trailing bytes after the certificate")]
    TrailingData,
    /// More subjectAltName entries than allowed.
    #[error("certificate has more than {max} subjectAltName entries")]
    TooManySans {
        /// The limit.
        max: usize,
    },
    /// A SAN value longer than allowed.
    #[error("certificate has a subjectAltName longer than {max} bytes")]
    SanTooLong {
        /// The limit in bytes.
        max: usize,
    },
    /// An extension this crate reads is malformed (or appears twice).
    #[error("certificate extension {0} is malformed")]
    MalformedExtension(&'static str),
    /// A `spiffe://` URI SAN is not a valid SPIFFE ID.
    #[error("certificate carries an invalid SPIFFE ID: {0}")]
    Spiffe(#[from] SpiffeError),
    /// The PSD2 QCStatement is present but not conformant.
    #[error("certificate PSD2 QCStatement: {0}")]
    Psd2(#[from] Psd2Error),
    /// The Kairos transaction-context extension is present but malformed.
    #[error("certificate transaction context: {0}")]
    Context(#[from] ContextError),
    /// The subject or issuer name cannot be read.
    #[error("certificate name is malformed")]
    BadName,
}

/// A PKCS#10 certificate signing request was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CsrError {
    /// Input larger than the bound.
    #[error("CSR is larger than {max} bytes")]
    TooLarge {
        /// The limit in bytes.
        max: usize,
    },
    /// Not a PEM `CERTIFICATE REQUEST` block.
    #[error("input is not a PEM certificate request")]
    Pem,
    /// Not a DER PKCS#10 request.
    #[error("CSR is not valid DER PKCS#10")]
    Malformed,
    /// The self-signature does not verify: no proof of possession.
    #[error("CSR signature does not verify (no proof of possession)")]
    BadSignature,
    /// The key type is not one Kairos issues for (P-256, P-384, Ed25519, RSA ≥ 2048).
    #[error("CSR public key type is not accepted")]
    UnsupportedKey,
}

/// The signing key could not be used.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SignerError {
    /// The key bytes are not an accepted PKCS#8 key.
    #[error("signing key rejected: {0}")]
    KeyRejected(String),
    /// Signing failed.
    #[error("signing failed")]
    Signing,
    /// Reading or writing the key file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The key file is readable by others than its owner.
    #[error(
        "key file {path} must not be readable by group or others (mode {mode:o}); chmod 600 it"
    )]
    Permissions {
        /// The file.
        path: String,
        /// The mode found.
        mode: u32,
    },
    /// The key is not PEM PKCS#8.
    #[error("key is not a PEM PRIVATE KEY (PKCS#8)")]
    Pem,
}

/// Certificate issuance failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum IssueError {
    /// The CSR was refused.
    #[error(transparent)]
    Csr(#[from] CsrError),
    /// The transaction context was refused.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// The SPIFFE ID was refused.
    #[error(transparent)]
    Spiffe(#[from] SpiffeError),
    /// The CA key could not sign.
    #[error(transparent)]
    Signer(#[from] SignerError),
    /// The requester's certificate has expired or expires too soon for any certificate.
    #[error("requester certificate expires before a certificate can be issued")]
    RequesterExpiring,
    /// The requester holds no SPIFFE ID.
    #[error("requester has no SPIFFE ID")]
    NoRequesterIdentity,
    /// A transaction certificate may not be used to obtain another one.
    #[error("a transaction certificate cannot be used to request another one")]
    TransactionCertAsRequester,
    /// The requester's SPIFFE ID is outside this CA's trust domain.
    #[error("requester SPIFFE ID is outside the trust domain {0}")]
    ForeignTrustDomain(String),
    /// The requested TTL is zero.
    #[error("requested TTL must be positive")]
    BadTtl,
    /// A DNS name or IP for a server certificate was not valid.
    #[error("invalid server name: {0}")]
    BadServerName(String),
    /// Key generation failed.
    #[error("key generation failed")]
    KeyGeneration,
    /// The certificate could not be encoded.
    #[error("certificate encoding failed: {0}")]
    Encoding(String),
}

/// A client certificate chain did not verify.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// No trust anchors are configured.
    #[error("no trust anchors configured")]
    NoTrustAnchors,
    /// A trust anchor certificate could not be used.
    #[error("trust anchor rejected: {0}")]
    BadTrustAnchor(String),
    /// The chain does not verify (untrusted issuer, expired, wrong EKU, …).
    #[error("certificate chain does not verify: {0}")]
    Invalid(String),
}
