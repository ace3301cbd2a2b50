//! Face use cases: enrolment with its duplicate search, serialised against other writers.
//!
//! The duplicate search runs on a gallery loaded before the write lock is taken (it can
//! take seconds), so another process may enrol the same person in between. The committing
//! transaction therefore re-checks the templates written since the gallery's
//! [`TemplateMark`]: two enrolments of one face under two ids cannot both succeed.

use std::collections::BTreeSet;

use ipseity_core::{
    AuditEvent, Decision, EnrolmentSource, Modality, OperatingPoint, SubjectId, Template,
};
use ipseity_store::{Backend, StoreError, TemplateMark, WriteOps};

use crate::error::{EngineError, Result};
use crate::gallery::{FaceGallery, FACE_DIM, MIN_DEPTH};

/// The purpose recorded for the 1:N search an enrolment makes when the caller gave none.
pub const DEDUP_PURPOSE: &str = "enrolment de-duplication";

/// The enrolled faces in memory, as the store held them at a mark, kept in step by the
/// enrolments made through it.
pub struct LiveFaceGallery {
    /// The gallery.
    pub gallery: FaceGallery,
    mark: TemplateMark,
}

impl LiveFaceGallery {
    /// Loads every face template of the current model. The mark is read first, so a
    /// template written during the load is at worst checked twice, never missed.
    pub fn load(store: &dyn Backend) -> Result<Self> {
        let mark = store.template_mark()?;
        let gallery = FaceGallery::load(store, FACE_DIM)?;
        Ok(Self { gallery, mark })
    }

    /// Brings in templates other writers committed, and moves the mark.
    fn absorb(&mut self, newer: &[(SubjectId, Template)], mark: TemplateMark) -> Result<()> {
        self.gallery.add(newer.iter().map(|(s, t)| (s, t)))?;
        self.mark = mark;
        Ok(())
    }
}

/// One face enrolment.
pub struct FaceEnrolment<'a> {
    /// The new subject.
    pub subject: &'a SubjectId,
    /// Its templates, already analysed.
    pub templates: &'a [Template],
    /// Enrol even when the templates match another subject (audited).
    pub allow_duplicate: bool,
    /// The caller's purpose; [`DEDUP_PURPOSE`] is recorded when there is none.
    pub purpose: Option<&'a str>,
    /// What vouched for the identity (a verified travel document), recorded sealed with
    /// the enrolment, or with the enrolment held for review, in the same transaction.
    pub source: Option<&'a EnrolmentSource>,
}

/// Other subjects any template matches at the accept threshold.
fn duplicates(
    point: &OperatingPoint,
    subject: &SubjectId,
    templates: &[Template],
    gallery: &FaceGallery,
) -> BTreeSet<SubjectId> {
    let mut hits = BTreeSet::new();
    for t in templates {
        for (other, s) in gallery.matches_ordinals(&t.vector, point.accept_at, MIN_DEPTH) {
            let name = &gallery.names[other as usize];
            if point.decide(s) == Decision::Accept && name != subject {
                hits.insert(name.clone());
            }
        }
    }
    hits
}

/// Keeps the subjects still enrolled (an erasure since the gallery loaded removes a hit).
fn still_enrolled(tx: &dyn WriteOps, hits: BTreeSet<SubjectId>) -> Result<Vec<SubjectId>> {
    let mut kept = Vec::with_capacity(hits.len());
    for s in hits {
        if tx.subject_exists(&s)? {
            kept.push(s);
        }
    }
    Ok(kept)
}

/// Enrols a new subject by face unless its templates match another subject.
///
/// On a match the enrolment is held for review (stored, audited, in no gallery) and
/// [`EngineError::PossibleDuplicate`] returned, unless `allow_duplicate`, when the
/// enrolment and an audit row naming the matches commit in one transaction. Returns the
/// subjects matched (empty for a clean enrolment).
pub fn enrol(
    store: &mut dyn Backend,
    live: &mut LiveFaceGallery,
    point: &OperatingPoint,
    req: &FaceEnrolment<'_>,
) -> Result<Vec<SubjectId>> {
    let purpose = Some(req.purpose.unwrap_or(DEDUP_PURPOSE));
    let mut hits = duplicates(point, req.subject, req.templates, &live.gallery);
    let mut tx = store.begin_write()?;
    if tx.subject_exists(req.subject)? {
        return Err(StoreError::DuplicateSubject(req.subject.clone()).into());
    }
    let newer = tx.templates_since(Modality::Face, live.mark)?;
    if !newer.is_empty() {
        let mut g = FaceGallery::new(FACE_DIM);
        g.add(newer.iter().map(|(s, t)| (s, t)))?;
        hits.extend(duplicates(point, req.subject, req.templates, &g));
    }
    let hits = still_enrolled(&*tx, hits)?;
    let before = tx.mark()?;
    if !hits.is_empty() && !req.allow_duplicate {
        // A case for a reviewer (NIST SP 800-63A-4), not a refusal: held out of the
        // gallery until resolved.
        tx.hold_for_review(req.subject, req.templates, purpose, &hits)?;
        if let Some(source) = req.source {
            tx.record_source(req.subject, source, purpose)?;
        }
        tx.commit()?;
        live.absorb(&newer, before)?;
        return Err(EngineError::PossibleDuplicate(hits));
    }
    tx.enroll(req.subject, req.templates, purpose)?;
    if let Some(source) = req.source {
        tx.record_source(req.subject, source, purpose)?;
    }
    if !hits.is_empty() {
        tx.audit(
            &AuditEvent::DuplicateAllowed {
                modality: Modality::Face,
                duplicate_of: hits.clone(),
            },
            Some(req.subject),
            purpose,
        )?;
    }
    let after = tx.mark()?;
    tx.commit()?;
    live.absorb(&newer, after)?;
    live.gallery
        .add(req.templates.iter().map(|t| (req.subject, t)))?;
    Ok(hits)
}
