//! `ipseity identify`: 1:N search. Candidates are subjects (best template per
//! subject) whose decision is accept or needs_review, ranked; no scores printed.

use std::collections::BTreeMap;
use std::io::{self, Write};

use ipseity_core::{Decision, Modality, SubjectId};
use ipseity_face::Quality;
use serde::Serialize;

use crate::args::IdentifyArgs;
use crate::context::{load_face_image, single_face, Ctx};
use crate::error::ExitStatus;
use crate::output::Render;
use crate::policy::PolicyReport;

#[derive(Serialize)]
struct Candidate {
    rank: usize,
    subject: SubjectId,
    decision: Decision,
}

#[derive(Serialize)]
struct Identification {
    candidates: Vec<Candidate>,
    gallery_subjects: usize,
    operating_point: PolicyReport,
    quality: Quality,
}

impl Render for Identification {
    fn render_text(&self, w: &mut dyn Write) -> io::Result<()> {
        if self.candidates.is_empty() {
            writeln!(w, "no match among {} subjects", self.gallery_subjects)?;
        }
        for c in &self.candidates {
            writeln!(w, "{:>3}. {}  {}", c.rank, c.subject, c.decision)?;
        }
        writeln!(w, "operating point: {}", self.operating_point)?;
        writeln!(
            w,
            "probe quality: {} (weakest factor: {})",
            self.quality.score, self.quality.weakest
        )
    }
}

pub fn run(ctx: &Ctx, args: &IdentifyArgs) -> anyhow::Result<ExitStatus> {
    let mut store = ctx.open_store()?;
    let policy = ctx.policy()?;
    let img = load_face_image(&args.face)?;
    let engine = ctx.engine()?;
    let face = single_face(&engine, &img, &args.face, args.largest)?;

    let mut best: BTreeMap<SubjectId, f32> = BTreeMap::new();
    for (subject, t) in store.all_templates(Modality::Face)? {
        if t.model != ipseity_face::MODEL_ID || t.vector.len() != face.embedding.len() {
            continue;
        }
        let s = ipseity_face::similarity(&face.embedding, &t.vector);
        let e = best.entry(subject).or_insert(f32::NEG_INFINITY);
        *e = e.max(s);
    }
    let gallery_subjects = best.len();
    let mut ranked: Vec<(SubjectId, f32)> = best
        .into_iter()
        .filter(|(_, s)| policy.point.decide(*s) != Decision::Reject)
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    ranked.truncate(args.top);
    let candidates: Vec<Candidate> = ranked
        .into_iter()
        .enumerate()
        .map(|(i, (subject, s))| Candidate {
            rank: i + 1,
            subject,
            decision: policy.point.decide(s),
        })
        .collect();

    let any_accept = candidates.iter().any(|c| c.decision == Decision::Accept);
    let outcome = match candidates.first() {
        Some(c) => c.decision.to_string(),
        None => "no_match".to_owned(),
    };
    let detail = format!("candidates={}", candidates.len());
    store.record_audit(
        "identify",
        candidates.first().map(|c| &c.subject),
        ctx.purpose(),
        &outcome,
        Some(&detail),
    )?;
    ctx.out.emit(&Identification {
        candidates,
        gallery_subjects,
        operating_point: policy.report,
        quality: face.quality,
    })?;
    Ok(if any_accept {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}
