//! `ipseity erase`: remove a subject and its templates (audited by the store); and the
//! other administrative changes to one subject: `unlock`, `consent give|withdraw`.

use std::io::{self, Write};

use serde::Serialize;

use crate::args::{ConsentArgs, EraseArgs, ReviewArgs, UnlockArgs};
use crate::context::Ctx;
use crate::error::CliError;
use crate::error::ExitStatus;
use crate::output::Render;

#[derive(Serialize)]
struct Erased {
    erased: String,
    templates: usize,
    /// Whether the erased ciphertexts are gone from the WAL file too; when another
    /// process was reading, they go at the store's next open.
    wal_wiped: bool,
}

impl Render for Erased {
    fn render_text(&self, w: &mut dyn Write) -> io::Result<()> {
        writeln!(w, "erased subject {} and its templates", self.erased)?;
        if !self.wal_wiped {
            writeln!(
                w,
                "warning: another process is reading the store, so the erased templates are \
                 still in its write-ahead log; they are wiped at the store's next open"
            )?;
        }
        Ok(())
    }
}

#[derive(Serialize)]
struct Unlocked {
    unlocked: String,
}

impl Render for Unlocked {
    fn render_text(&self, w: &mut dyn Write) -> io::Result<()> {
        writeln!(
            w,
            "cleared the failed verification attempts of {}",
            self.unlocked
        )
    }
}

/// `ipseity unlock`: clears a subject's failed verification attempts (audited).
pub fn unlock(ctx: &Ctx, args: &UnlockArgs) -> anyhow::Result<ExitStatus> {
    let subject = super::subject_id(&args.subject)?;
    let mut store = ctx.open_store()?;
    ctx.check_purpose()?;
    store.unlock(&subject, ctx.purpose())?;
    ctx.out.emit(&Unlocked {
        unlocked: subject.to_string(),
    })?;
    Ok(ExitStatus::Success)
}

#[derive(Serialize)]
struct ConsentChanged {
    subject: String,
    purpose: String,
    consent: &'static str,
}

impl Render for ConsentChanged {
    fn render_text(&self, w: &mut dyn Write) -> io::Result<()> {
        writeln!(
            w,
            "{}: consent {} for {}",
            self.subject, self.consent, self.purpose
        )
    }
}

/// `ipseity consent give|withdraw`: records the subject's consent for `--purpose`
/// (audited).
pub fn consent(ctx: &Ctx, args: &ConsentArgs, given: bool) -> anyhow::Result<ExitStatus> {
    let subject = super::subject_id(&args.subject)?;
    let purpose = ctx
        .require_purpose("consent is given or withdrawn for a purpose")?
        .to_owned();
    let mut store = ctx.open_store()?;
    store.set_consent(&subject, &purpose, given)?;
    ctx.out.emit(&ConsentChanged {
        subject: subject.to_string(),
        purpose,
        consent: if given { "given" } else { "withdrawn" },
    })?;
    Ok(ExitStatus::Success)
}

#[derive(Serialize)]
struct Pending {
    pending: Vec<ipseity_store::PendingReview>,
}

impl Render for Pending {
    fn render_text(&self, w: &mut dyn Write) -> io::Result<()> {
        if self.pending.is_empty() {
            writeln!(w, "no enrolment is held for review")?;
        }
        for p in &self.pending {
            let m: Vec<&str> = p.matches.iter().map(|m| m.as_str()).collect();
            writeln!(
                w,
                "{}  enrolled {}  matched {}",
                p.subject,
                p.created_at,
                m.join(", ")
            )?;
        }
        Ok(())
    }
}

/// `ipseity review list`.
pub fn review_list(ctx: &Ctx) -> anyhow::Result<ExitStatus> {
    let pending = match ctx.open_store_existing()? {
        Some(store) => store.pending_reviews(10_000)?,
        None => Vec::new(),
    };
    ctx.out.emit(&Pending { pending })?;
    Ok(ExitStatus::Success)
}

#[derive(Serialize)]
struct Resolved {
    subject: String,
    outcome: String,
}

impl Render for Resolved {
    fn render_text(&self, w: &mut dyn Write) -> io::Result<()> {
        writeln!(w, "{}: resolved as {}", self.subject, self.outcome)
    }
}

/// `ipseity review resolve`: settles a held enrolment (audited).
pub fn review_resolve(ctx: &Ctx, args: &ReviewArgs) -> anyhow::Result<ExitStatus> {
    use ipseity_store::ReviewOutcome;
    let subject = super::subject_id(&args.subject)?;
    let outcome = match (args.outcome.as_str(), &args.same_as) {
        ("new-subject", None) => ReviewOutcome::NewSubject,
        ("rejected", None) => ReviewOutcome::Rejected,
        ("same-person", Some(m)) => ReviewOutcome::SamePerson(super::subject_id(m)?),
        _ => {
            return Err(CliError::input(
                "usage",
                "--outcome is new-subject, rejected, or same-person with --same-as ID",
            )
            .into())
        }
    };
    let mut store = ctx.open_store()?;
    store.resolve_review(&subject, &outcome, Some(ctx.purpose().unwrap_or("review")))?;
    ctx.out.emit(&Resolved {
        subject: subject.to_string(),
        outcome: args.outcome.clone(),
    })?;
    Ok(ExitStatus::Success)
}

pub fn run(ctx: &Ctx, args: &EraseArgs) -> anyhow::Result<ExitStatus> {
    let subject = super::subject_id(&args.subject)?;
    let mut store = ctx.open_store()?;
    ctx.check_purpose()?;
    let erasure = store.erase(&subject, ctx.purpose())?;
    ctx.out.emit(&Erased {
        erased: subject.to_string(),
        templates: erasure.templates,
        wal_wiped: erasure.wal_wiped,
    })?;
    Ok(ExitStatus::Success)
}
