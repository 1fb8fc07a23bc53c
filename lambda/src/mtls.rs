//! The client certificate of an API Gateway mutual-TLS connection, as API Gateway passes it to
//! Lambda: `requestContext.identity.clientCert.clientCertPem` (REST API, payload 1.0; also REQUEST
//! authorizers) or `requestContext.authentication.clientCert.clientCertPem` (HTTP API, payload
//! 2.0).
//!
//! Only the PEM is read, and it is parsed once into the same [`ClientCertificate`] the standalone
//! TLS edge produces. The pre-rendered `subjectDN`, `issuerDN`, `serialNumber` and `validity`
//! strings next to it are never read: their formats vary, and everything they say is in the
//! certificate. Events without a `clientCert` (Function URLs, the default `execute-api`
//! endpoint, a custom domain without mTLS) carry no identity.

use kairos_authz::ClientCertificate;
use kairos_issuer::{CertError, PeerCertificate, pem_certificates};
use lambda_http::request::RequestContext;

/// Largest `clientCertPem` accepted (a leaf, possibly followed by intermediates).
pub const MAX_CLIENT_CERT_PEM: usize = 32 * 1024;

/// The `clientCertPem` could not be turned into a certificate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientCertError {
    /// Longer than [`MAX_CLIENT_CERT_PEM`].
    #[error("client certificate PEM is longer than {MAX_CLIENT_CERT_PEM} bytes")]
    TooLarge,
    /// Not PEM, no `CERTIFICATE` block, or not a parseable X.509 certificate.
    #[error("client certificate is unreadable: {0}")]
    Unreadable(#[source] CertError),
}

/// Where API Gateway put the client certificate PEM in a proxy request, if it did.
pub fn client_cert_pem(ctx: &RequestContext) -> Option<&str> {
    match ctx {
        // REST API: not typed in aws_lambda_events; kept by the `catch-all-fields` feature
        RequestContext::ApiGatewayV1(c) => c
            .identity
            .other
            .get("clientCert")?
            .get("clientCertPem")?
            .as_str(),
        RequestContext::ApiGatewayV2(c) => c
            .authentication
            .as_ref()?
            .client_cert
            .as_ref()?
            .client_cert_pem
            .as_deref(),
        _ => None,
    }
}

/// Parses a `clientCertPem` value: the first certificate is the leaf, the others are
/// intermediates. Blocks other than `CERTIFICATE` are ignored.
pub fn parse_client_cert_pem(pem_text: &str) -> Result<ClientCertificate, ClientCertError> {
    let (leaf, intermediates) = parse_chain(pem_text)?;
    Ok(ClientCertificate::new(leaf, intermediates))
}

/// Parses a `clientCertPem` value into the leaf and the intermediates' DER.
pub fn parse_chain(pem_text: &str) -> Result<(PeerCertificate, Vec<Vec<u8>>), ClientCertError> {
    if pem_text.len() > MAX_CLIENT_CERT_PEM {
        return Err(ClientCertError::TooLarge);
    }
    let mut ders = pem_certificates(pem_text.as_bytes())
        .map_err(ClientCertError::Unreadable)?
        .into_iter();
    let leaf = ders
        .next()
        .ok_or(ClientCertError::Unreadable(CertError::Pem))?;
    let leaf = PeerCertificate::from_der(&leaf).map_err(ClientCertError::Unreadable)?;
    Ok((leaf, ders.collect()))
}

/// The verified client certificate of the request, if API Gateway passed one.
pub fn client_certificate(
    ctx: &RequestContext,
) -> Result<Option<ClientCertificate>, ClientCertError> {
    client_cert_pem(ctx).map(parse_client_cert_pem).transpose()
}

/// The API Gateway stage of the request, when it prefixes paths (`$default` does not).
pub fn stage(ctx: &RequestContext) -> Option<&str> {
    let stage = match ctx {
        RequestContext::ApiGatewayV1(c) => c.stage.as_deref(),
        RequestContext::ApiGatewayV2(c) => c.stage.as_deref(),
        _ => None,
    }?;
    (!stage.is_empty() && stage != "$default").then_some(stage)
}

/// `path` without the `/{stage}` prefix that `lambda_http` adds to REST API paths (and that HTTP
/// API named stages carry), so that the router sees `/token` whether or not
/// `AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH` is set.
pub fn strip_stage<'a>(path: &'a str, stage: &str) -> &'a str {
    match path.strip_prefix('/').and_then(|p| p.strip_prefix(stage)) {
        Some("") => "/",
        Some(rest) if rest.starts_with('/') => rest,
        _ => path,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn stage_prefix_is_stripped_only_as_a_whole_segment() {
        assert_eq!(strip_stage("/prod/token", "prod"), "/token");
        assert_eq!(strip_stage("/prod", "prod"), "/");
        assert_eq!(
            strip_stage("/production/token", "prod"),
            "/production/token"
        );
        assert_eq!(strip_stage("/token", "prod"), "/token");
    }

    #[test]
    fn garbage_and_oversized_pem_are_refused() {
        assert!(matches!(
            parse_client_cert_pem("not a pem"),
            Err(ClientCertError::Unreadable(_))
        ));
        let huge = "A".repeat(MAX_CLIENT_CERT_PEM + 1);
        assert!(matches!(
            parse_client_cert_pem(&huge),
            Err(ClientCertError::TooLarge)
        ));
        let bogus = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(parse_client_cert_pem(bogus).is_err());
    }
}
