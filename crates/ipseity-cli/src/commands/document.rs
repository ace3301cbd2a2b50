//! `ipseity document mrz`: a machine-readable zone, field by field, with every
//! check digit by name.

use std::io::{self, Read as _, Write};

use ipseity_document::{ChipContents, ChipFile, ImageFormat, Mrz};

use crate::args::{ChipReadArgs, MrzArgs};
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

/// Most files read from a chip directory, and the largest (DG3's fingerprints
/// are the biggest group a chip holds, well under this).
const MAX_CHIP_FILES: usize = 64;
const MAX_CHIP_FILE_BYTES: u64 = 4 << 20;

#[derive(serde::Serialize)]
struct FaceSummary {
    format: ImageFormat,
    record: &'static str,
    width: Option<u16>,
    height: Option<u16>,
    bytes: usize,
}

#[derive(serde::Serialize)]
struct ChipReport {
    files: Vec<String>,
    lds_version: Option<String>,
    listed_but_missing: Vec<String>,
    dg1: Option<MrzReport>,
    faces: Vec<FaceSummary>,
    errors: Vec<String>,
    printed_zone_matches_dg1: Option<bool>,
    authenticity: &'static str,
}

fn file_name(f: ChipFile) -> String {
    match f {
        ChipFile::Com => "EF.COM".into(),
        ChipFile::Sod => "EF.SOD".into(),
        ChipFile::Dg(n) => format!("DG{n}"),
    }
}

impl Render for ChipReport {
    fn render_text(&self, w: &mut dyn Write) -> io::Result<()> {
        writeln!(w, "files: {}", self.files.join(", "))?;
        if let Some(v) = &self.lds_version {
            writeln!(w, "LDS version: {v}")?;
        }
        if !self.listed_but_missing.is_empty() {
            writeln!(
                w,
                "listed in EF.COM but missing: {}",
                self.listed_but_missing.join(", ")
            )?;
        }
        if let Some(z) = &self.dg1 {
            writeln!(w, "DG1:")?;
            z.render_text(w)?;
        }
        for (i, f) in self.faces.iter().enumerate() {
            let size = match (f.width, f.height) {
                (Some(x), Some(y)) => format!(", {x}x{y}"),
                _ => String::new(),
            };
            writeln!(
                w,
                "DG2 face {}: {:?}{size}, {} bytes ({})",
                i + 1,
                f.format,
                f.bytes,
                f.record
            )?;
        }
        for e in &self.errors {
            writeln!(w, "error: {e}")?;
        }
        if let Some(m) = self.printed_zone_matches_dg1 {
            writeln!(w, "printed zone matches DG1: {m}")?;
        }
        writeln!(w, "authenticity: {}", self.authenticity)
    }
}

pub fn read(ctx: &Ctx, args: &ChipReadArgs) -> anyhow::Result<ExitStatus> {
    let dir = &args.chip;
    let entries = std::fs::read_dir(dir)
        .map_err(|e| CliError::input("invalid_input", format!("{}: {e}", dir.display())))?;
    let mut files: Vec<(ChipFile, Vec<u8>)> = vec![];
    for (i, entry) in entries.enumerate() {
        if i >= MAX_CHIP_FILES * 4 {
            return Err(CliError::input(
                "invalid_input",
                format!(
                    "{}: more than {} entries; not a chip dump",
                    dir.display(),
                    MAX_CHIP_FILES * 4
                ),
            )
            .into());
        }
        let entry = entry?;
        let Some(kind) = ChipFile::from_name(&entry.file_name().to_string_lossy()) else {
            continue;
        };
        if files.iter().any(|(k, _)| *k == kind) {
            return Err(CliError::input(
                "invalid_input",
                format!("{}: two files for {}", dir.display(), file_name(kind)),
            )
            .into());
        }
        let bytes = crate::files::read_regular(&entry.path(), MAX_CHIP_FILE_BYTES, "too_large")?;
        files.push((kind, bytes));
        if files.len() > MAX_CHIP_FILES {
            return Err(CliError::input("invalid_input", "too many chip files").into());
        }
    }
    if files.is_empty() {
        return Err(CliError::input(
            "invalid_input",
            format!("{}: no chip files (EF.COM, DG1, DG2, ...)", dir.display()),
        )
        .into());
    }
    let c = ChipContents::read(files.iter().map(|(k, b)| (*k, b.as_slice())));
    let mut errors = vec![];
    let mut report = ChipReport {
        files: c.present.iter().map(|f| file_name(*f)).collect(),
        lds_version: None,
        listed_but_missing: vec![],
        dg1: None,
        faces: vec![],
        errors: vec![],
        printed_zone_matches_dg1: None,
        authenticity: "not checked: passive authentication (the SOD's signature and its chain \
                       to a CSCA) is not implemented yet, so nothing here is proven genuine",
    };
    match c.com {
        Some(Ok(com)) => {
            report.lds_version = Some(com.lds_version.clone());
            for tag in com.tags {
                let dg = match tag {
                    0x61 => Some(1),
                    0x75 => Some(2),
                    0x63 => Some(3),
                    0x76 => Some(4),
                    0x65..=0x6F => Some((tag - 0x65 + 5) as u8),
                    0x70 => Some(16),
                    _ => None,
                };
                if let Some(n) = dg {
                    if !c.present.contains(&ChipFile::Dg(n)) {
                        report.listed_but_missing.push(format!("DG{n}"));
                    }
                }
            }
        }
        Some(Err(e)) => errors.push(e.to_string()),
        None => {}
    }
    let mut failed = false;
    match c.dg1 {
        Some(Ok(m)) => {
            if !args.mrz.is_empty() {
                let printed = Mrz::parse(&args.mrz.join("\n"))?;
                report.printed_zone_matches_dg1 = Some(printed.lines == m.lines);
                failed |= printed.lines != m.lines;
            }
            failed |= !m.is_valid();
            report.dg1 = Some(MrzReport {
                valid: m.is_valid(),
                mrz: m,
            });
        }
        Some(Err(e)) => errors.push(e.to_string()),
        None => {}
    }
    match c.dg2 {
        Some(Ok(faces)) => {
            report.faces = faces
                .iter()
                .map(|f| FaceSummary {
                    format: f.format,
                    record: f.record,
                    width: f.size.map(|s| s.0),
                    height: f.size.map(|s| s.1),
                    bytes: f.data.len(),
                })
                .collect();
        }
        Some(Err(e)) => errors.push(e.to_string()),
        None => {}
    }
    failed |= !errors.is_empty();
    report.errors = errors;
    ctx.out.emit(&report)?;
    Ok(if failed {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}
