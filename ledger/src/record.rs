//! Record types and the canonical, versioned byte encoding that is hashed and signed.

use std::collections::BTreeMap;

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};

/// Version of a record that carries its own signature (what the DynamoDB store holds).
pub const RECORD_VERSION: u32 = 1;

/// Version of a record without a signature of its own, authenticated instead by the seal of
/// the commit that wrote it (see [`Seal`](crate::Seal); what the embedded store holds). Same
/// canonical encoding and prefix as version 1: `v` is part of the hashed bytes, so a record
/// cannot be moved from one version to the other without changing its hash.
pub const SEALED_RECORD_VERSION: u32 = 2;

/// Domain-separation prefix of the canonical bytes of a version-1 record.
pub const RECORD_PREFIX: &[u8] = b"KAIROS-LEDGER-RECORD/1\n";

/// The `prev` of the first record of every chain: 32 zero bytes, hex-encoded.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Name of the chain holding records that carry neither a transaction id nor a client id.
pub const SYSTEM_CHAIN: &str = "system";

/// Upper bound on the canonical size of one record, in bytes.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// What happened: the typed payload of a ledger record.
///
/// Serialised with an internal `kind` tag (snake_case variant name) followed by the variant's
/// fields in declaration order. Times inside bodies are Unix **seconds** (as in X.509 and JWT);
/// the record envelope's `time` is Unix milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum RecordBody {
    /// A client certificate was issued.
    CertificateIssued {
        /// Certificate serial number, lowercase hex without separators.
        serial_hex: String,
        /// `x5t#S256` of the issued certificate (base64url SHA-256 of its DER).
        x5t_s256: String,
        /// SPIFFE ID in the certificate's URI SAN.
        spiffe_id: String,
        /// Transaction the certificate is bound to.
        transaction_id: String,
        /// Session id, when the issuance belongs to a session.
        session_id: Option<String>,
        /// Transaction context copied into the certificate (sorted by key).
        context: BTreeMap<String, String>,
        /// Start of validity, Unix seconds.
        not_before: i64,
        /// End of validity, Unix seconds.
        not_after: i64,
        /// Whether the service generated the key pair (instead of signing a CSR).
        key_generated: bool,
        /// `x5t#S256` of the certificate the requester authenticated with, if any.
        requester_x5t_s256: Option<String>,
    },
    /// An access token was issued.
    TokenIssued {
        /// Token id.
        jti: String,
        /// OAuth client id.
        client_id: String,
        /// Granted scope (space-separated).
        scope: String,
        /// `cnf.x5t#S256`: the certificate the token is bound to.
        cnf_x5t_s256: String,
        /// Transaction id (`txn` claim), if any.
        txn: Option<String>,
        /// Expiry, Unix seconds.
        exp: i64,
        /// Grant type used (`client_credentials`, `authorization_code`, …).
        grant_type: String,
    },
    /// An access token was issued by refreshing an earlier grant.
    TokenRefreshed {
        /// Id of the new token.
        jti: String,
        /// Id of the token (or refresh token) it replaces, if known.
        previous_jti: Option<String>,
        /// OAuth client id.
        client_id: String,
        /// Granted scope (space-separated).
        scope: String,
        /// `cnf.x5t#S256`: the certificate the token is bound to.
        cnf_x5t_s256: String,
        /// Transaction id (`txn` claim), if any.
        txn: Option<String>,
        /// Expiry, Unix seconds.
        exp: i64,
    },
    /// A token was revoked.
    TokenRevoked {
        /// Id of the revoked token.
        jti: String,
        /// OAuth client id.
        client_id: String,
        /// Why it was revoked.
        reason: String,
    },
    /// Client authentication failed.
    ClientAuthFailed {
        /// Claimed client id, when one was presented.
        client_id: Option<String>,
        /// Machine-readable reason code.
        reason_code: String,
        /// `x5t#S256` of the presented certificate, if any.
        presented_x5t_s256: Option<String>,
    },
    /// An auditor read the ledger.
    AuditorAccess {
        /// Who (auditor identity).
        actor: String,
        /// What (`show`, `query`, `verify`, `export`, …).
        action: String,
        /// The query, as text.
        query: String,
    },
}

