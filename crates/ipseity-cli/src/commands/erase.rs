//! `ipseity erase`: remove a subject and its templates (audited by the store).

use std::io::{self, Write};

use serde::Serialize;

use crate::args::EraseArgs;
use crate::context::Ctx;
use crate::error::ExitStatus;
use crate::output::Render;

#[derive(Serialize)]
struct Erased {
    erased: String,
}

impl Render for Erased {
    fn render_text(&self, w: &mut dyn Write) -> io::Result<()> {
        writeln!(w, "erased subject {} and its templates", self.erased)
    }
}

pub fn run(ctx: &Ctx, args: &EraseArgs) -> anyhow::Result<ExitStatus> {
    let subject = super::subject_id(&args.subject)?;
    let mut store = ctx.open_store()?;
    store.erase(&subject, ctx.purpose())?;
    ctx.out.emit(&Erased {
        erased: subject.to_string(),
    })?;
    Ok(ExitStatus::Success)
}
