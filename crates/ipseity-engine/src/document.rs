//! Chip to live capture in one call, shared by `ipseity document verify` and the
//! service's `POST /v1/documents/verify`: passive authentication first (nothing from the
//! chip is used unless it passes), the printed zone against DG1, then DG2's portrait
//! against the live capture with presentation-attack detection. The answer is a
//! decision with named reasons; no similarity or liveness probability appears in it.
//!
//! The face analyses are the caller's (each front end loads and schedules its models
//! its own way); this module decides from their results.

use ipseity_core::{Decision, OperatingPoint};
use ipseity_document::chip::{ChipContents, ChipFile};
use ipseity_document::face::FaceImage;
use ipseity_document::passive::{self, Outcome, PassiveAuthInput, PassiveAuthReport, TrustStore};
use ipseity_document::Mrz;
use ipseity_face::FaceAnalysis;

/// Why the answer is not simply accept: a stable code and what it is about.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Reason {
    /// Stable code, e.g. `face_mismatch`.
    pub code: &'static str,
    /// For a person.
    pub detail: String,
    /// Whether the reason rejects by itself, or only sends the case to a person.
    #[serde(skip)]
    pub rejects: bool,
}

/// The decision, its reasons, and each step's outcome.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChipToLive {
    /// Reject when a reason rejects, needs_review when one is left, else accept.
    pub decision: Decision,
    /// Every reason, in the order found.
    pub reasons: Vec<Reason>,
    /// `pass` or `fail`.
    pub passive_authentication: &'static str,
    /// `matches`, `differs`, `not_given` or `not_compared` (an earlier reject).
    pub printed_zone: &'static str,
    /// The face comparison's own decision, or `None` when it was not run.
    pub face: Option<Decision>,
    /// `bona_fide`, `attack`, `not_checked` (models absent or unusable) or `not_run`.
    pub liveness: &'static str,
    /// The live capture's quality, once analysed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe_quality: Option<ipseity_face::Quality>,
    /// Passive authentication, check by check.
    pub passive_authentication_report: PassiveAuthReport,
}

impl ChipToLive {
    /// Adds a reason that rejects.
    pub fn reject(&mut self, code: &'static str, detail: impl Into<String>) {
        self.reasons.push(Reason {
            code,
            detail: detail.into(),
            rejects: true,
        });
    }

    /// Adds a reason that sends the case to a person.
    pub fn review(&mut self, code: &'static str, detail: impl Into<String>) {
        self.reasons.push(Reason {
            code,
            detail: detail.into(),
            rejects: false,
        });
    }

    /// Whether a reason rejects.
    pub fn rejected(&self) -> bool {
        self.reasons.iter().any(|r| r.rejects)
    }

    /// Sets the decision from the reasons.
    pub fn settle(&mut self) {
        self.decision = if self.rejected() {
            Decision::Reject
        } else if self.reasons.is_empty() {
            Decision::Accept
        } else {
            Decision::NeedsReview
        };
    }
}

/// What the chip side is given.
#[derive(Debug, Clone, Copy)]
pub struct ChipInput<'a> {
    /// The chip's files as a reader dumped them.
    pub files: &'a [(ChipFile, Vec<u8>)],
    /// The CSCAs trusted.
    pub trust: &'a TrustStore,
    /// A CRL from the issuing state's CSCA.
    pub crl: Option<&'a [u8]>,
    /// The printed zone, when read.
    pub printed: Option<&'a Mrz>,
    /// Now, seconds since 1970.
    pub now: i64,
}

/// Steps 1 and 2: passive authentication, then the printed zone against DG1 (now known
/// to be the issuer's). Returns the answer so far and what the chip's files hold.
pub fn authenticate(input: &ChipInput<'_>) -> (ChipToLive, ChipContents) {
    let sod = input.files.iter().find(|(k, _)| *k == ChipFile::Sod);
    let dgs: Vec<(u8, &[u8])> = input
        .files
        .iter()
        .filter_map(|(k, b)| match k {
            ChipFile::Dg(n) => Some((*n, b.as_slice())),
            _ => None,
        })
        .collect();
    let pa = passive::authenticate(&PassiveAuthInput {
        sod: sod.map(|(_, b)| b.as_slice()).unwrap_or_default(),
        data_groups: &dgs,
        trust: Some(input.trust),
        crl: input.crl,
        now: input.now,
    });
    let mut v = ChipToLive {
        decision: Decision::Reject,
        reasons: vec![],
        passive_authentication: if pa.passed() { "pass" } else { "fail" },
        printed_zone: if input.printed.is_some() {
            "not_compared"
        } else {
            "not_given"
        },
        face: None,
        liveness: "not_run",
        probe_quality: None,
        passive_authentication_report: pa,
    };
    if sod.is_none() {
        v.reject(
            "passive_authentication_failed",
            "no EF.SOD in the chip dump, so nothing on the chip can be authenticated",
        );
    } else if !v.passive_authentication_report.passed() {
        let failed: Vec<String> = v
            .passive_authentication_report
            .checks
            .iter()
            .filter(|c| c.required && c.outcome != Outcome::Pass)
            .map(|c| format!("{} ({})", c.name, c.detail))
            .collect();
        v.reject("passive_authentication_failed", failed.join("; "));
    }
    let c = ChipContents::read(input.files.iter().map(|(k, b)| (*k, b.as_slice())));
    if !v.rejected() {
        if let Some(p) = input.printed {
            match &c.dg1 {
                Some(Ok(m)) if m.lines == p.lines => v.printed_zone = "matches",
                Some(Ok(_)) => {
                    v.printed_zone = "differs";
                    v.reject(
                        "mrz_mismatch",
                        "the printed zone differs from the chip's DG1",
                    );
                }
                Some(Err(e)) => {
                    v.printed_zone = "differs";
                    v.reject("mrz_mismatch", format!("DG1 cannot be read: {e}"));
                }
                None => {
                    v.printed_zone = "differs";
                    v.reject("mrz_mismatch", "no DG1 in the chip dump to compare with");
                }
            }
        }
    }
    (v, c)
}

