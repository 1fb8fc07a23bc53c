//! The ledger signing key and the public keys that verify it.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::path::Path;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
    UnparsedPublicKey,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// DER prefix of a P-256 SubjectPublicKeyInfo with an uncompressed point (the point follows).
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// Largest PEM file accepted for a key.
const MAX_PEM_BYTES: usize = 16 * 1024;

/// Errors handling ledger keys.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key could not be generated.
    #[error("could not generate a P-256 key")]
    Generate,
    /// The PKCS#8 document or PEM is not a P-256 private key.
    #[error("not a P-256 PKCS#8 private key")]
    InvalidPrivateKey,
    /// The public key (JWK or SPKI) is malformed or not P-256.
    #[error("invalid public key: {0}")]
    InvalidPublicKey(&'static str),
    /// Signing failed.
    #[error("signing failed")]
    Sign,
    /// Reading or writing the key file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// The ledger's ECDSA P-256 signing key. `Debug` shows only the key id.
pub struct LedgerKey {
    pair: EcdsaKeyPair,
    pkcs8: Zeroizing<Vec<u8>>,
    public: VerifyingKey,
}

impl fmt::Debug for LedgerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LedgerKey")
            .field("kid", &self.public.kid)
            .field("private", &"<redacted>")
            .finish()
    }
}

impl LedgerKey {
    /// Generate a fresh key.
    pub fn generate() -> Result<Self, KeyError> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| KeyError::Generate)?;
        let doc = pair.to_pkcs8v1().map_err(|_| KeyError::Generate)?;
        Self::from_pkcs8_der(doc.as_ref())
    }

    /// Load from a PKCS#8 DER document.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
            .map_err(|_| KeyError::InvalidPrivateKey)?;
        let public = VerifyingKey::from_point(pair.public_key().as_ref())?;
        Ok(Self {
            pair,
            pkcs8: Zeroizing::new(der.to_vec()),
            public,
        })
    }

    /// Load from a `PRIVATE KEY` (PKCS#8) PEM.
    pub fn from_pkcs8_pem(text: &str) -> Result<Self, KeyError> {
        if text.len() > MAX_PEM_BYTES {
            return Err(KeyError::InvalidPrivateKey);
        }
        let parsed = pem::parse(text).map_err(|_| KeyError::InvalidPrivateKey)?;
        if parsed.tag() != "PRIVATE KEY" {
            return Err(KeyError::InvalidPrivateKey);
        }
        let der = Zeroizing::new(parsed.into_contents());
        Self::from_pkcs8_der(&der)
    }

    /// The private key as a PKCS#8 PEM (zeroised when dropped).
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        let p = pem::Pem::new("PRIVATE KEY", self.pkcs8.to_vec());
        let out = Zeroizing::new(pem::encode(&p));
        let mut contents = p.into_contents();
        zeroize::Zeroize::zeroize(&mut contents);
        out
    }

    /// Read a PKCS#8 PEM key file.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        if meta.len() > MAX_PEM_BYTES as u64 {
            return Err(KeyError::InvalidPrivateKey);
        }
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io)?);
        Self::from_pkcs8_pem(&text)
    }

    /// Write the key as a PKCS#8 PEM file with mode 0600 (created or replaced).
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        let pem = self.to_pkcs8_pem();
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io)?;
        f.write_all(pem.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)
    }

    /// Key id: the RFC 7638 JWK thumbprint of the public key.
    pub fn kid(&self) -> &str {
        &self.public.kid
    }

    /// The public key, for verification.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.public.clone()
    }

    /// The public key as a JWK (`kty` EC, `crv` P-256, `use` sig, `alg` ES256, `kid`).
    pub fn public_jwk(&self) -> Jwk {
        self.public.to_jwk()
    }

    /// The public key as a SubjectPublicKeyInfo PEM (`PUBLIC KEY`).
    pub fn public_spki_pem(&self) -> Result<String, KeyError> {
        let der = self
            .pair
            .public_key()
            .as_der()
            .map_err(|_| KeyError::InvalidPublicKey("cannot encode SPKI"))?;
        Ok(pem::encode(&pem::Pem::new(
            "PUBLIC KEY",
            der.as_ref().to_vec(),
        )))
    }

    /// Sign `message`; returns the base64url `r || s` signature.
    pub fn sign(&self, message: &[u8]) -> Result<String, KeyError> {
        let sig = self
            .pair
            .sign(&SystemRandom::new(), message)
            .map_err(|_| KeyError::Sign)?;
        Ok(B64.encode(sig.as_ref()))
    }
}

