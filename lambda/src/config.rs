//! Configuration of the Lambda functions, from the environment: read into an [`Env`] snapshot
//! (no IO after that), validated into typed values before the runtime starts. Unknown `KAIROS_*`
//! variables are errors, as unknown keys are in `kairos.toml`.

use std::collections::BTreeMap;
use std::fmt;

use kairos::config::{Config, RawConfig};
use zeroize::Zeroizing;

use crate::app::Role;

/// A snapshot of environment variables.
#[derive(Clone, Default)]
pub struct Env(BTreeMap<String, String>);

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // values may be keys: names only
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Env {
    /// The process environment (non-UTF-8 variables are skipped).
    pub fn from_process() -> Self {
        Self(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        )
    }

    /// From pairs (tests).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    /// A variable; empty counts as unset.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    fn required(&self, name: &str) -> Result<&str, ConfigError> {
        self.get(name)
            .ok_or_else(|| ConfigError(format!("{name} is required")))
    }

    /// Refuses `KAIROS_*` variables not in `known`.
    fn check_known(&self, known: &[&str]) -> Result<(), ConfigError> {
        let unknown: Vec<&str> = self
            .0
            .keys()
            .map(String::as_str)
            .filter(|k| k.starts_with("KAIROS_") && !known.contains(k))
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(format!(
                "unknown variable(s): {}",
                unknown.join(", ")
            )))
        }
    }
}

/// A configuration error, for a person to read (the function's init fails with it).
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

/// Where a private key comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum KeyRef {
    /// PEM PKCS#8 in an environment variable (tests, local runs).
    Inline(Zeroizing<String>),
    /// A Secrets Manager secret (ARN or name) whose `SecretString` is the PEM PKCS#8 key,
    /// fetched once per cold start.
    SecretsManager(String),
}

impl fmt::Debug for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyRef::Inline(_) => f.write_str("Inline(<redacted>)"),
            KeyRef::SecretsManager(id) => f.debug_tuple("SecretsManager").field(id).finish(),
        }
    }
}

fn key_ref(env: &Env, base: &str) -> Result<Option<KeyRef>, ConfigError> {
    let pem_var = format!("{base}_PEM");
    let secret_var = format!("{base}_SECRET_ARN");
    match (env.get(&pem_var), env.get(&secret_var)) {
        (Some(_), Some(_)) => Err(ConfigError(format!(
            "give {pem_var} or {secret_var}, not both"
        ))),
        (Some(p), None) => {
            if !p.contains("-----BEGIN PRIVATE KEY-----") {
                return Err(ConfigError(format!(
                    "{pem_var} must be a PEM PKCS#8 key (BEGIN PRIVATE KEY)"
                )));
            }
            Ok(Some(KeyRef::Inline(Zeroizing::new(p.to_owned()))))
        }
        (None, Some(s)) => Ok(Some(KeyRef::SecretsManager(s.to_owned()))),
        (None, None) => Ok(None),
    }
}

/// Every variable the Kairos function reads.
pub const LAMBDA_VARIABLES: [&str; 14] = [
    "KAIROS_ROLE",
    "KAIROS_CONFIG_TOML",
    "KAIROS_ISSUER",
    "KAIROS_AUDIENCE",
    "KAIROS_LEDGER_TABLE",
    "KAIROS_LEDGER_SHARDS",
    "KAIROS_DYNAMODB_ENDPOINT",
    "KAIROS_CA_CERT_PEM",
    "KAIROS_CA_KEY_PEM",
    "KAIROS_CA_KEY_SECRET_ARN",
    "KAIROS_TOKEN_KEY_PEM",
    "KAIROS_TOKEN_KEY_SECRET_ARN",
    "KAIROS_LEDGER_KEY_PEM",
    "KAIROS_LEDGER_KEY_SECRET_ARN",
];

