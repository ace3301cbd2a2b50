//! `ipseity finger ...`: the fingerprint modality on the embedded store.
//!
//! Samples are 500-ppi impressions (PNG, TIFF, BMP, WSQ) or ISO/ANSI minutiae records. A
//! subject holds up to ten fingers with positions. Decisions come from the fused false-match
//! rate ([`ipseity_finger::fusion`]); no score is printed outside `finger eval`.

pub mod eval;

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use ipseity_core::{AuditEvent, Decision, Modality, SubjectId};
use ipseity_engine::finger::{
    build_gallery, decode_stored, FingerEnrolment, LiveFingerGallery, SHORTLIST,
};
use ipseity_finger::extract::{self, ExtractConfig};
use ipseity_finger::fusion::{FmrPolicy, ScoreCalibration};
use ipseity_finger::gallery::ProbeFinger;
use ipseity_finger::matcher::MatcherConfig;
use ipseity_finger::sample::{self, Sample};
use ipseity_finger::{iso, synth, FingerPosition, FingerTemplate};
use rayon::prelude::*;
use serde::Serialize;

use super::identify::{candidates_of, Candidate};
use crate::args::{
    FingerEnrollArgs, FingerExtractArgs, FingerIdentifyArgs, FingerSynthArgs, FingerVerifyArgs,
    RecordFormat, SynthDifficulty,
};
use crate::context::Ctx;
use crate::error::{CliError, ExitStatus};
use crate::files;
use crate::output::Render;
use ipseity_engine::identify;

/// File name of a programme's own fingerprint calibration inside the data directory.
pub const CALIBRATION_FILE: &str = "finger_calibration.json";

/// Largest sample file read, in bytes (a 2000 x 2000 8-bit image is 4 MB uncompressed).
const MAX_FILE_BYTES: u64 = 32 << 20;

/// Most fingers one record may hold.
const MAX_FINGERS: usize = 10;

/// The calibration measured by `ipseity finger eval --calibrate` on the synthetic set
/// described in `docs/BENCHMARKS-finger.md`, used until a programme calibrates on its own.
const BUILTIN_CALIBRATION: &str = include_str!("builtin_calibration.json");

/// One finger given on the command line.
pub struct FingerSpec {
    /// Position, or unknown.
    pub position: FingerPosition,
    /// The file.
    pub path: PathBuf,
}

/// Parses `POSITION=FILE` or `FILE`.
pub fn parse_spec(s: &str) -> anyhow::Result<FingerSpec> {
    if let Some((pos, path)) = s.split_once('=') {
        if let Some(position) = FingerPosition::parse(pos) {
            return Ok(FingerSpec {
                position,
                path: PathBuf::from(path),
            });
        }
        if !Path::new(s).exists() {
            return Err(CliError::input(
                "usage",
                format!(
                    "unknown finger position {pos:?}: use right-thumb ... right-little, \
                     left-thumb ... left-little, unknown, or a code 0-10"
                ),
            )
            .into());
        }
    }
    Ok(FingerSpec {
        position: FingerPosition::Unknown,
        path: PathBuf::from(s),
    })
}

fn read_bounded(path: &Path) -> anyhow::Result<Vec<u8>> {
    files::read_regular(path, MAX_FILE_BYTES, "image_too_large")
}

/// Loads one finger given on the command line; errors name the file.
pub fn load_sample(spec: &FingerSpec, cfg: &ExtractConfig) -> anyhow::Result<Sample> {
    let bytes = read_bounded(&spec.path)?;
    sample::load(&bytes, spec.position, cfg).with_context(|| spec.path.display().to_string())
}

