//! Registered clients: RFC 7591 metadata in, typed clients out.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use kairos_issuer::{CanonicalDn, CertThumbprint, PeerCertificate, SpiffeId};
use serde::Deserialize;

/// Longest client id.
pub const MAX_CLIENT_ID: usize = 128;

/// A client id: 1–128 visible ASCII characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(String);

impl ClientId {
    /// Parses a client id.
    pub fn parse(s: &str) -> Option<Self> {
        (!s.is_empty() && s.len() <= MAX_CLIENT_ID && s.bytes().all(|b| b.is_ascii_graphic()))
            .then(|| Self(s.to_owned()))
    }
    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A set of scope tokens (RFC 6749 §3.3).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Scope(BTreeSet<String>);

impl Scope {
    /// Parses a space-delimited scope string; `None` if a token has characters outside
    /// `%x21 / %x23-5B / %x5D-7E` or the string is too long.
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() > 1024 {
            return None;
        }
        let mut set = BTreeSet::new();
        for tok in s.split(' ').filter(|t| !t.is_empty()) {
            if !tok
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
            {
                return None;
            }
            set.insert(tok.to_owned());
        }
        Some(Self(set))
    }
    /// Is every token of `self` in `other`?
    pub fn is_subset(&self, other: &Scope) -> bool {
        self.0.is_subset(&other.0)
    }
    /// Is the set empty?
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The tokens.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
    /// The space-delimited form.
    pub fn to_string_form(&self) -> String {
        self.0.iter().cloned().collect::<Vec<_>>().join(" ")
    }
}

/// What a `tls_client_auth` client's certificate must carry (exactly one, RFC 8705 §2.1.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubjectMatch {
    /// `tls_client_auth_subject_dn`, compared as a canonical DN.
    SubjectDn(CanonicalDn),
    /// `tls_client_auth_san_dns`.
    SanDns(String),
    /// `tls_client_auth_san_uri`.
    SanUri(String),
    /// `tls_client_auth_san_ip`, compared in binary.
    SanIp(IpAddr),
    /// `tls_client_auth_san_email`.
    SanEmail(String),
}

impl SubjectMatch {
    /// Does the certificate carry this value?
    pub fn matches(&self, cert: &PeerCertificate) -> bool {
        use kairos_issuer::SubjectAltName as S;
        match self {
            SubjectMatch::SubjectDn(dn) => cert.subject().matches(dn),
            SubjectMatch::SanDns(v) => cert.has_san(&S::Dns(v.clone())),
            SubjectMatch::SanUri(v) => cert.has_san(&S::Uri(v.clone())),
            SubjectMatch::SanIp(v) => cert.has_san(&S::Ip(*v)),
            SubjectMatch::SanEmail(v) => cert.has_san(&S::Email(v.clone())),
        }
    }
}

/// How a client authenticates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// RFC 8705 §2.1 PKI method: chain to a trust anchor, then one registered subject value.
    TlsClientAuth(SubjectMatch),
    /// RFC 8705 §2.2: the handshake certificate is one of the registered ones (by `x5t#S256`).
    SelfSignedTlsClientAuth(Vec<CertThumbprint>),
}

/// A registered client.
#[derive(Clone, Debug)]
pub struct Client {
    /// The client id.
    pub client_id: ClientId,
    /// Authentication method and credential.
    pub auth: ClientAuth,
    /// The scope the client may be granted.
    pub scope: Scope,
    /// The SPIFFE ID of the workload, when the client is a Kairos workload
    /// (`tls_client_auth_san_uri` holding a `spiffe://` ID): such clients may request
    /// per-transaction certificates.
    pub spiffe_id: Option<SpiffeId>,
}

/// RFC 7591 client metadata as configured (TOML or JSON).
#[derive(Clone, Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ClientMetadata {
    /// The client id.
    pub client_id: String,
    /// `tls_client_auth` or `self_signed_tls_client_auth`.
    pub token_endpoint_auth_method: String,
    /// RFC 8705 §2.1.2.
    pub tls_client_auth_subject_dn: Option<String>,
    /// RFC 8705 §2.1.2.
    pub tls_client_auth_san_dns: Option<String>,
    /// RFC 8705 §2.1.2.
    pub tls_client_auth_san_uri: Option<String>,
    /// RFC 8705 §2.1.2.
    pub tls_client_auth_san_ip: Option<String>,
    /// RFC 8705 §2.1.2.
    pub tls_client_auth_san_email: Option<String>,
    /// JWK Set whose keys carry `x5c` (for `self_signed_tls_client_auth`).
    pub jwks: Option<serde_json::Value>,
    /// Space-delimited scope.
    pub scope: Option<String>,
    /// RFC 8705 §3.4; Kairos always binds, so only `true` is accepted.
    pub tls_client_certificate_bound_access_tokens: Option<bool>,
    /// Informational name.
    pub client_name: Option<String>,
}

