//! `ipseity finger verify`: 1:1, several fingers fused into one false-match rate.

use std::io::{self, Write};

use ipseity_core::{AuditEvent, Decision, Modality, SubjectId};
use ipseity_engine::finger::{build_gallery, decode_stored};
use ipseity_finger::fusion::FmrPolicy;
use serde::Serialize;

use crate::args::FingerVerifyArgs;
use crate::context::Ctx;
use crate::error::{CliError, ExitStatus};
use crate::output::Render;

use super::{calibration, load_all, probe_of, qualities, write_qualities, FingerQuality};

#[derive(Serialize)]
struct Verification {
    subject: SubjectId,
    decision: Decision,
    fingers_compared: usize,
    operating_point: String,
    fingers: Vec<FingerQuality>,
}

impl Render for Verification {
    fn render_text(&self, w: &mut dyn Write) -> io::Result<()> {
        writeln!(w, "{}", self.decision)?;
        writeln!(w, "subject: {}", self.subject)?;
        writeln!(w, "fingers compared: {}", self.fingers_compared)?;
        writeln!(w, "operating point: {}", self.operating_point)?;
        writeln!(w, "probe:")?;
        write_qualities(w, &self.fingers)
    }
}

pub fn run(ctx: &Ctx, args: &FingerVerifyArgs) -> anyhow::Result<ExitStatus> {
    let subject = super::super::subject_id(&args.subject)?;
    let mut store = ctx.open_store()?;
    super::super::gate_attempt(ctx, &mut store, &subject)?;
    let stored = store.templates(&subject)?;
    let refs = decode_stored(stored.into_iter().map(|t| (subject.clone(), t)))?;
    if refs.is_empty() {
        return Err(CliError::input(
            "no_templates",
            format!("subject {subject} has no fingerprint templates"),
        )
        .into());
    }
    let samples = load_all(&args.finger, args.ppi)?;
    let (cal, described) = calibration(ctx)?;
    let g = build_gallery(&refs, cal)?;
    let policy = FmrPolicy::default();
    let m = g.verify(&subject, &probe_of(&samples));
    let (decision, fingers_compared) = match m {
        Some(m) if m.fingers_compared > 0 => (policy.decide(m.fmr), m.fingers_compared),
        _ => {
            return Err(CliError::input(
                "no_templates",
                format!(
                    "subject {subject} has no enrolled finger at the positions given; \
                     give the positions enrolled or `unknown`"
                ),
            )
            .into())
        }
    };
    store.finish_attempt(&subject, decision == ipseity_core::Decision::Accept)?;
    store.record_audit(
        &AuditEvent::Verified {
            modality: Modality::Fingerprint,
            decision,
            compared: Some(fingers_compared),
        },
        Some(&subject),
        ctx.purpose(),
    )?;
    ctx.out.emit(&Verification {
        subject,
        decision,
        fingers_compared,
        operating_point: described.replace(" per search", " per comparison"),
        fingers: qualities(&samples),
    })?;
    Ok(decision.into())
}
