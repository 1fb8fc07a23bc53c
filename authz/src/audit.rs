//! The audit port: every certificate, token and decision is recorded before it is returned.
//!
//! The binary plugs the signed, hash-chained ledger in here; handlers only see this trait.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use time::OffsetDateTime;

/// Something that happened and must be on the record.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditEvent {
    /// A per-transaction certificate was issued.
    CertificateIssued {
        /// Serial, hex.
        serial_hex: String,
        /// `x5t#S256` of the new certificate.
        x5t_s256: String,
        /// The requesting workload.
        spiffe_id: String,
        /// The client the workload is registered as.
        client_id: String,
        /// Transaction id.
        transaction_id: String,
        /// Session id.
        session_id: Option<String>,
        /// Transaction context.
        context: BTreeMap<String, String>,
        /// Validity start.
        not_before: OffsetDateTime,
        /// Validity end.
        not_after: OffsetDateTime,
        /// Whether Kairos generated the key.
        key_generated: bool,
        /// `x5t#S256` of the requester's SVID.
        requester_x5t_s256: String,
    },
    /// An access token was issued.
    TokenIssued {
        /// Token id.
        jti: String,
        /// Client.
        client_id: String,
        /// Granted scope.
        scope: String,
        /// The certificate the token is bound to.
        cnf_x5t_s256: String,
        /// Transaction id, when bound to a transaction certificate.
        txn: Option<String>,
        /// Expiry.
        exp: OffsetDateTime,
        /// Grant type.
        grant_type: String,
    },
    /// An access token was revoked.
    TokenRevoked {
        /// Token id.
        jti: String,
        /// Client.
        client_id: String,
        /// Why.
        reason: String,
    },
    /// Client authentication failed.
    ClientAuthFailed {
        /// The client id claimed, if any.
        client_id: Option<String>,
        /// A reason code.
        reason_code: &'static str,
        /// `x5t#S256` of the certificate presented, if any.
        presented_x5t_s256: Option<String>,
    },
}

impl AuditEvent {
    /// The transaction id the event belongs to, if any.
    pub fn transaction_id(&self) -> Option<&str> {
        match self {
            AuditEvent::CertificateIssued { transaction_id, .. } => Some(transaction_id),
            AuditEvent::TokenIssued { txn, .. } => txn.as_deref(),
            _ => None,
        }
    }
}

/// Context of a record: when and for which request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditMeta {
    /// The client's `X-Request-Id`, when it sent a well-formed one. With the transaction and
    /// the record kind it is the idempotency key: a retry with the same id is refused rather
    /// than answered with something other than what is on record. Without one nothing is
    /// generated: an id nobody knows correlates nothing, and a random one can never repeat, so
    /// its unique-index entry (a random page write in SQLite, an extra item in every DynamoDB
    /// transaction) would be pure cost.
    pub request_id: Option<String>,
    /// The time of the decision.
    pub time: OffsetDateTime,
}

/// The event could not be recorded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The ledger cannot durably record now: nothing may be issued.
    #[error("audit log unavailable: {0}")]
    Unavailable(String),
    /// A record with this request id (and transaction and kind) already exists: this is a
    /// retry, and what it would issue now would not be the recorded one.
    #[error("request already recorded")]
    Duplicate,
}

/// The audit port.
#[async_trait]
pub trait AuditLog: Send + Sync + std::fmt::Debug {
    /// Records `event`; returns only once it is durably written.
    async fn record(&self, event: AuditEvent, meta: AuditMeta) -> Result<(), AuditError>;

    /// Whether a revocation of token `jti` is on record. Introspection asks the log rather than
    /// process memory, so that a revocation survives a restart and is seen by every instance
    /// (every Lambda, every `kairos serve` behind a load balancer) sharing the ledger. An error
    /// means the answer is unknown: callers fail closed.
    async fn is_revoked(&self, jti: &str) -> Result<bool, AuditError>;
}

/// An in-process log that keeps events in memory, for tests and tools that have no ledger.
#[derive(Debug, Default)]
pub struct MemoryAuditLog {
    events: Mutex<Vec<(AuditEvent, AuditMeta)>>,
    fail: std::sync::atomic::AtomicBool,
}

impl MemoryAuditLog {
    /// The events recorded so far.
    pub fn events(&self) -> Vec<(AuditEvent, AuditMeta)> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }
    /// Makes every later `record` fail (to test fail-closed behaviour).
    pub fn set_failing(&self, fail: bool) {
        self.fail.store(fail, std::sync::atomic::Ordering::SeqCst);
    }

    /// The events, unless configured to fail.
    fn available(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, Vec<(AuditEvent, AuditMeta)>>, AuditError> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(AuditError::Unavailable("configured to fail".into()));
        }
        self.events
            .lock()
            .map_err(|_| AuditError::Unavailable("poisoned".into()))
    }
}

#[async_trait]
impl AuditLog for MemoryAuditLog {
    async fn record(&self, event: AuditEvent, meta: AuditMeta) -> Result<(), AuditError> {
        self.available()?.push((event, meta));
        Ok(())
    }

    async fn is_revoked(&self, jti: &str) -> Result<bool, AuditError> {
        Ok(self
            .available()?
            .iter()
            .any(|(e, _)| matches!(e, AuditEvent::TokenRevoked { jti: j, .. } if j == jti)))
    }
}
