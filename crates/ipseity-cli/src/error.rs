//! Exit statuses, and the one place where library errors become stable error
//! codes (snake_case strings shared with the JSON output) and exit codes.

use std::fmt;
use std::io;

use ipseity_core::{Classified, CoreError, Decision, ErrorKind};
use ipseity_engine::EngineError;
use ipseity_eval::EvalError;
use ipseity_face::decode::DecodeError;
use ipseity_face::FaceError;
use ipseity_finger::sample::SampleError;
use ipseity_models::ModelsError;
use ipseity_store::StoreError;

/// How the process ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: success, or an `accept` decision.
    Success,
    /// 1: `reject`, no match, or some batch rows failed.
    Failure,
    /// 2: usage or input error.
    Error,
    /// 3: the enrolment matched another subject: held for review (or, for fingers added
    /// to an enrolled subject, refused).
    PossibleDuplicate,
    /// 4: the decision is `needs_review`.
    NeedsReview,
}

impl ExitStatus {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Failure => 1,
            ExitStatus::Error => 2,
            ExitStatus::PossibleDuplicate => 3,
            ExitStatus::NeedsReview => 4,
        }
    }
}

impl From<Decision> for ExitStatus {
    fn from(d: Decision) -> Self {
        match d {
            Decision::Accept => ExitStatus::Success,
            Decision::Reject => ExitStatus::Failure,
            Decision::NeedsReview => ExitStatus::NeedsReview,
        }
    }
}

impl ExitStatus {
    /// The status of a 1:N search from its candidates' decisions, the same for every
    /// modality: 0 when any candidate is accepted, 4 when there are candidates but all
    /// need review (a person must look before the answer is no), 1 when there are none.
    pub fn of_search(decisions: impl IntoIterator<Item = Decision>) -> Self {
        let mut any = false;
        for d in decisions {
            match d {
                Decision::Accept => return ExitStatus::Success,
                Decision::NeedsReview => any = true,
                Decision::Reject => {}
            }
        }
        if any {
            ExitStatus::NeedsReview
        } else {
            ExitStatus::Failure
        }
    }
}

/// An error raised by the CLI itself, with its code and exit status.
#[derive(Debug)]
pub struct CliError {
    /// Stable snake_case code.
    pub code: &'static str,
    /// Message for a person.
    pub message: String,
    /// Exit status.
    pub exit: ExitStatus,
}

impl CliError {
    /// An input error (exit 2).
    pub fn input(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            exit: ExitStatus::Error,
        }
    }

    /// An error with another exit status.
    pub fn with_exit(code: &'static str, message: impl Into<String>, exit: ExitStatus) -> Self {
        Self {
            code,
            message: message.into(),
            exit,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// The exit status of an error kind: a conflict with the enrolled population is a
/// possible duplicate (3); every other failure is an error (2).
pub fn exit_of(kind: ErrorKind) -> ExitStatus {
    match kind {
        ErrorKind::Conflict => ExitStatus::PossibleDuplicate,
        ErrorKind::Input
        | ErrorKind::NotFound
        | ErrorKind::Duplicate
        | ErrorKind::Unavailable
        | ErrorKind::Internal => ExitStatus::Error,
    }
}

/// The kind and code of a library error: every library error type implements
/// [`Classified`], so the CLI only has to recognise the type, never re-map its variants.
fn classified(cause: &(dyn std::error::Error + 'static)) -> Option<(&'static str, ErrorKind)> {
    fn of<E: Classified + std::error::Error + 'static>(
        c: &(dyn std::error::Error + 'static),
    ) -> Option<(&'static str, ErrorKind)> {
        c.downcast_ref::<E>().map(|e| (e.code(), e.kind()))
    }
    of::<EngineError>(cause)
        .or_else(|| of::<StoreError>(cause))
        .or_else(|| of::<SampleError>(cause))
        .or_else(|| of::<DecodeError>(cause))
        .or_else(|| of::<FaceError>(cause))
        .or_else(|| of::<ModelsError>(cause))
        .or_else(|| of::<CoreError>(cause))
        .or_else(|| of::<EvalError>(cause))
        .or_else(|| of::<ipseity_document::MrzError>(cause))
}

/// The code and exit status of any error a command returned.
pub fn classify(err: &anyhow::Error) -> (&'static str, ExitStatus) {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<CliError>() {
            return (e.code, e.exit);
        }
        if let Some((code, kind)) = classified(cause) {
            return (code, exit_of(kind));
        }
        if cause.downcast_ref::<io::Error>().is_some() {
            return ("io_error", ExitStatus::Error);
        }
    }
    ("internal", ExitStatus::Error)
}

/// What the person at the terminal can do about an error, in this front end's words
/// (flags and commands); library messages carry no such hints.
pub fn hint(code: &str) -> Option<&'static str> {
    Some(match code {
        "models_missing" => {
            "run `ipseity models install` (or set IPSEITY_MODELS_DIR to a directory that holds the models)"
        }
        "models_invalid" => "run `ipseity models install` to replace the installed models",
        "multiple_faces" => "pass --largest to use the largest face",
        "purpose_required" => "state why with --purpose (it is recorded in the audit log)",
        _ => return None,
    })
}

/// The message of an error with its causes, on one line, and this front end's hint.
pub fn message(err: &anyhow::Error) -> String {
    let m = format!("{err:#}").trim_end().replace('\n', " ");
    match hint(classify(err).0) {
        Some(h) if !m.contains(h) => format!("{m}; {h}"),
        _ => m,
    }
}

/// Code of an error, for per-row batch reports.
pub fn code_of(err: &anyhow::Error) -> &'static str {
    classify(err).0
}

/// Whether the error is a closed stdout (`ipseity list | head`), which is not a failure.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod search_status_tests {
    use super::*;

    #[test]
    fn search_status_follows_the_best_decision() {
        use Decision::*;
        let st = |d: &[Decision]| ExitStatus::of_search(d.iter().copied()).code();
        assert_eq!(st(&[]), 1);
        assert_eq!(st(&[Reject, Reject]), 1);
        assert_eq!(st(&[NeedsReview]), 4);
        assert_eq!(st(&[Reject, NeedsReview]), 4);
        assert_eq!(st(&[NeedsReview, Accept]), 0);
        assert_eq!(st(&[Accept, Reject]), 0);
    }
}
