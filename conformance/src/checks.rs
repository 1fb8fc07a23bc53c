//! The checks. Each has an id naming its source (standards.md) and returns pass, fail with a
//! reason, or skipped with a reason.

use std::time::Duration;

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::http::{Http, Identity, Reply, TlsParams};

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", content = "detail", rename_all = "lowercase")]
pub enum Outcome {
    /// It held.
    Pass,
    /// It did not, and why.
    Fail(String),
    /// It could not be run, and why.
    Skipped(String),
}

/// A client identity registered at the server under test.
#[derive(Clone, Debug)]
pub struct Client {
    /// Its client id.
    pub client_id: String,
    /// Its certificate and key.
    pub identity: Identity,
}

/// Everything the checks share.
pub struct Ctx {
    /// The HTTP client.
    pub http: Http,
    /// The issuer URL.
    pub issuer: String,
    /// Metadata (discovery document), when it could be fetched.
    pub metadata: Value,
    /// The primary client.
    pub a: Client,
    /// A second client, for cross-client checks.
    pub b: Option<Client>,
    /// A token issued to `a`, once one was.
    pub token_a: Option<(Reply, String)>,
}

fn sha256_b64url(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, der))
}

fn fail<T>(msg: impl Into<String>) -> Result<T, String> {
    Err(msg.into())
}

fn ensure(cond: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Ok(()) } else { Err(msg()) }
}

fn err_code(r: &Reply) -> String {
    r.json()
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned()
}

/// RFC 6749 §5.2 error shape: JSON, a known code, description charset.
fn error_shape(r: &Reply, allowed: &[&str]) -> Result<(), String> {
    let ct = r.header("content-type").unwrap_or("");
    ensure(ct.starts_with("application/json"), || {
        format!("error Content-Type is {ct:?}, not application/json")
    })?;
    let code = err_code(r);
    ensure(allowed.contains(&code.as_str()), || {
        format!(
            "error is {code:?} (HTTP {}), expected one of {allowed:?}",
            r.status
        )
    })?;
    if let Some(d) = r.json().get("error_description").and_then(Value::as_str) {
        ensure(
            d.bytes().all(|b| {
                b == 0x20 || b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b)
            }),
            || format!("error_description has characters outside RFC 6749 §5.2: {d:?}"),
        )?;
    }
    Ok(())
}

impl Ctx {
    fn meta(&self, k: &str) -> Option<&str> {
        self.metadata.get(k).and_then(Value::as_str)
    }

    /// The endpoint a client doing mTLS must use (RFC 8705 §5).
    pub fn mtls_endpoint(&self, k: &str) -> Option<String> {
        self.metadata
            .get("mtls_endpoint_aliases")
            .and_then(|a| a.get(k))
            .and_then(Value::as_str)
            .or_else(|| self.meta(k))
            .map(str::to_owned)
    }

    fn token_endpoint(&self) -> Result<String, String> {
        self.mtls_endpoint("token_endpoint")
            .ok_or_else(|| "metadata has no token_endpoint".to_owned())
    }

    async fn token_for(&self, c: &Client) -> Result<Reply, String> {
        self.http
            .post_form(
                &self.token_endpoint()?,
                Some(&c.identity),
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", &c.client_id),
                ],
            )
            .await
            .map_err(|e| format!("token request failed: {e:#}"))
    }

    async fn token_a(&mut self) -> Result<(Reply, String), String> {
        if let Some(t) = &self.token_a {
            return Ok(t.clone());
        }
        let r = self.token_for(&self.a.clone()).await?;
        ensure(r.status == 200, || {
            format!(
                "client A's token request got HTTP {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            )
        })?;
        let at = r
            .json()
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or("no access_token in the token response")?
            .to_owned();
        self.token_a = Some((r.clone(), at.clone()));
        Ok((r, at))
    }

    async fn introspect(&self, who: &Client, token: &str) -> Result<Reply, String> {
        let url = self
            .mtls_endpoint("introspection_endpoint")
            .ok_or("no introspection_endpoint")?;
        self.http
            .post_form(
                &url,
                Some(&who.identity),
                &[("token", token), ("client_id", &who.client_id)],
            )
            .await
            .map_err(|e| format!("{e:#}"))
    }
}

