//! `ipseity document mrz`: a machine-readable zone, field by field, with every
//! check digit by name.

use std::io::{self, Read as _, Write};

use ipseity_document::Mrz;

use crate::args::MrzArgs;
use crate::context::Ctx;
use crate::error::{CliError, ExitStatus};
use crate::output::Render;

/// More than any zone and its line breaks.
const MAX_MRZ_BYTES: u64 = 4096;

/// The zone and whether every check passed.
#[derive(serde::Serialize)]
struct MrzReport {
    valid: bool,
    #[serde(flatten)]
    mrz: Mrz,
}

impl Render for MrzReport {
    fn render_text(&self, w: &mut dyn Write) -> io::Result<()> {
        writeln!(w, "valid: {}", self.valid)?;
        self.mrz.render_text(w)
    }
}

impl Render for Mrz {
    fn render_text(&self, w: &mut dyn Write) -> io::Result<()> {
        let format = serde_json::to_value(self.format)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        writeln!(w, "format: {format}")?;
        for (k, v) in [
            ("document_code", &self.document_code),
            ("issuing_state", &self.issuing_state),
            ("primary_identifier", &self.primary_identifier),
            ("secondary_identifier", &self.secondary_identifier),
            ("document_number", &self.document_number),
            ("nationality", &self.nationality),
            ("date_of_birth", &self.date_of_birth),
            ("sex", &self.sex),
            ("date_of_expiry", &self.date_of_expiry),
            ("optional_data", &self.optional_data),
            ("optional_data_2", &self.optional_data_2),
        ] {
            writeln!(w, "{k}: {v}")?;
        }
        for c in &self.checks {
            if c.ok {
                writeln!(w, "check {}: ok", c.name)?;
            } else {
                writeln!(
                    w,
                    "check {}: FAILED (printed {}, computed {})",
                    c.name, c.printed, c.computed
                )?;
            }
        }
        Ok(())
    }
}

pub fn mrz(ctx: &Ctx, args: &MrzArgs) -> anyhow::Result<ExitStatus> {
    let text = match &args.file {
        Some(p) if p.as_os_str() == "-" => {
            let mut bytes = vec![];
            io::stdin()
                .take(MAX_MRZ_BYTES + 1)
                .read_to_end(&mut bytes)?;
            if bytes.len() as u64 > MAX_MRZ_BYTES {
                return Err(CliError::input(
                    "too_large",
                    format!("standard input: over the {MAX_MRZ_BYTES}-byte limit"),
                )
                .into());
            }
            bytes
        }
        Some(p) => crate::files::read_regular(p, MAX_MRZ_BYTES, "too_large")?,
        None => args.lines.join("\n").into_bytes(),
    };
    let text = String::from_utf8(text)
        .map_err(|_| CliError::input("malformed_mrz", "the zone is not UTF-8 text"))?;
    let m = Mrz::parse(&text)?;
    let valid = m.is_valid();
    ctx.out.emit(&MrzReport { valid, mrz: m })?;
    Ok(if valid {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}
