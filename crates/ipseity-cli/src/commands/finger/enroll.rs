//! `ipseity finger enroll`: fingers for a new subject or one enrolled by face, through the
//! engine's serialised duplicate search.

use std::io::{self, Write};

use ipseity_core::{Modality, SubjectId};
use ipseity_engine::finger::{FingerEnrolment, LiveFingerGallery};
use ipseity_finger::FingerTemplate;
use serde::Serialize;

use crate::args::FingerEnrollArgs;
use crate::context::Ctx;
use crate::error::ExitStatus;
use crate::output::Render;

use super::{calibration, load_all, qualities, write_qualities, FingerQuality};

#[derive(Serialize)]
struct Enrolled {
    subject: SubjectId,
    fingers: Vec<FingerQuality>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    allowed_duplicate_of: Vec<SubjectId>,
}

impl Render for Enrolled {
    fn render_text(&self, w: &mut dyn Write) -> io::Result<()> {
        writeln!(
            w,
            "enrolled {} with {} finger(s)",
            self.subject,
            self.fingers.len()
        )?;
        write_qualities(w, &self.fingers)?;
        if !self.allowed_duplicate_of.is_empty() {
            let ids: Vec<&str> = self
                .allowed_duplicate_of
                .iter()
                .map(|s| s.as_str())
                .collect();
            writeln!(w, "possible duplicate of {} (allowed)", ids.join(", "))?;
        }
        Ok(())
    }
}

pub fn run(ctx: &Ctx, args: &FingerEnrollArgs) -> anyhow::Result<ExitStatus> {
    ctx.check_purpose()?;
    let subject = super::super::subject_id(&args.subject)?;
    let mut store = ctx.open_store()?;
    // A cheap early refusal before any image is read; the engine checks again inside its
    // write transaction, where the check cannot be overtaken by another enrolment.
    let has_fingers = match store.templates(&subject) {
        Ok(ts) => ts.iter().any(|t| t.modality == Modality::Fingerprint),
        Err(ipseity_store::StoreError::UnknownSubject(_)) => false,
        Err(e) => return Err(e.into()),
    };
    if has_fingers {
        return Err(ipseity_store::StoreError::DuplicateSubject(subject).into());
    }
    let samples = load_all(&args.finger, args.ppi)?;
    let (cal, _) = calibration(ctx)?;
    let mut live = LiveFingerGallery::load(&store, cal)?;
    let fingers: Vec<(FingerTemplate, u8)> = samples
        .iter()
        .map(|s| (s.template.clone(), s.quality_score()))
        .collect();
    let req = FingerEnrolment {
        subject: &subject,
        fingers: &fingers,
        allow_duplicate: args.allow_duplicate,
        purpose: ctx.purpose(),
    };
    let matches = ipseity_engine::finger::enrol(&mut store, &mut live, &req)
        .map_err(super::super::enroll::duplicate_hint)?;
    ctx.out.emit(&Enrolled {
        subject,
        fingers: qualities(&samples),
        allowed_duplicate_of: matches,
    })?;
    Ok(ExitStatus::Success)
}
