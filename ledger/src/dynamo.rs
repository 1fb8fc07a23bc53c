//! DynamoDB store: one table, conditional writes, record + chain head in one transaction.
//!
//! Item layout (see `ledger/README.md` for the table):
//!
//! | item | `pk` | `sk` |
//! |---|---|---|
//! | record | `C#<chain>` | `R#<seq, 20 digits>` |
//! | chain head | `C#<chain>` | `HEAD` |
//! | checkpoint | `C#<chain>` | `K#<seq, 20 digits>` |
//! | idempotency key | `I#<key>` | `I` |
//! | chain registry | `CHAINS` | `<chain>` |

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, Put, ScalarAttributeType, TableStatus,
    TimeToLiveSpecification, TransactWriteItem,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

use crate::checkpoint::{Checkpoint, CheckpointContent};
use crate::record::{Record, RecordContent};
use crate::store::{ChainHead, MAX_CURSOR_LEN, Page, Query, Store, StoreError, check_limit};

/// Name of the TTL attribute enabled on the table (used only by short-lived state items of
/// other components; ledger items never carry it).
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// The GSIs: (index name, hash-key attribute). Every GSI's range key is `rk`.
const INDEXES: [(&str, &str); 5] = [
    ("by_txn", "txn_id"),
    ("by_client", "client_id"),
    ("by_serial", "serial"),
    ("by_x5t", "x5t"),
    ("by_jti", "jti"),
];

const KEY_ATTRS: [&str; 8] = [
    "pk",
    "sk",
    "txn_id",
    "client_id",
    "serial",
    "x5t",
    "jti",
    "rk",
];

/// How to reach DynamoDB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DynamoConfig {
    /// Table name.
    pub table: String,
    /// Region; `None` takes it from the environment / profile.
    pub region: Option<String>,
    /// Endpoint override (e.g. `http://127.0.0.1:8000` for DynamoDB Local).
    pub endpoint_url: Option<String>,
    /// Use fixed dummy credentials (for DynamoDB Local) instead of the default provider chain.
    pub local_credentials: bool,
    /// Total time for one operation, retries included.
    pub operation_timeout: Duration,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Attempts per operation (1 = no retries).
    pub max_attempts: u32,
}

impl DynamoConfig {
    /// Defaults for `table`: region from the environment, 5 s per operation, 2 s to connect,
    /// 3 attempts.
    pub fn new(table: impl Into<String>) -> Self {
        Self {
            table: table.into(),
            region: None,
            endpoint_url: None,
            local_credentials: false,
            operation_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            max_attempts: 3,
        }
    }

    /// Configuration for a local DynamoDB-compatible server at `endpoint_url`.
    pub fn local(table: impl Into<String>, endpoint_url: impl Into<String>) -> Self {
        Self {
            region: Some("us-east-1".into()),
            endpoint_url: Some(endpoint_url.into()),
            local_credentials: true,
            ..Self::new(table)
        }
    }

    /// Build an SDK client from this configuration (reads the environment for what is not set).
    pub async fn client(&self) -> Client {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(self.operation_timeout)
                    .connect_timeout(self.connect_timeout)
                    .build(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(self.max_attempts.max(1)));
        if let Some(r) = &self.region {
            loader = loader.region(Region::new(r.clone()));
        }
        if let Some(e) = &self.endpoint_url {
            loader = loader.endpoint_url(e.clone());
        }
        if self.local_credentials {
            loader = loader.credentials_provider(Credentials::new(
                "local",
                "local",
                None,
                None,
                "kairos-local",
            ));
        }
        Client::new(&loader.load().await)
    }
}

/// The DynamoDB store.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

fn sdk_err<E>(op: &str, e: SdkError<E>) -> StoreError
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
{
    const TRANSIENT: [&str; 7] = [
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "ThrottlingException",
        "InternalServerError",
        "InternalFailure",
        "ServiceUnavailable",
        "LimitExceededException",
    ];
    let (transient, what) = match &e {
        SdkError::ConstructionFailure(_) => (false, "could not build the request".to_owned()),
        SdkError::TimeoutError(_) => (true, "timed out".to_owned()),
        SdkError::DispatchFailure(_) => (true, "could not reach the server".to_owned()),
        SdkError::ResponseError(_) => (true, "unreadable response".to_owned()),
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("unknown");
            let msg = se.err().message().unwrap_or("");
            (TRANSIENT.contains(&code), format!("{code}: {msg}"))
        }
        _ => (true, "request failed".to_owned()),
    };
    let message = format!("dynamodb {op}: {what}");
    if transient {
        StoreError::Unavailable {
            message,
            source: Some(Box::new(e)),
        }
    } else {
        StoreError::Backend {
            message,
            source: Some(Box::new(e)),
        }
    }
}

