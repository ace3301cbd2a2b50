//! `ipseity audit`: the audit log, newest first; `audit verify` checks its hash chain and
//! `audit head` prints the newest entry's hash to keep outside the system.

use std::io::{self, Write};

use ipseity_store::chain::{ChainHead, ChainReport};
use ipseity_store::{AuditEntry, Backend};
use serde::Serialize;

use crate::args::{AuditArgs, AuditCommand};
use crate::context::Ctx;
use crate::error::{CliError, ExitStatus};
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
            if let Some(a) = &e.actor {
                write!(w, "  by={a}")?;
            }
            writeln!(w)?;
        }
        Ok(())
    }
}

impl Render for ChainReport {
    fn render_text(&self, w: &mut dyn Write) -> io::Result<()> {
        if self.intact() {
            write!(w, "audit chain intact: {} entries", self.entries)?;
            if let Some(h) = &self.head {
                write!(w, "; head: entry {} at {}, hash {}", h.id, h.at, h.hash)?;
            }
            return writeln!(w);
        }
        writeln!(
            w,
            "audit chain BROKEN: {} break(s) in {} entries",
            self.breaks.len(),
            self.entries
        )?;
        for b in &self.breaks {
            writeln!(w, "  entry {:>6}: {}", b.id, b.message)?;
        }
        Ok(())
    }
}

#[derive(Serialize)]
struct Head(Option<ChainHead>);

impl Render for Head {
    fn render_text(&self, w: &mut dyn Write) -> io::Result<()> {
        // JSON in text mode too: the head is meant to be saved and given back to `verify`.
        match &self.0 {
            Some(h) => writeln!(w, "{}", serde_json::to_string(h).map_err(io::Error::other)?),
            None => writeln!(w, "audit log is empty"),
        }
    }
}

/// The backend to check: PostgreSQL with `--database`, else the embedded store (which
/// must exist).
fn open_for_check(ctx: &Ctx) -> anyhow::Result<Option<Box<dyn Backend>>> {
    if ctx.database.is_some() {
        return ctx.open_backend().map(Some);
    }
    Ok(ctx
        .open_store_existing()?
        .map(|s| Box::new(s) as Box<dyn Backend>))
}

fn read_head(path: &std::path::Path) -> anyhow::Result<ChainHead> {
    let bad = |why: String| {
        CliError::input(
            "bad_head",
            format!(
                "{}: {why} (expected the output of `ipseity audit head`)",
                path.display()
            ),
        )
    };
    // A head is about 150 bytes; read no more than a few KiB of whatever was given.
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| std::io::Read::read_to_string(&mut std::io::Read::take(f, 4096), &mut text))
        .map_err(|e| bad(e.to_string()))?;
    let head: ChainHead = serde_json::from_str(text.trim()).map_err(|e| bad(e.to_string()))?;
    if head.hash.len() != 64 || !head.hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad("the hash is not 64 hex digits".into()).into());
    }
    Ok(head)
}

pub fn run(ctx: &Ctx, args: &AuditArgs) -> anyhow::Result<ExitStatus> {
    match &args.command {
        Some(AuditCommand::Verify { head }) => {
            let anchor = head.as_deref().map(read_head).transpose()?;
            let report = match open_for_check(ctx)? {
                Some(store) => store.verify_audit(anchor.as_ref())?,
                // No store at all: only an exported head can be missing from it.
                None => ChainReport {
                    entries: 0,
                    head: None,
                    breaks: anchor
                        .iter()
                        .map(|a| ipseity_store::chain::ChainBreak {
                            id: a.id,
                            kind: ipseity_store::chain::BreakKind::Anchor,
                            message: format!(
                                "entry {} named by the exported head is missing: there is no \
                                 audit log",
                                a.id
                            ),
                        })
                        .collect(),
                },
            };
            let status = if report.intact() {
                ExitStatus::Success
            } else {
                ExitStatus::Failure
            };
            ctx.out.emit(&report)?;
            return Ok(status);
        }
        Some(AuditCommand::Head) => {
            let head = match open_for_check(ctx)? {
                Some(store) => store.verify_audit(None)?.head,
                None => None,
            };
            ctx.out.emit(&Head(head))?;
            return Ok(ExitStatus::Success);
        }
        None => {}
    }
    let entries = match ctx.open_store_existing()? {
        Some(store) => store.audit_log(args.limit)?,
        None => Vec::new(),
    };
    ctx.out.emit(&AuditLog { entries })?;
    Ok(ExitStatus::Success)
}