/// Step 3's input: DG2's authenticated portraits, or `None` with the reason added. DG2 is
/// mandatory on every eMRTD and the SOD covered it if present (passive authentication
/// passed with it given); a dump without it cannot tie the chip to the traveller.
pub fn portraits<'c>(v: &mut ChipToLive, chip: &'c ChipContents) -> Option<&'c [FaceImage]> {
    let passed_hash = v
        .passive_authentication_report
        .check("dg2_hash")
        .is_some_and(|c| c.outcome == Outcome::Pass);
    match &chip.dg2 {
        Some(Ok(faces)) if passed_hash && !faces.is_empty() => Some(faces),
        Some(Err(e)) if passed_hash => {
            // Signed by the issuer yet unreadable here: the document may be fine, the
            // comparison is a person's to make.
            v.review(
                "chip_portrait_unusable",
                format!("DG2 cannot be read ({e}); compare the printed portrait by eye"),
            );
            None
        }
        _ => {
            v.reject(
                "no_chip_portrait",
                "the chip dump holds no authenticated DG2 face image",
            );
            None
        }
    }
}

/// What presentation-attack detection said of the live capture.
#[derive(Debug, Clone)]
pub enum Liveness {
    /// It ran: bona fide or not.
    Checked(bool),
    /// It could not run on this face.
    Failed(String),
    /// The models are not installed, or the check is off.
    NotInstalled,
}

/// Step 3: the live capture (analysed, with its liveness) against the chip's analysed
/// portraits; the closest portrait decides, as the best template does in a verification.
/// Adds the reasons; the caller settles.
pub fn compare(
    v: &mut ChipToLive,
    live: &FaceAnalysis,
    liveness: Liveness,
    chip_faces: Vec<Result<FaceAnalysis, String>>,
    point: &OperatingPoint,
) {
    v.probe_quality = Some(live.quality.clone());
    match liveness {
        Liveness::Checked(true) => v.liveness = "bona_fide",
        Liveness::Checked(false) => {
            v.liveness = "attack";
            v.reject(
                "presentation_attack",
                "the live capture looks like a photograph, a screen or a mask, not a \
                 person in front of the camera",
            );
        }
        Liveness::Failed(e) => {
            v.liveness = "not_checked";
            v.review(
                "liveness_not_checked",
                format!("presentation-attack detection could not run ({e})"),
            );
        }
        Liveness::NotInstalled => {
            v.liveness = "not_checked";
            v.review(
                "liveness_not_checked",
                "presentation-attack detection did not run (its models are not installed, \
                 `ipseity models install --from DIR`, or it is turned off), so the capture \
                 may be a photograph held to the camera; an officer must confirm",
            );
        }
    }
    let mut best: Option<f32> = None;
    let mut unusable = vec![];
    for (i, analysed) in chip_faces.into_iter().enumerate() {
        match analysed {
            Ok(face) => {
                let s = ipseity_face::similarity(&face.embedding, &live.embedding);
                best = Some(best.map_or(s, |b: f32| b.max(s)));
            }
            Err(e) => unusable.push(format!("face {}: {e}", i + 1)),
        }
    }
    let Some(best) = best else {
        v.review(
            "chip_portrait_unusable",
            format!(
                "no face could be compared in DG2 ({}); compare the printed portrait by eye",
                unusable.join("; ")
            ),
        );
        return;
    };
    let face = point.decide(best);
    v.face = Some(face);
    match face {
        Decision::Accept => {}
        Decision::Reject => v.reject(
            "face_mismatch",
            "the live capture is not the person whose portrait the chip holds",
        ),
        Decision::NeedsReview => v.review(
            "face_uncertain",
            "the live capture and the chip's portrait are neither clearly the same person \
             nor clearly different",
        ),
    }
}