fn build_err(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::backend("dynamodb request", e)
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn chain_pk(chain: &str) -> String {
    format!("C#{chain}")
}

fn record_sk(seq: u64) -> String {
    format!("R#{seq:020}")
}

fn checkpoint_sk(seq: u64) -> String {
    format!("K#{seq:020}")
}

/// GSI range key: time (clamped at 0, 20 digits), chain, seq — the query order.
fn range_key(time_ms: i64, chain: &str, seq: u64) -> String {
    format!("{:020}#{chain}#{seq:020}", time_ms.max(0))
}

fn get_s<'a>(item: &'a HashMap<String, AttributeValue>, k: &str) -> Option<&'a str> {
    item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str)
}

fn get_n(item: &HashMap<String, AttributeValue>, k: &str) -> Option<u64> {
    item.get(k)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

fn corrupt(item: &HashMap<String, AttributeValue>, reason: impl Into<String>) -> StoreError {
    let chain = get_s(item, "pk")
        .map(|p| p.trim_start_matches("C#").to_owned())
        .unwrap_or_default();
    let seq = get_s(item, "sk")
        .and_then(|s| s.get(2..))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    StoreError::Corrupt {
        chain,
        seq,
        reason: reason.into(),
    }
}

fn item_to_record(item: &HashMap<String, AttributeValue>) -> Result<Record, StoreError> {
    let (Some(content), Some(hash), Some(sig)) = (
        get_s(item, "content"),
        get_s(item, "hsh"),
        get_s(item, "sig"),
    ) else {
        return Err(corrupt(item, "missing content, hsh or sig"));
    };
    let content: RecordContent =
        serde_json::from_str(content).map_err(|e| corrupt(item, e.to_string()))?;
    Ok(Record {
        content,
        hash: hash.to_owned(),
        signature: sig.to_owned(),
    })
}

fn item_to_checkpoint(item: &HashMap<String, AttributeValue>) -> Result<Checkpoint, StoreError> {
    let (Some(content), Some(sig)) = (get_s(item, "content"), get_s(item, "sig")) else {
        return Err(corrupt(item, "checkpoint: missing content or sig"));
    };
    let content: CheckpointContent =
        serde_json::from_str(content).map_err(|e| corrupt(item, format!("checkpoint: {e}")))?;
    Ok(Checkpoint {
        content,
        signature: sig.to_owned(),
    })
}

fn encode_cursor(key: &HashMap<String, AttributeValue>) -> Option<String> {
    let map: BTreeMap<&str, &str> = key
        .iter()
        .filter_map(|(k, v)| v.as_s().ok().map(|v| (k.as_str(), v.as_str())))
        .collect();
    serde_json::to_vec(&map).ok().map(|b| B64.encode(b))
}

fn decode_cursor(cursor: &str) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let bad = || StoreError::Invalid("bad cursor".into());
    if cursor.len() > MAX_CURSOR_LEN {
        return Err(bad());
    }
    let bytes = B64.decode(cursor).map_err(|_| bad())?;
    let map: BTreeMap<String, String> = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if map.keys().any(|k| !KEY_ATTRS.contains(&k.as_str())) {
        return Err(bad());
    }
    Ok(map.into_iter().map(|(k, v)| (k, s(v))).collect())
}

impl DynamoStore {
    /// A store over `table`, using `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Build the client from `config` and make a store.
    pub async fn connect(config: &DynamoConfig) -> Self {
        Self::new(config.client().await, config.table.clone())
    }

