//! The `Signer` port for the CA key, and a local PKCS#8 implementation.
//!
//! Issuance code only sees `Arc<dyn Signer>`: a KMS-held key implements the same three methods
//! (its `sign` calls the KMS `Sign` API with the message digest) and plugs in without touching
//! issuance. The local key is kept as PKCS#8 in a zeroizing buffer, is redacted in `Debug`, and
//! is written with mode 0600.

use std::fmt;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};
use zeroize::Zeroizing;

use crate::error::SignerError;
use crate::thumbprint::SpkiSha256;

/// Signature algorithms a CA key can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureAlgorithm {
    /// ECDSA P-256 with SHA-256 (DER signature), `ecdsa-with-SHA256`.
    EcdsaP256Sha256,
    /// Ed25519.
    Ed25519,
}

impl SignatureAlgorithm {
    pub(crate) fn rcgen(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            SignatureAlgorithm::EcdsaP256Sha256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            SignatureAlgorithm::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }
}

/// A key that signs certificates. Implementations must never expose the private key.
pub trait Signer: Send + Sync + fmt::Debug {
    /// The signature algorithm.
    fn algorithm(&self) -> SignatureAlgorithm;
    /// The public key as X.509 SubjectPublicKeyInfo DER.
    fn public_key_spki(&self) -> &[u8];
    /// The raw public key bits (the SubjectPublicKeyInfo BIT STRING contents).
    fn public_key_raw(&self) -> &[u8];
    /// Signs `message` (the signer hashes it as its algorithm requires).
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignerError>;
}

enum LocalKey {
    P256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A CA key held in this process as PKCS#8.
pub struct LocalSigner {
    pkcs8: Zeroizing<Vec<u8>>,
    key: LocalKey,
    spki: Vec<u8>,
    raw: Vec<u8>,
    rng: SystemRandom,
}

impl LocalSigner {
    /// Generates a new ECDSA P-256 key.
    pub fn generate_p256() -> Result<Self, SignerError> {
        let kp = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
            .map_err(|_| SignerError::KeyRejected("P-256 key generation failed".into()))?;
        let doc = kp
            .to_pkcs8v1()
            .map_err(|_| SignerError::KeyRejected("P-256 PKCS#8 export failed".into()))?;
        Self::from_pkcs8_der(doc.as_ref())
    }

    /// Loads a PKCS#8 DER key (ECDSA P-256 or Ed25519).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, SignerError> {
        let pkcs8 = Zeroizing::new(der.to_vec());
        let (key, spki, raw) =
            match EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &pkcs8) {
                Ok(kp) => {
                    let spki = kp
                        .public_key()
                        .as_der()
                        .map_err(|_| SignerError::KeyRejected("public key export".into()))?
                        .as_ref()
                        .to_vec();
                    let raw = kp.public_key().as_ref().to_vec();
                    (LocalKey::P256(kp), spki, raw)
                }
                Err(_) => {
                    let kp = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8).map_err(|e| {
                        SignerError::KeyRejected(format!("not a P-256 or Ed25519 PKCS#8 key: {e}"))
                    })?;
                    let spki = kp
                        .public_key()
                        .as_der()
                        .map_err(|_| SignerError::KeyRejected("public key export".into()))?
                        .as_ref()
                        .to_vec();
                    let raw = kp.public_key().as_ref().to_vec();
                    (LocalKey::Ed25519(kp), spki, raw)
                }
            };
        Ok(Self {
            pkcs8,
            key,
            spki,
            raw,
            rng: SystemRandom::new(),
        })
    }

    /// Loads a PEM `PRIVATE KEY` (PKCS#8).
    pub fn from_pkcs8_pem(pem_text: &str) -> Result<Self, SignerError> {
        let block = pem::parse(pem_text).map_err(|_| SignerError::Pem)?;
        if block.tag() != "PRIVATE KEY" {
            return Err(SignerError::Pem);
        }
        let der = Zeroizing::new(block.into_contents());
        Self::from_pkcs8_der(&der)
    }

    /// The key as PEM PKCS#8, in a buffer that is wiped when dropped.
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(pem::encode(&pem::Pem::new(
            "PRIVATE KEY",
            self.pkcs8.as_slice().to_vec(),
        )))
    }

    /// Writes the key as PEM to `path` with mode 0600 (atomically, via a temporary file).
    pub fn write_pem_file(&self, path: &Path) -> Result<(), SignerError> {
        write_secret_file(path, self.to_pkcs8_pem().as_bytes())
    }

    /// Reads a PEM key file, refusing one that group or others can read.
    pub fn read_pem_file(path: &Path) -> Result<Self, SignerError> {
        let text = read_secret_file(path)?;
        Self::from_pkcs8_pem(&text)
    }

    /// Shares the signer behind the port.
    pub fn into_arc(self) -> Arc<dyn Signer> {
        Arc::new(self)
    }
}

