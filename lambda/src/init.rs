//! The init phase of the `kairos-lambda` function: keys loaded (Secrets Manager fetched once),
//! the CA, token key and ledger built, the DynamoDB connection warmed, the router state made.
//! Everything that can fail fails here, before the runtime asks for the first event.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use kairos::bootstrap::DataDir;
use kairos::ledger_audit::LedgerAudit;
use kairos_authz::{AppState, AuditLog, TokenKey};
use kairos_issuer::{
    CertificateAuthority, IssuancePolicy, LocalSigner, SignatureAlgorithm, Signer, SignerError,
};
use kairos_ledger::{DynamoConfig, DynamoStore, Ledger, LedgerKey};
use zeroize::Zeroizing;

use crate::app::Role;
use crate::config::{KeyRef, LambdaConfig};

/// What init produced.
#[derive(Debug)]
pub struct Initialized {
    /// The router state.
    pub state: AppState,
    /// The ledger (DynamoDB).
    pub ledger: Arc<Ledger>,
    /// The function's role.
    pub role: Role,
    /// Where init spent its time.
    pub timings: InitTimings,
}

/// Durations of the init steps.
#[derive(Debug, Clone, Copy, Default)]
pub struct InitTimings {
    /// Secrets Manager fetches (zero when keys are inline).
    pub secrets: Duration,
    /// Parsing keys, building the CA, token key, ledger and router state.
    pub keys_and_state: Duration,
    /// The DynamoDB `DescribeTable` that opens the connection (network).
    pub dynamodb_warmup: Duration,
}

/// The CA for a function that must not hold the CA key: it can verify chains to the CA (client
/// authentication of transaction certificates), and any attempt to sign fails.
#[derive(Debug)]
pub struct VerifyOnlyCaKey {
    algorithm: SignatureAlgorithm,
    spki: Vec<u8>,
    raw: Vec<u8>,
}

impl VerifyOnlyCaKey {
    /// The public key of the CA certificate `ca_cert_pem`.
    pub fn from_ca_pem(ca_cert_pem: &str) -> anyhow::Result<Self> {
        let block = pem::parse(ca_cert_pem).context("KAIROS_CA_CERT_PEM is not PEM")?;
        let (_, cert) = x509_parser::parse_x509_certificate(block.contents())
            .map_err(|e| anyhow::anyhow!("KAIROS_CA_CERT_PEM: {e}"))?;
        let spki = cert.public_key();
        let oid = spki.algorithm.algorithm.to_id_string();
        let algorithm = match oid.as_str() {
            "1.2.840.10045.2.1" => SignatureAlgorithm::EcdsaP256Sha256,
            "1.3.101.112" => SignatureAlgorithm::Ed25519,
            other => anyhow::bail!("KAIROS_CA_CERT_PEM: unsupported CA key algorithm {other}"),
        };
        Ok(Self {
            algorithm,
            spki: spki.raw.to_vec(),
            raw: spki.subject_public_key.data.to_vec(),
        })
    }
}

impl Signer for VerifyOnlyCaKey {
    fn algorithm(&self) -> SignatureAlgorithm {
        self.algorithm
    }
    fn public_key_spki(&self) -> &[u8] {
        &self.spki
    }
    fn public_key_raw(&self) -> &[u8] {
        &self.raw
    }
    fn sign(&self, _message: &[u8]) -> Result<Vec<u8>, SignerError> {
        tracing::error!("a certificate signature was requested from a function without the CA key");
        Err(SignerError::Signing)
    }
}

/// Resolves key references, fetching Secrets Manager secrets with one client.
struct Secrets {
    client: Option<aws_sdk_secretsmanager::Client>,
}

impl Secrets {
    async fn new(cfg: &LambdaConfig) -> Self {
        let any_secret = [
            cfg.ca_key.as_ref(),
            cfg.token_key.as_ref(),
            Some(&cfg.ledger_key),
        ]
        .into_iter()
        .flatten()
        .any(|k| matches!(k, KeyRef::SecretsManager(_)));
        let client = if any_secret {
            let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .timeout_config(
                    aws_config::timeout::TimeoutConfig::builder()
                        .operation_timeout(Duration::from_secs(5))
                        .connect_timeout(Duration::from_secs(2))
                        .build(),
                )
                .load()
                .await;
            Some(aws_sdk_secretsmanager::Client::new(&conf))
        } else {
            None
        };
        Self { client }
    }

    async fn pem(&self, what: &str, key: &KeyRef) -> anyhow::Result<Zeroizing<String>> {
        match key {
            KeyRef::Inline(p) => Ok(p.clone()),
            KeyRef::SecretsManager(id) => {
                let client = self
                    .client
                    .as_ref()
                    .context("internal: no Secrets Manager client")?;
                let out = client
                    .get_secret_value()
                    .secret_id(id)
                    .send()
                    .await
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "{what}: Secrets Manager GetSecretValue {id}: {}",
                            aws_sdk_secretsmanager::error::DisplayErrorContext(e)
                        )
                    })?;
                let text = out
                    .secret_string()
                    .with_context(|| format!("{what}: secret {id} has no SecretString"))?;
                Ok(Zeroizing::new(text.to_owned()))
            }
        }
    }
}

fn pkcs8_der(what: &str, pem_text: &str) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let block = pem::parse(pem_text).map_err(|_| anyhow::anyhow!("{what} is not PEM"))?;
    if block.tag() != "PRIVATE KEY" {
        anyhow::bail!("{what} must be PEM PKCS#8 (BEGIN PRIVATE KEY)");
    }
    Ok(Zeroizing::new(block.into_contents()))
}

