//! `ipseity identify`: 1:N search. Candidates are subjects (best template per
//! subject) whose decision is accept or needs_review, in decision bands (accepts first,
//! by subject id within a band; see [`ipseity_engine::identify`]); no scores, no ranks.

use std::io::{self, Write};

use ipseity_core::{AuditEvent, Decision, Modality, SubjectId};
use ipseity_face::Quality;
use serde::Serialize;

use crate::args::IdentifyArgs;
use crate::context::{load_face_image, single_face, Ctx};
use crate::error::ExitStatus;
use ipseity_engine::gallery::FaceGallery;
use ipseity_engine::identify::Answer;

use super::check_top;
use crate::output::Render;
use crate::policy::PolicyReport;

#[derive(Serialize)]
pub struct Candidate {
    pub subject: SubjectId,
    pub decision: Decision,
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
            writeln!(w, "{}  {}", c.subject, c.decision)?;
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

    // The index proposes candidates by cosine; they are decided on the decision
    // similarity exactly as a scan of every template would be (see
    // `ipseity_engine::gallery`), then answered in decision bands.
    let gallery = FaceGallery::load(&store, face.embedding.len())?;
    let gallery_subjects = gallery.names.len();
    let found = ipseity_engine::identify::face_candidates(
        &gallery,
        &policy.point,
        &face.embedding,
        args.top,
    );
    let answer = ipseity_engine::identify::answer(
        super::consenting(&store, found, ctx.purpose())?,
        args.top,
    );
    let best = answer.best;
    let candidates = candidates_of(answer);
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

/// The printable candidates of an engine answer, in its order.
pub fn candidates_of(answer: Answer) -> Vec<Candidate> {
    answer
        .candidates
        .into_iter()
        .map(|c| Candidate {
            subject: c.subject,
            decision: c.decision,
        })
        .collect()
}
