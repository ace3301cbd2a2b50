//! Fingerprint use cases: the gallery of enrolled fingers and enrolment with its duplicate
//! search, serialised against other writers as faces are (see [`crate::face`]).

use std::collections::BTreeSet;

use ipseity_core::{AuditEvent, Decision, Modality, SubjectId, Template};
use ipseity_finger::fusion::{FmrPolicy, ScoreCalibration, MODEL_ID};
use ipseity_finger::gallery::{FingerGallery, ProbeFinger};
use ipseity_finger::matcher::{self, MatcherConfig};
use ipseity_finger::FingerTemplate;
use ipseity_store::{Backend, StoreError, TemplateMark};
use rayon::prelude::*;

use crate::error::{EngineError, Result};
use crate::face::DEDUP_PURPOSE;

/// References kept per probe finger by the descriptor pre-filter in large galleries.
pub const SHORTLIST: usize = 200;

/// Candidates examined by the enrolment duplicate search.
const ENROL_TOP: usize = 5;

/// Decodes stored fingerprint templates of the current model.
pub fn decode_stored(
    rows: impl IntoIterator<Item = (SubjectId, Template)>,
) -> Result<Vec<(SubjectId, FingerTemplate)>> {
    rows.into_iter()
        .filter(|(_, t)| t.modality == Modality::Fingerprint && t.model == MODEL_ID)
        .map(
            |(subject, t)| match FingerTemplate::from_vector(&t.vector) {
                Ok(ft) => Ok((subject, ft)),
                Err(source) => Err(EngineError::StoredFingerTemplate { subject, source }),
            },
        )
        .collect()
}

/// A gallery of prepared references deciding with `cal`.
pub fn build_gallery(
    templates: &[(SubjectId, FingerTemplate)],
    cal: ScoreCalibration,
) -> Result<FingerGallery<SubjectId>> {
    let cfg = MatcherConfig::default();
    let prepared: Vec<_> = templates
        .par_iter()
        .map(|(s, t)| (s.clone(), t.position, matcher::prepare(t, &cfg)))
        .collect();
    let mut g = FingerGallery::new(cal);
    for (s, p, prep) in prepared {
        g.add(s, p, prep);
    }
    if g.len() >= FingerGallery::<SubjectId>::EXHAUSTIVE_BELOW {
        g.build_prefilter()?;
    }
    Ok(g)
}

/// The probe fingers of templates.
pub fn probes(templates: &[FingerTemplate]) -> Vec<ProbeFinger> {
    let cfg = MatcherConfig::default();
    templates
        .iter()
        .map(|t| ProbeFinger::new(t, &cfg))
        .collect()
}

/// The enrolled fingers in memory, as the store held them at a mark, kept in step by the
/// enrolments made through it.
pub struct LiveFingerGallery {
    /// The gallery.
    pub gallery: FingerGallery<SubjectId>,
    mark: TemplateMark,
}

/// Adds templates to a gallery, rebuilding its pre-filter when it is large enough to use one.
fn add_all(
    g: &mut FingerGallery<SubjectId>,
    templates: &[(SubjectId, FingerTemplate)],
) -> Result<()> {
    let cfg = MatcherConfig::default();
    for (s, t) in templates {
        g.add(s.clone(), t.position, matcher::prepare(t, &cfg));
    }
    if !templates.is_empty() && g.len() >= FingerGallery::<SubjectId>::EXHAUSTIVE_BELOW {
        g.build_prefilter()?;
    }
    Ok(())
}

impl LiveFingerGallery {
    /// Loads every fingerprint template of the current model (the mark is read first).
    pub fn load(store: &dyn Backend, cal: ScoreCalibration) -> Result<Self> {
        let mark = store.template_mark()?;
        let stored = decode_stored(store.all_templates(Modality::Fingerprint)?)?;
        Ok(Self {
            gallery: build_gallery(&stored, cal)?,
            mark,
        })
    }
}

/// One fingerprint enrolment: a new subject, or fingers for a subject enrolled by face.
pub struct FingerEnrolment<'a> {
    /// The subject.
    pub subject: &'a SubjectId,
    /// Its fingers, extracted and quality-checked, with their quality scores.
    pub fingers: &'a [(FingerTemplate, u8)],
    /// Enrol even when the fingers match another subject (audited).
    pub allow_duplicate: bool,
    /// The caller's purpose; [`DEDUP_PURPOSE`] is recorded when there is none.
    pub purpose: Option<&'a str>,
}