impl RecordBody {
    /// The `kind` tag of this body, as written in the canonical encoding.
    pub fn kind(&self) -> &'static str {
        match self {
            RecordBody::CertificateIssued { .. } => "certificate_issued",
            RecordBody::TokenIssued { .. } => "token_issued",
            RecordBody::TokenRefreshed { .. } => "token_refreshed",
            RecordBody::TokenRevoked { .. } => "token_revoked",
            RecordBody::ClientAuthFailed { .. } => "client_auth_failed",
            RecordBody::AuditorAccess { .. } => "auditor_access",
        }
    }

    /// The transaction id carried by the body, if any.
    pub fn transaction_id(&self) -> Option<&str> {
        match self {
            RecordBody::CertificateIssued { transaction_id, .. } => Some(transaction_id),
            RecordBody::TokenIssued { txn, .. } | RecordBody::TokenRefreshed { txn, .. } => {
                txn.as_deref()
            }
            _ => None,
        }
    }

    /// The client id carried by the body, if any.
    pub fn client_id(&self) -> Option<&str> {
        match self {
            RecordBody::TokenIssued { client_id, .. }
            | RecordBody::TokenRefreshed { client_id, .. }
            | RecordBody::TokenRevoked { client_id, .. } => Some(client_id),
            RecordBody::ClientAuthFailed { client_id, .. } => client_id.as_deref(),
            _ => None,
        }
    }

    /// Certificate serial (normalised), for the serial index.
    pub fn serial(&self) -> Option<String> {
        match self {
            RecordBody::CertificateIssued { serial_hex, .. } => Some(normalize_serial(serial_hex)),
            _ => None,
        }
    }

    /// The certificate thumbprint this record is about, for the thumbprint index: the issued
    /// certificate, the certificate a token is bound to, or the certificate presented.
    pub fn x5t_s256(&self) -> Option<&str> {
        match self {
            RecordBody::CertificateIssued { x5t_s256, .. } => Some(x5t_s256),
            RecordBody::TokenIssued { cnf_x5t_s256, .. }
            | RecordBody::TokenRefreshed { cnf_x5t_s256, .. } => Some(cnf_x5t_s256),
            RecordBody::ClientAuthFailed {
                presented_x5t_s256, ..
            } => presented_x5t_s256.as_deref(),
            _ => None,
        }
    }

    /// Token id, for the jti index.
    pub fn jti(&self) -> Option<&str> {
        match self {
            RecordBody::TokenIssued { jti, .. }
            | RecordBody::TokenRefreshed { jti, .. }
            | RecordBody::TokenRevoked { jti, .. } => Some(jti),
            _ => None,
        }
    }
}

/// Normalise a certificate serial for indexing and queries: lowercase hex, `:` removed.
pub fn normalize_serial(serial: &str) -> String {
    serial
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The signed part of a record. Field order here **is** the canonical field order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordContent {
    /// Format version: [`RECORD_VERSION`] (signed on its own) or [`SEALED_RECORD_VERSION`].
    pub v: u32,
    /// Chain (shard) name.
    pub chain: String,
    /// Position in the chain, from 1.
    pub seq: u64,
    /// Unique record id (32 lowercase hex characters, random).
    pub id: String,
    /// When the record was made, Unix milliseconds.
    pub time: i64,
    /// Key id (RFC 7638 thumbprint) of the ledger key that signed it (version 1) or is
    /// expected to seal it (version 2; the seal names its own key).
    pub kid: String,
    /// Request id of the HTTP request that caused it, if any.
    pub request_id: Option<String>,
    /// Transaction id, if any (the shard key).
    pub transaction_id: Option<String>,
    /// Client id, if any.
    pub client_id: Option<String>,
    /// SHA-256 (hex) of the canonical bytes of the previous record in the chain;
    /// [`GENESIS_PREV`] for seq 1.
    pub prev: String,
    /// The payload.
    pub body: RecordBody,
}

impl RecordContent {
    /// The canonical bytes: [`RECORD_PREFIX`] followed by the compact JSON of this struct.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        prefixed_json(RECORD_PREFIX, self, 512)
    }

    /// The compact JSON of this struct (the canonical bytes without the prefix), as stored.
    pub fn canonical_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }
}

