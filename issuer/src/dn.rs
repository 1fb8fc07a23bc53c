//! Distinguished names: RFC 4514 rendering and predictable matching (RFC 4517
//! `distinguishedNameMatch`, RFC 8705 §2.1.2).
//!
//! Matching rules, pinned by tests:
//! - the registered value is an RFC 4514 string, so its **first** RDN is the certificate's
//!   **last** (most specific) one; the same RDNs in another order do not match;
//! - attribute types are compared by OID (`CN`, `cn`, `2.5.4.3` and `OID.2.5.4.3` are the same);
//! - string values are compared with `caseIgnoreMatch` semantics: leading/trailing space removed,
//!   inner runs of space folded to one, Unicode lower-case; so `"CN=client-a, O=Test"` matches
//!   `"cn=Client-A,o=test"`;
//! - `#hex` values (RFC 4514 §2.4, used for `organizationIdentifier` as `2.5.4.97=#0c…`) are
//!   decoded; if they are a string type their text is compared as above (so a UTF8String and a
//!   PrintableString with the same text match), otherwise the DER bytes must be equal.
//! - the friendly name `organizationIdentifier` is accepted for 2.5.4.97.

use std::fmt::{self, Write as _};

use x509_parser::der_parser::asn1_rs::{Any, Class, Tag, ToDer};
use x509_parser::x509::X509Name;

use crate::error::CertError;

/// Short names from RFC 4514 §3 plus the friendly names people register.
const NAMES: &[(&str, &str)] = &[
    ("CN", "2.5.4.3"),
    ("L", "2.5.4.7"),
    ("ST", "2.5.4.8"),
    ("O", "2.5.4.10"),
    ("OU", "2.5.4.11"),
    ("C", "2.5.4.6"),
    ("STREET", "2.5.4.9"),
    ("DC", "0.9.2342.19200300.100.1.25"),
    ("UID", "0.9.2342.19200300.100.1.1"),
];

/// Names accepted when parsing but never emitted (RFC 4514 §2.3: other types use the dotted OID).
const PARSE_ONLY_NAMES: &[(&str, &str)] = &[
    ("organizationIdentifier", "2.5.4.97"),
    ("serialNumber", "2.5.4.5"),
    ("emailAddress", "1.2.840.113549.1.9.1"),
    ("E", "1.2.840.113549.1.9.1"),
    ("SN", "2.5.4.4"),
    ("GN", "2.5.4.42"),
    ("title", "2.5.4.12"),
];

fn short_name(oid: &str) -> Option<&'static str> {
    NAMES.iter().find(|(_, o)| *o == oid).map(|(n, _)| *n)
}

fn oid_for_name(name: &str) -> Option<&'static str> {
    NAMES
        .iter()
        .chain(PARSE_ONLY_NAMES)
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, o)| *o)
}

/// One attribute of a name: its type (dotted OID) and value.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NameAttribute {
    oid: String,
    /// The value as DER (tag, length, contents).
    der: Vec<u8>,
    /// The text when the value is a string type.
    text: Option<String>,
}

impl NameAttribute {
    /// The attribute type as a dotted OID, e.g. `2.5.4.3`.
    pub fn oid(&self) -> &str {
        &self.oid
    }
    /// The value's text, when it is a string type.
    pub fn text(&self) -> Option<&str> {
        self.text.as_deref()
    }
    /// The value as DER.
    pub fn value_der(&self) -> &[u8] {
        &self.der
    }
}

/// A distinguished name read from a certificate, in certificate (ASN.1) order.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct DistinguishedName {
    rdns: Vec<Vec<NameAttribute>>,
}

/// A name in canonical form for matching: RDNs in certificate order, each a sorted list of
/// `(oid, normalised value)`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct CanonicalDn(Vec<Vec<(String, CanonicalValue)>>);

#[derive(Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
enum CanonicalValue {
    Text(String),
    Der(Vec<u8>),
}

