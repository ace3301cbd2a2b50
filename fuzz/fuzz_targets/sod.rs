//! Fuzz target: EF.SOD, certificates, CRLs and master lists from arbitrary
//! bytes. Passive authentication must return a report, never panic, and never
//! pass on bytes the fuzzer made up.
#![no_main]

use ipseity_document::passive::{authenticate, PassiveAuthInput, Sod, TrustStore};
use ipseity_document::pki::{Certificate, Crl};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Sod::parse(data);
    let _ = Certificate::from_der(data);
    let _ = Crl::parse(data);
    let mut trust = TrustStore::new();
    let _ = trust.add_master_list(data);
    let _ = trust.add_certificates(data);
    let (dg, rest) = data.split_at(data.len().min(16));
    let report = authenticate(&PassiveAuthInput {
        sod: rest,
        data_groups: &[(1, dg)],
        trust: Some(&trust),
        crl: Some(data),
        now: 1_700_000_000,
    });
    // The fuzzer cannot forge a signature chain to a CSCA it also made up
    // from the same bytes and have a DG1 hash match: a pass here would be a bug
    // unless the trust store itself came from these bytes.
    if trust.is_empty() {
        assert!(!report.passed());
    }
});