    /// The SDK client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    fn record_item(record: &Record) -> Result<HashMap<String, AttributeValue>, StoreError> {
        let c = &record.content;
        let json = c
            .canonical_json()
            .map_err(|e| StoreError::backend("encode record", e))?;
        let mut item = HashMap::from([
            ("pk".to_owned(), s(chain_pk(&c.chain))),
            ("sk".to_owned(), s(record_sk(c.seq))),
            ("chain".to_owned(), s(&c.chain)),
            ("seq".to_owned(), n(c.seq)),
            ("rid".to_owned(), s(&c.id)),
            ("kind".to_owned(), s(c.body.kind())),
            ("ts".to_owned(), n(c.time)),
            ("rk".to_owned(), s(range_key(c.time, &c.chain, c.seq))),
            ("kid".to_owned(), s(&c.kid)),
            ("hsh".to_owned(), s(&record.hash)),
            ("sig".to_owned(), s(&record.signature)),
            ("content".to_owned(), s(json)),
        ]);
        let optional = [
            ("txn_id", c.transaction_id.clone()),
            ("client_id", c.client_id.clone()),
            ("request_id", c.request_id.clone()),
            ("serial", c.body.serial()),
            ("x5t", c.body.x5t_s256().map(str::to_owned)),
            ("jti", c.body.jti().map(str::to_owned)),
            ("idem", record.idempotency_key()),
        ];
        for (k, v) in optional {
            if let Some(v) = v {
                item.insert(k.to_owned(), s(v));
            }
        }
        Ok(item)
    }

    async fn query_all(
        &self,
        pk: &str,
        sk_prefix: Option<&str>,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let mut req = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .expression_attribute_names("#pk", "pk")
                .expression_attribute_values(":pk", s(pk))
                .set_exclusive_start_key(start.take());
            req = match sk_prefix {
                Some(p) => req
                    .key_condition_expression("#pk = :pk AND begins_with(#sk, :p)")
                    .expression_attribute_names("#sk", "sk")
                    .expression_attribute_values(":p", s(p)),
                None => req.key_condition_expression("#pk = :pk"),
            };
            let resp = req.send().await.map_err(|e| sdk_err("query", e))?;
            out.extend(resp.items().iter().cloned());
            match resp.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => return Ok(out),
            }
        }
    }
}

#[async_trait]
impl Store for DynamoStore {
    async fn head(&self, chain: &str) -> Result<Option<ChainHead>, StoreError> {
        let resp = self
            .client
            .get_item()
            .table_name(&self.table)
            .consistent_read(true)
            .key("pk", s(chain_pk(chain)))
            .key("sk", s("HEAD"))
            .send()
            .await
            .map_err(|e| sdk_err("get_item", e))?;
        let Some(item) = resp.item() else {
            return Ok(None);
        };
        match (get_n(item, "seq"), get_s(item, "hsh")) {
            (Some(seq), Some(hash)) => Ok(Some(ChainHead {
                seq,
                hash: hash.to_owned(),
            })),
            _ => Err(corrupt(item, "bad chain head item")),
        }
    }