/// A public JSON Web Key for the ledger key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Always `EC`.
    pub kty: String,
    /// Always `P-256`.
    pub crv: String,
    /// X coordinate, base64url.
    pub x: String,
    /// Y coordinate, base64url.
    pub y: String,
    /// Key id (RFC 7638 thumbprint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// `sig`.
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// `ES256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
}

/// A P-256 public key with its key id.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    kid: String,
    point: Vec<u8>,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .finish()
    }
}

impl VerifyingKey {
    fn from_point(point: &[u8]) -> Result<Self, KeyError> {
        let (x, y) = split_point(point)?;
        Ok(Self {
            kid: thumbprint(&B64.encode(x), &B64.encode(y)),
            point: point.to_vec(),
        })
    }

    /// From a JWK (the `kid` is recomputed; a JWK whose `kid` differs from its thumbprint is
    /// rejected).
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, KeyError> {
        if jwk.kty != "EC" || jwk.crv != "P-256" {
            return Err(KeyError::InvalidPublicKey("not an EC P-256 JWK"));
        }
        let x = B64
            .decode(&jwk.x)
            .map_err(|_| KeyError::InvalidPublicKey("bad x"))?;
        let y = B64
            .decode(&jwk.y)
            .map_err(|_| KeyError::InvalidPublicKey("bad y"))?;
        if x.len() != 32 || y.len() != 32 {
            return Err(KeyError::InvalidPublicKey("coordinates must be 32 bytes"));
        }
        let mut point = Vec::with_capacity(65);
        point.push(4u8);
        point.extend_from_slice(&x);
        point.extend_from_slice(&y);
        let key = Self::from_point(&point)?;
        match &jwk.kid {
            Some(kid) if *kid != key.kid => Err(KeyError::InvalidPublicKey("kid mismatch")),
            _ => Ok(key),
        }
    }

    /// From a `PUBLIC KEY` (SPKI) PEM of a P-256 key.
    pub fn from_spki_pem(text: &str) -> Result<Self, KeyError> {
        if text.len() > MAX_PEM_BYTES {
            return Err(KeyError::InvalidPublicKey("PEM too large"));
        }
        let parsed = pem::parse(text).map_err(|_| KeyError::InvalidPublicKey("bad PEM"))?;
        if parsed.tag() != "PUBLIC KEY" {
            return Err(KeyError::InvalidPublicKey("not a PUBLIC KEY PEM"));
        }
        let der = parsed.contents();
        match der.strip_prefix(&P256_SPKI_PREFIX[..]) {
            Some(point) => Self::from_point(point),
            None => Err(KeyError::InvalidPublicKey("not a P-256 SPKI")),
        }
    }

    /// Key id (RFC 7638 thumbprint).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// As a JWK.
    pub fn to_jwk(&self) -> Jwk {
        let (x, y) = split_point(&self.point).unwrap_or((&[], &[]));
        Jwk {
            kty: "EC".into(),
            crv: "P-256".into(),
            x: B64.encode(x),
            y: B64.encode(y),
            kid: Some(self.kid.clone()),
            use_: Some("sig".into()),
            alg: Some("ES256".into()),
        }
    }

