//! `ipseity erase`: remove a subject and its templates (audited by the store); and the
//! other administrative changes to one subject: `unlock`, `consent give|withdraw`.

use std::io::{self, Write};

use serde::Serialize;

use crate::args::{ConsentArgs, EraseArgs, UnlockArgs};
use crate::context::Ctx;
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
