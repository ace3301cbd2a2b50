//! Chip to live capture in one call, shared by `ipseity document verify` and the
//! service's `POST /v1/documents/verify`: passive authentication first (nothing from the
//! chip is used unless it passes), the printed zone against DG1, then DG2's portrait
//! against the live capture with presentation-attack detection. The answer is a
//! decision with named reasons; no similarity or liveness probability appears in it.
//!
//! The face analyses are the caller's (each front end loads and schedules its models
//! its own way); this module decides from their results. An accepted check may enrol its
//! holder: [`enrolment_source`] is what the enrolment records as its source, and the
//! enrolment itself is [`crate::face::enrol`], as for any other.

use ipseity_core::{Decision, EnrolmentSource, OperatingPoint, SourceKind};
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
    let dgs = ipseity_document::chip::data_groups(input.files);
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
                 `ipseity models install --from DIR`, or the service runs with `serve \
                 --no-liveness`), so the capture \
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

/// Attribute names of a document's [`EnrolmentSource`], as [`enrolment_source`] records them.
pub mod source_attributes {
    /// DG1's document code (`P`, `I`, `ID`, ...).
    pub const DOCUMENT_CODE: &str = "document_code";
    /// DG1's issuing state or organisation.
    pub const ISSUING_STATE: &str = "issuing_state";
    /// DG1's document number.
    pub const DOCUMENT_NUMBER: &str = "document_number";
    /// DG1's date of expiry, `YYMMDD`.
    pub const DATE_OF_EXPIRY: &str = "date_of_expiry";
    /// Passive authentication's verdict: `pass` (nothing else is ever recorded).
    pub const PASSIVE_AUTHENTICATION: &str = "passive_authentication";
    /// The document signer certificate's subject.
    pub const DOCUMENT_SIGNER: &str = "document_signer";
    /// The document signer certificate's serial, hex.
    pub const DOCUMENT_SIGNER_SERIAL: &str = "document_signer_serial";
    /// The CSCA the signer chained to: its subject.
    pub const CSCA: &str = "csca";
    /// The CSCA's serial, hex.
    pub const CSCA_SERIAL: &str = "csca_serial";
    /// The SOD's signingTime, when it has one.
    pub const SIGNING_TIME: &str = "signing_time";
    /// The printed zone against DG1: `matches`, or `not_given`.
    pub const PRINTED_ZONE: &str = "printed_zone";
    /// Which face the enrolled template came from: `live_capture`.
    pub const ENROLLED_FACE: &str = "enrolled_face";
}

