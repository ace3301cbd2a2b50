//! Times passive authentication of the real EF.SODs in `../shared/icao`
//! (the SOD's signature and the document signer's chain to a CSCA from the
//! German and Dutch master lists), without criterion:
//!
//! ```text
//! cargo run --release -p ipseity-document --example passive_auth_timing
//! ```
//!
//! Loading the master lists (their own signatures verified) is timed apart:
//! a service does it once at start-up. Target: at most 5 ms a SOD.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ipseity_document::passive::{authenticate, PassiveAuthInput, TrustStore};

const ROUNDS: u32 = 50;

fn main() {
    let icao = std::env::var_os("IPSEITY_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
        .join("icao");
    if !icao.join("vectors.json").is_file() {
        assert!(
            std::env::var_os("IPSEITY_REQUIRE_SHARED").is_none(),
            "IPSEITY_REQUIRE_SHARED is set but {} is missing",
            icao.display()
        );
        eprintln!("skipped: no ICAO vectors at {}", icao.display());
        return;
    }
    let read = |rel: &str| std::fs::read(icao.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let start = Instant::now();
    let mut trust = TrustStore::new();
    for ml in [
        "files/cms/master_list/DE_ML_2026-05-28-08-28-45.ml",
        "files/cms/master_list/NL_ML_2026-07-22.ml",
    ] {
        trust.add_master_list(&read(ml)).expect(ml);
    }
    println!(
        "master lists: {} CSCA certificates loaded and verified in {:.1} ms",
        trust.len(),
        start.elapsed().as_secs_f64() * 1e3
    );
    let now = 1_796_083_200;
    let mut worst = 0f64;
    let mut total = 0f64;
    let countries = [
        "at", "au", "cn", "de", "fi", "fr", "my", "nz", "ph", "ru", "sg", "uk", "us",
    ];
    for cc in countries {
        let sod = read(&format!("vectors/sod/sod_{cc}.bin"));
        let input = PassiveAuthInput {
            sod: &sod,
            data_groups: &[],
            trust: Some(&trust),
            crl: None,
            now,
        };
        assert!(authenticate(&input).passed(), "{cc}");
        let t = Instant::now();
        for _ in 0..ROUNDS {
            std::hint::black_box(authenticate(std::hint::black_box(&input)));
        }
        let ms = t.elapsed().as_secs_f64() * 1e3 / f64::from(ROUNDS);
        let r = authenticate(&input);
        println!(
            "{cc}: {ms:.3} ms  (SOD {:?} by {}, DS certificate by {})",
            r.signature_scheme.map(|s| s.hash()),
            r.document_signer.map(|s| s.key).unwrap_or_default(),
            r.csca.map(|s| s.key).unwrap_or_default(),
        );
        worst = worst.max(ms);
        total += ms;
    }
    println!(
        "mean {:.3} ms, worst {worst:.3} ms a SOD over {} SODs ({ROUNDS} rounds each; target 5 ms)",
        total / countries.len() as f64,
        countries.len()
    );
}