fn jwt_part(token: &str, i: usize) -> Result<Value, String> {
    let p = token.split('.').nth(i).ok_or("access token is not a JWT")?;
    let b = URL_SAFE_NO_PAD
        .decode(p)
        .map_err(|_| "JWT part is not base64url")?;
    serde_json::from_slice(&b).map_err(|_| "JWT part is not JSON".to_owned())
}

/// One check's definition.
pub struct Check {
    /// Id naming the source (e.g. `R8705-3.2`).
    pub id: &'static str,
    /// What it checks.
    pub title: &'static str,
}

/// All checks, in the order they run.
pub const CHECKS: &[Check] = &[
    Check {
        id: "R8414-3",
        title: "metadata at /.well-known/oauth-authorization-server and /.well-known/openid-configuration",
    },
    Check {
        id: "R8414-3.3",
        title: "metadata issuer is identical to the issuer URL",
    },
    Check {
        id: "R8414-2",
        title: "required metadata, https endpoints, no 'none' algorithm",
    },
    Check {
        id: "R8705-3.5",
        title: "tls_client_certificate_bound_access_tokens is JSON true",
    },
    Check {
        id: "R8414-fapi-auth",
        title: "mTLS client authentication advertised, no client_secret_*",
    },
    Check {
        id: "R8705-5.1",
        title: "mtls_endpoint_aliases, when present, is an object of https URLs",
    },
    Check {
        id: "TOP-14",
        title: "mtls_endpoint_aliases covers token, introspection and revocation endpoints",
    },
    Check {
        id: "JWKS-kid",
        title: "JWKS reachable, every key has a distinct kid, no private members",
    },
    Check {
        id: "R8705-3.1",
        title: "token over mTLS is bound: cnf.x5t#S256 present",
    },
    Check {
        id: "R8705-3.2",
        title: "x5t#S256 = base64url(SHA-256(DER)), 43 characters",
    },
    Check {
        id: "R6749-5.1",
        title: "token response: JSON, Bearer, expires_in, no-store, no-cache",
    },
    Check {
        id: "R9068-2.1",
        title: "JWT access token: typ at+jwt, FAPI alg, signature verifies with jwks_uri, iss",
    },
    Check {
        id: "R8705-6.3",
        title: "token exp is not beyond the certificate's notAfter",
    },
    Check {
        id: "R8705-2.1",
        title: "token request without client_id is refused",
    },
    Check {
        id: "R8705-2.2a",
        title: "token request without a client certificate is invalid_client",
    },
    Check {
        id: "R8705-2.3",
        title: "unregistered/untrusted certificate with client A's id is invalid_client",
    },
    Check {
        id: "R8705-2.2b",
        title: "client B's certificate with client A's id is invalid_client",
    },
    Check {
        id: "R8705-2.9",
        title: "a certificate in a Client-Cert header never authenticates",
    },
    Check {
        id: "R6749-5.2",
        title: "unsupported grant_type: 400 unsupported_grant_type, RFC 6749 error shape",
    },
    Check {
        id: "R6749-3.1",
        title: "a repeated parameter is invalid_request",
    },
    Check {
        id: "R7662-2.1a",
        title: "introspection: POST without token is invalid_request; GET refused",
    },
    Check {
        id: "R7662-2.1b",
        title: "introspection without client authentication is refused (401)",
    },
    Check {
        id: "R8705-3.3",
        title: "introspection of a bound token: active with cnf.x5t#S256",
    },
    Check {
        id: "R7662-2.2b",
        title: "introspection of an unknown token: exactly {\"active\": false}",
    },
    Check {
        id: "R7009-2.1",
        title: "client B cannot revoke client A's token",
    },
    Check {
        id: "R7009-2.2",
        title: "revocation: unknown token 200; own token 200 and then inactive",
    },
    Check {
        id: "TLS-1.3",
        title: "TLS 1.3 handshake",
    },
    Check {
        id: "TLS-1.3-preferred",
        title: "TLS 1.3 chosen when 1.2 and 1.3 are offered",
    },
    Check {
        id: "TLS-1.2-BCP195",
        title: "TLS 1.2 with BCP 195 ECDHE AEAD suites (each offered alone)",
    },
    Check {
        id: "TLS-insecure",
        title: "TLS 1.0/1.1 and non-AEAD or non-ECDHE TLS 1.2 suites refused (openssl)",
    },
];