/// The validated configuration of the `kairos-lambda` function.
#[derive(Debug, Clone)]
pub struct LambdaConfig {
    /// Which endpoints this function serves.
    pub role: Role,
    /// The Kairos configuration (issuer, audience, clients, ...), as `kairos serve` uses it.
    pub kairos: Config,
    /// The ledger's DynamoDB table.
    pub ledger_table: String,
    /// Ledger shards per transaction chain set.
    pub ledger_shards: u32,
    /// DynamoDB endpoint override (DynamoDB Local; uses fixed local credentials).
    pub dynamodb_endpoint: Option<String>,
    /// The CA certificate (public; PEM).
    pub ca_cert_pem: String,
    /// The CA private key: present exactly when the role issues certificates.
    pub ca_key: Option<KeyRef>,
    /// The token-signing key: present when the role issues tokens.
    pub token_key: Option<KeyRef>,
    /// The ledger-signing key.
    pub ledger_key: KeyRef,
}

impl LambdaConfig {
    /// Validates the environment.
    ///
    /// | variable | meaning |
    /// |---|---|
    /// | `KAIROS_ROLE` | `all` (default), `authorization-server` or `issuer` |
    /// | `KAIROS_CONFIG_TOML` | optional `kairos.toml` text (clients, trust domain, token lifetime; `listen` is ignored) |
    /// | `KAIROS_ISSUER` | issuer URL (`https://...`), required unless the TOML sets `issuer` |
    /// | `KAIROS_AUDIENCE` | token `aud` (default: the issuer) |
    /// | `KAIROS_LEDGER_TABLE` | DynamoDB table of the ledger (required) |
    /// | `KAIROS_LEDGER_SHARDS` | chain shards (default 16) |
    /// | `KAIROS_DYNAMODB_ENDPOINT` | endpoint override, for DynamoDB Local only |
    /// | `KAIROS_CA_CERT_PEM` | the CA certificate (required) |
    /// | `KAIROS_CA_KEY_PEM` / `_SECRET_ARN` | CA key: required for `issuer`/`all`, refused for `authorization-server` |
    /// | `KAIROS_TOKEN_KEY_PEM` / `_SECRET_ARN` | token key: required for `authorization-server`/`all`, refused for `issuer` |
    /// | `KAIROS_LEDGER_KEY_PEM` / `_SECRET_ARN` | ledger key (required) |
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        env.check_known(&LAMBDA_VARIABLES)?;
        let role = match env.get("KAIROS_ROLE") {
            None => Role::All,
            Some(r) => Role::parse(r).ok_or_else(|| {
                ConfigError(format!(
                    "KAIROS_ROLE {r:?} is not one of all, authorization-server, issuer"
                ))
            })?,
        };
        let mut raw = match env.get("KAIROS_CONFIG_TOML") {
            Some(t) => RawConfig::parse(t)
                .map_err(|e| ConfigError(format!("KAIROS_CONFIG_TOML: {}", e.0)))?,
            None => RawConfig::default(),
        };
        raw.listen = None;
        if let Some(i) = env.get("KAIROS_ISSUER") {
            raw.issuer = Some(i.to_owned());
        }
        if let Some(a) = env.get("KAIROS_AUDIENCE") {
            raw.audience = Some(a.to_owned());
        }
        if raw.issuer.is_none() {
            return Err(ConfigError(
                "KAIROS_ISSUER is required (the custom domain's https URL)".into(),
            ));
        }
        let kairos = raw.validate(None).map_err(|e| ConfigError(e.0))?;
        let ledger_table = env.required("KAIROS_LEDGER_TABLE")?.to_owned();
        let ledger_shards = match env.get("KAIROS_LEDGER_SHARDS") {
            None => kairos_ledger::DEFAULT_SHARDS,
            Some(s) => s
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=1024).contains(n))
                .ok_or_else(|| {
                    ConfigError("KAIROS_LEDGER_SHARDS must be between 1 and 1024".into())
                })?,
        };
        let dynamodb_endpoint = env.get("KAIROS_DYNAMODB_ENDPOINT").map(str::to_owned);
        if let Some(e) = &dynamodb_endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            return Err(ConfigError(
                "KAIROS_DYNAMODB_ENDPOINT must be an http(s) URL".into(),
            ));
        }
        let ca_cert_pem = env.required("KAIROS_CA_CERT_PEM")?.to_owned();
        let ca_key = key_ref(env, "KAIROS_CA_KEY")?;
        match (role.issues_certificates(), &ca_key) {
            (true, None) => {
                return Err(ConfigError(
                    "KAIROS_CA_KEY_PEM or KAIROS_CA_KEY_SECRET_ARN is required for this role"
                        .into(),
                ));
            }
            (false, Some(_)) => {
                return Err(ConfigError(
                    "the authorization-server role must not hold the CA key".into(),
                ));
            }
            _ => {}
        }
        let token_key = key_ref(env, "KAIROS_TOKEN_KEY")?;
        match (role.issues_tokens(), &token_key) {
            (true, None) => {
                return Err(ConfigError(
                    "KAIROS_TOKEN_KEY_PEM or KAIROS_TOKEN_KEY_SECRET_ARN is required for this role"
                        .into(),
                ));
            }
            (false, Some(_)) => {
                return Err(ConfigError(
                    "the issuer role must not hold the token-signing key".into(),
                ));
            }
            _ => {}
        }
        let ledger_key = key_ref(env, "KAIROS_LEDGER_KEY")?.ok_or_else(|| {
            ConfigError("KAIROS_LEDGER_KEY_PEM or KAIROS_LEDGER_KEY_SECRET_ARN is required".into())
        })?;
        Ok(Self {
            role,
            kairos,
            ledger_table,
            ledger_shards,
            dynamodb_endpoint,
            ca_cert_pem,
            ca_key,
            token_key,
            ledger_key,
        })
    }
}