/// Writes secret bytes to `path` with mode 0600 through a temporary file and a rename.
pub fn write_secret_file(path: &Path, bytes: &[u8]) -> Result<(), SignerError> {
    let io = |source| SignerError::Io {
        path: path.display().to_string(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(())
}

/// Reads a secret file, refusing one that group or others can read.
pub fn read_secret_file(path: &Path) -> Result<Zeroizing<String>, SignerError> {
    let io = |source| SignerError::Io {
        path: path.display().to_string(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SignerError::Permissions {
            path: path.display().to_string(),
            mode,
        });
    }
    Ok(Zeroizing::new(std::fs::read_to_string(path).map_err(io)?))
}

impl Signer for LocalSigner {
    fn algorithm(&self) -> SignatureAlgorithm {
        match self.key {
            LocalKey::P256(_) => SignatureAlgorithm::EcdsaP256Sha256,
            LocalKey::Ed25519(_) => SignatureAlgorithm::Ed25519,
        }
    }
    fn public_key_spki(&self) -> &[u8] {
        &self.spki
    }
    fn public_key_raw(&self) -> &[u8] {
        &self.raw
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignerError> {
        match &self.key {
            LocalKey::P256(kp) => kp
                .sign(&self.rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| SignerError::Signing),
            LocalKey::Ed25519(kp) => Ok(kp.sign(message).as_ref().to_vec()),
        }
    }
}

impl fmt::Debug for LocalSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalSigner")
            .field("algorithm", &self.algorithm())
            .field("public_key", &SpkiSha256::of_spki_der(&self.spki))
            .field("private_key", &"[redacted]")
            .finish()
    }
}

/// Adapts the port to rcgen's signing trait.
pub(crate) struct RcgenSigner(pub(crate) Arc<dyn Signer>);

impl rcgen::PublicKeyData for RcgenSigner {
    fn der_bytes(&self) -> &[u8] {
        self.0.public_key_raw()
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.0.algorithm().rcgen()
    }
}

impl rcgen::SigningKey for RcgenSigner {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.0.sign(msg).map_err(|_| rcgen::Error::RemoteKeyError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted_and_pem_round_trips() {
        let s = LocalSigner::generate_p256().unwrap();
        let dbg = format!("{s:?}");
        assert!(dbg.contains("[redacted]"));
        let pem = s.to_pkcs8_pem();
        assert!(!dbg.contains(pem.lines().nth(1).unwrap()));
        let s2 = LocalSigner::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(s.public_key_spki(), s2.public_key_spki());
    }

    #[test]
    fn key_file_is_0600_and_loose_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.key");
        let s = LocalSigner::generate_p256().unwrap();
        s.write_pem_file(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            LocalSigner::read_pem_file(&path).unwrap().public_key_spki(),
            s.public_key_spki()
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            LocalSigner::read_pem_file(&path),
            Err(SignerError::Permissions { .. })
        ));
    }

    #[test]
    fn garbage_keys_are_typed_errors() {
        assert!(matches!(
            LocalSigner::from_pkcs8_der(b"nope"),
            Err(SignerError::KeyRejected(_))
        ));
        assert!(matches!(
            LocalSigner::from_pkcs8_pem("nope"),
            Err(SignerError::Pem)
        ));
    }
}
