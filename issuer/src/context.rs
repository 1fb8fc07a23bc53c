//! The transaction-context extension carried by per-transaction client certificates.
//!
//! OID: [`TRANSACTION_CONTEXT_OID`] = `1.3.6.1.4.1.32473.1.1`, under the enterprise number that
//! RFC 5612 reserves for documentation (Kairos has no IANA PEN yet; rcgen encodes OID arcs as
//! `u64`, which rules out a `2.25.<uuid>` arc). A deployment that registers its own PEN changes
//! this one constant. The extension is always **non-critical** (RFC 5280 §4.2: verifiers reject
//! unknown critical extensions). Its value is DER of:
//!
//! ```asn1
//! KairosTransactionContext ::= SEQUENCE {
//!     version        INTEGER { v1(1) },
//!     transactionId  UTF8String (SIZE(1..64)) ,            -- [A-Za-z0-9._:-]
//!     sessionId      [0] IMPLICIT UTF8String (SIZE(1..128)) OPTIONAL,
//!     entries        SEQUENCE SIZE(0..16) OF ContextEntry  -- sorted by key, keys unique
//! }
//! ContextEntry ::= SEQUENCE {
//!     key    UTF8String (SIZE(1..32)),                      -- [a-z0-9_-]
//!     value  UTF8String (SIZE(0..256))                      -- no control characters
//! }
//! ```

use std::collections::BTreeMap;

use yasna::Tag;

use crate::error::ContextError;

/// The extension's OID as arcs.
pub const TRANSACTION_CONTEXT_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 32473, 1, 1];
/// The extension's OID as a dotted string.
pub const TRANSACTION_CONTEXT_OID_STR: &str = "1.3.6.1.4.1.32473.1.1";
/// Most context entries accepted.
pub const MAX_CONTEXT_ENTRIES: usize = 16;
/// Longest context key.
pub const MAX_CONTEXT_KEY: usize = 32;
/// Longest context value, in characters.
pub const MAX_CONTEXT_VALUE: usize = 256;
/// Longest transaction id: it is the subject CN, whose upper bound is 64 (RFC 5280 Appendix A).
pub const MAX_ID_LEN: usize = 64;
/// Longest session id.
pub const MAX_SESSION_ID_LEN: usize = 128;

/// The context of one transaction: validated on construction, so it can only exist valid.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TransactionContext {
    transaction_id: String,
    session_id: Option<String>,
    entries: BTreeMap<String, String>,
}

fn valid_id(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

fn valid_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_CONTEXT_KEY
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'))
}

fn valid_value(s: &str) -> bool {
    s.chars().count() <= MAX_CONTEXT_VALUE && !s.chars().any(char::is_control)
}

impl TransactionContext {
    /// Validates and builds a context.
    pub fn new(
        transaction_id: impl Into<String>,
        session_id: Option<String>,
        entries: BTreeMap<String, String>,
    ) -> Result<Self, ContextError> {
        let transaction_id = transaction_id.into();
        if !valid_id(&transaction_id, MAX_ID_LEN) {
            return Err(ContextError::BadTransactionId);
        }
        if let Some(s) = &session_id
            && !valid_id(s, MAX_SESSION_ID_LEN)
        {
            return Err(ContextError::BadSessionId);
        }
        if entries.len() > MAX_CONTEXT_ENTRIES {
            return Err(ContextError::TooManyEntries {
                max: MAX_CONTEXT_ENTRIES,
            });
        }
        for (k, v) in &entries {
            if !valid_key(k) {
                return Err(ContextError::BadKey);
            }
            if !valid_value(v) {
                return Err(ContextError::BadValue);
            }
        }
        Ok(Self {
            transaction_id,
            session_id,
            entries,
        })
    }

    /// The transaction id (also the certificate's CN).
    pub fn transaction_id(&self) -> &str {
        &self.transaction_id
    }

    /// The session id, if any.
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    /// The context entries (device, user agent, geo, …), sorted by key.
    pub fn entries(&self) -> &BTreeMap<String, String> {
        &self.entries
    }