    /// Check a base64url `r || s` signature over `message`.
    pub fn verify(&self, message: &[u8], signature_b64: &str) -> bool {
        let Ok(sig) = B64.decode(signature_b64) else {
            return false;
        };
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &self.point)
            .verify(message, &sig)
            .is_ok()
    }
}

fn split_point(point: &[u8]) -> Result<(&[u8], &[u8]), KeyError> {
    match point {
        [4, rest @ ..] if rest.len() == 64 => Ok(rest.split_at(32)),
        _ => Err(KeyError::InvalidPublicKey(
            "not an uncompressed P-256 point",
        )),
    }
}

/// RFC 7638 thumbprint of an EC P-256 JWK.
fn thumbprint(x: &str, y: &str) -> String {
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
    B64.encode(d.as_ref())
}

/// The public keys trusted to have signed ledger records, by key id (for key rotation).
#[derive(Clone, Debug, Default)]
pub struct PublicKeySet {
    keys: BTreeMap<String, VerifyingKey>,
}

/// A JWK Set document.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Jwks {
    /// The keys.
    pub keys: Vec<Jwk>,
}

impl PublicKeySet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a key.
    pub fn insert(&mut self, key: VerifyingKey) {
        self.keys.insert(key.kid.clone(), key);
    }

    /// Builder-style [`PublicKeySet::insert`].
    pub fn with(mut self, key: VerifyingKey) -> Self {
        self.insert(key);
        self
    }

    /// Look a key up by id.
    pub fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.get(kid)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// From a JWK Set.
    pub fn from_jwks(jwks: &Jwks) -> Result<Self, KeyError> {
        let mut set = Self::new();
        for jwk in &jwks.keys {
            set.insert(VerifyingKey::from_jwk(jwk)?);
        }
        Ok(set)
    }

    /// As a JWK Set.
    pub fn to_jwks(&self) -> Jwks {
        Jwks {
            keys: self.keys.values().map(VerifyingKey::to_jwk).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_exports() {
        let k = LedgerKey::generate().unwrap();
        let sig = k.sign(b"hello").unwrap();
        assert!(k.verifying_key().verify(b"hello", &sig));
        assert!(!k.verifying_key().verify(b"hellO", &sig));
        let jwk = k.public_jwk();
        assert_eq!(jwk.kid.as_deref(), Some(k.kid()));
        let from_jwk = VerifyingKey::from_jwk(&jwk).unwrap();
        assert!(from_jwk.verify(b"hello", &sig));
        let from_spki = VerifyingKey::from_spki_pem(&k.public_spki_pem().unwrap()).unwrap();
        assert_eq!(from_spki.kid(), k.kid());
        let mut bad = jwk.clone();
        bad.kid = Some("other".into());
        assert!(VerifyingKey::from_jwk(&bad).is_err());
        assert!(!format!("{k:?}").contains("BEGIN"));
        let set = PublicKeySet::from_jwks(&PublicKeySet::new().with(k.verifying_key()).to_jwks())
            .unwrap();
        assert!(set.get(k.kid()).is_some());
    }

    #[test]
    fn rfc7638_thumbprint_vector() {
        // RFC 7638 §3.1 uses RSA; use the P-256 example from RFC 7517 A.1 instead and compare
        // with an independently computed value (SHA-256 of the canonical member string).
        let x = "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4";
        let y = "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM";
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let want = B64.encode(
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()).as_ref(),
        );
        assert_eq!(thumbprint(x, y), want);
        assert_eq!(want, "cn-I_WNMClehiVp51i_0VpOENW1upEerA8sEam5hn-s");
    }

    #[test]
    fn save_and_load_0600() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ledger.pem");
        let k = LedgerKey::generate().unwrap();
        k.save(&p).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let k2 = LedgerKey::load(&p).unwrap();
        assert_eq!(k.kid(), k2.kid());
        assert!(
            LedgerKey::from_pkcs8_pem(
                "-----BEGIN PUBLIC KEY-----\nAA==\n-----END PUBLIC KEY-----\n"
            )
            .is_err()
        );
    }
}
