//! The typed audit vocabulary: every front end and modality records the same
//! events in the same words, and no variant can carry a score or a template.

use std::fmt::Write as _;

use crate::{Decision, Modality, SourceKind, SubjectId};

/// Longest `detail` an event renders, in bytes; longer lists are cut with `...`.
pub const MAX_EVENT_DETAIL: usize = 1024;

/// What happened, as recorded in the audit log.
///
/// The store turns an event into its `operation`, `outcome` and `detail` columns with
/// [`AuditEvent::operation`], [`AuditEvent::outcome`] and [`AuditEvent::detail`]; the
/// subject and the purpose travel beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditEvent {
    /// A new subject was enrolled with `templates` templates.
    Enrolled {
        /// The modality of the templates.
        modality: Modality,
        /// How many templates were written.
        templates: usize,
    },
    /// The enrolment's source was recorded with it (sealed; only its kind is audited).
    SourceRecorded {
        /// What vouched for the identity.
        kind: SourceKind,
    },
    /// Templates of a new modality were added to an enrolled subject.
    TemplatesAdded {
        /// The modality of the templates.
        modality: Modality,
        /// How many templates were written.
        templates: usize,
    },
    /// The enrolment matched other subjects and was refused; nothing was written.
    EnrolmentRefused {
        /// The modality searched.
        modality: Modality,
        /// The subjects it matched.
        duplicate_of: Vec<SubjectId>,
    },
    /// The enrolment matched other subjects and is held for a reviewer: stored, but in no
    /// gallery and not verifiable until resolved.
    EnrolmentPending {
        /// The modality searched.
        modality: Modality,
        /// The subjects it matched.
        duplicate_of: Vec<SubjectId>,
    },
    /// A reviewer resolved an enrolment held for review.
    ReviewResolved {
        /// `new_subject`, `same_person` or `rejected`.
        outcome: &'static str,
        /// For `same_person`, the enrolled subject it is.
        same_as: Option<SubjectId>,
    },
    /// The enrolment matched other subjects and was written anyway, as the caller asked.
    DuplicateAllowed {
        /// The modality searched.
        modality: Modality,
        /// The subjects it matched.
        duplicate_of: Vec<SubjectId>,
    },
    /// A 1:1 verification and its decision.
    Verified {
        /// The modality compared.
        modality: Modality,
        /// The decision.
        decision: Decision,
        /// How many references (fingers) took part; `None` where that has no meaning.
        compared: Option<usize>,
    },
    /// A 1:1 verification with a face and fingers, each decided, the two fused.
    VerifiedFused {
        /// The fused decision.
        decision: Decision,
        /// The face's own decision.
        face: Decision,
        /// The fingers' own decision.
        finger: Decision,
        /// How many fingers took part.
        compared: usize,
    },
    /// A 1:N search: the best decision among the candidates returned (`None`: no candidate).
    Identified {
        /// The modality searched.
        modality: Modality,
        /// The best decision returned, or `None` when no candidate passed.
        best: Option<Decision>,
        /// How many candidates were returned.
        candidates: usize,
        /// How many subjects were searched.
        gallery: usize,
    },
    /// An all-against-all de-duplication of the enrolled faces.
    Deduplicated {
        /// The decision a pair needed to be reported.
        threshold: Decision,
        /// Candidate pairs found.
        pairs: usize,
        /// Clusters they form.
        clusters: usize,
        /// Subjects searched.
        subjects: usize,
    },
    /// A subject and its templates were erased.
    Erased {
        /// How many templates were deleted.
        templates: usize,
    },
    /// An API key was created (its name, never the key).
    KeyCreated {
        /// The key's name.
        name: String,
    },
    /// An API key was revoked.
    KeyRevoked {
        /// The key's name.
        name: String,
    },
    /// A request was refused: no valid key (`key` is `None`), or a key without the scope
    /// or purpose asked for.
    AccessDenied {
        /// The key's name, if a valid key was given.
        key: Option<String>,
        /// What was asked for, e.g. `identify`.
        operation: &'static str,
        /// Why: `no_key`, `scope` or `purpose`.
        reason: &'static str,
    },
    /// A verification was not attempted: the subject's failed attempts locked it for a
    /// while (`disabled == false`) or until an administrator unlocks it.
    VerificationLocked {
        /// Whether verification is disabled (not just backing off).
        disabled: bool,
        /// Seconds until another attempt is allowed, while backing off.
        retry_after_s: u64,
    },
    /// An administrator cleared a subject's failed verification attempts.
    Unlocked,
    /// The subject gave or withdrew consent for the entry's purpose.
    Consent {
        /// Given (`true`) or withdrawn (`false`).
        given: bool,
    },
    /// A live capture was judged a presentation attack (a photo, a screen, a mask) and
    /// refused; nothing was compared or written.
    PresentationAttack {
        /// What was asked for: `enroll` or `verify`.
        operation: &'static str,
    },
    /// Whoever ran the operation turned presentation-attack detection off for it.
    LivenessOff {
        /// What was asked for: `enroll` or `verify`.
        operation: &'static str,
    },
    /// The master key was replaced and every data key re-wrapped under the new one.
    MasterKeyRotated {
        /// How many templates' data keys were re-wrapped.
        templates: usize,
    },
}