/// Runs one check.
pub async fn run(ctx: &mut Ctx, id: &str) -> Outcome {
    let r = match id {
        "R8414-3" => discovery_both(ctx).await,
        "R8414-3.3" => {
            let iss = ctx.meta("issuer").unwrap_or("").to_owned();
            ensure(iss == ctx.issuer, || {
                format!("metadata issuer {iss:?} != {:?}", ctx.issuer)
            })
        }
        "R8414-2" => required_metadata(ctx),
        "R8705-3.5" => ensure(
            ctx.metadata
                .get("tls_client_certificate_bound_access_tokens")
                == Some(&Value::Bool(true)),
            || "tls_client_certificate_bound_access_tokens is not the JSON boolean true".into(),
        ),
        "R8414-fapi-auth" => auth_methods(ctx),
        "R8705-5.1" => aliases_shape(ctx),
        "TOP-14" => aliases_complete(ctx),
        "JWKS-kid" => jwks_keys(ctx).await.map(|_| ()),
        "R8705-3.1" => bound(ctx).await,
        "R8705-3.2" => thumbprint(ctx).await,
        "R6749-5.1" => token_response(ctx).await,
        "R9068-2.1" => jwt_valid(ctx).await,
        "R8705-6.3" => exp_capped(ctx).await,
        "R8705-2.1" => no_client_id(ctx).await,
        "R8705-2.2a" => no_cert(ctx).await,
        "R8705-2.3" => unregistered_cert(ctx).await,
        "R8705-2.2b" => return cross_client(ctx).await,
        "R8705-2.9" => header_spoof(ctx).await,
        "R6749-5.2" => unsupported_grant(ctx).await,
        "R6749-3.1" => repeated_param(ctx).await,
        "R7662-2.1a" => return introspect_requires_token(ctx).await,
        "R7662-2.1b" => return introspect_requires_auth(ctx).await,
        "R8705-3.3" => return introspect_bound(ctx).await,
        "R7662-2.2b" => return introspect_unknown(ctx).await,
        "R7009-2.1" => return revoke_cross(ctx).await,
        "R7009-2.2" => return revoke_own(ctx).await,
        "TLS-1.3" => tls13(ctx).await,
        "TLS-1.3-preferred" => tls13_preferred(ctx).await,
        "TLS-1.2-BCP195" => tls12_bcp195(ctx).await,
        "TLS-insecure" => return tls_insecure(ctx).await,
        other => Err(format!("unknown check {other}")),
    };
    match r {
        Ok(()) => Outcome::Pass,
        Err(e) => Outcome::Fail(e),
    }
}

async fn discovery_both(ctx: &Ctx) -> Result<(), String> {
    let mut problems = Vec::new();
    for wk in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let url = format!("{}{wk}", ctx.issuer);
        match ctx.http.request("GET", &url, None, &[], "").await {
            Ok(r)
                if r.status == 200
                    && r.header("content-type")
                        .unwrap_or("")
                        .starts_with("application/json") => {}
            Ok(r) => problems.push(format!("{wk}: HTTP {}", r.status)),
            Err(e) => problems.push(format!("{wk}: {e:#}")),
        }
    }
    ensure(problems.is_empty(), || problems.join("; "))
}

fn required_metadata(ctx: &Ctx) -> Result<(), String> {
    for k in ["issuer", "token_endpoint", "jwks_uri"] {
        let v = ctx.meta(k).ok_or(format!("{k} missing"))?;
        ensure(v.starts_with("https://"), || {
            format!("{k} is not https: {v}")
        })?;
        ensure(!v.contains('#'), || format!("{k} has a fragment"))?;
    }
    ensure(
        ctx.metadata.get("response_types_supported").is_some(),
        || "response_types_supported missing".into(),
    )?;
    if let Some(o) = ctx.metadata.as_object() {
        for (k, v) in o {
            if k.ends_with("_alg_values_supported")
                && v.as_array().is_some_and(|a| a.iter().any(|x| x == "none"))
            {
                return fail(format!("{k} contains none"));
            }
        }
    }
    Ok(())
}

