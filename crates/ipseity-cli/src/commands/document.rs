//! `ipseity document`: a machine-readable zone field by field with every check digit
//! by name (`mrz`); a chip dump read and passively authenticated (`read`); the chip's
//! portrait against a live capture in one call (`verify`); and synthetic test chips
//! (`sample`, hidden).

use std::io::{self, Read as _, Write};

use std::path::Path;

use ipseity_document::finger::Compression;
use ipseity_document::passive::{self, Outcome, PassiveAuthInput, PassiveAuthReport};
use ipseity_document::{ChipContents, ChipFile, ImageFormat, MasterListReport, Mrz, TrustStore};
use ipseity_engine::document::{ChipInput, ChipToLive, Liveness};
use ipseity_engine::face::{FaceEnrolment, LiveFaceGallery};

use ipseity_core::{AuditEvent, Decision, Modality, SourceKind, SubjectId, Template};
use ipseity_face::decode::{decode_image, DecodeLimits};
use ipseity_face::FaceAnalysis;

use crate::args::{ChipReadArgs, ChipSampleArgs, ChipVerifyArgs, MrzArgs, ReaderArgs};
use crate::context::{load_face_image, single_face, Ctx};
use crate::error::{CliError, ExitStatus};
use crate::output::Render;
use crate::policy::PolicyReport;

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

/// One DG3 finger image: what the record states, and for WSQ whether it decodes.
#[derive(serde::Serialize)]
struct FingerSummary {
    position: u8,
    position_name: &'static str,
    impression: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    impression_name: Option<&'static str>,
    quality: u8,
    width: u16,
    height: u16,
    ppi: u16,
    compression: Compression,
    record: &'static str,
    bytes: usize,
    /// For WSQ: whether the image decodes, and to what size.
    #[serde(skip_serializing_if = "Option::is_none")]
    decoded: Option<DecodedSize>,
}

#[derive(serde::Serialize)]
struct DecodedSize {
    width: u32,
    height: u32,
}

/// Largest side and pixel count of a DG3 WSQ image decoded to check it (a four-finger
/// slap at 1000 ppi is about 3200 x 3000), whatever larger size its record states.
const MAX_FINGER_SIDE: u32 = 4096;
const MAX_FINGER_PIXELS: u64 = 4096 * 4096;

/// DG3's images, and an error for each WSQ image that does not decode to the size its
/// record states. Only sizes and structure go into the messages, never image content.
fn finger_summaries(
    fingers: &[ipseity_document::FingerImage],
    errors: &mut Vec<String>,
) -> Vec<FingerSummary> {
    let mut out = vec![];
    for (i, f) in fingers.iter().enumerate() {
        let mut decoded = None;
        if f.compression == Compression::Wsq {
            // No larger than the record says: a WSQ header claiming more is refused
            // before anything image-sized is allocated.
            let limits = ipseity_finger::wsq::WsqLimits {
                max_side: u32::from(f.width.max(f.height)).min(MAX_FINGER_SIDE),
                max_pixels: (u64::from(f.width) * u64::from(f.height)).min(MAX_FINGER_PIXELS),
            };
            match ipseity_finger::wsq::decode_with_limits(&f.data, &limits) {
                Ok(w) => {
                    let (width, height) = w.image.dimensions();
                    if (width, height) != (u32::from(f.width), u32::from(f.height)) {
                        errors.push(format!(
                            "DG3: finger image {}: WSQ decodes to {width}x{height}, its record \
                             says {}x{}",
                            i + 1,
                            f.width,
                            f.height
                        ));
                    }
                    decoded = Some(DecodedSize { width, height });
                }
                Err(e) => errors.push(format!("DG3: finger image {}: {e}", i + 1)),
            }
        }
        out.push(FingerSummary {
            position: f.position,
            position_name: f.position_name(),
            impression: f.impression,
            impression_name: f.impression_name(),
            quality: f.quality,
            width: f.width,
            height: f.height,
            ppi: f.ppi,
            compression: f.compression,
            record: f.record,
            bytes: f.data.len(),
            decoded,
        });
    }
    out
}

#[derive(serde::Serialize)]
struct ChipReport {
    /// How the chip was read, when read through a reader rather than from a dump.
    #[serde(skip_serializing_if = "Option::is_none")]
    reader: Option<ReaderSummary>,
    files: Vec<String>,
    lds_version: Option<String>,
    listed_but_missing: Vec<String>,
    dg1: Option<MrzReport>,
    faces: Vec<FaceSummary>,
    /// DG3's finger images.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    fingers: Vec<FingerSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dg11: Option<ipseity_document::lds::Dg11>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dg12: Option<ipseity_document::lds::Dg12>,
    /// What EF.CardAccess, EF.CardSecurity and DG14 announce, by kind of SecurityInfo.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    security_infos: Vec<SecurityInfoSummary>,
    /// DG15's active-authentication key, its length in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    active_authentication_key_bytes: Option<usize>,
    /// EF.CardSecurity's own signature and signer chain (with --csca).
    #[serde(skip_serializing_if = "Option::is_none")]
    card_security_authentication: Option<PassiveAuthReport>,
    errors: Vec<String>,
    printed_zone_matches_dg1: Option<bool>,
    authenticity: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    trust: Option<TrustSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    passive_authentication: Option<PassiveAuthReport>,
}

