//! [`WriteTx`]: one write transaction, for use cases whose check and write must not be
//! separated by another writer (the duplicate search before an enrolment, the "already
//! has this finger" check before adding fingers).

use ipseity_core::{AuditEvent, EnrolmentSource, Modality, SubjectId, Template};
use rusqlite::{params, Transaction};

use crate::chain::Auditor;
use std::sync::Arc;

use crate::envelope::MasterKey;
use crate::store::{
    check_nonempty, check_purpose, give_consent, high_water, insert_audit, insert_templates,
    join_ids, subject_exists, subject_from_sql, SealedRow,
};
use crate::{clock, source, StoreError};

/// A point in the store's history of template writes, from [`Store::template_mark`].
///
/// [`Store::template_mark`]: crate::Store::template_mark
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TemplateMark(pub(crate) i64);

/// A write transaction holding the store's write lock (`BEGIN IMMEDIATE`).
///
/// Everything done through it commits together with [`WriteTx::commit`]; dropping it
/// rolls everything back.
pub struct WriteTx<'a> {
    tx: Transaction<'a>,
    master: Arc<MasterKey>,
    auditor: &'a Auditor,
    now: String,
}

impl<'a> WriteTx<'a> {
    pub(crate) fn new(tx: Transaction<'a>, master: Arc<MasterKey>, auditor: &'a Auditor) -> Self {
        Self {
            tx,
            master,
            auditor,
            now: clock::now_rfc3339(),
        }
    }

    /// The newest template written so far, this transaction's writes included.
    pub fn mark(&self) -> Result<TemplateMark, StoreError> {
        Ok(TemplateMark(high_water(&self.tx)?))
    }

    /// Whether the subject is enrolled.
    pub fn subject_exists(&self, subject: &SubjectId) -> Result<bool, StoreError> {
        subject_exists(&self.tx, subject)
    }

    /// The modalities the subject has templates of (empty for an unknown subject).
    pub fn modalities(&self, subject: &SubjectId) -> Result<Vec<Modality>, StoreError> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT DISTINCT modality FROM templates WHERE subject_id = ?1")?;
        let codes = stmt
            .query_map([subject.as_str()], |r| r.get::<_, i64>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        codes
            .into_iter()
            .map(|c| {
                u8::try_from(c)
                    .ok()
                    .and_then(Modality::from_code)
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown modality code {c}")))
            })
            .collect()
    }

