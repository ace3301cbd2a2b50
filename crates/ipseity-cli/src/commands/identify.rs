//! `ipseity identify`: 1:N search. Candidates are subjects (best template per
//! subject) whose decision is accept or needs_review, ranked; no scores printed.

use std::io::{self, Write};

use ipseity_core::{AuditEvent, Decision, Modality, SubjectId};
use ipseity_face::Quality;
use serde::Serialize;

use crate::args::IdentifyArgs;
use crate::context::{load_face_image, single_face, Ctx};
use crate::error::ExitStatus;
use ipseity_engine::gallery::{FaceGallery, MIN_DEPTH};

use super::{best_decision, check_top};
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
    ctx.require_purpose("identify searches the whole gallery")?;
    check_top(args.top)?;
    let mut store = ctx.open_store()?;
    let policy = ctx.policy()?;
    let img = load_face_image(&args.face)?;
    let engine = ctx.engine()?;
    let face = single_face(&engine, &img, &args.face, args.largest)?;

    // The index proposes candidates by cosine; they are decided and ranked on
    // the decision similarity exactly as a scan of every template would be
    // (see `crate::gallery`). Subjects below `reject_below` are rejects.
    let gallery = FaceGallery::load(&store, face.embedding.len())?;
    let gallery_subjects = gallery.names.len();
    let floor = policy.point.reject_below.min(policy.point.accept_at);
    let depth = args.top.saturating_mul(4).max(MIN_DEPTH);
    let mut ranked: Vec<(SubjectId, f32)> = gallery
        .matches(&face.embedding, floor, depth)
        .into_iter()
        .filter(|(_, s)| policy.point.decide(*s) != Decision::Reject)
        .map(|(id, s)| (id.clone(), s))
        .collect();
    // The answer's status and audit follow the search; `--top` only shortens the list.
    let best = best_decision(ranked.iter().map(|(_, s)| policy.point.decide(*s)));
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

    let status = ExitStatus::of_search(best);
    store.record_audit(
        &AuditEvent::Identified {
            modality: Modality::Face,
            best,
            candidates: candidates.len(),
            gallery: gallery_subjects,
        },
        candidates.first().map(|c| &c.subject),
        ctx.purpose(),
    )?;
    ctx.out.emit(&Identification {
        candidates,
        gallery_subjects,
        operating_point: policy.report,
        quality: face.quality,
    })?;
    Ok(status)
}