/// Every variable the authorizer reads.
pub const AUTHORIZER_VARIABLES: [&str; 5] = [
    "KAIROS_ISSUER",
    "KAIROS_AUDIENCE",
    "KAIROS_JWKS_URL",
    "KAIROS_REQUIRED_SCOPE",
    "KAIROS_JWKS_MIN_REFRESH_SECONDS",
];

/// The validated configuration of the `kairos-authorizer` function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizerConfig {
    /// Expected `iss`.
    pub issuer: String,
    /// Expected `aud`.
    pub audience: String,
    /// Where the JWK Set is fetched: `https://`, or `http://` to a loopback address only.
    pub jwks_url: String,
    /// A scope every token must carry, if any.
    pub required_scope: Option<String>,
    /// At most one JWKS fetch per this many seconds (default 30).
    pub jwks_min_refresh_seconds: i64,
}

/// Whether `url` is `http://` to a loopback host (allowed for tests and local runs only).
pub fn is_loopback_http(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

impl AuthorizerConfig {
    /// Validates the environment.
    ///
    /// `KAIROS_ISSUER` (required), `KAIROS_AUDIENCE` (default: the issuer), `KAIROS_JWKS_URL`
    /// (default `<issuer>/jwks`), `KAIROS_REQUIRED_SCOPE`, `KAIROS_JWKS_MIN_REFRESH_SECONDS`.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        env.check_known(&AUTHORIZER_VARIABLES)?;
        let issuer = env
            .required("KAIROS_ISSUER")?
            .trim_end_matches('/')
            .to_owned();
        if !issuer.starts_with("https://") {
            return Err(ConfigError("KAIROS_ISSUER must be an https URL".into()));
        }
        let audience = env
            .get("KAIROS_AUDIENCE")
            .map_or_else(|| issuer.clone(), str::to_owned);
        let jwks_url = env
            .get("KAIROS_JWKS_URL")
            .map_or_else(|| format!("{issuer}/jwks"), str::to_owned);
        if !(jwks_url.starts_with("https://") || is_loopback_http(&jwks_url)) {
            return Err(ConfigError(
                "KAIROS_JWKS_URL must be https (plain http only to a loopback address)".into(),
            ));
        }
        let required_scope = env.get("KAIROS_REQUIRED_SCOPE").map(str::to_owned);
        if let Some(s) = &required_scope
            && (s.contains(' ') || s.len() > 128)
        {
            return Err(ConfigError(
                "KAIROS_REQUIRED_SCOPE must be one scope token".into(),
            ));
        }
        let jwks_min_refresh_seconds = match env.get("KAIROS_JWKS_MIN_REFRESH_SECONDS") {
            None => 30,
            Some(s) => s
                .parse::<i64>()
                .ok()
                .filter(|n| (0..=3600).contains(n))
                .ok_or_else(|| {
                    ConfigError("KAIROS_JWKS_MIN_REFRESH_SECONDS must be 0..=3600".into())
                })?,
        };
        Ok(Self {
            issuer,
            audience,
            jwks_url,
            required_scope,
            jwks_min_refresh_seconds,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n";

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("KAIROS_ISSUER", "https://auth.example.com"),
            ("KAIROS_LEDGER_TABLE", "kairos-ledger"),
            ("KAIROS_CA_CERT_PEM", "x"),
            ("KAIROS_CA_KEY_PEM", KEY),
            ("KAIROS_TOKEN_KEY_SECRET_ARN", "arn:aws:secretsmanager:x"),
            ("KAIROS_LEDGER_KEY_PEM", KEY),
            ("PATH", "/bin"),
        ]
    }

    fn with(
        extra: &[(&'static str, &'static str)],
        drop: &[&str],
    ) -> Result<LambdaConfig, ConfigError> {
        let mut v = base();
        v.retain(|(k, _)| !drop.contains(k));
        v.extend_from_slice(extra);
        LambdaConfig::from_env(&Env::from_pairs(v))
    }

    #[test]
    fn a_complete_environment_validates() {
        let c = with(&[], &[]).unwrap();
        assert_eq!(c.role, Role::All);
        assert_eq!(c.kairos.issuer, "https://auth.example.com");
        assert!(matches!(c.token_key, Some(KeyRef::SecretsManager(_))));
        assert!(!format!("{c:?}").contains("AA=="), "keys are redacted");
    }

    #[test]
    fn bad_environments_fail_at_init() {
        assert!(with(&[], &["KAIROS_ISSUER"]).is_err());
        assert!(with(&[], &["KAIROS_LEDGER_TABLE"]).is_err());
        assert!(with(&[], &["KAIROS_CA_KEY_PEM"]).is_err());
        assert!(with(&[("KAIROS_TABLE", "typo")], &[]).is_err());
        assert!(
            with(&[("KAIROS_ROLE", "authorization-server")], &[]).is_err(),
            "CA key refused"
        );
        assert!(with(&[("KAIROS_ROLE", "issuer")], &["KAIROS_CA_KEY_PEM"]).is_err());
        assert!(
            with(&[("KAIROS_ROLE", "issuer")], &[]).is_err(),
            "token key refused"
        );
        assert!(
            with(
                &[("KAIROS_ROLE", "issuer")],
                &["KAIROS_TOKEN_KEY_SECRET_ARN"]
            )
            .is_ok()
        );
        assert!(with(&[("KAIROS_LEDGER_SHARDS", "0")], &[]).is_err());
        assert!(with(&[("KAIROS_CONFIG_TOML", "bogus = 1")], &[]).is_err());
        assert!(
            with(&[("KAIROS_CA_KEY_SECRET_ARN", "a")], &[]).is_err(),
            "both forms"
        );
    }

    #[test]
    fn authorizer_environment() {
        let ok = AuthorizerConfig::from_env(&Env::from_pairs([(
            "KAIROS_ISSUER",
            "https://auth.example.com/",
        )]))
        .unwrap();
        assert_eq!(ok.jwks_url, "https://auth.example.com/jwks");
        assert_eq!(ok.audience, "https://auth.example.com");
        for bad in [
            vec![("KAIROS_ISSUER", "http://auth.example.com")],
            vec![
                ("KAIROS_ISSUER", "https://a.example"),
                ("KAIROS_JWKS_URL", "http://a.example/jwks"),
            ],
            vec![("KAIROS_ISSUER", "https://a.example"), ("KAIROS_X", "1")],
        ] {
            assert!(AuthorizerConfig::from_env(&Env::from_pairs(bad)).is_err());
        }
        assert!(is_loopback_http("http://127.0.0.1:8080/jwks"));
        assert!(!is_loopback_http("http://127.0.0.1.evil.example/jwks"));
        assert!(!is_loopback_http("http://localhost@evil.example/jwks"));
    }
}
