//! PSD2 QCStatement (ETSI TS 119 495 Annex A) inside `id-pe-qcStatements` (RFC 3739).

use yasna::models::ObjectIdentifier;

use crate::error::Psd2Error;

/// `id-pe-qcStatements`.
pub const QC_STATEMENTS_OID: &str = "1.3.6.1.5.5.7.1.3";
const PSD2_STATEMENT: &[u64] = &[0, 4, 0, 19495, 2];
const ROLES_ARC: &[u64] = &[0, 4, 0, 19495, 1];
const MAX_ROLES: usize = 16;
const MAX_NAME: usize = 256;

/// A PSD2 role of a payment service provider.
#[derive(Clone, PartialEq, Eq, Debug, Hash)]
#[non_exhaustive]
pub enum Psd2Role {
    /// `PSP_AS`, account servicing (a bank).
    AccountServicing,
    /// `PSP_PI`, payment initiation.
    PaymentInitiation,
    /// `PSP_AI`, account information.
    AccountInformation,
    /// `PSP_IC`, issuing of card-based payment instruments.
    CardIssuing,
    /// A role of a later edition of TS 119 495 (e.g. `PSP_CB`, `VOP_RS`), kept by name.
    Other {
        /// The role OID, dotted.
        oid: String,
        /// The role name.
        name: String,
    },
}

impl Psd2Role {
    /// The role's name as written in certificates (`PSP_AI`, …).
    pub fn name(&self) -> &str {
        match self {
            Psd2Role::AccountServicing => "PSP_AS",
            Psd2Role::PaymentInitiation => "PSP_PI",
            Psd2Role::AccountInformation => "PSP_AI",
            Psd2Role::CardIssuing => "PSP_IC",
            Psd2Role::Other { name, .. } => name,
        }
    }
}

/// The decoded PSD2 statement.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Psd2QcStatement {
    /// Roles of the PSP (at least one).
    pub roles: Vec<Psd2Role>,
    /// Name of the national competent authority.
    pub nca_name: String,
    /// Id of the national competent authority, `CC-NCA` (e.g. `GB-FCA`).
    pub nca_id: String,
}

fn role_from(oid: &ObjectIdentifier, name: String) -> Result<Psd2Role, Psd2Error> {
    let c = oid.components();
    let (arc, last) = match c.split_last() {
        Some((last, arc)) => (arc, *last),
        None => return Err(Psd2Error::Malformed),
    };
    if arc != ROLES_ARC {
        return Err(Psd2Error::RoleNameMismatch);
    }
    let known = match last {
        1 => Some((Psd2Role::AccountServicing, "PSP_AS")),
        2 => Some((Psd2Role::PaymentInitiation, "PSP_PI")),
        3 => Some((Psd2Role::AccountInformation, "PSP_AI")),
        4 => Some((Psd2Role::CardIssuing, "PSP_IC")),
        _ => None,
    };
    match known {
        Some((role, expected)) if name == expected => Ok(role),
        Some(_) => Err(Psd2Error::RoleNameMismatch),
        None => Ok(Psd2Role::Other {
            oid: c.iter().map(u64::to_string).collect::<Vec<_>>().join("."),
            name,
        }),
    }
}

fn valid_nca_id(s: &str) -> bool {
    let Some((cc, nca)) = s.split_once('-') else {
        return false;
    };
    cc.len() == 2
        && cc.bytes().all(|b| b.is_ascii_uppercase())
        && (2..=8).contains(&nca.len())
        && nca.bytes().all(|b| b.is_ascii_uppercase())
}

/// Decodes a `PSD2QcType` (the statementInfo of `0.4.0.19495.2`).
pub fn parse_psd2_qc_type(der: &[u8]) -> Result<Psd2QcStatement, Psd2Error> {
    let (raw_roles, nca_name, nca_id) = yasna::parse_der(der, |r| {
        r.read_sequence(|r| {
            let mut roles = Vec::new();
            r.next().read_sequence_of(|r| {
                if roles.len() >= MAX_ROLES {
                    return Err(yasna::ASN1Error::new(yasna::ASN1ErrorKind::Invalid));
                }
                roles.push(r.read_sequence(|r| {
                    let oid = r.next().read_oid()?;
                    let name = r.next().read_utf8string()?;
                    Ok((oid, name))
                })?);
                Ok(())
            })?;
            let nca_name = r.next().read_utf8string()?;
            let nca_id = r.next().read_utf8string()?;
            Ok((roles, nca_name, nca_id))
        })
    })
    .map_err(|_| Psd2Error::Malformed)?;
    if raw_roles.is_empty() {
        return Err(Psd2Error::NoRole);
    }
    let roles = raw_roles
        .into_iter()
        .map(|(oid, name)| {
            if name.is_empty() || name.chars().count() > MAX_NAME {
                return Err(Psd2Error::Malformed);
            }
            role_from(&oid, name)
        })
        .collect::<Result<Vec<_>, _>>()?;
    if nca_name.is_empty() || nca_name.chars().count() > MAX_NAME {
        return Err(Psd2Error::BadNcaName);
    }
    if !valid_nca_id(&nca_id) {
        return Err(Psd2Error::BadNcaId);
    }
    Ok(Psd2QcStatement {
        roles,
        nca_name,
        nca_id,
    })
}

