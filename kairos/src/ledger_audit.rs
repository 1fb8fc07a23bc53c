//! The audit port backed by the signed, hash-chained ledger.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use kairos_authz::{AuditError, AuditEvent, AuditLog, AuditMeta};
use kairos_ledger::{CommitMode, Ledger, LedgerKey, RecordBody, RecordMeta, SqliteStore, Store};

/// Records every event in the ledger before the handler may answer.
#[derive(Debug, Clone)]
pub struct LedgerAudit {
    ledger: Arc<Ledger>,
}

impl LedgerAudit {
    /// Wraps a ledger.
    pub fn new(ledger: Arc<Ledger>) -> Self {
        Self { ledger }
    }
    /// The ledger.
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }
}

/// Maps an authz event to a ledger record body.
pub fn record_body(event: AuditEvent) -> Option<RecordBody> {
    Some(match event {
        AuditEvent::CertificateIssued {
            serial_hex,
            x5t_s256,
            spiffe_id,
            client_id: _,
            transaction_id,
            session_id,
            context,
            not_before,
            not_after,
            key_generated,
            requester_x5t_s256,
        } => RecordBody::CertificateIssued {
            serial_hex,
            x5t_s256,
            spiffe_id,
            transaction_id,
            session_id,
            context,
            not_before: not_before.unix_timestamp(),
            not_after: not_after.unix_timestamp(),
            key_generated,
            requester_x5t_s256: Some(requester_x5t_s256),
        },
        AuditEvent::TokenIssued {
            jti,
            client_id,
            scope,
            cnf_x5t_s256,
            txn,
            exp,
            grant_type,
        } => RecordBody::TokenIssued {
            jti,
            client_id,
            scope,
            cnf_x5t_s256,
            txn,
            exp: exp.unix_timestamp(),
            grant_type,
        },
        AuditEvent::TokenRevoked {
            jti,
            client_id,
            reason,
        } => RecordBody::TokenRevoked {
            jti,
            client_id,
            reason,
        },
        AuditEvent::ClientAuthFailed {
            client_id,
            reason_code,
            presented_x5t_s256,
        } => RecordBody::ClientAuthFailed {
            client_id,
            reason_code: reason_code.to_owned(),
            presented_x5t_s256,
        },
        _ => return None,
    })
}

#[async_trait]
impl AuditLog for LedgerAudit {
    async fn record(&self, event: AuditEvent, meta: AuditMeta) -> Result<(), AuditError> {
        let client_id = match &event {
            AuditEvent::CertificateIssued { client_id, .. } => Some(client_id.clone()),
            _ => None,
        };
        let body = record_body(event)
            .ok_or_else(|| AuditError::Unavailable("event kind has no ledger record".into()))?;
        let ms = i64::try_from(meta.time.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
        let mut m = RecordMeta::at(ms);
        if let Some(rid) = meta.request_id {
            m = m.request_id(rid);
        }
        if let Some(c) = client_id {
            m = m.client_id(c);
        }
        match self.ledger.append(body, m).await {
            Ok(r) if r.duplicate => Err(AuditError::Duplicate),
            Ok(_) => Ok(()),
            Err(e) => Err(AuditError::Unavailable(e.to_string())),
        }
    }

    async fn is_revoked(&self, jti: &str) -> Result<bool, AuditError> {
        // A revocation's idempotency key is derived from the jti alone, so this is one read
        // by key: strongly consistent on DynamoDB (a GetItem on the table, not a query on an
        // eventually consistent index), a primary-index lookup in SQLite.
        let found = self
            .ledger
            .store()
            .find_by_idempotency_key(&kairos_ledger::revocation_key(jti))
            .await
            .map_err(|e| AuditError::Unavailable(e.to_string()))?;
        Ok(found.is_some_and(
            |r| matches!(&r.content.body, RecordBody::TokenRevoked { jti: j, .. } if j == jti),
        ))
    }
}

/// Opens the embedded ledger of a data directory (`ledger.sqlite`, key `ledger.key`),
/// creating both when absent; appends commit inline ([`CommitMode::Inline`]).
pub fn open_embedded(data_dir: &Path, shards: u32) -> anyhow::Result<Arc<Ledger>> {
    open_embedded_with(data_dir, shards, CommitMode::Inline)
}

/// [`open_embedded`] committing as `commit` says.
pub fn open_embedded_with(
    data_dir: &Path,
    shards: u32,
    commit: CommitMode,
) -> anyhow::Result<Arc<Ledger>> {
    std::fs::create_dir_all(data_dir)?;
    let key = load_or_create_key(data_dir)?;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_with(
        &data_dir.join("ledger.sqlite"),
        commit,
        kairos_ledger::MAX_COMMIT_DELAY,
    )?);
    Ok(Arc::new(Ledger::new(store, key, shards)))
}

/// Loads `ledger.key` from a data directory, creating it (0600) when absent.
pub fn load_or_create_key(data_dir: &Path) -> anyhow::Result<LedgerKey> {
    let path = data_dir.join("ledger.key");
    if path.exists() {
        Ok(LedgerKey::load(&path)?)
    } else {
        let k = LedgerKey::generate()?;
        k.save(&path)?;
        Ok(k)
    }
}