/// The keys of a function, parsed.
#[derive(Debug)]
pub struct Keys {
    /// The CA (with the signing key, or [`VerifyOnlyCaKey`] for the authorization server).
    pub ca: Arc<CertificateAuthority>,
    /// The token-signing key (a throwaway one for the issuer role, which publishes no JWKS).
    pub token_key: Arc<TokenKey>,
    /// The ledger-signing key.
    pub ledger_key: LedgerKey,
}

/// Loads the keys: inline PEMs, or Secrets Manager secrets (one client, fetched once).
/// Returns the time spent fetching secrets.
pub async fn load_keys(cfg: &LambdaConfig) -> anyhow::Result<(Keys, Duration)> {
    let t0 = Instant::now();
    let secrets = Secrets::new(cfg).await;
    let ca_key_pem = match &cfg.ca_key {
        Some(k) => Some(secrets.pem("CA key", k).await?),
        None => None,
    };
    let token_key_pem = match &cfg.token_key {
        Some(k) => Some(secrets.pem("token key", k).await?),
        None => None,
    };
    let ledger_key_pem = secrets.pem("ledger key", &cfg.ledger_key).await?;
    let fetched = t0.elapsed();
    let keys = keys_from_pems(
        cfg,
        ca_key_pem.as_deref().map(String::as_str),
        token_key_pem.as_deref().map(String::as_str),
        &ledger_key_pem,
    )?;
    Ok((keys, fetched))
}

/// Parses the keys and builds the CA.
pub fn keys_from_pems(
    cfg: &LambdaConfig,
    ca_key_pem: Option<&str>,
    token_key_pem: Option<&str>,
    ledger_key_pem: &str,
) -> anyhow::Result<Keys> {
    let signer: Arc<dyn Signer> = match ca_key_pem {
        Some(p) => Arc::new(LocalSigner::from_pkcs8_pem(p).context("CA key")?),
        None => Arc::new(VerifyOnlyCaKey::from_ca_pem(&cfg.ca_cert_pem)?),
    };
    let ca = CertificateAuthority::from_pem(
        &cfg.ca_cert_pem,
        signer,
        &cfg.kairos.trust_domain,
        IssuancePolicy::default(),
    )
    .context("CA certificate and key")?;
    let token_key = match token_key_pem {
        Some(p) => TokenKey::from_pkcs8(cfg.kairos.token_alg, &pkcs8_der("token key", p)?)
            .map_err(|e| anyhow::anyhow!("token key: {e}"))?,
        None => TokenKey::generate(cfg.kairos.token_alg)
            .map_err(|e| anyhow::anyhow!("token key: {e}"))?,
    };
    let ledger_key = LedgerKey::from_pkcs8_pem(ledger_key_pem).context("ledger key")?;
    Ok(Keys {
        ca: Arc::new(ca),
        token_key: Arc::new(token_key),
        ledger_key,
    })
}

/// The router state from the configuration, the keys and an audit port, through
/// [`kairos::serve::build_state`] (the standalone server's wiring).
pub fn router_state(
    cfg: &LambdaConfig,
    ca: Arc<CertificateAuthority>,
    token_key: Arc<TokenKey>,
    audit: Arc<dyn AuditLog>,
    extra_jwks: Vec<serde_json::Value>,
) -> anyhow::Result<AppState> {
    // The Lambda edge has no data directory: API Gateway holds the server certificate.
    let data = DataDir {
        path: PathBuf::new(),
        ca,
        server_chain_pem: String::new(),
        server_key_pem: Zeroizing::new(String::new()),
        token_key,
        created: false,
    };
    kairos::serve::build_state(&cfg.kairos, &data, audit, extra_jwks)
}

/// The DynamoDB configuration of the ledger.
pub fn dynamo_config(cfg: &LambdaConfig) -> DynamoConfig {
    match &cfg.dynamodb_endpoint {
        Some(e) => DynamoConfig::local(cfg.ledger_table.clone(), e.clone()),
        None => DynamoConfig::new(cfg.ledger_table.clone()),
    }
}

/// Runs the init phase.
pub async fn init(cfg: &LambdaConfig) -> anyhow::Result<Initialized> {
    let (keys, t_secrets) = load_keys(cfg).await?;
    let t1 = Instant::now();
    let store = DynamoStore::connect(&dynamo_config(cfg)).await;
    let ledger_jwk = serde_json::to_value(keys.ledger_key.public_jwk())?;
    let ledger = Arc::new(Ledger::new(
        Arc::new(store.clone()),
        keys.ledger_key,
        cfg.ledger_shards,
    ));
    let audit = Arc::new(LedgerAudit::new(ledger.clone()));
    let state = router_state(cfg, keys.ca, keys.token_key, audit, vec![ledger_jwk])?;
    let t_state = t1.elapsed();

    let t2 = Instant::now();
    warm(&store).await?;
    let t_warm = t2.elapsed();

    Ok(Initialized {
        state,
        ledger,
        role: cfg.role,
        timings: InitTimings {
            secrets: t_secrets,
            keys_and_state: t_state,
            dynamodb_warmup: t_warm,
        },
    })
}

/// Opens the DynamoDB connection (credentials, TLS, endpoint resolution) and checks the table is
/// usable, so that the first request does not pay for it and a wrong table fails init.
pub async fn warm(store: &DynamoStore) -> anyhow::Result<()> {
    let d = store
        .client()
        .describe_table()
        .table_name(store.table())
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "ledger table {}: DescribeTable: {}",
                store.table(),
                aws_sdk_dynamodb::error::DisplayErrorContext(e)
            )
        })?;
    let status = d.table().and_then(|t| t.table_status());
    if status != Some(&aws_sdk_dynamodb::types::TableStatus::Active) {
        anyhow::bail!("ledger table {} is not ACTIVE ({status:?})", store.table());
    }
    Ok(())
}