/// How a chip was read through a reader.
#[derive(serde::Serialize)]
struct ReaderSummary {
    access: ipseity_document::reader::Access,
    secure_messaging: ipseity_document::sm::Cipher,
    #[serde(skip_serializing_if = "Option::is_none")]
    pace_not_used: Option<String>,
    /// Files EF.COM lists that the chip withheld, with its status word.
    withheld: Vec<String>,
}

impl ReaderSummary {
    /// How the chip was opened and what it withheld, a line each.
    fn render(&self, w: &mut dyn Write) -> io::Result<()> {
        let access = match &self.access {
            ipseity_document::reader::Access::Pace { protocol } => format!("PACE {protocol}"),
            ipseity_document::reader::Access::Bac => "BAC".into(),
        };
        writeln!(
            w,
            "read from the chip: {access}, secure messaging {:?}",
            self.secure_messaging
        )?;
        if let Some(why) = &self.pace_not_used {
            writeln!(w, "PACE not used: {why}")?;
        }
        if !self.withheld.is_empty() {
            writeln!(w, "withheld by the chip: {}", self.withheld.join(", "))?;
        }
        Ok(())
    }

    fn of(read: &ipseity_document::reader::ChipRead) -> Self {
        Self {
            access: read.access.clone(),
            secure_messaging: read.cipher,
            pace_not_used: read.pace_skipped.clone(),
            withheld: read
                .withheld
                .iter()
                .map(|(f, sw)| {
                    let why = if *sw == 0x6982 {
                        ": needs extended access control"
                    } else {
                        ""
                    };
                    format!("{} ({sw:04X}{why})", file_name(*f))
                })
                .collect(),
        }
    }
}

/// One file's SecurityInfos, counted by kind.
#[derive(serde::Serialize)]
struct SecurityInfoSummary {
    file: &'static str,
    kinds: std::collections::BTreeMap<String, usize>,
}

fn summarise(
    file: &'static str,
    infos: &[ipseity_document::lds::SecurityInfo],
) -> SecurityInfoSummary {
    let mut kinds = std::collections::BTreeMap::new();
    for i in infos {
        let k = serde_json::to_value(i.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        *kinds.entry(k).or_insert(0) += 1;
    }
    SecurityInfoSummary { file, kinds }
}

/// The CSCAs given with --csca: how many, and each master list's own check.
#[derive(serde::Serialize)]
pub(crate) struct TrustSummary {
    certificates: usize,
    master_lists: Vec<NamedMasterList>,
}

#[derive(serde::Serialize)]
struct NamedMasterList {
    file: String,
    #[serde(flatten)]
    report: MasterListReport,
}

fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass => "pass",
        Outcome::Fail => "FAIL",
        Outcome::NotChecked => "not checked",
    }
}

fn file_name(f: ChipFile) -> String {
    match f {
        ChipFile::Com => "EF.COM".into(),
        ChipFile::Sod => "EF.SOD".into(),
        ChipFile::Dg(n) => format!("DG{n}"),
        ChipFile::CardAccess => "EF.CardAccess".into(),
        ChipFile::CardSecurity => "EF.CardSecurity".into(),
    }
}