    async fn append(&self, record: &Record) -> Result<(), StoreError> {
        let c = &record.content;
        if c.seq == 0 {
            return Err(StoreError::Conflict {
                chain: c.chain.clone(),
                seq: 0,
            });
        }
        let item = Self::record_item(record)?;
        let put_record = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", "pk")
            .build()
            .map_err(build_err)?;
        let mut head = Put::builder()
            .table_name(&self.table)
            .item("pk", s(chain_pk(&c.chain)))
            .item("sk", s("HEAD"))
            .item("seq", n(c.seq))
            .item("hsh", s(&record.hash))
            .expression_attribute_names("#pk", "pk");
        head = if c.seq == 1 {
            head.condition_expression("attribute_not_exists(#pk)")
        } else {
            head.condition_expression("#seq = :pseq AND #hsh = :phash")
                .expression_attribute_names("#seq", "seq")
                .expression_attribute_names("#hsh", "hsh")
                .expression_attribute_values(":pseq", n(c.seq - 1))
                .expression_attribute_values(":phash", s(&c.prev))
        };
        // `#pk` is only referenced in the seq==1 condition.
        if c.seq != 1 {
            head = head.set_expression_attribute_names(Some(HashMap::from([
                ("#seq".to_owned(), "seq".to_owned()),
                ("#hsh".to_owned(), "hsh".to_owned()),
            ])));
        }
        let mut items = vec![
            TransactWriteItem::builder().put(put_record).build(),
            TransactWriteItem::builder()
                .put(head.build().map_err(build_err)?)
                .build(),
        ];
        let idem = record.idempotency_key();
        if let Some(key) = &idem {
            let put_idem = Put::builder()
                .table_name(&self.table)
                .item("pk", s(format!("I#{key}")))
                .item("sk", s("I"))
                .item("chain", s(&c.chain))
                .item("seq", n(c.seq))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", "pk")
                .build()
                .map_err(build_err)?;
            items.push(TransactWriteItem::builder().put(put_idem).build());
        }
        if c.seq == 1 {
            let reg = Put::builder()
                .table_name(&self.table)
                .item("pk", s("CHAINS"))
                .item("sk", s(&c.chain))
                .build()
                .map_err(build_err)?;
            items.push(TransactWriteItem::builder().put(reg).build());
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(se)) => match se.err() {
                TransactWriteItemsError::TransactionCanceledException(tc) => {
                    let reasons = tc.cancellation_reasons();
                    let failed = |i: usize| {
                        reasons
                            .get(i)
                            .and_then(|r| r.code())
                            .is_some_and(|c| c == "ConditionalCheckFailed")
                    };
                    if let (Some(key), true) = (&idem, failed(2)) {
                        return Err(StoreError::Duplicate {
                            idempotency_key: key.clone(),
                        });
                    }
                    let conflict = reasons.iter().any(|r| {
                        matches!(
                            r.code(),
                            Some("ConditionalCheckFailed" | "TransactionConflict")
                        )
                    });
                    if conflict {
                        Err(StoreError::Conflict {
                            chain: c.chain.clone(),
                            seq: c.seq,
                        })
                    } else {
                        Err(sdk_err("transact_write_items", SdkError::ServiceError(se)))
                    }
                }
                TransactWriteItemsError::TransactionInProgressException(_) => {
                    Err(StoreError::Conflict {
                        chain: c.chain.clone(),
                        seq: c.seq,
                    })
                }
                _ => Err(sdk_err("transact_write_items", SdkError::ServiceError(se))),
            },
            Err(e) => Err(sdk_err("transact_write_items", e)),
        }
    }

    async fn find_by_idempotency_key(&self, key: &str) -> Result<Option<Record>, StoreError> {
        let resp = self
            .client
            .get_item()
            .table_name(&self.table)
            .consistent_read(true)
            .key("pk", s(format!("I#{key}")))
            .key("sk", s("I"))
            .send()
            .await
            .map_err(|e| sdk_err("get_item", e))?;
        let Some(item) = resp.item() else {
            return Ok(None);
        };
        let (Some(chain), Some(seq)) = (get_s(item, "chain"), get_n(item, "seq")) else {
            return Err(corrupt(item, "bad idempotency item"));
        };
        let resp = self
            .client
            .get_item()
            .table_name(&self.table)
            .consistent_read(true)
            .key("pk", s(chain_pk(chain)))
            .key("sk", s(record_sk(seq)))
            .send()
            .await
            .map_err(|e| sdk_err("get_item", e))?;
        resp.item().map(item_to_record).transpose()
    }

    async fn put_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        let c = &checkpoint.content;
        let json = serde_json::to_string(c).map_err(|e| StoreError::backend("encode", e))?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(chain_pk(&c.chain)))
            .item("sk", s(checkpoint_sk(c.seq)))
            .item("chain", s(&c.chain))
            .item("seq", n(c.seq))
            .item("content", s(json))
            .item("sig", s(&checkpoint.signature))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", "pk")
            .send()
            .await;
        match result {
            Ok(_) => {}
            Err(SdkError::ServiceError(se))
                if matches!(se.err(), PutItemError::ConditionalCheckFailedException(_)) => {}
            Err(e) => return Err(sdk_err("put_item", e)),
        }
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s("CHAINS"))
            .item("sk", s(&c.chain))
            .send()
            .await
            .map_err(|e| sdk_err("put_item", e))?;
        Ok(())
    }

    async fn latest_checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        let mut out = Vec::new();
        for chain in self.chains().await? {
            let resp = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :p)")
                .expression_attribute_names("#pk", "pk")
                .expression_attribute_names("#sk", "sk")
                .expression_attribute_values(":pk", s(chain_pk(&chain)))
                .expression_attribute_values(":p", s("K#"))
                .scan_index_forward(false)
                .limit(1)
                .send()
                .await
                .map_err(|e| sdk_err("query", e))?;
            if let Some(item) = resp.items().first() {
                out.push(item_to_checkpoint(item)?);
            }
        }
        Ok(out)
    }

    async fn checkpoints(&self, chain: &str) -> Result<Vec<Checkpoint>, StoreError> {
        self.query_all(&chain_pk(chain), Some("K#"))
            .await?
            .iter()
            .map(item_to_checkpoint)
            .collect()
    }

    async fn query(
        &self,
        query: &Query,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page, StoreError> {
        check_limit(limit)?;
        let start = cursor.map(decode_cursor).transpose()?;
        let (index, attr, value, range) = match query {
            Query::Transaction(t) => ("by_txn", "txn_id", t.clone(), None),
            Query::Client {
                client_id,
                since_ms,
                until_ms,
            } => (
                "by_client",
                "client_id",
                client_id.clone(),
                Some((
                    format!("{:020}", (*since_ms).max(0)),
                    // '$' sorts after '#', so every key of `until_ms` is below this bound.
                    format!("{:020}$", (*until_ms).max(0)),
                )),
            ),
            Query::Serial(x) => ("by_serial", "serial", crate::normalize_serial(x), None),
            Query::Thumbprint(x) => ("by_x5t", "x5t", x.clone(), None),
            Query::Jti(j) => ("by_jti", "jti", j.clone(), None),
        };
        let mut req = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(index)
            .expression_attribute_names("#k", attr)
            .expression_attribute_values(":v", s(value))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start);
        req = match range {
            Some((lo, hi)) => req
                .key_condition_expression("#k = :v AND #rk BETWEEN :lo AND :hi")
                .expression_attribute_names("#rk", "rk")
                .expression_attribute_values(":lo", s(lo))
                .expression_attribute_values(":hi", s(hi)),
            None => req.key_condition_expression("#k = :v"),
        };
        let resp = req.send().await.map_err(|e| sdk_err("query", e))?;
        let records = resp
            .items()
            .iter()
            .map(item_to_record)
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = resp
            .last_evaluated_key()
            .filter(|k| !k.is_empty())
            .and_then(encode_cursor);
        Ok(Page {
            records,
            next_cursor,
        })
    }

    async fn scan_chain(
        &self,
        chain: &str,
        from_seq: u64,
        limit: u32,
    ) -> Result<Vec<Record>, StoreError> {
        check_limit(limit)?;
        let mut out = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let remaining = limit as usize - out.len();
            let resp = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("#pk = :pk AND #sk BETWEEN :lo AND :hi")
                .expression_attribute_names("#pk", "pk")
                .expression_attribute_names("#sk", "sk")
                .expression_attribute_values(":pk", s(chain_pk(chain)))
                .expression_attribute_values(":lo", s(record_sk(from_seq)))
                .expression_attribute_values(":hi", s(record_sk(u64::MAX)))
                .limit(i32::try_from(remaining).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_err("query", e))?;
            for item in resp.items() {
                out.push(item_to_record(item)?);
            }
            match resp.last_evaluated_key() {
                Some(k) if !k.is_empty() && out.len() < limit as usize => {
                    start = Some(k.clone());
                }
                _ => return Ok(out),
            }
        }
    }

    async fn chains(&self) -> Result<Vec<String>, StoreError> {
        let mut chains: Vec<String> = self
            .query_all("CHAINS", None)
            .await?
            .iter()
            .filter_map(|i| get_s(i, "sk").map(str::to_owned))
            .collect();
        chains.sort();
        Ok(chains)
    }
}

