//! The token-signing key: JWS signing and verification with a cached aws-lc-rs key, its JWK
//! (kid = RFC 7638 thumbprint), and PKCS#8 storage.
//!
//! Signing is done here rather than through `jsonwebtoken`, which re-parses the PKCS#8 key (and
//! recomputes the public point) on every call; verification on the resource-server side uses
//! `jsonwebtoken`, an independent JOSE implementation.

use std::fmt;

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    self, ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair,
    Ed25519KeyPair, KeyPair as _, RSA_PSS_2048_8192_SHA256, RSA_PSS_SHA256, RsaKeyPair,
    UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use zeroize::Zeroizing;

/// JWS algorithms Kairos signs tokens with (FAPI 2.0 §5.4: PS256, ES256, EdDSA).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JwsAlgorithm {
    /// ECDSA P-256 SHA-256 (default).
    Es256,
    /// RSASSA-PSS SHA-256 (RSA 2048).
    Ps256,
    /// Ed25519.
    EdDsa,
}

impl JwsAlgorithm {
    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            JwsAlgorithm::Es256 => "ES256",
            JwsAlgorithm::Ps256 => "PS256",
            JwsAlgorithm::EdDsa => "EdDSA",
        }
    }
    /// Parses a JOSE name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ES256" => Some(JwsAlgorithm::Es256),
            "PS256" => Some(JwsAlgorithm::Ps256),
            "EdDSA" => Some(JwsAlgorithm::EdDsa),
            _ => None,
        }
    }
}

enum Inner {
    Es256(EcdsaKeyPair),
    Ps256(RsaKeyPair),
    EdDsa(Ed25519KeyPair),
}

/// A token-signing key.
pub struct TokenKey {
    inner: Inner,
    pkcs8: Zeroizing<Vec<u8>>,
    public_raw: Vec<u8>,
    jwk: Value,
    kid: String,
    rng: SystemRandom,
}