impl Render for ChipReport {
    fn render_text(&self, w: &mut dyn Write) -> io::Result<()> {
        if let Some(r) = &self.reader {
            r.render(w)?;
        }
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
        for (i, f) in self.fingers.iter().enumerate() {
            let decoded = match &f.decoded {
                Some(d) => format!("; decodes to {}x{}", d.width, d.height),
                None => String::new(),
            };
            writeln!(
                w,
                "DG3 finger {}: {}, {}x{}, {} ppi, {}, {} bytes ({}){decoded}",
                i + 1,
                f.position_name,
                f.width,
                f.height,
                f.ppi,
                f.compression.name(),
                f.bytes,
                f.record
            )?;
        }
        if let Some(d) = &self.dg11 {
            writeln!(w, "DG11:")?;
            let name = |n: &ipseity_document::lds::Name| {
                if n.secondary.is_empty() {
                    n.primary.clone()
                } else {
                    format!("{}, {}", n.primary, n.secondary)
                }
            };
            if let Some(n) = &d.name_of_holder {
                writeln!(w, "  name of holder: {}", name(n))?;
            }
            for n in &d.other_names {
                writeln!(w, "  other name: {}", name(n))?;
            }
            let opt = [
                ("personal number", &d.personal_number),
                ("full date of birth", &d.full_date_of_birth),
                ("telephone", &d.telephone),
                ("profession", &d.profession),
                ("title", &d.title),
                ("personal summary", &d.personal_summary),
            ];
            for (what, v) in opt {
                if let Some(v) = v {
                    writeln!(w, "  {what}: {v}")?;
                }
            }
            for (what, v) in [
                ("place of birth", &d.place_of_birth),
                ("address", &d.address),
                ("other document numbers", &d.other_td_numbers),
            ] {
                if !v.is_empty() {
                    writeln!(w, "  {what}: {}", v.join(", "))?;
                }
            }
        }
        if let Some(d) = &self.dg12 {
            writeln!(w, "DG12:")?;
            for (what, v) in [
                ("issuing authority", &d.issuing_authority),
                ("date of issue", &d.date_of_issue),
                ("endorsements", &d.endorsements),
                ("tax or exit requirements", &d.tax_exit_requirements),
                ("personalized at", &d.personalization_time),
                ("personalization system", &d.personalization_system),
            ] {
                if let Some(v) = v {
                    writeln!(w, "  {what}: {v}")?;
                }
            }
        }
        for si in &self.security_infos {
            let kinds: Vec<String> = si
                .kinds
                .iter()
                .map(|(k, n)| format!("{} x{n}", k.replace('_', " ")))
                .collect();
            writeln!(w, "{} security infos: {}", si.file, kinds.join(", "))?;
        }
        if let Some(n) = self.active_authentication_key_bytes {
            writeln!(w, "DG15: active-authentication public key ({n} bytes)")?;
        }
        if let Some(p) = &self.card_security_authentication {
            writeln!(
                w,
                "EF.CardSecurity authentication: {}",
                outcome_word(p.verdict)
            )?;
            for c in &p.checks {
                writeln!(
                    w,
                    "  check {}: {} ({})",
                    c.name,
                    outcome_word(c.outcome),
                    c.detail
                )?;
            }
        }
        for e in &self.errors {
            writeln!(w, "error: {e}")?;
        }
        if let Some(m) = self.printed_zone_matches_dg1 {
            writeln!(w, "printed zone matches DG1: {m}")?;
        }
        if let Some(t) = &self.trust {
            writeln!(w, "trusted CSCA certificates: {}", t.certificates)?;
            for m in &t.master_lists {
                writeln!(
                    w,
                    "master list {}: {} certificates, signature {} ({}), signer certificate {} ({})",
                    m.file,
                    m.report.certificates,
                    outcome_word(m.report.signature.outcome),
                    m.report.signature.detail,
                    outcome_word(m.report.signer_certificate.outcome),
                    m.report.signer_certificate.detail
                )?;
            }
        }
        if let Some(p) = &self.passive_authentication {
            // Without --csca the signer cannot be traced, which is not a failure: only a
            // check that ran and failed is.
            let failed = p.checks.iter().any(|c| c.outcome == Outcome::Fail);
            let verdict = if self.trust.is_none() && !failed {
                "not complete (no --csca: the signer is not traced to a CSCA)"
            } else {
                outcome_word(p.verdict)
            };
            writeln!(w, "passive authentication: {verdict}")?;
            for c in &p.checks {
                let optional = if c.required { "" } else { ", optional" };
                writeln!(
                    w,
                    "  check {}: {}{optional} ({})",
                    c.name,
                    outcome_word(c.outcome),
                    c.detail
                )?;
            }
            if let Some(ds) = &p.document_signer {
                writeln!(
                    w,
                    "  document signer: {} (serial {}, {}, valid {} to {})",
                    ds.subject, ds.serial, ds.key, ds.not_before, ds.not_after
                )?;
            }
            if let Some(c) = &p.csca {
                writeln!(w, "  CSCA: {} (serial {}, {})", c.subject, c.serial, c.key)?;
            }
            if let (Some(t), Some(src)) = (&p.validity_time, p.validity_time_source) {
                let src = match src {
                    passive::TimeSource::SigningTime => "the SOD's signingTime",
                    passive::TimeSource::Now => "now: the SOD has no signingTime",
                };
                writeln!(w, "  validity judged at {t} ({src})")?;
            }
        }
        writeln!(w, "authenticity: {}", self.authenticity)
    }
}

/// Most files read from a --csca folder, and the largest (a master list is
/// under 1 MiB; this leaves room).
const MAX_TRUST_FILES: usize = 4096;
const MAX_TRUST_FILE_BYTES: u64 = passive::MAX_MASTER_LIST_BYTES as u64;
pub(crate) const MAX_CRL_BYTES: u64 = 16 << 20;