fn auth_methods(ctx: &Ctx) -> Result<(), String> {
    let m: Vec<&str> = ctx
        .metadata
        .get("token_endpoint_auth_methods_supported")
        .and_then(Value::as_array)
        .ok_or("token_endpoint_auth_methods_supported missing")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    ensure(
        m.contains(&"tls_client_auth") || m.contains(&"self_signed_tls_client_auth"),
        || format!("no mTLS method in {m:?}"),
    )?;
    ensure(!m.iter().any(|x| x.starts_with("client_secret")), || {
        format!("client_secret_* advertised: {m:?}")
    })
}

fn aliases_shape(ctx: &Ctx) -> Result<(), String> {
    match ctx.metadata.get("mtls_endpoint_aliases") {
        None => Ok(()),
        Some(Value::Object(o)) => {
            for (k, v) in o {
                let s = v.as_str().ok_or(format!("alias {k} is not a string"))?;
                ensure(s.starts_with("https://"), || {
                    format!("alias {k} is not https")
                })?;
            }
            Ok(())
        }
        Some(_) => fail("mtls_endpoint_aliases is not an object"),
    }
}

fn aliases_complete(ctx: &Ctx) -> Result<(), String> {
    let Some(a) = ctx.metadata.get("mtls_endpoint_aliases") else {
        return fail("mtls_endpoint_aliases not advertised");
    };
    for k in [
        "token_endpoint",
        "introspection_endpoint",
        "revocation_endpoint",
    ] {
        if ctx.meta(k).is_some() && a.get(k).is_none() {
            return fail(format!("{k} is offered but has no mTLS alias"));
        }
    }
    Ok(())
}

async fn jwks_keys(ctx: &Ctx) -> Result<Value, String> {
    let url = ctx.meta("jwks_uri").ok_or("no jwks_uri")?;
    let r = ctx
        .http
        .request("GET", url, None, &[], "")
        .await
        .map_err(|e| format!("{e:#}"))?;
    ensure(r.status == 200, || format!("jwks_uri: HTTP {}", r.status))?;
    let j = r.json();
    let keys = j
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("no keys array")?;
    let mut kids = std::collections::HashSet::new();
    for k in keys {
        let kid = k
            .get("kid")
            .and_then(Value::as_str)
            .ok_or("a key has no kid")?;
        ensure(kids.insert(kid.to_owned()), || {
            format!("kid {kid} repeated")
        })?;
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            ensure(k.get(private).is_none(), || {
                format!("key {kid} publishes private member {private}")
            })?;
        }
    }
    Ok(j)
}

async fn bound(ctx: &mut Ctx) -> Result<(), String> {
    let (_, at) = ctx.token_a().await?;
    let c = jwt_part(&at, 1)?;
    ensure(
        c.get("cnf").and_then(|c| c.get("x5t#S256")).is_some(),
        || format!("no cnf.x5t#S256 in {c}"),
    )
}

async fn thumbprint(ctx: &mut Ctx) -> Result<(), String> {
    let (_, at) = ctx.token_a().await?;
    let c = jwt_part(&at, 1)?;
    let got = c
        .get("cnf")
        .and_then(|c| c.get("x5t#S256"))
        .and_then(Value::as_str)
        .ok_or("no cnf.x5t#S256")?;
    let want = sha256_b64url(ctx.a.identity.leaf_der());
    ensure(got.len() == 43, || {
        format!("x5t#S256 has {} characters", got.len())
    })?;
    ensure(got == want, || format!("x5t#S256 {got} != {want}"))
}

