//! `ipseity audit`: the audit log, newest first.

use std::io::{self, Write};

use ipseity_store::AuditEntry;
use serde::Serialize;

use crate::args::AuditArgs;
use crate::context::Ctx;
use crate::error::ExitStatus;
use crate::output::Render;

#[derive(Serialize)]
struct AuditLog {
    entries: Vec<AuditEntry>,
}

impl Render for AuditLog {
    fn render_text(&self, w: &mut dyn Write) -> io::Result<()> {
        if self.entries.is_empty() {
            return writeln!(w, "audit log is empty");
        }
        for e in &self.entries {
            write!(
                w,
                "{:>6}  {}  {:<14} {:<12}",
                e.id, e.at, e.operation, e.outcome
            )?;
            if let Some(s) = &e.subject {
                write!(w, "  subject={s}")?;
            }
            if let Some(p) = &e.purpose {
                write!(w, "  purpose={p:?}")?;
            }
            if let Some(d) = &e.detail {
                write!(w, "  {d}")?;
            }
            writeln!(w)?;
        }
        Ok(())
    }
}

pub fn run(ctx: &Ctx, args: &AuditArgs) -> anyhow::Result<ExitStatus> {
    let entries = match ctx.open_store_existing()? {
        Some(store) => store.audit_log(args.limit)?,
        None => Vec::new(),
    };
    ctx.out.emit(&AuditLog { entries })?;
    Ok(ExitStatus::Success)
}
