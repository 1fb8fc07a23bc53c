//! SPIFFE IDs (SPIFFE-ID.md §2): parsed, never merely validated.

use std::fmt;

use crate::error::SpiffeError;

/// Longest SPIFFE ID accepted, in bytes (SPIFFE-ID.md §2.3: implementations must support 2048).
pub const MAX_SPIFFE_ID_LEN: usize = 2048;
/// Longest trust domain accepted, in bytes (SPIFFE-ID.md §2.1).
pub const MAX_TRUST_DOMAIN_LEN: usize = 255;

/// A syntactically valid SPIFFE ID such as `spiffe://kairos.local/payments-app`.
///
/// The trust domain is lowercase (upper case is refused rather than folded, so that one workload
/// never has two spellings); the path is case-sensitive, has at least one segment for workload
/// identities, and contains only `[A-Za-z0-9._-]` segments that are neither empty, `.` nor `..`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    id: String,
    td_end: usize,
}

impl SpiffeId {
    /// Parses a SPIFFE ID that names a workload (a non-empty path is required).
    pub fn parse(input: &str) -> Result<Self, SpiffeError> {
        let id = Self::parse_any(input)?;
        if id.path().is_empty() {
            return Err(SpiffeError::MissingPath);
        }
        Ok(id)
    }

    /// Parses a SPIFFE ID that may be a bare trust domain (`spiffe://td`).
    pub fn parse_any(input: &str) -> Result<Self, SpiffeError> {
        if input.len() > MAX_SPIFFE_ID_LEN {
            return Err(SpiffeError::TooLong);
        }
        let rest = input
            .strip_prefix("spiffe://")
            .ok_or(SpiffeError::WrongScheme)?;
        let (td, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        validate_trust_domain(td)?;
        if !path.is_empty() {
            if path.ends_with('/') {
                return Err(SpiffeError::BadPath);
            }
            for seg in path.split('/').skip(1) {
                if seg.is_empty() || seg == "." || seg == ".." {
                    return Err(SpiffeError::BadPath);
                }
                if !seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
                {
                    return Err(SpiffeError::BadPath);
                }
            }
        }
        Ok(SpiffeId {
            id: input.to_owned(),
            td_end: "spiffe://".len() + td.len(),
        })
    }

    /// Builds the ID of a workload `path` (e.g. `/payments-app`) in `trust_domain`.
    pub fn from_parts(trust_domain: &str, path: &str) -> Result<Self, SpiffeError> {
        Self::parse(&format!("spiffe://{trust_domain}{path}"))
    }

    /// The trust domain, e.g. `kairos.local`.
    pub fn trust_domain(&self) -> &str {
        self.id.get("spiffe://".len()..self.td_end).unwrap_or("")
    }

    /// The path, e.g. `/payments-app` (empty for a bare trust domain).
    pub fn path(&self) -> &str {
        self.id.get(self.td_end..).unwrap_or("")
    }

    /// The whole ID as a string.
    pub fn as_str(&self) -> &str {
        &self.id
    }
}

fn validate_trust_domain(td: &str) -> Result<(), SpiffeError> {
    if td.is_empty() {
        return Err(SpiffeError::EmptyTrustDomain);
    }
    if td.len() > MAX_TRUST_DOMAIN_LEN {
        return Err(SpiffeError::TooLong);
    }
    // No userinfo, port, query, fragment, percent-encoding or upper case: the charset excludes them.
    if !td
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(SpiffeError::BadTrustDomain);
    }
    Ok(())
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

impl fmt::Debug for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpiffeId({})", self.id)
    }
}

impl std::str::FromStr for SpiffeId {
    type Err = SpiffeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_ids() {
        let id = SpiffeId::parse("spiffe://kairos.local/payments-app/v1").unwrap();
        assert_eq!(id.trust_domain(), "kairos.local");
        assert_eq!(id.path(), "/payments-app/v1");
        assert_eq!(id.to_string(), "spiffe://kairos.local/payments-app/v1");
        let long = format!("spiffe://td/{}", "a".repeat(MAX_SPIFFE_ID_LEN - 12));
        assert_eq!(long.len(), MAX_SPIFFE_ID_LEN);
        SpiffeId::parse(&long).unwrap();
        assert!(
            SpiffeId::parse_any("spiffe://td")
                .unwrap()
                .path()
                .is_empty()
        );
    }

    #[test]
    fn refuses_invalid_ids() {
        for bad in [
            "spiffe://td.example:8443/x",
            "spiffe://td/x?q",
            "spiffe://td/x#f",
            "spiffe://user@td/x",
            "spiffe://TD.Example/x",
            "spiffe://td/a//b",
            "spiffe://td/a/../b",
            "spiffe://td/a/./b",
            "spiffe://td/a/",
            "spiffe://td/a%20b",
            "spiffe:///x",
            "https://td/x",
            "spiffe://td",
            "",
        ] {
            assert!(SpiffeId::parse(bad).is_err(), "{bad} must be refused");
        }
        let too_long = format!("spiffe://td/{}", "a".repeat(MAX_SPIFFE_ID_LEN));
        assert_eq!(SpiffeId::parse(&too_long), Err(SpiffeError::TooLong));
    }

    #[test]
    fn path_is_case_sensitive() {
        assert_ne!(
            SpiffeId::parse("spiffe://td/Pay").unwrap(),
            SpiffeId::parse("spiffe://td/pay").unwrap()
        );
    }
}
