//! The certificate authority: dev CA bootstrap, per-transaction client certificates, SPIFFE
//! X509-SVIDs and TLS server certificates, all under an [`IssuancePolicy`].

use std::net::IpAddr;
use std::sync::Arc;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyUsagePurpose, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use crate::context::{TRANSACTION_CONTEXT_OID, TransactionContext};
use crate::csr::VerifiedCsr;
use crate::error::{IssueError, SignerError};
use crate::keys::{GeneratedKey, KeyType, SubjectKey};
use crate::peer::PeerCertificate;
use crate::signer::{RcgenSigner, Signer};
use crate::spiffe::SpiffeId;
use crate::thumbprint::CertThumbprint;
use crate::verify::VerifiedClientCert;

/// Limits applied to every certificate issued.
#[derive(Clone, Debug)]
pub struct IssuancePolicy {
    /// TTL of a transaction certificate when none is requested.
    pub transaction_default_ttl: Duration,
    /// Longest TTL of a transaction certificate.
    pub transaction_max_ttl: Duration,
    /// TTL of an SVID.
    pub svid_ttl: Duration,
    /// TTL of a server certificate.
    pub server_ttl: Duration,
    /// Shortest certificate worth issuing (a requester expiring sooner is refused).
    pub min_ttl: Duration,
}

impl Default for IssuancePolicy {
    fn default() -> Self {
        Self {
            transaction_default_ttl: Duration::minutes(5),
            transaction_max_ttl: Duration::minutes(15),
            svid_ttl: Duration::hours(24),
            server_ttl: Duration::days(90),
            min_ttl: Duration::seconds(5),
        }
    }
}

/// The subject key of a request: a verified CSR, or "generate the key here".
#[derive(Debug)]
pub enum KeySource {
    /// Use the public key of this CSR.
    Csr(VerifiedCsr),
    /// Generate a key of this type and return it with the certificate.
    Generate(KeyType),
}

/// A workload that authenticated with a chain-verified SVID of this CA's trust domain.
#[derive(Debug, Clone)]
pub struct Workload {
    spiffe_id: SpiffeId,
    not_after: OffsetDateTime,
    thumbprint: CertThumbprint,
}

impl Workload {
    /// The workload's SPIFFE ID.
    pub fn spiffe_id(&self) -> &SpiffeId {
        &self.spiffe_id
    }
    /// End of the workload certificate's validity.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }
    /// The workload certificate's thumbprint.
    pub fn thumbprint(&self) -> CertThumbprint {
        self.thumbprint
    }
}

/// A request for a per-transaction client certificate.
#[derive(Debug)]
pub struct TransactionRequest {
    /// Transaction id, session id and context.
    pub context: TransactionContext,
    /// Where the subject key comes from.
    pub key: KeySource,
    /// Requested lifetime; the policy default when `None`.
    pub ttl: Option<Duration>,
}

/// A certificate just issued.
#[derive(Debug)]
pub struct IssuedCertificate {
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// The certificate, PEM.
    pub pem: String,
    /// The chain above it (the CA certificate), PEM.
    pub chain_pem: String,
    /// The private key, when it was generated here.
    pub private_key: Option<GeneratedKey>,
    /// The serial number (big-endian magnitude).
    pub serial: Vec<u8>,
    /// `x5t#S256` of the certificate.
    pub thumbprint: CertThumbprint,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
}

impl IssuedCertificate {
    /// Serial as lowercase hex.
    pub fn serial_hex(&self) -> String {
        hex::encode(&self.serial)
    }
    /// The private key as PEM, when generated here.
    pub fn private_key_pem(&self) -> Option<Zeroizing<String>> {
        self.private_key.as_ref().map(GeneratedKey::to_pkcs8_pem)
    }
}

/// The Kairos CA.
pub struct CertificateAuthority {
    issuer: Issuer<'static, RcgenSigner>,
    cert_der: Vec<u8>,
    cert_pem: String,
    trust_domain: String,
    policy: IssuancePolicy,
    rng: SystemRandom,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("trust_domain", &self.trust_domain)
            .field("thumbprint", &CertThumbprint::of_der(&self.cert_der))
            .field("signer", self.issuer.key().0.as_ref())
            .finish()
    }
}

fn rcgen_err(e: rcgen::Error) -> IssueError {
    match e {
        rcgen::Error::RemoteKeyError => IssueError::Signer(SignerError::Signing),
        other => IssueError::Encoding(other.to_string()),
    }
}

fn second(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap_or(t)
}