/// Create the ledger table (keys, GSIs, TTL on [`TTL_ATTRIBUTE`]) and wait until it is active.
/// Returns `false` when the table already existed (nothing is changed then).
pub async fn create_table(client: &Client, name: &str) -> Result<bool, StoreError> {
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(build_err)
    };
    let key = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .map_err(build_err)
    };
    let mut req = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?);
    for a in KEY_ATTRS {
        req = req.attribute_definitions(attr(a)?);
    }
    for (index, hash) in INDEXES {
        req = req.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(index)
                .key_schema(key(hash, KeyType::Hash)?)
                .key_schema(key("rk", KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .map_err(build_err)?,
        );
    }
    match req.send().await {
        Ok(_) => {}
        Err(SdkError::ServiceError(se))
            if matches!(
                se.err(),
                aws_sdk_dynamodb::operation::create_table::CreateTableError::ResourceInUseException(
                    _
                )
            ) =>
        {
            return Ok(false);
        }
        Err(e) => return Err(sdk_err("create_table", e)),
    }
    let mut active = false;
    for _ in 0..120 {
        let d = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| sdk_err("describe_table", e))?;
        if d.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            active = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if !active {
        return Err(StoreError::Unavailable {
            message: format!("table {name} did not become ACTIVE"),
            source: None,
        });
    }
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(TTL_ATTRIBUTE)
                .build()
                .map_err(build_err)?,
        )
        .send()
        .await
        .map_err(|e| sdk_err("update_time_to_live", e))?;
    Ok(true)
}