fn modality_word(m: Modality) -> &'static str {
    match m {
        Modality::Face => "face",
        Modality::Fingerprint => "finger",
    }
}

fn ids_detail(modality: Modality, ids: &[SubjectId]) -> String {
    let mut d = format!(
        "modality={} possible_duplicate_of=",
        modality_word(modality)
    );
    for (i, s) in ids.iter().enumerate() {
        if i > 0 {
            d.push(',');
        }
        d.push_str(s.as_str());
    }
    if d.len() > MAX_EVENT_DETAIL {
        // Subject ids are ASCII, so any byte is a char boundary.
        d.truncate(MAX_EVENT_DETAIL - 3);
        d.push_str("...");
    }
    d
}

impl AuditEvent {
    /// The `operation` column: what was asked for.
    pub fn operation(&self) -> &'static str {
        match self {
            AuditEvent::Enrolled { .. }
            | AuditEvent::EnrolmentRefused { .. }
            | AuditEvent::EnrolmentPending { .. }
            | AuditEvent::SourceRecorded { .. }
            | AuditEvent::DuplicateAllowed { .. } => "enroll",
            AuditEvent::ReviewResolved { .. } => "review",
            AuditEvent::TemplatesAdded { .. } => "add_templates",
            AuditEvent::Verified { .. } | AuditEvent::VerifiedFused { .. } => "verify",
            AuditEvent::Identified { .. } => "identify",
            AuditEvent::Deduplicated { .. } => "dedup",
            AuditEvent::Erased { .. } => "erase",
            AuditEvent::KeyCreated { .. } => "key_create",
            AuditEvent::KeyRevoked { .. } => "key_revoke",
            AuditEvent::AccessDenied { .. } => "access",
            AuditEvent::VerificationLocked { .. } => "verify",
            AuditEvent::Unlocked => "unlock",
            AuditEvent::MasterKeyRotated { .. } => "key_rotate_master",
            AuditEvent::Consent { .. } => "consent",
            AuditEvent::PresentationAttack { operation }
            | AuditEvent::LivenessOff { operation } => operation,
        }
    }

    /// The `outcome` column: `ok`, `refused`, `duplicate_allowed`, a decision, or `no_match`.
    pub fn outcome(&self) -> String {
        match self {
            AuditEvent::Enrolled { .. }
            | AuditEvent::TemplatesAdded { .. }
            | AuditEvent::Erased { .. }
            | AuditEvent::KeyCreated { .. }
            | AuditEvent::KeyRevoked { .. }
            | AuditEvent::Unlocked
            | AuditEvent::MasterKeyRotated { .. } => "ok".into(),
            AuditEvent::VerificationLocked { disabled, .. } => {
                if *disabled { "disabled" } else { "locked" }.into()
            }
            AuditEvent::AccessDenied { .. } => "denied".into(),
            AuditEvent::PresentationAttack { .. } => "presentation_attack".into(),
            AuditEvent::LivenessOff { .. } => "liveness_off".into(),
            AuditEvent::Consent { given } => if *given { "given" } else { "withdrawn" }.into(),
            AuditEvent::EnrolmentRefused { .. } => "refused".into(),
            AuditEvent::EnrolmentPending { .. } => "pending_review".into(),
            AuditEvent::SourceRecorded { .. } => "source_recorded".into(),
            AuditEvent::ReviewResolved { outcome, .. } => (*outcome).into(),
            AuditEvent::DuplicateAllowed { .. } => "duplicate_allowed".into(),
            AuditEvent::Verified { decision, .. } | AuditEvent::VerifiedFused { decision, .. } => {
                decision.to_string()
            }
            AuditEvent::Identified { best, .. } => {
                best.map_or_else(|| "no_match".into(), |d| d.to_string())
            }
            AuditEvent::Deduplicated { pairs, .. } => if *pairs == 0 {
                "no_duplicates"
            } else {
                "duplicates_found"
            }
            .into(),
        }
    }

    /// The `detail` column: counts and subject ids, never a score.
    pub fn detail(&self) -> String {
        let mut d = String::new();
        // Writing to a String cannot fail.
        let _ = match self {
            AuditEvent::Enrolled {
                modality,
                templates,
            }
            | AuditEvent::TemplatesAdded {
                modality,
                templates,
            } => write!(
                d,
                "modality={} templates={templates}",
                modality_word(*modality)
            ),
            AuditEvent::EnrolmentRefused {
                modality,
                duplicate_of,
            }
            | AuditEvent::EnrolmentPending {
                modality,
                duplicate_of,
            }
            | AuditEvent::DuplicateAllowed {
                modality,
                duplicate_of,
            } => {
                d = ids_detail(*modality, duplicate_of);
                Ok(())
            }
            AuditEvent::Verified {
                modality, compared, ..
            } => {
                let r = write!(d, "modality={}", modality_word(*modality));
                match compared {
                    Some(n) => write!(d, " compared={n}"),
                    None => r,
                }
            }
            AuditEvent::VerifiedFused {
                face,
                finger,
                compared,
                ..
            } => write!(
                d,
                "modality=face+finger face={face} finger={finger} compared={compared}"
            ),
            AuditEvent::Identified {
                modality,
                candidates,
                gallery,
                ..
            } => write!(
                d,
                "modality={} candidates={candidates} gallery={gallery}",
                modality_word(*modality)
            ),
            AuditEvent::Deduplicated {
                threshold,
                pairs,
                clusters,
                subjects,
            } => write!(
                d,
                "modality=face threshold={threshold} pairs={pairs} clusters={clusters} subjects={subjects}"
            ),
            AuditEvent::Erased { templates } | AuditEvent::MasterKeyRotated { templates } => {
                write!(d, "templates={templates}")
            }
            AuditEvent::KeyCreated { name } | AuditEvent::KeyRevoked { name } => {
                write!(d, "key={name}")
            }
            AuditEvent::AccessDenied {
                key,
                operation,
                reason,
            } => write!(
                d,
                "key={} operation={operation} reason={reason}",
                key.as_deref().unwrap_or("-")
            ),
            AuditEvent::VerificationLocked {
                disabled,
                retry_after_s,
            } => {
                if *disabled {
                    write!(d, "too many failed attempts; an administrator must unlock")
                } else {
                    write!(d, "too many failed attempts; retry_after_s={retry_after_s}")
                }
            }
            AuditEvent::PresentationAttack { .. } | AuditEvent::LivenessOff { .. } => {
                write!(d, "modality=face")
            }
            AuditEvent::SourceRecorded { kind } => write!(d, "source={kind}"),
            AuditEvent::Unlocked | AuditEvent::Consent { .. } => Ok(()),
            AuditEvent::ReviewResolved { same_as, .. } => match same_as {
                Some(m) => write!(d, "same_as={m}"),
                None => Ok(()),
            },
        };
        d
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    #[test]
    fn face_and_finger_identify_record_the_same_words() {
        let e = |m| AuditEvent::Identified {
            modality: m,
            best: Some(Decision::Accept),
            candidates: 2,
            gallery: 10,
        };
        let (f, g) = (e(Modality::Face), e(Modality::Fingerprint));
        assert_eq!(f.operation(), g.operation());
        assert_eq!(f.outcome(), g.outcome());
        assert_eq!(f.outcome(), "accept");
        assert_eq!(f.detail(), "modality=face candidates=2 gallery=10");
        assert_eq!(g.detail(), "modality=finger candidates=2 gallery=10");
        let none = AuditEvent::Identified {
            modality: Modality::Face,
            best: None,
            candidates: 0,
            gallery: 1,
        };
        assert_eq!(none.outcome(), "no_match");
    }

    #[test]
    fn long_duplicate_lists_are_cut_within_the_limit() {
        let ids: Vec<SubjectId> = (0..500)
            .map(|i| SubjectId::new(format!("subject-{i:05}")).unwrap())
            .collect();
        let e = AuditEvent::DuplicateAllowed {
            modality: Modality::Face,
            duplicate_of: ids,
        };
        let d = e.detail();
        assert!(d.len() <= MAX_EVENT_DETAIL);
        assert!(d.ends_with("..."));
        assert_eq!(e.outcome(), "duplicate_allowed");
        assert_eq!(e.operation(), "enroll");
    }

    #[test]
    fn a_source_is_audited_by_its_kind_alone() {
        let e = AuditEvent::SourceRecorded {
            kind: SourceKind::Document,
        };
        assert_eq!(
            (e.operation(), e.outcome().as_str(), e.detail().as_str()),
            ("enroll", "source_recorded", "source=document")
        );
    }
}