impl CertificateAuthority {
    /// Creates a self-signed root CA (10 years, pathLen 0) for `trust_domain` with `signer`.
    pub fn create(
        signer: Arc<dyn Signer>,
        trust_domain: &str,
        now: OffsetDateTime,
        policy: IssuancePolicy,
    ) -> Result<Self, IssueError> {
        SpiffeId::parse_any(&format!("spiffe://{trust_domain}"))?;
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Kairos");
        dn.push(DnType::CommonName, format!("Kairos CA {trust_domain}"));
        p.distinguished_name = dn;
        p.not_before = second(now) - Duration::minutes(5);
        p.not_after = second(now) + Duration::days(3650);
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        p.key_identifier_method = KeyIdMethod::Sha256;
        p.serial_number = Some(random_serial(&SystemRandom::new())?);
        // No URI name constraints: rustls-webpki does not process them and would refuse every
        // SVID. Trust-domain scoping is enforced at issuance instead.
        let signer = RcgenSigner(signer);
        let cert = p.self_signed(&signer).map_err(rcgen_err)?;
        Self::from_parts(cert.der().to_vec(), signer, trust_domain, policy)
    }

    /// Loads a CA from its certificate (PEM) and the signer holding its key; the signer's public
    /// key must be the certificate's.
    pub fn from_pem(
        cert_pem: &str,
        signer: Arc<dyn Signer>,
        trust_domain: &str,
        policy: IssuancePolicy,
    ) -> Result<Self, IssueError> {
        let block =
            pem::parse(cert_pem).map_err(|_| IssueError::Encoding("CA PEM unreadable".into()))?;
        Self::from_parts(
            block.into_contents(),
            RcgenSigner(signer),
            trust_domain,
            policy,
        )
    }

    fn from_parts(
        cert_der: Vec<u8>,
        signer: RcgenSigner,
        trust_domain: &str,
        policy: IssuancePolicy,
    ) -> Result<Self, IssueError> {
        SpiffeId::parse_any(&format!("spiffe://{trust_domain}"))?;
        let parsed = PeerCertificate::from_der(&cert_der)
            .map_err(|e| IssueError::Encoding(format!("CA certificate: {e}")))?;
        if !parsed.is_ca() {
            return Err(IssueError::Encoding("CA certificate is not a CA".into()));
        }
        let spki = x509_parser::parse_x509_certificate(&cert_der)
            .map_err(|_| IssueError::Encoding("CA certificate unreadable".into()))?
            .1
            .public_key()
            .raw
            .to_vec();
        if spki != signer.0.public_key_spki() {
            return Err(IssueError::Encoding(
                "CA key does not match the CA certificate".into(),
            ));
        }
        let rcgen_der = rustls_pki_types::CertificateDer::from(cert_der.as_slice());
        let issuer = Issuer::from_ca_cert_der(&rcgen_der, signer).map_err(rcgen_err)?;
        let cert_pem = pem::encode(&pem::Pem::new("CERTIFICATE", cert_der.clone()));
        Ok(Self {
            issuer,
            cert_der,
            cert_pem,
            trust_domain: trust_domain.to_owned(),
            policy,
            rng: SystemRandom::new(),
        })
    }

