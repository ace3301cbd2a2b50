//! `ipseity verify`: 1:1 comparison with a subject's templates. Prints the
//! decision, the operating point and the probe's quality; never the score.

use std::io::{self, Write};

use ipseity_core::AuditEvent;
use ipseity_core::{Decision, Modality};
use ipseity_face::Quality;
use serde::Serialize;

use crate::args::VerifyArgs;
use crate::context::{capture_face, is_presentation_attack, load_face_image, Ctx};
use crate::error::{CliError, ExitStatus};
use crate::output::Render;
use crate::policy::PolicyReport;

#[derive(Serialize)]
struct Verification {
    subject: String,
    decision: Decision,
    operating_point: PolicyReport,
    quality: Quality,
}

impl Render for Verification {
    fn render_text(&self, w: &mut dyn Write) -> io::Result<()> {
        writeln!(w, "{}", self.decision)?;
        writeln!(w, "subject: {}", self.subject)?;
        writeln!(w, "operating point: {}", self.operating_point)?;
        writeln!(
            w,
            "probe quality: {} (weakest factor: {})",
            self.quality.score, self.quality.weakest
        )
    }
}

pub fn run(ctx: &Ctx, args: &VerifyArgs) -> anyhow::Result<ExitStatus> {
    let subject = super::subject_id(&args.subject)?;
    let mut store = ctx.open_store()?;
    let policy = ctx.policy()?;
    super::gate_attempt(ctx, &mut store, &subject)?;
    let templates: Vec<_> = store
        .templates(&subject)?
        .into_iter()
        .filter(|t| t.modality == Modality::Face && t.model == ipseity_face::MODEL_ID)
        .collect();
    if templates.is_empty() {
        return Err(CliError::input(
            "no_templates",
            format!(
                "subject {subject} has no face templates from model {}",
                ipseity_face::MODEL_ID
            ),
        )
        .into());
    }
    let check = !args.no_liveness;
    let img = load_face_image(&args.face)?;
    let engine = ctx.capture_engine(check)?;
    let face = match capture_face(&engine, &img, &args.face, args.largest, check) {
        Ok(face) => face,
        Err(e) if is_presentation_attack(&e) => {
            // An attack is a failed attempt: it counts towards the subject's back-off.
            store.finish_attempt(&subject, false)?;
            store.record_audit(
                &AuditEvent::PresentationAttack {
                    operation: "verify",
                },
                Some(&subject),
                ctx.purpose(),
            )?;
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    if !check {
        store.record_audit(
            &AuditEvent::LivenessOff {
                operation: "verify",
            },
            Some(&subject),
            ctx.purpose(),
        )?;
    }
    let best = templates
        .iter()
        .map(|t| ipseity_face::similarity(&face.embedding, &t.vector))
        .fold(f32::NEG_INFINITY, f32::max);
    let decision = policy.point.decide(best);
    store.finish_attempt(&subject, decision == ipseity_core::Decision::Accept)?;
    store.record_audit(
        &AuditEvent::Verified {
            modality: Modality::Face,
            decision,
            compared: None,
        },
        Some(&subject),
        ctx.purpose(),
    )?;
    ctx.out.emit(&Verification {
        subject: subject.to_string(),
        decision,
        operating_point: policy.report,
        quality: face.quality,
    })?;
    Ok(decision.into())
}