/// Client metadata that cannot be registered (RFC 7591 §3.2.2 `invalid_client_metadata`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid_client_metadata for {client_id}: {reason}")]
pub struct MetadataError {
    /// The client concerned.
    pub client_id: String,
    /// Why.
    pub reason: String,
}

impl ClientMetadata {
    /// Validates metadata into a client.
    pub fn into_client(self) -> Result<Client, MetadataError> {
        let err = |reason: String| MetadataError {
            client_id: self.client_id.clone(),
            reason,
        };
        let client_id =
            ClientId::parse(&self.client_id).ok_or_else(|| err("client_id is not valid".into()))?;
        let scope = Scope::parse(self.scope.as_deref().unwrap_or(""))
            .ok_or_else(|| err("scope is not valid".into()))?;
        if self.tls_client_certificate_bound_access_tokens == Some(false) {
            return Err(err(
                "Kairos always binds access tokens to certificates; remove tls_client_certificate_bound_access_tokens = false".into(),
            ));
        }
        let subject_values = [
            self.tls_client_auth_subject_dn.is_some(),
            self.tls_client_auth_san_dns.is_some(),
            self.tls_client_auth_san_uri.is_some(),
            self.tls_client_auth_san_ip.is_some(),
            self.tls_client_auth_san_email.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        let mut spiffe_id = None;
        let auth = match self.token_endpoint_auth_method.as_str() {
            "tls_client_auth" => {
                if subject_values != 1 {
                    return Err(err(format!(
                        "tls_client_auth needs exactly one of tls_client_auth_subject_dn, _san_dns, _san_uri, _san_ip, _san_email (found {subject_values})"
                    )));
                }
                if self.jwks.is_some() {
                    return Err(err("jwks is only for self_signed_tls_client_auth".into()));
                }
                let m =
                    if let Some(dn) = &self.tls_client_auth_subject_dn {
                        SubjectMatch::SubjectDn(
                            CanonicalDn::parse_rfc4514(dn).map_err(|e| err(e.to_string()))?,
                        )
                    } else if let Some(v) = &self.tls_client_auth_san_dns {
                        SubjectMatch::SanDns(v.clone())
                    } else if let Some(v) = &self.tls_client_auth_san_uri {
                        if v.starts_with("spiffe://") {
                            spiffe_id = Some(
                                SpiffeId::parse(v)
                                    .map_err(|e| err(format!("tls_client_auth_san_uri: {e}")))?,
                            );
                        }
                        SubjectMatch::SanUri(v.clone())
                    } else if let Some(v) = &self.tls_client_auth_san_ip {
                        SubjectMatch::SanIp(v.parse().map_err(|_| {
                            err("tls_client_auth_san_ip is not an IP address".into())
                        })?)
                    } else if let Some(v) = &self.tls_client_auth_san_email {
                        SubjectMatch::SanEmail(v.clone())
                    } else {
                        return Err(err("no subject value".into()));
                    };
                ClientAuth::TlsClientAuth(m)
            }
            "self_signed_tls_client_auth" => {
                if subject_values != 0 {
                    return Err(err(
                        "tls_client_auth_* values are only for tls_client_auth".into()
                    ));
                }
                let jwks = self
                    .jwks
                    .as_ref()
                    .ok_or_else(|| err("self_signed_tls_client_auth needs jwks".into()))?;
                ClientAuth::SelfSignedTlsClientAuth(
                    thumbprints_from_jwks(jwks).map_err(|r| err(r.into()))?,
                )
            }
            other => {
                return Err(err(format!(
                    "token_endpoint_auth_method {other:?} is not supported (tls_client_auth, self_signed_tls_client_auth)"
                )));
            }
        };
        Ok(Client {
            client_id,
            auth,
            scope,
            spiffe_id,
        })
    }
}

fn thumbprints_from_jwks(jwks: &serde_json::Value) -> Result<Vec<CertThumbprint>, &'static str> {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    let keys = jwks
        .get("keys")
        .and_then(|k| k.as_array())
        .ok_or("jwks must be an object with a keys array")?;
    let mut out = Vec::new();
    for k in keys {
        // RFC 7517 §4.7: x5c is standard base64 DER, the first certificate is the key's.
        let first = k
            .get("x5c")
            .and_then(|x| x.as_array())
            .and_then(|a| a.first())
            .and_then(|c| c.as_str())
            .ok_or("every jwks key needs an x5c certificate")?;
        let der = STANDARD.decode(first).map_err(|_| "x5c is not base64")?;
        let cert = PeerCertificate::from_der(&der).map_err(|_| "x5c is not a certificate")?;
        out.push(cert.thumbprint());
    }
    if out.is_empty() {
        return Err("jwks has no keys");
    }
    Ok(out)
}