/// Other subjects the probe matches at the accept rate, scaled to the gallery size.
fn duplicates(
    g: &FingerGallery<SubjectId>,
    probe: &[ProbeFinger],
    subject: &SubjectId,
    population: usize,
) -> BTreeSet<SubjectId> {
    let policy = FmrPolicy::default();
    let n = population.max(1) as f64;
    g.identify(probe, ENROL_TOP, SHORTLIST)
        .into_iter()
        .filter(|m| &m.subject != subject && policy.decide(m.fmr * n) == Decision::Accept)
        .map(|m| m.subject)
        .collect()
}

/// Enrols fingers unless they match another subject, as [`crate::face::enrol`] does for
/// faces. A subject that already has fingers is refused with `duplicate_subject`; the check
/// and the write are one transaction, so two concurrent enrolments cannot both add fingers.
pub fn enrol(
    store: &mut dyn Backend,
    live: &mut LiveFingerGallery,
    req: &FingerEnrolment<'_>,
) -> Result<Vec<SubjectId>> {
    let purpose = Some(req.purpose.unwrap_or(DEDUP_PURPOSE));
    let fingers: Vec<FingerTemplate> = req.fingers.iter().map(|(t, _)| t.clone()).collect();
    let probe = probes(&fingers);
    let templates = req
        .fingers
        .iter()
        .map(|(t, q)| Template::new(Modality::Fingerprint, MODEL_ID, t.to_vector(), *q))
        .collect::<Result<Vec<_>, _>>()?;
    let mut hits = duplicates(&live.gallery, &probe, req.subject, live.gallery.subjects());

    let mut tx = store.begin_write()?;
    let exists = tx.subject_exists(req.subject)?;
    if exists && tx.modalities(req.subject)?.contains(&Modality::Fingerprint) {
        return Err(StoreError::DuplicateSubject(req.subject.clone()).into());
    }
    let newer = decode_stored(tx.templates_since(Modality::Fingerprint, live.mark)?)?;
    if !newer.is_empty() {
        let g = build_gallery(&newer, live.gallery.calibration().clone())?;
        let population = live.gallery.subjects() + g.subjects();
        hits.extend(duplicates(&g, &probe, req.subject, population));
    }
    let mut matched = Vec::with_capacity(hits.len());
    for s in hits {
        if tx.subject_exists(&s)? {
            matched.push(s);
        }
    }
    if !matched.is_empty() && !req.allow_duplicate {
        if exists {
            // Fingers added to an enrolled subject that match someone else: refused, as
            // the subject itself is not in question.
            tx.audit(
                &AuditEvent::EnrolmentRefused {
                    modality: Modality::Fingerprint,
                    duplicate_of: matched.clone(),
                },
                Some(req.subject),
                purpose,
            )?;
        } else {
            // A new subject that matches: a case for a reviewer, not a refusal.
            tx.hold_for_review(req.subject, &templates, purpose, &matched)?;
        }
        let mark = tx.mark()?;
        tx.commit()?;
        add_all(&mut live.gallery, &newer)?;
        live.mark = mark;
        return Err(EngineError::PossibleDuplicate(matched));
    }
    if exists {
        tx.add_templates(req.subject, &templates, purpose)?;
    } else {
        tx.enroll(req.subject, &templates, purpose)?;
    }
    if !matched.is_empty() {
        tx.audit(
            &AuditEvent::DuplicateAllowed {
                modality: Modality::Fingerprint,
                duplicate_of: matched.clone(),
            },
            Some(req.subject),
            purpose,
        )?;
    }
    let mark = tx.mark()?;
    tx.commit()?;
    let mine: Vec<(SubjectId, FingerTemplate)> = fingers
        .into_iter()
        .map(|t| (req.subject.clone(), t))
        .collect();
    add_all(&mut live.gallery, &newer)?;
    add_all(&mut live.gallery, &mine)?;
    live.mark = mark;
    Ok(matched)
}
