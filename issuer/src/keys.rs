//! Subject keys: generated here for the "keygen" path, or taken from a verified CSR.

use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};
use zeroize::Zeroizing;

use crate::error::IssueError;

/// Key types Kairos generates for subjects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum KeyType {
    /// ECDSA P-256 (the default).
    #[default]
    P256,
    /// Ed25519.
    Ed25519,
    /// RSA 2048.
    Rsa2048,
}

impl KeyType {
    /// The name used in APIs: `p256`, `ed25519`, `rsa2048`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::P256 => "p256",
            KeyType::Ed25519 => "ed25519",
            KeyType::Rsa2048 => "rsa2048",
        }
    }

    /// Parses the API name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "p256" => Some(KeyType::P256),
            "ed25519" => Some(KeyType::Ed25519),
            "rsa2048" => Some(KeyType::Rsa2048),
            _ => None,
        }
    }
}

/// A subject public key, as rcgen needs it (algorithm plus raw key bits).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubjectKey {
    pub(crate) alg: &'static rcgen::SignatureAlgorithm,
    pub(crate) raw: Vec<u8>,
}

impl rcgen::PublicKeyData for SubjectKey {
    fn der_bytes(&self) -> &[u8] {
        &self.raw
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.alg
    }
}

/// A key generated for a subject: the PKCS#8 is wiped when dropped and redacted in `Debug`.
pub struct GeneratedKey {
    key_type: KeyType,
    pkcs8: Zeroizing<Vec<u8>>,
    pub(crate) public: SubjectKey,
}

impl GeneratedKey {
    /// Generates a key of the given type.
    pub fn generate(key_type: KeyType) -> Result<Self, IssueError> {
        let err = |_| IssueError::KeyGeneration;
        let (pkcs8, public) = match key_type {
            KeyType::P256 => {
                let kp = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).map_err(err)?;
                let doc = kp.to_pkcs8v1().map_err(err)?;
                (
                    Zeroizing::new(doc.as_ref().to_vec()),
                    SubjectKey {
                        alg: &rcgen::PKCS_ECDSA_P256_SHA256,
                        raw: kp.public_key().as_ref().to_vec(),
                    },
                )
            }
            KeyType::Ed25519 => {
                let kp = Ed25519KeyPair::generate().map_err(err)?;
                let doc = kp.to_pkcs8v1().map_err(err)?;
                (
                    Zeroizing::new(doc.as_ref().to_vec()),
                    SubjectKey {
                        alg: &rcgen::PKCS_ED25519,
                        raw: kp.public_key().as_ref().to_vec(),
                    },
                )
            }
            KeyType::Rsa2048 => {
                let kp = aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048).map_err(err)?;
                let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> = kp.as_der().map_err(err)?;
                (
                    Zeroizing::new(der.as_ref().to_vec()),
                    SubjectKey {
                        alg: &rcgen::PKCS_RSA_SHA256,
                        raw: kp.public_key().as_ref().to_vec(),
                    },
                )
            }
        };
        Ok(Self {
            key_type,
            pkcs8,
            public,
        })
    }

    /// The key type.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The private key as PEM PKCS#8, in a buffer wiped when dropped.
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(pem::encode(&pem::Pem::new(
            "PRIVATE KEY",
            self.pkcs8.as_slice().to_vec(),
        )))
    }

    /// The private key as PKCS#8 DER.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }
}

impl fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("key_type", &self.key_type)
            .field("private_key", &"[redacted]")
            .finish()
    }
}
