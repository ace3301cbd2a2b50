//! `ipseity enroll`: one subject from face images, or many from a CSV manifest.
//!
//! Every image is analysed and the new templates are compared with every
//! enrolled face template before anything is written; a match with another
//! subject at the accept threshold refuses the enrolment (exit 3) unless
//! `--allow-duplicate`. The store is then written in one `enroll` transaction,
//! so a failure leaves it unchanged.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use ipseity_core::{Decision, Modality, OperatingPoint, SubjectId, Template};
use ipseity_face::FaceEngine;
use ipseity_store::{Store, MAX_DETAIL};
use serde::Serialize;

use crate::args::EnrollArgs;
use crate::context::{load_face_image, single_face, Ctx};
use crate::error::{code_of, CliError, ExitStatus};
use crate::gallery::{FaceGallery, FACE_DIM, MIN_DEPTH};
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

pub fn run(ctx: &Ctx, args: &EnrollArgs) -> anyhow::Result<ExitStatus> {
    if let Some(m) = &args.manifest {
        return batch(ctx, args, m);
    }
    let Some(subject) = &args.subject else {
        return Err(CliError::input("usage", "--subject or --manifest is required").into());
    };
    let subject = super::subject_id(subject)?;
    let mut store = ctx.open_store()?;
    refuse_existing(&store, &subject)?;
    let policy = ctx.policy()?;
    let images = args
        .face
        .iter()
        .map(|p| Ok((p.as_path(), load_face_image(p)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let engine = ctx.engine()?;
    let mut templates = Vec::new();
    for (path, img) in &images {
        let face = single_face(&engine, img, path, args.largest)?;
        templates.push(Template::new(
            Modality::Face,
            ipseity_face::MODEL_ID,
            face.embedding,
            face.quality.score,
        )?);
    }
    let gallery = FaceGallery::load(&store, FACE_DIM)?;
    let matches = duplicates(&policy.point, &subject, &templates, &gallery);
    commit(
        ctx,
        &mut store,
        &subject,
        &templates,
        &matches,
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

/// Fails with `duplicate_subject` before any image is analysed.
fn refuse_existing(store: &Store, subject: &SubjectId) -> anyhow::Result<()> {
    match store.templates(subject) {
        Ok(_) => Err(ipseity_store::StoreError::DuplicateSubject(subject.clone()).into()),
        Err(ipseity_store::StoreError::UnknownSubject(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Other subjects any new template matches at the accept threshold, in
/// gallery order. The index proposes candidates; each is decided on the exact
/// decision similarity over all its templates, so the answer is the one a scan
/// of every template gives (see `crate::gallery`).
fn duplicates(
    point: &OperatingPoint,
    subject: &SubjectId,
    templates: &[Template],
    gallery: &FaceGallery,
) -> Vec<SubjectId> {
    let mut hits: BTreeSet<u32> = BTreeSet::new();
    for t in templates {
        for (other, s) in gallery.matches_ordinals(&t.vector, point.accept_at, MIN_DEPTH) {
            if point.decide(s) == Decision::Accept && gallery.names[other as usize] != *subject {
                hits.insert(other);
            }
        }
    }
    hits.into_iter()
        .map(|o| gallery.names[o as usize].clone())
        .collect()
}

/// Writes the enrolment, or refuses it as a possible duplicate (audited either way).
fn commit(
    ctx: &Ctx,
    store: &mut Store,
    subject: &SubjectId,
    templates: &[Template],
    matches: &[SubjectId],
    allow_duplicate: bool,
) -> anyhow::Result<()> {
    let detail = || {
        let mut d = format!("possible_duplicate_of={}", join(matches));
        if d.len() > MAX_DETAIL {
            let mut cut = MAX_DETAIL - 3;
            while !d.is_char_boundary(cut) {
                cut -= 1;
            }
            d.truncate(cut);
            d.push_str("...");
        }
        d
    };
    if !matches.is_empty() && !allow_duplicate {
        store.record_audit(
            "enroll",
            Some(subject),
            ctx.purpose(),
            "refused",
            Some(&detail()),
        )?;
        return Err(CliError::with_exit(
            "possible_duplicate",
            format!(
                "possible duplicate enrolment: matches subject {}; nothing was written \
                 (pass --allow-duplicate to enrol anyway)",
                join(matches)
            ),
            ExitStatus::PossibleDuplicate,
        )
        .into());
    }
    store.enroll(subject, templates, ctx.purpose())?;
    if !matches.is_empty() {
        store.record_audit(
            "enroll_duplicate",
            Some(subject),
            ctx.purpose(),
            "allowed",
            Some(&detail()),
        )?;
    }
    Ok(())
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
    let rows = manifest::read(manifest_path, &["subject", "path"])?;
    let mut store = ctx.open_store()?;
    let policy = ctx.policy()?;
    let engine = ctx.engine()?;
    let mut gallery = FaceGallery::load(&store, FACE_DIM)?;

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
            &gallery,
            &name,
            &group,
            args,
            &bar,
        );
        match result {
            Ok(Ok((subject, templates))) => {
                gallery.add(templates.iter().map(|t| (&subject, t)))?;
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
    gallery: &FaceGallery,
    name: &str,
    group: &[(usize, PathBuf)],
    args: &EnrollArgs,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<Result<(SubjectId, Vec<Template>), RowErrors>> {
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
    let mut templates = Vec::new();
    let mut errors = Vec::new();
    for (line, path) in group {
        let t = load_face_image(path)
            .and_then(|img| single_face(engine, &img, path, args.largest))
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
    let matches = duplicates(point, &subject, &templates, gallery);
    commit(
        ctx,
        store,
        &subject,
        &templates,
        &matches,
        args.allow_duplicate,
    )?;
    Ok(Ok((subject, templates)))
}