/// Reads the `id-pe-qcStatements` extension value and returns the PSD2 statement, if any.
pub fn parse_qc_statements(der: &[u8]) -> Result<Option<Psd2QcStatement>, Psd2Error> {
    let psd2_oid = ObjectIdentifier::from_slice(PSD2_STATEMENT);
    let statements: Vec<(ObjectIdentifier, Option<Vec<u8>>)> = yasna::parse_der(der, |r| {
        let mut v = Vec::new();
        r.read_sequence_of(|r| {
            if v.len() >= 32 {
                return Err(yasna::ASN1Error::new(yasna::ASN1ErrorKind::Invalid));
            }
            v.push(r.read_sequence(|r| {
                let oid = r.next().read_oid()?;
                let info = r.read_optional(|r| r.read_der())?;
                Ok((oid, info))
            })?);
            Ok(())
        })?;
        Ok(v)
    })
    .map_err(|_| Psd2Error::Malformed)?;
    let mut found = None;
    for (oid, info) in statements {
        if oid == psd2_oid {
            if found.is_some() {
                return Err(Psd2Error::Malformed);
            }
            let info = info.ok_or(Psd2Error::Malformed)?;
            found = Some(parse_psd2_qc_type(&info)?);
        }
    }
    Ok(found)
}

/// Builds a `id-pe-qcStatements` value holding one PSD2 statement (for test PKIs and tools).
pub fn encode_qc_statements(stmt: &Psd2QcStatement) -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_sequence(|w| {
                w.next()
                    .write_oid(&ObjectIdentifier::from_slice(PSD2_STATEMENT));
                w.next().write_sequence(|w| {
                    w.next().write_sequence(|w| {
                        for role in &stmt.roles {
                            let oid = match role {
                                Psd2Role::AccountServicing => vec![0, 4, 0, 19495, 1, 1],
                                Psd2Role::PaymentInitiation => vec![0, 4, 0, 19495, 1, 2],
                                Psd2Role::AccountInformation => vec![0, 4, 0, 19495, 1, 3],
                                Psd2Role::CardIssuing => vec![0, 4, 0, 19495, 1, 4],
                                Psd2Role::Other { oid, .. } => {
                                    oid.split('.').filter_map(|a| a.parse().ok()).collect()
                                }
                            };
                            w.next().write_sequence(|w| {
                                w.next().write_oid(&ObjectIdentifier::from_slice(&oid));
                                w.next().write_utf8_string(role.name());
                            });
                        }
                    });
                    w.next().write_utf8_string(&stmt.nca_name);
                    w.next().write_utf8_string(&stmt.nca_id);
                });
            });
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTOR: &str = "30570606040081982702304d302630110607040081982701030c065053505f414930110607040081982701020c065053505f50490c1b46696e616e6369616c20436f6e6475637420417574686f726974790c0647422d464341";

    fn wrap(stmt: &[u8]) -> Vec<u8> {
        // SEQUENCE OF QCStatement holding the standards.md test vector (a QCStatement).
        let mut v = vec![0x30, u8::try_from(stmt.len()).unwrap()];
        v.extend_from_slice(stmt);
        v
    }

    #[test]
    fn decodes_the_standards_vector() {
        let stmt = hex::decode(VECTOR).unwrap();
        let p = parse_qc_statements(&wrap(&stmt)).unwrap().unwrap();
        assert_eq!(
            p.roles,
            vec![Psd2Role::AccountInformation, Psd2Role::PaymentInitiation]
        );
        assert_eq!(p.nca_name, "Financial Conduct Authority");
        assert_eq!(p.nca_id, "GB-FCA");
        // and our encoder writes exactly those bytes
        assert_eq!(encode_qc_statements(&p), wrap(&stmt));
    }

    #[test]
    fn truncated_vector_is_rejected() {
        let stmt = hex::decode(VECTOR).unwrap();
        let cut = &stmt[..stmt.len() - 1];
        let mut v = vec![0x30, u8::try_from(cut.len()).unwrap()];
        v.extend_from_slice(cut);
        assert!(parse_qc_statements(&v).is_err());
    }

    #[test]
    fn role_name_must_match_and_ncaid_is_checked() {
        let mut p = parse_qc_statements(&wrap(&hex::decode(VECTOR).unwrap()))
            .unwrap()
            .unwrap();
        p.nca_id = "gb-fca".into();
        assert_eq!(
            parse_qc_statements(&encode_qc_statements(&p)),
            Err(Psd2Error::BadNcaId)
        );
        p.nca_id = "GB-FCA".into();
        p.roles = vec![];
        assert_eq!(
            parse_qc_statements(&encode_qc_statements(&p)),
            Err(Psd2Error::NoRole)
        );
        // OID ...1.3 (PSP_AI) named PSP_PI
        let mut bad = hex::decode(VECTOR).unwrap();
        // first role name "PSP_AI" -> "PSP_PI": byte 'A' of the first "PSP_AI"
        let pos = bad.windows(6).position(|w| w == b"PSP_AI").unwrap();
        bad[pos + 4] = b'P';
        assert_eq!(
            parse_qc_statements(&wrap(&bad)),
            Err(Psd2Error::RoleNameMismatch)
        );
    }

    #[test]
    fn statements_without_psd2_give_none() {
        // QcCompliance only
        let v = yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_sequence(|w| {
                    w.next()
                        .write_oid(&ObjectIdentifier::from_slice(&[0, 4, 0, 1862, 1, 1]));
                });
            })
        });
        assert_eq!(parse_qc_statements(&v), Ok(None));
    }
}