    /// The templates of one modality written after `mark`, with their subjects, decrypted.
    pub fn templates_since(
        &self,
        modality: Modality,
        mark: TemplateMark,
    ) -> Result<Vec<(SubjectId, Template)>, StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT subject_id, id, modality, model, nonce, ciphertext, wrapped_key
             FROM templates WHERE modality = ?1 AND id > ?2
             AND subject_id IN (SELECT id FROM subjects WHERE pending_of IS NULL)
             ORDER BY subject_id, id",
        )?;
        let rows = stmt
            .query_map(params![modality.code(), mark.0], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    SealedRow {
                        id: r.get(1)?,
                        modality: r.get(2)?,
                        model: r.get(3)?,
                        nonce: r.get(4)?,
                        ciphertext: r.get(5)?,
                        wrapped: r.get(6)?,
                    },
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(id, row)| {
                let subject = subject_from_sql(id)?;
                let t = row.unseal(&self.master, &subject)?;
                Ok((subject, t))
            })
            .collect()
    }

    /// Creates the subject with its templates and audits it. Fails with
    /// [`StoreError::DuplicateSubject`] if the subject exists.
    pub fn enroll(
        &mut self,
        subject: &SubjectId,
        templates: &[Template],
        purpose: Option<&str>,
    ) -> Result<(), StoreError> {
        self.create(subject, templates, purpose, None)?;
        self.audit(
            &AuditEvent::Enrolled {
                modality: modality_of(templates),
                templates: templates.len(),
            },
            Some(subject),
            purpose,
        )
    }

    /// Stores an enrolment that matched `matches` for a reviewer: in no gallery and not
    /// verifiable until [`Store::resolve_review`] settles it; audited.
    ///
    /// [`Store::resolve_review`]: crate::Store::resolve_review
    pub fn hold_for_review(
        &mut self,
        subject: &SubjectId,
        templates: &[Template],
        purpose: Option<&str>,
        matches: &[SubjectId],
    ) -> Result<(), StoreError> {
        self.create(subject, templates, purpose, Some(&join_ids(matches)))?;
        self.audit(
            &AuditEvent::EnrolmentPending {
                modality: modality_of(templates),
                duplicate_of: matches.to_vec(),
            },
            Some(subject),
            purpose,
        )
    }

    fn create(
        &mut self,
        subject: &SubjectId,
        templates: &[Template],
        purpose: Option<&str>,
        pending_of: Option<&str>,
    ) -> Result<(), StoreError> {
        check_nonempty(templates)?;
        check_purpose(purpose)?;
        let inserted = self.tx.execute(
            "INSERT INTO subjects (id, created_at, purpose, pending_of) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(id) DO NOTHING",
            params![subject.as_str(), self.now, purpose, pending_of],
        )?;
        if inserted == 0 {
            return Err(StoreError::DuplicateSubject(subject.clone()));
        }
        insert_templates(&self.tx, &self.master, subject, templates, &self.now)?;
        give_consent(&self.tx, subject, purpose, &self.now)
    }

    /// Adds templates to an enrolled subject and audits it. Fails with
    /// [`StoreError::UnknownSubject`] if it is not enrolled.
    pub fn add_templates(
        &mut self,
        subject: &SubjectId,
        templates: &[Template],
        purpose: Option<&str>,
    ) -> Result<(), StoreError> {
        check_nonempty(templates)?;
        check_purpose(purpose)?;
        if !subject_exists(&self.tx, subject)? {
            return Err(StoreError::UnknownSubject(subject.clone()));
        }
        insert_templates(&self.tx, &self.master, subject, templates, &self.now)?;
        give_consent(&self.tx, subject, purpose, &self.now)?;
        self.audit(
            &AuditEvent::TemplatesAdded {
                modality: modality_of(templates),
                templates: templates.len(),
            },
            Some(subject),
            purpose,
        )
    }

    /// Records what vouched for the subject's enrolment, sealed, with an audit row naming
    /// its kind alone. The subject must exist (enrolled or held for review, as in this
    /// transaction); a subject has one source, so a second is refused.
    pub fn record_source(
        &mut self,
        subject: &SubjectId,
        source: &EnrolmentSource,
        purpose: Option<&str>,
    ) -> Result<(), StoreError> {
        check_purpose(purpose)?;
        if !subject_exists(&self.tx, subject)? {
            return Err(StoreError::UnknownSubject(subject.clone()));
        }
        let sealed = source::seal(&self.master, subject, source)?;
        let inserted = self.tx.execute(
            "INSERT INTO sources (subject_id, kind, nonce, ciphertext, wrapped_key, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(subject_id) DO NOTHING",
            params![
                subject.as_str(),
                sealed.kind,
                sealed.nonce,
                sealed.ciphertext,
                sealed.wrapped,
                self.now
            ],
        )?;
        if inserted == 0 {
            return Err(StoreError::InvalidInput(format!(
                "{subject} already has an enrolment source"
            )));
        }
        self.audit(
            &AuditEvent::SourceRecorded { kind: source.kind },
            Some(subject),
            purpose,
        )
    }

    /// Appends an audit row in this transaction.
    pub fn audit(
        &mut self,
        event: &AuditEvent,
        subject: Option<&SubjectId>,
        purpose: Option<&str>,
    ) -> Result<(), StoreError> {
        insert_audit(&self.tx, self.auditor, &self.now, event, subject, purpose)
    }

    /// Makes every change durable at once.
    pub fn commit(self) -> Result<(), StoreError> {
        self.tx.commit()?;
        Ok(())
    }
}

/// The modality of a template list (templates of one call share it; the first decides).
pub(crate) fn modality_of(templates: &[Template]) -> Modality {
    templates.first().map_or(Modality::Face, |t| t.modality)
}
