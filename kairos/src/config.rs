//! Configuration: TOML parsed without IO into raw values, then validated into typed values
//! before any port is bound. Unknown keys are errors.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use kairos_authz::{Client, ClientMetadata, ClientRegistry, JwsAlgorithm};
use serde::Deserialize;
use time::Duration;

/// The file as written.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Listen address (default `127.0.0.1:8443`).
    pub listen: Option<String>,
    /// Issuer URL (default `https://<listen>`).
    pub issuer: Option<String>,
    /// `aud` of access tokens (default: the issuer URL).
    pub audience: Option<String>,
    /// SPIFFE trust domain (default `kairos.local`).
    pub trust_domain: Option<String>,
    /// Access-token lifetime in seconds (default 300, max 3600).
    pub token_ttl_seconds: Option<i64>,
    /// `ES256` (default), `PS256` or `EdDSA`.
    pub token_signing_alg: Option<String>,
    /// Extra CA certificate files (PEM) trusted for `tls_client_auth` (e.g. QWAC issuers).
    #[serde(default)]
    pub client_ca_files: Vec<PathBuf>,
    /// Registered clients (RFC 7591 metadata names).
    #[serde(default)]
    pub clients: Vec<ClientMetadata>,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address.
    pub listen: SocketAddr,
    /// Issuer URL, no trailing slash.
    pub issuer: String,
    /// Whether the issuer was configured (otherwise it follows the bound address).
    pub issuer_explicit: bool,
    /// Token audience.
    pub audience: String,
    /// Trust domain.
    pub trust_domain: String,
    /// Token lifetime.
    pub token_ttl: Duration,
    /// Token signing algorithm.
    pub token_alg: JwsAlgorithm,
    /// Extra client CA files.
    pub client_ca_files: Vec<PathBuf>,
    /// The registered clients.
    pub clients: Vec<Client>,
}

/// A configuration error, for a person to read.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

/// The demo client registered when the configuration has none.
pub fn default_clients(trust_domain: &str) -> Vec<ClientMetadata> {
    vec![ClientMetadata {
        client_id: "payments-app".into(),
        token_endpoint_auth_method: "tls_client_auth".into(),
        tls_client_auth_san_uri: Some(format!("spiffe://{trust_domain}/payments-app")),
        scope: Some("payments accounts".into()),
        ..Default::default()
    }]
}

impl RawConfig {
    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError(e.to_string()))
    }

    /// Reads a file.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| ConfigError(format!("{}: {}", path.display(), e.0)))
    }

    /// Validates, with an optional listen address override.
    pub fn validate(self, listen_override: Option<SocketAddr>) -> Result<Config, ConfigError> {
        let listen = match (listen_override, &self.listen) {
            (Some(a), _) => a,
            (None, Some(s)) => s
                .parse()
                .map_err(|_| ConfigError(format!("listen {s:?} is not an address:port")))?,
            (None, None) => SocketAddr::from(([127, 0, 0, 1], 8443)),
        };
        let issuer_explicit = self.issuer.is_some();
        let issuer = match self.issuer {
            Some(i) => {
                let i = i.trim_end_matches('/').to_owned();
                if !i.starts_with("https://") || i.contains('?') || i.contains('#') {
                    return Err(ConfigError(
                        "issuer must be an https URL without query or fragment".into(),
                    ));
                }
                i
            }
            None => format!("https://{}", issuer_host(listen)),
        };
        let audience = self.audience.unwrap_or_else(|| issuer.clone());
        let trust_domain = self.trust_domain.unwrap_or_else(|| "kairos.local".into());
        kairos_issuer::SpiffeId::parse_any(&format!("spiffe://{trust_domain}"))
            .map_err(|e| ConfigError(format!("trust_domain: {e}")))?;
        let ttl = self.token_ttl_seconds.unwrap_or(300);
        if !(1..=3600).contains(&ttl) {
            return Err(ConfigError(
                "token_ttl_seconds must be between 1 and 3600".into(),
            ));
        }
        let token_alg = match self.token_signing_alg.as_deref() {
            None => JwsAlgorithm::Es256,
            Some(a) => JwsAlgorithm::parse(a).ok_or_else(|| {
                ConfigError(format!(
                    "token_signing_alg {a:?} is not one of ES256, PS256, EdDSA"
                ))
            })?,
        };
        let raw_clients = if self.clients.is_empty() {
            default_clients(&trust_domain)
        } else {
            self.clients
        };
        let clients = raw_clients
            .into_iter()
            .map(|c| c.into_client().map_err(|e| ConfigError(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        ClientRegistry::new(clients.clone()).map_err(|e| ConfigError(e.to_string()))?;
        Ok(Config {
            listen,
            issuer,
            issuer_explicit,
            audience,
            trust_domain,
            token_ttl: Duration::seconds(ttl),
            token_alg,
            client_ca_files: self.client_ca_files,
            clients,
        })
    }
}

/// The host:port part of a default issuer URL for a listen address.
pub fn issuer_host(listen: SocketAddr) -> String {
    if listen.ip().is_unspecified() {
        format!("localhost:{}", listen.port())
    } else {
        listen.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_gets_defaults() {
        let c = RawConfig::parse("").unwrap().validate(None).unwrap();
        assert_eq!(c.issuer, "https://127.0.0.1:8443");
        assert_eq!(c.clients.len(), 1);
        assert_eq!(c.token_alg, JwsAlgorithm::Es256);
    }

    #[test]
    fn unknown_keys_and_bad_values_fail() {
        assert!(RawConfig::parse("lisen = \"x\"").is_err());
        assert!(RawConfig::parse("[[clients]]\nclient_id = \"a\"\ntoken_endpoint_auth_method = \"tls_client_auth\"\nbogus = 1").is_err());
        for bad in [
            "listen = \"nope\"",
            "issuer = \"http://x\"",
            "token_ttl_seconds = 0",
            "token_signing_alg = \"HS256\"",
            "trust_domain = \"Bad Domain\"",
            "[[clients]]\nclient_id = \"a\"\ntoken_endpoint_auth_method = \"tls_client_auth\"",
        ] {
            assert!(
                RawConfig::parse(bad).unwrap().validate(None).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_committed_example_is_valid() {
        let text = include_str!("../../kairos.example.toml");
        let c = RawConfig::parse(text).unwrap().validate(None).unwrap();
        assert!(c.clients.len() >= 2);
    }
}
