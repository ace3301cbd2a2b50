//! `ipseity enroll`: one subject from face images, or many from a CSV manifest.
//!
//! Images are decoded and analysed one at a time; the engine
//! ([`ipseity_engine::face::enrol`]) then compares the new templates with every enrolled
//! face, re-checking inside the write transaction, and refuses a match with another
//! subject (exit 3) unless `--allow-duplicate`. The enrolment and its audit rows commit
//! together, so a failure leaves the store unchanged.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use ipseity_core::{AuditEvent, Modality, OperatingPoint, SubjectId, Template};
use ipseity_engine::face::{self, FaceEnrolment, LiveFaceGallery};
use ipseity_engine::EngineError;
use ipseity_face::FaceEngine;
use ipseity_store::Store;
use serde::Serialize;

use crate::args::EnrollArgs;
use crate::context::{capture_face, is_presentation_attack, load_face_image, Ctx};
use crate::error::{code_of, CliError, ExitStatus};
use crate::manifest;
use crate::output::Render;

#[derive(Serialize)]
struct Enrolled {
    subject: SubjectId,
    templates: usize,
    quality: Vec<u8>,
    /// Subjects the new templates matched, enrolled anyway with `--allow-duplicate`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    allowed_duplicate_of: Vec<SubjectId>,
}

impl Render for Enrolled {
    fn render_text(&self, w: &mut dyn Write) -> io::Result<()> {
        let q: Vec<String> = self.quality.iter().map(u8::to_string).collect();
        writeln!(
            w,
            "enrolled {} with {} template(s) (quality {})",
            self.subject,
            self.templates,
            q.join(", ")
        )?;
        if !self.allowed_duplicate_of.is_empty() {
            writeln!(
                w,
                "warning: matches subject {} (enrolled with --allow-duplicate; recorded in the audit log)",
                join(&self.allowed_duplicate_of)
            )?;
        }
        Ok(())
    }
}