async fn token_response(ctx: &mut Ctx) -> Result<(), String> {
    let (r, _) = ctx.token_a().await?;
    let j = r.json();
    ensure(
        j.get("token_type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case("bearer")),
        || format!("token_type is {:?}", j.get("token_type")),
    )?;
    ensure(
        j.get("expires_in").and_then(Value::as_i64).is_some(),
        || "expires_in missing".into(),
    )?;
    ensure(
        r.header("cache-control")
            .is_some_and(|v| v.contains("no-store")),
        || "Cache-Control: no-store missing".into(),
    )?;
    ensure(
        r.header("pragma").is_some_and(|v| v.contains("no-cache")),
        || "Pragma: no-cache missing".into(),
    )
}

async fn jwt_valid(ctx: &mut Ctx) -> Result<(), String> {
    let (_, at) = ctx.token_a().await?;
    let h = jwt_part(&at, 0)?;
    ensure(h.get("typ") == Some(&Value::from("at+jwt")), || {
        format!("typ is {:?}", h.get("typ"))
    })?;
    let alg = h.get("alg").and_then(Value::as_str).unwrap_or("");
    ensure(["PS256", "ES256", "EdDSA"].contains(&alg), || {
        format!("alg {alg} is not a FAPI 2.0 algorithm")
    })?;
    let jwks = jwks_keys(ctx).await?;
    let set: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(jwks).map_err(|e| format!("jwks: {e}"))?;
    let kid = h.get("kid").and_then(Value::as_str).ok_or("no kid")?;
    let jwk = set.find(kid).ok_or(format!("kid {kid} not in jwks"))?;
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|e| format!("{e}"))?;
    let alg: jsonwebtoken::Algorithm = alg.parse().map_err(|_| "alg".to_owned())?;
    let mut v = jsonwebtoken::Validation::new(alg);
    v.set_issuer(&[&ctx.issuer]);
    v.validate_aud = false;
    jsonwebtoken::decode::<Value>(&at, &key, &v)
        .map_err(|e| format!("signature/iss/exp do not verify: {e}"))?;
    Ok(())
}

async fn exp_capped(ctx: &mut Ctx) -> Result<(), String> {
    let (_, at) = ctx.token_a().await?;
    let exp = jwt_part(&at, 1)?
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or("no exp")?;
    let (_, cert) = x509_parser::parse_x509_certificate(ctx.a.identity.leaf_der())
        .map_err(|e| format!("client cert: {e}"))?;
    let na = cert.validity().not_after.timestamp();
    ensure(exp <= na, || {
        format!("exp {exp} > certificate notAfter {na}")
    })
}

async fn no_client_id(ctx: &Ctx) -> Result<(), String> {
    let r = ctx
        .http
        .post_form(
            &ctx.token_endpoint()?,
            Some(&ctx.a.identity),
            &[("grant_type", "client_credentials")],
        )
        .await
        .map_err(|e| format!("{e:#}"))?;
    ensure(r.status == 400 || r.status == 401, || {
        format!("HTTP {}", r.status)
    })?;
    error_shape(&r, &["invalid_client", "invalid_request"])
}

async fn no_cert(ctx: &Ctx) -> Result<(), String> {
    match ctx
        .http
        .post_form(
            &ctx.token_endpoint()?,
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &ctx.a.client_id),
            ],
        )
        .await
    {
        Err(_) => Ok(()), // handshake failure is acceptable
        Ok(r) => {
            ensure(r.status == 400 || r.status == 401, || {
                format!("HTTP {}", r.status)
            })?;
            error_shape(&r, &["invalid_client"])
        }
    }
}

async fn unregistered_cert(ctx: &Ctx) -> Result<(), String> {
    let eph = Identity::ephemeral("conformance-unregistered").map_err(|e| format!("{e:#}"))?;
    match ctx
        .http
        .post_form(
            &ctx.token_endpoint()?,
            Some(&eph),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &ctx.a.client_id),
            ],
        )
        .await
    {
        Err(_) => Ok(()),
        Ok(r) => {
            ensure(r.status == 400 || r.status == 401, || {
                format!("HTTP {}", r.status)
            })?;
            error_shape(&r, &["invalid_client"])
        }
    }
}

