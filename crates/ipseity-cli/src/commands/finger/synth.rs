//! `ipseity finger synth`: synthetic prints with ground truth, written as PNG images and
//! `FFFFF_I.minutiae.json` files.

use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::Context as _;
use ipseity_finger::synth;
use rayon::prelude::*;
use serde::Serialize;

use crate::args::{FingerSynthArgs, SynthDifficulty};
use crate::context::Ctx;
use crate::error::{CliError, ExitStatus};
use crate::output::Render;

#[derive(Serialize)]
struct SynthReport {
    difficulty: &'static str,
    fingers: u32,
    impressions: u32,
    seed: u64,
    out: PathBuf,
    files: usize,
}

impl Render for SynthReport {
    fn render_text(&self, w: &mut dyn Write) -> io::Result<()> {
        writeln!(
            w,
            "wrote {} fingers x {} {} impressions (seed {}) to {} ({} files)",
            self.fingers,
            self.impressions,
            self.difficulty,
            self.seed,
            self.out.display(),
            self.files
        )
    }
}

/// The generator settings for a difficulty.
pub fn synth_config(d: SynthDifficulty) -> synth::SynthConfig {
    match d {
        SynthDifficulty::Standard => synth::SynthConfig::default(),
        SynthDifficulty::Hard => synth::SynthConfig::hard(),
        SynthDifficulty::Sensor => synth::SynthConfig::sensor(),
    }
}

/// Ground-truth minutiae as the JSON array written beside each synthetic image.
fn truth_json(minutiae: &[ipseity_finger::Minutia]) -> String {
    // Serialising plain structs of numbers and unit enums cannot fail; non-finite
    // coordinates, which the generator never makes, would come out as null.
    serde_json::to_string_pretty(minutiae).unwrap_or_else(|_| String::from("[]"))
}

pub fn run(ctx: &Ctx, args: &FingerSynthArgs) -> anyhow::Result<ExitStatus> {
    if !(1..=1_000_000).contains(&args.fingers) || !(1..=100).contains(&args.impressions) {
        return Err(CliError::input(
            "usage",
            "--fingers must be 1 to 1,000,000 and --impressions 1 to 100",
        )
        .into());
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let cfg = synth_config(args.difficulty);
    let bar = super::super::progress(args.fingers as usize, "synth");
    (1..=args.fingers)
        .into_par_iter()
        .map(|f| -> anyhow::Result<()> {
            let master = synth::master(&cfg, args.seed, f);
            for k in 1..=args.impressions {
                let imp = synth::impression(&cfg, &master, args.seed, f, k);
                let stem = args.out.join(format!("{f:05}_{k}"));
                let png = stem.with_extension("png");
                imp.image
                    .save(&png)
                    .with_context(|| format!("writing {}", png.display()))?;
                let truth = stem.with_extension("minutiae.json");
                std::fs::write(&truth, truth_json(&imp.minutiae))
                    .with_context(|| format!("writing {}", truth.display()))?;
            }
            bar.inc(1);
            Ok(())
        })
        .collect::<anyhow::Result<()>>()?;
    bar.finish_and_clear();
    ctx.out.emit(&SynthReport {
        difficulty: match args.difficulty {
            SynthDifficulty::Standard => "standard",
            SynthDifficulty::Hard => "hard",
            SynthDifficulty::Sensor => "sensor",
        },
        fingers: args.fingers,
        impressions: args.impressions,
        seed: args.seed,
        out: args.out.clone(),
        files: 2 * args.fingers as usize * args.impressions as usize,
    })?;
    Ok(ExitStatus::Success)
}