fn join(ids: &[SubjectId]) -> String {
    ids.iter()
        .map(SubjectId::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Most face images one enrolment takes: each is decoded and analysed in turn, but a
/// bounded list keeps a single command's work (and its audit) proportionate.
pub const MAX_FACES_PER_ENROLMENT: usize = 16;

pub fn run(ctx: &Ctx, args: &EnrollArgs) -> anyhow::Result<ExitStatus> {
    if let Some(m) = &args.manifest {
        return batch(ctx, args, m);
    }
    let Some(subject) = &args.subject else {
        return Err(CliError::input("usage", "--subject or --manifest is required").into());
    };
    if args.face.len() > MAX_FACES_PER_ENROLMENT {
        return Err(CliError::input(
            "too_many_files",
            format!(
                "{} face images given; an enrolment takes at most {MAX_FACES_PER_ENROLMENT}",
                args.face.len()
            ),
        )
        .into());
    }
    ctx.check_purpose()?;
    let subject = super::subject_id(subject)?;
    let mut store = ctx.open_store()?;
    refuse_existing(&store, &subject)?;
    let policy = ctx.policy()?;
    let check = !args.no_liveness;
    let engine = ctx.capture_engine(check)?;
    // One image at a time: a list of decoded images would hold every file's pixels at once.
    let mut templates = Vec::new();
    for path in &args.face {
        let img = load_face_image(path)?;
        let face = capture_face(&engine, &img, path, args.largest, check)
            .map_err(|e| attack_audit(ctx, &mut store, &subject, e))?;
        drop(img);
        templates.push(Template::new(
            Modality::Face,
            ipseity_face::MODEL_ID,
            face.embedding,
            face.quality.score,
        )?);
    }
    liveness_off_audit(ctx, &mut store, &subject, check)?;
    let mut live = LiveFaceGallery::load(&store)?;
    let matches = commit(
        ctx,
        &mut store,
        &mut live,
        &policy.point,
        &subject,
        &templates,
        args.allow_duplicate,
    )?;
    ctx.out.emit(&Enrolled {
        quality: templates.iter().map(|t| t.quality).collect(),
        templates: templates.len(),
        subject,
        allowed_duplicate_of: matches,
    })?;
    Ok(ExitStatus::Success)
}

/// Records that the faces of this subject's enrolment were taken with
/// presentation-attack detection turned off by the caller.
fn liveness_off_audit(
    ctx: &Ctx,
    store: &mut Store,
    subject: &SubjectId,
    check: bool,
) -> anyhow::Result<()> {
    if !check {
        store.record_audit(
            &AuditEvent::LivenessOff {
                operation: "enroll",
            },
            Some(subject),
            ctx.purpose(),
        )?;
    }
    Ok(())
}

/// Records a refused presentation attack; returns the error, or the audit's own failure.
fn attack_audit(
    ctx: &Ctx,
    store: &mut Store,
    subject: &SubjectId,
    err: anyhow::Error,
) -> anyhow::Error {
    if !is_presentation_attack(&err) {
        return err;
    }
    let event = AuditEvent::PresentationAttack {
        operation: "enroll",
    };
    match store.record_audit(&event, Some(subject), ctx.purpose()) {
        Ok(()) => err,
        Err(e) => e.into(),
    }
}

/// Fails with `duplicate_subject` before any image is analysed (the engine checks again
/// inside its transaction).
pub(super) fn refuse_existing(store: &Store, subject: &SubjectId) -> anyhow::Result<()> {
    match store.templates(subject) {
        Ok(_) => Err(ipseity_store::StoreError::DuplicateSubject(subject.clone()).into()),
        Err(ipseity_store::StoreError::UnknownSubject(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Enrols through the engine, which searches for duplicates and re-checks inside the
/// write transaction; adds the CLI's hint to a refusal.
fn commit(
    ctx: &Ctx,
    store: &mut Store,
    live: &mut LiveFaceGallery,
    point: &OperatingPoint,
    subject: &SubjectId,
    templates: &[Template],
    allow_duplicate: bool,
) -> anyhow::Result<Vec<SubjectId>> {
    let req = FaceEnrolment {
        subject,
        templates,
        allow_duplicate,
        purpose: ctx.purpose(),
        source: None,
    };
    face::enrol(store, live, point, &req).map_err(duplicate_hint)
}

/// The engine's refusal, with the flag that overrides it.
pub fn duplicate_hint(e: EngineError) -> anyhow::Error {
    match e {
        EngineError::PossibleDuplicate(ref ids) => CliError::with_exit(
            "possible_duplicate",
            format!(
                "possible duplicate enrolment: matches subject {}; held for review \
                 (`ipseity review list`, `ipseity review resolve`), or pass \
                 --allow-duplicate to enrol anyway",
                join(ids)
            ),
            ExitStatus::PossibleDuplicate,
        )
        .into(),
        e => e.into(),
    }
}

#[derive(Serialize)]
struct RowFailure {
    line: usize,
    subject: String,
    path: PathBuf,
    code: &'static str,
    message: String,
}

#[derive(Serialize)]
struct BatchReport {
    enrolled: Vec<SubjectId>,
    failed_subjects: usize,
    failed_rows: usize,
    reasons: BTreeMap<&'static str, usize>,
    failures: Vec<RowFailure>,
}

impl Render for BatchReport {
    fn render_text(&self, w: &mut dyn Write) -> io::Result<()> {
        for f in &self.failures {
            writeln!(
                w,
                "line {}: {} {}: {} ({})",
                f.line,
                f.subject,
                f.path.display(),
                f.message,
                f.code
            )?;
        }
        write!(
            w,
            "enrolled {} subjects, {} failed",
            self.enrolled.len(),
            self.failed_subjects
        )?;
        if !self.reasons.is_empty() {
            let r: Vec<String> = self
                .reasons
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            write!(w, " ({} rows): {}", self.failed_rows, r.join(", "))?;
        }
        writeln!(w)
    }
}

fn batch(ctx: &Ctx, args: &EnrollArgs, manifest_path: &Path) -> anyhow::Result<ExitStatus> {
    ctx.check_purpose()?;
    let rows = manifest::read(manifest_path, &["subject", "path"])?;
    let mut store = ctx.open_store()?;
    let policy = ctx.policy()?;
    let engine = ctx.capture_engine(!args.no_liveness)?;
    let mut live = LiveFaceGallery::load(&store)?;

    // Group rows by subject, keeping the manifest's order.
    let mut order: Vec<String> = Vec::new();
    let mut groups: BTreeMap<String, Vec<(usize, PathBuf)>> = BTreeMap::new();
    for row in &rows {
        let (subject, path) = (&row.fields[0], &row.fields[1]);
        if !groups.contains_key(subject) {
            order.push(subject.clone());
        }
        groups
            .entry(subject.clone())
            .or_default()
            .push((row.line, manifest::resolve(manifest_path, path)));
    }

    let bar = super::progress(rows.len(), "enrolling");
    let mut report = BatchReport {
        enrolled: Vec::new(),
        failed_subjects: 0,
        failed_rows: 0,
        reasons: BTreeMap::new(),
        failures: Vec::new(),
    };
    for name in order {
        let group = groups.remove(&name).unwrap_or_default();
        let mut fail = |line: usize, path: &Path, err: &anyhow::Error| {
            let code = code_of(err);
            *report.reasons.entry(code).or_default() += 1;
            report.failed_rows += 1;
            report.failures.push(RowFailure {
                line,
                subject: name.clone(),
                path: path.to_owned(),
                code,
                message: crate::error::message(err),
            });
        };
        let result = enroll_group(
            ctx,
            &mut store,
            &engine,
            &policy.point,
            &mut live,
            &name,
            &group,
            args,
            &bar,
        );
        match result {
            Ok(Ok(subject)) => {
                report.enrolled.push(subject);
            }
            Ok(Err(row_errors)) => {
                for (line, path, err) in &row_errors {
                    fail(*line, path, err);
                }
                report.failed_subjects += 1;
            }
            Err(err) => {
                // The subject as a whole failed (bad id, duplicate, store error): every row counts.
                for (line, path) in &group {
                    fail(*line, path, &err);
                }
                report.failed_subjects += 1;
            }
        }
    }
    bar.finish_and_clear();
    ctx.out.emit(&report)?;
    Ok(if report.failed_rows == 0 {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}

type RowErrors = Vec<(usize, PathBuf, anyhow::Error)>;

/// Enrols one manifest subject. The outer error fails the whole subject; the
/// inner one lists the rows whose images failed (then nothing is written).
#[allow(clippy::too_many_arguments)]
fn enroll_group(
    ctx: &Ctx,
    store: &mut Store,
    engine: &FaceEngine,
    point: &OperatingPoint,
    live: &mut LiveFaceGallery,
    name: &str,
    group: &[(usize, PathBuf)],
    args: &EnrollArgs,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<Result<SubjectId, RowErrors>> {
    let checked = super::subject_id(name).and_then(|s| {
        refuse_existing(store, &s)?;
        Ok(s)
    });
    let subject = match checked {
        Ok(s) => s,
        Err(e) => {
            bar.inc(group.len() as u64);
            return Err(e);
        }
    };
    let check = !args.no_liveness;
    let mut templates = Vec::new();
    let mut errors = Vec::new();
    for (line, path) in group {
        let t = load_face_image(path)
            .and_then(|img| capture_face(engine, &img, path, args.largest, check))
            .map_err(|e| attack_audit(ctx, store, &subject, e))
            .and_then(|face| {
                Template::new(
                    Modality::Face,
                    ipseity_face::MODEL_ID,
                    face.embedding,
                    face.quality.score,
                )
                .with_context(|| path.display().to_string())
            });
        bar.inc(1);
        match t {
            Ok(t) => templates.push(t),
            Err(e) => errors.push((*line, path.clone(), e)),
        }
    }
    if !errors.is_empty() {
        return Ok(Err(errors));
    }
    liveness_off_audit(ctx, store, &subject, check)?;
    commit(
        ctx,
        store,
        live,
        point,
        &subject,
        &templates,
        args.allow_duplicate,
    )?;
    Ok(Ok(subject))
}