async fn cross_client(ctx: &Ctx) -> Outcome {
    let Some(b) = &ctx.b else {
        return Outcome::Skipped("needs a second client (B) in the configuration".into());
    };
    let r = async {
        let r = ctx
            .http
            .post_form(
                &ctx.token_endpoint()?,
                Some(&b.identity),
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", &ctx.a.client_id),
                ],
            )
            .await
            .map_err(|e| format!("{e:#}"))?;
        ensure(r.status == 400 || r.status == 401, || {
            format!("HTTP {}", r.status)
        })?;
        error_shape(&r, &["invalid_client"])
    }
    .await;
    r.map_or_else(Outcome::Fail, |_| Outcome::Pass)
}

async fn header_spoof(ctx: &Ctx) -> Result<(), String> {
    let der = base64::engine::general_purpose::STANDARD.encode(ctx.a.identity.leaf_der());
    let sf = format!(":{der}:");
    let pem_line = format!("-----BEGIN CERTIFICATE-----{der}-----END CERTIFICATE-----");
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("client_id", &ctx.a.client_id)
        .finish();
    let r = ctx
        .http
        .request(
            "POST",
            &ctx.token_endpoint()?,
            None,
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("client-cert", &sf),
                ("x-client-cert", &pem_line),
                ("x-ssl-client-cert", &pem_line),
                ("x-amzn-mtls-clientcert", &pem_line),
            ],
            &body,
        )
        .await;
    match r {
        Err(_) => Ok(()),
        Ok(r) => ensure(r.status != 200, || {
            "a certificate sent in a header authenticated the client".into()
        }),
    }
}

async fn unsupported_grant(ctx: &Ctx) -> Result<(), String> {
    let r = ctx
        .http
        .post_form(
            &ctx.token_endpoint()?,
            Some(&ctx.a.identity),
            &[
                ("grant_type", "urn:example:unsupported"),
                ("client_id", &ctx.a.client_id),
            ],
        )
        .await
        .map_err(|e| format!("{e:#}"))?;
    ensure(r.status == 400, || format!("HTTP {}", r.status))?;
    error_shape(&r, &["unsupported_grant_type"])
}

async fn repeated_param(ctx: &Ctx) -> Result<(), String> {
    let body = format!(
        "grant_type=client_credentials&grant_type=client_credentials&client_id={}",
        ctx.a.client_id
    );
    let r = ctx
        .http
        .request(
            "POST",
            &ctx.token_endpoint()?,
            Some(&ctx.a.identity),
            &[("content-type", "application/x-www-form-urlencoded")],
            &body,
        )
        .await
        .map_err(|e| format!("{e:#}"))?;
    ensure(r.status == 400, || format!("HTTP {}", r.status))?;
    error_shape(&r, &["invalid_request"])
}

fn outcome(r: Result<(), String>) -> Outcome {
    r.map_or_else(Outcome::Fail, |_| Outcome::Pass)
}

async fn introspect_requires_token(ctx: &Ctx) -> Outcome {
    let Some(url) = ctx.mtls_endpoint("introspection_endpoint") else {
        return Outcome::Skipped("no introspection_endpoint advertised".into());
    };
    outcome(
        async {
            let r = ctx
                .http
                .post_form(
                    &url,
                    Some(&ctx.a.identity),
                    &[("client_id", &ctx.a.client_id)],
                )
                .await
                .map_err(|e| format!("{e:#}"))?;
            ensure(r.status == 400, || {
                format!("POST without token: HTTP {}", r.status)
            })?;
            error_shape(&r, &["invalid_request"])?;
            let g = ctx
                .http
                .request("GET", &url, Some(&ctx.a.identity), &[], "")
                .await
                .map_err(|e| format!("{e:#}"))?;
            ensure((400..500).contains(&g.status), || {
                format!("GET: HTTP {}", g.status)
            })
        }
        .await,
    )
}