/// A signed, hash-chained ledger record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// The signed content.
    pub content: RecordContent,
    /// SHA-256 (lowercase hex) of the canonical bytes.
    pub hash: String,
    /// ECDSA P-256 / SHA-256 signature of the canonical bytes: `r || s` (64 bytes), base64url
    /// without padding (as in JWS ES256). Empty for a [`SEALED_RECORD_VERSION`] record.
    pub signature: String,
}

impl Record {
    /// The idempotency key of this record (see [`record_idempotency_key`]).
    pub fn idempotency_key(&self) -> Option<String> {
        let c = &self.content;
        record_idempotency_key(
            &c.body,
            c.transaction_id.as_deref(),
            c.request_id.as_deref(),
        )
    }

    /// Sort/pagination key for query results: `time` then chain then seq.
    pub fn query_order_key(&self) -> (i64, &str, u64) {
        (self.content.time, &self.content.chain, self.content.seq)
    }
}

/// The idempotency key of a record with this body, transaction id and request id. A
/// `token_revoked` record's is the token's [`revocation_key`], whatever the request: a token is
/// revoked once, and the store's uniqueness on that key is what lets every instance ask, with
/// a strongly consistent read, whether a token is revoked. Any other record has one only when
/// it carries a request id ([`idempotency_key`]).
pub fn record_idempotency_key(
    body: &RecordBody,
    transaction_id: Option<&str>,
    request_id: Option<&str>,
) -> Option<String> {
    if let RecordBody::TokenRevoked { jti, .. } = body {
        return Some(revocation_key(jti));
    }
    request_id.map(|rid| idempotency_key(body.kind(), transaction_id, rid))
}

/// Idempotency key of the revocation of token `jti`: hex SHA-256 of the JSON array
/// `["token_revoked", jti]`. Two elements, so it never equals a request-id key (three).
pub fn revocation_key(jti: &str) -> String {
    let arr = ("token_revoked", jti);
    let bytes = serde_json::to_vec(&arr).unwrap_or_else(|_| format!("{arr:?}").into_bytes());
    sha256_hex(&bytes)
}

/// Idempotency key: hex SHA-256 of the JSON array `[kind, transaction_id|null, request_id]`.
pub fn idempotency_key(kind: &str, transaction_id: Option<&str>, request_id: &str) -> String {
    let arr = (kind, transaction_id, request_id);
    // Serialising a tuple of strings cannot fail; fall back to a debug rendering regardless.
    let bytes = serde_json::to_vec(&arr).unwrap_or_else(|_| format!("{arr:?}").into_bytes());
    sha256_hex(&bytes)
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, bytes).as_ref())
}

/// `prefix` followed by the compact JSON of `value`: the canonical bytes of a record,
/// checkpoint or seal (whose field order is their canonical member order).
pub(crate) fn prefixed_json<T: Serialize>(
    prefix: &[u8],
    value: &T,
    capacity: usize,
) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(capacity);
    out.extend_from_slice(prefix);
    serde_json::to_writer(&mut out, value)?;
    Ok(out)
}

/// Lowercase hex SHA-256 of the concatenation of `parts`.
pub(crate) fn sha256_hex_parts(parts: &[&[u8]]) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    hex::encode(ctx.finish().as_ref())
}

