//! The storage trait the engine and the service work on, so that the embedded SQLite
//! [`Store`](crate::Store) and the PostgreSQL [`PgStore`](crate::PgStore) answer the same
//! use cases with the same guarantees:
//!
//! - a write transaction ([`WriteOps`]) excludes every other writer from its first read to
//!   its commit, so a check made in it (duplicate search, "already has this finger")
//!   cannot be overtaken;
//! - subject, templates and audit row of one operation commit together or not at all;
//! - template ids only grow, so a [`TemplateMark`] names exactly what was written after it;
//! - templates are sealed (AES-256-GCM, the record as associated data) before they leave
//!   this crate, whichever database holds them.
//!
//! The traits are object-safe: the service holds a `Box<dyn Backend>` chosen at start.

use crate::attempts::{AttemptGate, AttemptPolicy};
use crate::chain::{ChainHead, ChainReport};
use ipseity_core::{ApiKey, AuditEvent, EnrolmentSource, Modality, Scope, SubjectId, Template};

use crate::{
    AuditEntry, Erasure, PendingReview, ReviewOutcome, StoreError, SubjectSummary, TemplateMark,
};

/// One database holding subjects, sealed templates, the audit log and API keys.
pub trait Backend: Send {
    /// Which backend this is, for logs and metrics: `sqlite` or `postgres`.
    fn backend_name(&self) -> &'static str;

    /// Starts a write transaction holding the store's write lock until it is committed or
    /// dropped (dropping rolls back).
    fn begin_write(&mut self) -> Result<Box<dyn WriteOps + '_>, StoreError>;

    /// The newest template written so far.
    fn template_mark(&self) -> Result<TemplateMark, StoreError>;

    /// The decrypted templates of one subject, in insertion order.
    fn templates(&self, subject: &SubjectId) -> Result<Vec<Template>, StoreError>;

    /// What vouched for the subject's enrolment, decrypted; `None` when nothing was
    /// recorded ([`StoreError::UnknownSubject`] for a subject that does not exist).
    fn enrolment_source(&self, subject: &SubjectId) -> Result<Option<EnrolmentSource>, StoreError>;

    /// How many templates of one modality are stored (a capacity hint).
    fn count_templates(&self, modality: Modality) -> Result<usize, StoreError>;