/// The key could not be created or loaded.
#[derive(Debug, thiserror::Error)]
#[error("token key: {0}")]
pub struct KeyError(pub &'static str);

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

fn rsa_components(rsa_public_key_der: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    yasna::parse_der(rsa_public_key_der, |r| {
        r.read_sequence(|r| {
            let (n, _) = r.next().read_bigint_bytes()?;
            let (e, _) = r.next().read_bigint_bytes()?;
            Ok((n, e))
        })
    })
    .ok()
}

impl TokenKey {
    /// Generates a key for `alg`.
    pub fn generate(alg: JwsAlgorithm) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let pkcs8: Vec<u8> = match alg {
            JwsAlgorithm::Es256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| KeyError("P-256 generation failed"))?
                    .as_ref()
                    .to_vec()
            }
            JwsAlgorithm::EdDsa => Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| KeyError("Ed25519 generation failed"))?
                .as_ref()
                .to_vec(),
            JwsAlgorithm::Ps256 => {
                let kp = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .map_err(|_| KeyError("RSA generation failed"))?;
                let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> =
                    kp.as_der().map_err(|_| KeyError("RSA export failed"))?;
                der.as_ref().to_vec()
            }
        };
        Self::from_pkcs8(alg, &Zeroizing::new(pkcs8))
    }

    /// Loads a PKCS#8 DER key for `alg`.
    pub fn from_pkcs8(alg: JwsAlgorithm, der: &[u8]) -> Result<Self, KeyError> {
        let (inner, public_raw, jwk) = match alg {
            JwsAlgorithm::Es256 => {
                let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(|_| KeyError("not a P-256 PKCS#8 key"))?;
                let raw = kp.public_key().as_ref().to_vec();
                let (x, y) = match raw.as_slice() {
                    [4, rest @ ..] if rest.len() == 64 => rest.split_at(32),
                    _ => return Err(KeyError("unexpected P-256 public key encoding")),
                };
                let jwk = json!({"kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y)});
                (Inner::Es256(kp), raw, jwk)
            }
            JwsAlgorithm::EdDsa => {
                let kp = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                    .map_err(|_| KeyError("not an Ed25519 PKCS#8 key"))?;
                let raw = kp.public_key().as_ref().to_vec();
                let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&raw)});
                (Inner::EdDsa(kp), raw, jwk)
            }
            JwsAlgorithm::Ps256 => {
                let kp =
                    RsaKeyPair::from_pkcs8(der).map_err(|_| KeyError("not an RSA PKCS#8 key"))?;
                let raw = kp.public_key().as_ref().to_vec();
                let (n, e) =
                    rsa_components(&raw).ok_or(KeyError("unexpected RSA public key encoding"))?;
                let jwk = json!({"kty": "RSA", "n": b64(&n), "e": b64(&e)});
                (Inner::Ps256(kp), raw, jwk)
            }
        };
        // RFC 7638: SHA-256 over the required members in lexicographic order (serde_json's
        // map is ordered), no whitespace.
        let kid = b64(digest(&SHA256, jwk.to_string().as_bytes()).as_ref());
        let mut jwk = jwk;
        if let Some(o) = jwk.as_object_mut() {
            o.insert("kid".into(), Value::String(kid.clone()));
            o.insert("use".into(), Value::String("sig".into()));
            o.insert("alg".into(), Value::String(alg.as_str().into()));
        }
        Ok(Self {
            inner,
            pkcs8: Zeroizing::new(der.to_vec()),
            public_raw,
            jwk,
            kid,
            rng: SystemRandom::new(),
        })
    }

    /// The algorithm.
    pub fn algorithm(&self) -> JwsAlgorithm {
        match self.inner {
            Inner::Es256(_) => JwsAlgorithm::Es256,
            Inner::Ps256(_) => JwsAlgorithm::Ps256,
            Inner::EdDsa(_) => JwsAlgorithm::EdDsa,
        }
    }
    /// The key id (RFC 7638 thumbprint).
    pub fn kid(&self) -> &str {
        &self.kid
    }
    /// The public JWK (with `kid`, `use`, `alg`).
    pub fn public_jwk(&self) -> &Value {
        &self.jwk
    }
    /// The PKCS#8 DER, for storing (wiped on drop).
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// Signs a JWS signing input.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.inner {
            Inner::Es256(kp) => kp
                .sign(&self.rng, msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError("signing failed")),
            Inner::EdDsa(kp) => Ok(kp.sign(msg).as_ref().to_vec()),
            Inner::Ps256(kp) => {
                let mut sig = vec![0u8; kp.public_modulus_len()];
                kp.sign(&RSA_PSS_SHA256, &self.rng, msg, &mut sig)
                    .map_err(|_| KeyError("signing failed"))?;
                Ok(sig)
            }
        }
    }

    /// Verifies a signature made by this key.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let alg: &dyn signature::VerificationAlgorithm = match self.inner {
            Inner::Es256(_) => &ECDSA_P256_SHA256_FIXED,
            Inner::EdDsa(_) => &ED25519,
            Inner::Ps256(_) => &RSA_PSS_2048_8192_SHA256,
        };
        UnparsedPublicKey::new(alg, &self.public_raw)
            .verify(msg, sig)
            .is_ok()
    }

    /// Signs `claims` as a compact JWS with header `{"alg","typ","kid"}`.
    pub fn sign_jwt(&self, typ: &str, claims: &impl serde::Serialize) -> Result<String, KeyError> {
        let header = json!({"alg": self.algorithm().as_str(), "typ": typ, "kid": self.kid});
        let payload =
            serde_json::to_vec(claims).map_err(|_| KeyError("claims not serialisable"))?;
        let mut out = String::with_capacity(512);
        URL_SAFE_NO_PAD.encode_string(header.to_string().as_bytes(), &mut out);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut out);
        let sig = self.sign(out.as_bytes())?;
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(sig, &mut out);
        Ok(out)
    }

    /// Verifies a compact JWS made by this key and returns its payload bytes and `typ`.
    pub fn verify_jwt(&self, token: &str) -> Option<(Vec<u8>, Option<String>)> {
        if token.len() > 16 * 1024 {
            return None;
        }
        let mut parts = token.split('.');
        let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).ok()?).ok()?;
        if header.get("alg")?.as_str()? != self.algorithm().as_str()
            || header.get("kid")?.as_str()? != self.kid
        {
            return None;
        }
        let sig = URL_SAFE_NO_PAD.decode(s).ok()?;
        let signing_input = token.get(..h.len() + 1 + p.len())?;
        if !self.verify(signing_input.as_bytes(), &sig) {
            return None;
        }
        let typ = header.get("typ").and_then(Value::as_str).map(str::to_owned);
        Some((URL_SAFE_NO_PAD.decode(p).ok()?, typ))
    }
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKey")
            .field("alg", &self.algorithm())
            .field("kid", &self.kid)
            .field("private_key", &"[redacted]")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_signs_and_verifies() {
        for alg in [
            JwsAlgorithm::Es256,
            JwsAlgorithm::EdDsa,
            JwsAlgorithm::Ps256,
        ] {
            let k = TokenKey::generate(alg).unwrap();
            let jwt = k.sign_jwt("at+jwt", &json!({"sub": "x"})).unwrap();
            let (payload, typ) = k.verify_jwt(&jwt).unwrap();
            assert_eq!(typ.as_deref(), Some("at+jwt"));
            assert_eq!(payload, br#"{"sub":"x"}"#);
            let mut bad = jwt.clone();
            bad.push('A');
            assert!(k.verify_jwt(&bad).is_none());
            let other = TokenKey::generate(alg).unwrap();
            assert!(other.verify_jwt(&jwt).is_none());
            assert_eq!(k.kid().len(), 43);
            let reloaded = TokenKey::from_pkcs8(alg, k.pkcs8_der()).unwrap();
            assert_eq!(reloaded.kid(), k.kid());
            assert!(format!("{k:?}").contains("[redacted]"));
        }
    }

    #[test]
    fn rfc7638_example_thumbprint() {
        // RFC 7638 §3.1 example key (RSA): thumbprint NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let jwk = json!({"e": "AQAB", "kty": "RSA", "n": n});
        let kid = b64(digest(&SHA256, jwk.to_string().as_bytes()).as_ref());
        assert_eq!(kid, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }
}
