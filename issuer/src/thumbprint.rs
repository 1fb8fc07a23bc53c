//! Certificate and key hashes as distinct types, so that one can never be passed for the other.

use std::fmt;

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// RFC 8705 §3.1 `x5t#S256`: SHA-256 of the **whole certificate DER**, base64url without padding
/// (43 characters). This is what binds an access token to a certificate.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CertThumbprint([u8; 32]);

/// SHA-256 of the certificate's SubjectPublicKeyInfo DER (the key, not the certificate). Two
/// certificates for one key share it; it is never a token binding (RFC 8705 §7.2).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpkiSha256([u8; 32]);

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = digest(&SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl CertThumbprint {
    /// Computes the thumbprint of a DER certificate.
    pub fn of_der(cert_der: &[u8]) -> Self {
        Self(sha256(cert_der))
    }

    /// Parses a base64url `x5t#S256` value (exactly 43 characters, no padding).
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() != 43 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(s).ok()?;
        let arr: [u8; 32] = bytes.try_into().ok()?;
        Some(Self(arr))
    }

    /// The base64url form used in `cnf`.
    pub fn to_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Constant-time comparison, for checks whose timing must not leak.
    pub fn ct_eq(&self, other: &CertThumbprint) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(&self.0, &other.0).is_ok()
    }
}

impl SpkiSha256 {
    /// Computes the hash of a DER SubjectPublicKeyInfo.
    pub fn of_spki_der(spki_der: &[u8]) -> Self {
        Self(sha256(spki_der))
    }

    /// The base64url form.
    pub fn to_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for CertThumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64url())
    }
}

impl fmt::Debug for CertThumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "x5t#S256({})", self.to_base64url())
    }
}

impl fmt::Display for SpkiSha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64url())
    }
}

impl fmt::Debug for SpkiSha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "spki#S256({})", self.to_base64url())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_is_43_base64url_chars_and_round_trips() {
        let t = CertThumbprint::of_der(b"not really a certificate");
        let s = t.to_base64url();
        assert_eq!(s.len(), 43);
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(CertThumbprint::parse(&s), Some(t));
        assert!(t.ct_eq(&CertThumbprint::parse(&s).unwrap()));
        assert_eq!(CertThumbprint::parse(&format!("{s}=")), None);
        assert_eq!(CertThumbprint::parse(&hex::encode(t.as_bytes())), None);
        // SHA-256("abc") test vector
        assert_eq!(
            hex::encode(CertThumbprint::of_der(b"abc").as_bytes()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