    /// Every template of one modality with its subject, ordered by subject then insertion,
    /// handed to `f` at most `chunk_rows` at a time; stops at the first error.
    fn template_chunks(
        &self,
        modality: Modality,
        chunk_rows: usize,
        f: &mut dyn FnMut(Vec<(SubjectId, Template)>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;

    /// Up to `limit` subjects with ids after `after` (all from the start when `None`),
    /// ordered by id: a page of the subject list.
    fn list_page(
        &self,
        after: Option<&SubjectId>,
        limit: usize,
    ) -> Result<Vec<SubjectSummary>, StoreError>;

    /// Number of enrolled subjects.
    fn subject_count(&self) -> Result<usize, StoreError>;

    /// Deletes a subject and its templates and audits it, in one transaction.
    fn erase(&mut self, subject: &SubjectId, purpose: Option<&str>) -> Result<Erasure, StoreError>;

    /// Records an operation that changes no subject (a decision, a refused request).
    fn record_audit(
        &mut self,
        event: &AuditEvent,
        subject: Option<&SubjectId>,
        purpose: Option<&str>,
    ) -> Result<(), StoreError>;

    /// The most recent `limit` audit rows, newest first.
    fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;

    /// Names who acts in the audit rows written from now on (`key:NAME`, `cli:USER`).
    fn set_actor(&mut self, actor: Option<&str>);

    /// Checks the audit log's hash chain, optionally against a head exported earlier.
    fn verify_audit(&self, anchor: Option<&ChainHead>) -> Result<ChainReport, StoreError>;

    /// Whether a verification of `subject` may begin at `now` (Unix seconds); if it may,
    /// it is counted as failed until [`Backend::finish_attempt`] says it was accepted. An
    /// unknown subject is [`AttemptGate::Open`] (its verification fails on its own).
    fn begin_attempt(
        &mut self,
        subject: &SubjectId,
        now: i64,
        policy: &AttemptPolicy,
    ) -> Result<AttemptGate, StoreError>;

    /// Ends an attempt: an accept clears the subject's failures.
    fn finish_attempt(&mut self, subject: &SubjectId, accepted: bool) -> Result<(), StoreError>;

    /// Spends `amount` of `holder`'s budget of `limit` for the hour `hour` (Unix hours), under
    /// the writers' lock, so every process on the database shares it; `false` (and nothing
    /// spent) when it would go over.
    fn charge_budget(
        &mut self,
        holder: &str,
        hour: i64,
        amount: u64,
        limit: u64,
    ) -> Result<bool, StoreError>;

    /// Clears a subject's failed attempts and any back-off or disabling (audited).
    fn unlock(&mut self, subject: &SubjectId, purpose: Option<&str>) -> Result<(), StoreError>;

    /// Replaces the master key and re-wraps every data key under the new one, in one write
    /// transaction (audited); readers keep reading meanwhile. Returns how many templates'
    /// data keys were re-wrapped. See [`crate::envelope`].
    fn rotate_master(&mut self) -> Result<usize, StoreError>;

    /// Records that the subject gave (`given`) or withdrew consent for `purpose`, audited.
    /// Enrolling or adding templates for a purpose gives consent for it.
    fn set_consent(
        &mut self,
        subject: &SubjectId,
        purpose: &str,
        given: bool,
    ) -> Result<(), StoreError>;

    /// Whether the subject's recorded consent covers `purpose`: an active consent for it;
    /// with no purpose stated, any active consent (or none recorded at all, for a subject
    /// enrolled without a purpose). An unknown subject has none.
    fn consented(&self, subject: &SubjectId, purpose: Option<&str>) -> Result<bool, StoreError>;

    /// The enrolments held for review, oldest first (at most `limit`).
    fn pending_reviews(&self, limit: usize) -> Result<Vec<PendingReview>, StoreError>;

    /// The subjects a held enrolment matched; `None` for an enrolled (or unknown) subject.
    fn pending_of(&self, subject: &SubjectId) -> Result<Option<Vec<SubjectId>>, StoreError>;

    /// Settles an enrolment held for review (audited): it becomes a subject, or is removed
    /// as the same person as one of its matches, or as rejected.
    fn resolve_review(
        &mut self,
        subject: &SubjectId,
        outcome: &ReviewOutcome,
        purpose: Option<&str>,
    ) -> Result<(), StoreError>;

    /// Creates an API key; returns it with the key string, which is never shown again.
    fn create_key(
        &mut self,
        name: &str,
        scopes: &[Scope],
        purposes: &[String],
    ) -> Result<(ApiKey, String), StoreError>;

    /// Every key, revoked ones included, by name.
    fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError>;

    /// Revokes a key by name (audited).
    fn revoke_key(&mut self, name: &str) -> Result<(), StoreError>;

    /// The active key a presented key string names, or `None`.
    fn authenticate(&self, presented: &str) -> Result<Option<ApiKey>, StoreError>;
}

/// A write transaction of a [`Backend`]: everything done through it commits together.
pub trait WriteOps {
    /// The newest template written so far, this transaction's writes included.
    fn mark(&self) -> Result<TemplateMark, StoreError>;
    /// Whether the subject is enrolled.
    fn subject_exists(&self, subject: &SubjectId) -> Result<bool, StoreError>;
    /// The modalities the subject has templates of (empty for an unknown subject).
    fn modalities(&self, subject: &SubjectId) -> Result<Vec<Modality>, StoreError>;
    /// The templates of one modality written after `mark`, decrypted, with their subjects.
    fn templates_since(
        &self,
        modality: Modality,
        mark: TemplateMark,
    ) -> Result<Vec<(SubjectId, Template)>, StoreError>;
    /// Creates the subject with its templates and audits it
    /// ([`StoreError::DuplicateSubject`] if it exists).
    fn enroll(
        &mut self,
        subject: &SubjectId,
        templates: &[Template],
        purpose: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Stores an enrolment that matched `matches` for a reviewer (audited): in no gallery
    /// and not verifiable until [`Backend::resolve_review`] settles it.
    fn hold_for_review(
        &mut self,
        subject: &SubjectId,
        templates: &[Template],
        purpose: Option<&str>,
        matches: &[SubjectId],
    ) -> Result<(), StoreError>;
    /// Records what vouched for the subject's enrolment (sealed like a template), audited
    /// with its kind alone; the subject must exist, and has at most one source.
    fn record_source(
        &mut self,
        subject: &SubjectId,
        source: &EnrolmentSource,
        purpose: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Adds templates to an enrolled subject and audits it
    /// ([`StoreError::UnknownSubject`] if it is not enrolled).
    fn add_templates(
        &mut self,
        subject: &SubjectId,
        templates: &[Template],
        purpose: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Appends an audit row in this transaction.
    fn audit(
        &mut self,
        event: &AuditEvent,
        subject: Option<&SubjectId>,
        purpose: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Makes every change durable at once.
    fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

impl dyn Backend + '_ {
    /// [`Backend::template_chunks`] with the caller's own error type: an error from `f`
    /// stops the reading and is returned as it was.
    pub fn for_each_template_chunk<E, F>(
        &self,
        modality: Modality,
        chunk_rows: usize,
        mut f: F,
    ) -> Result<(), E>
    where
        E: From<StoreError>,
        F: FnMut(&[(SubjectId, Template)]) -> Result<(), E>,
    {
        let mut stopped = None;
        let r = self.template_chunks(modality, chunk_rows, &mut |chunk| {
            f(&chunk).map_err(|e| {
                stopped = Some(e);
                StoreError::Stopped
            })
        });
        match (stopped, r) {
            (Some(e), _) => Err(e),
            (None, r) => r.map_err(E::from),
        }
    }

    /// Every template of one modality with its subject.
    pub fn all_templates(
        &self,
        modality: Modality,
    ) -> Result<Vec<(SubjectId, Template)>, StoreError> {
        let mut all = Vec::new();
        self.template_chunks(modality, usize::MAX, &mut |chunk| {
            if all.is_empty() {
                all = chunk;
            } else {
                all.extend(chunk);
            }
            Ok(())
        })?;
        Ok(all)
    }
}

// The embedded store answers through its inherent methods, which the CLI also calls.
impl Backend for crate::Store {
    fn backend_name(&self) -> &'static str {
        "sqlite"
    }
    fn begin_write(&mut self) -> Result<Box<dyn WriteOps + '_>, StoreError> {
        Ok(Box::new(crate::Store::begin_write(self)?))
    }
    fn template_mark(&self) -> Result<TemplateMark, StoreError> {
        crate::Store::template_mark(self)
    }
    fn templates(&self, subject: &SubjectId) -> Result<Vec<Template>, StoreError> {
        crate::Store::templates(self, subject)
    }
    fn enrolment_source(&self, subject: &SubjectId) -> Result<Option<EnrolmentSource>, StoreError> {
        crate::Store::enrolment_source(self, subject)
    }
    fn count_templates(&self, modality: Modality) -> Result<usize, StoreError> {
        crate::Store::count_templates(self, modality)
    }
    fn template_chunks(
        &self,
        modality: Modality,
        chunk_rows: usize,
        f: &mut dyn FnMut(Vec<(SubjectId, Template)>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.read_template_chunks(modality, chunk_rows, f)
    }
    fn list_page(
        &self,
        after: Option<&SubjectId>,
        limit: usize,
    ) -> Result<Vec<SubjectSummary>, StoreError> {
        crate::Store::list_page(self, after, limit)
    }
    fn subject_count(&self) -> Result<usize, StoreError> {
        crate::Store::subject_count(self)
    }
    fn erase(&mut self, subject: &SubjectId, purpose: Option<&str>) -> Result<Erasure, StoreError> {
        crate::Store::erase(self, subject, purpose)
    }
    fn record_audit(
        &mut self,
        event: &AuditEvent,
        subject: Option<&SubjectId>,
        purpose: Option<&str>,
    ) -> Result<(), StoreError> {
        crate::Store::record_audit(self, event, subject, purpose)
    }
    fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        crate::Store::audit_log(self, limit)
    }
    fn set_actor(&mut self, actor: Option<&str>) {
        crate::Store::set_actor(self, actor)
    }
    fn verify_audit(&self, anchor: Option<&ChainHead>) -> Result<ChainReport, StoreError> {
        crate::Store::verify_audit(self, anchor)
    }
    fn begin_attempt(
        &mut self,
        subject: &SubjectId,
        now: i64,
        policy: &AttemptPolicy,
    ) -> Result<AttemptGate, StoreError> {
        crate::Store::begin_attempt(self, subject, now, policy)
    }
    fn finish_attempt(&mut self, subject: &SubjectId, accepted: bool) -> Result<(), StoreError> {
        crate::Store::finish_attempt(self, subject, accepted)
    }
    fn charge_budget(
        &mut self,
        holder: &str,
        hour: i64,
        amount: u64,
        limit: u64,
    ) -> Result<bool, StoreError> {
        crate::Store::charge_budget(self, holder, hour, amount, limit)
    }
    fn unlock(&mut self, subject: &SubjectId, purpose: Option<&str>) -> Result<(), StoreError> {
        crate::Store::unlock(self, subject, purpose)
    }
    fn rotate_master(&mut self) -> Result<usize, StoreError> {
        crate::Store::rotate_master(self)
    }
    fn set_consent(
        &mut self,
        subject: &SubjectId,
        purpose: &str,
        given: bool,
    ) -> Result<(), StoreError> {
        crate::Store::set_consent(self, subject, purpose, given)
    }
    fn consented(&self, subject: &SubjectId, purpose: Option<&str>) -> Result<bool, StoreError> {
        crate::Store::consented(self, subject, purpose)
    }
    fn pending_reviews(&self, limit: usize) -> Result<Vec<PendingReview>, StoreError> {
        crate::Store::pending_reviews(self, limit)
    }
    fn pending_of(&self, subject: &SubjectId) -> Result<Option<Vec<SubjectId>>, StoreError> {
        crate::Store::pending_of(self, subject)
    }
    fn resolve_review(
        &mut self,
        subject: &SubjectId,
        outcome: &ReviewOutcome,
        purpose: Option<&str>,
    ) -> Result<(), StoreError> {
        crate::Store::resolve_review(self, subject, outcome, purpose)
    }
    fn create_key(
        &mut self,
        name: &str,
        scopes: &[Scope],
        purposes: &[String],
    ) -> Result<(ApiKey, String), StoreError> {
        crate::Store::create_key(self, name, scopes, purposes)
    }
    fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        crate::Store::list_keys(self)
    }
    fn revoke_key(&mut self, name: &str) -> Result<(), StoreError> {
        crate::Store::revoke_key(self, name)
    }
    fn authenticate(&self, presented: &str) -> Result<Option<ApiKey>, StoreError> {
        crate::Store::authenticate(self, presented)
    }
}

impl WriteOps for crate::WriteTx<'_> {
    fn mark(&self) -> Result<TemplateMark, StoreError> {
        crate::WriteTx::mark(self)
    }
    fn subject_exists(&self, subject: &SubjectId) -> Result<bool, StoreError> {
        crate::WriteTx::subject_exists(self, subject)
    }
    fn modalities(&self, subject: &SubjectId) -> Result<Vec<Modality>, StoreError> {
        crate::WriteTx::modalities(self, subject)
    }
    fn templates_since(
        &self,
        modality: Modality,
        mark: TemplateMark,
    ) -> Result<Vec<(SubjectId, Template)>, StoreError> {
        crate::WriteTx::templates_since(self, modality, mark)
    }
    fn enroll(
        &mut self,
        subject: &SubjectId,
        templates: &[Template],
        purpose: Option<&str>,
    ) -> Result<(), StoreError> {
        crate::WriteTx::enroll(self, subject, templates, purpose)
    }
    fn hold_for_review(
        &mut self,
        subject: &SubjectId,
        templates: &[Template],
        purpose: Option<&str>,
        matches: &[SubjectId],
    ) -> Result<(), StoreError> {
        crate::WriteTx::hold_for_review(self, subject, templates, purpose, matches)
    }
    fn record_source(
        &mut self,
        subject: &SubjectId,
        source: &EnrolmentSource,
        purpose: Option<&str>,
    ) -> Result<(), StoreError> {
        crate::WriteTx::record_source(self, subject, source, purpose)
    }
    fn add_templates(
        &mut self,
        subject: &SubjectId,
        templates: &[Template],
        purpose: Option<&str>,
    ) -> Result<(), StoreError> {
        crate::WriteTx::add_templates(self, subject, templates, purpose)
    }
    fn audit(
        &mut self,
        event: &AuditEvent,
        subject: Option<&SubjectId>,
        purpose: Option<&str>,
    ) -> Result<(), StoreError> {
        crate::WriteTx::audit(self, event, subject, purpose)
    }
    fn commit(self: Box<Self>) -> Result<(), StoreError> {
        crate::WriteTx::commit(*self)
    }
}
