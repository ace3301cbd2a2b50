//! `ipseity finger identify`: 1:N with a purpose; candidates in decision bands.

use std::io::{self, Write};

use ipseity_core::{AuditEvent, Modality};
use ipseity_engine::finger::{LiveFingerGallery, SHORTLIST};
use ipseity_finger::fusion::FmrPolicy;
use serde::Serialize;

use super::super::identify::{candidates_of, Candidate};
use crate::args::FingerIdentifyArgs;
use crate::context::Ctx;
use crate::error::ExitStatus;
use crate::output::Render;
use ipseity_engine::identify;

use super::{calibration, load_all, probe_of, qualities, write_qualities, FingerQuality};

#[derive(Serialize)]
struct Identification {
    candidates: Vec<Candidate>,
    gallery_subjects: usize,
    operating_point: String,
    fingers: Vec<FingerQuality>,
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
        writeln!(w, "probe:")?;
        write_qualities(w, &self.fingers)
    }
}

pub fn run(ctx: &Ctx, args: &FingerIdentifyArgs) -> anyhow::Result<ExitStatus> {
    ctx.require_purpose("a fingerprint identify searches the whole gallery")?;
    super::super::check_top(args.top)?;
    let mut store = ctx.open_store()?;
    let samples = load_all(&args.finger, args.ppi)?;
    let (cal, described) = calibration(ctx)?;
    let g = LiveFingerGallery::load(&store, cal)?.gallery;
    let policy = FmrPolicy::default();
    // The stated rate holds per search: n comparisons each at FMR f give about n f false
    // matches, so each candidate is decided on n f.
    let n = g.subjects().max(1) as f64;
    let found = g
        .identify(&probe_of(&samples), args.top, SHORTLIST)
        .into_iter()
        .map(|m| identify::Candidate {
            decision: policy.decide(m.fmr * n),
            subject: m.subject,
        })
        .collect();
    let answer = identify::answer(
        super::super::consenting(&store, found, ctx.purpose())?,
        args.top,
    );
    let best = answer.best;
    let candidates = candidates_of(answer);
    let status = ExitStatus::of_search(best);
    store.record_audit(
        &AuditEvent::Identified {
            modality: Modality::Fingerprint,
            best,
            candidates: candidates.len(),
            gallery: g.subjects(),
        },
        candidates.first().map(|c| &c.subject),
        ctx.purpose(),
    )?;
    ctx.out.emit(&Identification {
        candidates,
        gallery_subjects: g.subjects(),
        operating_point: described,
        fingers: qualities(&samples),
    })?;
    Ok(status)
}