async fn introspect_requires_auth(ctx: &mut Ctx) -> Outcome {
    let Some(url) = ctx.mtls_endpoint("introspection_endpoint") else {
        return Outcome::Skipped("no introspection_endpoint advertised".into());
    };
    outcome(
        async {
            let (_, at) = ctx.token_a().await?;
            match ctx.http.post_form(&url, None, &[("token", &at)]).await {
                Err(_) => Ok(()),
                Ok(r) => ensure(r.status == 401, || {
                    format!("unauthenticated introspection: HTTP {}", r.status)
                }),
            }
        }
        .await,
    )
}

async fn introspect_bound(ctx: &mut Ctx) -> Outcome {
    if ctx.mtls_endpoint("introspection_endpoint").is_none() {
        return Outcome::Skipped("no introspection_endpoint advertised".into());
    }
    outcome(
        async {
            let (_, at) = ctx.token_a().await?;
            let r = ctx.introspect(&ctx.a.clone(), &at).await?;
            let j = r.json();
            ensure(j.get("active") == Some(&Value::Bool(true)), || {
                format!("not active: {j}")
            })?;
            let want = sha256_b64url(ctx.a.identity.leaf_der());
            ensure(
                j.get("cnf")
                    .and_then(|c| c.get("x5t#S256"))
                    .and_then(Value::as_str)
                    == Some(want.as_str()),
                || format!("cnf missing or wrong in {j}"),
            )
        }
        .await,
    )
}

async fn introspect_unknown(ctx: &Ctx) -> Outcome {
    if ctx.mtls_endpoint("introspection_endpoint").is_none() {
        return Outcome::Skipped("no introspection_endpoint advertised".into());
    }
    outcome(
        async {
            let r = ctx.introspect(&ctx.a, "conformance-not-a-token").await?;
            ensure(r.status == 200, || format!("HTTP {}", r.status))?;
            ensure(r.json() == serde_json::json!({"active": false}), || {
                format!("got {}", r.json())
            })
        }
        .await,
    )
}

async fn revoke_cross(ctx: &mut Ctx) -> Outcome {
    let Some(url) = ctx.mtls_endpoint("revocation_endpoint") else {
        return Outcome::Skipped("no revocation_endpoint advertised".into());
    };
    let Some(b) = ctx.b.clone() else {
        return Outcome::Skipped("needs a second client (B) in the configuration".into());
    };
    if ctx.mtls_endpoint("introspection_endpoint").is_none() {
        return Outcome::Skipped("needs introspection to observe the effect".into());
    }
    outcome(
        async {
            let (_, at) = ctx.token_a().await?;
            let _ = ctx
                .http
                .post_form(
                    &url,
                    Some(&b.identity),
                    &[("token", &at), ("client_id", &b.client_id)],
                )
                .await
                .map_err(|e| format!("{e:#}"))?;
            let r = ctx.introspect(&ctx.a.clone(), &at).await?;
            ensure(r.json().get("active") == Some(&Value::Bool(true)), || {
                "client B revoked client A's token".into()
            })
        }
        .await,
    )
}

async fn revoke_own(ctx: &mut Ctx) -> Outcome {
    let Some(url) = ctx.mtls_endpoint("revocation_endpoint") else {
        return Outcome::Skipped("no revocation_endpoint advertised".into());
    };
    outcome(
        async {
            let a = ctx.a.clone();
            let r = ctx
                .http
                .post_form(
                    &url,
                    Some(&a.identity),
                    &[
                        ("token", "conformance-garbage"),
                        ("client_id", &a.client_id),
                    ],
                )
                .await
                .map_err(|e| format!("{e:#}"))?;
            ensure(r.status == 200, || {
                format!("revoking an unknown token: HTTP {}", r.status)
            })?;
            // a fresh token, so that the shared one stays usable
            let t = ctx.token_for(&a).await?;
            let at = t
                .json()
                .get("access_token")
                .and_then(Value::as_str)
                .ok_or("no token")?
                .to_owned();
            let r = ctx
                .http
                .post_form(
                    &url,
                    Some(&a.identity),
                    &[("token", &at), ("client_id", &a.client_id)],
                )
                .await
                .map_err(|e| format!("{e:#}"))?;
            ensure(r.status == 200, || {
                format!("revoking own token: HTTP {}", r.status)
            })?;
            if ctx.mtls_endpoint("introspection_endpoint").is_some() {
                let r = ctx.introspect(&a, &at).await?;
                ensure(r.json().get("active") == Some(&Value::Bool(false)), || {
                    format!("revoked token still active: {}", r.json())
                })?;
            }
            Ok(())
        }
        .await,
    )
}

