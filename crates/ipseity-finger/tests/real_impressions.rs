//! The pipeline on real impressions: the six FVC sample sets in `../shared/finger/fvc-dev`
//! (see its SOURCE.md), read from there and never copied into the repository. Skipped with
//! a message where that folder is absent (a user's clone); `IPSEITY_REQUIRE_SHARED=1`, as
//! in CI, turns the skip into a failure.
//!
//! What is held here are the targets that the pipeline meets, so that a change
//! that loses them fails: fewer than 2% of the impressions refused, each with a reason;
//! on every set (every cross-finger pair an impostor) an EER and an FNMR at FMR 1e-2 at or
//! below the better of NIST NBIS and SourceAFIS, whose stored scores for the same pairs are
//! summarised by the same code; the mean EER of the six at most 5.5%; each file's
//! resolution read from its header (one set is at 569 ppi); and the synthetic generator's
//! `sensor` setting predicting the sets' mean EER.

use std::path::{Path, PathBuf};

use ipseity_finger::extract::{extract, ExtractConfig};
use ipseity_finger::matcher::{self, MatcherConfig, Prepared};
use ipseity_finger::sample;
use ipseity_finger::synth::{impression, master, SynthConfig};
use ipseity_finger::FingerPosition;
use rayon::prelude::*;

const SETS: [(&str, u16); 6] = [
    ("fvc2000_db1b", 500),
    ("fvc2000_db2b", 500),
    ("fvc2000_db3b", 500),
    ("fvc2002_db1b", 500),
    ("fvc2002_db2b", 569),
    ("fvc2002_db3b", 500),
];

fn shared() -> Option<PathBuf> {
    let dir = std::env::var_os("IPSEITY_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let fvc = dir.join("finger/fvc-dev");
    if fvc.join("SOURCE.md").is_file() {
        return Some(fvc);
    }
    assert!(
        std::env::var_os("IPSEITY_REQUIRE_SHARED").is_none(),
        "IPSEITY_REQUIRE_SHARED is set but {} is missing",
        fvc.display()
    );
    eprintln!(
        "skipped: no real fingerprints at {} (set IPSEITY_SHARED_DIR)",
        fvc.display()
    );
    None
}

/// A peer's stored scores for one set (`kind,a,b,score`), summarised by our code: the
/// genuine pairs against `impostor_allpairs` (every cross-finger pair; the file's
/// `impostor` rows are the 45 FVC-protocol pairs among them).
fn peer(root: &Path, peer: &str, set: &str) -> ipseity_eval::Summary {
    let path = root.join(peer).join(format!("{set}.csv"));
    let text = std::fs::read_to_string(&path).expect("peer scores");
    let (mut genuine, mut impostor) = (Vec::new(), Vec::new());
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let score: f32 = f[3].parse().expect("score");
        match f[0] {
            "genuine" => genuine.push(score),
            "impostor_allpairs" => impostor.push(score),
            "impostor" => {}
            other => panic!("{}: kind {other}", path.display()),
        }
    }
    ipseity_eval::summarize(&genuine, &impostor).expect("peer summary")
}

