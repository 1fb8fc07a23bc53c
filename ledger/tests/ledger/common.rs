//! Shared test helpers: record bodies, signed records, the tamper port.

use std::collections::BTreeMap;
use std::sync::Arc;

use kairos_ledger::{
    GENESIS_PREV, LedgerKey, Record, RecordBody, RecordContent, Seal, Store, sha256_hex,
};

/// A backend under test, with a way to tamper with its stored data directly.
pub struct Harness {
    pub store: Arc<dyn Store>,
    pub tamper: Box<dyn Tamper>,
    pub _guard: Box<dyn std::any::Any + Send + Sync>,
}

/// Direct edits of stored data, bypassing the ledger (what an attacker with DB access does).
#[async_trait::async_trait]
pub trait Tamper: Send + Sync {
    /// Replace `from` with `to` in the stored content of (chain, seq).
    async fn edit_content(&self, chain: &str, seq: u64, from: &str, to: &str);
    /// Delete the record (chain, seq).
    async fn delete(&self, chain: &str, seq: u64);
    /// Delete every record of a chain, its head and its registry entry (checkpoints stay).
    async fn delete_chain(&self, chain: &str);
    /// Swap the records stored at positions a and b.
    async fn swap(&self, chain: &str, a: u64, b: u64);
    /// Overwrite the stored signature of (chain, seq).
    async fn set_signature(&self, chain: &str, seq: u64, signature: &str);
}

pub const T0: i64 = 1_750_000_000_000;

pub fn cert(txn: &str, serial: &str, x5t: &str) -> RecordBody {
    let mut context = BTreeMap::new();
    context.insert("payment_id".to_owned(), format!("pay-{txn}"));
    context.insert("amount".to_owned(), "12.34 EUR".to_owned());
    RecordBody::CertificateIssued {
        serial_hex: serial.to_owned(),
        x5t_s256: x5t.to_owned(),
        spiffe_id: format!("spiffe://kairos.test/txn/{txn}"),
        transaction_id: txn.to_owned(),
        session_id: Some("sess-1".to_owned()),
        context,
        not_before: 1_750_000_000,
        not_after: 1_750_000_300,
        key_generated: false,
        requester_x5t_s256: Some("requester-x5t".to_owned()),
    }
}

pub fn token(jti: &str, client: &str, x5t: &str, txn: Option<&str>) -> RecordBody {
    RecordBody::TokenIssued {
        jti: jti.to_owned(),
        client_id: client.to_owned(),
        scope: "payments".to_owned(),
        cnf_x5t_s256: x5t.to_owned(),
        txn: txn.map(str::to_owned),
        exp: 1_750_000_600,
        grant_type: "client_credentials".to_owned(),
    }
}

pub fn revoked(jti: &str, client: &str) -> RecordBody {
    RecordBody::TokenRevoked {
        jti: jti.to_owned(),
        client_id: client.to_owned(),
        reason: "user_request".to_owned(),
    }
}

pub fn auth_failed(client: Option<&str>, x5t: Option<&str>) -> RecordBody {
    RecordBody::ClientAuthFailed {
        client_id: client.map(str::to_owned),
        reason_code: "cert_not_bound".to_owned(),
        presented_x5t_s256: x5t.map(str::to_owned),
    }
}

pub fn auditor() -> RecordBody {
    RecordBody::AuditorAccess {
        actor: "auditor@bank".to_owned(),
        action: "verify".to_owned(),
        query: "all".to_owned(),
    }
}

/// A signed record built by hand (for raw store tests).
pub fn signed(
    key: &LedgerKey,
    chain: &str,
    seq: u64,
    prev: Option<&Record>,
    body: RecordBody,
    request_id: Option<&str>,
) -> Record {
    let content = RecordContent {
        v: 1,
        chain: chain.to_owned(),
        seq,
        id: format!("{:032x}", rand_u128()),
        time: T0 + seq as i64,
        kid: key.kid().to_owned(),
        request_id: request_id.map(str::to_owned),
        transaction_id: body.transaction_id().map(str::to_owned),
        client_id: body.client_id().map(str::to_owned),
        prev: prev.map_or_else(|| GENESIS_PREV.to_owned(), |p| p.hash.clone()),
        body,
    };
    let bytes = content.canonical_bytes().unwrap();
    Record {
        hash: sha256_hex(&bytes),
        signature: key.sign(&bytes).unwrap(),
        content,
    }
}

pub fn rand_u128() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    (t << 20) ^ u128::from(n) ^ (u128::from(std::process::id()) << 100)
}

/// Every record of a chain, in stored order.
pub async fn all_records(store: &dyn Store, chain: &str) -> Vec<Record> {
    let mut out = Vec::new();
    let mut from = 1;
    loop {
        let page = store.scan_chain(chain, from, 200).await.unwrap();
        let n = page.len();
        if let Some(last) = page.last() {
            from = last.content.seq + 1;
        }
        out.extend(page);
        if n < 200 {
            return out;
        }
    }
}

/// Every seal of the store (none for a store that does not seal), each once.
pub async fn all_seals(store: &dyn Store) -> Vec<Seal> {
    let mut out: Vec<Seal> = Vec::new();
    for chain in store.chains().await.unwrap() {
        for seal in store.seals_for(&chain, 1, u64::MAX).await.unwrap() {
            if !out.contains(&seal) {
                out.push(seal);
            }
        }
    }
    out
}