fn load_all(specs: &[String]) -> anyhow::Result<Vec<Sample>> {
    if specs.len() > MAX_FINGERS {
        return Err(CliError::input(
            "usage",
            format!("{} fingers given; at most {MAX_FINGERS}", specs.len()),
        )
        .into());
    }
    let specs = specs
        .iter()
        .map(|s| parse_spec(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut seen = BTreeSet::new();
    for s in &specs {
        if s.position != FingerPosition::Unknown && !seen.insert(s.position) {
            return Err(CliError::input(
                "usage",
                format!("finger position {} given twice", s.position.name()),
            )
            .into());
        }
    }
    let cfg = ExtractConfig::default();
    specs
        .par_iter()
        .map(|s| load_sample(s, &cfg))
        .collect::<anyhow::Result<Vec<_>>>()
}

/// The fingerprint calibration in force and a description of it.
pub fn calibration(ctx: &Ctx) -> anyhow::Result<(ScoreCalibration, String)> {
    let path = ctx.data_dir.join(CALIBRATION_FILE);
    let (text, source) = match std::fs::read_to_string(&path) {
        Ok(t) => (t, path.display().to_string()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            (BUILTIN_CALIBRATION.to_owned(), "built-in".to_owned())
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let bad = |why: String| CliError::input("bad_calibration", format!("{source}: {why}"));
    let cal: ScoreCalibration =
        serde_json::from_str(&text).map_err(|e| bad(format!("not a calibration ({e})")))?;
    cal.validate().map_err(|e| bad(e.to_string()))?;
    let described = format!(
        "FMR {:e} per search, calibrated on {} impostor comparisons [{source}]",
        FmrPolicy::default().accept_fmr,
        cal.impostor_pairs,
    );
    Ok((cal, described))
}

/// A finger's quality as printed: a score and, for images, whether it was usable.
#[derive(Serialize)]
struct FingerQuality {
    position: &'static str,
    quality: u8,
    minutiae: usize,
}

fn probe_of(samples: &[Sample]) -> Vec<ProbeFinger> {
    let cfg = MatcherConfig::default();
    samples
        .iter()
        .map(|s| ProbeFinger::new(&s.template, &cfg))
        .collect()
}

fn qualities(samples: &[Sample]) -> Vec<FingerQuality> {
    samples
        .iter()
        .map(|s| FingerQuality {
            position: s.template.position.name(),
            quality: s.quality_score(),
            minutiae: s.template.minutiae.len(),
        })
        .collect()
}

fn write_qualities(w: &mut dyn Write, q: &[FingerQuality]) -> io::Result<()> {
    for f in q {
        writeln!(
            w,
            "  {}: quality {}, {} minutiae",
            f.position, f.quality, f.minutiae
        )?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// synth

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
    let standard = synth::SynthConfig::default();
    match d {
        SynthDifficulty::Standard => standard,
        SynthDifficulty::Hard => synth::SynthConfig {
            max_translation: 60.0,
            max_rotation_deg: 35.0,
            distortion: 22.0,
            pressure: 0.5,
            noise: 32.0,
            partial_contact: 0.9,
            ..standard
        },
    }
}

/// Ground-truth minutiae as the JSON array written beside each synthetic image.
fn truth_json(minutiae: &[ipseity_finger::Minutia]) -> String {
    // Serialising plain structs of numbers and unit enums cannot fail; non-finite
    // coordinates, which the generator never makes, would come out as null.
    serde_json::to_string_pretty(minutiae).unwrap_or_else(|_| String::from("[]"))
}

pub fn synth(ctx: &Ctx, args: &FingerSynthArgs) -> anyhow::Result<ExitStatus> {
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
    let bar = super::progress(args.fingers as usize, "synth");
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
        },
        fingers: args.fingers,
        impressions: args.impressions,
        seed: args.seed,
        out: args.out.clone(),
        files: 2 * args.fingers as usize * args.impressions as usize,
    })?;
    Ok(ExitStatus::Success)
}

// ---------------------------------------------------------------------------------------
// extract

#[derive(Serialize)]
struct Extracted {
    out: PathBuf,
    format: &'static str,
    position: &'static str,
    minutiae: usize,
    quality: u8,
}

impl Render for Extracted {
    fn render_text(&self, w: &mut dyn Write) -> io::Result<()> {
        writeln!(
            w,
            "wrote {} ({} record, {}, {} minutiae, quality {})",
            self.out.display(),
            self.format,
            self.position,
            self.minutiae,
            self.quality
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

pub fn extract(ctx: &Ctx, args: &FingerExtractArgs) -> anyhow::Result<ExitStatus> {
    let position = FingerPosition::parse(&args.position).ok_or_else(|| {
        CliError::input(
            "usage",
            format!("unknown finger position {:?}", args.position),
        )
    })?;
    let spec = FingerSpec {
        position,
        path: args.image.clone(),
    };
    refuse_overwriting_input(&args.image, &args.out)?;
    let bytes = read_bounded(&spec.path)?;
    let img = sample::decode_impression(&bytes).with_context(|| spec.path.display().to_string())?;
    let ex = extract::extract(&img, position, &ExtractConfig::default())
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
    })?;
    Ok(ExitStatus::Success)
}

// ---------------------------------------------------------------------------------------
// enroll

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

pub fn enroll(ctx: &Ctx, args: &FingerEnrollArgs) -> anyhow::Result<ExitStatus> {
    ctx.check_purpose()?;
    let subject = super::subject_id(&args.subject)?;
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
    let samples = load_all(&args.finger)?;
    let (cal, _) = calibration(ctx)?;
    let live = LiveFingerGallery::load(&store, cal)?;
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
    let matches = ipseity_engine::finger::enrol(&mut store, &live, &req)
        .map_err(super::enroll::duplicate_hint)?;
    ctx.out.emit(&Enrolled {
        subject,
        fingers: qualities(&samples),
        allowed_duplicate_of: matches,
    })?;
    Ok(ExitStatus::Success)
}

// ---------------------------------------------------------------------------------------
// verify

#[derive(Serialize)]
struct Verification {
    subject: SubjectId,
    decision: Decision,
    fingers_compared: usize,
    operating_point: String,
    fingers: Vec<FingerQuality>,
}

impl Render for Verification {
    fn render_text(&self, w: &mut dyn Write) -> io::Result<()> {
        writeln!(w, "{}", self.decision)?;
        writeln!(w, "subject: {}", self.subject)?;
        writeln!(w, "fingers compared: {}", self.fingers_compared)?;
        writeln!(w, "operating point: {}", self.operating_point)?;
        writeln!(w, "probe:")?;
        write_qualities(w, &self.fingers)
    }
}

pub fn verify(ctx: &Ctx, args: &FingerVerifyArgs) -> anyhow::Result<ExitStatus> {
    let subject = super::subject_id(&args.subject)?;
    let mut store = ctx.open_store()?;
    let stored = store.templates(&subject)?;
    let refs = decode_stored(stored.into_iter().map(|t| (subject.clone(), t)))?;
    if refs.is_empty() {
        return Err(CliError::input(
            "no_templates",
            format!("subject {subject} has no fingerprint templates"),
        )
        .into());
    }
    let samples = load_all(&args.finger)?;
    let (cal, described) = calibration(ctx)?;
    let g = build_gallery(&refs, cal)?;
    let policy = FmrPolicy::default();
    let m = g.verify(&subject, &probe_of(&samples));
    let (decision, fingers_compared) = match m {
        Some(m) if m.fingers_compared > 0 => (policy.decide(m.fmr), m.fingers_compared),
        _ => {
            return Err(CliError::input(
                "no_templates",
                format!(
                    "subject {subject} has no enrolled finger at the positions given; \
                     give the positions enrolled or `unknown`"
                ),
            )
            .into())
        }
    };
    store.record_audit(
        &AuditEvent::Verified {
            modality: Modality::Fingerprint,
            decision,
            compared: Some(fingers_compared),
        },
        Some(&subject),
        ctx.purpose(),
    )?;
    ctx.out.emit(&Verification {
        subject,
        decision,
        fingers_compared,
        operating_point: described.replace(" per search", " per comparison"),
        fingers: qualities(&samples),
    })?;
    Ok(decision.into())
}

// ---------------------------------------------------------------------------------------
// identify

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

pub fn identify(ctx: &Ctx, args: &FingerIdentifyArgs) -> anyhow::Result<ExitStatus> {
    ctx.require_purpose("a fingerprint identify searches the whole gallery")?;
    super::check_top(args.top)?;
    let mut store = ctx.open_store()?;
    let samples = load_all(&args.finger)?;
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
        });
    let answer = identify::answer(found, args.top);
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
