//! Peer-certificate parsing (DER and PEM) and RFC 4514 DN parsing must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kairos_issuer::PeerCertificate::from_der(data);
    let _ = kairos_issuer::PeerCertificate::from_pem(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = kairos_issuer::CanonicalDn::parse_rfc4514(s);
    }
});