/// `(finger, path)` of every `FFFFF_I.png` in `dir`, sorted.
fn impressions(dir: &Path) -> Vec<(u32, PathBuf)> {
    let mut out: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .expect("set directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| {
            let stem = p.file_name()?.to_str()?.strip_suffix(".png")?.to_owned();
            let (f, _) = stem.split_once('_')?;
            Some((f.parse().ok()?, p))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn real_impressions_extract_and_match() {
    let Some(root) = shared() else {
        return;
    };
    let cfg = ExtractConfig::default();
    let mcfg = MatcherConfig::default();
    let (mut images, mut refused, mut eers) = (0usize, Vec::new(), Vec::new());
    for (set, ppi) in SETS {
        let items = impressions(&root.join(set));
        assert_eq!(items.len(), 80, "{set}: 10 fingers x 8 impressions");
        let bytes = std::fs::read(&items[0].1).expect("read");
        let decoded = sample::decode_impression_at(&bytes, None).expect("decodes");
        assert_eq!(
            decoded.source_ppi, ppi,
            "{set}: resolution from the pHYs chunk"
        );
        assert_eq!(decoded.resampled, ppi != 500);

        let prepared: Vec<Option<Prepared>> = items
            .par_iter()
            .map(|(_, path)| {
                let bytes = std::fs::read(path).expect("read");
                match sample::load(&bytes, FingerPosition::Unknown, &cfg) {
                    Ok(s) => Some(matcher::prepare(&s.template, &mcfg)),
                    Err(e) => {
                        let message = e.to_string();
                        assert!(!message.is_empty());
                        eprintln!("{}: {message}", path.display());
                        None
                    }
                }
            })
            .collect();
        images += items.len();
        refused.extend(
            items
                .iter()
                .zip(&prepared)
                .filter(|(_, p)| p.is_none())
                .map(|((_, path), _)| path.clone()),
        );
        let labels: Vec<usize> = items.iter().map(|(f, _)| *f as usize).collect();
        let (genuine_pairs, impostor_pairs) = ipseity_eval::pairs_from_labels(&labels);
        let score = |pairs: &[(usize, usize)]| -> Vec<f32> {
            pairs
                .par_iter()
                .map(|&(a, b)| match (&prepared[a], &prepared[b]) {
                    (Some(x), Some(y)) => matcher::score(x, y),
                    // A refused impression scores 0 in its pairs, as FVC counts it.
                    _ => 0.0,
                })
                .collect()
        };
        let summary = ipseity_eval::summarize(&score(&genuine_pairs), &score(&impostor_pairs))
            .expect("summary");
        assert_eq!((summary.genuine, summary.impostor), (280, 2880), "{set}");
        let fnmr = |s: &ipseity_eval::Summary| s.fnmr_at_fmr_1e2.expect("enough impostors");
        let peers = [
            peer(&root, "nbis_scores", set),
            peer(&root, "sourceafis_scores", set),
        ];
        let best_eer = peers.iter().map(|p| p.eer).fold(1.0, f64::min);
        let best_fnmr = peers.iter().map(fnmr).fold(1.0, f64::min);
        eprintln!(
            "{set}: EER {:.2}% (best peer {:.2}%), FNMR at FMR 1e-2 {:.2}% (best peer {:.2}%)",
            100.0 * summary.eer,
            100.0 * best_eer,
            100.0 * fnmr(&summary),
            100.0 * best_fnmr
        );
        assert!(
            summary.eer <= best_eer && fnmr(&summary) <= best_fnmr,
            "{set}: EER {:.2}% / FNMR at 1e-2 {:.2}% against the better peer's {:.2}% / {:.2}%",
            100.0 * summary.eer,
            100.0 * fnmr(&summary),
            100.0 * best_eer,
            100.0 * best_fnmr
        );
        eers.push(summary.eer);
    }
    assert!(
        (refused.len() as f64) < 0.02 * images as f64,
        "{} of {images} impressions refused: {refused:?}",
        refused.len()
    );
    let mean = eers.iter().sum::<f64>() / eers.len() as f64;
    assert!(
        mean <= 0.055,
        "mean EER {:.2}% over the six sets",
        100.0 * mean
    );

    // The generator's `sensor` setting is meant to predict these sets: its EER, under the
    // same protocol, within half to one and a half times their mean. (Before it learnt
    // creased skin, unsteady presentation and live distortion it gave 2.0% against 4.3%.)
    let synthetic = sensor_setting_eer(120, 3);
    eprintln!(
        "synthetic sensor setting, 120 x 8: EER {:.2}% against the real sets' mean {:.2}%",
        100.0 * synthetic,
        100.0 * mean
    );
    assert!(
        (0.5 * mean..=1.5 * mean).contains(&synthetic),
        "synthetic sensor EER {:.2}% does not predict the real sets' {:.2}%",
        100.0 * synthetic,
        100.0 * mean
    );
}

/// EER of `fingers` x 8 impressions of [`SynthConfig::sensor`] (population `seed`), every
/// cross-finger pair an impostor and a refused impression scoring 0, as for the real sets.
fn sensor_setting_eer(fingers: u32, seed: u64) -> f64 {
    let cfg = SynthConfig::sensor();
    let xcfg = ExtractConfig::default();
    let mcfg = MatcherConfig::default();
    let prepared: Vec<(usize, Option<Prepared>)> = (0..fingers)
        .into_par_iter()
        .flat_map_iter(|f| {
            let m = master(&cfg, seed, f);
            (0..8)
                .map(|k| {
                    let imp = impression(&cfg, &m, seed, f, k);
                    let t = extract(&imp.image, FingerPosition::Unknown, &xcfg).ok();
                    (f as usize, t.map(|t| matcher::prepare(&t.template, &mcfg)))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let labels: Vec<usize> = prepared.iter().map(|(f, _)| *f).collect();
    let (genuine_pairs, impostor_pairs) = ipseity_eval::pairs_from_labels(&labels);
    let score = |pairs: &[(usize, usize)]| -> Vec<f32> {
        pairs
            .par_iter()
            .map(|&(a, b)| match (&prepared[a].1, &prepared[b].1) {
                (Some(x), Some(y)) => matcher::score(x, y),
                _ => 0.0,
            })
            .collect()
    };
    ipseity_eval::summarize(&score(&genuine_pairs), &score(&impostor_pairs))
        .expect("summary")
        .eer
}