/// Chain for a record: `shard-NNNN` chosen by the transaction id (or, without one, the client
/// id); [`SYSTEM_CHAIN`] when there is neither.
///
/// `shard = u64_be(SHA-256(key)[0..8]) mod shards`.
pub fn chain_for(transaction_id: Option<&str>, client_id: Option<&str>, shards: u32) -> String {
    let Some(key) = transaction_id.or(client_id) else {
        return SYSTEM_CHAIN.to_owned();
    };
    let d = digest::digest(&digest::SHA256, key.as_bytes());
    let mut first = [0u8; 8];
    for (dst, src) in first.iter_mut().zip(d.as_ref()) {
        *dst = *src;
    }
    let shard = u64::from_be_bytes(first) % u64::from(shards.max(1));
    format!("shard-{shard:04}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content() -> RecordContent {
        RecordContent {
            v: 1,
            chain: "shard-0001".into(),
            seq: 1,
            id: "00".repeat(16),
            time: 1_700_000_000_000,
            kid: "k".into(),
            request_id: Some("r1".into()),
            transaction_id: Some("t1".into()),
            client_id: None,
            prev: GENESIS_PREV.into(),
            body: RecordBody::TokenRevoked {
                jti: "j".into(),
                client_id: "c".into(),
                reason: "r\"\n".into(),
            },
        }
    }

    #[test]
    fn canonical_bytes_are_exact() {
        let got = String::from_utf8(content().canonical_bytes().unwrap()).unwrap();
        let want = concat!(
            "KAIROS-LEDGER-RECORD/1\n",
            r#"{"v":1,"chain":"shard-0001","seq":1,"id":"00000000000000000000000000000000","#,
            r#""time":1700000000000,"kid":"k","request_id":"r1","transaction_id":"t1","#,
            r#""client_id":null,"prev":"0000000000000000000000000000000000000000000000000000000000000000","#,
            r#""body":{"kind":"token_revoked","jti":"j","client_id":"c","reason":"r\"\n"}}"#
        );
        assert_eq!(got, want);
    }

    #[test]
    fn string_escaping_is_as_documented() {
        let mut c = content();
        c.request_id = Some("\u{1}\u{8}\t\n\u{c}\r\u{1f}/\u{7f}é\"\\".into());
        let json = c.canonical_json().unwrap();
        assert!(
            json.contains("\"request_id\":\"\\u0001\\b\\t\\n\\f\\r\\u001f/\u{7f}é\\\"\\\\\""),
            "{json}"
        );
    }

    #[test]
    fn unknown_fields_rejected() {
        let mut v: serde_json::Value =
            serde_json::from_str(&content().canonical_json().unwrap()).unwrap();
        v["extra"] = serde_json::json!(1);
        assert!(serde_json::from_value::<RecordContent>(v.clone()).is_err());
        v.as_object_mut().unwrap().remove("extra");
        v["body"]["extra"] = serde_json::json!(1);
        assert!(serde_json::from_value::<RecordContent>(v).is_err());
    }

    #[test]
    fn context_is_sorted_and_roundtrips() {
        let mut ctx = BTreeMap::new();
        ctx.insert("z".to_owned(), "1".to_owned());
        ctx.insert("a".to_owned(), "2".to_owned());
        let mut c = content();
        c.body = RecordBody::CertificateIssued {
            serial_hex: "0A:bc".into(),
            x5t_s256: "x".into(),
            spiffe_id: "spiffe://a/b".into(),
            transaction_id: "t1".into(),
            session_id: None,
            context: ctx,
            not_before: 1,
            not_after: 2,
            key_generated: false,
            requester_x5t_s256: None,
        };
        let json = c.canonical_json().unwrap();
        assert!(json.contains(r#""context":{"a":"2","z":"1"}"#), "{json}");
        let back: RecordContent = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.body.serial().as_deref(), Some("0abc"));
    }

    #[test]
    fn sharding_is_stable() {
        assert_eq!(chain_for(None, None, 16), SYSTEM_CHAIN);
        let a = chain_for(Some("txn-1"), Some("c"), 16);
        assert_eq!(a, chain_for(Some("txn-1"), None, 16));
        assert!(a.starts_with("shard-"));
        assert_eq!(chain_for(Some("x"), None, 1), "shard-0000");
        // known value: SHA-256("abc") starts with ba7816bf8f01cfea
        assert_eq!(
            chain_for(Some("abc"), None, 1000),
            format!("shard-{:04}", 0xba7816bf8f01cfeau64 % 1000)
        );
    }

    #[test]
    fn a_revocation_is_keyed_by_its_token_not_its_request() {
        let body = |reason: &str| RecordBody::TokenRevoked {
            jti: "j".into(),
            client_id: "c".into(),
            reason: reason.into(),
        };
        let a = record_idempotency_key(&body("x"), None, Some("r1"));
        let b = record_idempotency_key(&body("y"), Some("t"), None);
        assert_eq!(a, Some(revocation_key("j")));
        assert_eq!(a, b);
        assert_ne!(revocation_key("j"), revocation_key("k"));
        assert_ne!(
            revocation_key("j"),
            idempotency_key("token_revoked", None, "j")
        );
    }

    #[test]
    fn idempotency_key_distinguishes_fields() {
        assert_ne!(
            idempotency_key("a", Some("b"), "c"),
            idempotency_key("a", None, "c")
        );
        assert_ne!(
            idempotency_key("a", Some("b"), "c"),
            idempotency_key("a", Some("b"), "d")
        );
    }
}
