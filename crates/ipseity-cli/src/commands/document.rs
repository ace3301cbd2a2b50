//! `ipseity document`: a machine-readable zone field by field with every check digit
//! by name (`mrz`); a chip dump read and passively authenticated (`read`); the chip's
//! portrait against a live capture in one call (`verify`); and synthetic test chips
//! (`sample`, hidden).

use std::io::{self, Read as _, Write};

use std::path::Path;

use ipseity_document::passive::{self, Outcome, PassiveAuthInput, PassiveAuthReport};
use ipseity_document::{ChipContents, ChipFile, ImageFormat, MasterListReport, Mrz, TrustStore};
use ipseity_engine::document::{ChipInput, ChipToLive, Liveness};

use ipseity_core::{AuditEvent, Decision, Modality};
use ipseity_face::decode::{decode_image, DecodeLimits};

use crate::args::{ChipReadArgs, ChipSampleArgs, ChipVerifyArgs, MrzArgs};
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

#[derive(serde::Serialize)]
struct ChipReport {
    files: Vec<String>,
    lds_version: Option<String>,
    listed_but_missing: Vec<String>,
    dg1: Option<MrzReport>,
    faces: Vec<FaceSummary>,
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
            writeln!(w, "passive authentication: {}", outcome_word(p.verdict))?;
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

/// Seconds since 1970, to judge certificates' validity when the SOD has no signingTime.
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The data groups of a dump, for passive authentication.
fn data_groups(files: &[(ChipFile, Vec<u8>)]) -> Vec<(u8, &[u8])> {
    files
        .iter()
        .filter_map(|(k, b)| match k {
            ChipFile::Dg(n) => Some((*n, b.as_slice())),
            _ => None,
        })
        .collect()
}

pub fn read(ctx: &Ctx, args: &ChipReadArgs) -> anyhow::Result<ExitStatus> {
    let files = read_chip_dir(&args.chip)?;
    let c = ChipContents::read(files.iter().map(|(k, b)| (*k, b.as_slice())));
    let mut errors = vec![];
    let mut report = ChipReport {
        files: c.present.iter().map(|f| file_name(*f)).collect(),
        lds_version: None,
        listed_but_missing: vec![],
        dg1: None,
        faces: vec![],
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
        let dgs = data_groups(&files);
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
             to a trusted CSCA and every data group's hash)"
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
    #[serde(flatten)]
    check: ChipToLive,
    operating_point: PolicyReport,
    /// Whether the decision went into the data directory's audit log.
    audited: bool,
}

impl Render for ChipVerification {
    fn render_text(&self, w: &mut dyn Write) -> io::Result<()> {
        let c = &self.check;
        writeln!(w, "{}", c.decision)?;
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
        )
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
    store.record_audit(
        &AuditEvent::Verified {
            modality: Modality::Face,
            decision,
            compared: None,
        },
        None,
        ctx.purpose(),
    )?;
    Ok(true)
}

pub fn verify(ctx: &Ctx, args: &ChipVerifyArgs) -> anyhow::Result<ExitStatus> {
    // Every input is read and checked before any work, so a bad argument costs nothing
    // and never turns into a decision.
    ctx.check_purpose()?;
    let files = read_chip_dir(&args.chip)?;
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
        check,
        operating_point: policy.report,
        audited: false,
    };

    // 3. DG2's portrait against the live capture, with presentation-attack detection.
    if !v.check.rejected() {
        compare_faces(ctx, args, &c, &live_img, &policy.point, &mut v.check)?;
    }
    v.check.settle();
    v.audited = audit_if_store(ctx, v.check.decision)?;
    ctx.out.emit(&v)?;
    Ok(v.check.decision.into())
}

/// Step 3 of `document verify`: analyses both faces and adds the engine's reasons to `v`.
fn compare_faces(
    ctx: &Ctx,
    args: &ChipVerifyArgs,
    chip: &ChipContents,
    live_img: &ipseity_face::geom::RgbImage,
    point: &ipseity_core::OperatingPoint,
    v: &mut ChipToLive,
) -> anyhow::Result<()> {
    let Some(portraits) = ipseity_engine::document::portraits(v, chip) else {
        return Ok(());
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
    Ok(())
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
