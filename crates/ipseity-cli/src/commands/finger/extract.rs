//! `ipseity finger extract`: minutiae from an impression, written as an ISO/ANSI record
//! (0600, through a private temporary file; never over the input).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use ipseity_finger::extract::{self, ExtractConfig};
use ipseity_finger::sample;
use ipseity_finger::{iso, FingerPosition};
use serde::Serialize;

use crate::args::{FingerExtractArgs, RecordFormat};
use crate::context::Ctx;
use crate::error::{CliError, ExitStatus};
use crate::files;
use crate::output::Render;

use super::{read_bounded, FingerSpec};

#[derive(Serialize)]
struct Extracted {
    out: PathBuf,
    format: &'static str,
    position: &'static str,
    minutiae: usize,
    quality: u8,
    /// The impression's resolution; the record is at 500 ppi.
    source_ppi: u16,
}

impl Render for Extracted {
    fn render_text(&self, w: &mut dyn Write) -> io::Result<()> {
        writeln!(
            w,
            "wrote {} ({} record, {}, {} minutiae, quality {}{})",
            self.out.display(),
            self.format,
            self.position,
            self.minutiae,
            self.quality,
            if self.source_ppi == 500 {
                String::new()
            } else {
                format!(", from {} ppi brought to 500", self.source_ppi)
            }
        )
    }
}

/// Refuses an output path that is the input image (or a link to it): the rename
/// would replace the impression with its record.
fn refuse_overwriting_input(image: &Path, out: &Path) -> anyhow::Result<()> {
    let same = match (std::fs::canonicalize(image), std::fs::canonicalize(out)) {
        (Ok(i), Ok(o)) => i == o,
        _ => false,
    };
    if same {
        return Err(CliError::input(
            "usage",
            format!(
                "--out {} is the input image; give another path for the record",
                out.display()
            ),
        )
        .into());
    }
    Ok(())
}

pub fn run(ctx: &Ctx, args: &FingerExtractArgs) -> anyhow::Result<ExitStatus> {
    let position = FingerPosition::parse(&args.position).ok_or_else(|| {
        CliError::input(
            "usage",
            format!("unknown finger position {:?}", args.position),
        )
    })?;
    let spec = FingerSpec {
        position,
        path: args.image.clone(),
        ppi: args.ppi,
    };
    refuse_overwriting_input(&args.image, &args.out)?;
    let bytes = read_bounded(&spec.path)?;
    let decoded = sample::decode_impression_at(&bytes, spec.ppi)
        .with_context(|| spec.path.display().to_string())?;
    let ex = extract::extract(&decoded.image, position, &ExtractConfig::default())
        .map_err(sample::SampleError::from)
        .with_context(|| spec.path.display().to_string())?;
    let format = match args.format {
        RecordFormat::Iso => iso::Format::Iso19794_2,
        RecordFormat::Ansi => iso::Format::Ansi378,
    };
    let record = iso::write(std::slice::from_ref(&ex.template), format)
        .map_err(sample::SampleError::from)?;
    // The record is biometric data: the file is created readable by its owner only.
    files::write_private_atomic(&args.out, &record)?;
    ctx.out.emit(&Extracted {
        out: args.out.clone(),
        format: format.name(),
        position: position.name(),
        minutiae: ex.template.minutiae.len(),
        quality: ex.quality.score,
        source_ppi: decoded.source_ppi,
    })?;
    Ok(ExitStatus::Success)
}