fn string_text(tag: Tag, data: &[u8]) -> Option<String> {
    match tag {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::NumericString => {
            std::str::from_utf8(data).ok().map(str::to_owned)
        }
        // TeletexString: treat as Latin-1, which is what issuers actually put there.
        Tag::TeletexString => Some(data.iter().map(|&b| char::from(b)).collect()),
        Tag::BmpString => {
            if !data.len().is_multiple_of(2) {
                return None;
            }
            let units: Vec<u16> = data
                .chunks_exact(2)
                .map(|c| {
                    u16::from_be_bytes([
                        c.first().copied().unwrap_or(0),
                        c.get(1).copied().unwrap_or(0),
                    ])
                })
                .collect();
            String::from_utf16(&units).ok()
        }
        Tag::UniversalString => {
            if !data.len().is_multiple_of(4) {
                return None;
            }
            data.chunks_exact(4)
                .map(|c| {
                    let mut b = [0u8; 4];
                    b.copy_from_slice(c);
                    char::from_u32(u32::from_be_bytes(b))
                })
                .collect()
        }
        _ => None,
    }
}

fn any_text(any: &Any<'_>) -> Option<String> {
    if any.class() != Class::Universal {
        return None;
    }
    string_text(any.tag(), any.data)
}

fn normalise_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
    out
}

impl DistinguishedName {
    /// Reads a name from x509-parser's view of it.
    pub(crate) fn from_x509(name: &X509Name<'_>) -> Result<Self, CertError> {
        let mut rdns = Vec::new();
        for rdn in name.iter() {
            let mut attrs = Vec::new();
            for atv in rdn.iter() {
                let any = atv.attr_value();
                let der = any.to_der_vec().map_err(|_| CertError::BadName)?;
                attrs.push(NameAttribute {
                    oid: atv.attr_type().to_id_string(),
                    der,
                    text: any_text(any),
                });
            }
            rdns.push(attrs);
        }
        Ok(Self { rdns })
    }

    /// The RDNs in certificate order.
    pub fn rdns(&self) -> &[Vec<NameAttribute>] {
        &self.rdns
    }

    /// True when the name has no RDN.
    pub fn is_empty(&self) -> bool {
        self.rdns.is_empty()
    }

    /// The first value of an attribute type (dotted OID), in certificate order.
    pub fn first_text(&self, oid: &str) -> Option<&str> {
        self.rdns
            .iter()
            .flatten()
            .find(|a| a.oid == oid)
            .and_then(|a| a.text.as_deref())
    }

    /// The common name, if any.
    pub fn common_name(&self) -> Option<&str> {
        self.first_text("2.5.4.3")
    }

    /// The `organizationIdentifier` (2.5.4.97), if any.
    pub fn organization_identifier(&self) -> Option<&str> {
        self.first_text("2.5.4.97")
    }

    /// The RFC 4514 string: last RDN first, `,` between RDNs, `+` inside one, short names for
    /// the RFC 4514 §3 types and `dotted.oid=#hex-of-DER` for every other type.
    pub fn to_rfc4514(&self) -> String {
        let mut out = String::new();
        for (i, rdn) in self.rdns.iter().rev().enumerate() {
            if i > 0 {
                out.push(',');
            }
            for (j, a) in rdn.iter().enumerate() {
                if j > 0 {
                    out.push('+');
                }
                match (short_name(&a.oid), &a.text) {
                    (Some(n), Some(t)) => {
                        out.push_str(n);
                        out.push('=');
                        escape_value(t, &mut out);
                    }
                    _ => {
                        out.push_str(&a.oid);
                        out.push_str("=#");
                        out.push_str(&hex::encode(&a.der));
                    }
                }
            }
        }
        out
    }

    /// The canonical form used for matching.
    pub fn canonical(&self) -> CanonicalDn {
        CanonicalDn(
            self.rdns
                .iter()
                .map(|rdn| {
                    let mut v: Vec<(String, CanonicalValue)> = rdn
                        .iter()
                        .map(|a| {
                            let val = match &a.text {
                                Some(t) => CanonicalValue::Text(normalise_text(t)),
                                None => CanonicalValue::Der(a.der.clone()),
                            };
                            (a.oid.clone(), val)
                        })
                        .collect();
                    v.sort();
                    v
                })
                .collect(),
        )
    }