    /// The extension value (DER).
    pub fn to_der(&self) -> Vec<u8> {
        yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_u8(1);
                w.next().write_utf8_string(&self.transaction_id);
                if let Some(s) = &self.session_id {
                    w.next()
                        .write_tagged_implicit(Tag::context(0), |w| w.write_utf8_string(s));
                }
                w.next().write_sequence(|w| {
                    for (k, v) in &self.entries {
                        w.next().write_sequence(|w| {
                            w.next().write_utf8_string(k);
                            w.next().write_utf8_string(v);
                        });
                    }
                });
            })
        })
    }

    /// Reads the extension value; anything but the exact DER above is refused.
    pub fn from_der(der: &[u8]) -> Result<Self, ContextError> {
        type Raw = (u8, String, Option<String>, Vec<(String, String)>);
        let raw: Raw = yasna::parse_der(der, |r| {
            r.read_sequence(|r| {
                let version = r.next().read_u8()?;
                let txn = r.next().read_utf8string()?;
                let session = r.read_optional(|r| {
                    r.read_tagged_implicit(Tag::context(0), |r| r.read_utf8string())
                })?;
                let mut entries = Vec::new();
                r.next().read_sequence_of(|r| {
                    if entries.len() >= MAX_CONTEXT_ENTRIES {
                        return Err(yasna::ASN1Error::new(yasna::ASN1ErrorKind::Invalid));
                    }
                    let e = r.read_sequence(|r| {
                        let k = r.next().read_utf8string()?;
                        let v = r.next().read_utf8string()?;
                        Ok((k, v))
                    })?;
                    entries.push(e);
                    Ok(())
                })?;
                Ok((version, txn, session, entries))
            })
        })
        .map_err(|_| ContextError::Malformed)?;
        let (version, txn, session, list) = raw;
        if version != 1 {
            return Err(ContextError::Malformed);
        }
        // Keys must be strictly increasing: one canonical encoding per context.
        if list.windows(2).any(|w| match w {
            [a, b] => a.0 >= b.0,
            _ => false,
        }) {
            return Err(ContextError::Malformed);
        }
        Self::new(txn, session, list.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> TransactionContext {
        TransactionContext::new(
            "txn-42",
            Some("sess-1".into()),
            BTreeMap::from([
                ("device".into(), "iPhone 15".into()),
                ("geo".into(), "51.5,-0.12".into()),
            ]),
        )
        .unwrap()
    }

    #[test]
    fn round_trips() {
        let c = ctx();
        assert_eq!(TransactionContext::from_der(&c.to_der()).unwrap(), c);
        let bare = TransactionContext::new("t", None, BTreeMap::new()).unwrap();
        assert_eq!(TransactionContext::from_der(&bare.to_der()).unwrap(), bare);
    }

    #[test]
    fn bounds_are_enforced() {
        assert_eq!(
            TransactionContext::new("", None, BTreeMap::new()),
            Err(ContextError::BadTransactionId)
        );
        assert_eq!(
            TransactionContext::new("a b", None, BTreeMap::new()),
            Err(ContextError::BadTransactionId)
        );
        let many: BTreeMap<_, _> = (0..17).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        assert!(matches!(
            TransactionContext::new("t", None, many),
            Err(ContextError::TooManyEntries { .. })
        ));
        let long = BTreeMap::from([("k".to_owned(), "x".repeat(257))]);
        assert_eq!(
            TransactionContext::new("t", None, long),
            Err(ContextError::BadValue)
        );
        let ctl = BTreeMap::from([("k".to_owned(), "a\nb".to_owned())]);
        assert_eq!(
            TransactionContext::new("t", None, ctl),
            Err(ContextError::BadValue)
        );
        let key = BTreeMap::from([("Device".to_owned(), "x".to_owned())]);
        assert_eq!(
            TransactionContext::new("t", None, key),
            Err(ContextError::BadKey)
        );
    }

    #[test]
    fn rejects_malformed_der() {
        let der = ctx().to_der();
        for n in 0..der.len() {
            assert!(TransactionContext::from_der(&der[..n]).is_err());
        }
        let mut trailing = der.clone();
        trailing.push(0);
        assert!(TransactionContext::from_der(&trailing).is_err());
        assert!(TransactionContext::from_der(b"garbage").is_err());
    }
}