fn trust_error(path: &Path, e: impl std::fmt::Display) -> anyhow::Error {
    CliError::input("invalid_trust_anchor", format!("{}: {e}", path.display())).into()
}

/// Adds one file: certificates (DER or PEM) or else a master list.
fn add_trust_file(
    store: &mut TrustStore,
    lists: &mut Vec<NamedMasterList>,
    path: &Path,
) -> anyhow::Result<()> {
    let bytes = crate::files::read_regular(path, MAX_TRUST_FILE_BYTES, "too_large")?;
    if store.add_certificates(&bytes).is_ok() {
        return Ok(());
    }
    let report = store.add_master_list(&bytes).map_err(|e| {
        trust_error(
            path,
            format!("neither a CSCA certificate nor a master list ({e})"),
        )
    })?;
    lists.push(NamedMasterList {
        file: path.display().to_string(),
        report,
    });
    Ok(())
}

/// Reads --csca: one file, or every certificate and master list in a folder
/// (by extension: .der .cer .crt .pem .ml .bin; anything else is ignored).
pub(crate) fn load_trust(path: &Path) -> anyhow::Result<(TrustStore, TrustSummary)> {
    let mut store = TrustStore::new();
    let mut lists = vec![];
    if path.is_dir() {
        let entries = std::fs::read_dir(path).map_err(|e| trust_error(path, e))?;
        let mut files = vec![];
        for entry in entries {
            let p = entry.map_err(|e| trust_error(path, e))?.path();
            let ext = p
                .extension()
                .map(|e| e.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_default();
            if p.is_file() && ["der", "cer", "crt", "pem", "ml", "bin"].contains(&ext.as_str()) {
                files.push(p);
            }
            if files.len() > MAX_TRUST_FILES {
                return Err(trust_error(
                    path,
                    format!("more than {MAX_TRUST_FILES} certificate files"),
                ));
            }
        }
        files.sort();
        for f in &files {
            add_trust_file(&mut store, &mut lists, f)?;
        }
    } else {
        add_trust_file(&mut store, &mut lists, path)?;
    }
    if store.is_empty() {
        return Err(trust_error(path, "no CSCA certificate found"));
    }
    let summary = TrustSummary {
        certificates: store.len(),
        master_lists: lists,
    };
    Ok((store, summary))
}

/// The chip files of a reader's dump, by LDS name (other files are ignored).
fn read_chip_dir(dir: &Path) -> anyhow::Result<Vec<(ChipFile, Vec<u8>)>> {
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
    Ok(files)
}

/// A chip's files, and how they were read when read from the chip itself.
type ChipSource = (Vec<(ChipFile, Vec<u8>)>, Option<ReaderSummary>);

/// The chip's files: a reader's dump (`--chip DIR`), or the chip itself through a
/// PC/SC reader (`--reader`, opened with the printed zone's key), then saved with
/// `--save DIR` if asked.
fn chip_files(
    chip: Option<&Path>,
    reader: &ReaderArgs,
    mrz: &[String],
) -> anyhow::Result<ChipSource> {
    let Some(name) = &reader.reader else {
        let dir = chip.ok_or_else(|| CliError::input("invalid_input", "--chip DIR or --reader"))?;
        return Ok((read_chip_dir(dir)?, None));
    };
    let printed = Mrz::parse(&mrz.join("\n"))?;
    let key = printed.key_information().ok_or_else(|| {
        CliError::input(
            "invalid_input",
            "the zone given with --mrz has no document number, date of birth and date of \
             expiry to open the chip with",
        )
    })?;
    let read = crate::chip_reader::read(name, &key)?;
    if let Some(dir) = &reader.save {
        save_chip_files(dir, &read.files)?;
    }
    let summary = ReaderSummary::of(&read);
    Ok((read.files, Some(summary)))
}

/// Writes a chip's files into `dir` under the names `--chip` reads back.
fn save_chip_files(dir: &Path, files: &[(ChipFile, Vec<u8>)]) -> anyhow::Result<()> {
    let fail =
        |e: std::io::Error| CliError::input("invalid_input", format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(fail)?;
    for (f, b) in files {
        let name = match f {
            ChipFile::Dg(n) => format!("DG{n}.bin"),
            other => file_name(*other),
        };
        std::fs::write(dir.join(name), b).map_err(fail)?;
    }
    Ok(())
}

/// Seconds since 1970, to judge certificates' validity when the SOD has no signingTime.
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn read(ctx: &Ctx, args: &ChipReadArgs) -> anyhow::Result<ExitStatus> {
    let (files, reader) = chip_files(args.chip.as_deref(), &args.reader, &args.mrz)?;
    let c = ChipContents::read(files.iter().map(|(k, b)| (*k, b.as_slice())));
    let mut errors = vec![];
    let mut report = ChipReport {
        reader,
        files: c.present.iter().map(|f| file_name(*f)).collect(),
        lds_version: None,
        listed_but_missing: vec![],
        dg1: None,
        faces: vec![],
        fingers: vec![],
        dg11: None,
        dg12: None,
        security_infos: vec![],
        active_authentication_key_bytes: None,
        card_security_authentication: None,
        errors: vec![],
        printed_zone_matches_dg1: None,
        authenticity: String::new(),
        trust: None,
        passive_authentication: None,
    };
    match c.com {
        Some(Ok(com)) => {
            report.lds_version = Some(com.lds_version.clone());
            for tag in com.tags {
                if let Some(n) = ipseity_document::chip::data_group_of_tag(tag) {
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
    match c.dg3 {
        Some(Ok(fingers)) => report.fingers = finger_summaries(&fingers, &mut errors),
        Some(Err(e)) => errors.push(e.to_string()),
        None => {}
    }
    match c.dg11 {
        Some(Ok(d)) => report.dg11 = Some(d),
        Some(Err(e)) => errors.push(e.to_string()),
        None => {}
    }
    match c.dg12 {
        Some(Ok(d)) => report.dg12 = Some(d),
        Some(Err(e)) => errors.push(e.to_string()),
        None => {}
    }
    for (file, infos) in [
        ("EF.CardAccess", c.card_access),
        ("EF.CardSecurity", c.card_security),
        ("DG14", c.dg14),
    ] {
        match infos {
            Some(Ok(i)) => report.security_infos.push(summarise(file, &i)),
            Some(Err(e)) => errors.push(e.to_string()),
            None => {}
        }
    }
    match c.dg15 {
        Some(Ok(k)) => report.active_authentication_key_bytes = Some(k.len()),
        Some(Err(e)) => errors.push(e.to_string()),
        None => {}
    }
    // Passive authentication: whenever there is a SOD, and always with --csca
    // (where a missing SOD is itself a failed check).
    let trust = match &args.csca {
        Some(p) => Some(load_trust(p)?),
        None => None,
    };
    let crl = match &args.crl {
        Some(p) => Some(crate::files::read_regular(p, MAX_CRL_BYTES, "too_large")?),
        None => None,
    };
    let sod = files.iter().find(|(k, _)| *k == ChipFile::Sod);
    if sod.is_some() || trust.is_some() {
        let dgs = ipseity_document::chip::data_groups(&files);
        let pa = passive::authenticate(&PassiveAuthInput {
            sod: sod.map(|(_, b)| b.as_slice()).unwrap_or_default(),
            data_groups: &dgs,
            trust: trust.as_ref().map(|(t, _)| t),
            crl: crl.as_deref(),
            now: now(),
        });
        let any_failed = pa
            .checks
            .iter()
            .any(|c| c.required && c.outcome == Outcome::Fail);
        report.authenticity = if sod.is_none() {
            "FAILED: no EF.SOD in the chip dump, so nothing can be authenticated".into()
        } else if pa.passed() {
            "genuine: passive authentication passed (the SOD's signature, its signer's chain \
             to a trusted CSCA and the hash of every data group present)"
                .into()
        } else if any_failed {
            "FAILED: passive authentication found a failed check; do not trust this chip's data"
                .into()
        } else {
            "not checked: the SOD and data groups agree, but without --csca the signer is not \
             traced to a state, so nothing here is proven genuine"
                .into()
        };
        // With --csca the verdict is what was asked for; without, only a
        // check that actually failed counts.
        failed |= if trust.is_some() {
            !pa.passed()
        } else {
            any_failed
        };
        report.passive_authentication = Some(pa);
    } else {
        report.authenticity = "not checked: no EF.SOD in the chip dump and no --csca given, so \
                               nothing here is proven genuine"
            .into();
    }
    // EF.CardSecurity vouches for the chip's PACE and chip-authentication keys; with
    // --csca its own signature and signer are checked like the SOD's.
    if let (Some((t, _)), Some((_, b))) = (
        &trust,
        files.iter().find(|(k, _)| *k == ChipFile::CardSecurity),
    ) {
        let r = passive::authenticate_card_security(b, Some(t));
        failed |= !r.passed();
        report.card_security_authentication = Some(r);
    }
    report.trust = trust.map(|(_, s)| s);
    failed |= !errors.is_empty();
    report.errors = errors;
    ctx.out.emit(&report)?;
    Ok(if failed {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}

/// What `document verify` answers: the engine's decision with its reasons and each
/// step's outcome, the operating point, and whether it was audited. Decisions only: no
/// similarity or liveness probability appears anywhere.
#[derive(serde::Serialize)]
struct ChipVerification {
    /// How the chip was read, when read through a reader (`--reader`).
    #[serde(skip_serializing_if = "Option::is_none")]
    reader: Option<ReaderSummary>,
    #[serde(flatten)]
    check: ChipToLive,
    operating_point: PolicyReport,
    /// Whether the decision went into the data directory's audit log.
    audited: bool,
    /// What `--enrol` did, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    enrolment: Option<HolderEnrolment>,
}

/// The answer to `--enrol`: enrolled, or not and why. The document's data stays in the
/// store (sealed); only the kind of source is said here.
#[derive(serde::Serialize)]
struct HolderEnrolment {
    subject: SubjectId,
    enrolled: bool,
    /// Why nothing was enrolled.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// `document`, when enrolled.
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<SourceKind>,
    /// The enrolled template's quality (one template: the live capture).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    quality: Vec<u8>,
    /// Subjects the face matched, enrolled anyway with `--allow-duplicate`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    allowed_duplicate_of: Vec<SubjectId>,
}

impl HolderEnrolment {
    fn not_done(subject: SubjectId, reason: impl Into<String>) -> Self {
        Self {
            subject,
            enrolled: false,
            reason: Some(reason.into()),
            source: None,
            quality: vec![],
            allowed_duplicate_of: vec![],
        }
    }
}

impl Render for ChipVerification {
    fn render_text(&self, w: &mut dyn Write) -> io::Result<()> {
        let c = &self.check;
        writeln!(w, "{}", c.decision)?;
        if let Some(r) = &self.reader {
            r.render(w)?;
        }
        for r in &c.reasons {
            writeln!(w, "reason {}: {}", r.code, r.detail)?;
        }
        writeln!(w, "passive authentication: {}", c.passive_authentication)?;
        writeln!(w, "printed zone: {}", c.printed_zone.replace('_', " "))?;
        match c.face {
            Some(d) => writeln!(w, "face: {d}")?,
            None => writeln!(w, "face: not compared")?,
        }
        writeln!(w, "liveness: {}", c.liveness.replace('_', " "))?;
        writeln!(w, "operating point: {}", self.operating_point)?;
        if let Some(q) = &c.probe_quality {
            writeln!(
                w,
                "probe quality: {} (weakest factor: {})",
                q.score, q.weakest
            )?;
        }
        writeln!(
            w,
            "audit: {}",
            if self.audited {
                "recorded"
            } else {
                "not recorded (no store in the data directory)"
            }
        )?;
        match &self.enrolment {
            Some(e) if e.enrolled => {
                let q: Vec<String> = e.quality.iter().map(u8::to_string).collect();
                writeln!(
                    w,
                    "enrolment: enrolled {} from the live capture (quality {}), the document \
                     recorded as its source",
                    e.subject,
                    q.join(", ")
                )?;
                if !e.allowed_duplicate_of.is_empty() {
                    let ids: Vec<&str> = e
                        .allowed_duplicate_of
                        .iter()
                        .map(SubjectId::as_str)
                        .collect();
                    writeln!(
                        w,
                        "warning: matches subject {} (enrolled with --allow-duplicate; recorded \
                         in the audit log)",
                        ids.join(", ")
                    )?;
                }
                Ok(())
            }
            Some(e) => writeln!(
                w,
                "enrolment: {} NOT enrolled: {}",
                e.subject,
                e.reason.as_deref().unwrap_or("")
            ),
            None => Ok(()),
        }
    }
}

/// Records the decision in the data directory's audit log when a store is already there
/// and no `ipseity serve` owns it. A chip-to-live check concerns no enrolled subject, so
/// no store is created for it; the report says whether it was recorded.
fn audit_if_store(ctx: &Ctx, decision: Decision) -> anyhow::Result<bool> {
    // A data directory that does not exist holds no store; unlike `list`, nothing here
    // needs one, so that is not an error.
    if !ctx.data_dir.is_dir() || ipseity_server::OwnerLock::held_by_server(&ctx.data_dir) {
        return Ok(false);
    }
    let Some(mut store) = ctx.open_store_existing()? else {
        return Ok(false);
    };
    store.set_actor(Some(&crate::context::cli_actor()));
    audit_decision(ctx, &mut store, decision)?;
    Ok(true)
}

fn audit_decision(
    ctx: &Ctx,
    store: &mut ipseity_store::Store,
    decision: Decision,
) -> anyhow::Result<()> {
    store.record_audit(
        &AuditEvent::Verified {
            modality: Modality::Face,
            decision,
            compared: None,
        },
        None,
        ctx.purpose(),
    )?;
    Ok(())
}

/// What a chip-to-live check leaves for `--enrol`: its answer, the chip's contents, and the
/// live capture's analysis when one was made.
struct Checked<'a> {
    check: &'a ChipToLive,
    chip: &'a ChipContents,
    live: Option<FaceAnalysis>,
}

/// `--enrol`: the holder of an accepted document, from the live capture, through the same
/// enrolment as `ipseity enroll` (duplicate search, one transaction with its audit rows),
/// with the document as its source. Anything but an accept enrols nothing.
fn enrol_holder(
    ctx: &Ctx,
    args: &ChipVerifyArgs,
    store: &mut ipseity_store::Store,
    point: &ipseity_core::OperatingPoint,
    subject: SubjectId,
    checked: Checked<'_>,
) -> anyhow::Result<HolderEnrolment> {
    let Checked { check, chip, live } = checked;
    let source = match ipseity_engine::document::enrolment_source(check, chip) {
        Ok(s) => s,
        Err(why) => return Ok(HolderEnrolment::not_done(subject, why)),
    };
    let Some(face) = live else {
        return Ok(HolderEnrolment::not_done(
            subject,
            "no live face was analysed",
        ));
    };
    let template = Template::new(
        Modality::Face,
        ipseity_face::MODEL_ID,
        face.embedding,
        face.quality.score,
    )?;
    let mut gallery = LiveFaceGallery::load(&*store)?;
    let req = FaceEnrolment {
        subject: &subject,
        templates: std::slice::from_ref(&template),
        allow_duplicate: args.allow_duplicate,
        purpose: ctx.purpose(),
        source: Some(&source),
    };
    let matches = ipseity_engine::face::enrol(store, &mut gallery, point, &req)
        .map_err(super::enroll::duplicate_hint)?;
    Ok(HolderEnrolment {
        subject,
        enrolled: true,
        reason: None,
        source: Some(source.kind),
        quality: vec![template.quality],
        allowed_duplicate_of: matches,
    })
}

pub fn verify(ctx: &Ctx, args: &ChipVerifyArgs) -> anyhow::Result<ExitStatus> {
    // Every input is read and checked before any work, so a bad argument costs nothing
    // and never turns into a decision.
    ctx.check_purpose()?;
    // --enrol: a bad or existing id is refused before any work (before a card is read), as
    // by `ipseity enroll`, and the store is opened (created on first use) for the enrolment.
    let enrol = match &args.enrol {
        Some(id) => {
            let subject = super::subject_id(id)?;
            let store = ctx.open_store()?;
            super::enroll::refuse_existing(&store, &subject)?;
            Some((subject, store))
        }
        None => None,
    };
    let (files, reader) = chip_files(args.chip.as_deref(), &args.reader, &args.mrz)?;
    let (trust, _) = load_trust(&args.csca)?;
    let crl = match &args.crl {
        Some(p) => Some(crate::files::read_regular(p, MAX_CRL_BYTES, "too_large")?),
        None => None,
    };
    let printed = if args.mrz.is_empty() {
        None
    } else {
        Some(Mrz::parse(&args.mrz.join("\n"))?)
    };
    let live_img = load_face_image(&args.face)?;
    let policy = ctx.policy()?;

    // 1-2. Passive authentication (nothing from the chip is used unless it passes), then
    // the printed zone against DG1.
    let (check, c) = ipseity_engine::document::authenticate(&ChipInput {
        files: &files,
        trust: &trust,
        crl: crl.as_deref(),
        printed: printed.as_ref(),
        now: now(),
    });
    let mut v = ChipVerification {
        reader,
        check,
        operating_point: policy.report,
        audited: false,
        enrolment: None,
    };

    // 3. DG2's portrait against the live capture, with presentation-attack detection.
    let live = if v.check.rejected() {
        None
    } else {
        compare_faces(ctx, args, &c, &live_img, &policy.point, &mut v.check)?
    };
    drop(live_img);
    v.check.settle();
    match enrol {
        None => v.audited = audit_if_store(ctx, v.check.decision)?,
        Some((subject, mut store)) => {
            audit_decision(ctx, &mut store, v.check.decision)?;
            v.audited = true;
            // 4. With --enrol, the holder of an accepted document.
            v.enrolment = Some(enrol_holder(
                ctx,
                args,
                &mut store,
                &policy.point,
                subject,
                Checked {
                    check: &v.check,
                    chip: &c,
                    live,
                },
            )?);
        }
    }
    ctx.out.emit(&v)?;
    Ok(match &v.enrolment {
        // Asked to enrol, the check accepted, yet nothing was enrolled (no DG1 to record).
        Some(e) if !e.enrolled && v.check.decision == Decision::Accept => ExitStatus::Failure,
        _ => v.check.decision.into(),
    })
}

/// Step 3 of `document verify`: analyses both faces and adds the engine's reasons to `v`;
/// returns the live capture's analysis when it was made.
fn compare_faces(
    ctx: &Ctx,
    args: &ChipVerifyArgs,
    chip: &ChipContents,
    live_img: &ipseity_face::geom::RgbImage,
    point: &ipseity_core::OperatingPoint,
    v: &mut ChipToLive,
) -> anyhow::Result<Option<FaceAnalysis>> {
    let Some(portraits) = ipseity_engine::document::portraits(v, chip) else {
        return Ok(None);
    };
    // The two halves run side by side (the whole call is meant to fit a border gate's
    // budget): the models load while DG2's images decode, then the live capture (and its
    // liveness) is analysed while the chip's portraits are.
    let (loaded, decoded) = rayon::join(
        || -> anyhow::Result<_> {
            let (liveness, engine) = rayon::join(|| ctx.liveness(), || ctx.engine());
            Ok(match liveness? {
                Some(l) => (engine?.with_liveness(l), true),
                None => (engine?, false),
            })
        },
        || {
            portraits
                .iter()
                .map(|f| decode_image(&f.data, &DecodeLimits::default()))
                .collect::<Vec<_>>()
        },
    );
    let (engine, has_liveness) = loaded?;
    let (live, chip_faces) = rayon::join(
        || -> anyhow::Result<_> {
            // No usable face in the live capture is an input error, as for `ipseity verify`.
            let live = single_face(&engine, live_img, &args.face, args.largest)?;
            let pad = if has_liveness {
                match engine.assess_liveness(live_img, live.rect) {
                    Ok(s) => Liveness::Checked(s.is_bona_fide),
                    Err(e) => Liveness::Failed(e.to_string()),
                }
            } else {
                Liveness::NotInstalled
            };
            Ok((live, pad))
        },
        || {
            decoded
                .into_iter()
                .map(|img| {
                    img.map_err(|e| e.to_string())
                        .and_then(|img| engine.single_face(&img, true).map_err(|e| e.to_string()))
                })
                .collect::<Vec<_>>()
        },
    );
    let (live, pad) = live?;
    ipseity_engine::document::compare(v, &live, pad, chip_faces, point);
    Ok(Some(live))
}

/// The fixed seed of `document sample`'s keys: test material, the same every run.
const SAMPLE_SEED: u64 = 0x1CA0;

#[derive(serde::Serialize)]
struct SampleReport {
    written: Vec<String>,
    csca: String,
    note: &'static str,
}

impl Render for SampleReport {
    fn render_text(&self, w: &mut dyn Write) -> io::Result<()> {
        for f in &self.written {
            writeln!(w, "wrote {f}")?;
        }
        writeln!(w, "test CSCA: {}", self.csca)?;
        writeln!(w, "{}", self.note)
    }
}

pub fn sample(ctx: &Ctx, args: &ChipSampleArgs) -> anyhow::Result<ExitStatus> {
    use ipseity_document::testkit::{self, KeyKind, SIGNED_AT};
    let image = crate::files::read_regular(&args.face, MAX_CHIP_FILE_BYTES, "too_large")?;
    // Decoded only to state its size in the record (and to refuse what is not an image).
    let decoded = decode_image(&image, &DecodeLimits::default())
        .map_err(|e| anyhow::Error::from(e).context(args.face.display().to_string()))?;
    let size = (
        u16::try_from(decoded.width).unwrap_or(u16::MAX),
        u16::try_from(decoded.height).unwrap_or(u16::MAX),
    );
    let year = 365 * 86_400;
    let doc = testkit::document_with_dg2(
        KeyKind::P256,
        KeyKind::P256,
        SAMPLE_SEED,
        (SIGNED_AT - year, SIGNED_AT + 10 * year),
        testkit::dg2_with_image(&image, size),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let dir = &args.out;
    std::fs::create_dir_all(dir)
        .map_err(|e| CliError::input("invalid_input", format!("{}: {e}", dir.display())))?;
    let mut written = vec![];
    let mut write = |name: &str, bytes: &[u8]| -> anyhow::Result<String> {
        let p = dir.join(name);
        std::fs::write(&p, bytes).map_err(|e| anyhow::anyhow!("writing {}: {e}", p.display()))?;
        written.push(p.display().to_string());
        Ok(p.display().to_string())
    };
    write("EF.COM", &testkit::ef_com(&[0x61, 0x75]))?;
    for (n, b) in &doc.data_groups {
        write(&format!("DG{n}.bin"), b)?;
    }
    write("EF.SOD", &doc.sod)?;
    let csca = write("csca.der", &doc.csca)?;
    ctx.out.emit(&SampleReport {
        written,
        csca,
        note: "TEST MATERIAL: signed with fixed, public test keys under a test CSCA; it proves \
               nothing about anyone",
    })?;
    Ok(ExitStatus::Success)
}
