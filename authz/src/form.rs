//! Strict `application/x-www-form-urlencoded` parsing for OAuth endpoints.

use std::collections::HashMap;

use axum::http::{HeaderMap, header};

use crate::error::OAuthError;

/// Most parameters accepted in one request.
const MAX_PARAMS: usize = 32;

/// Checks the content type and parses the body; a repeated parameter is an error
/// (RFC 6749 §3.1: "Request and response parameters MUST NOT be included more than once").
pub fn parse_form(headers: &HeaderMap, body: &[u8]) -> Result<HashMap<String, String>, OAuthError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request(
            "content type must be application/x-www-form-urlencoded",
        ));
    }
    let mut out = HashMap::new();
    for (k, v) in form_urlencoded::parse(body) {
        if out.len() >= MAX_PARAMS {
            return Err(OAuthError::invalid_request("too many parameters"));
        }
        if out.insert(k.into_owned(), v.into_owned()).is_some() {
            return Err(OAuthError::invalid_request("a parameter is repeated"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(ct: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, ct.parse().unwrap());
        h
    }

    #[test]
    fn parses_and_rejects() {
        let f = parse_form(
            &h("application/x-www-form-urlencoded; charset=UTF-8"),
            b"grant_type=client_credentials&client_id=a%20b",
        )
        .unwrap();
        assert_eq!(f["client_id"], "a b");
        assert!(parse_form(&h("application/json"), b"{}").is_err());
        assert!(parse_form(&h("application/x-www-form-urlencoded"), b"a=1&a=2").is_err());
        assert!(parse_form(&HeaderMap::new(), b"a=1").is_err());
    }
}