/// What a chip-to-live check vouches for, to record as the source of an enrolment made
/// from it; `Err` says why no enrolment may be made.
///
/// Only an accept may enrol: passive authentication passed, the printed zone (when given)
/// matched DG1, the live capture matched DG2's portrait and was judged bona fide (an
/// unchecked capture is at most `needs_review`). The record holds the document (DG1's
/// issuing state, code, number and expiry: not the holder's name or date of birth, which
/// the enrolment does not need) and how it was authenticated (the signer and its CSCA);
/// a dump without a readable DG1 leaves nothing to record, so it does not enrol.
pub fn enrolment_source(v: &ChipToLive, chip: &ChipContents) -> Result<EnrolmentSource, String> {
    use source_attributes as a;
    if v.decision != Decision::Accept {
        let codes: Vec<&str> = v.reasons.iter().map(|r| r.code).collect();
        return Err(format!(
            "the check answered {} ({}), and only an accept enrols",
            v.decision,
            codes.join(", ")
        ));
    }
    // An accept implies all of these; checked again so that a change elsewhere can never
    // enrol from a document that was not authenticated or a capture that was not live.
    let pa = &v.passive_authentication_report;
    if !pa.passed() || v.face != Some(Decision::Accept) || v.liveness != "bona_fide" {
        return Err("the document, the face or the liveness check did not pass".into());
    }
    let dg1 = match &chip.dg1 {
        Some(Ok(m)) => m,
        Some(Err(e)) => {
            return Err(format!(
                "DG1 cannot be read ({e}), so the document cannot be recorded"
            ))
        }
        None => {
            return Err("the chip dump holds no DG1, so the document cannot be recorded".into())
        }
    };
    let bad = |e: ipseity_core::CoreError| e.to_string();
    let mut s = EnrolmentSource::new(SourceKind::Document)
        .with(a::DOCUMENT_CODE, dg1.document_code.clone())
        .and_then(|s| s.with(a::ISSUING_STATE, dg1.issuing_state.clone()))
        .and_then(|s| s.with(a::DOCUMENT_NUMBER, dg1.document_number.clone()))
        .and_then(|s| s.with(a::DATE_OF_EXPIRY, dg1.date_of_expiry.clone()))
        .and_then(|s| s.with(a::PASSIVE_AUTHENTICATION, "pass"))
        .and_then(|s| s.with(a::PRINTED_ZONE, v.printed_zone))
        .and_then(|s| s.with(a::ENROLLED_FACE, "live_capture"))
        .map_err(bad)?;
    if let Some(ds) = &pa.document_signer {
        s = s
            .with(a::DOCUMENT_SIGNER, ds.subject.clone())
            .and_then(|s| s.with(a::DOCUMENT_SIGNER_SERIAL, ds.serial.clone()))
            .map_err(bad)?;
    }
    if let Some(c) = &pa.csca {
        s = s
            .with(a::CSCA, c.subject.clone())
            .and_then(|s| s.with(a::CSCA_SERIAL, c.serial.clone()))
            .map_err(bad)?;
    }
    if let Some(t) = &pa.signing_time {
        s = s.with(a::SIGNING_TIME, t.clone()).map_err(bad)?;
    }
    Ok(s)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;
    use ipseity_document::testkit::{self, KeyKind, SIGNED_AT};

    /// A generated document authenticated against its own CSCA; the face steps are not run.
    fn authenticated() -> (ChipToLive, ChipContents) {
        let year = 365 * 86_400;
        let doc = testkit::document(
            KeyKind::P256,
            KeyKind::P256,
            3,
            (SIGNED_AT - year, SIGNED_AT + year),
        )
        .unwrap();
        let mut files = vec![(ChipFile::Sod, doc.sod.clone())];
        files.extend(
            doc.data_groups
                .iter()
                .map(|(n, b)| (ChipFile::Dg(*n), b.clone())),
        );
        let mut trust = TrustStore::new();
        trust.add_certificates(&doc.csca).unwrap();
        authenticate(&ChipInput {
            files: &files,
            trust: &trust,
            crl: None,
            printed: None,
            now: SIGNED_AT,
        })
    }

    #[test]
    fn only_an_accept_yields_a_source_and_it_names_the_document() {
        let (mut v, chip) = authenticated();
        assert_eq!(v.passive_authentication, "pass");
        // The face not yet compared: nothing to enrol, whatever the decision says.
        v.settle();
        assert!(enrolment_source(&v, &chip).is_err());
        v.face = Some(Decision::Accept);
        v.liveness = "not_checked";
        v.review("liveness_not_checked", "models absent");
        v.settle();
        let why = enrolment_source(&v, &chip).unwrap_err();
        assert!(why.contains("needs_review (liveness_not_checked)"), "{why}");

        v.reasons.clear();
        v.liveness = "bona_fide";
        v.settle();
        let s = enrolment_source(&v, &chip).unwrap();
        use source_attributes as a;
        assert_eq!(s.kind, SourceKind::Document);
        assert_eq!(s.get(a::DOCUMENT_NUMBER), Some("L898902C3"));
        assert_eq!(s.get(a::ISSUING_STATE), Some("UTO"));
        assert_eq!(s.get(a::DOCUMENT_CODE), Some("P"));
        assert_eq!(s.get(a::DATE_OF_EXPIRY), Some("120415"));
        assert_eq!(s.get(a::PASSIVE_AUTHENTICATION), Some("pass"));
        assert_eq!(s.get(a::ENROLLED_FACE), Some("live_capture"));
        assert!(s
            .get(a::DOCUMENT_SIGNER)
            .is_some_and(|d| d.contains("Utopia Test Document Signer")));
        assert!(s
            .get(a::CSCA)
            .is_some_and(|d| d.contains("Utopia Test CSCA")));
        // Neither the holder's name nor the date of birth is kept.
        assert!(s
            .attributes()
            .all(|(_, v)| !v.contains("ERIKSSON") && v != "740812"));

        // A dump without DG1 has no document to record.
        let no_dg1 = ChipContents::read(std::iter::empty());
        assert!(enrolment_source(&v, &no_dg1)
            .unwrap_err()
            .contains("no DG1"));
        // A failed passive authentication never yields a source, even if a caller
        // forced the decision.
        v.passive_authentication_report.verdict = Outcome::Fail;
        assert!(enrolment_source(&v, &chip).is_err());
    }
}
