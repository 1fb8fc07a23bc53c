//! The data directory: dev CA, server certificate and token key, created on first start and
//! reused later. Keys are written 0600.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kairos_authz::{JwsAlgorithm, TokenKey};
use kairos_issuer::{
    CertificateAuthority, IssuancePolicy, KeySource, KeyType, LocalSigner, PeerCertificate,
    read_secret_file, write_secret_file,
};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

/// What a data directory holds once bootstrapped.
#[derive(Debug)]
pub struct DataDir {
    /// The directory.
    pub path: PathBuf,
    /// The CA.
    pub ca: Arc<CertificateAuthority>,
    /// Server certificate chain (PEM: leaf then CA).
    pub server_chain_pem: String,
    /// Server key (PEM PKCS#8).
    pub server_key_pem: Zeroizing<String>,
    /// Token-signing key.
    pub token_key: Arc<TokenKey>,
    /// Whether this start created the directory.
    pub created: bool,
}

/// Bootstrap failed.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// File IO.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A key or certificate is unusable.
    #[error("{0}")]
    Invalid(String),
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> BootstrapError + '_ {
    move |source| BootstrapError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn inv(e: impl std::fmt::Display) -> BootstrapError {
    BootstrapError::Invalid(e.to_string())
}

/// Opens (creating when absent) a data directory.
pub fn open(
    path: &Path,
    trust_domain: &str,
    token_alg: JwsAlgorithm,
    server_names: &[String],
    server_ips: &[IpAddr],
    now: OffsetDateTime,
) -> Result<DataDir, BootstrapError> {
    std::fs::create_dir_all(path).map_err(io(path))?;
    let ca_pem_path = path.join("ca.pem");
    let ca_key_path = path.join("ca.key");
    let created = !ca_pem_path.exists();
    let ca = if created {
        let signer = LocalSigner::generate_p256().map_err(inv)?;
        signer.write_pem_file(&ca_key_path).map_err(inv)?;
        let ca = CertificateAuthority::create(
            Arc::new(signer),
            trust_domain,
            now,
            IssuancePolicy::default(),
        )
        .map_err(inv)?;
        std::fs::write(&ca_pem_path, ca.certificate_pem()).map_err(io(&ca_pem_path))?;
        ca
    } else {
        let signer = LocalSigner::read_pem_file(&ca_key_path).map_err(inv)?;
        let pem = std::fs::read_to_string(&ca_pem_path).map_err(io(&ca_pem_path))?;
        CertificateAuthority::from_pem(
            &pem,
            Arc::new(signer),
            trust_domain,
            IssuancePolicy::default(),
        )
        .map_err(inv)?
    };

    // server certificate: reissued when missing, expiring within 7 days, or for other names
    let srv_pem_path = path.join("server.pem");
    let srv_key_path = path.join("server.key");
    let reuse = srv_pem_path.exists()
        && srv_key_path.exists()
        && std::fs::read(&srv_pem_path)
            .ok()
            .and_then(|p| PeerCertificate::from_pem(&p).ok())
            .is_some_and(|c| {
                c.not_after() > now + Duration::days(7)
                    && server_names
                        .iter()
                        .all(|n| c.has_san(&kairos_issuer::SubjectAltName::Dns(n.clone())))
                    && server_ips
                        .iter()
                        .all(|ip| c.has_san(&kairos_issuer::SubjectAltName::Ip(*ip)))
            });
    let (server_chain_pem, server_key_pem) = if reuse {
        (
            std::fs::read_to_string(&srv_pem_path).map_err(io(&srv_pem_path))?,
            read_secret_file(&srv_key_path).map_err(inv)?,
        )
    } else {
        let issued = ca
            .issue_server_cert(
                server_names,
                server_ips,
                KeySource::Generate(KeyType::P256),
                now,
            )
            .map_err(inv)?;
        let chain = format!("{}{}", issued.pem, issued.chain_pem);
        let key = issued
            .private_key_pem()
            .ok_or_else(|| inv("server key missing"))?;
        write_secret_file(&srv_key_path, key.as_bytes()).map_err(inv)?;
        std::fs::write(&srv_pem_path, &chain).map_err(io(&srv_pem_path))?;
        (chain, key)
    };

    let token_key_path = path.join(format!("token-{}.key", token_alg.as_str().to_lowercase()));
    let token_key = if token_key_path.exists() {
        let pem_text = read_secret_file(&token_key_path).map_err(inv)?;
        let block = pem::parse(pem_text.as_bytes()).map_err(inv)?;
        let der = Zeroizing::new(block.into_contents());
        TokenKey::from_pkcs8(token_alg, &der).map_err(inv)?
    } else {
        let k = TokenKey::generate(token_alg).map_err(inv)?;
        let pem_text = Zeroizing::new(pem::encode(&pem::Pem::new(
            "PRIVATE KEY",
            k.pkcs8_der().to_vec(),
        )));
        write_secret_file(&token_key_path, pem_text.as_bytes()).map_err(inv)?;
        k
    };

    Ok(DataDir {
        path: path.to_owned(),
        ca: Arc::new(ca),
        server_chain_pem,
        server_key_pem,
        token_key: Arc::new(token_key),
        created,
    })
}