    /// Does this name match a registered RFC 4514 value?
    pub fn matches(&self, registered: &CanonicalDn) -> bool {
        self.canonical() == *registered
    }
}

impl fmt::Display for DistinguishedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc4514())
    }
}

fn escape_value(v: &str, out: &mut String) {
    let n = v.chars().count();
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, '"' | '+' | ',' | ';' | '<' | '>' | '\\')
            || (i == 0 && (c == ' ' || c == '#'))
            || (i + 1 == n && c == ' ');
        if c == '\0' {
            out.push_str("\\00");
        } else if c.is_control() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "\\{b:02x}");
            }
        } else {
            if special {
                out.push('\\');
            }
            out.push(c);
        }
    }
}

/// A registered RFC 4514 string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an RFC 4514 distinguished name: {0}")]
pub struct DnParseError(pub &'static str);

/// Longest RFC 4514 string accepted.
pub const MAX_DN_STRING: usize = 4096;

impl CanonicalDn {
    /// Parses an RFC 4514 string (as registered in `tls_client_auth_subject_dn`).
    pub fn parse_rfc4514(s: &str) -> Result<Self, DnParseError> {
        if s.len() > MAX_DN_STRING {
            return Err(DnParseError("too long"));
        }
        if s.trim().is_empty() {
            return Err(DnParseError("empty"));
        }
        let mut p = Parser {
            chars: s.chars().collect(),
            pos: 0,
        };
        let mut rdns = Vec::new();
        loop {
            let mut rdn = Vec::new();
            loop {
                p.skip_spaces();
                let oid = p.attr_type()?;
                p.skip_spaces();
                if !p.eat('=') {
                    return Err(DnParseError("expected '='"));
                }
                p.skip_spaces();
                let val = p.attr_value()?;
                rdn.push((oid, val));
                p.skip_spaces();
                if p.eat('+') {
                    continue;
                }
                break;
            }
            rdn.sort();
            rdns.push(rdn);
            if p.eat(',') || p.eat(';') {
                continue;
            }
            if p.at_end() {
                break;
            }
            return Err(DnParseError("unexpected character"));
        }
        rdns.reverse();
        Ok(CanonicalDn(rdns))
    }
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }
    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn skip_spaces(&mut self) {
        while self.peek() == Some(' ') {
            self.pos += 1;
        }
    }
    fn attr_type(&mut self) -> Result<String, DnParseError> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                self.pos += 1;
            } else {
                break;
            }
        }
        let t: String = self
            .chars
            .get(start..self.pos)
            .unwrap_or(&[])
            .iter()
            .collect();
        if t.is_empty() {
            return Err(DnParseError("empty attribute type"));
        }
        let t = t
            .strip_prefix("OID.")
            .or_else(|| t.strip_prefix("oid."))
            .unwrap_or(&t)
            .to_owned();
        if t.starts_with(|c: char| c.is_ascii_digit()) {
            let ok = t
                .split('.')
                .all(|arc| !arc.is_empty() && arc.bytes().all(|b| b.is_ascii_digit()))
                && t.contains('.');
            if !ok {
                return Err(DnParseError("bad dotted OID"));
            }
            return Ok(t);
        }
        oid_for_name(&t)
            .map(str::to_owned)
            .ok_or(DnParseError("unknown attribute type name"))
    }

    fn attr_value(&mut self) -> Result<CanonicalValue, DnParseError> {
        if self.eat('#') {
            let start = self.pos;
            while self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
                self.pos += 1;
            }
            let h: String = self
                .chars
                .get(start..self.pos)
                .unwrap_or(&[])
                .iter()
                .collect();
            let der = hex::decode(&h).map_err(|_| DnParseError("bad #hex value"))?;
            return Ok(der_to_canonical(der));
        }
        if self.eat('"') {
            // RFC 2253 quoted form, accepted for old registrations.
            let mut bytes = Vec::new();
            loop {
                match self.peek() {
                    None => return Err(DnParseError("unterminated quote")),
                    Some('"') => {
                        self.pos += 1;
                        break;
                    }
                    Some('\\') => {
                        self.pos += 1;
                        self.escape(&mut bytes)?;
                    }
                    Some(c) => {
                        self.pos += 1;
                        push_char(&mut bytes, c);
                    }
                }
            }
            let s = String::from_utf8(bytes).map_err(|_| DnParseError("value is not UTF-8"))?;
            return Ok(CanonicalValue::Text(normalise_text(&s)));
        }
        let mut bytes = Vec::new();
        while let Some(c) = self.peek() {
            match c {
                ',' | '+' | ';' => break,
                '\\' => {
                    self.pos += 1;
                    self.escape(&mut bytes)?;
                }
                '"' | '<' | '>' => return Err(DnParseError("unescaped special character")),
                _ => {
                    self.pos += 1;
                    push_char(&mut bytes, c);
                }
            }
        }
        let s = String::from_utf8(bytes).map_err(|_| DnParseError("value is not UTF-8"))?;
        Ok(CanonicalValue::Text(normalise_text(&s)))
    }

    fn escape(&mut self, bytes: &mut Vec<u8>) -> Result<(), DnParseError> {
        let c = self.peek().ok_or(DnParseError("dangling escape"))?;
        if c.is_ascii_hexdigit() {
            let d = self
                .chars
                .get(self.pos + 1)
                .copied()
                .filter(char::is_ascii_hexdigit)
                .ok_or(DnParseError("bad hex escape"))?;
            let v = u8::from_str_radix(&format!("{c}{d}"), 16)
                .map_err(|_| DnParseError("bad hex escape"))?;
            bytes.push(v);
            self.pos += 2;
        } else {
            push_char(bytes, c);
            self.pos += 1;
        }
        Ok(())
    }
}