/// The registered clients.
#[derive(Clone, Debug, Default)]
pub struct ClientRegistry {
    by_id: HashMap<ClientId, Client>,
    by_spiffe: HashMap<SpiffeId, ClientId>,
}

impl ClientRegistry {
    /// Builds a registry; client ids and SPIFFE IDs must be unique.
    pub fn new(clients: Vec<Client>) -> Result<Self, MetadataError> {
        let mut r = Self::default();
        for c in clients {
            let dup = |what: &str| MetadataError {
                client_id: c.client_id.as_str().to_owned(),
                reason: format!("duplicate {what}"),
            };
            if let Some(id) = &c.spiffe_id
                && r.by_spiffe
                    .insert(id.clone(), c.client_id.clone())
                    .is_some()
            {
                return Err(dup("SPIFFE ID"));
            }
            if r.by_id.contains_key(&c.client_id) {
                return Err(dup("client_id"));
            }
            r.by_id.insert(c.client_id.clone(), c);
        }
        Ok(r)
    }
    /// Looks a client up by id.
    pub fn get(&self, id: &str) -> Option<&Client> {
        ClientId::parse(id).and_then(|id| self.by_id.get(&id))
    }
    /// The client registered for a workload's SPIFFE ID.
    pub fn by_spiffe_id(&self, id: &SpiffeId) -> Option<&Client> {
        self.by_spiffe.get(id).and_then(|c| self.by_id.get(c))
    }
    /// All clients.
    pub fn iter(&self) -> impl Iterator<Item = &Client> {
        self.by_id.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(method: &str) -> ClientMetadata {
        ClientMetadata {
            client_id: "a".into(),
            token_endpoint_auth_method: method.into(),
            ..Default::default()
        }
    }

    #[test]
    fn exactly_one_subject_value() {
        let mut m = md("tls_client_auth");
        assert!(m.clone().into_client().is_err());
        m.tls_client_auth_san_dns = Some("a.example".into());
        assert!(m.clone().into_client().is_ok());
        m.tls_client_auth_san_uri = Some("spiffe://kairos.local/a".into());
        assert!(m.clone().into_client().is_err());
        m.tls_client_auth_san_dns = None;
        let c = m.into_client().unwrap();
        assert_eq!(c.spiffe_id.unwrap().as_str(), "spiffe://kairos.local/a");
    }

    #[test]
    fn bad_values_are_refused() {
        let mut m = md("tls_client_auth");
        m.tls_client_auth_san_ip = Some("not-an-ip".into());
        assert!(m.into_client().is_err());
        let mut m = md("tls_client_auth");
        m.tls_client_auth_subject_dn = Some("XX=1".into());
        assert!(m.into_client().is_err());
        let mut m = md("client_secret_basic");
        m.tls_client_auth_san_dns = Some("a".into());
        assert!(m.into_client().is_err());
        let m = md("self_signed_tls_client_auth");
        assert!(m.into_client().is_err());
        let mut m = md("self_signed_tls_client_auth");
        m.jwks = Some(serde_json::json!({"keys": [{"kty": "EC"}]}));
        assert!(m.into_client().is_err());
    }

    #[test]
    fn scope_parsing() {
        let s = Scope::parse("payments accounts").unwrap();
        assert!(Scope::parse("payments").unwrap().is_subset(&s));
        assert!(!Scope::parse("admin").unwrap().is_subset(&s));
        assert!(Scope::parse("a\"b").is_none());
        assert_eq!(s.to_string_form(), "accounts payments");
    }
}