    /// The CA certificate, DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.cert_der
    }
    /// The CA certificate, PEM.
    pub fn certificate_pem(&self) -> &str {
        &self.cert_pem
    }
    /// The trust domain whose SVIDs this CA issues.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }
    /// The issuance policy.
    pub fn policy(&self) -> &IssuancePolicy {
        &self.policy
    }

    /// Accepts a verified client certificate as a workload that may request transaction
    /// certificates: it must carry a SPIFFE ID of this trust domain and must not itself be a
    /// transaction certificate.
    pub fn workload(&self, verified: &VerifiedClientCert) -> Result<Workload, IssueError> {
        let cert = verified.certificate();
        if cert.transaction().is_some() {
            return Err(IssueError::TransactionCertAsRequester);
        }
        let id = cert.spiffe_id().ok_or(IssueError::NoRequesterIdentity)?;
        if id.trust_domain() != self.trust_domain {
            return Err(IssueError::ForeignTrustDomain(self.trust_domain.clone()));
        }
        Ok(Workload {
            spiffe_id: id.clone(),
            not_after: cert.not_after(),
            thumbprint: cert.thumbprint(),
        })
    }

    /// Issues a per-transaction client certificate for `workload`.
    pub fn issue_transaction_cert(
        &self,
        workload: &Workload,
        request: TransactionRequest,
        now: OffsetDateTime,
    ) -> Result<IssuedCertificate, IssueError> {
        let now = second(now);
        let ttl = request.ttl.unwrap_or(self.policy.transaction_default_ttl);
        if !ttl.is_positive() {
            return Err(IssueError::BadTtl);
        }
        let ttl = ttl.min(self.policy.transaction_max_ttl);
        let not_after = (now + ttl).min(workload.not_after);
        if not_after - now < self.policy.min_ttl {
            return Err(IssueError::RequesterExpiring);
        }
        let mut p = leaf_params(now, not_after, random_serial(&self.rng)?);
        p.distinguished_name
            .push(DnType::CommonName, request.context.transaction_id());
        p.subject_alt_names = vec![uri_san(workload.spiffe_id.as_str())?];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let mut ext =
            CustomExtension::from_oid_content(TRANSACTION_CONTEXT_OID, request.context.to_der());
        ext.set_criticality(false);
        p.custom_extensions = vec![ext];
        self.sign(p, request.key)
    }

    /// Issues a SPIFFE X509-SVID for `spiffe_id` (which must be in this trust domain).
    pub fn issue_svid(
        &self,
        spiffe_id: &SpiffeId,
        key: KeySource,
        ttl: Option<Duration>,
        now: OffsetDateTime,
    ) -> Result<IssuedCertificate, IssueError> {
        if spiffe_id.trust_domain() != self.trust_domain {
            return Err(IssueError::ForeignTrustDomain(self.trust_domain.clone()));
        }
        let now = second(now);
        let ttl = ttl.unwrap_or(self.policy.svid_ttl);
        if !ttl.is_positive() {
            return Err(IssueError::BadTtl);
        }
        let mut p = leaf_params(now, now + ttl, random_serial(&self.rng)?);
        p.distinguished_name
            .push(DnType::OrganizationName, "Kairos");
        p.subject_alt_names = vec![uri_san(spiffe_id.as_str())?];
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyAgreement,
        ];
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        self.sign(p, key)
    }

    /// Issues a TLS server certificate for DNS names and IP addresses.
    pub fn issue_server_cert(
        &self,
        dns_names: &[String],
        ips: &[IpAddr],
        key: KeySource,
        now: OffsetDateTime,
    ) -> Result<IssuedCertificate, IssueError> {
        let now = second(now);
        let mut p = leaf_params(now, now + self.policy.server_ttl, random_serial(&self.rng)?);
        let cn = dns_names
            .first()
            .cloned()
            .unwrap_or_else(|| "kairos".into());
        p.distinguished_name.push(DnType::CommonName, cn);
        let mut sans = Vec::new();
        for d in dns_names {
            sans.push(SanType::DnsName(
                d.as_str()
                    .try_into()
                    .map_err(|_| IssueError::BadServerName(d.clone()))?,
            ));
        }
        sans.extend(ips.iter().copied().map(SanType::IpAddress));
        p.subject_alt_names = sans;
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(p, key)
    }

    fn sign(&self, p: CertificateParams, key: KeySource) -> Result<IssuedCertificate, IssueError> {
        let (public, generated): (SubjectKey, Option<GeneratedKey>) = match key {
            KeySource::Csr(csr) => (csr.key, None),
            KeySource::Generate(t) => {
                let g = GeneratedKey::generate(t)?;
                (g.public.clone(), Some(g))
            }
        };
        let cert = p.signed_by(&public, &self.issuer).map_err(rcgen_err)?;
        let der = cert.der().to_vec();
        let serial = p
            .serial_number
            .as_ref()
            .map(SerialNumber::to_bytes)
            .unwrap_or_default();
        Ok(IssuedCertificate {
            thumbprint: CertThumbprint::of_der(&der),
            pem: cert.pem(),
            der,
            chain_pem: self.cert_pem.clone(),
            private_key: generated,
            serial,
            not_before: p.not_before,
            not_after: p.not_after,
        })
    }
}

fn leaf_params(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    serial: SerialNumber,
) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    p.not_before = not_before;
    p.not_after = not_after;
    p.serial_number = Some(serial);
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.use_authority_key_identifier_extension = true;
    p.key_identifier_method = KeyIdMethod::Sha256;
    p
}

fn uri_san(uri: &str) -> Result<SanType, IssueError> {
    Ok(SanType::URI(uri.try_into().map_err(|_| {
        IssueError::Encoding("URI SAN is not IA5".into())
    })?))
}

/// A random positive serial of 16 bytes (at least 120 bits of entropy, RFC 5280 §4.1.2.2).
fn random_serial(rng: &SystemRandom) -> Result<SerialNumber, IssueError> {
    let mut b = [0u8; 16];
    rng.fill(&mut b).map_err(|_| IssueError::KeyGeneration)?;
    b[0] = (b[0] & 0x7f) | 0x40; // positive, and exactly 16 bytes long
    Ok(SerialNumber::from_slice(&b))
}

/// SVID rotation rule: renewal is due once `fraction` (0.5 by default, SPIRE's half-life) of
/// the certificate's lifetime has elapsed, or when it has expired. Pure: time is a parameter.
pub fn renewal_due(cert: &PeerCertificate, now: OffsetDateTime, fraction: f64) -> bool {
    let lifetime = cert.not_after() - cert.not_before();
    let fraction = if fraction.is_finite() {
        fraction.clamp(0.0, 1.0)
    } else {
        0.5
    };
    now >= cert.not_before() + lifetime * fraction
}
