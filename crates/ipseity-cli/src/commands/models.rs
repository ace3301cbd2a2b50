//! `ipseity models install`: download and install the pinned face models.

use std::io::{self, Write};

use serde::Serialize;

use crate::context::{Ctx, StderrReporter};
use crate::error::ExitStatus;
use crate::output::Render;

#[derive(Serialize)]
struct Installed {
    models_dir: String,
    detector: String,
    landmarks: String,
    embedder: String,
}

impl Render for Installed {
    fn render_text(&self, w: &mut dyn Write) -> io::Result<()> {
        writeln!(w, "face models installed in {}", self.models_dir)?;
        writeln!(w, "  detector:  {}", self.detector)?;
        writeln!(w, "  landmarks: {}", self.landmarks)?;
        writeln!(w, "  embedder:  {}", self.embedder)
    }
}

pub fn install(ctx: &Ctx) -> anyhow::Result<ExitStatus> {
    let set = ipseity_models::install(&ctx.models_dir, &StderrReporter)?;
    ctx.out.emit(&Installed {
        models_dir: ctx.models_dir.display().to_string(),
        detector: set.detector.display().to_string(),
        landmarks: set.landmarks.display().to_string(),
        embedder: set.embedder.display().to_string(),
    })?;
    Ok(ExitStatus::Success)
}