fn push_char(bytes: &mut Vec<u8>, c: char) {
    let mut buf = [0u8; 4];
    bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

fn der_to_canonical(der: Vec<u8>) -> CanonicalValue {
    use x509_parser::der_parser::asn1_rs::FromDer;
    match Any::from_der(&der) {
        Ok(([], any)) => match any_text(&any) {
            Some(t) => CanonicalValue::Text(normalise_text(&t)),
            None => CanonicalValue::Der(der.clone()),
        },
        _ => CanonicalValue::Der(der),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises() {
        let a = CanonicalDn::parse_rfc4514("CN=client-a, O=Test, C=GB").unwrap();
        let b = CanonicalDn::parse_rfc4514("cn=Client-A,o=test,c=gb").unwrap();
        let c = CanonicalDn::parse_rfc4514("2.5.4.3=client-a,OID.2.5.4.10=Test,C=GB").unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        let reversed = CanonicalDn::parse_rfc4514("C=GB,O=Test,CN=client-a").unwrap();
        assert_ne!(a, reversed);
    }

    #[test]
    fn hex_values_compare_by_text() {
        let utf8 =
            CanonicalDn::parse_rfc4514("2.5.4.97=#0c1050534447422d4643412d313233343536").unwrap();
        let printable =
            CanonicalDn::parse_rfc4514("2.5.4.97=#131050534447422d4643412d313233343536").unwrap();
        let friendly =
            CanonicalDn::parse_rfc4514("organizationIdentifier=PSDGB-FCA-123456").unwrap();
        assert_eq!(utf8, printable);
        assert_eq!(utf8, friendly);
    }

    #[test]
    fn escapes() {
        let a = CanonicalDn::parse_rfc4514(r"CN=a\,b\2Bc").unwrap();
        let b = CanonicalDn::parse_rfc4514(r#"CN="a,b+c""#).unwrap();
        assert_eq!(a, b);
        let mut s = String::new();
        escape_value(" a,b+c ", &mut s);
        assert_eq!(s, r"\ a\,b\+c\ ");
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "", "CN", "=x", "CN=a,", "XX=a", "1.2.=a", "CN=#zz", "CN=\"x", "CN=a<b",
        ] {
            assert!(CanonicalDn::parse_rfc4514(bad).is_err(), "{bad:?}");
        }
        assert!(CanonicalDn::parse_rfc4514(&"CN=a,".repeat(2000)).is_err());
    }
}