async fn tls13(ctx: &Ctx) -> Result<(), String> {
    let p = TlsParams {
        versions: Some(vec![&rustls::version::TLS13]),
        ..TlsParams::default()
    };
    ctx.http
        .handshake(&ctx.token_endpoint()?, Some(&ctx.a.identity), &p)
        .await
        .map(|_| ())
        .map_err(|e| format!("TLS 1.3 handshake failed: {e:#}"))
}

async fn tls13_preferred(ctx: &Ctx) -> Result<(), String> {
    let v = ctx
        .http
        .handshake(
            &ctx.token_endpoint()?,
            Some(&ctx.a.identity),
            &TlsParams::default(),
        )
        .await
        .map_err(|e| format!("{e:#}"))?;
    ensure(v == rustls::ProtocolVersion::TLSv1_3, || {
        format!("negotiated {v:?}")
    })
}

async fn tls12_bcp195(ctx: &Ctx) -> Result<(), String> {
    use rustls::crypto::aws_lc_rs::cipher_suite as cs;
    let mut ok = Vec::new();
    for s in [
        cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ] {
        let p = TlsParams {
            suites: Some(vec![s]),
            versions: Some(vec![&rustls::version::TLS12]),
        };
        if ctx
            .http
            .handshake(&ctx.token_endpoint()?, Some(&ctx.a.identity), &p)
            .await
            .is_ok()
        {
            ok.push(format!("{:?}", s.suite()));
        }
    }
    ensure(!ok.is_empty(), || {
        "no TLS 1.2 BCP 195 suite is accepted".into()
    })
}

async fn tls_insecure(ctx: &Ctx) -> Outcome {
    let Ok(url) = ctx.token_endpoint() else {
        return Outcome::Fail("no token endpoint".into());
    };
    let Ok((host, port, _)) = crate::http::split_url(&url) else {
        return Outcome::Fail("bad token endpoint URL".into());
    };
    let probes: &[(&str, &[&str])] = &[
        ("TLS 1.0", &["-tls1", "-cipher", "DEFAULT@SECLEVEL=0"]),
        ("TLS 1.1", &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"]),
        (
            "ECDHE-ECDSA-AES128-SHA (CBC)",
            &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA"],
        ),
        (
            "ECDHE-RSA-AES128-SHA (CBC)",
            &["-tls1_2", "-cipher", "ECDHE-RSA-AES128-SHA"],
        ),
        (
            "ECDHE-ECDSA-AES128-SHA256 (CBC)",
            &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA256"],
        ),
        (
            "AES128-GCM-SHA256 (RSA kx)",
            &["-tls1_2", "-cipher", "AES128-GCM-SHA256"],
        ),
        (
            "DHE-RSA-AES128-GCM-SHA256",
            &["-tls1_2", "-cipher", "DHE-RSA-AES128-GCM-SHA256"],
        ),
    ];
    let mut accepted = Vec::new();
    for (name, args) in probes {
        let connect = format!("{host}:{port}");
        let mut cmd = tokio::process::Command::new("openssl");
        cmd.args(["s_client", "-connect", &connect, "-servername", &host])
            .args(*args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let out = match tokio::time::timeout(Duration::from_secs(10), cmd.output()).await {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => return Outcome::Skipped(format!("openssl CLI not available: {e}")),
            Err(_) => return Outcome::Fail(format!("openssl s_client {name} timed out")),
        };
        let text = String::from_utf8_lossy(&out.stdout);
        if text.contains("Cipher is ") && !text.contains("Cipher is (NONE)") {
            accepted.push(*name);
        }
    }
    if accepted.is_empty() {
        Outcome::Pass
    } else {
        Outcome::Fail(format!("accepted: {}", accepted.join(", ")))
    }
}
