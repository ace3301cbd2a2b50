//! `ipseity list`: enrolled subjects with template counts.

use std::io::{self, Write};

use ipseity_store::SubjectSummary;
use serde::Serialize;

use crate::context::Ctx;
use crate::error::ExitStatus;
use crate::output::Render;

#[derive(Serialize)]
struct Listing {
    subjects: Vec<SubjectSummary>,
}

impl Render for Listing {
    fn render_text(&self, w: &mut dyn Write) -> io::Result<()> {
        if self.subjects.is_empty() {
            return writeln!(w, "no subjects enrolled");
        }
        let width = self
            .subjects
            .iter()
            .map(|s| s.id.as_str().len())
            .max()
            .unwrap_or(0)
            .max("SUBJECT".len());
        writeln!(w, "{:width$}  TEMPLATES  CREATED_AT", "SUBJECT")?;
        for s in &self.subjects {
            writeln!(
                w,
                "{:width$}  {:>9}  {}",
                s.id.as_str(),
                s.templates,
                s.created_at
            )?;
        }
        Ok(())
    }
}

pub fn run(ctx: &Ctx) -> anyhow::Result<ExitStatus> {
    let subjects = match ctx.open_store_existing()? {
        Some(store) => store.list()?,
        None => Vec::new(),
    };
    ctx.out.emit(&Listing { subjects })?;
    Ok(ExitStatus::Success)
}
