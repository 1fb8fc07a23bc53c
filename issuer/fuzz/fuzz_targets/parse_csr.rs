//! CSR parsing and proof-of-possession checking must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kairos_issuer::VerifiedCsr::from_der(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = kairos_issuer::VerifiedCsr::from_pem(s);
    }
});
